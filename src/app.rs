//! The application state every handler and middleware reads: storage, keys, limiters and the
//! validated configuration. The router that serves it is in [`crate::router`].

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use crate::{
    auth::{self, password::PasswordHasher, secrets::SecretKeys, token::TokenKeys},
    config::{Config, Secret},
    db::{Db, idempotency::Terms, sessions::Lifetimes},
    domain::{listing::CursorKey, password::PasswordPolicy},
    rate_limit::{Limiters, redis::RedisStore},
};

/// How much longer than the request timeout an `Idempotency-Key` claim is held.
const IDEMPOTENCY_LEASE_MARGIN_SECS: i64 = 30;

/// Everything a handler may need. Cloning is one reference-count increment: axum clones the
/// state several times per request, and a struct of separate `Arc`s made that about a quarter
/// of the CPU of a simple request (measured with perf).
#[derive(Clone)]
pub struct AppState(Arc<SharedState>);

impl std::ops::Deref for AppState {
    type Target = SharedState;

    fn deref(&self) -> &SharedState {
        &self.0
    }
}

/// The contents of [`AppState`].
pub struct SharedState {
    pub db: Db,
    pub tokens: TokenKeys,
    pub hasher: PasswordHasher,
    pub policy: PasswordPolicy,
    /// Signs the list's keyset cursors (derived from the token secret).
    pub cursor_key: CursorKey,
    /// Derives refresh-token successors and hashes API keys (derived from the token secret).
    pub secrets: SecretKeys,
    pub limiters: Arc<Limiters>,
    pub redis: Option<RedisStore>,
    pub config: Config,
    /// Set when shutdown begins: `/readyz` answers 503 so load balancers stop sending traffic.
    shutting_down: AtomicBool,
    /// The last round of `/readyz` checks: when, whether the database answered, the report.
    pub readiness: tokio::sync::Mutex<Option<(Instant, bool, serde_json::Value)>>,
}

/// Why the state could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("REDIS_URL: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("password hashing pool: {0}")]
    Hasher(#[from] auth::Error),
}

impl AppState {
    /// Builds the state. `secret` is the resolved JWT secret; `redis_prefix` namespaces keys.
    pub fn new(
        config: Config,
        db: Db,
        secret: &Secret,
        redis_prefix: &str,
    ) -> Result<Self, StateError> {
        let redis = match &config.redis_url {
            Some(url) => Some(RedisStore::new(url.expose(), redis_prefix)?),
            None => None,
        };
        let limiters = Limiters::new(&config, redis.clone());
        Ok(Self(Arc::new(SharedState {
            db,
            tokens: TokenKeys::new(
                secret.expose().as_bytes(),
                config.jwt_algorithm,
                config.token_ttl,
            ),
            hasher: PasswordHasher::new(config.hash_concurrency)?,
            policy: PasswordPolicy::new(config.password_min_length),
            cursor_key: CursorKey::derive(secret.expose().as_bytes()),
            secrets: SecretKeys::derive(secret.expose().as_bytes()),
            limiters,
            redis,
            config,
            shutting_down: AtomicBool::new(false),
            readiness: tokio::sync::Mutex::new(None),
        })))
    }

    /// Whether graceful shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }

    /// How long sessions live, from the configuration.
    pub fn session_lifetimes(&self) -> Lifetimes {
        let secs = |d: std::time::Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        Lifetimes {
            idle: secs(self.config.refresh_idle),
            absolute: secs(self.config.refresh_absolute),
            reuse_grace: secs(self.config.refresh_reuse_grace),
        }
    }

    /// How long `Idempotency-Key` claims and answers last. The lease outlasts
    /// `REQUEST_TIMEOUT_SECONDS` (past which the server drops any request) by 30 s, so a claim
    /// is only ever taken over from a request that is gone.
    pub fn idempotency_terms(&self) -> Terms {
        let secs = |d: std::time::Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        Terms {
            lease: secs(self.config.request_timeout).saturating_add(IDEMPOTENCY_LEASE_MARGIN_SECS),
            ttl: secs(self.config.idempotency_ttl),
        }
    }

    /// Marks the start of graceful shutdown (`/readyz` turns 503).
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
    }
}
