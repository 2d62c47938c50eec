//! Storage. The only module that writes SQL; the differences between SQLite and PostgreSQL
//! stay inside it. Functions take and return domain types.

pub mod employees;
mod pg_readers;
mod sqlite_pages;
pub mod users;

use std::{str::FromStr, sync::Arc, time::Duration};

use sqlx::{
    PgPool, SqlitePool,
    postgres::{PgConnectOptions, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

use crate::config::DatabaseUrl;

/// How long a request waits for a pooled connection before answering 503.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// A handle on the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    backend: Backend,
}

#[derive(Clone, Debug)]
enum Backend {
    /// Hot reads (point reads, the per-request user check, list pages) borrow from `readers`
    /// (see `pg_readers`); everything else uses the sqlx pool.
    Postgres {
        pool: PgPool,
        readers: Arc<pg_readers::PgReaders>,
    },
    /// SQLite allows one writer at a time: all writes go through a single connection, so they
    /// queue in the pool instead of failing with SQLITE_BUSY; reads use their own pool and,
    /// with WAL, never wait for the writer.
    /// List pages are read through `pages` (rusqlite; see `sqlite_pages`).
    Sqlite {
        writer: SqlitePool,
        reader: SqlitePool,
        pages: Arc<sqlite_pages::SqlitePages>,
    },
}

/// Runs `$body` with `$pool` bound to the right pool of either backend. The body is the same
/// text for both, compiled once per backend type.
macro_rules! on_pool {
    ($db:expr, read, |$pool:ident| $body:expr) => {
        match &$db.backend {
            $crate::db::Backend::Postgres { pool: $pool, .. } => $body,
            $crate::db::Backend::Sqlite { reader: $pool, .. } => $body,
        }
    };
    // The hot read paths: on PostgreSQL a connection lent by `pg_readers` (returned only when
    // the body succeeded), on SQLite the reader pool. Only in functions returning sqlx errors.
    ($db:expr, hot_read, |$pool:ident| $body:expr) => {
        match &$db.backend {
            $crate::db::Backend::Postgres { readers, .. } => {
                let mut lease = readers.acquire().await?;
                let $pool = lease.conn();
                let result = $body;
                if result.is_ok() {
                    lease.release();
                }
                result
            }
            $crate::db::Backend::Sqlite { reader: $pool, .. } => $body,
        }
    };
    ($db:expr, write, |$pool:ident| $body:expr) => {
        match &$db.backend {
            $crate::db::Backend::Postgres { pool: $pool, .. } => $body,
            $crate::db::Backend::Sqlite { writer: $pool, .. } => $body,
        }
    };
}
pub(crate) use on_pool;

/// Which engine a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Postgres,
    Sqlite,
}

impl Db {
    /// Opens the pools. SQLite files (and their folder) are created when missing.
    pub async fn connect(url: &DatabaseUrl, max_connections: u32) -> Result<Self, sqlx::Error> {
        let backend = match url {
            DatabaseUrl::Postgres(url) => {
                let options =
                    PgConnectOptions::from_str(url.expose())?.statement_cache_capacity(256);
                let pool = PgPoolOptions::new()
                    .max_connections(max_connections)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    // sqlx would otherwise ping (Sync, wait for ReadyForQuery) before lending a
                    // connection: a second round trip on every request, seen with strace. A
                    // connection that died meanwhile fails its next query instead (503 with
                    // Retry-After, and sqlx drops it).
                    .test_before_acquire(false)
                    .connect_with(options.clone())
                    .await?;
                let readers =
                    pg_readers::PgReaders::new(options, max_connections as usize, ACQUIRE_TIMEOUT);
                Backend::Postgres {
                    pool,
                    readers: Arc::new(readers),
                }
            }
            DatabaseUrl::Sqlite { path } => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent)?;
                }
                let options = SqliteConnectOptions::new()
                    .filename(path)
                    .busy_timeout(Duration::from_secs(5))
                    .foreign_keys(true)
                    .statement_cache_capacity(256)
                    // Reads of the hottest 16 MiB (the b-tree tops) map the file instead of copying
                    // pages. Kept small: every connection maps it separately and each mapping
                    // counts in the process's resident memory (128 MiB x 9 connections measured
                    // 956 MB RSS under the benchmark).
                    .pragma("mmap_size", "16777216");
                let writer = SqlitePoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(
                        options
                            .clone()
                            .create_if_missing(true)
                            .journal_mode(SqliteJournalMode::Wal)
                            // An acknowledged write survives a power loss.
                            .synchronous(SqliteSynchronous::Full),
                    )
                    .await?;
                // More readers than cores buys little on SQLite (each query runs on its connection's
                // thread) but costs memory: 2 to 4.
                let reader = SqlitePoolOptions::new()
                    .max_connections(max_connections.clamp(2, 4))
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(options.read_only(true))
                    .await?;
                // A list page is pure CPU on its thread: one connection per core (2 to 4, at most
                // the reader pool's size) keeps the cores busy; more would only hold more memory.
                let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
                let pages = sqlite_pages::SqlitePages::open(
                    path,
                    cores.clamp(2, max_connections.clamp(2, 4) as usize),
                    ACQUIRE_TIMEOUT,
                )
                .map_err(sqlite_pages::to_sqlx)?;
                Backend::Sqlite {
                    writer,
                    reader,
                    pages: Arc::new(pages),
                }
            }
        };
        Ok(Self { backend })
    }

    pub fn kind(&self) -> Kind {
        match self.backend {
            Backend::Postgres { .. } => Kind::Postgres,
            Backend::Sqlite { .. } => Kind::Sqlite,
        }
    }

    /// Applies the embedded migrations. On PostgreSQL sqlx holds an advisory lock meanwhile,
    /// so instances starting together do not race.
    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        match &self.backend {
            Backend::Postgres { pool, .. } => sqlx::migrate!("migrations/postgres").run(pool).await,
            Backend::Sqlite { writer, .. } => sqlx::migrate!("migrations/sqlite").run(writer).await,
        }
    }

    /// Migrations known to the binary and whether each is applied: (version, description, applied).
    pub async fn migration_status(&self) -> Result<Vec<(i64, String, bool)>, sqlx::Error> {
        let migrator = match self.kind() {
            Kind::Postgres => sqlx::migrate!("migrations/postgres"),
            Kind::Sqlite => sqlx::migrate!("migrations/sqlite"),
        };
        let applied: Vec<i64> = on_pool!(self, write, |pool| {
            let exists: bool =
                match self.kind() {
                    Kind::Postgres => {
                        sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
                            .fetch_one(pool)
                            .await?
                    }
                    Kind::Sqlite => sqlx::query_scalar(
                        "SELECT count(*) > 0 FROM sqlite_master WHERE name = '_sqlx_migrations'",
                    )
                    .fetch_one(pool)
                    .await?,
                };
            if exists {
                sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                    .fetch_all(pool)
                    .await?
            } else {
                Vec::new()
            }
        });
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

    /// One trivial query, bounded by `timeout`: is the database answering?
    pub async fn ping(&self, timeout: Duration) -> bool {
        let query = async {
            on_pool!(self, read, |pool| sqlx::query_scalar::<_, i32>("SELECT 1")
                .fetch_one(pool)
                .await)
        };
        matches!(tokio::time::timeout(timeout, query).await, Ok(Ok(1)))
    }

    /// Connections (in use, idle) across the pools.
    pub fn pool_usage(&self) -> (u32, u32) {
        match &self.backend {
            Backend::Postgres { pool, .. } => {
                (pool.size() - pool.num_idle() as u32, pool.num_idle() as u32)
            }
            Backend::Sqlite { writer, reader, .. } => {
                let idle = (writer.num_idle() + reader.num_idle()) as u32;
                (writer.size() + reader.size() - idle, idle)
            }
        }
    }

    /// Closes every connection (graceful shutdown).
    pub async fn close(&self) {
        match &self.backend {
            Backend::Postgres { pool, readers } => {
                readers.close();
                pool.close().await
            }
            Backend::Sqlite {
                writer,
                reader,
                pages,
            } => {
                pages.close();
                reader.close().await;
                writer.close().await;
            }
        }
    }
}
