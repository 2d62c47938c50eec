//! In-process token buckets (governor's GCRA), one per client, in a bounded table.

use std::{num::NonZeroU32, time::Duration};

use governor::{
    Quota, RateLimiter,
    clock::{Clock, DefaultClock},
    middleware::StateInformationMiddleware,
    nanos::Nanos,
};

use super::{
    ClientKey, Decision,
    table::{BoundedTable, CAPACITY},
};

type Keyed = RateLimiter<
    ClientKey,
    BoundedTable<ClientKey, Nanos>,
    DefaultClock,
    StateInformationMiddleware,
>;

/// A token bucket per key: `burst` requests at once, refilled at `per_period` over `period`.
pub struct LocalBucket {
    limiter: Keyed,
    pub(super) limit: u32,
    pub(super) refill_every: Duration,
    period: Duration,
}

impl LocalBucket {
    pub fn new(burst: u32, per_period: u32, period: Duration) -> Self {
        let burst_nz = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let refill_every = period / per_period.max(1);
        let quota = Quota::with_period(refill_every.max(Duration::from_nanos(1)))
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst_nz);
        let limiter: Keyed =
            RateLimiter::new(quota, BoundedTable::new(CAPACITY), DefaultClock::default());
        Self {
            limiter,
            limit: burst.max(1),
            refill_every,
            period,
        }
    }

    pub fn check(&self, key: ClientKey) -> Decision {
        match self.limiter.check_key(&key) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                let used = self.limit.saturating_sub(remaining);
                Decision {
                    allowed: true,
                    limit: self.limit,
                    remaining,
                    reset_secs: (self.refill_every * used).as_secs_f64().ceil() as u64,
                    retry_after_secs: 0,
                    window_secs: self.window_secs(),
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
                    window_secs: self.window_secs(),
                }
            }
        }
    }

    /// The budget's period, in seconds (what `RateLimit-Policy` calls the window).
    pub fn window_secs(&self) -> u64 {
        self.period.as_secs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_refuses_past_its_burst_with_retry_after() {
        let bucket = LocalBucket::new(2, 2, Duration::from_secs(60));
        let k = ClientKey::User(1);
        assert!(bucket.check(k).allowed);
        assert_eq!(bucket.check(k).remaining, 0);
        let refused = bucket.check(k);
        assert!(!refused.allowed);
        assert!(refused.retry_after_secs >= 1 && refused.retry_after_secs <= 30);
        assert!(bucket.check(ClientKey::User(2)).allowed);
    }
}
