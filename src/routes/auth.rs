//! Registration and login (OAuth2 password grant, RFC 6749 §4.3).

use axum::{
    Json,
    extract::{DefaultBodyLimit, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    app::AppState,
    domain::{
        input::{ObjectReader, json_str},
        password::Password,
        user::User,
        username::Username,
        validation::{FieldError, Invalid},
    },
    error::{ApiError, DbResultExt, ErrorDetail, ValidationErrorBody},
    extract::{
        body::{ApiForm, JsonObject},
        client::ClientIp,
    },
    openapi::{NotJson, PayloadTooLarge, TooManyRequests},
};

/// The largest body `/auth/*` accepts: a username, a password and the OAuth2 form fields fit
/// many times over; anything bigger is refused before it is parsed.
pub const AUTH_BODY_LIMIT: usize = 4 * 1024;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .layer(DefaultBodyLimit::max(AUTH_BODY_LIMIT))
}

/// Body of `POST /auth/register` (documentation; parsing is in the handler).
#[derive(ToSchema)]
#[schema(as = UserCreate, example = json!({"username": "alice", "password": "plum-sandwich-at-noon"}))]
#[expect(dead_code, reason = "describes the request body for OpenAPI only")]
pub struct UserCreate {
    /// 3-64 characters of `A-Z a-z 0-9 _ . -`; stored lower-case, unique ignoring case.
    #[schema(min_length = 3, max_length = 64, pattern = "^[A-Za-z0-9_.-]+$")]
    username: String,
    /// PASSWORD_MIN_LENGTH (default 15) to 128 characters; not a common password and not
    /// containing the username.
    #[schema(min_length = 8, max_length = 128)]
    password: String,
}

/// Body of `POST /auth/token` (form-encoded, RFC 6749 §4.3). Only these fields are read;
/// others are ignored.
#[derive(Deserialize, ToSchema)]
#[schema(as = TokenRequest)]
pub struct TokenForm {
    #[schema(value_type = String, required = true, example = "alice")]
    username: Option<String>,
    #[schema(value_type = String, required = true, example = "plum-sandwich-at-noon", format = Password)]
    password: Option<String>,
    /// Must be `password` when present.
    #[schema(pattern = "^password$")]
    grant_type: Option<String>,
    /// Accepted and ignored.
    #[expect(
        dead_code,
        reason = "accepted for OAuth2 clients that send it; not yet honoured"
    )]
    scope: Option<String>,
}

/// An access token (RFC 6749 §5.1).
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"access_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIyIn0.sig", "token_type": "bearer", "expires_in": 1800}))]
pub struct Token {
    access_token: String,
    /// Always `bearer`.
    token_type: &'static str,
    /// Lifetime in seconds.
    expires_in: u64,
}

/// Create an account. Registration never creates an administrator.
#[utoipa::path(post, path = "/auth/register", tag = "Authentication",
    request_body = UserCreate,
    responses(
        (status = 201, description = "Account created", body = User),
        (status = 409, description = "Username taken (ignoring case)", body = ErrorDetail, example = json!({"detail": "Username already exists"})),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = NotJson),
        (status = 422, description = "Invalid input (e.g. common password, unknown field)", body = ValidationErrorBody,
            example = json!({"detail": [{"loc": ["body", "password"], "msg": "Password is on the list of commonly used or breached passwords", "type": "password_too_common"}]})),
        (status = 429, response = TooManyRequests),
    ))]
async fn register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    JsonObject(body): JsonObject,
) -> Result<(StatusCode, Json<User>), ApiError> {
    let decision = state
        .limiters
        .registrations
        .check(state.limiters.network(ip))
        .await;
    if !decision.allowed {
        tracing::warn!(event = "excess_rate_limit_exceeded", client_ip = %ip, limit = "registration", "registration refused");
        metrics::counter!("rate_limit_rejections_total", "limit" => "registration").increment(1);
        return Err(ApiError::RateLimited(decision));
    }
    let (username, password) = parse_registration(&state, body)?;
    let hash = state.hasher.hash(&password).await?;
    let user = state
        .db
        .insert_user(&username, &hash, false)
        .await
        .on_conflict("Username already exists")?;
    tracing::info!(event = "user_created", user_id = user.id, username = %user.username, client_ip = %ip, "account registered");
    Ok((StatusCode::CREATED, Json(user)))
}

fn parse_registration(
    state: &AppState,
    body: serde_json::Map<String, serde_json::Value>,
) -> Result<(Username, Password), ApiError> {
    let mut reader = ObjectReader::new(vec!["body".into()], body);
    let username = reader.required("username", Username::from_json);
    let raw_password = reader.required("password", |v| json_str(v).map(str::to_owned));
    let mut errors = reader.finish().err().unwrap_or_default();
    let password = raw_password.and_then(|raw| match state.policy.check(&raw, username.as_ref()) {
        Ok(p) => Some(p),
        Err(Invalid { kind, msg }) => {
            errors.push(FieldError::at("body", "password", kind, msg));
            None
        }
    });
    match (username, password) {
        (Some(u), Some(p)) if errors.is_empty() => Ok((u, p)),
        _ => Err(ApiError::Validation(errors)),
    }
}

/// Log in with username and password (OAuth2 password grant); returns a bearer token.
///
/// Failed attempts are throttled per account and per client address with growing waits; while
/// throttled every attempt, even a correct one, gets 429.
#[utoipa::path(post, path = "/auth/token", tag = "Authentication",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Logged in", body = Token,
            headers(("Cache-Control" = String, description = "no-store"), ("Pragma" = String, description = "no-cache"))),
        (status = 401, description = "Unknown user or wrong password (indistinguishable)", body = ErrorDetail,
            headers(("WWW-Authenticate" = String, description = "Bearer")),
            example = json!({"detail": "Incorrect username or password"})),
        (status = 413, response = PayloadTooLarge),
        (status = 415, description = "Not form-encoded", body = ErrorDetail, example = json!({"detail": "Unsupported media type: expected application/x-www-form-urlencoded"})),
        (status = 422, description = "Missing field, or password over 128 characters", body = ValidationErrorBody,
            example = json!({"detail": [{"loc": ["body", "password"], "msg": "Field required", "type": "missing"}]})),
        (status = 429, response = TooManyRequests),
    ))]
async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiForm(form): ApiForm<TokenForm>,
) -> Result<Response, ApiError> {
    let mut errors = Vec::new();
    for (name, value) in [("username", &form.username), ("password", &form.password)] {
        if value.is_none() {
            errors.push(FieldError::at("body", name, "missing", "Field required"));
        }
    }
    if form.grant_type.as_deref().is_some_and(|g| g != "password") {
        errors.push(FieldError::at(
            "body",
            "grant_type",
            "string_pattern_mismatch",
            "String should match pattern '^password$'",
        ));
    }
    let raw_username = form.username.as_deref().unwrap_or_default();
    if raw_username.chars().count() > 256 {
        errors.push(FieldError::at(
            "body",
            "username",
            "string_too_long",
            "String should have at most 256 characters",
        ));
    }
    // Checked before any hashing: a huge password costs nothing.
    let password = match Password::for_login(form.password.as_deref().unwrap_or_default()) {
        Ok(p) => Some(p),
        Err(Invalid { kind, msg }) => {
            errors.push(FieldError::at("body", "password", kind, msg));
            None
        }
    };
    let (Some(password), true) = (password, errors.is_empty()) else {
        return Err(ApiError::Validation(errors));
    };

    // Every submitted name is throttled the same way, whether or not it exists.
    let account = raw_username.to_lowercase();
    let attempt = match state.limiters.logins.begin(&account, ip).await {
        Ok(attempt) => attempt,
        Err(wait) => {
            tracing::warn!(event = "authn_login_lock", username = %account.escape_debug(), client_ip = %ip, retry_after = wait, "login throttled");
            metrics::counter!("auth_login_throttled_total").increment(1);
            return Err(ApiError::TooManyRequests {
                retry_after_secs: wait,
            });
        }
    };
    let credentials = match Username::parse(raw_username) {
        Ok(name) => state.db.credentials(&name).await?,
        Err(_) => None,
    };
    let (user, hash) = match credentials {
        Some((user, hash)) => (Some(user), Some(hash)),
        None => (None, None),
    };
    // An unknown user is checked against a dummy hash: same work, same answer, same time.
    let matched = state.hasher.verify(&password, hash.as_deref()).await?;
    let Some(user) = user.filter(|_| matched) else {
        state.limiters.logins.failed(attempt);
        tracing::warn!(event = "authn_login_fail", username = %account.escape_debug(), client_ip = %ip, "login failed");
        metrics::counter!("auth_login_failures_total").increment(1);
        return Err(ApiError::BadCredentials);
    };
    state.limiters.logins.succeeded(attempt).await;
    let access_token = state.tokens.issue(user.id)?;
    tracing::info!(event = "authn_login_success", user_id = user.id, username = %user.username, client_ip = %ip, "login");
    let body = Token {
        access_token,
        token_type: "bearer",
        expires_in: state.tokens.ttl().as_secs(),
    };
    let mut res = Json(body).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(res)
}
