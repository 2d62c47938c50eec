//! Authentication: password hashing and access tokens. Who may call a handler is decided by
//! the extractors in [`crate::extract::auth`].

pub mod password;
pub mod secrets;
pub mod token;

/// An unexpected failure of the hashing pool or the token signer (never "wrong password" or
/// "invalid token": those are answers, not errors). The text is for logs only.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Error(String);

impl Error {
    fn new(context: &str, cause: impl std::fmt::Display) -> Self {
        Self(format!("{context}: {cause}"))
    }
}
