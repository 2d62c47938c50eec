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
