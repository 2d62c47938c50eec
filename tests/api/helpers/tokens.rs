//! JWTs made exactly as a test needs them, and read back.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::Value;

use super::SECRET;

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

pub fn with_claim(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

pub fn without_claim(mut claims: Value, key: &str) -> Value {
    claims
        .as_object_mut()
        .expect("claims are an object")
        .remove(key);
    claims
}

/// A JWT with exactly this header and these claims, HMAC-signed with `secret` using `alg`.
pub fn forge_with(header: &Value, claims: &Value, alg: Algorithm, secret: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature =
        jsonwebtoken::crypto::sign(input.as_bytes(), &EncodingKey::from_secret(secret), alg)
            .expect("HMAC signing works");
    format!("{input}.{signature}")
}

/// As [`forge_with`], with the server's own secret.
pub fn forge(header: &Value, claims: &Value, alg: Algorithm) -> String {
    forge_with(header, claims, alg, SECRET.as_bytes())
}

/// A JWT with an empty signature (for `alg: none`).
pub fn unsigned(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// The claims of a token, decoded without checking anything.
pub fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT has three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url claims"))
        .expect("JSON claims")
}
