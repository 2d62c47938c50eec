//! `POST /auth/token`: the OAuth2 password grant (RFC 6749 §4.3), which starts a session, and
//! the refresh grant (§6), which rotates the session's refresh token.

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, HeaderValue, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    app::AppState,
    auth::secrets::SecretKeys,
    db::sessions::{NewSession, Refresh, Session},
    domain::{
        audit::{Action, AuditContext, NewEntry},
        clock::unix_now,
        password::Password,
        scope::Scopes,
        user::User,
        username::Username,
        validation::{FieldError, Invalid},
    },
    error::{ApiError, ErrorDetail, OAuthError, ValidationErrorBody},
    extract::{body::ApiForm, client::Origin},
    openapi::{PayloadTooLarge, TooManyRequests},
};

/// Body of `POST /auth/token` (form-encoded). Only these fields are read; others are ignored.
#[derive(Deserialize, ToSchema)]
#[schema(as = TokenRequest, example = json!({"grant_type": "password", "username": "alice", "password": "plum sandwich at noon", "scope": "employees:read"}))]
pub struct TokenForm {
    /// `password` (the default) to log in, or `refresh_token` to exchange a refresh token.
    #[schema(nullable = false, pattern = "^(password|refresh_token)$")]
    grant_type: Option<String>,
    /// The password grant's user name.
    #[schema(nullable = false, max_length = 256, example = "alice")]
    username: Option<String>,
    /// The password grant's password.
    #[schema(nullable = false, max_length = 128, example = "plum sandwich at noon", format = Password)]
    password: Option<String>,
    /// The refresh grant's refresh token.
    #[schema(nullable = false)]
    refresh_token: Option<String>,
    /// Space-separated scopes to request (`employees:read`, `employees:write`,
    /// `users:admin`); a token gets those its user may hold. Without it: all of them.
    #[schema(
        nullable = false,
        pattern = "^ *(?:(?:employees:read|employees:write|users:admin) *)*$"
    )]
    scope: Option<String>,
    /// Accepted and ignored (OAuth2 clients send it).
    #[schema(nullable = false)]
    #[expect(
        dead_code,
        reason = "accepted so OAuth2 clients that send it are served"
    )]
    client_id: Option<String>,
    /// Accepted and ignored (OAuth2 clients send it).
    #[schema(nullable = false)]
    #[expect(
        dead_code,
        reason = "accepted so OAuth2 clients that send it are served"
    )]
    client_secret: Option<String>,
}

/// An access token and the refresh token of its session (RFC 6749 §5.1).
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"access_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIyIn0.sig", "token_type": "bearer", "expires_in": 1800,
    "refresh_token": "0x5uW7T1kX2v1mJ0m5Xq8yQ2b4V9zL3sN6pA8cD1eF7g", "refresh_expires_in": 604800, "scope": "employees:read"}))]
pub struct Token {
    access_token: String,
    /// Always `bearer`.
    token_type: &'static str,
    /// Lifetime of the access token, in seconds.
    expires_in: u64,
    /// Exchange it at this endpoint (`grant_type=refresh_token`) for a new pair; it works once.
    refresh_token: String,
    /// Seconds until the refresh token stops working if unused.
    refresh_expires_in: i64,
    /// The scopes the access token carries, space-separated.
    scope: String,
}

/// Log in (OAuth2 password grant) or refresh (refresh-token grant); returns a bearer token and
/// a refresh token.
///
/// Failed logins are throttled per account and per client address with growing waits; while
/// throttled every attempt, even a correct one, gets 429. A refresh token works once: the
/// answer carries its successor. Presenting one already exchanged revokes its session (a copy
/// was used), unless it comes back within a few seconds (a client's concurrent refreshes),
/// which then get the same successor.
#[utoipa::path(post, path = "/auth/token", tag = "Authentication",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Logged in, or refreshed", body = Token,
            headers(("Cache-Control" = String, description = "no-store"), ("Pragma" = String, description = "no-cache"))),
        (status = 400, description = "grant_type=refresh_token: the refresh token is unknown, expired, already exchanged or its session ended (RFC 6749 §5.2 `invalid_grant`)",
            body = OAuthError, example = json!({"detail": "Invalid or expired refresh token", "error": "invalid_grant"})),
        (status = 401, description = "Unknown user, wrong password or disabled account (indistinguishable)", body = ErrorDetail,
            headers(("WWW-Authenticate" = String, description = "Bearer")),
            example = json!({"detail": "Incorrect username or password"})),
        (status = 413, response = PayloadTooLarge),
        (status = 415, description = "Not form-encoded", body = ErrorDetail, example = json!({"detail": "Unsupported media type: expected application/x-www-form-urlencoded"})),
        (status = 422, description = "Missing field, password over 128 characters, unknown grant type or scope", body = ValidationErrorBody,
            example = json!({"detail": [{"loc": ["body", "password"], "msg": "Field required", "type": "missing"}]})),
        (status = 429, response = TooManyRequests),
    ))]
pub(super) async fn token(
    State(state): State<AppState>,
    origin: Origin,
    headers: HeaderMap,
    ApiForm(form): ApiForm<TokenForm>,
) -> Result<Response, ApiError> {
    let issued = match form.grant_type.as_deref() {
        None | Some("password") => password_grant(&state, &origin, &headers, form).await?,
        Some("refresh_token") => refresh_grant(&state, &origin, form).await?,
        Some(_) => {
            return Err(ApiError::field(
                "body",
                "grant_type",
                "string_pattern_mismatch",
                "String should match pattern '^(password|refresh_token)$'",
            ));
        }
    };
    let mut res = Json(issued).into_response();
    let headers = res.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(res)
}

/// The scopes asked for in `raw` (422 at `body.scope` for a name this server does not know);
/// `None` when no scope was asked for.
fn requested_scopes(raw: Option<&str>) -> Result<Option<Scopes>, ApiError> {
    let Some(raw) = raw.filter(|r| !r.trim().is_empty()) else {
        return Ok(None);
    };
    Scopes::parse(raw).map(Some).map_err(|_| {
        ApiError::field(
            "body",
            "scope",
            "literal_error",
            "Scopes should be among 'employees:read', 'employees:write' and 'users:admin'",
        )
    })
}

async fn password_grant(
    state: &AppState,
    origin: &Origin,
    headers: &HeaderMap,
    form: TokenForm,
) -> Result<Token, ApiError> {
    let ip = origin.client_ip;
    let mut errors = Vec::new();
    for (name, value) in [("username", &form.username), ("password", &form.password)] {
        if value.is_none() {
            errors.push(FieldError::at("body", name, "missing", "Field required"));
        }
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
    let requested = match requested_scopes(form.scope.as_deref()) {
        Ok(scopes) => scopes,
        Err(ApiError::Validation(mut e)) => {
            errors.append(&mut e);
            None
        }
        Err(other) => return Err(other),
    };
    let (Some(password), true) = (password, errors.is_empty()) else {
        return Err(ApiError::Validation(errors));
    };

    let user = check_password(state, ip, &origin.anonymous(), raw_username, &password).await?;
    let allowed = Scopes::allowed_for(user.is_admin);
    let scopes = requested.map_or(allowed, |asked| asked.intersect(allowed));
    let refresh_token = SecretKeys::new_refresh_token();
    // One clock reading for the session's ends and the response's `refresh_expires_in`, so a
    // second boundary between them cannot make a fresh login say 604799.
    let now = unix_now();
    let session = state
        .db
        .create_session(
            NewSession {
                user_id: user.id,
                scopes,
                client_ip: ip.to_string(),
                user_agent: user_agent(headers),
                refresh_hash: SecretKeys::refresh_hash(&refresh_token),
            },
            now,
            state.session_lifetimes(),
            &origin.anonymous(),
        )
        .await?;
    tracing::info!(event = "authn_login_success", user_id = user.id, username = %user.username, session_id = %session.id, client_ip = %ip, "login");
    issue(state, &user, &session, scopes, refresh_token, now)
}

/// The user whose password this is, throttled: every submitted name is throttled the same
/// way, whether or not it exists, and an unknown name or a disabled account is checked against
/// a hash all the same (same work, same answer, same time). A failure is recorded in the audit
/// trail as `user.login_failed` under `ctx` (the name tried is not: it may be a password typed
/// in the wrong field).
pub(crate) async fn check_password(
    state: &AppState,
    ip: std::net::IpAddr,
    ctx: &AuditContext,
    raw_username: &str,
    password: &Password,
) -> Result<User, ApiError> {
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
    let matched = state.hasher.verify(password, hash.as_deref()).await?;
    let target = user.as_ref().map(|u| u.id);
    let Some(user) = user.filter(|u| matched && u.is_active) else {
        state.limiters.logins.failed(attempt);
        let entry = match target {
            Some(id) => NewEntry::new(Action::UserLoginFailed, id),
            None => NewEntry::untargeted(Action::UserLoginFailed),
        };
        state.db.record(ctx, vec![entry]).await?;
        tracing::warn!(event = "authn_login_fail", username = %account.escape_debug(), client_ip = %ip, "login failed");
        metrics::counter!("auth_login_failures_total").increment(1);
        return Err(ApiError::BadCredentials);
    };
    state.limiters.logins.succeeded(attempt).await;
    Ok(user)
}

async fn refresh_grant(
    state: &AppState,
    origin: &Origin,
    form: TokenForm,
) -> Result<Token, ApiError> {
    let ip = origin.client_ip;
    let Some(presented) = form.refresh_token.filter(|t| !t.is_empty()) else {
        return Err(ApiError::field(
            "body",
            "refresh_token",
            "missing",
            "Field required",
        ));
    };
    let requested = requested_scopes(form.scope.as_deref())?;
    // Refresh tokens are 256-bit random: nothing to throttle, but refuse absurd input.
    if presented.len() > 128 {
        return Err(ApiError::InvalidGrant);
    }
    let successor = state.secrets.successor_of(&presented);
    let now = unix_now();
    let outcome = state
        .db
        .refresh_session(
            &SecretKeys::refresh_hash(&presented),
            &SecretKeys::refresh_hash(&successor),
            now,
            state.session_lifetimes(),
            &origin.anonymous(),
        )
        .await?;
    let (session, user, event) = match outcome {
        Refresh::Rotated { session, user } => (session, user, "rotated"),
        Refresh::Replayed { session, user } => (session, user, "replayed within the grace window"),
        Refresh::Reused {
            session_id,
            user_id,
        } => {
            tracing::warn!(event = "authn_token_reuse", user_id, session_id = %session_id, client_ip = %ip, "a refresh token came back after it was exchanged: session revoked");
            return Err(ApiError::InvalidGrant);
        }
        Refresh::Invalid => {
            tracing::info!(event = "authn_token_refresh_fail", client_ip = %ip, "unusable refresh token");
            return Err(ApiError::InvalidGrant);
        }
    };
    // A refresh may narrow the scopes, never widen them (RFC 6749 §6).
    let granted = session.scopes();
    let scopes = match requested {
        None => granted,
        Some(asked) if asked.intersect(granted) == asked => asked,
        Some(_) => {
            return Err(ApiError::field(
                "body",
                "scope",
                "value_error",
                "A refresh cannot ask for scopes the session was not granted",
            ));
        }
    };
    tracing::info!(event = "authn_token_refresh", user_id = user.id, session_id = %session.id, client_ip = %ip, outcome = event, "refresh");
    issue(state, &user, &session, scopes, successor, now)
}

/// The token response for `session`, as of `now` (the time its ends were computed from).
fn issue(
    state: &AppState,
    user: &User,
    session: &Session,
    scopes: Scopes,
    refresh_token: String,
    now: i64,
) -> Result<Token, ApiError> {
    Ok(Token {
        access_token: state.tokens.issue(user.id, session.id, scopes)?,
        token_type: "bearer",
        expires_in: state.tokens.ttl().as_secs(),
        refresh_token,
        refresh_expires_in: (session.refresh_expires_at() - now).max(0),
        scope: scopes.to_string(),
    })
}

/// The client's `User-Agent`, printable and at most 256 characters, for its session list.
fn user_agent(headers: &HeaderMap) -> String {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(256)
        .collect()
}
