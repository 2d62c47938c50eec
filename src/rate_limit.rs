//! Abuse limits: a per-client request budget, per-IP registration limits, and login
//! throttling per account and per IP. Local (in-process) state, or shared through Redis.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::http::HeaderMap;
use governor::{
    Quota, RateLimiter,
    clock::{Clock, DefaultClock},
    middleware::StateInformationMiddleware,
    state::keyed::DefaultKeyedStateStore,
};
use ipnet::IpNet;

use crate::{config::ThrottleConfig, redis_store::RedisStore};

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
}

type Keyed =
    RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// A token bucket per key: `burst` requests at once, refilled at `per_period` over `period`.
pub struct LocalBucket {
    limiter: Keyed,
    limit: u32,
    refill_every: Duration,
}

impl LocalBucket {
    pub fn new(burst: u32, per_period: u32, period: Duration) -> Self {
        let burst_nz = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let refill_every = period / per_period.max(1);
        let quota = Quota::with_period(refill_every.max(Duration::from_nanos(1)))
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst_nz);
        let limiter = RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>();
        Self {
            limiter,
            limit: burst.max(1),
            refill_every,
        }
    }

    pub fn check(&self, key: &str) -> Decision {
        match self.limiter.check_key(&key.to_owned()) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                let used = self.limit.saturating_sub(remaining);
                Decision {
                    allowed: true,
                    limit: self.limit,
                    remaining,
                    reset_secs: (self.refill_every * used).as_secs_f64().ceil() as u64,
                    retry_after_secs: 0,
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Decision {
                    allowed: false,
                    limit: self.limit,
                    remaining: 0,
                    reset_secs: (self.refill_every * self.limit).as_secs_f64().ceil() as u64,
                    retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
                }
            }
        }
    }

    /// Drops the state of keys whose bucket is full again (bounded memory).
    pub fn prune(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
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
                .bucket(self.name, key, self.local.limit, self.local.refill_every)
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

/// Failed-login state of one account or one IP.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    window_start: Instant,
    locked_until: Instant,
}

const WINDOW: Duration = Duration::from_secs(3600);
const MAX_WAIT: Duration = Duration::from_secs(900);
const MAX_TRACKED: usize = 100_000;

/// The wait imposed after `count` failures: none while within the free allowance, then
/// 1 s, 2 s, 4 s, ... capped at 15 minutes; and the rest of the hour once the hourly cap is hit.
pub fn wait_after(count: u32, cfg: ThrottleConfig, window_left: Duration) -> Duration {
    if count >= cfg.max_failures_per_hour {
        return window_left;
    }
    if count < cfg.free_failures {
        return Duration::ZERO;
    }
    let exp = (count - cfg.free_failures).min(20);
    Duration::from_secs(1u64 << exp).min(MAX_WAIT)
}

/// Local failure counters for one kind of key.
struct FailureTable<K> {
    cfg: ThrottleConfig,
    entries: Mutex<HashMap<K, Failures>>,
}

impl<K: std::hash::Hash + Eq + Clone> FailureTable<K> {
    fn new(cfg: ThrottleConfig) -> Self {
        Self {
            cfg,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Reserves one attempt: refused (with the seconds to wait) while locked. The attempt is
    /// counted as a failure up front, so parallel guesses cannot exceed the budget; a success
    /// clears it.
    fn reserve(&self, key: &K, now: Instant) -> Result<(), u64> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_TRACKED {
            entries
                .retain(|_, f| now.duration_since(f.window_start) < WINDOW || f.locked_until > now);
        }
        let entry = entries.entry(key.clone()).or_insert(Failures {
            count: 0,
            window_start: now,
            locked_until: now,
        });
        if now.duration_since(entry.window_start) >= WINDOW {
            *entry = Failures {
                count: 0,
                window_start: now,
                locked_until: entry.locked_until,
            };
        }
        if entry.locked_until > now {
            return Err(ceil_secs(entry.locked_until - now));
        }
        entry.count += 1;
        let window_left = WINDOW.saturating_sub(now.duration_since(entry.window_start));
        // Only a real wait moves the lock. (Callers read `now` before taking the mutex, so a
        // zero wait written as "locked until now" could refuse a concurrent caller whose `now`
        // is a moment earlier: seen as stray 429s in the 200-login storm test.)
        let wait = wait_after(entry.count, self.cfg, window_left);
        if !wait.is_zero() {
            entry.locked_until = entry.locked_until.max(now + wait);
        }
        Ok(())
    }

    fn clear(&self, key: &K) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.remove(key);
    }

    /// Gives back a reservation that turned out not to be a failure (a correct password, or
    /// an attempt refused for another key). The wait it may have started is lifted too, unless
    /// earlier failures alone still call for one.
    fn release(&self, key: &K, now: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = entries.get_mut(key) {
            entry.count = entry.count.saturating_sub(1);
            if entry.count < self.cfg.free_failures {
                entry.locked_until = entry.locked_until.min(now);
            }
        }
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs_f64().ceil().max(1.0) as u64
}

/// Throttles password guessing per account (any submitted name, existing or not, so the
/// throttle reveals nothing) and per client IP.
pub struct LoginThrottle {
    accounts: FailureTable<String>,
    ips: FailureTable<IpAddr>,
    redis: Option<RedisStore>,
}

/// What the caller must do after the password check.
#[must_use]
pub struct LoginAttempt {
    account: String,
    ip: IpAddr,
}

impl LoginThrottle {
    pub fn new(account: ThrottleConfig, ip: ThrottleConfig, redis: Option<RedisStore>) -> Self {
        Self {
            accounts: FailureTable::new(account),
            ips: FailureTable::new(ip),
            redis,
        }
    }

    /// Reserves an attempt for `account` from `ip`, or says how long to wait.
    pub async fn begin(&self, account: &str, ip: IpAddr) -> Result<LoginAttempt, u64> {
        if let Some(redis) = &self.redis
            && let Some(result) = redis
                .login_reserve(account, ip, self.accounts.cfg, self.ips.cfg)
                .await
        {
            return result.map(|()| LoginAttempt {
                account: account.to_owned(),
                ip,
            });
        }
        let now = Instant::now();
        self.ips.reserve(&ip, now)?;
        if let Err(wait) = self.accounts.reserve(&account.to_owned(), now) {
            self.ips.release(&ip, now);
            return Err(wait);
        }
        Ok(LoginAttempt {
            account: account.to_owned(),
            ip,
        })
    }

    /// The password was right: the account starts afresh, and the attempt is not counted
    /// against the address (so a busy office behind one IP is not locked out by its logins).
    pub async fn succeeded(&self, attempt: LoginAttempt) {
        if let Some(redis) = &self.redis
            && redis
                .login_succeeded(&attempt.account, attempt.ip, self.ips.cfg)
                .await
        {
            return;
        }
        self.accounts.clear(&attempt.account);
        self.ips.release(&attempt.ip, Instant::now());
    }

    /// The password was wrong: the reservation stands as a failure.
    pub fn failed(&self, attempt: LoginAttempt) {
        drop(attempt);
    }
}

/// Finds the client address: the socket peer, or, when the peer is a trusted proxy, the
/// right-most `X-Forwarded-For` entry that is not itself a trusted proxy.
pub fn client_ip(peer: Option<SocketAddr>, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let Some(peer) = peer.map(|p| p.ip()) else {
        return IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    };
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) if is_trusted(&ip) => client = ip,
            Ok(ip) => return ip,
            Err(_) => return client,
        }
    }
    client
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

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: ThrottleConfig = ThrottleConfig {
        free_failures: 3,
        max_failures_per_hour: 10,
    };

    #[test]
    fn waits_grow_after_the_free_allowance_and_cap_at_the_hourly_limit() {
        let hour = Duration::from_secs(3600);
        assert_eq!(wait_after(2, CFG, hour), Duration::ZERO);
        assert_eq!(wait_after(3, CFG, hour), Duration::from_secs(1));
        assert_eq!(wait_after(4, CFG, hour), Duration::from_secs(2));
        assert_eq!(wait_after(5, CFG, hour), Duration::from_secs(4));
        assert_eq!(
            wait_after(10, CFG, Duration::from_secs(1234)),
            Duration::from_secs(1234)
        );
    }

    #[test]
    fn reservations_lock_after_the_free_allowance() {
        let table = FailureTable::new(CFG);
        let now = Instant::now();
        for _ in 0..3 {
            assert!(table.reserve(&"a".to_string(), now).is_ok());
        }
        assert_eq!(table.reserve(&"a".to_string(), now), Err(1));
        table.clear(&"a".to_string());
        assert!(table.reserve(&"a".to_string(), now).is_ok());
    }

    #[test]
    fn forwarded_for_is_ignored_unless_the_peer_is_trusted() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "203.0.113.9, 10.0.0.2".parse().unwrap());
        let peer: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        assert_eq!(client_ip(Some(peer), &headers, &[]), peer.ip());
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        assert_eq!(
            client_ip(Some(peer), &headers, &trusted),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn bucket_refuses_past_its_burst_with_retry_after() {
        let bucket = LocalBucket::new(2, 2, Duration::from_secs(60));
        assert!(bucket.check("k").allowed);
        assert_eq!(bucket.check("k").remaining, 0);
        let refused = bucket.check("k");
        assert!(!refused.allowed);
        assert!(refused.retry_after_secs >= 1 && refused.retry_after_secs <= 30);
        assert!(bucket.check("other").allowed);
    }
}

/// The client's IP address (see [`client_ip`]), as an extractor.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl axum::extract::FromRequestParts<crate::app::AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &crate::app::AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        Ok(ClientIp(client_ip(
            peer,
            &parts.headers,
            &state.config.trusted_proxies,
        )))
    }
}
