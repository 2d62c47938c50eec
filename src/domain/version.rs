//! Entity tags and the conditional request headers that carry them (RFC 9110 §8.8.3, §13.1).
//!
//! An employee's strong tag is its version, the number of the audit entry that last wrote it:
//! `"1234"`. A list page's weak tag is the data version of all employees: `W/"e1234"`.

/// What `If-Match` asks for, in versions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Precondition {
    /// No `If-Match`: write unconditionally.
    #[default]
    None,
    /// `If-Match: *`: the record must exist.
    Any,
    /// The record's version must be one of these (strong comparison; weak tags and tags that
    /// are not versions of this server never match).
    Versions(Vec<i64>),
}

impl Precondition {
    /// Whether a record at `version` satisfies it.
    pub fn allows(&self, version: i64) -> bool {
        match self {
            Precondition::None | Precondition::Any => true,
            Precondition::Versions(versions) => versions.contains(&version),
        }
    }
}

/// One entity tag of a header's list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityTag {
    pub weak: bool,
    pub opaque: String,
}

/// An `If-Match` / `If-None-Match` value: `*` or a list of entity tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagList {
    Any,
    Tags(Vec<EntityTag>),
}

impl TagList {
    /// Parses the header value; `None` when it is not a valid list.
    pub fn parse(raw: &str) -> Option<TagList> {
        let raw = raw.trim();
        if raw == "*" {
            return Some(TagList::Any);
        }
        let mut tags = Vec::new();
        for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (weak, quoted) = match part.strip_prefix("W/") {
                Some(rest) => (true, rest),
                None => (false, part),
            };
            let opaque = quoted.strip_prefix('"')?.strip_suffix('"')?;
            // etagc = %x21 / %x23-7E / obs-text
            if opaque.bytes().any(|b| b == b'"' || b < 0x21 || b == 0x7f) {
                return None;
            }
            tags.push(EntityTag {
                weak,
                opaque: opaque.to_owned(),
            });
        }
        (!tags.is_empty()).then_some(TagList::Tags(tags))
    }

    /// `If-Match` as a precondition on versions (strong comparison).
    pub fn precondition(&self) -> Precondition {
        match self {
            TagList::Any => Precondition::Any,
            TagList::Tags(tags) => Precondition::Versions(
                tags.iter()
                    .filter(|t| !t.weak)
                    .filter_map(|t| t.opaque.parse().ok())
                    .collect(),
            ),
        }
    }

    /// `If-None-Match` against the current tag's opaque part (weak comparison): true when the
    /// client's copy is current.
    pub fn matches_weakly(&self, opaque: &str) -> bool {
        match self {
            TagList::Any => true,
            TagList::Tags(tags) => tags.iter().any(|t| t.opaque == opaque),
        }
    }
}

/// The weak tag of a list page at data version `seq`.
pub fn list_tag_opaque(seq: i64) -> String {
    format!("e{seq}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_lists_parse_as_rfc_9110_writes_them() {
        assert_eq!(TagList::parse("*"), Some(TagList::Any));
        assert_eq!(
            TagList::parse(r#""12", W/"e7""#),
            Some(TagList::Tags(vec![
                EntityTag {
                    weak: false,
                    opaque: "12".into()
                },
                EntityTag {
                    weak: true,
                    opaque: "e7".into()
                },
            ]))
        );
        for bad in ["", "12", r#""12"#, r#"W/12"#, "\"a b\"", ","] {
            assert_eq!(TagList::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn if_match_compares_strongly_and_if_none_match_weakly() {
        let list = TagList::parse(r#"W/"5", "7", "x""#).unwrap();
        assert_eq!(list.precondition(), Precondition::Versions(vec![7]));
        assert!(list.precondition().allows(7));
        assert!(
            !list.precondition().allows(5),
            "weak tags never match If-Match"
        );
        assert!(list.matches_weakly("5") && list.matches_weakly("7"));
        assert!(TagList::Any.precondition().allows(1));
        assert!(Precondition::None.allows(1));
    }
}
