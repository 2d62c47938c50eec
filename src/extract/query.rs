//! Query parameters into a typed struct, with FastAPI's 422 for anything else.

use std::collections::HashMap;

use axum::{extract::FromRequestParts, http::request::Parts};
use serde::de::DeserializeOwned;
use utoipa::{IntoParams, openapi::path::ParameterIn};

use crate::{domain::validation::FieldError, error::ApiError};

/// The query string as `T`. `T` names (and, through `IntoParams`, documents) every parameter
/// the endpoint takes; any other parameter is a 422 `extra_forbidden`, so a typo never
/// silently returns an unfiltered list. A repeated parameter keeps its last value. `T`'s fields
/// are raw text: its domain parser reports every bad value at once, as FastAPI does.
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned + IntoParams,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let malformed = || {
            ApiError::Validation(vec![FieldError::new(
                vec!["query".into()],
                "query_invalid",
                "Malformed query string",
            )])
        };
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(parts.uri.query().unwrap_or("")).map_err(|_| malformed())?;
        let known: Vec<String> = T::into_params(|| Some(ParameterIn::Query))
            .into_iter()
            .map(|p| p.name)
            .collect();
        let unknown: Vec<FieldError> = pairs
            .iter()
            .filter(|(key, _)| !known.contains(key))
            .map(|(key, _)| unknown_parameter(key))
            .collect();
        if !unknown.is_empty() {
            return Err(ApiError::Validation(unknown));
        }
        // Last value wins; then the form decoder fills `T` (it knows how to make `Option`s).
        let values: HashMap<String, String> = pairs.into_iter().collect();
        let deduplicated = serde_urlencoded::to_string(&values).map_err(|_| malformed())?;
        serde_urlencoded::from_str(&deduplicated)
            .map(ApiQuery)
            .map_err(|_| malformed())
    }
}

/// An unknown parameter, named (printable, at most 64 characters: it is client input).
fn unknown_parameter(key: &str) -> FieldError {
    let shown: String = key.chars().filter(|c| !c.is_control()).take(64).collect();
    FieldError::at(
        "query",
        &shown,
        "extra_forbidden",
        "Unknown query parameter",
    )
}
