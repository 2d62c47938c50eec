//! Authentication: registration, the token endpoint (password and refresh grants), logout and
//! revocation. Bodies here are small: anything over [`AUTH_BODY_LIMIT`] is refused before it
//! is parsed.

mod register;
mod session;
mod token;

use axum::extract::DefaultBodyLimit;
use utoipa_axum::{router::OpenApiRouter, routes};

pub(crate) use token::check_password;

use crate::app::AppState;

/// The largest body `/auth/*` accepts: a username, a password and the OAuth2 form fields fit
/// many times over; anything bigger is refused before it is parsed.
pub const AUTH_BODY_LIMIT: usize = 4 * 1024;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register::register))
        .routes(routes!(token::token))
        .routes(routes!(session::logout))
        .routes(routes!(session::revoke))
        .layer(DefaultBodyLimit::max(AUTH_BODY_LIMIT))
}
