//! Storage: the only module that writes SQL. Functions take and return domain types; the
//! differences between SQLite and PostgreSQL stay inside this module:
//!
//! - one SQL text for both backends wherever possible, run on either pool by [`on_pool!`];
//! - [`list::Dialect`] for the list query, whose text differs per backend;
//! - `match &self.backend` only where the backends differ in kind: connecting, migrating, and
//!   the hot reads that bypass sqlx's pool ([`pool`]).

pub mod api_keys;
pub mod audit;
pub mod employees;
mod error;
mod group_commit;
pub mod idempotency;
pub mod import;
pub mod list;
mod pool;
pub mod sessions;
mod statement;
pub mod users;
pub mod viewer;

use std::{str::FromStr, sync::Arc, time::Duration};

use sqlx::{
    Connection, PgConnection, PgPool, SqlitePool,
    postgres::{PgConnectOptions, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

pub use error::Error;
pub use pool::PoolUsage;

use crate::{
    config::{DatabaseUrl, MIN_DB_CONNECTIONS},
    files,
};
use group_commit::GroupCommit;
use pool::{ACQUIRE_TIMEOUT, MAX_LIFETIME, Outages, PgReaders, SqlitePages};

/// A handle on the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    backend: Backend,
    /// Shared with every pool: the last time the database went away.
    outages: Arc<Outages>,
    /// Woken after every write: it may have recorded audit entries to seal
    /// ([`Db::written`]).
    written: Arc<tokio::sync::Notify>,
}

#[derive(Clone, Debug)]
enum Backend {
    /// Hot reads (point reads, the per-request user check, list pages) go through `hot`;
    /// everything else through sqlx's pool.
    Postgres {
        pool: PgPool,
        hot: Arc<PgReaders>,
        /// The options without a statement timeout: migrations may take longer than a request.
        migrations: Box<PgConnectOptions>,
    },
    /// SQLite allows one writer at a time: all writes go through a single connection, so they
    /// queue in the pool instead of failing with SQLITE_BUSY; reads use their own pool and,
    /// with WAL, never wait for the writer. List pages are read through `pages` (rusqlite).
    /// Employee writes queue in `groups`, which commits them in groups on that connection.
    Sqlite {
        writer: SqlitePool,
        groups: GroupCommit,
        reader: SqlitePool,
        pages: Arc<SqlitePages>,
    },
}

/// Runs `$body` with `$pool` bound to the right sqlx pool of either backend (`read` or
/// `write`), and maps its error to [`Error`], noting outages. The body is the same text for
/// both, compiled once per backend type. After a write, the audit sealer is woken: the write
/// may have recorded entries (see [`audit`]).
macro_rules! on_pool {
    ($db:expr, read, |$pool:ident| $body:expr) => {
        match &$db.backend {
            $crate::db::Backend::Postgres { pool: $pool, .. } => $body,
            $crate::db::Backend::Sqlite { reader: $pool, .. } => $body,
        }
        .map_err(|e| $db.outages.classify(e))
    };
    ($db:expr, write, |$pool:ident| $body:expr) => {{
        let result = match &$db.backend {
            $crate::db::Backend::Postgres { pool: $pool, .. } => $body,
            $crate::db::Backend::Sqlite { writer: $pool, .. } => $body,
        };
        $db.written.notify_one();
        result.map_err(|e| $db.outages.classify(e))
    }};
}
pub(crate) use on_pool;

/// Starts a write transaction on either backend's write pool. SQLite: `BEGIN IMMEDIATE`, so
/// the write lock is taken at once, waiting (busy timeout) for another process's writer (the
/// CLI beside the server, a second instance on the same file) instead of failing with
/// SQLITE_BUSY when a read lock is later upgraded.
pub(crate) trait BeginWrite {
    type Db: sqlx::Database;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>;
}

impl BeginWrite for PgPool {
    type Db = sqlx::Postgres;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error> {
        self.begin().await
    }
}

impl BeginWrite for SqlitePool {
    type Db = sqlx::Sqlite;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error> {
        self.begin_with("BEGIN IMMEDIATE").await
    }
}

/// Whether a SQLite connection coming back to its pool is fit to lend again. After
/// SQLITE_FULL or an I/O error SQLite may roll the whole transaction back by itself; the
/// ROLLBACK that sqlx then sends for the dropped transaction fails, and sqlx goes on counting
/// the connection as inside a transaction, so every later `BEGIN` on it fails: with one writer,
/// every write would fail (500) until a restart. Such a connection is closed instead, and the
/// pool opens a fresh one.
async fn still_in_step(conn: &mut sqlx::SqliteConnection) -> Result<bool, sqlx::Error> {
    // A count of 0 is settled: a committed transaction counts down as it commits, and a
    // dropped one only after its queued ROLLBACK ran (so no round trip on every write).
    if !conn.is_in_transaction() {
        return Ok(true);
    }
    // Runs after the queued ROLLBACK of a dropped transaction, so the count below is settled.
    conn.ping().await?;
    Ok(!conn.is_in_transaction())
}

/// Caps the database `conn` writes to at `bytes` (rounded down to whole pages, at least one):
/// SQLite then refuses a write that would grow the file past it with SQLITE_FULL. A cap below
/// the current size holds the file at its current size.
async fn limit_size(conn: &mut sqlx::SqliteConnection, bytes: u64) -> Result<(), sqlx::Error> {
    let page_size: i64 = sqlx::query_scalar("PRAGMA page_size")
        .fetch_one(&mut *conn)
        .await?;
    let pages = (bytes / page_size.max(1) as u64).max(1);
    // A pragma takes no bound parameters; `pages` is an integer we computed.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "PRAGMA max_page_count = {pages}"
    )))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// How `DB_MAX_CONNECTIONS` is shared between a backend's connection sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sizes {
    /// PostgreSQL: sqlx's pool (writes, transactions, cold reads). SQLite: the point readers.
    general: u32,
    /// PostgreSQL: the hot readers. SQLite: the list-page readers.
    hot: u32,
}

impl Sizes {
    /// PostgreSQL: half the connections for hot reads, half for everything else.
    fn postgres(total: u32) -> Self {
        let hot = (total / 2).max(1);
        Self {
            general: total.saturating_sub(hot).max(1),
            hot,
        }
    }

    /// SQLite: one writer besides these. Point readers: half of the rest, 1 to 4 (more than
    /// cores buys little, each holds its cache). Page readers: the remainder, at most one per
    /// core (a page is pure CPU on its thread) and at most 4.
    fn sqlite(total: u32, cores: u32) -> Self {
        let rest = total.saturating_sub(1).max(2);
        let general = (rest / 2).clamp(1, 4);
        let hot = rest.saturating_sub(general).clamp(1, cores.clamp(2, 4));
        Self { general, hot }
    }
}

/// How [`Db::connect_with`] sizes and bounds its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DbOptions {
    /// Connections in all (raised to [`MIN_DB_CONNECTIONS`] when lower).
    pub max_connections: u32,
    /// PostgreSQL: statements are cancelled by the server after this long (the server sets it
    /// below its request timeout, so a query does not outlive the request that asked for it).
    /// Migrations are not bound by it.
    pub statement_timeout: Option<Duration>,
    /// SQLite: the most bytes the database file may hold (`PRAGMA max_page_count` on the
    /// writer); a write that needs more is refused as [`Error::Full`], as on a full disk.
    pub sqlite_max_size: Option<u64>,
}

impl DbOptions {
    /// `max_connections` connections, no other bound.
    pub fn new(max_connections: u32) -> Self {
        Self {
            max_connections,
            statement_timeout: None,
            sqlite_max_size: None,
        }
    }
}

impl Db {
    /// Opens the pools, with at most `max_connections` connections in all (raised to
    /// [`MIN_DB_CONNECTIONS`] when lower). SQLite files (and their folder) are created when
    /// missing, unless the URL says `mode=ro`.
    pub async fn connect(url: &DatabaseUrl, max_connections: u32) -> Result<Self, Error> {
        Self::connect_with(url, DbOptions::new(max_connections)).await
    }

    /// [`Db::connect`], with PostgreSQL statements cancelled by the server after
    /// `statement_timeout` (see [`DbOptions::statement_timeout`]).
    pub async fn connect_with_timeout(
        url: &DatabaseUrl,
        max_connections: u32,
        statement_timeout: Option<Duration>,
    ) -> Result<Self, Error> {
        Self::connect_with(
            url,
            DbOptions {
                statement_timeout,
                ..DbOptions::new(max_connections)
            },
        )
        .await
    }

    /// Opens the pools as `options` say.
    pub async fn connect_with(url: &DatabaseUrl, options: DbOptions) -> Result<Self, Error> {
        let DbOptions {
            max_connections,
            statement_timeout,
            sqlite_max_size,
        } = options;
        let max_connections = max_connections.max(MIN_DB_CONNECTIONS);
        let outages = Arc::new(Outages::new());
        let backend = match url {
            DatabaseUrl::Postgres(url) => {
                let sizes = Sizes::postgres(max_connections);
                let migrations = PgConnectOptions::from_str(url.expose())?;
                // One plain connection first: a pool retries until its timeout and then reports
                // only that it timed out; this says why (refused, password, missing database).
                PgConnection::connect_with(&migrations)
                    .await
                    .map_err(|e| error::connect_error(e, &migrations))?
                    .close()
                    .await?;
                let mut options = migrations.clone().statement_cache_capacity(256);
                if let Some(timeout) = statement_timeout {
                    options = options.options([(
                        "statement_timeout",
                        format!("{}ms", timeout.as_millis().max(1)),
                    )]);
                }
                let retire = Arc::clone(&outages);
                let pool = PgPoolOptions::new()
                    .max_connections(sizes.general)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .max_lifetime(MAX_LIFETIME)
                    // sqlx would otherwise ping (Sync, wait for ReadyForQuery) before lending a
                    // connection: a second round trip on every request, seen with strace.
                    // Instead, connections older than the last outage are replaced unseen.
                    .test_before_acquire(false)
                    .before_acquire(move |_conn, meta| {
                        let opened = std::time::Instant::now().checked_sub(meta.age);
                        let keep = opened.is_none_or(|opened| !retire.predate(opened));
                        Box::pin(async move { Ok(keep) })
                    })
                    .connect_with(options.clone())
                    .await?;
                let hot = PgReaders::new(options, sizes.hot as usize, Arc::clone(&outages));
                Backend::Postgres {
                    pool,
                    hot: Arc::new(hot),
                    migrations: Box::new(migrations),
                }
            }
            DatabaseUrl::Sqlite { path, read_only } => {
                let cores = std::thread::available_parallelism().map_or(2, |n| n.get() as u32);
                let sizes = Sizes::sqlite(max_connections, cores);
                if *read_only {
                    if !path.is_file() {
                        return Err(Error::Unavailable(format!(
                            "{} does not exist (a database opened with mode=ro is never created)",
                            path.display()
                        )));
                    }
                } else {
                    // Password hashes and dates of birth: a folder and file only their owner
                    // reads (SQLite gives `-wal` and `-shm` the database file's mode).
                    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                        files::create_private_dir(parent)
                            .map_err(|e| Error::other(&parent.display().to_string(), e))?;
                    }
                    files::create_private_file(path)
                        .map_err(|e| Error::other(&path.display().to_string(), e))?;
                }
                let options = SqliteConnectOptions::new()
                    .filename(path)
                    .busy_timeout(Duration::from_secs(5))
                    .foreign_keys(true)
                    .statement_cache_capacity(256)
                    // No memory map: SQLite drops a connection's map whenever a transaction
                    // begins after another one committed (a munmap with a TLB shootdown on
                    // every core, then page faults to map it again). Under writes that was 8% of
                    // the server's CPU and halved POST throughput (perf, bench/run.sh); reads
                    // copy from the page cache instead, which measured no slower.
                    .pragma("mmap_size", "0");
                let writer_options = if *read_only {
                    // Every write is refused by SQLite itself (SQLITE_READONLY): Error::ReadOnly.
                    options.clone().read_only(true)
                } else {
                    options
                        .clone()
                        .create_if_missing(true)
                        .journal_mode(SqliteJournalMode::Wal)
                        // WAL + FULL: the WAL is fsynced at every commit, before the write is
                        // acknowledged, so it survives a killed process and a power loss alike.
                        .synchronous(SqliteSynchronous::Full)
                };
                let writer = SqlitePoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .after_connect(move |conn, _meta| {
                        Box::pin(async move {
                            if let Some(bytes) = sqlite_max_size {
                                limit_size(conn, bytes).await?;
                            }
                            Ok(())
                        })
                    })
                    .after_release(|conn, _meta| Box::pin(still_in_step(conn)))
                    .connect_with(writer_options)
                    .await?;
                let reader = SqlitePoolOptions::new()
                    .max_connections(sizes.general)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(options.read_only(true))
                    .await?;
                let pages = SqlitePages::open(path, sizes.hot as usize)?;
                Backend::Sqlite {
                    groups: GroupCommit::start(writer.clone()),
                    writer,
                    reader,
                    pages: Arc::new(pages),
                }
            }
        };
        Ok(Self {
            backend,
            outages,
            written: Arc::new(tokio::sync::Notify::new()),
        })
    }

    /// Whether the database at `url` can be used, without creating or changing anything:
    /// PostgreSQL answers a query; a SQLite file is readable, or its folder can be created or
    /// written. A description of what was found, or why not.
    pub async fn probe(url: &DatabaseUrl) -> Result<String, Error> {
        match url {
            DatabaseUrl::Postgres(url) => {
                let options = PgConnectOptions::from_str(url.expose())?;
                let mut conn = PgConnection::connect_with(&options)
                    .await
                    .map_err(|e| error::connect_error(e, &options))?;
                let version: String = sqlx::query_scalar("SHOW server_version")
                    .fetch_one(&mut conn)
                    .await?;
                let _ = conn.close().await;
                Ok(format!("PostgreSQL {version} answers"))
            }
            DatabaseUrl::Sqlite { path, read_only } => {
                if path.exists() {
                    let options = SqliteConnectOptions::new().filename(path).read_only(true);
                    let mut conn = sqlx::SqliteConnection::connect_with(&options).await?;
                    sqlx::query_scalar::<_, i64>("SELECT count(*) FROM sqlite_master")
                        .fetch_one(&mut conn)
                        .await?;
                    let _ = conn.close().await;
                    let mode = if *read_only { " read-only" } else { "" };
                    return Ok(format!("{} opens{mode}", path.display()));
                }
                if *read_only {
                    return Err(Error::Unavailable(format!(
                        "{} does not exist (a database opened with mode=ro is never created)",
                        path.display()
                    )));
                }
                // The nearest folder that exists must be writable for the file to be created.
                let mut folder = path.parent();
                while let Some(dir) = folder {
                    if dir.as_os_str().is_empty() || dir.exists() {
                        break;
                    }
                    folder = dir.parent();
                }
                let dir = folder
                    .filter(|d| !d.as_os_str().is_empty())
                    .unwrap_or(std::path::Path::new("."));
                let writable = std::fs::metadata(dir)
                    .map(|m| m.is_dir() && !m.permissions().readonly())
                    .unwrap_or(false);
                if writable {
                    Ok(format!("{} will be created at start", path.display()))
                } else {
                    Err(Error::Unavailable(format!(
                        "{} cannot be created: {} is not a writable folder",
                        path.display(),
                        dir.display()
                    )))
                }
            }
        }
    }

    /// The SQL dialect of this database.
    pub(crate) fn dialect(&self) -> list::Dialect {
        match self.backend {
            Backend::Postgres { .. } => list::Dialect::Postgres,
            Backend::Sqlite { .. } => list::Dialect::Sqlite,
        }
    }

    /// Applies the embedded migrations. On PostgreSQL sqlx holds an advisory lock meanwhile,
    /// so instances starting together do not race.
    pub async fn migrate(&self) -> Result<(), Error> {
        let result = match &self.backend {
            Backend::Postgres { migrations, .. } => {
                let mut conn = PgConnection::connect_with(migrations)
                    .await
                    .map_err(|e| self.outages.classify(e))?;
                let result = sqlx::migrate!("migrations/postgres").run(&mut conn).await;
                let _ = conn.close().await;
                result
            }
            Backend::Sqlite { writer, .. } => sqlx::migrate!("migrations/sqlite").run(writer).await,
        };
        result.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(e) => self.outages.classify(e),
            other => Error::other("migration", other),
        })?;
        self.refold().await
    }

    /// Whether the data migration to the current fold rule has run (`migrate --status`).
    pub async fn refold_applied(&self) -> Result<bool, Error> {
        let exists_sql = match self.backend {
            Backend::Postgres { .. } => "SELECT to_regclass('data_migrations') IS NOT NULL",
            Backend::Sqlite { .. } => {
                "SELECT count(*) > 0 FROM sqlite_master WHERE name = 'data_migrations'"
            }
        };
        let exists: bool = on_pool!(self, write, |pool| {
            sqlx::query_scalar(exists_sql).fetch_one(pool).await
        })?;
        if !exists {
            return Ok(false);
        }
        let done: Option<String> = on_pool!(self, write, |pool| {
            sqlx::query_scalar("SELECT name FROM data_migrations WHERE name = $1")
                .bind(crate::domain::employee::FOLD_VERSION)
                .fetch_optional(pool)
                .await
        })?;
        Ok(done.is_some())
    }

    /// The data migration that follows the SQL ones: brings every stored `city_folded` /
    /// `country_folded` to the current [`fold`](crate::domain::employee::fold) rule. It reads
    /// the employees in `emp_id` order, 1000 at a time, and rewrites only the rows whose folded
    /// values change, one transaction per batch; the `employee_places` triggers move each
    /// rewritten row's count as for any update, so the counts stay exact throughout. Safe to
    /// interrupt and to run twice (a row already folded is left alone); recorded in
    /// `data_migrations` under [`FOLD_VERSION`](crate::domain::employee::FOLD_VERSION) so that
    /// later starts skip it.
    async fn refold(&self) -> Result<(), Error> {
        use crate::domain::employee::{FOLD_VERSION, fold};
        const BATCH: i64 = 1000;
        on_pool!(self, write, |pool| {
            sqlx::query(
                "CREATE TABLE IF NOT EXISTS data_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)",
            )
            .execute(pool)
            .await
            .map(|_| ())
        })?;
        let done: Option<String> = on_pool!(self, write, |pool| {
            sqlx::query_scalar("SELECT name FROM data_migrations WHERE name = $1")
                .bind(FOLD_VERSION)
                .fetch_optional(pool)
                .await
        })?;
        if done.is_some() {
            return Ok(());
        }
        let (mut after, mut rewritten) = (0i64, 0u64);
        loop {
            let rows: Vec<(i64, String, String, String, String)> = on_pool!(self, write, |pool| {
                sqlx::query_as(
                    "SELECT emp_id, city, country, city_folded, country_folded FROM employees \
                     WHERE emp_id > $1 ORDER BY emp_id LIMIT $2",
                )
                .bind(after)
                .bind(BATCH)
                .fetch_all(pool)
                .await
            })?;
            let Some(last) = rows.last() else { break };
            after = last.0;
            let changed: Vec<(i64, String, String)> = rows
                .into_iter()
                .filter_map(|(id, city, country, city_folded, country_folded)| {
                    let (city, country) = (fold(&city), fold(&country));
                    (city != city_folded || country != country_folded)
                        .then_some((id, city, country))
                })
                .collect();
            if changed.is_empty() {
                continue;
            }
            rewritten += changed.len() as u64;
            on_pool!(self, write, |pool| {
                async {
                    let mut tx = pool.begin().await?;
                    for (id, city, country) in &changed {
                        sqlx::query(
                            "UPDATE employees SET city_folded = $1, country_folded = $2 WHERE emp_id = $3",
                        )
                        .bind(city)
                        .bind(country)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    }
                    tx.commit().await
                }
                .await
            })?;
        }
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        on_pool!(self, write, |pool| {
            sqlx::query(
                "INSERT INTO data_migrations (name, applied_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            )
            .bind(FOLD_VERSION)
            .bind(&now)
            .execute(pool)
            .await
            .map(|_| ())
        })?;
        if rewritten > 0 {
            tracing::info!(
                rows = rewritten,
                "filters: folded city and country values rewritten for full Unicode case folding"
            );
        }
        Ok(())
    }

    /// Migrations known to the binary and whether each is applied: (version, description, applied).
    pub async fn migration_status(&self) -> Result<Vec<(i64, String, bool)>, Error> {
        let (migrator, exists_sql) = match &self.backend {
            Backend::Postgres { .. } => (
                sqlx::migrate!("migrations/postgres"),
                "SELECT to_regclass('_sqlx_migrations') IS NOT NULL",
            ),
            Backend::Sqlite { .. } => (
                sqlx::migrate!("migrations/sqlite"),
                "SELECT count(*) > 0 FROM sqlite_master WHERE name = '_sqlx_migrations'",
            ),
        };
        let exists: bool = on_pool!(self, write, |pool| {
            sqlx::query_scalar(exists_sql).fetch_one(pool).await
        })?;
        let applied: Vec<i64> = if exists {
            on_pool!(self, write, |pool| {
                sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                    .fetch_all(pool)
                    .await
            })?
        } else {
            Vec::new()
        };
        Ok(migrator
            .iter()
            .map(|m| {
                (
                    m.version,
                    m.description.to_string(),
                    applied.contains(&m.version),
                )
            })
            .collect())
    }

    /// One trivial query, bounded by `timeout`: is the database answering? A failure also
    /// retires connections opened before it (see [`pool::Outages`]).
    pub async fn ping(&self, timeout: Duration) -> bool {
        let query = async {
            on_pool!(self, read, |pool| sqlx::query_scalar::<_, i32>("SELECT 1")
                .fetch_one(pool)
                .await)
        };
        match tokio::time::timeout(timeout, query).await {
            Ok(Ok(1)) => true,
            Ok(_) => false,
            Err(_) => {
                self.outages.record();
                false
            }
        }
    }

    /// Every connection set by name, with how many connections it holds.
    pub fn pool_usage(&self) -> Vec<(&'static str, PoolUsage)> {
        fn sqlx_usage<DB: sqlx::Database>(pool: &sqlx::Pool<DB>) -> PoolUsage {
            PoolUsage {
                open: pool.size() as usize,
                idle: pool.num_idle(),
                max: pool.options().get_max_connections() as usize,
            }
        }
        match &self.backend {
            Backend::Postgres { pool, hot, .. } => {
                vec![("general", sqlx_usage(pool)), ("hot_reads", hot.usage())]
            }
            Backend::Sqlite {
                writer,
                reader,
                pages,
                ..
            } => vec![
                ("writer", sqlx_usage(writer)),
                ("readers", sqlx_usage(reader)),
                ("page_readers", pages.usage()),
            ],
        }
    }

    /// `postgres` or `sqlite`, whichever is this database's: for statements whose text
    /// differs per backend.
    fn per_backend<T>(&self, postgres: T, sqlite: T) -> T {
        match &self.backend {
            Backend::Postgres { .. } => postgres,
            Backend::Sqlite { .. } => sqlite,
        }
    }

    /// What `on_pool!(.., write, ..)` does after a write, for the writes whose code differs
    /// per backend: wakes the sealer and maps the error.
    fn wrote<T, E: Into<Error>>(&self, result: Result<T, E>) -> Result<T, Error> {
        self.written.notify_one();
        result.map_err(|e| self.outages.classify(e))
    }

    /// Closes every connection (graceful shutdown).
    pub async fn close(&self) {
        match &self.backend {
            Backend::Postgres { pool, hot, .. } => {
                hot.close();
                pool.close().await
            }
            Backend::Sqlite {
                writer,
                reader,
                pages,
                ..
            } => {
                pages.close();
                reader.close().await;
                writer.close().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_sets_never_exceed_the_total() {
        for total in MIN_DB_CONNECTIONS..=64 {
            let pg = Sizes::postgres(total);
            assert!(pg.general + pg.hot <= total, "postgres {total}: {pg:?}");
            for cores in [1, 2, 8, 64] {
                let lite = Sizes::sqlite(total, cores);
                assert!(
                    1 + lite.general + lite.hot <= total,
                    "sqlite {total}/{cores}: {lite:?}"
                );
                assert!(lite.general >= 1 && lite.hot >= 1);
            }
        }
        assert_eq!(Sizes::postgres(16), Sizes { general: 8, hot: 8 });
        assert_eq!(Sizes::sqlite(16, 2), Sizes { general: 4, hot: 2 });
    }
}
