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

/// Words specific to this service (NIST SP 800-63B-4 "context-specific words") that a password
/// must not contain, compared on its letters alone in lower case, so spacing, case, digits and
/// punctuation do not hide them: `Employee-API-2024`, `my employee account pass` and
/// `EmployeeManagementAPI` all contain one. Each is at least four letters long, so ordinary
/// words rarely contain one by accident.
const CONTEXT_WORDS: &[&str] = &["employee", "admin", "management"];

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
    ///
    /// The length rule holds both as sent and after NFKC, so the bounds the OpenAPI document
    /// states on the raw string (minLength, maxLength) never let a password through that they
    /// exclude; normalisation can only refuse more.
    pub fn check(&self, raw: &str, username: Option<&Username>) -> Result<Password, Invalid> {
        let raw_len = raw.chars().count();
        if raw_len > MAX_LEN {
            return Err(too_long());
        }
        let password = Password::for_login(raw)?;
        let text = password.expose();
        let len = text.chars().count();
        if len < self.min_len || raw_len < self.min_len {
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
        if contains_context_word(&folded) {
            return Err(Invalid::new(
                "password_context_word",
                "Password must not contain words specific to this service (employee, admin, management)",
            ));
        }
        Ok(password)
    }
}

/// True when the letters of `folded`, read without spaces, digits or punctuation, contain a
/// context word.
fn contains_context_word(folded: &str) -> bool {
    let letters: String = folded.chars().filter(|c| c.is_alphabetic()).collect();
    CONTEXT_WORDS.iter().any(|word| letters.contains(word))
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
    fn length_holds_as_sent_and_after_nfkc() {
        // 14 code points as sent, 15 after NFKC ("¸" becomes a space and a cedilla): short.
        let raw = "vjqE3l    Ab¸n";
        assert_eq!(raw.chars().count(), 14);
        assert_eq!(
            Password::for_login(raw).unwrap().expose().chars().count(),
            15
        );
        assert_eq!(
            policy().check(raw, None).unwrap_err().kind,
            "string_too_short"
        );
        // 129 combining sequences as sent that compose to 128 code points: too long.
        let raw = format!("{}{}", "e\u{301}", "x".repeat(127));
        assert_eq!(raw.chars().count(), 129);
        assert_eq!(
            policy().check(&raw, None).unwrap_err().kind,
            "string_too_long"
        );
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
    fn passwords_containing_a_context_word_are_rejected_in_any_spacing_or_case() {
        for bad in [
            "employee-employee-2024",
            "AdminAdminAdmin!!!",
            "my employee account pass",
            "employee-api-password",
            "EmployeeManagementAPI",
            "e m p l o y e e  m a n a g e m e n t",
            "the administrator of blue river",
        ] {
            assert_eq!(
                policy().check(bad, None).unwrap_err().kind,
                "password_context_word",
                "{bad}"
            );
        }
        assert!(
            policy().check("123456789012345", None).is_ok(),
            "digits only: no word"
        );
        assert!(policy().check("the blue river at noon", None).is_ok());
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
