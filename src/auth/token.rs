//! Access tokens: HMAC-signed JWTs with the algorithm pinned by the server.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, decode_header, encode,
};
use serde::{Deserialize, Serialize};

use super::Error;

/// Clock skew tolerated on `exp`/`nbf`, in seconds (the contract allows at most 30).
pub const LEEWAY_SECS: u64 = 10;

/// The claims of an access token. `sub` is the user's numeric id, as a string (RFC 7519).
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: u64,
    pub iat: u64,
    /// Unique per token (for audit trails); not required when decoding.
    #[serde(default)]
    pub jti: Option<String>,
}

/// Signs and checks tokens. Decoding accepts only the configured algorithm, requires a numeric
/// `exp`, `iat` and `sub`, honours `nbf`, and refuses headers that try to name their own key.
#[derive(Clone)]
pub struct TokenKeys {
    algorithm: Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl TokenKeys {
    pub fn new(secret: &[u8], algorithm: Algorithm, ttl: Duration) -> Self {
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "iat", "sub"]);
        Self {
            algorithm,
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A new token for `user_id`.
    pub fn issue(&self, user_id: i64) -> Result<String, Error> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let claims = Claims {
            sub: user_id.to_string(),
            iat: now,
            exp: now + self.ttl.as_secs(),
            jti: Some(uuid::Uuid::new_v4().to_string()),
        };
        let mut header = Header::new(self.algorithm);
        header.typ = Some("JWT".into());
        encode(&header, &claims, &self.encoding).map_err(|e| Error::new("sign token", e))
    }

    /// The user id a valid token names; `None` for anything unacceptable.
    pub fn verify(&self, token: &str) -> Option<i64> {
        // Tokens are small; refuse to parse something absurd.
        if token.len() > 4096 {
            return None;
        }
        let header = decode_header(token).ok()?;
        if header.jwk.is_some()
            || header.jku.is_some()
            || header.x5u.is_some()
            || header.x5c.is_some()
        {
            return None;
        }
        let data = decode::<Claims>(token, &self.decoding, &self.validation).ok()?;
        let id: i64 = data.claims.sub.parse().ok()?;
        (id > 0).then_some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn keys() -> TokenKeys {
        TokenKeys::new(SECRET, Algorithm::HS256, Duration::from_secs(600))
    }

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    /// Signs arbitrary header/claims JSON with HMAC-SHA256 over SECRET.
    fn forge(header: serde_json::Value, claims: serde_json::Value, alg: Algorithm) -> String {
        let head = URL_SAFE_NO_PAD.encode(header.to_string());
        let body = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signing_input = format!("{head}.{body}");
        let sig = jsonwebtoken::crypto::sign(
            signing_input.as_bytes(),
            &EncodingKey::from_secret(SECRET),
            alg,
        )
        .unwrap();
        format!("{signing_input}.{sig}")
    }

    #[test]
    fn issued_token_round_trips() {
        let k = keys();
        assert_eq!(k.verify(&k.issue(42).unwrap()), Some(42));
    }

    #[test]
    fn token_signed_with_another_secret_is_rejected() {
        let other = TokenKeys::new(&[7u8; 64], Algorithm::HS256, Duration::from_secs(600));
        assert_eq!(keys().verify(&other.issue(1).unwrap()), None);
    }

    #[test]
    fn alg_none_is_rejected() {
        let head = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"sub":"1","exp":{},"iat":{}}}"#,
            now() + 60,
            now()
        ));
        assert_eq!(keys().verify(&format!("{head}.{body}.")), None);
    }

    #[test]
    fn other_algorithm_is_rejected_even_with_the_right_key() {
        let claims = serde_json::json!({"sub": "1", "exp": now() + 60, "iat": now()});
        let token = forge(
            serde_json::json!({"alg": "HS512", "typ": "JWT"}),
            claims,
            Algorithm::HS512,
        );
        assert_eq!(keys().verify(&token), None);
    }

    #[test]
    fn exp_as_string_or_missing_is_rejected() {
        let h = serde_json::json!({"alg": "HS256", "typ": "JWT"});
        let ok = forge(
            h.clone(),
            serde_json::json!({"sub": "1", "exp": now() + 60, "iat": now()}),
            Algorithm::HS256,
        );
        assert_eq!(
            keys().verify(&ok),
            Some(1),
            "the forging helper itself must produce valid tokens"
        );
        let string_exp =
            serde_json::json!({"sub": "1", "exp": (now() + 60).to_string(), "iat": now()});
        assert_eq!(
            keys().verify(&forge(h.clone(), string_exp, Algorithm::HS256)),
            None
        );
        let no_exp = serde_json::json!({"sub": "1", "iat": now()});
        assert_eq!(keys().verify(&forge(h, no_exp, Algorithm::HS256)), None);
    }

    #[test]
    fn expired_and_not_yet_valid_tokens_are_rejected() {
        let h = serde_json::json!({"alg": "HS256"});
        let expired =
            serde_json::json!({"sub": "1", "exp": now() - LEEWAY_SECS - 5, "iat": now() - 100});
        assert_eq!(
            keys().verify(&forge(h.clone(), expired, Algorithm::HS256)),
            None
        );
        let future_nbf =
            serde_json::json!({"sub": "1", "exp": now() + 600, "iat": now(), "nbf": now() + 3600});
        assert_eq!(keys().verify(&forge(h, future_nbf, Algorithm::HS256)), None);
    }

    #[test]
    fn jwk_and_jku_headers_are_rejected() {
        let claims = serde_json::json!({"sub": "1", "exp": now() + 60, "iat": now()});
        let jku = serde_json::json!({"alg": "HS256", "jku": "http://127.0.0.1:1/keys"});
        assert_eq!(
            keys().verify(&forge(jku, claims.clone(), Algorithm::HS256)),
            None
        );
        let jwk = serde_json::json!({"alg": "HS256", "jwk": {"kty": "oct", "k": "AAAA"}});
        assert_eq!(keys().verify(&forge(jwk, claims, Algorithm::HS256)), None);
    }
}
