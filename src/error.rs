//! The one error type of the HTTP layer.
//!
//! Every non-2xx answer the service gives is built here, so status, headers and body shape
//! (`{"detail": "..."}`, or FastAPI's list of field errors for 422) are decided in one place.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    auth, db,
    domain::{
        scope::Scope,
        validation::{FieldError, summarize},
    },
    rate_limit::Decision,
};

/// The body of every error except 422.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    #[schema(example = "Not authenticated")]
    pub detail: String,
}

/// The body of an OAuth 2.0 error at the token endpoint: FastAPI's `detail` and RFC 6749's
/// `error` code.
#[derive(Debug, Serialize, ToSchema)]
pub struct OAuthError {
    pub detail: String,
    /// The RFC 6749 §5.2 error code, e.g. `invalid_grant`.
    pub error: String,
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
    /// A refresh token that is unknown, already exchanged, or whose session ended (RFC 6749
    /// §5.2 `invalid_grant`).
    #[error("invalid grant")]
    InvalidGrant,
    #[error("not an administrator")]
    Forbidden,
    /// The credential does not carry the scope the operation needs (RFC 6750 §3.1).
    #[error("insufficient scope")]
    InsufficientScope(Scope),
    /// An API key was used where only a login session may act (its account, its sessions,
    /// other keys), so a leaked key cannot make itself permanent or take the account over.
    #[error("a login session is required")]
    SessionRequired,
    #[error("not found: {0}")]
    NotFound(&'static str),
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// A conflict whose message is built at run time (never from secrets).
    #[error("conflict: {0}")]
    ConflictDetail(String),
    /// `If-Match` named another version (RFC 9110 §13.1.1); carries the current strong ETag.
    #[error("precondition failed")]
    PreconditionFailed { etag: String },
    /// A request with the same `Idempotency-Key` is still running; retry after this many
    /// seconds (draft-ietf-httpapi-idempotency-key-header §2.7).
    #[error("idempotency key in use")]
    IdempotencyKeyInUse { retry_after_secs: u64 },
    /// `REQUIRE_IF_MATCH` is on and the write came without `If-Match` (RFC 6585 §3).
    #[error("precondition required")]
    PreconditionRequired,
    #[error("payload too large")]
    PayloadTooLarge,
    /// The request (or its body) did not arrive in time.
    #[error("request timed out")]
    RequestTimeout,
    #[error("unsupported media type")]
    UnsupportedMediaType(&'static str),
    /// Throttled (login attempts): retry after this many seconds.
    #[error("too many requests")]
    TooManyRequests { retry_after_secs: u64 },
    /// Over a rate-limit budget; the answer reports the budget (RateLimit headers).
    #[error("rate limited")]
    RateLimited(Decision),
    #[error("service unavailable")]
    Unavailable { retry_after_secs: u64 },
    /// The database has no room for a write; reads go on. An operator must free space.
    #[error("database full")]
    StorageFull,
    /// The database accepts no writes (opened read-only, a read-only disk, a standby); reads
    /// go on.
    #[error("database read-only")]
    StorageReadOnly,
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
            ApiError::BadRequest(_) | ApiError::InvalidGrant => StatusCode::BAD_REQUEST,
            ApiError::NotAuthenticated | ApiError::InvalidToken | ApiError::BadCredentials => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::Forbidden | ApiError::InsufficientScope(_) | ApiError::SessionRequired => {
                StatusCode::FORBIDDEN
            }
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_)
            | ApiError::ConflictDetail(_)
            | ApiError::IdempotencyKeyInUse { .. } => StatusCode::CONFLICT,
            ApiError::PreconditionFailed { .. } => StatusCode::PRECONDITION_FAILED,
            ApiError::PreconditionRequired => StatusCode::PRECONDITION_REQUIRED,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooManyRequests { .. } | ApiError::RateLimited(_) => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::Unavailable { .. } | ApiError::StorageFull | ApiError::StorageReadOnly => {
                StatusCode::SERVICE_UNAVAILABLE
            }
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
            ApiError::InvalidGrant => "Invalid or expired refresh token",
            ApiError::Forbidden => "The user does not have administrative privileges",
            ApiError::InsufficientScope(_) => "The credential does not carry the scope this needs",
            ApiError::SessionRequired => "This needs a login session; API keys cannot do it",
            ApiError::NotFound(msg) | ApiError::Conflict(msg) => msg,
            ApiError::ConflictDetail(msg) => msg,
            ApiError::IdempotencyKeyInUse { .. } => {
                "A request with this Idempotency-Key is still running: retry when it has finished"
            }
            ApiError::PreconditionFailed { .. } => {
                "The employee was changed since you read it: read it again, then retry with its new ETag"
            }
            ApiError::PreconditionRequired => {
                "This request needs If-Match with the ETag from a GET of the employee"
            }
            ApiError::PayloadTooLarge => "Request body too large",
            ApiError::RequestTimeout => "Request timed out",
            ApiError::UnsupportedMediaType(msg) => msg,
            ApiError::TooManyRequests { .. } | ApiError::RateLimited(_) => "Too many requests",
            ApiError::Unavailable { .. } => "Service temporarily unavailable",
            ApiError::StorageFull => {
                "The database is full: changes cannot be stored until space is freed; reads still work"
            }
            ApiError::StorageReadOnly => {
                "The database is read-only: changes cannot be stored; reads still work"
            }
            ApiError::Internal(_) => "Internal Server Error",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = match &self {
            ApiError::Validation(errors) => {
                // At most MAX_SHOWN_ERRORS entries, in the body and in the log line alike.
                let errors = summarize(errors.clone(), 0);
                tracing::info!(
                    event = "input_validation_fail",
                    fields = ?errors.iter().map(|e| &e.loc).collect::<Vec<_>>(),
                    "request rejected by validation"
                );
                (status, Json(ValidationErrorBody { detail: errors })).into_response()
            }
            ApiError::InvalidGrant => {
                // RFC 6749 §5.2 clients read `error`; FastAPI clients read `detail`.
                let body = OAuthError {
                    detail: self.detail().to_owned(),
                    error: "invalid_grant".to_owned(),
                };
                (status, Json(body)).into_response()
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
            | ApiError::Unavailable { retry_after_secs }
            | ApiError::IdempotencyKeyInUse { retry_after_secs } => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(retry_after_secs.max(1)),
                );
            }
            ApiError::StorageFull | ApiError::StorageReadOnly => {
                // Not a blip: space or a writable database must come back first.
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(STORAGE_RETRY_AFTER_SECS),
                );
            }
            ApiError::PreconditionFailed { etag } => {
                if let Ok(value) = HeaderValue::from_str(&etag) {
                    headers.insert(header::ETAG, value);
                }
            }
            ApiError::InsufficientScope(scope) => {
                if let Ok(value) = HeaderValue::from_str(&format!(
                    r#"Bearer error="insufficient_scope", scope="{}""#,
                    scope.as_str()
                )) {
                    headers.insert(header::WWW_AUTHENTICATE, value);
                }
            }
            ApiError::RateLimited(decision) => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(decision.retry_after_secs.max(1)),
                );
                insert_rate_limit_headers(headers, &decision);
            }
            _ => {}
        }
        response
    }
}

/// The `Retry-After` of a write refused by a full or read-only database.
const STORAGE_RETRY_AFTER_SECS: u64 = 60;

/// The RateLimit fields of draft-ietf-httpapi-ratelimit-headers-06 for `decision`.
pub fn insert_rate_limit_headers(headers: &mut axum::http::HeaderMap, decision: &Decision) {
    headers.insert("ratelimit-limit", HeaderValue::from(decision.limit));
    headers.insert("ratelimit-remaining", HeaderValue::from(decision.remaining));
    headers.insert("ratelimit-reset", HeaderValue::from(decision.reset_secs));
    if let Ok(policy) =
        HeaderValue::from_str(&format!("{};w={}", decision.limit, decision.window_secs))
    {
        headers.insert("ratelimit-policy", policy);
    }
}

impl From<auth::Error> for ApiError {
    fn from(err: auth::Error) -> Self {
        ApiError::internal("authentication", err)
    }
}

impl From<db::Error> for ApiError {
    /// An unavailable, full or read-only database is a 503 with Retry-After (the last two
    /// say so in `detail`); everything else is a bug or an unexpected state (500). Conflicts and missing rows are mapped at their call sites,
    /// where their meaning is known; unmapped, they are internal errors too.
    fn from(err: db::Error) -> Self {
        match err {
            db::Error::Unavailable(cause) => {
                tracing::warn!(%cause, "database unavailable");
                ApiError::Unavailable {
                    retry_after_secs: 5,
                }
            }
            db::Error::TimedOut(cause) => {
                tracing::warn!(%cause, "database statement cancelled");
                ApiError::Unavailable {
                    retry_after_secs: 1,
                }
            }
            db::Error::Full(cause) => {
                tracing::error!(%cause, "database full: a write was refused");
                ApiError::StorageFull
            }
            db::Error::ReadOnly(cause) => {
                tracing::warn!(%cause, "database read-only: a write was refused");
                ApiError::StorageReadOnly
            }
            other => ApiError::internal("database", other),
        }
    }
}

/// Maps storage outcomes whose meaning depends on the call site.
pub trait DbResultExt<T> {
    /// A unique-constraint violation becomes a 409 with `detail`.
    fn on_conflict(self, detail: &'static str) -> Result<T, ApiError>;
    /// A missing row becomes a 404 with `detail`.
    fn on_not_found(self, detail: &'static str) -> Result<T, ApiError>;
}

impl<T> DbResultExt<T> for Result<T, db::Error> {
    fn on_conflict(self, detail: &'static str) -> Result<T, ApiError> {
        self.map_err(|err| match err {
            db::Error::Conflict => ApiError::Conflict(detail),
            other => ApiError::from(other),
        })
    }

    fn on_not_found(self, detail: &'static str) -> Result<T, ApiError> {
        self.map_err(|err| match err {
            db::Error::NotFound => ApiError::NotFound(detail),
            other => ApiError::from(other),
        })
    }
}
