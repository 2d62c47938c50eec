//! How many connections the server holds: in all (`MAX_CONNECTIONS`, by default what the
//! file-descriptor limit allows) and per client network (`MAX_CONNECTIONS_PER_IP`, IPv6 per
//! `/IPV6_PREFIX_LENGTH`). A connection beyond either is closed as soon as it is accepted, so
//! the kernel's backlog keeps draining and a flood never queues ahead of other clients.

use std::{
    collections::{HashMap, hash_map::Entry},
    net::IpAddr,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use ipnet::IpNet;

use crate::domain::client::network_key;

/// File descriptors kept for everything that is not a client connection, on top of three per
/// database connection (a SQLite connection holds the database, its `-wal` and its `-shm`; a
/// PostgreSQL one a socket): stdio, the listeners, the runtime's epoll and wake-up descriptors,
/// Redis, the metrics listener and its scrapes, log files, the secret file, and headroom for
/// a connection that is accepted only to be refused.
const RESERVED_FDS: u64 = 128;
/// The default is never above this, whatever the limit (an unlimited `RLIMIT_NOFILE`).
const MAX_DEFAULT_CONNECTIONS: u64 = 1 << 20;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the soft limit now in force
/// (`None` where it cannot be read; the caller then needs `MAX_CONNECTIONS`).
pub fn raise_fd_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => Some(limit),
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the file-descriptor limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE)
                .ok()
                .map(|(soft, _)| soft)
        }
    }
}

/// `MAX_CONNECTIONS` when unset: the soft fd limit minus `3 × DB_MAX_CONNECTIONS + 128`
/// ([`RESERVED_FDS`]), at least 1.
pub fn default_max_connections(fd_limit: u64, db_max_connections: u32) -> usize {
    let reserved = 3 * u64::from(db_max_connections) + RESERVED_FDS;
    let n = fd_limit
        .saturating_sub(reserved)
        .clamp(1, MAX_DEFAULT_CONNECTIONS);
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Why a connection was refused; the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `MAX_CONNECTIONS` are open.
    Total,
    /// `MAX_CONNECTIONS_PER_IP` are open from the client's address (IPv6: its network).
    PerIp,
}

impl Refused {
    pub fn label(self) -> &'static str {
        match self {
            Refused::Total => "total",
            Refused::PerIp => "per_ip",
        }
    }
}

/// The open-connection counts. One lock, O(1) per accept and per close; the per-address map
/// holds only addresses with a connection open (an entry goes when its count returns to 0),
/// so it is never larger than `max_total`.
#[derive(Debug)]
pub struct ConnectionLimits {
    max_total: usize,
    max_per_ip: usize,
    ipv6_prefix: u8,
    /// Addresses counted in the total only: a trusted proxy carries many clients.
    shared: Vec<IpNet>,
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// One open connection's place in the counts; given back on drop.
#[derive(Debug)]
pub struct Permit {
    limits: Arc<ConnectionLimits>,
    key: Option<IpAddr>,
}

impl ConnectionLimits {
    /// `shared`: addresses (the trusted proxies) whose connections count only in the total.
    pub fn new(max_total: usize, max_per_ip: usize, ipv6_prefix: u8, shared: Vec<IpNet>) -> Self {
        ConnectionLimits {
            max_total: max_total.max(1),
            max_per_ip: max_per_ip.max(1),
            ipv6_prefix,
            shared,
            counts: Mutex::new(Counts::default()),
        }
    }

    fn counts(&self) -> MutexGuard<'_, Counts> {
        // Nothing panics while holding the lock; a poisoned one still holds valid counts.
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a new connection from `peer`, or says which limit it is over.
    pub fn try_acquire(self: &Arc<Self>, peer: IpAddr) -> Result<Permit, Refused> {
        let peer = peer.to_canonical();
        let key = (!self.shared.iter().any(|net| net.contains(&peer)))
            .then(|| network_key(peer, self.ipv6_prefix));
        let mut counts = self.counts();
        if counts.total >= self.max_total {
            return Err(Refused::Total);
        }
        if let Some(key) = key {
            let open = counts.per_ip.entry(key).or_insert(0);
            // Refused only when at least one is open, so no zero entry is ever left behind.
            if *open >= self.max_per_ip {
                return Err(Refused::PerIp);
            }
            *open += 1;
        }
        counts.total += 1;
        Ok(Permit {
            limits: self.clone(),
            key,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.counts().total
    }

    #[cfg(test)]
    fn tracked_networks(&self) -> usize {
        self.counts().per_ip.len()
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut counts = self.limits.counts();
        counts.total -= 1;
        if let Some(key) = self.key
            && let Entry::Occupied(mut open) = counts.per_ip.entry(key)
        {
            *open.get_mut() -= 1;
            if *open.get() == 0 {
                open.remove();
            }
        }
    }
}

/// Logs refused connections as one warning every [`RefusalLog::EVERY`] at most, with how
/// many were refused since the last one; every refusal is counted in
/// `connections_refused_total{reason}`.
#[derive(Debug, Default)]
pub struct RefusalLog {
    last_warning: Option<Instant>,
    total: u64,
    per_ip: u64,
}

impl RefusalLog {
    const EVERY: Duration = Duration::from_secs(5);

    pub fn refused(&mut self, why: Refused, limits: &ConnectionLimits) {
        metrics::counter!("connections_refused_total", "reason" => why.label()).increment(1);
        match why {
            Refused::Total => self.total += 1,
            Refused::PerIp => self.per_ip += 1,
        }
        if self
            .last_warning
            .is_some_and(|at| at.elapsed() < Self::EVERY)
        {
            return;
        }
        tracing::warn!(
            refused_total = self.total,
            refused_per_ip = self.per_ip,
            open = limits.open(),
            max_connections = limits.max_total,
            max_connections_per_ip = limits.max_per_ip,
            "connections refused: over MAX_CONNECTIONS or MAX_CONNECTIONS_PER_IP (at most one such warning per {:?})",
            Self::EVERY
        );
        self.last_warning = Some(Instant::now());
        self.total = 0;
        self.per_ip = 0;
    }
}

/// `accept` failures that are the system's, not one client's (out of descriptors or memory):
/// wait 10 ms, doubling to 1 s, until an accept succeeds; one warning per burst.
#[derive(Debug, Default)]
pub struct AcceptBackoff {
    delay: Option<Duration>,
    failures: u64,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(10);
    const MAX: Duration = Duration::from_secs(1);

    /// Notes a failure; returns how long to wait before the next accept.
    pub fn failed(&mut self, error: &std::io::Error) -> Duration {
        self.failures += 1;
        let delay = match self.delay {
            None => {
                tracing::warn!(%error, "accept failed; backing off until it succeeds again");
                Self::FIRST
            }
            Some(d) => (d * 2).min(Self::MAX),
        };
        self.delay = Some(delay);
        delay
    }

    /// Notes a success, ending a burst of failures.
    pub fn succeeded(&mut self) {
        if self.delay.take().is_some() {
            tracing::info!(failures = self.failures, "accepting connections again");
            self.failures = 0;
        }
    }

    /// Errors about one connection only (it was reset before we took it): no back-off.
    pub fn is_per_connection(error: &std::io::Error) -> bool {
        use std::io::ErrorKind::*;
        matches!(
            error.kind(),
            ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted | WouldBlock
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn limits(total: usize, per_ip: usize) -> Arc<ConnectionLimits> {
        Arc::new(ConnectionLimits::new(total, per_ip, 64, Vec::new()))
    }

    #[test]
    fn one_address_gets_at_most_its_share_and_gets_it_back_on_close() {
        let limits = limits(100, 2);
        let a = limits.try_acquire(ip("192.0.2.1")).unwrap();
        let _b = limits.try_acquire(ip("192.0.2.1")).unwrap();
        assert_eq!(
            limits.try_acquire(ip("192.0.2.1")).unwrap_err(),
            Refused::PerIp
        );
        let _other = limits.try_acquire(ip("192.0.2.2")).unwrap();
        drop(a);
        assert!(limits.try_acquire(ip("192.0.2.1")).is_ok());
    }

    #[test]
    fn the_total_caps_every_address_together() {
        let limits = limits(3, 10);
        let held: Vec<_> = (1..=3)
            .map(|i| limits.try_acquire(ip(&format!("192.0.2.{i}"))).unwrap())
            .collect();
        assert_eq!(
            limits.try_acquire(ip("192.0.2.9")).unwrap_err(),
            Refused::Total
        );
        assert_eq!(limits.open(), 3);
        drop(held);
        assert_eq!(limits.open(), 0);
        assert!(limits.try_acquire(ip("192.0.2.9")).is_ok());
    }

    #[test]
    fn ipv6_addresses_in_one_network_share_a_count() {
        let limits = limits(100, 2);
        let _a = limits.try_acquire(ip("2001:db8:1:2::1")).unwrap();
        let _b = limits.try_acquire(ip("2001:db8:1:2:ffff::9")).unwrap();
        assert_eq!(
            limits.try_acquire(ip("2001:db8:1:2:1234::5")).unwrap_err(),
            Refused::PerIp
        );
        // The next /64 is another client.
        let _c = limits.try_acquire(ip("2001:db8:1:3::1")).unwrap();
        assert_eq!(limits.tracked_networks(), 2);
    }

    #[test]
    fn an_ipv4_mapped_address_counts_as_its_ipv4_address() {
        let limits = limits(100, 2);
        let _a = limits.try_acquire(ip("127.0.0.1")).unwrap();
        let _b = limits.try_acquire(ip("::ffff:127.0.0.1")).unwrap();
        assert_eq!(
            limits.try_acquire(ip("127.0.0.1")).unwrap_err(),
            Refused::PerIp
        );
        assert_eq!(limits.tracked_networks(), 1);
    }

    #[test]
    fn the_address_table_forgets_addresses_with_nothing_open() {
        let limits = limits(1_000_000, 1);
        for i in 0..10_000u32 {
            let permit = limits
                .try_acquire(IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i)))
                .unwrap();
            drop(permit);
        }
        // Refusals leave nothing behind either.
        let held = limits.try_acquire(ip("192.0.2.1")).unwrap();
        for _ in 0..100 {
            assert!(limits.try_acquire(ip("192.0.2.1")).is_err());
        }
        assert_eq!(limits.tracked_networks(), 1);
        drop(held);
        assert_eq!(limits.tracked_networks(), 0);
        assert_eq!(limits.open(), 0);
    }

    #[test]
    fn trusted_proxies_count_only_in_the_total() {
        let proxies = vec!["10.0.0.0/8".parse().unwrap()];
        let limits = Arc::new(ConnectionLimits::new(3, 1, 64, proxies));
        let _a = limits.try_acquire(ip("10.1.1.1")).unwrap();
        let _b = limits.try_acquire(ip("10.1.1.1")).unwrap();
        let _c = limits.try_acquire(ip("::ffff:10.1.1.1")).unwrap();
        assert_eq!(
            limits.try_acquire(ip("10.1.1.1")).unwrap_err(),
            Refused::Total
        );
        assert_eq!(limits.tracked_networks(), 0);
    }

    #[test]
    fn the_default_leaves_room_for_the_database_and_files() {
        // 1024 - (3 * 16 + 128)
        assert_eq!(default_max_connections(1024, 16), 848);
        assert_eq!(default_max_connections(20_000, 16), 19_824);
        assert_eq!(default_max_connections(100, 16), 1);
        assert_eq!(default_max_connections(u64::MAX, 16), 1 << 20);
    }

    #[test]
    fn accept_failures_back_off_doubling_to_a_second_and_reset_on_success() {
        let mut backoff = AcceptBackoff::default();
        let emfile = std::io::Error::from_raw_os_error(24);
        let delays: Vec<_> = (0..9).map(|_| backoff.failed(&emfile)).collect();
        assert_eq!(delays[0], Duration::from_millis(10));
        assert_eq!(delays[1], Duration::from_millis(20));
        assert_eq!(delays[6], Duration::from_millis(640));
        assert_eq!(delays[7], Duration::from_secs(1));
        assert_eq!(delays[8], Duration::from_secs(1));
        backoff.succeeded();
        assert_eq!(backoff.failed(&emfile), Duration::from_millis(10));
        assert!(!AcceptBackoff::is_per_connection(&emfile));
        assert!(AcceptBackoff::is_per_connection(&std::io::Error::from(
            std::io::ErrorKind::ConnectionAborted
        )));
    }
}
