//! Abuse limits: a per-client request budget, per-IP registration limits, and login
//! throttling per account and per IP. Each is kept in process ([`local`], [`login`]) or, with
//! `REDIS_URL`, shared between instances ([`redis`]), falling back to the local state (never to
//! "unlimited") while Redis is unreachable.

pub mod in_flight;
pub mod local;
pub mod login;
pub mod redis;
pub mod table;

use std::{fmt, net::IpAddr, sync::Arc, time::Duration};

use self::{in_flight::InFlight, local::LocalBucket, login::LoginThrottle, redis::RedisStore};
use crate::domain::client::network_key;

/// Whom a budget is charged to: a user (for a valid token) or a client network (the address,
/// or its IPv6 /prefix; see `domain::client::network_key`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKey {
    User(i64),
    /// An API key, by the start of its hash.
    ApiKey(u64),
    Network(IpAddr),
}

impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientKey::User(id) => write!(f, "u:{id}"),
            ClientKey::ApiKey(id) => write!(f, "k:{id:016x}"),
            ClientKey::Network(ip) => write!(f, "ip:{ip}"),
        }
    }
}

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

    pub async fn check(&self, key: ClientKey) -> Decision {
        if let Some(redis) = &self.redis
            && let Some(decision) = redis
                .bucket(
                    self.name,
                    &key.to_string(),
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
}

/// All limiters of one instance.
pub struct Limiters {
    /// `None` when RATE_LIMIT_PER_MINUTE is 0.
    pub requests: Option<Bucket>,
    pub registrations: Bucket,
    pub logins: LoginThrottle,
    /// `None` when MAX_IN_FLIGHT_PER_CLIENT is 0.
    pub in_flight: Option<InFlight>,
    /// IPv6 clients are counted per network of this many bits.
    ipv6_prefix: u8,
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
        let logins = LoginThrottle::new(
            config.login_account,
            config.login_ip,
            config.ipv6_prefix_length,
            redis,
        );
        Arc::new(Self {
            requests,
            registrations,
            logins,
            in_flight: InFlight::new(config.max_in_flight_per_client),
            ipv6_prefix: config.ipv6_prefix_length,
        })
    }

    /// The key a client address counts under in every budget (IPv6 per network).
    pub fn network(&self, ip: IpAddr) -> ClientKey {
        ClientKey::Network(network_key(ip, self.ipv6_prefix))
    }
}
