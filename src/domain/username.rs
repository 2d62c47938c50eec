//! `Username`: 3-64 characters of `[A-Za-z0-9_.-]`, stored lower-cased.

use std::fmt;

use super::{input::json_str, validation::Invalid};

/// A valid username, always lower-case, so uniqueness is case-insensitive on every backend.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    pub const MIN_LEN: usize = 3;
    pub const MAX_LEN: usize = 64;

    /// Parses and lower-cases `raw`. Surrounding whitespace is not trimmed: it is an error.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let len = raw.chars().count();
        if len < Self::MIN_LEN {
            return Err(Invalid::new(
                "string_too_short",
                "String should have at least 3 characters",
            ));
        }
        if len > Self::MAX_LEN {
            return Err(Invalid::new(
                "string_too_long",
                "String should have at most 64 characters",
            ));
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        {
            return Err(Invalid::new(
                "string_pattern_mismatch",
                "Username may contain only letters A-Z, digits, '_', '.' and '-'",
            ));
        }
        Ok(Self(raw.to_ascii_lowercase()))
    }

    /// Parses a JSON string value.
    pub fn from_json(value: &serde_json::Value) -> Result<Self, Invalid> {
        Self::parse(json_str(value)?)
    }

    /// Trusted construction from the database (already validated when stored).
    pub(crate) fn from_db(stored: String) -> Self {
        Self(stored)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_lower_cased() {
        assert_eq!(
            Username::parse("Bob.Smith-2_x").unwrap().as_str(),
            "bob.smith-2_x"
        );
    }

    #[test]
    fn length_limits_are_enforced() {
        assert!(Username::parse("ab").is_err());
        assert!(Username::parse("abc").is_ok());
        assert!(Username::parse(&"a".repeat(64)).is_ok());
        assert!(Username::parse(&"a".repeat(65)).is_err());
    }

    #[test]
    fn characters_outside_the_allowed_set_are_rejected() {
        for bad in ["bob smith", "bob@x", "böb", "bob\n", "bob%", "' or 1=1"] {
            assert!(Username::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
