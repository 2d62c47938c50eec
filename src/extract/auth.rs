//! Extractors that say who may call a handler: [`TokenSubject`] (a valid token, user not yet
//! re-read), [`AuthUser`] (any current user) and [`AdminUser`]. The token itself is verified
//! once per request, by the `authenticate` middleware, which leaves its verdict as an
//! [`Authentication`] extension; the user is re-read from the database on every request, so a
//! deleted or demoted account loses access at once.

use axum::{extract::FromRequestParts, http::request::Parts};

use crate::{app::AppState, domain::user::User, error::ApiError};

/// What the request's credentials turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authentication {
    /// No bearer credentials were sent.
    Anonymous,
    /// A bearer token was sent but is not acceptable (RFC 6750 `invalid_token`).
    Invalid,
    /// A token with a valid signature and claims, naming this user id.
    Token { user_id: i64 },
}

/// The user id named by a valid token, NOT yet checked against the database. A handler that
/// takes this must itself confirm the user still exists (as `Db::employee_seen_by` does in the
/// same query), or use [`AuthUser`].
#[derive(Debug, Clone, Copy)]
pub struct TokenSubject(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for TokenSubject {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Authentication>() {
            Some(Authentication::Token { user_id }) => Ok(TokenSubject(*user_id)),
            Some(Authentication::Invalid) => Err(ApiError::InvalidToken),
            Some(Authentication::Anonymous) | None => Err(ApiError::NotAuthenticated),
        }
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
