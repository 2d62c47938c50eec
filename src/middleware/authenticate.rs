//! Reads the credential once per request and leaves the verdict as an [`Authentication`]
//! extension: an access token is verified (signature, pinned algorithm, claims), an API key
//! (`X-API-Key`, or a bearer token starting with `emp_`) is hashed for its lookup. The rate
//! limiter keys on the verdict and the auth extractors read it, so nothing decodes twice.

use axum::{
    extract::{Request, State},
    http::{HeaderMap, header},
    middleware::Next,
    response::Response,
};

use crate::{app::AppState, auth::secrets::API_KEY_PREFIX, extract::auth::Authentication};

/// Sets the [`Authentication`] extension.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let verdict = match credential(req.headers()) {
        Credential::None => Authentication::Anonymous,
        Credential::Unreadable => Authentication::Invalid,
        Credential::ApiKey(key) => Authentication::ApiKey {
            hash: state.secrets.api_key_hash(key),
        },
        Credential::Bearer(token) => match state.tokens.verify(token) {
            Some(token) => Authentication::Token(token),
            None => Authentication::Invalid,
        },
    };
    req.extensions_mut().insert(verdict);
    next.run(req).await
}

/// What the request's headers hold.
#[derive(Debug, PartialEq, Eq)]
enum Credential<'h> {
    /// No `Authorization` (or another scheme: Basic, ...) and no `X-API-Key`.
    None,
    /// A header that cannot be read (not visible ASCII), or a bearer scheme with no token: a
    /// credential was sent but is unusable (RFC 6750 `invalid_token`).
    Unreadable,
    /// An access token.
    Bearer(&'h str),
    /// An API key, from `X-API-Key` or as a bearer token starting with `emp_`.
    ApiKey(&'h str),
}

/// The header scripts may send their API key in.
const API_KEY_HEADER: &str = "x-api-key";

fn credential(headers: &HeaderMap) -> Credential<'_> {
    if let Some(value) = headers.get(API_KEY_HEADER) {
        return match value.to_str().map(str::trim) {
            Ok(key) if key.starts_with(API_KEY_PREFIX) => Credential::ApiKey(key),
            _ => Credential::Unreadable,
        };
    }
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
        key if key.starts_with(API_KEY_PREFIX) => Credential::ApiKey(key),
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
        assert_eq!(credential(&HeaderMap::new()), Credential::None);
        assert_eq!(credential(&with(b"Basic YTpi")), Credential::None);
        assert_eq!(credential(&with(b"bearer abc")), Credential::Bearer("abc"));
        assert_eq!(credential(&with(b"Bearer")), Credential::Unreadable);
        assert_eq!(credential(&with(b"Bearer   ")), Credential::Unreadable);
        assert_eq!(
            credential(&with("Bearer tök".as_bytes())),
            Credential::Unreadable
        );
    }
}
