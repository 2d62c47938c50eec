//! The connection sets that bypass sqlx's pool, on one pool crate (deadpool), and what they
//! share with sqlx's pools: the memory of the last outage.
//!
//! Why bypass sqlx's pool at all: it pings every connection when it comes back (a Sync and a
//! wait for ReadyForQuery, not configurable; `sqlx-core` `pool/connection.rs`
//! `return_to_pool`), which on the hot PostgreSQL reads doubled the round trips per request
//! (seen with strace). And SQLite list pages are read with rusqlite, which sqlx cannot lend.
//!
//! - [`PgReaders`]: a managed pool of `PgConnection`s for the hot reads. A connection goes back
//!   as it is, which is safe only when its query ran to completion: one handed back mid-query
//!   (an error, or a request cancelled while waiting) is discarded at its next checkout.
//!   Connections also age out ([`MAX_LIFETIME`]), are pinged before use after sitting idle
//!   ([`IDLE_CHECK`]), and are replaced before use once an outage has been seen (below).
//! - [`SqlitePages`]: an unmanaged pool of read-only rusqlite connections, opened up front. A
//!   connection moves into a blocking task and comes back when that task drops it, even after
//!   a panic.
//! - [`Outages`]: when a query fails because the database went away (a PostgreSQL restart
//!   closes every connection), every connection opened before that moment is replaced before
//!   its next use, in both deadpool and sqlx pools, instead of each failing one request.

use std::{
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use rusqlite::{Connection, OpenFlags};
use sqlx::{ConnectOptions, Connection as _, PgConnection, postgres::PgConnectOptions};

use super::Error;

/// How long a request waits for a connection before answering 503.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// A PostgreSQL connection older than this is closed and replaced at its next checkout (as
/// sqlx's pool does by default), so server-side memory and settings do not drift forever.
pub const MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);
/// A PostgreSQL connection idle for longer than this is pinged before it is lent: a firewall
/// or a server restart may have cut it meanwhile. Busy connections are never pinged.
pub const IDLE_CHECK: Duration = Duration::from_secs(30);

/// The moment the database was last seen going away, shared by every pool of one [`super::Db`].
#[derive(Debug)]
pub(super) struct Outages {
    epoch: Instant,
    /// Nanoseconds after `epoch` of the last outage, plus one; 0 while there was none.
    last: AtomicU64,
}

impl Outages {
    pub fn new() -> Self {
        Self {
            epoch: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    /// Records that the database just failed at the connection level.
    pub fn record(&self) {
        let since = self.epoch.elapsed().as_nanos() as u64 + 1;
        self.last.fetch_max(since, Ordering::Relaxed);
    }

    /// Whether a connection opened at `opened` predates the last outage (and so is suspect).
    pub fn predate(&self, opened: Instant) -> bool {
        match self.last.load(Ordering::Relaxed) {
            0 => false,
            last => opened <= self.epoch + Duration::from_nanos(last - 1),
        }
    }

    /// Maps a driver error, recording an outage when the error means one.
    pub fn classify(&self, err: impl Into<Error>) -> Error {
        let err = err.into();
        if err.is_unavailable() {
            self.record();
        }
        err
    }
}

/// A PostgreSQL connection for hot reads, and whether a query on it is unfinished.
pub(super) struct PgReader {
    conn: PgConnection,
    busy: bool,
}

/// Opens and vets the hot-read connections.
pub(super) struct PgReaderManager {
    options: PgConnectOptions,
    outages: Arc<Outages>,
}

impl managed::Manager for PgReaderManager {
    type Type = PgReader;
    type Error = sqlx::Error;

    async fn create(&self) -> Result<PgReader, sqlx::Error> {
        Ok(PgReader {
            conn: self.options.connect().await?,
            busy: false,
        })
    }

    async fn recycle(
        &self,
        reader: &mut PgReader,
        metrics: &Metrics,
    ) -> RecycleResult<sqlx::Error> {
        if reader.busy {
            return Err(RecycleError::message(
                "handed back in the middle of a query",
            ));
        }
        if metrics.age() > MAX_LIFETIME {
            return Err(RecycleError::message("past its lifetime"));
        }
        if self.outages.predate(metrics.created) {
            return Err(RecycleError::message("opened before the last outage"));
        }
        if metrics.last_used() > IDLE_CHECK {
            reader.conn.ping().await?;
        }
        Ok(())
    }
}

/// PostgreSQL connections for the hot read paths (the point read, the per-request user
/// check, list pages). Writes and transactions stay on sqlx's pool.
pub(super) struct PgReaders {
    pool: managed::Pool<PgReaderManager>,
    outages: Arc<Outages>,
}

impl std::fmt::Debug for PgReaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgReaders")
            .field("status", &self.pool.status())
            .finish()
    }
}

impl PgReaders {
    /// Up to `size` connections, opened on first use.
    pub fn new(options: PgConnectOptions, size: usize, outages: Arc<Outages>) -> Self {
        let manager = PgReaderManager {
            options,
            outages: Arc::clone(&outages),
        };
        let pool = managed::Pool::builder(manager)
            .max_size(size)
            .wait_timeout(Some(ACQUIRE_TIMEOUT))
            .create_timeout(Some(ACQUIRE_TIMEOUT))
            .recycle_timeout(Some(ACQUIRE_TIMEOUT))
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .unwrap_or_else(|e| unreachable!("a runtime and timeouts are set: {e}"));
        Self { pool, outages }
    }

    /// Lends a connection (waiting at most [`ACQUIRE_TIMEOUT`]).
    pub async fn get(&self) -> Result<Lease, Error> {
        let reader = self
            .pool
            .get()
            .await
            .map_err(|e| self.outages.classify(e))?;
        Ok(Lease {
            reader,
            outages: Arc::clone(&self.outages),
        })
    }

    /// Connections (open, idle).
    pub fn usage(&self) -> PoolUsage {
        let status = self.pool.status();
        PoolUsage {
            open: status.size,
            idle: status.available,
            max: status.max_size,
        }
    }

    /// Closes every connection and refuses new reads (graceful shutdown).
    pub fn close(&self) {
        self.pool.close();
    }
}

/// A hot-read connection on loan. [`Lease::conn`] marks it busy; only [`Lease::finish`] with
/// a successful result marks it clean again. A lease dropped while busy (an error, or a
/// request cancelled mid-query) goes back to the pool busy, and is discarded at its next
/// checkout instead of being lent half-read.
pub(super) struct Lease {
    reader: managed::Object<PgReaderManager>,
    outages: Arc<Outages>,
}

impl Lease {
    /// The connection, marked busy until [`Lease::finish`].
    pub fn conn(&mut self) -> &mut PgConnection {
        self.reader.busy = true;
        &mut self.reader.conn
    }

    /// Ends the work started with [`Lease::conn`]: a success leaves the connection clean for
    /// its next user; an error is classified (noting an outage when it is one).
    pub fn finish<T>(&mut self, result: Result<T, sqlx::Error>) -> Result<T, Error> {
        match result {
            Ok(value) => {
                self.reader.busy = false;
                Ok(value)
            }
            Err(e) => Err(self.outages.classify(e)),
        }
    }
}

/// How many connections a pool holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PoolUsage {
    /// Connections open now.
    pub open: usize,
    /// Of those, how many are waiting to be lent.
    pub idle: usize,
    /// The most this pool opens.
    pub max: usize,
}

/// Read-only rusqlite connections for list pages, each used by one blocking task at a time.
pub(super) struct SqlitePages {
    pool: deadpool::unmanaged::Pool<Connection>,
}

impl std::fmt::Debug for SqlitePages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlitePages")
            .field("status", &self.pool.status())
            .finish()
    }
}

impl SqlitePages {
    /// Opens `size` read-only connections to the database at `path` (which must exist).
    pub fn open(path: &Path, size: usize) -> Result<Self, Error> {
        let pool = deadpool::unmanaged::Pool::from_config(&deadpool::unmanaged::PoolConfig {
            max_size: size,
            timeout: Some(ACQUIRE_TIMEOUT),
            runtime: Some(deadpool::Runtime::Tokio1),
        });
        for _ in 0..size {
            let conn = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            conn.busy_timeout(Duration::from_secs(5))?;
            // No memory map (as for the sqlx connections, see `Db::connect_with`): each
            // connection's mapping counts in the process's resident memory once touched, and a
            // deep OFFSET touches all of it (252 MB peak RSS over the benchmark with 16 MiB
            // each). Pages go through SQLite's own 2 MiB cache per connection instead.
            conn.pragma_update(None, "mmap_size", 0)?;
            conn.set_prepared_statement_cache_capacity(256);
            pool.try_add(conn)
                .map_err(|(_, e)| Error::other("SQLite page readers", e))?;
        }
        Ok(Self { pool })
    }

    /// Runs `read` on a connection, on the blocking thread pool. The connection returns to
    /// the pool when the task ends. When the caller stops waiting (its request was cancelled
    /// or timed out), the statement running for it is interrupted, so a deep read does not
    /// keep a connection and a core busy for nobody.
    pub async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&mut Connection) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let mut conn = self.pool.get().await?;
        let running = Arc::new(Mutex::new(Running::Yes(conn.get_interrupt_handle())));
        let interrupt = InterruptOnDrop(Arc::clone(&running));
        let result = tokio::task::spawn_blocking(move || {
            let result = read(&mut conn);
            // Under the lock: the connection goes back only once no interrupt can reach it.
            let mut state = running.lock().unwrap_or_else(|p| p.into_inner());
            *state = Running::No;
            drop(conn);
            result
        })
        .await
        .map_err(|e| Error::other("SQLite page task", e))?;
        drop(interrupt);
        result
    }

    pub fn usage(&self) -> PoolUsage {
        let status = self.pool.status();
        PoolUsage {
            open: status.size,
            idle: status.available,
            max: status.max_size,
        }
    }

    /// Refuses new reads (graceful shutdown); connections close as they come back.
    pub fn close(&self) {
        self.pool.close();
    }
}

/// Whether a page read still runs on its connection.
enum Running {
    Yes(rusqlite::InterruptHandle),
    No,
}

/// Interrupts the read when dropped before it finished (the request went away).
struct InterruptOnDrop(Arc<Mutex<Running>>);

impl Drop for InterruptOnDrop {
    fn drop(&mut self) {
        let running = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Running::Yes(handle) = &*running {
            handle.interrupt();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_opened_before_an_outage_are_suspect_and_later_ones_are_not() {
        let outages = Outages::new();
        let before = Instant::now();
        assert!(!outages.predate(before), "no outage yet");
        outages.record();
        let after = Instant::now();
        assert!(outages.predate(before));
        assert!(!outages.predate(after + Duration::from_millis(1)));
    }

    #[tokio::test]
    async fn a_page_read_whose_caller_stops_waiting_is_interrupted_and_its_connection_returns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.db");
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE t (x INTEGER)")
            .unwrap();
        let pages = SqlitePages::open(&path, 1).unwrap();
        // A statement that runs for many seconds (bounded, so a regression fails, not hangs).
        let endless = pages.read(|conn| {
            Ok(conn.query_row(
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 500000000) \
                 SELECT count(*) FROM c WHERE x < 0",
                [],
                |row| row.get::<_, i64>(0),
            )?)
        });
        assert!(
            tokio::time::timeout(Duration::from_millis(200), endless)
                .await
                .is_err(),
            "the statement was still running"
        );
        // The only connection comes back at once, not when the statement would have ended.
        let started = Instant::now();
        let next = pages
            .read(|conn| Ok(conn.query_row("SELECT 42", [], |row| row.get::<_, i64>(0))?))
            .await
            .unwrap();
        assert_eq!(next, 42);
        assert!(
            started.elapsed() < ACQUIRE_TIMEOUT,
            "{:?}",
            started.elapsed()
        );
    }
}
