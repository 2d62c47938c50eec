//! Argon2id password hashing on a small dedicated thread pool that reuses its memory.

use std::sync::{Arc, Mutex, mpsc};

use argon2::{
    ARGON2ID_IDENT, Algorithm, Argon2, Block, Params, PasswordHash, Version,
    password_hash::phc::{Output, ParamsString, Salt},
};
use subtle::ConstantTimeEq;
use tokio::sync::{Semaphore, oneshot};

use super::Error;
use crate::domain::password::Password;

/// Work for a hashing thread; it lends the job its reusable Argon2 memory.
type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

/// Stored hashes naming more memory than this (in KiB) are refused rather than computed.
const MAX_M_COST: u32 = 1024 * 1024;

/// Hashes and verifies passwords: Argon2id with OWASP's minimum parameters (m=19456 KiB, t=2,
/// p=1), stored in the standard PHC string format.
///
/// Hashes run on `concurrency` threads of their own, never on the async workers, so other
/// requests keep being served during a login storm. Each thread allocates its 19 MiB of Argon2
/// memory once and reuses it, so memory stays at `concurrency` x 19 MiB however many logins
/// arrive (allocating per hash let the allocator keep several copies per thread: about 100 MiB
/// each under a storm of 200 logins).
#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    jobs: mpsc::SyncSender<Job>,
    /// A real hash of a random password: unknown users are checked against it, so a login for
    /// a name that does not exist costs the same time as one with a wrong password.
    dummy_hash: Arc<str>,
}

impl PasswordHasher {
    pub fn new(concurrency: usize) -> Result<Self, Error> {
        let concurrency = concurrency.max(1);
        let mut random = [0u8; 32];
        rand::fill(&mut random);
        let dummy_hash =
            hash_with(&mut Vec::new(), &random).map_err(|e| Error::new("dummy hash", e))?;
        // Capacity = permits: a job is only sent after a permit is taken, so send never blocks.
        let (jobs, queue) = mpsc::sync_channel::<Job>(concurrency);
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..concurrency {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("password-hash-{i}"))
                .spawn(move || {
                    let mut memory = Vec::new();
                    loop {
                        // The lock is held only while waiting for the next job.
                        let job = queue.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        match job {
                            Ok(job) => job(&mut memory),
                            // Every PasswordHasher was dropped: the pool ends.
                            Err(_) => break,
                        }
                    }
                })
                .map_err(|e| Error::new("hash thread", e))?;
        }
        Ok(Self {
            permits: Arc::new(Semaphore::new(concurrency)),
            jobs,
            dummy_hash: dummy_hash.into(),
        })
    }

    /// Runs `work` on the pool once a permit is free; waiting costs no thread.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, Error> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| Error::new("hash pool", e))?;
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |memory| {
            let _ = reply.send(work(memory));
        });
        self.jobs
            .send(job)
            .map_err(|e| Error::new("hash pool", e))?;
        answer.await.map_err(|e| Error::new("hash task", e))
    }

    /// A PHC-format Argon2id hash of `password` with a fresh random salt.
    pub async fn hash(&self, password: &Password) -> Result<String, Error> {
        let bytes = password.expose().as_bytes().to_vec();
        self.run(move |memory| hash_with(memory, &bytes))
            .await?
            .map_err(|e| Error::new("hash password", e))
    }

    /// True when `password` matches `stored_hash`. With `None` (unknown user) the dummy hash
    /// is checked instead, and the answer is always false.
    pub async fn verify(
        &self,
        password: &Password,
        stored_hash: Option<&str>,
    ) -> Result<bool, Error> {
        let bytes = password.expose().as_bytes().to_vec();
        let known = stored_hash.is_some();
        let hash: String = stored_hash.unwrap_or(&self.dummy_hash).to_owned();
        let matched = self
            .run(move |memory| verify_with(memory, &bytes, &hash))
            .await?;
        Ok(known && matched)
    }
}

/// Argon2id, version 0x13, with `params`.
fn argon2id(params: Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Grows `memory` to what `argon2` needs and returns that much of it.
fn blocks_for<'m>(memory: &'m mut Vec<Block>, argon2: &Argon2<'_>) -> &'m mut [Block] {
    let needed = argon2.params().block_count();
    if memory.len() < needed {
        memory.resize(needed, Block::default());
    }
    &mut memory[..needed]
}

/// Hashes with the default parameters (m=19456, t=2, p=1) and a fresh 16-byte salt, in the PHC
/// string format: `$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`.
fn hash_with(memory: &mut Vec<Block>, password: &[u8]) -> Result<String, String> {
    let params = Params::default();
    let argon2 = argon2id(params.clone());
    let mut salt = [0u8; 16];
    rand::fill(&mut salt);
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    argon2
        .hash_password_into_with_memory(password, &salt, &mut out, blocks_for(memory, &argon2))
        .map_err(|e| e.to_string())?;
    let phc = PasswordHash {
        algorithm: ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| e.to_string())?,
        salt: Some(Salt::new(&salt).map_err(|e| e.to_string())?),
        hash: Some(Output::new(&out).map_err(|e| e.to_string())?),
    };
    Ok(phc.to_string())
}

/// Checks `password` against a PHC Argon2id string (any parameters within bounds), comparing
/// the digests in constant time.
fn verify_with(memory: &mut Vec<Block>, password: &[u8], phc: &str) -> bool {
    let Ok(stored) = PasswordHash::new(phc) else {
        return false;
    };
    if stored.algorithm != ARGON2ID_IDENT || stored.version != Some(Version::V0x13.into()) {
        return false;
    }
    let (Some(salt), Some(expected)) = (&stored.salt, &stored.hash) else {
        return false;
    };
    let Ok(params) = Params::try_from(&stored) else {
        return false;
    };
    if params.m_cost() > MAX_M_COST {
        return false;
    }
    let argon2 = argon2id(params);
    let mut out = vec![0u8; expected.len()];
    if argon2
        .hash_password_into_with_memory(
            password,
            salt.as_ref(),
            &mut out,
            blocks_for(memory, &argon2),
        )
        .is_err()
    {
        return false;
    }
    out.ct_eq(expected.as_bytes()).into()
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

    #[test]
    fn hashes_interoperate_with_the_argon2_crates_own_format() {
        use argon2::{PasswordHasher as _, PasswordVerifier as _};
        let ours = hash_with(&mut Vec::new(), b"interop passphrase").unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"interop passphrase", ours.as_str())
                .is_ok()
        );
        let theirs = Argon2::default()
            .hash_password(b"interop passphrase")
            .unwrap()
            .to_string();
        assert!(verify_with(&mut Vec::new(), b"interop passphrase", &theirs));
        assert!(!verify_with(
            &mut Vec::new(),
            b"interop passphrasE",
            &theirs
        ));
    }

    #[test]
    fn real_hashes_of_the_same_password_in_other_variants_never_verify() {
        use argon2::PasswordHasher as _;
        let password = b"interop passphrase";
        for variant in [Algorithm::Argon2i, Algorithm::Argon2d] {
            let foreign = Argon2::new(variant, Version::V0x13, Params::default())
                .hash_password(password)
                .unwrap()
                .to_string();
            assert!(
                !verify_with(&mut Vec::new(), password, &foreign),
                "{variant:?} hash accepted: {foreign}"
            );
        }
        // Version 0x10 of Argon2id: a real hash, refused by the version check.
        let old = Argon2::new(Algorithm::Argon2id, Version::V0x10, Params::default())
            .hash_password(password)
            .unwrap()
            .to_string();
        assert!(!verify_with(&mut Vec::new(), password, &old), "{old}");
    }

    #[test]
    fn malformed_hashes_and_absurd_memory_costs_are_refused_before_any_work() {
        let ours = hash_with(&mut Vec::new(), b"x").unwrap();
        let greedy = ours.replace("m=19456", "m=99999999");
        for bad in [
            "",
            "$2b$12$abcdefghijklmnopqrstuv",
            greedy.as_str(),
            ours.trim_end_matches(|c| c != '$'),
        ] {
            assert!(!verify_with(&mut Vec::new(), b"x", bad), "{bad}");
        }
        assert!(
            verify_with(&mut Vec::new(), b"x", &ours),
            "control: the unaltered hash verifies"
        );
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
