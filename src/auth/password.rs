//! Argon2id password hashing on the blocking pool, a bounded number at a time.

use std::sync::Arc;

use argon2::{Argon2, PasswordHasher as _, PasswordVerifier as _};
use tokio::sync::Semaphore;

use crate::{domain::password::Password, error::ApiError};

/// Hashes and verifies passwords. Argon2id with the crate defaults, which are OWASP's minimum
/// (m=19456 KiB, t=2, p=1). At most `concurrency` run at once, so memory stays bounded
/// (19 MiB each) and the async workers stay free to answer other requests.
#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    /// A real hash of a random password: unknown users are checked against it, so a login for
    /// a name that does not exist costs the same time as one with a wrong password.
    dummy_hash: Arc<str>,
}

impl PasswordHasher {
    pub fn new(concurrency: usize) -> Result<Self, ApiError> {
        let mut random = [0u8; 32];
        rand::fill(&mut random);
        let dummy_hash = argon2()
            .hash_password(&random)
            .map_err(|e| ApiError::internal("dummy hash", e))?
            .to_string();
        Ok(Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy_hash: dummy_hash.into(),
        })
    }

    /// Runs `work` on the blocking pool once a permit is free.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| ApiError::internal("hash pool", e))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| ApiError::internal("hash task", e))
    }

    /// A PHC-format Argon2id hash of `password` with a fresh random salt.
    pub async fn hash(&self, password: &Password) -> Result<String, ApiError> {
        let bytes = password.expose().as_bytes().to_vec();
        self.run(move || argon2().hash_password(&bytes).map(|h| h.to_string()))
            .await?
            .map_err(|e| ApiError::internal("hash password", e))
    }

    /// True when `password` matches `stored_hash`. With `None` (unknown user) the dummy hash
    /// is checked instead, and the answer is always false.
    pub async fn verify(
        &self,
        password: &Password,
        stored_hash: Option<&str>,
    ) -> Result<bool, ApiError> {
        let bytes = password.expose().as_bytes().to_vec();
        let known = stored_hash.is_some();
        let hash: String = stored_hash.unwrap_or(&self.dummy_hash).to_owned();
        let matched = self
            .run(move || argon2().verify_password(&bytes, hash.as_str()).is_ok())
            .await?;
        Ok(known && matched)
    }
}

fn argon2() -> Argon2<'static> {
    Argon2::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_is_argon2id_with_owasp_parameters_and_verifies() {
        let hasher = PasswordHasher::new(2).unwrap();
        let password = Password::for_login("a long enough passphrase").unwrap();
        let hash = hasher.hash(&password).await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(hasher.verify(&password, Some(&hash)).await.unwrap());
        let other = Password::for_login("a long enough passphrasE").unwrap();
        assert!(!hasher.verify(&other, Some(&hash)).await.unwrap());
    }

    #[tokio::test]
    async fn unknown_user_never_verifies() {
        let hasher = PasswordHasher::new(1).unwrap();
        let password = Password::for_login("anything at all").unwrap();
        assert!(!hasher.verify(&password, None).await.unwrap());
    }

    #[tokio::test]
    async fn passwords_differing_after_byte_72_are_different() {
        let hasher = PasswordHasher::new(1).unwrap();
        let base = "x".repeat(90);
        let a = Password::for_login(&format!("{base}AAAAAAAAAA")).unwrap();
        let b = Password::for_login(&format!("{base}BBBBBBBBBB")).unwrap();
        let hash = hasher.hash(&a).await.unwrap();
        assert!(!hasher.verify(&b, Some(&hash)).await.unwrap());
    }
}
