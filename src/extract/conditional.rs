//! The conditional request headers (RFC 9110 §13.1): `If-Match` and `If-None-Match`, parsed
//! into tag lists. A header that is not a valid list is a 422 at `header.if-match` /
//! `header.if-none-match`.

use axum::{extract::FromRequestParts, http::request::Parts};

use crate::{domain::version::TagList, error::ApiError};

fn read(parts: &Parts, name: &'static str) -> Result<Option<TagList>, ApiError> {
    let mut values = parts.headers.get_all(name).iter().peekable();
    if values.peek().is_none() {
        return Ok(None);
    }
    // Several fields of the same name are one comma-separated list (RFC 9110 §5.3).
    let joined = values
        .map(|v| v.to_str().map(str::to_owned))
        .collect::<Result<Vec<_>, _>>()
        .ok()
        .map(|v| v.join(","));
    joined
        .as_deref()
        .and_then(TagList::parse)
        .map(Some)
        .ok_or_else(|| {
            ApiError::field(
                "header",
                name,
                "value_error",
                "Input should be * or a list of entity tags, such as \"123\"",
            )
        })
}

/// `If-Match`, when sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfMatch(pub Option<TagList>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        read(parts, "if-match").map(IfMatch)
    }
}

/// `If-None-Match`, when sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfNoneMatch(pub Option<TagList>);

impl<S: Send + Sync> FromRequestParts<S> for IfNoneMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        read(parts, "if-none-match").map(IfNoneMatch)
    }
}
