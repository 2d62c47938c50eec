//! Access tokens: HMAC-signed JWTs with the algorithm pinned by the server.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, decode_header, encode,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Error;
use crate::domain::scope::Scopes;

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
    /// The session the token belongs to: a revoked or expired session ends its tokens at once.
    #[serde(default)]
    pub sid: Option<String>,
    /// The scopes the token carries, space-separated (RFC 8693 §4.2).
    #[serde(default)]
    pub scope: Option<String>,
}

/// What a valid token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedToken {
    pub user_id: i64,
    pub session_id: Uuid,
    pub scopes: Scopes,
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

    /// A new token for `user_id` in `session_id`, carrying `scopes`.
    pub fn issue(&self, user_id: i64, session_id: Uuid, scopes: Scopes) -> Result<String, Error> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let claims = Claims {
            sub: user_id.to_string(),
            iat: now,
            exp: now + self.ttl.as_secs(),
            jti: Some(Uuid::new_v4().to_string()),
            sid: Some(session_id.to_string()),
            scope: Some(scopes.to_string()),
        };
        let mut header = Header::new(self.algorithm);
        header.typ = Some("JWT".into());
        encode(&header, &claims, &self.encoding).map_err(|e| Error::new("sign token", e))
    }

    /// What a valid token names; `None` for anything unacceptable (including a token without
    /// a session or with a scope this server does not know).
    pub fn verify(&self, token: &str) -> Option<VerifiedToken> {
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
        let claims = decode::<Claims>(token, &self.decoding, &self.validation)
            .ok()?
            .claims;
        let user_id: i64 = claims.sub.parse().ok().filter(|id| *id > 0)?;
        let session_id = Uuid::parse_str(claims.sid.as_deref()?).ok()?;
        let scopes = Scopes::parse(claims.scope.as_deref().unwrap_or_default()).ok()?;
        Some(VerifiedToken {
            user_id,
            session_id,
            scopes,
        })
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

    fn sid() -> Uuid {
        Uuid::from_u128(7)
    }

    fn issue(k: &TokenKeys, user_id: i64) -> String {
        k.issue(user_id, sid(), Scopes::allowed_for(false)).unwrap()
    }

    /// Claims of a valid token for `sub`, to forge variations of.
    fn valid(sub: &str) -> serde_json::Value {
        serde_json::json!({"sub": sub, "exp": now() + 60, "iat": now(), "sid": sid().to_string(), "scope": "employees:read"})
    }

    #[test]
    fn issued_token_round_trips() {
        let k = keys();
        let token = k.issue(42, sid(), Scopes::allowed_for(true)).unwrap();
        assert_eq!(
            k.verify(&token),
            Some(VerifiedToken {
                user_id: 42,
                session_id: sid(),
                scopes: Scopes::allowed_for(true)
            })
        );
    }

    #[test]
    fn a_token_without_a_session_or_with_an_unknown_scope_is_rejected() {
        let h = serde_json::json!({"alg": "HS256", "typ": "JWT"});
        let mut no_sid = valid("1");
        no_sid.as_object_mut().unwrap().remove("sid");
        assert_eq!(
            keys().verify(&forge(h.clone(), no_sid, Algorithm::HS256)),
            None
        );
        let mut root = valid("1");
        root["scope"] = "employees:read root".into();
        assert_eq!(
            keys().verify(&forge(h.clone(), root, Algorithm::HS256)),
            None
        );
        assert!(
            keys()
                .verify(&forge(h, valid("1"), Algorithm::HS256))
                .is_some()
        );
    }

    #[test]
    fn token_signed_with_another_secret_is_rejected() {
        let other = TokenKeys::new(&[7u8; 64], Algorithm::HS256, Duration::from_secs(600));
        assert_eq!(keys().verify(&issue(&other, 1)), None);
    }

    #[test]
    fn alg_none_is_rejected() {
        let head = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(valid("1").to_string());
        assert_eq!(keys().verify(&format!("{head}.{body}.")), None);
    }

    #[test]
    fn other_algorithm_is_rejected_even_with_the_right_key() {
        let claims = valid("1");
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
        let ok = forge(h.clone(), valid("1"), Algorithm::HS256);
        assert_eq!(
            keys().verify(&ok).map(|t| t.user_id),
            Some(1),
            "the forging helper itself must produce valid tokens"
        );
        let mut string_exp = valid("1");
        string_exp["exp"] = (now() + 60).to_string().into();
        assert_eq!(
            keys().verify(&forge(h.clone(), string_exp, Algorithm::HS256)),
            None
        );
        let mut no_exp = valid("1");
        no_exp.as_object_mut().unwrap().remove("exp");
        assert_eq!(keys().verify(&forge(h, no_exp, Algorithm::HS256)), None);
    }

    #[test]
    fn expired_and_not_yet_valid_tokens_are_rejected() {
        let h = serde_json::json!({"alg": "HS256"});
        let mut expired = valid("1");
        expired["exp"] = (now() - LEEWAY_SECS - 5).into();
        expired["iat"] = (now() - 100).into();
        assert_eq!(
            keys().verify(&forge(h.clone(), expired, Algorithm::HS256)),
            None
        );
        let mut future_nbf = valid("1");
        future_nbf["nbf"] = (now() + 3600).into();
        assert_eq!(keys().verify(&forge(h, future_nbf, Algorithm::HS256)), None);
    }

    #[test]
    fn jwk_and_jku_headers_are_rejected() {
        let claims = valid("1");
        let jku = serde_json::json!({"alg": "HS256", "jku": "http://127.0.0.1:1/keys"});
        assert_eq!(
            keys().verify(&forge(jku, claims.clone(), Algorithm::HS256)),
            None
        );
        let jwk = serde_json::json!({"alg": "HS256", "jwk": {"kty": "oct", "k": "AAAA"}});
        assert_eq!(keys().verify(&forge(jwk, claims, Algorithm::HS256)), None);
    }
}
