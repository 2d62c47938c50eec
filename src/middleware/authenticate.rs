//! Verifies the bearer token once per request (signature, pinned algorithm, claims) and leaves
//! the verdict as an [`Authentication`] extension: the rate limiter keys on it and the auth
//! extractors read it, so nothing decodes the token twice.

use axum::{
    extract::{Request, State},
    http::{HeaderMap, header},
    middleware::Next,
    response::Response,
};

use crate::{app::AppState, extract::auth::Authentication};

/// Sets the [`Authentication`] extension.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let verdict = match bearer_token(req.headers()) {
        None => Authentication::Anonymous,
        Some(token) => match state.tokens.verify(token) {
            Some(user_id) => Authentication::Token { user_id },
            None => Authentication::Invalid,
        },
    };
    req.extensions_mut().insert(verdict);
    next.run(req).await
}

/// The token from `Authorization: Bearer <token>`; `None` when no bearer credentials were sent.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}
