//! Extractors that say who may call a handler: [`AuthUser`] (any valid token) and
//! [`AdminUser`]. The user is re-read from the database on every request, so a deleted or
//! demoted account loses access at once.

use axum::{extract::FromRequestParts, http::request::Parts};

use crate::{app::AppState, domain::user::User, error::ApiError};

/// A user id whose token signature and claims were already checked by the rate-limit layer,
/// kept so the token is decoded once per request.
#[derive(Debug, Clone, Copy)]
pub struct VerifiedSubject(pub i64);

/// The token from `Authorization: Bearer <token>`; `None` when no bearer credentials were sent.
pub fn bearer_token(parts: &axum::http::HeaderMap) -> Option<&str> {
    let value = parts
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The user id named by a valid token, NOT yet checked against the database. A handler that
/// takes this must itself confirm the user still exists (as `Db::employee_seen_by` does in the
/// same query), or use [`AuthUser`].
#[derive(Debug, Clone, Copy)]
pub struct TokenSubject(pub i64);

impl FromRequestParts<AppState> for TokenSubject {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(subject) = parts.extensions.get::<VerifiedSubject>() {
            return Ok(TokenSubject(subject.0));
        }
        let token = bearer_token(&parts.headers).ok_or(ApiError::NotAuthenticated)?;
        state
            .tokens
            .verify(token)
            .map(TokenSubject)
            .ok_or(ApiError::InvalidToken)
    }
}

/// Any authenticated user.
#[derive(Debug, Clone)]
pub struct AuthUser(pub User);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let TokenSubject(user_id) = TokenSubject::from_request_parts(parts, state).await?;
        let user = state
            .db
            .user_by_id(user_id)
            .await?
            .ok_or(ApiError::InvalidToken)?;
        tracing::Span::current().record("user_id", user.id);
        Ok(AuthUser(user))
    }
}

/// An authenticated user with administrator rights (403 otherwise).
#[derive(Debug, Clone)]
pub struct AdminUser(pub User);

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let AuthUser(user) = AuthUser::from_request_parts(parts, state).await?;
        if !user.is_admin {
            tracing::warn!(
                event = "authz_fail",
                user_id = user.id,
                username = %user.username,
                path = %parts.uri.path(),
                "administrator route refused"
            );
            return Err(ApiError::Forbidden);
        }
        Ok(AdminUser(user))
    }
}
