//! Shared limiter state in Redis, for several instances behind a load balancer. Every check
//! is one Lua script, so concurrent requests cannot overshoot a budget. When Redis cannot be
//! reached the callers fall back to their local state (never to "unlimited"); this store
//! retries Redis every few seconds and reports its state to `/readyz`.

use std::{
    net::IpAddr,
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use redis::{
    Client, Script,
    aio::{ConnectionManager, ConnectionManagerConfig},
};

use super::Decision;
use crate::config::ThrottleConfig;

const RETRY_EVERY: Duration = Duration::from_secs(5);
const TIMEOUT: Duration = Duration::from_millis(300);

/// GCRA token bucket. KEYS[1]: bucket; ARGV: burst, milliseconds per token.
/// Returns {allowed, remaining, reset_secs, retry_after_secs}.
const BUCKET_SCRIPT: &str = r"
local burst = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - interval * burst
if allow_at > now then
  return {0, 0, math.ceil((tat - now) / 1000), math.max(1, math.ceil((allow_at - now) / 1000))}
end
redis.call('SET', KEYS[1], new_tat, 'PX', (new_tat - now) + 1000)
local remaining = math.floor((interval * burst - (new_tat - now)) / interval)
return {1, remaining, math.ceil((new_tat - now) / 1000), 0}
";

/// Login attempt reservation. KEYS: account, ip. ARGV: account free/max, ip free/max, the
/// window and the backoff table in milliseconds (from `login::LoginThrottle`). The policy is `login::wait_after`:
/// no wait below the free allowance, the table's entry for each failure past it (the last
/// entry repeating), and the rest of the hour at the hourly cap. Returns 0 when the attempt may
/// proceed (and is counted), else the seconds to wait.
const LOGIN_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local WINDOW = tonumber(ARGV[5])
local steps = #ARGV - 5
local function load(k)
  local v = redis.call('HMGET', k, 'c', 'w', 'l')
  local c = tonumber(v[1]) or 0
  local w = tonumber(v[2]) or now
  local l = tonumber(v[3]) or 0
  if now - w >= WINDOW then c = 0; w = now end
  return c, w, l
end
local function wait(c, free, max, w)
  if c >= max then return w + WINDOW - now end
  if c < free then return 0 end
  return tonumber(ARGV[5 + math.min(c - free + 1, steps)])
end
local ac, aw, al = load(KEYS[1])
local ic, iw, il = load(KEYS[2])
local locked = math.max(al, il)
if locked > now then return math.max(1, math.ceil((locked - now) / 1000)) end
ac = ac + 1
ic = ic + 1
redis.call('HSET', KEYS[1], 'c', ac, 'w', aw, 'l', now + wait(ac, tonumber(ARGV[1]), tonumber(ARGV[2]), aw))
redis.call('PEXPIRE', KEYS[1], 2 * WINDOW)
redis.call('HSET', KEYS[2], 'c', ic, 'w', iw, 'l', now + wait(ic, tonumber(ARGV[3]), tonumber(ARGV[4]), iw))
redis.call('PEXPIRE', KEYS[2], 2 * WINDOW)
return 0
";

/// Successful login. KEYS: account, ip. ARGV: ip free failures. Deletes the account's state and
/// gives the attempt back to the address.
const LOGIN_OK_SCRIPT: &str = r"
redis.call('DEL', KEYS[1])
local c = tonumber(redis.call('HGET', KEYS[2], 'c'))
if c and c > 0 then
  c = c - 1
  redis.call('HSET', KEYS[2], 'c', c)
  if c < tonumber(ARGV[1]) then
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    local l = tonumber(redis.call('HGET', KEYS[2], 'l')) or 0
    if l > now then redis.call('HSET', KEYS[2], 'l', now) end
  end
end
return 1
";

/// A connection to Redis that degrades to "unavailable" instead of failing requests.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    prefix: String,
    conn: RwLock<Option<ConnectionManager>>,
    /// Held while a connection is being made, so that concurrent callers wait for that one
    /// attempt (at most [`TIMEOUT`]) instead of each judging by local state meanwhile.
    connecting: tokio::sync::Mutex<()>,
    next_attempt: RwLock<Instant>,
    healthy: AtomicBool,
    bucket: Script,
    login: Script,
    login_ok: Script,
}

impl RedisStore {
    /// Prepares the store; nothing is connected until first use. `prefix` namespaces keys.
    pub fn new(url: &str, prefix: &str) -> Result<Self, redis::RedisError> {
        let client = Client::open(url)?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                prefix: prefix.to_owned(),
                conn: RwLock::new(None),
                connecting: tokio::sync::Mutex::new(()),
                next_attempt: RwLock::new(Instant::now()),
                healthy: AtomicBool::new(true),
                bucket: Script::new(BUCKET_SCRIPT),
                login: Script::new(LOGIN_SCRIPT),
                login_ok: Script::new(LOGIN_OK_SCRIPT),
            }),
        })
    }

    /// Whether the last contact with Redis worked.
    pub fn is_healthy(&self) -> bool {
        self.inner.healthy.load(Ordering::Relaxed)
    }

    /// A round trip (PING), for `/readyz`.
    pub async fn ping(&self) -> bool {
        let Some(mut conn) = self.connection().await else {
            return false;
        };
        let result: Result<String, _> = redis::cmd("PING").query_async(&mut conn).await;
        self.record(result.is_ok());
        result.is_ok()
    }

    fn current(&self) -> Option<ConnectionManager> {
        self.inner
            .conn
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    async fn connection(&self) -> Option<ConnectionManager> {
        // While Redis is known to be down, do not make every request wait for a timeout.
        if !self.is_healthy()
            && Instant::now()
                < *self
                    .inner
                    .next_attempt
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
        {
            return None;
        }
        if let Some(conn) = self.current() {
            return Some(conn);
        }
        // One attempt at a time; whoever waited for it uses its result. Without this, the
        // requests of a burst on a fresh instance would all be judged by local limits while
        // the first connection is made (two cold instances letting twice the budget through).
        let _attempt = self.inner.connecting.lock().await;
        if let Some(conn) = self.current() {
            return Some(conn);
        }
        {
            let next = *self
                .inner
                .next_attempt
                .read()
                .unwrap_or_else(|p| p.into_inner());
            if Instant::now() < next {
                return None;
            }
            *self
                .inner
                .next_attempt
                .write()
                .unwrap_or_else(|p| p.into_inner()) = Instant::now() + RETRY_EVERY;
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(1);
        match ConnectionManager::new_with_config(self.inner.client.clone(), config).await {
            Ok(conn) => {
                *self.inner.conn.write().unwrap_or_else(|p| p.into_inner()) = Some(conn.clone());
                self.record(true);
                Some(conn)
            }
            Err(e) => {
                self.record_error(&e);
                None
            }
        }
    }

    fn record(&self, ok: bool) {
        let was = self.inner.healthy.swap(ok, Ordering::Relaxed);
        if ok && !was {
            tracing::info!(
                event = "redis_recovered",
                "Redis reachable again; shared limits resumed"
            );
        }
    }

    fn record_error(&self, err: &redis::RedisError) {
        *self
            .inner
            .next_attempt
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Instant::now() + RETRY_EVERY;
        if self.inner.healthy.swap(false, Ordering::Relaxed) {
            tracing::warn!(event = "redis_unavailable", error = %err, "Redis unreachable; using local limits until it is back");
        }
    }

    /// Runs a script; `None` (and local fallback) on any failure.
    async fn run<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        keys: &[String],
        args: &[u64],
    ) -> Option<T> {
        let mut conn = self.connection().await?;
        let mut invocation = script.prepare_invoke();
        for key in keys {
            invocation.key(key);
        }
        for arg in args {
            invocation.arg(*arg);
        }
        match tokio::time::timeout(TIMEOUT, invocation.invoke_async(&mut conn)).await {
            Ok(Ok(value)) => {
                self.record(true);
                Some(value)
            }
            Ok(Err(e)) => {
                self.record_error(&e);
                None
            }
            Err(_) => {
                let e = redis::RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "Redis timed out",
                ));
                self.record_error(&e);
                None
            }
        }
    }

    /// One request against the shared bucket `name`/`key`.
    pub async fn bucket(
        &self,
        name: &str,
        key: &str,
        burst: u32,
        refill_every: Duration,
        window_secs: u64,
    ) -> Option<Decision> {
        let redis_key = format!("{}:{name}:{key}", self.inner.prefix);
        let interval_ms = refill_every.as_millis().max(1) as u64;
        let (allowed, remaining, reset, retry): (u64, u64, u64, u64) = self
            .run(
                &self.inner.bucket,
                &[redis_key],
                &[u64::from(burst), interval_ms],
            )
            .await?;
        Some(Decision {
            allowed: allowed == 1,
            limit: burst,
            remaining: remaining as u32,
            reset_secs: reset,
            retry_after_secs: retry,
            window_secs,
        })
    }

    /// Reserves a login attempt; `Some(Err(wait))` while throttled, `None` when Redis is down.
    pub async fn login_reserve(
        &self,
        account: &str,
        ip: IpAddr,
        account_cfg: ThrottleConfig,
        ip_cfg: ThrottleConfig,
        window_and_backoff_ms: &[u64],
    ) -> Option<Result<(), u64>> {
        let keys = [
            self.login_key(account),
            format!("{}:login-ip:{ip}", self.inner.prefix),
        ];
        let mut args = vec![
            u64::from(account_cfg.free_failures),
            u64::from(account_cfg.max_failures_per_hour),
            u64::from(ip_cfg.free_failures),
            u64::from(ip_cfg.max_failures_per_hour),
        ];
        args.extend_from_slice(window_and_backoff_ms);
        let wait: u64 = self.run(&self.inner.login, &keys, &args).await?;
        Some(if wait == 0 { Ok(()) } else { Err(wait) })
    }

    /// After a successful login: clears the account's failures and takes the attempt back off
    /// the address's count (lifting its wait if only that attempt caused it). False when Redis
    /// is down.
    pub async fn login_succeeded(&self, account: &str, ip: IpAddr, ip_cfg: ThrottleConfig) -> bool {
        let keys = [
            self.login_key(account),
            format!("{}:login-ip:{ip}", self.inner.prefix),
        ];
        let done: Option<u64> = self
            .run(
                &self.inner.login_ok,
                &keys,
                &[u64::from(ip_cfg.free_failures)],
            )
            .await;
        done.is_some()
    }

    fn login_key(&self, account: &str) -> String {
        format!("{}:login-acct:{account}", self.inner.prefix)
    }
}
