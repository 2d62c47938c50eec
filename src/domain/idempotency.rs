//! Safe retries (draft-ietf-httpapi-idempotency-key-header): the `Idempotency-Key` a client
//! sends, the credential it belongs to ([`Owner`]), and what the request was ([`Fingerprint`]),
//! so that a repeat can be told from a different request under the same key.

use sha2::{Digest, Sha256};

use super::validation::Invalid;

/// An `Idempotency-Key`: 1 to 255 visible ASCII characters, kept exactly as sent (a client that
/// follows the draft's structured-field form sends the quotes every time, so they are part of
/// its key).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub const MAX_LEN: usize = 255;

    /// Parses the raw header value. Bytes, not text: a header value may hold any octet, and
    /// anything outside `!`..=`~` is refused before it could reach a log line or the database.
    pub fn parse(raw: &[u8]) -> Result<Self, Invalid> {
        if raw.is_empty() {
            return Err(Invalid::new(
                "string_too_short",
                "String should have at least 1 character",
            ));
        }
        if raw.len() > Self::MAX_LEN {
            return Err(Invalid::new(
                "string_too_long",
                "String should have at most 255 characters",
            ));
        }
        if !raw.iter().all(|b| matches!(b, b'!'..=b'~')) {
            return Err(Invalid::new(
                "string_pattern_mismatch",
                "The key may hold only visible ASCII characters (no spaces)",
            ));
        }
        Ok(Self(raw.iter().map(|&b| char::from(b)).collect()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whose stored answers a key names: one credential. Every login session of a user is the same
/// owner (a client that logs in again still gets its answers); each API key is its own. Two
/// owners never see each other's answers, even under the same key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Owner(String);

impl Owner {
    /// The user behind a login session.
    pub fn user(user_id: i64) -> Self {
        Self(format!("user:{user_id}"))
    }

    /// An API key.
    pub fn api_key(key_id: i64) -> Self {
        Self(format!("api_key:{key_id}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a request was: SHA-256 over its method, path, query string and `Content-Type`, one per
/// line, then its body. HTTP forbids line breaks in all four, so no two requests share the
/// input. The same key with another fingerprint is another request, refused rather than
/// answered with the first one's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    pub fn of(method: &str, path: &str, query: &str, content_type: &[u8], body: &[u8]) -> Self {
        let mut h = Sha256::new();
        for part in [
            method.as_bytes(),
            path.as_bytes(),
            query.as_bytes(),
            content_type,
        ] {
            h.update(part);
            h.update(b"\n");
        }
        h.update(body);
        Self(h.finalize().into())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_1_to_255_visible_ascii_characters_are_accepted_as_sent() {
        for raw in [
            "a",
            "8e03978e-40d5-43e8-bc93-6894a57f9324",
            "\"quoted\"",
            "!~",
        ] {
            let key = IdempotencyKey::parse(raw.as_bytes()).unwrap();
            assert_eq!(key.as_str(), raw);
        }
        let longest = "k".repeat(255);
        assert_eq!(
            IdempotencyKey::parse(longest.as_bytes()).unwrap().as_str(),
            longest
        );
    }

    #[test]
    fn empty_long_and_invisible_keys_are_refused_with_their_reason() {
        let long = "k".repeat(256);
        let cases: [(&[u8], &str); 6] = [
            (b"", "string_too_short"),
            (long.as_bytes(), "string_too_long"),
            (b"two words", "string_pattern_mismatch"),
            (b"tab\there", "string_pattern_mismatch"),
            ("schl\u{fc}ssel".as_bytes(), "string_pattern_mismatch"),
            (b"nul\0", "string_pattern_mismatch"),
        ];
        for (raw, kind) in cases {
            let err = IdempotencyKey::parse(raw).unwrap_err();
            assert_eq!(err.kind, kind, "{:?}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn owners_of_a_user_and_a_key_with_the_same_id_differ() {
        assert_ne!(Owner::user(7), Owner::api_key(7));
        assert_eq!(Owner::user(7).as_str(), "user:7");
        assert_eq!(Owner::api_key(7).as_str(), "api_key:7");
    }

    #[test]
    fn every_part_of_the_request_changes_the_fingerprint() {
        let base = Fingerprint::of("POST", "/employees/", "", b"application/json", b"{}");
        let others = [
            Fingerprint::of("PUT", "/employees/", "", b"application/json", b"{}"),
            Fingerprint::of("POST", "/employees/import", "", b"application/json", b"{}"),
            Fingerprint::of(
                "POST",
                "/employees/",
                "dry_run=true",
                b"application/json",
                b"{}",
            ),
            Fingerprint::of("POST", "/employees/", "", b"text/csv", b"{}"),
            Fingerprint::of("POST", "/employees/", "", b"application/json", b"{ }"),
            // A part cannot slide into its neighbour.
            Fingerprint::of("POST", "/employees/", "", b"", b"application/json\n{}"),
        ];
        for (i, other) in others.iter().enumerate() {
            assert_ne!(&base, other, "case {i}");
        }
        assert_eq!(
            base,
            Fingerprint::of("POST", "/employees/", "", b"application/json", b"{}")
        );
    }
}
