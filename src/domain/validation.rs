//! Why input was refused: one value ([`Invalid`]) or a located field ([`FieldError`]), in
//! FastAPI's vocabulary. The HTTP layer turns a list of [`FieldError`]s into a 422 body; the
//! CLI prints them as lines. Messages never contain the submitted value.

use serde::Serialize;
use utoipa::ToSchema;

/// Why a single value was rejected: the pydantic-style type and a message. Never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub kind: &'static str,
    pub msg: String,
}

impl Invalid {
    pub fn new(kind: &'static str, msg: impl Into<String>) -> Self {
        Self {
            kind,
            msg: msg.into(),
        }
    }
}

/// One element of a `loc` path: an object key or an array index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum LocPart {
    Key(String),
    Index(usize),
}

impl From<&str> for LocPart {
    fn from(key: &str) -> Self {
        LocPart::Key(key.to_owned())
    }
}

/// One validation failure, in FastAPI's shape. `msg` and `kind` never contain the submitted
/// value, so a password in a bad request is never echoed back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// Where the bad input is: starts with `body`, `query`, `path` or `header`, then field
    /// names and (for arrays and CSV lines) indexes.
    #[schema(example = json!(["body", "emp_dob"]))]
    pub loc: Vec<LocPart>,
    /// A human-readable reason.
    #[schema(example = "Date of birth cannot be in the future")]
    pub msg: String,
    /// A machine-readable reason (pydantic's error type names where one fits).
    #[serde(rename = "type")]
    #[schema(example = "value_error")]
    pub kind: &'static str,
}

impl FieldError {
    /// A failure at `loc` (e.g. `["body", "emp_id"]`).
    pub fn new(loc: Vec<LocPart>, kind: &'static str, msg: impl Into<String>) -> Self {
        Self {
            loc,
            msg: msg.into(),
            kind,
        }
    }

    /// A failure of a named field inside `source` (`body`, `query`, `path`).
    pub fn at(source: &str, field: &str, kind: &'static str, msg: impl Into<String>) -> Self {
        Self::new(vec![source.into(), field.into()], kind, msg)
    }

    /// The location as dotted text (`body.3.emp_dob`), for command-line messages.
    pub fn loc_text(&self) -> String {
        self.loc
            .iter()
            .map(|p| match p {
                LocPart::Key(k) => k.clone(),
                LocPart::Index(i) => i.to_string(),
            })
            .collect::<Vec<_>>()
            .join(".")
    }
}

/// The most failures one answer lists (a 422 body, a log line); the rest are counted.
pub const MAX_SHOWN_ERRORS: usize = 20;

/// `errors` cut to [`MAX_SHOWN_ERRORS`], followed, when any were left out (`more` already left
/// out by the caller, plus those cut here), by one entry saying how many.
pub fn summarize(mut errors: Vec<FieldError>, more: usize) -> Vec<FieldError> {
    let summarized = errors.len() == MAX_SHOWN_ERRORS + 1
        && errors.last().is_some_and(|e| e.kind == "too_many_errors");
    if summarized && more == 0 {
        return errors;
    }
    let cut = errors.len().saturating_sub(MAX_SHOWN_ERRORS);
    let left_out = more + cut;
    if left_out == 0 {
        return errors;
    }
    let at = errors
        .first()
        .and_then(|e| e.loc.first().cloned())
        .unwrap_or_else(|| "body".into());
    errors.truncate(MAX_SHOWN_ERRORS);
    errors.push(FieldError::new(
        vec![at],
        "too_many_errors",
        format!("and {left_out} more errors not shown"),
    ));
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(i: usize) -> FieldError {
        FieldError::at(
            "body",
            &format!("f{i}"),
            "extra_forbidden",
            "Extra inputs are not permitted",
        )
    }

    #[test]
    fn at_most_twenty_errors_are_listed_then_a_count() {
        let shown = summarize((0..500).map(error).collect(), 0);
        assert_eq!(shown.len(), MAX_SHOWN_ERRORS + 1);
        assert_eq!(shown[MAX_SHOWN_ERRORS].msg, "and 480 more errors not shown");
        assert_eq!(summarize((0..3).map(error).collect(), 0).len(), 3);
        assert_eq!(
            summarize(shown.clone(), 0),
            shown,
            "a summarized list stays as it is"
        );
        assert_eq!(
            summarize((0..3).map(error).collect(), 7)[3].msg,
            "and 7 more errors not shown"
        );
    }
}
