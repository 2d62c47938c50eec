//! The caller's own account: who they are, where they are logged in, their password.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    app::AppState,
    domain::{
        audit::{Action, NewEntry},
        clock::{rfc3339, unix_now},
        input::{ObjectReader, json_str},
        password::Password,
        user::User,
        validation::{FieldError, Invalid},
    },
    error::{ApiError, DbResultExt, ErrorDetail, ValidationErrorBody},
    extract::{
        auth::{AuthUser, SessionUser},
        body::JsonObject,
        client::Origin,
    },
    openapi::{NotJson, SessionRequired, TooManyRequests, Unauthorized},
    routes::auth::check_password,
};

/// The account the credential belongs to.
#[utoipa::path(get, path = "/users/me", tag = "Users",
    security(("OAuth2PasswordBearer" = []), ("ApiKey" = [])),
    responses(
        (status = 200, description = "The account", body = User),
        (status = 401, response = Unauthorized),
    ))]
pub(super) async fn me(AuthUser(principal): AuthUser) -> Json<User> {
    Json(principal.user)
}

/// A live session of the account (never its tokens).
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": "9b2f4c1e-6a4d-4b8e-9c55-2f0d1e7a3b10", "created_at": "2026-12-02T08:15:00Z",
    "last_used_at": "2026-12-02T09:40:12Z", "expires_at": "2026-12-09T09:40:12Z", "client_ip": "203.0.113.7",
    "user_agent": "curl/8.5.0", "current": true}))]
pub(super) struct SessionRead {
    id: Uuid,
    /// When the login happened (RFC 3339, UTC).
    #[schema(format = DateTime)]
    created_at: String,
    /// The login or last refresh.
    #[schema(format = DateTime)]
    last_used_at: String,
    /// When the session ends unless refreshed before.
    #[schema(format = DateTime)]
    expires_at: String,
    client_ip: String,
    user_agent: String,
    /// The session of the token this request came with.
    current: bool,
}

/// Where the account is logged in: its live sessions, newest first.
#[utoipa::path(get, path = "/users/me/sessions", tag = "Users",
    security(("OAuth2PasswordBearer" = [])),
    responses(
        (status = 200, description = "The live sessions", body = Vec<SessionRead>),
        (status = 401, response = Unauthorized),
        (status = 403, response = SessionRequired),
    ))]
pub(super) async fn sessions(
    State(state): State<AppState>,
    SessionUser(principal): SessionUser,
) -> Result<Json<Vec<SessionRead>>, ApiError> {
    let sessions = state
        .db
        .user_sessions(principal.user.id, unix_now())
        .await?;
    Ok(Json(
        sessions
            .into_iter()
            .map(|s| SessionRead {
                current: principal.session_id == Some(s.id),
                expires_at: rfc3339(s.refresh_expires_at()),
                created_at: rfc3339(s.created_at),
                last_used_at: rfc3339(s.last_used_at),
                id: s.id,
                client_ip: s.client_ip,
                user_agent: s.user_agent,
            })
            .collect(),
    ))
}

/// End one of the account's sessions: its tokens stop working at once.
#[utoipa::path(delete, path = "/users/me/sessions/{id}", tag = "Users",
    security(("OAuth2PasswordBearer" = [])),
    params(("id" = Uuid, Path, description = "The session's id")),
    responses(
        (status = 204, description = "The session is ended"),
        (status = 401, response = Unauthorized),
        (status = 403, response = SessionRequired),
        (status = 404, description = "No such live session of this account", body = ErrorDetail,
            example = json!({"detail": "Session not found"})),
        (status = 422, description = "Not a session id", body = ValidationErrorBody,
            example = json!({"detail": [{"loc": ["path", "id"], "msg": "Input should be a valid UUID", "type": "uuid_parsing"}]})),
    ))]
pub(super) async fn end_session(
    State(state): State<AppState>,
    SessionUser(principal): SessionUser,
    origin: Origin,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = Uuid::parse_str(&raw).map_err(|_| {
        ApiError::field("path", "id", "uuid_parsing", "Input should be a valid UUID")
    })?;
    let audit = (
        &principal.audit(&origin),
        NewEntry::new(Action::SessionRevoke, id),
    );
    state
        .db
        .revoke_session(
            principal.user.id,
            id,
            "ended by its user",
            unix_now(),
            audit,
        )
        .await
        .on_not_found("Session not found")?;
    tracing::info!(event = "authn_session_revoked", user_id = principal.user.id, session_id = %id, "session ended");
    Ok(StatusCode::NO_CONTENT)
}

/// Body of `POST /users/me/password`.
#[derive(ToSchema)]
#[schema(as = PasswordChange, example = json!({"current_password": "plum sandwich at noon", "new_password": "a quieter river of bells"}))]
#[expect(dead_code, reason = "describes the request body for OpenAPI only")]
#[serde(deny_unknown_fields)]
pub(super) struct PasswordChange {
    /// At most 128 characters (after NFKC normalisation).
    #[schema(format = Password, max_length = 128)]
    current_password: String,
    /// The registration rules apply.
    #[schema(format = Password, min_length = 8, max_length = 128)]
    new_password: String,
}

/// Change the account's password. The current one is checked (and throttled like a login);
/// every other session of the account ends, this one continues.
#[utoipa::path(post, path = "/users/me/password", tag = "Users",
    security(("OAuth2PasswordBearer" = [])),
    request_body = PasswordChange,
    responses(
        (status = 204, description = "Changed; the other sessions are ended"),
        (status = 401, response = Unauthorized),
        (status = 403, response = SessionRequired),
        (status = 415, response = NotJson),
        (status = 422, description = "Wrong current password, or a new password the rules refuse", body = ValidationErrorBody,
            example = json!({"detail": [{"loc": ["body", "current_password"], "msg": "Incorrect password", "type": "password_incorrect"}]})),
        (status = 429, response = TooManyRequests),
    ))]
pub(super) async fn change_password(
    State(state): State<AppState>,
    SessionUser(principal): SessionUser,
    origin: Origin,
    JsonObject(body): JsonObject,
) -> Result<StatusCode, ApiError> {
    let user = &principal.user;
    let ctx = principal.audit(&origin);
    let mut reader = ObjectReader::new(vec!["body".into()], body);
    let current = reader.required("current_password", |v| {
        json_str(v).and_then(Password::for_login)
    });
    let new = reader.required("new_password", |v| json_str(v).map(str::to_owned));
    let mut errors = reader.finish().err().unwrap_or_default();
    let new = new.and_then(|raw| match state.policy.check(&raw, Some(&user.username)) {
        Ok(p) => Some(p),
        Err(Invalid { kind, msg }) => {
            errors.push(FieldError::at("body", "new_password", kind, msg));
            None
        }
    });
    let (Some(current), Some(new), true) = (current, new, errors.is_empty()) else {
        return Err(ApiError::Validation(errors));
    };
    match check_password(
        &state,
        origin.client_ip,
        &ctx,
        user.username.as_str(),
        &current,
    )
    .await
    {
        Ok(_) => {}
        Err(ApiError::BadCredentials) => {
            return Err(ApiError::field(
                "body",
                "current_password",
                "password_incorrect",
                "Incorrect password",
            ));
        }
        Err(other) => return Err(other),
    }
    let hash = state.hasher.hash(&new).await?;
    let ended = state
        .db
        .set_password_hash(
            user.id,
            &hash,
            principal.session_id,
            Action::UserPasswordChange,
            &ctx,
        )
        .await?;
    tracing::info!(event = "authn_password_change", user_id = user.id, session_id = ?principal.session_id, other_sessions_ended = ended, "password changed");
    Ok(StatusCode::NO_CONTENT)
}
