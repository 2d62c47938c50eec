//! The one error type of the HTTP layer, and the extractors whose rejections use it.
//!
//! Every non-2xx answer the service gives is built here, so status, headers and body shape
//! (`{"detail": "..."}`, or FastAPI's list of field errors for 422) are decided in one place.

use axum::{
    Json,
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request},
    http::{HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// One element of a 422 `loc` path: an object key or an array index.
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
}

/// The body of every error except 422.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    #[schema(example = "Not authenticated")]
    pub detail: String,
}

/// The body of a 422.
#[derive(Debug, Serialize, ToSchema)]
pub struct ValidationErrorBody {
    pub detail: Vec<FieldError>,
}

/// Everything a request can fail with. The variant decides the status code, headers and body.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("malformed request: {0}")]
    BadRequest(&'static str),
    /// No credentials were sent.
    #[error("not authenticated")]
    NotAuthenticated,
    /// A token was sent but is not acceptable (RFC 6750 `invalid_token`).
    #[error("invalid token")]
    InvalidToken,
    #[error("incorrect username or password")]
    BadCredentials,
    #[error("not an administrator")]
    Forbidden,
    #[error("not found: {0}")]
    NotFound(&'static str),
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// A conflict whose message is built at run time (never from secrets).
    #[error("conflict: {0}")]
    ConflictDetail(String),
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("unsupported media type")]
    UnsupportedMediaType(&'static str),
    #[error("too many requests")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("service unavailable")]
    Unavailable { retry_after_secs: u64 },
    /// Anything unexpected. The cause is logged where the response is built and never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// A 422 with a single failure.
    pub fn field(source: &str, field: &str, kind: &'static str, msg: impl Into<String>) -> Self {
        ApiError::Validation(vec![FieldError::at(source, field, kind, msg)])
    }

    /// An unexpected failure; `context` says where, `err` why. Logged server-side only.
    pub fn internal(context: &str, err: impl std::fmt::Display) -> Self {
        ApiError::Internal(format!("{context}: {err}"))
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotAuthenticated | ApiError::InvalidToken | ApiError::BadCredentials => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) | ApiError::ConflictDetail(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn detail(&self) -> &str {
        match self {
            ApiError::Validation(_) => "Validation error",
            ApiError::BadRequest(msg) => msg,
            ApiError::NotAuthenticated => "Not authenticated",
            ApiError::InvalidToken => "Could not validate credentials",
            ApiError::BadCredentials => "Incorrect username or password",
            ApiError::Forbidden => "The user does not have administrative privileges",
            ApiError::NotFound(msg) | ApiError::Conflict(msg) => msg,
            ApiError::ConflictDetail(msg) => msg,
            ApiError::PayloadTooLarge => "Request body too large",
            ApiError::UnsupportedMediaType(msg) => msg,
            ApiError::TooManyRequests { .. } => "Too many requests",
            ApiError::Unavailable { .. } => "Service temporarily unavailable",
            ApiError::Internal(_) => "Internal Server Error",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = match &self {
            ApiError::Validation(errors) => {
                tracing::info!(
                    event = "input_validation_fail",
                    fields = ?errors.iter().map(|e| &e.loc).collect::<Vec<_>>(),
                    "request rejected by validation"
                );
                (
                    status,
                    Json(ValidationErrorBody {
                        detail: errors.clone(),
                    }),
                )
                    .into_response()
            }
            other => {
                if let ApiError::Internal(cause) = other {
                    tracing::error!(%cause, "internal error");
                }
                let body = ErrorDetail {
                    detail: other.detail().to_owned(),
                };
                (status, Json(body)).into_response()
            }
        };
        let headers = response.headers_mut();
        match self {
            ApiError::NotAuthenticated | ApiError::BadCredentials => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::InvalidToken => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer error="invalid_token""#),
                );
            }
            ApiError::TooManyRequests { retry_after_secs }
            | ApiError::Unavailable { retry_after_secs } => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(retry_after_secs.max(1)),
                );
            }
            _ => {}
        }
        response
    }
}

impl From<sqlx::Error> for ApiError {
    /// Connection-level failures mean the database is unreachable (503); everything else is a
    /// bug or an unexpected state (500). Constraint violations are mapped at their call sites.
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => {
                tracing::warn!(error = %err, "database unavailable");
                ApiError::Unavailable {
                    retry_after_secs: 5,
                }
            }
            _ => ApiError::internal("database", err),
        }
    }
}

/// Maps a unique-constraint violation to a 409 with `detail`; passes every other error on.
pub trait OnConflict<T> {
    fn on_conflict(self, detail: &'static str) -> Result<T, ApiError>;
}

impl<T> OnConflict<T> for Result<T, sqlx::Error> {
    fn on_conflict(self, detail: &'static str) -> Result<T, ApiError> {
        self.map_err(|err| match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => ApiError::Conflict(detail),
            _ => ApiError::from(err),
        })
    }
}

/// True when the request declares `media_type` (parameters such as `charset` allowed).
fn has_content_type(parts_headers: &axum::http::HeaderMap, media_type: &str) -> bool {
    parts_headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(media_type))
}

/// Reads the whole body, mapping an over-limit body to 413.
async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::BadRequest("Could not read the request body")
        }
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

/// An `application/x-www-form-urlencoded` body as ordered key/value pairs (415 otherwise).
pub struct FormPairs(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequest<S> for FormPairs {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !has_content_type(req.headers(), "application/x-www-form-urlencoded") {
            return Err(ApiError::UnsupportedMediaType(
                "Unsupported media type: expected application/x-www-form-urlencoded",
            ));
        }
        let bytes = read_body(req, state).await?;
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
            .map(FormPairs)
            .map_err(|_| ApiError::BadRequest("Malformed form body"))
    }
}

/// The query string as ordered key/value pairs; each endpoint parses the keys it knows.
pub struct QueryPairs(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str::<Vec<(String, String)>>(query)
            .map(QueryPairs)
            .map_err(|_| {
                ApiError::Validation(vec![FieldError::new(
                    vec!["query".into()],
                    "query_invalid",
                    "Malformed query string",
                )])
            })
    }
}
