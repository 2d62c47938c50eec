//! The secrets a client holds besides its access token: refresh tokens and API keys. Each is
//! 256 random bits; the server stores only a hash (a fast hash is right for secrets this long:
//! nobody can guess one, so there is nothing to slow down).
//!
//! - A refresh token is stored as its SHA-256. Its successor is derived from it with a keyed
//!   hash, so two concurrent refreshes with one token get the same successor without the
//!   server ever storing a token in clear.
//! - An API key (`emp_` + 43 characters, a prefix secret scanners can match) is stored as
//!   HMAC-SHA256 under a server key: a stolen database alone does not allow testing guesses.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// What every API key starts with.
pub const API_KEY_PREFIX: &str = "emp_";
/// Characters of a key shown in lists (the prefix and the first few of the secret).
const SHOWN: usize = 12;

/// Keys for the keyed hashes, derived from the token secret (never the secret itself), so
/// every instance sharing `JWT_SECRET_KEY` agrees on them.
#[derive(Clone)]
pub struct SecretKeys {
    successor: [u8; 32],
    api_key: [u8; 32],
}

impl std::fmt::Debug for SecretKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKeys(***)")
    }
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts a key of any length"));
    mac.update(data);
    mac.finalize().into_bytes().into()
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

impl SecretKeys {
    pub fn derive(token_secret: &[u8]) -> Self {
        Self {
            successor: hmac(token_secret, b"employee-api refresh successor v1"),
            api_key: hmac(token_secret, b"employee-api api key v1"),
        }
    }

    /// A new refresh token (256 random bits, base64url).
    pub fn new_refresh_token() -> String {
        random_token()
    }

    /// The refresh token that replaces `token` when it is exchanged: always the same one for
    /// the same token, unguessable without the server's key.
    pub fn successor_of(&self, token: &str) -> String {
        URL_SAFE_NO_PAD.encode(hmac(&self.successor, token.as_bytes()))
    }

    /// What is stored of a refresh token.
    pub fn refresh_hash(token: &str) -> Vec<u8> {
        Sha256::digest(token.as_bytes()).to_vec()
    }

    /// A new API key, and the part of it shown in lists.
    pub fn new_api_key() -> (String, String) {
        let key = format!("{API_KEY_PREFIX}{}", random_token());
        let shown = key[..SHOWN].to_owned();
        (key, shown)
    }

    /// What is stored of an API key.
    pub fn api_key_hash(&self, key: &str) -> Vec<u8> {
        hmac(&self.api_key, key.as_bytes()).to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successors_are_stable_per_token_and_differ_between_tokens_and_servers() {
        let keys = SecretKeys::derive(b"secret one, long enough for a test");
        let token = SecretKeys::new_refresh_token();
        assert_eq!(token.len(), 43, "256 bits in base64url");
        assert_eq!(keys.successor_of(&token), keys.successor_of(&token));
        assert_ne!(keys.successor_of(&token), keys.successor_of("another"));
        let other = SecretKeys::derive(b"secret two, long enough for a test");
        assert_ne!(keys.successor_of(&token), other.successor_of(&token));
    }

    #[test]
    fn api_keys_are_recognisable_and_stored_keyed() {
        let (key, shown) = SecretKeys::new_api_key();
        assert!(key.starts_with("emp_") && key.len() == 47, "{key}");
        assert!(key.starts_with(&shown) && shown.len() == 12);
        let keys = SecretKeys::derive(b"secret one, long enough for a test");
        assert_eq!(keys.api_key_hash(&key), keys.api_key_hash(&key));
        assert_ne!(keys.api_key_hash(&key), SecretKeys::refresh_hash(&key));
    }
}
