//! Reads a JSON object field by field into domain types, collecting every failure (as FastAPI
//! does) and rejecting fields the endpoint does not know.

use serde_json::{Map, Value};

use super::validation::{FieldError, Invalid, LocPart, MAX_SHOWN_ERRORS, summarize};

/// Walks one JSON object. Call [`ObjectReader::required`] / [`ObjectReader::optional`] for each
/// known field, then [`ObjectReader::finish`], which also reports unknown fields.
pub struct ObjectReader {
    prefix: Vec<LocPart>,
    fields: Map<String, Value>,
    errors: Vec<FieldError>,
    /// Failures past [`MAX_SHOWN_ERRORS`], counted but not built (an object of 100,000 unknown
    /// keys must not become 100,000 error entries).
    more: usize,
}

impl ObjectReader {
    /// `prefix` is the `loc` of the object itself, e.g. `["body"]` or `["body", 3]`.
    pub fn new(prefix: Vec<LocPart>, fields: Map<String, Value>) -> Self {
        Self {
            prefix,
            fields,
            errors: Vec::new(),
            more: 0,
        }
    }

    fn loc(&self, field: &str) -> Vec<LocPart> {
        let mut loc = self.prefix.clone();
        loc.push(field.into());
        loc
    }

    fn fail(&mut self, field: &str, invalid: Invalid) {
        if self.errors.len() >= MAX_SHOWN_ERRORS {
            self.more += 1;
            return;
        }
        let loc = self.loc(field);
        self.errors
            .push(FieldError::new(loc, invalid.kind, invalid.msg));
    }

    /// A field that must be present and not `null`.
    pub fn required<T>(
        &mut self,
        field: &str,
        parse: impl FnOnce(&Value) -> Result<T, Invalid>,
    ) -> Option<T> {
        match self.fields.remove(field) {
            None => {
                self.fail(field, Invalid::new("missing", "Field required"));
                None
            }
            Some(value) => self.parse(field, &value, parse),
        }
    }

    /// A field that may be absent; when present it must not be `null`.
    pub fn optional<T>(
        &mut self,
        field: &str,
        parse: impl FnOnce(&Value) -> Result<T, Invalid>,
    ) -> Option<T> {
        let value = self.fields.remove(field)?;
        self.parse(field, &value, parse)
    }

    fn parse<T>(
        &mut self,
        field: &str,
        value: &Value,
        parse: impl FnOnce(&Value) -> Result<T, Invalid>,
    ) -> Option<T> {
        match parse(value) {
            Ok(parsed) => Some(parsed),
            Err(invalid) => {
                self.fail(field, invalid);
                None
            }
        }
    }

    /// Reports any field not consumed as `extra_forbidden`; returns the failures (at most
    /// [`MAX_SHOWN_ERRORS`], then a count of the rest).
    pub fn finish(mut self) -> Result<(), Vec<FieldError>> {
        let extra: Vec<String> = std::mem::take(&mut self.fields)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        for key in extra {
            // The key is client input too: keep it short and printable in the report.
            let shown: String = key.chars().filter(|c| !c.is_control()).take(64).collect();
            self.fail(
                &shown,
                Invalid::new("extra_forbidden", "Extra inputs are not permitted"),
            );
        }
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(summarize(self.errors, self.more))
        }
    }
}

/// A JSON string (no coercion from numbers, as pydantic's strict mode).
pub fn json_str(value: &Value) -> Result<&str, Invalid> {
    value
        .as_str()
        .ok_or_else(|| Invalid::new("string_type", "Input should be a valid string"))
}

/// A text field: trimmed, `min..=max` Unicode characters, no control characters.
pub fn bounded_text(value: &Value, min: usize, max: usize) -> Result<String, Invalid> {
    let trimmed = json_str(value)?.trim();
    if trimmed.chars().any(char::is_control) {
        return Err(Invalid::new(
            "string_pattern_mismatch",
            "Control characters are not allowed",
        ));
    }
    let len = trimmed.chars().count();
    if len < min {
        return Err(Invalid::new(
            "string_too_short",
            format!(
                "String should have at least {min} character{}",
                if min == 1 { "" } else { "s" }
            ),
        ));
    }
    if len > max {
        return Err(Invalid::new(
            "string_too_long",
            format!("String should have at most {max} characters"),
        ));
    }
    Ok(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reader(value: Value) -> ObjectReader {
        let Value::Object(map) = value else {
            panic!("test input must be an object")
        };
        ObjectReader::new(vec!["body".into()], map)
    }

    #[test]
    fn missing_required_field_is_reported_with_its_location() {
        let mut r = reader(json!({}));
        assert_eq!(r.required("name", |v| bounded_text(v, 1, 5)), None);
        let errors = r.finish().unwrap_err();
        assert_eq!(
            errors[0].loc,
            vec![LocPart::from("body"), LocPart::from("name")]
        );
        assert_eq!(errors[0].kind, "missing");
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let r = reader(json!({"is_admin": true}));
        let errors = r.finish().unwrap_err();
        assert_eq!(errors[0].kind, "extra_forbidden");
        assert_eq!(errors[0].loc[1], LocPart::from("is_admin"));
    }

    #[test]
    fn text_is_trimmed_and_bounded_in_characters_not_bytes() {
        assert_eq!(bounded_text(&json!("  Zürich "), 1, 6).unwrap(), "Zürich");
        assert_eq!(
            bounded_text(&json!("   "), 1, 6).unwrap_err().kind,
            "string_too_short"
        );
        assert_eq!(
            bounded_text(&json!("abcdefg"), 1, 6).unwrap_err().kind,
            "string_too_long"
        );
        assert_eq!(
            bounded_text(&json!("a\u{7}b"), 1, 6).unwrap_err().kind,
            "string_pattern_mismatch"
        );
        assert_eq!(
            bounded_text(&json!(5), 1, 6).unwrap_err().kind,
            "string_type"
        );
    }

    #[test]
    fn messages_never_contain_the_value() {
        let secret = "hunter2-secret-value";
        let err = bounded_text(&json!(secret), 1, 3).unwrap_err();
        assert!(!err.msg.contains(secret));
    }
}
