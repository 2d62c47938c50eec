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
        Credential::None => Authentication::Anonymous,
        Credential::Unreadable => Authentication::Invalid,
        Credential::Bearer(token) => match state.tokens.verify(token) {
            Some(user_id) => Authentication::Token { user_id },
            None => Authentication::Invalid,
        },
    };
    req.extensions_mut().insert(verdict);
    next.run(req).await
}

/// What the `Authorization` header holds.
#[derive(Debug, PartialEq, Eq)]
enum Credential<'h> {
    /// No header, or another scheme (Basic, ...): no bearer credential was sent.
    None,
    /// A header that cannot be read (not visible ASCII), or a bearer scheme with no token: a
    /// credential was sent but is unusable (RFC 6750 `invalid_token`).
    Unreadable,
    Bearer(&'h str),
}

fn bearer_token(headers: &HeaderMap) -> Credential<'_> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Credential::None;
    };
    let Ok(value) = value.to_str() else {
        return Credential::Unreadable;
    };
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Credential::None;
    }
    match token.trim() {
        "" => Credential::Unreadable,
        token => Credential::Bearer(token),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            axum::http::HeaderValue::from_bytes(value).unwrap(),
        );
        headers
    }

    #[test]
    fn credentials_are_read_as_rfc_6750_says() {
        assert_eq!(bearer_token(&HeaderMap::new()), Credential::None);
        assert_eq!(bearer_token(&with(b"Basic YTpi")), Credential::None);
        assert_eq!(
            bearer_token(&with(b"bearer abc")),
            Credential::Bearer("abc")
        );
        assert_eq!(bearer_token(&with(b"Bearer")), Credential::Unreadable);
        assert_eq!(bearer_token(&with(b"Bearer   ")), Credential::Unreadable);
        assert_eq!(
            bearer_token(&with("Bearer tök".as_bytes())),
            Credential::Unreadable
        );
    }
}
