//! Passwords: NFKC-normalised, length-checked in code points, never truncated, and checked
//! against a bundled list of common passwords and context words (NIST SP 800-63B-4 §3.1.1.2).

use std::{collections::HashSet, fmt, sync::LazyLock};

use unicode_normalization::UnicodeNormalization;

use super::{username::Username, validation::Invalid};

/// The longest password accepted anywhere, in Unicode code points after NFKC.
pub const MAX_LEN: usize = 128;

/// The bundled list (see `assets/README.md`): lower-case, one per line.
static COMMON_PASSWORDS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("../../assets/common-passwords.txt")
        .lines()
        .filter(|l| !l.is_empty())
        .collect()
});

/// Words specific to this service that a password must not be built from.
const CONTEXT_WORDS: &[&str] = &[
    "employee",
    "employees",
    "admin",
    "administrator",
    "api",
    "employeeapi",
];

/// A password in normal form. `Debug` never prints it.
#[derive(Clone)]
pub struct Password(String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

impl Password {
    /// Normalises a password offered at login. Only the upper bound is checked (so a huge
    /// input is rejected before any hashing); policy is not, as older accounts may predate it.
    pub fn for_login(raw: &str) -> Result<Self, Invalid> {
        // Cheap pre-check on bytes: NFKC can expand, but 4 bytes per code point bounds it.
        if raw.len() > MAX_LEN * 4 {
            return Err(too_long());
        }
        let normalised: String = raw.nfkc().collect();
        if normalised.chars().count() > MAX_LEN {
            return Err(too_long());
        }
        Ok(Self(normalised))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

fn too_long() -> Invalid {
    Invalid::new(
        "string_too_long",
        format!("Password should have at most {MAX_LEN} characters"),
    )
}

/// The rules a new password must meet.
#[derive(Debug, Clone)]
pub struct PasswordPolicy {
    min_len: usize,
}

impl PasswordPolicy {
    /// `min_len` is clamped to 8..=MAX_LEN (NIST's floor; the configuration refuses less).
    pub fn new(min_len: usize) -> Self {
        Self {
            min_len: min_len.clamp(8, MAX_LEN),
        }
    }

    pub fn min_len(&self) -> usize {
        self.min_len
    }

    /// Checks a new password for `username`. Messages say why, never echo the password.
    pub fn check(&self, raw: &str, username: Option<&Username>) -> Result<Password, Invalid> {
        let password = Password::for_login(raw)?;
        let text = password.expose();
        let len = text.chars().count();
        if len < self.min_len {
            return Err(Invalid::new(
                "string_too_short",
                format!("Password should have at least {} characters", self.min_len),
            ));
        }
        let folded = text.to_lowercase();
        if let Some(username) = username
            && folded.contains(username.as_str())
        {
            return Err(Invalid::new(
                "password_contains_username",
                "Password must not contain the username",
            ));
        }
        if COMMON_PASSWORDS.contains(folded.as_str()) {
            return Err(Invalid::new(
                "password_too_common",
                "Password is on the list of commonly used or breached passwords",
            ));
        }
        if is_built_from_context_words(&folded) {
            return Err(Invalid::new(
                "password_context_word",
                "Password must not be made of words specific to this service",
            ));
        }
        Ok(password)
    }
}

/// True when the letters of `folded` are nothing but context words repeated (digits and
/// punctuation ignored): `admin-admin-2024!`, `EmployeeEmployee123`.
fn is_built_from_context_words(folded: &str) -> bool {
    let letters: String = folded.chars().filter(|c| c.is_alphabetic()).collect();
    fn covers(rest: &str) -> bool {
        rest.is_empty()
            || CONTEXT_WORDS
                .iter()
                .any(|w| rest.strip_prefix(w).is_some_and(covers))
    }
    covers(&letters)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> PasswordPolicy {
        PasswordPolicy::new(15)
    }

    #[test]
    fn long_unusual_passphrase_is_accepted() {
        assert!(policy().check("correct horse battery staple", None).is_ok());
    }

    #[test]
    fn short_password_is_rejected() {
        assert_eq!(
            policy().check("short-pass", None).unwrap_err().kind,
            "string_too_short"
        );
    }

    #[test]
    fn length_is_counted_in_code_points_after_nfkc() {
        // 15 code points of a 2-byte letter: passes a 15 minimum although 30 bytes long.
        assert!(
            policy()
                .check(
                    &"é"
                        .repeat(8)
                        .chars()
                        .chain("xyzqwvb".chars())
                        .collect::<String>(),
                    None
                )
                .is_ok()
        );
        // The ligature "ﬁ" (U+FB01) normalises to "fi": two code points.
        let p = Password::for_login("ﬁ").unwrap();
        assert_eq!(p.expose(), "fi");
    }

    #[test]
    fn password_longer_than_128_code_points_is_rejected_not_truncated() {
        assert!(
            policy()
                .check(
                    &"x".repeat(128)
                        .replace('x', "qz")
                        .chars()
                        .take(128)
                        .collect::<String>(),
                    None
                )
                .is_ok()
        );
        assert_eq!(
            policy().check(&"qz".repeat(65), None).unwrap_err().kind,
            "string_too_long"
        );
        assert!(Password::for_login(&"a".repeat(100_000)).is_err());
    }

    #[test]
    fn password_containing_the_username_is_rejected() {
        let user = Username::parse("Margaret").unwrap();
        let err = policy()
            .check("my name is MARGARET ok!!", Some(&user))
            .unwrap_err();
        assert_eq!(err.kind, "password_contains_username");
    }

    #[test]
    fn common_passwords_are_rejected_even_when_long_enough() {
        let policy = PasswordPolicy::new(8);
        assert_eq!(
            policy.check("password", None).unwrap_err().kind,
            "password_too_common"
        );
        assert_eq!(
            policy.check("Iloveyou", None).unwrap_err().kind,
            "password_too_common"
        );
        assert!(COMMON_PASSWORDS.len() >= 10_000);
    }

    #[test]
    fn passwords_made_of_context_words_are_rejected() {
        for bad in [
            "employee-employee-2024",
            "AdminAdminAdmin!!!",
            "employeeapi12345678",
        ] {
            assert_eq!(
                policy().check(bad, None).unwrap_err().kind,
                "password_context_word",
                "{bad}"
            );
        }
        assert!(policy().check("admin of the blue river", None).is_ok());
    }

    #[test]
    fn minimum_is_never_below_eight() {
        assert_eq!(PasswordPolicy::new(3).min_len(), 8);
    }

    #[test]
    fn debug_never_shows_the_password() {
        let p = Password::for_login("top secret words here").unwrap();
        assert!(!format!("{p:?}").contains("secret"));
    }
}
