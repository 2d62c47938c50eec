//! Abuse limits: a per-client request budget, per-IP registration limits, and login
//! throttling per account and per IP. Each is kept in process ([`local`], [`login`]) or, with
//! `REDIS_URL`, shared between instances ([`redis`]), falling back to the local state (never to
//! "unlimited") while Redis is unreachable.

pub mod local;
pub mod login;
pub mod redis;

use std::{sync::Arc, time::Duration};

use self::{local::LocalBucket, login::LoginThrottle, redis::RedisStore};

/// The answer to "may this client make one more request?", with what the RateLimit headers
/// (draft-ietf-httpapi-ratelimit-headers-06) report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the budget is full again.
    pub reset_secs: u64,
    /// Seconds to wait before retrying (meaningful when refused).
    pub retry_after_secs: u64,
    /// The length of the budget's window, in seconds (the `w` of `RateLimit-Policy`).
    pub window_secs: u64,
}

/// A token bucket that is shared through Redis when it can be, and local otherwise.
pub struct Bucket {
    name: &'static str,
    /// Also holds the bucket's shape (burst, refill interval) used for the Redis check.
    local: LocalBucket,
    redis: Option<RedisStore>,
}

impl Bucket {
    pub fn new(
        name: &'static str,
        burst: u32,
        per_period: u32,
        period: Duration,
        redis: Option<RedisStore>,
    ) -> Self {
        Self {
            name,
            local: LocalBucket::new(burst, per_period, period),
            redis,
        }
    }

    pub async fn check(&self, key: &str) -> Decision {
        if let Some(redis) = &self.redis
            && let Some(decision) = redis
                .bucket(
                    self.name,
                    key,
                    self.local.limit,
                    self.local.refill_every,
                    self.local.window_secs(),
                )
                .await
        {
            return decision;
        }
        self.local.check(key)
    }

    pub fn prune(&self) {
        self.local.prune();
    }
}

/// All limiters of one instance.
pub struct Limiters {
    /// `None` when RATE_LIMIT_PER_MINUTE is 0.
    pub requests: Option<Bucket>,
    pub registrations: Bucket,
    pub logins: LoginThrottle,
}

impl Limiters {
    pub fn new(config: &crate::config::Config, redis: Option<RedisStore>) -> Arc<Self> {
        let requests = (config.rate_limit_per_minute > 0).then(|| {
            Bucket::new(
                "req",
                config.rate_limit_per_minute,
                config.rate_limit_per_minute,
                Duration::from_secs(60),
                redis.clone(),
            )
        });
        let registrations = Bucket::new(
            "reg",
            config.register_burst,
            config.register_per_hour,
            Duration::from_secs(3600),
            redis.clone(),
        );
        let logins = LoginThrottle::new(config.login_account, config.login_ip, redis);
        Arc::new(Self {
            requests,
            registrations,
            logins,
        })
    }

    /// Frees memory held for idle clients; called periodically.
    pub fn prune(&self) {
        if let Some(requests) = &self.requests {
            requests.prune();
        }
        self.registrations.prune();
    }
}
