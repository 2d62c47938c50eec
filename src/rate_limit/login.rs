//! Login throttling: failed attempts counted per account (any submitted name, existing or not,
//! so the throttle reveals nothing) and per client address, with growing waits.

use std::{
    hash::Hash,
    net::IpAddr,
    time::{Duration, Instant},
};

use super::{
    redis::RedisStore,
    table::{BoundedTable, CAPACITY},
};
use crate::{config::ThrottleConfig, domain::client::network_key};

/// Failed-login state of one account or one IP.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    window_start: Instant,
    locked_until: Instant,
}

/// Failures are counted per hour.
const WINDOW: Duration = Duration::from_secs(3600);
/// The longest wait between attempts before the hourly cap.
const MAX_WAIT: Duration = Duration::from_secs(900);

/// The wait after the `step`-th failure past the free allowance (counting from 0): 1 s,
/// doubling, capped at 15 minutes.
fn backoff(step: u32) -> Duration {
    Duration::from_secs(1u64 << step.min(20)).min(MAX_WAIT)
}

/// Every distinct [`backoff`] wait in milliseconds, in order; the last one repeats. This is
/// the policy as the Redis script receives it, so that the policy is written only here.
pub fn backoff_table_ms() -> Vec<u64> {
    let mut table = Vec::new();
    for step in 0.. {
        let wait = backoff(step);
        table.push(wait.as_millis() as u64);
        if wait == MAX_WAIT {
            break;
        }
    }
    table
}

/// The wait imposed after `count` failures: none while within the free allowance, then
/// [`backoff`]; and the rest of the hour once the hourly cap is hit. The Redis script applies
/// the same rule to the same table ([`backoff_table_ms`]).
pub fn wait_after(count: u32, cfg: ThrottleConfig, window_left: Duration) -> Duration {
    if count >= cfg.max_failures_per_hour {
        return window_left;
    }
    if count < cfg.free_failures {
        return Duration::ZERO;
    }
    backoff(count - cfg.free_failures)
}

/// Local failure counters for one kind of key, in a bounded table (the least recently seen
/// key makes room: a spray of made-up names costs O(1) each and bounded memory).
struct FailureTable<K: Hash + Eq> {
    cfg: ThrottleConfig,
    entries: BoundedTable<K, Failures>,
}

impl<K: Hash + Eq + Clone> FailureTable<K> {
    fn new(cfg: ThrottleConfig) -> Self {
        Self {
            cfg,
            entries: BoundedTable::new(CAPACITY),
        }
    }

    /// Reserves one attempt: refused (with the seconds to wait) while locked. The attempt is
    /// counted as a failure up front, so parallel guesses cannot exceed the budget; a success
    /// clears it.
    fn reserve(&self, key: &K, now: Instant) -> Result<(), u64> {
        let fresh = || Failures {
            count: 0,
            window_start: now,
            locked_until: now,
        };
        self.entries.with(key.clone(), fresh, |entry| {
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
            // Only a real wait moves the lock. (Callers read `now` before taking the lock, so a
            // zero wait written as "locked until now" could refuse a concurrent caller whose
            // `now` is a moment earlier: seen as stray 429s in the 200-login storm test.)
            let wait = wait_after(entry.count, self.cfg, window_left);
            if !wait.is_zero() {
                entry.locked_until = entry.locked_until.max(now + wait);
            }
            Ok(())
        })
    }

    fn clear(&self, key: &K) {
        self.entries.remove(key);
    }

    /// Gives back a reservation that turned out not to be a failure (a correct password, or
    /// an attempt refused for another key). The wait it may have started is lifted too, unless
    /// earlier failures alone still call for one.
    fn release(&self, key: &K, now: Instant) {
        let free = self.cfg.free_failures;
        self.entries.update(key, |entry| {
            entry.count = entry.count.saturating_sub(1);
            if entry.count < free {
                entry.locked_until = entry.locked_until.min(now);
            }
        });
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs_f64().ceil().max(1.0) as u64
}

/// Throttles password guessing per account (any submitted name, existing or not, so the
/// throttle reveals nothing) and per client network (an IPv4 address, an IPv6 /prefix).
pub struct LoginThrottle {
    accounts: FailureTable<String>,
    ips: FailureTable<IpAddr>,
    ipv6_prefix: u8,
    redis: Option<RedisStore>,
    /// The window and [`backoff_table_ms`], as the Redis script takes them.
    redis_policy: Vec<u64>,
}

/// What the caller must do after the password check.
#[must_use]
pub struct LoginAttempt {
    account: String,
    ip: IpAddr,
}

impl LoginThrottle {
    pub fn new(
        account: ThrottleConfig,
        ip: ThrottleConfig,
        ipv6_prefix: u8,
        redis: Option<RedisStore>,
    ) -> Self {
        Self {
            accounts: FailureTable::new(account),
            ips: FailureTable::new(ip),
            ipv6_prefix,
            redis,
            redis_policy: std::iter::once(WINDOW.as_millis() as u64)
                .chain(backoff_table_ms())
                .collect(),
        }
    }

    /// Reserves an attempt for `account` from `client`, or says how long to wait.
    pub async fn begin(&self, account: &str, client: IpAddr) -> Result<LoginAttempt, u64> {
        let ip = network_key(client, self.ipv6_prefix);
        if let Some(redis) = &self.redis
            && let Some(result) = redis
                .login_reserve(
                    account,
                    ip,
                    self.accounts.cfg,
                    self.ips.cfg,
                    &self.redis_policy,
                )
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
    fn the_table_for_redis_is_the_same_backoff_ending_at_the_cap() {
        let table = backoff_table_ms();
        assert_eq!(&table[..3], &[1000, 2000, 4000]);
        assert_eq!(table.last(), Some(&900_000));
        let lenient = ThrottleConfig {
            free_failures: 1,
            max_failures_per_hour: 1000,
        };
        for (step, ms) in table.iter().enumerate() {
            let count = 1 + step as u32;
            assert_eq!(wait_after(count, lenient, WINDOW).as_millis() as u64, *ms);
        }
        assert_eq!(wait_after(40, lenient, WINDOW).as_millis() as u64, 900_000);
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
}
