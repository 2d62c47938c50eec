//! Request bodies: a JSON object and a form, each checking its media type first and
//! answering every problem with an [`ApiError`].

use std::collections::HashMap;

use axum::{
    body::Bytes,
    extract::{FromRequest, Request},
    http::{HeaderMap, StatusCode, header},
};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::{domain::validation::FieldError, error::ApiError};

/// True when the request declares `media_type` (parameters such as `charset` allowed).
pub fn has_content_type(parts_headers: &HeaderMap, media_type: &str) -> bool {
    parts_headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(media_type))
}

/// Reads the whole body: 413 over the body limit, 408 past the body deadline (a client
/// trickling its body), 400 for anything else that breaks the transfer.
pub(crate) async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::PayloadTooLarge;
        }
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&rejection);
        while let Some(err) = cause {
            if err.is::<tower_http::timeout::TimeoutError>() {
                return ApiError::RequestTimeout;
            }
            cause = err.source();
        }
        ApiError::BadRequest("Could not read the request body")
    })
}

/// A JSON object body. The media type must be `application/json` (else 415); malformed JSON
/// or a non-object gives a 422 naming the problem without echoing the input.
pub struct JsonObject(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !has_content_type(req.headers(), "application/json") {
            return Err(ApiError::UnsupportedMediaType(
                "Unsupported media type: expected application/json",
            ));
        }
        let bytes = read_body(req, state).await?;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => Ok(JsonObject(map)),
            Ok(_) => Err(ApiError::Validation(vec![FieldError::new(
                vec!["body".into()],
                "model_attributes_type",
                "Input should be a valid dictionary or object",
            )])),
            Err(_) => Err(ApiError::Validation(vec![FieldError::new(
                vec!["body".into()],
                "json_invalid",
                "JSON decode error",
            )])),
        }
    }
}

/// An `application/x-www-form-urlencoded` body as `T` (415 for another media type). Parameters
/// `T` does not name are ignored (OAuth 2.0 forms may carry extensions); a repeated one keeps
/// its last value. A request with no body and no media type is an empty form, so a bare POST
/// gets the 422 naming the missing fields, as FastAPI answers. Only `T`'s fields are kept past
/// parsing: nothing else of the body is held while the request waits (throttling, hashing).
pub struct ApiForm<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiForm<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let declared = req.headers().contains_key(header::CONTENT_TYPE);
        if declared && !has_content_type(req.headers(), "application/x-www-form-urlencoded") {
            return Err(ApiError::UnsupportedMediaType(
                "Unsupported media type: expected application/x-www-form-urlencoded",
            ));
        }
        let bytes = read_body(req, state).await?;
        if !declared && !bytes.is_empty() {
            return Err(ApiError::UnsupportedMediaType(
                "Unsupported media type: expected application/x-www-form-urlencoded",
            ));
        }
        let malformed = || ApiError::BadRequest("Malformed form body");
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_bytes(&bytes).map_err(|_| malformed())?;
        let last: HashMap<String, String> = pairs.into_iter().collect();
        let form = serde_urlencoded::to_string(&last).map_err(|_| malformed())?;
        serde_urlencoded::from_str(&form)
            .map(ApiForm)
            .map_err(|_| malformed())
    }
}

/// The body of a bulk import: CSV (`text/csv`) or a JSON array (`application/json`), by its
/// declared media type (415 for anything else), read whole (413 over the body limit).
pub enum ImportBody {
    Csv(Bytes),
    Json(Bytes),
}

impl<S: Send + Sync> FromRequest<S> for ImportBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let wrap: fn(Bytes) -> ImportBody = if has_content_type(req.headers(), "text/csv") {
            ImportBody::Csv
        } else if has_content_type(req.headers(), "application/json") {
            ImportBody::Json
        } else {
            return Err(ApiError::UnsupportedMediaType(
                "Unsupported media type: expected text/csv or application/json",
            ));
        };
        read_body(req, state).await.map(wrap)
    }
}
