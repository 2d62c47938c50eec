//! What the answers the contract promises look like, each checked in one place.

use std::time::Duration;

use axum::http::{StatusCode, header};
use serde_json::json;

use super::TestResponse;

/// Fragments that must never appear in a response body (implementation internals).
pub const INTERNALS: &[&str] = &[
    "sqlx",
    "select ",
    "insert into",
    "syntax error",
    "sqlite",
    "postgres",
    "argon2",
    "password_hash",
    "panicked",
    "backtrace",
    "src/",
];

/// `Retry-After` as whole seconds (panics, naming `case`, if absent or not an integer).
pub fn retry_after(res: &TestResponse, case: &str) -> u64 {
    let raw = res
        .header("retry-after")
        .unwrap_or_else(|| panic!("{case}: no Retry-After on {} {}", res.status, res.text()));
    raw.parse()
        .unwrap_or_else(|_| panic!("{case}: Retry-After {raw:?} is not whole seconds"))
}

/// 429 `{"detail": "Too many requests"}` with a `Retry-After` of at least one second; returns
/// the wait.
pub fn assert_too_many(res: &TestResponse, case: &str) -> u64 {
    assert_eq!(
        res.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{case}: {}",
        res.text()
    );
    assert_eq!(res.json(), json!({"detail": "Too many requests"}), "{case}");
    let wait = retry_after(res, case);
    assert!(wait >= 1, "{case}: Retry-After {wait}");
    wait
}

/// 401 for an unacceptable token, with the RFC 6750 challenge.
pub fn assert_invalid_token(res: &TestResponse, case: &str) {
    assert_eq!(
        res.status,
        StatusCode::UNAUTHORIZED,
        "{case}: {}",
        res.text()
    );
    assert_eq!(res.detail(), "Could not validate credentials", "{case}");
    assert_eq!(
        res.header("www-authenticate"),
        Some(r#"Bearer error="invalid_token""#),
        "{case}: WWW-Authenticate"
    );
}

/// 401 for a request that carried no bearer credentials: a bare challenge, no error code.
pub fn assert_not_authenticated(res: &TestResponse, case: &str) {
    assert_eq!(
        res.status,
        StatusCode::UNAUTHORIZED,
        "{case}: {}",
        res.text()
    );
    assert_eq!(res.detail(), "Not authenticated", "{case}");
    assert_eq!(
        res.header("www-authenticate"),
        Some("Bearer"),
        "{case}: WWW-Authenticate"
    );
}

pub fn assert_forbidden(res: &TestResponse, case: &str) {
    assert_eq!(res.status, StatusCode::FORBIDDEN, "{case}: {}", res.text());
    assert_eq!(
        res.detail(),
        "The user does not have administrative privileges",
        "{case}"
    );
}

/// 422 whose `loc` list contains `loc` (e.g. `query.limit`).
pub fn assert_invalid_at(res: &TestResponse, loc: &str, case: &str) {
    assert_eq!(
        res.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{case}: {}",
        res.text()
    );
    let locs = res.error_locs();
    assert!(
        locs.iter().any(|l| l == loc),
        "{case}: expected an error at {loc}, got {locs:?}"
    );
}

/// 413 `{"detail": "Request body too large"}`.
pub fn assert_too_large(res: &TestResponse, case: &str) {
    assert_eq!(
        res.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{case}: {}",
        res.text()
    );
    assert_eq!(
        res.json(),
        json!({"detail": "Request body too large"}),
        "{case}"
    );
}

/// The secure headers every response carries.
pub fn assert_hardened(res: &TestResponse, case: &str) {
    assert_eq!(
        res.header("x-content-type-options"),
        Some("nosniff"),
        "{case}: X-Content-Type-Options"
    );
    assert_eq!(
        res.header("cache-control"),
        Some("no-store"),
        "{case}: Cache-Control"
    );
    let csp = res.header("content-security-policy").unwrap_or_default();
    assert!(
        csp.contains("frame-ancestors 'none'"),
        "{case}: Content-Security-Policy was {csp:?}"
    );
    assert_eq!(
        res.header("referrer-policy"),
        Some("no-referrer"),
        "{case}: Referrer-Policy"
    );
    assert!(
        res.headers.get(header::SERVER).is_none(),
        "{case}: Server header {:?}",
        res.headers.get(header::SERVER)
    );
}

pub fn assert_no_internals(res: &TestResponse, case: &str) {
    let body = res.text().to_lowercase();
    for fragment in INTERNALS {
        assert!(
            !body.contains(fragment),
            "{case}: body leaks {fragment:?}: {body}"
        );
    }
}

/// Headers that must match between two answers an attacker compares: all but the ones that
/// legitimately differ per request.
pub fn comparable_headers(res: &TestResponse) -> Vec<(String, Vec<u8>)> {
    let mut headers: Vec<_> = res
        .headers
        .iter()
        .filter(|(name, _)| {
            let name = name.as_str();
            name != "x-request-id" && name != "date" && !name.starts_with("ratelimit")
        })
        .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
        .collect();
    headers.sort();
    headers
}

pub fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

pub fn median_f64(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}
