//! Ending sessions: logout (this session, the others, or all) and token revocation (RFC 7009).

use axum::{extract::State, http::StatusCode};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::{
    app::AppState,
    auth::secrets::SecretKeys,
    domain::{
        audit::{Action, ActorKind, AuditContext, NewEntry},
        clock::unix_now,
    },
    error::{ApiError, ValidationErrorBody},
    extract::{
        auth::SessionUser,
        body::ApiForm,
        client::{ClientIp, Origin},
        query::ApiQuery,
    },
    openapi::{SessionRequired, Unauthorized},
};

/// Which sessions a logout ends.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct LogoutParams {
    /// Nothing: this session. `others`: every other session of the account. `global`: all of
    /// them, this one included.
    #[param(value_type = String, pattern = "^(others|global)$", required = false)]
    scope: Option<String>,
}

/// Log out: end this session (its access and refresh tokens stop working at once, on every
/// instance), or, with `scope`, the account's other sessions or all of them.
#[utoipa::path(post, path = "/auth/logout", tag = "Authentication",
    security(("OAuth2PasswordBearer" = [])),
    params(LogoutParams),
    responses(
        (status = 204, description = "The sessions are ended"),
        (status = 401, response = Unauthorized),
        (status = 403, response = SessionRequired),
        (status = 422, description = "Unknown scope", body = ValidationErrorBody,
            example = json!({"detail": [{"loc": ["query", "scope"], "msg": "Input should be 'others' or 'global'", "type": "literal_error"}]})),
    ))]
pub(super) async fn logout(
    State(state): State<AppState>,
    SessionUser(principal): SessionUser,
    origin: Origin,
    ApiQuery(params): ApiQuery<LogoutParams>,
) -> Result<StatusCode, ApiError> {
    let current = principal.require_session()?;
    let user_id = principal.user.id;
    let now = unix_now();
    let db = &state.db;
    let ctx = principal.audit(&origin);
    let entry = || NewEntry::new(Action::UserLogout, user_id);
    let ended = match params.scope.as_deref() {
        None => {
            db.revoke_session(user_id, current, "logout", now, (&ctx, entry()))
                .await
                .map_err(ApiError::from)?;
            1
        }
        Some("others") => {
            db.revoke_user_sessions(user_id, Some(current), "logout", now, (&ctx, entry()))
                .await?
        }
        Some("global") => {
            db.revoke_user_sessions(user_id, None, "logout", now, (&ctx, entry()))
                .await?
        }
        Some(_) => {
            return Err(ApiError::field(
                "query",
                "scope",
                "literal_error",
                "Input should be 'others' or 'global'",
            ));
        }
    };
    tracing::info!(event = "authn_logout", user_id, session_id = %current, scope = params.scope.as_deref().unwrap_or("this"), sessions = ended, "logout");
    Ok(StatusCode::NO_CONTENT)
}

/// Body of `POST /auth/revoke` (RFC 7009 §2.1, form-encoded).
#[derive(Deserialize, ToSchema)]
#[schema(as = RevokeRequest, example = json!({"token": "0x5uW7T1kX2v1mJ0m5Xq8yQ2b4V9zL3sN6pA8cD1eF7g", "token_type_hint": "refresh_token"}))]
pub(super) struct RevokeForm {
    /// A refresh token (or an access token): its whole session is ended.
    #[schema(value_type = String, required = true)]
    token: Option<String>,
    /// `refresh_token` or `access_token`; a hint only.
    #[schema(nullable = false)]
    #[expect(dead_code, reason = "RFC 7009 lets the server try both kinds anyway")]
    token_type_hint: Option<String>,
}

/// Revoke a token (RFC 7009): its session ends, with every token of it. Always 200, whether
/// or not the token was known, so the answer reveals nothing.
#[utoipa::path(post, path = "/auth/revoke", tag = "Authentication",
    request_body(content = RevokeForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Revoked, or unknown (RFC 7009 answers both alike)"),
        (status = 422, description = "No token sent", body = ValidationErrorBody,
            example = json!({"detail": [{"loc": ["body", "token"], "msg": "Field required", "type": "missing"}]})),
    ))]
pub(super) async fn revoke(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    origin: Origin,
    ApiForm(form): ApiForm<RevokeForm>,
) -> Result<StatusCode, ApiError> {
    let Some(token) = form.token.filter(|t| !t.is_empty()) else {
        return Err(ApiError::field(
            "body",
            "token",
            "missing",
            "Field required",
        ));
    };
    let now = unix_now();
    let revoked = if let Some(access) = state.tokens.verify(&token) {
        let ctx = AuditContext {
            actor: ActorKind::User,
            actor_id: Some(access.user_id),
            session_id: Some(access.session_id),
            ..origin.anonymous()
        };
        let entry = NewEntry::new(Action::SessionRevoke, access.session_id);
        match state
            .db
            .revoke_session(
                access.user_id,
                access.session_id,
                "revoked",
                now,
                (&ctx, entry),
            )
            .await
        {
            Ok(()) => true,
            Err(crate::db::Error::NotFound) => false,
            Err(other) => return Err(other.into()),
        }
    } else if token.len() <= 128 {
        state
            .db
            .revoke_by_refresh_token(&SecretKeys::refresh_hash(&token), now, &origin.anonymous())
            .await?
    } else {
        false
    };
    tracing::info!(event = "authn_token_revoke", client_ip = %ip, revoked, "token revocation");
    Ok(StatusCode::OK)
}
