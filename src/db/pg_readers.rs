//! PostgreSQL connections for the hot read paths, lent without sqlx's pool.
//!
//! sqlx's pool pings every connection when it comes back (a Sync and a wait for
//! ReadyForQuery, not configurable; `sqlx-core` `pool/connection.rs`), so each query cost two
//! round trips, and the connection stayed busy until the second one returned (seen with
//! strace on `GET /employees/{id}`). These connections are handed back as they are, which is
//! safe only when the query ran to completion: a [`Lease`] dropped without
//! [`Lease::release`] (an error, or a request cancelled mid-query) closes its connection
//! instead. A connection that died meanwhile fails its next query (503 with Retry-After) and is
//! replaced on the next acquire. Writes and transactions stay on the sqlx pool.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use sqlx::{ConnectOptions, PgConnection, postgres::PgConnectOptions};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub(super) struct PgReaders {
    options: PgConnectOptions,
    idle: Mutex<Vec<PgConnection>>,
    permits: Arc<Semaphore>,
    acquire_timeout: Duration,
}

impl std::fmt::Debug for PgReaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgReaders")
            .field("available", &self.permits.available_permits())
            .finish()
    }
}

impl PgReaders {
    /// Up to `size` connections, opened on first use.
    pub fn new(options: PgConnectOptions, size: usize, acquire_timeout: Duration) -> Self {
        Self {
            options,
            idle: Mutex::new(Vec::with_capacity(size)),
            permits: Arc::new(Semaphore::new(size)),
            acquire_timeout,
        }
    }

    /// An idle connection, or a new one while fewer than `size` exist; waits up to the acquire
    /// timeout for one to come back (then `PoolTimedOut`, a 503).
    pub async fn acquire(&self) -> Result<Lease<'_>, sqlx::Error> {
        let deadline = tokio::time::Instant::now() + self.acquire_timeout;
        let permit = tokio::time::timeout_at(deadline, Arc::clone(&self.permits).acquire_owned())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => tokio::time::timeout_at(deadline, self.options.connect())
                .await
                .map_err(|_| sqlx::Error::PoolTimedOut)??,
        };
        Ok(Lease {
            readers: self,
            conn: Some(conn),
            released: false,
            _permit: permit,
        })
    }

    /// Drops every idle connection and refuses new leases (graceful shutdown).
    pub fn close(&self) {
        self.permits.close();
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// A connection on loan. Goes back to the idle list only through [`Lease::release`].
pub(super) struct Lease<'r> {
    readers: &'r PgReaders,
    conn: Option<PgConnection>,
    released: bool,
    _permit: OwnedSemaphorePermit,
}

impl Lease<'_> {
    pub fn conn(&mut self) -> &mut PgConnection {
        self.conn.as_mut().expect("present until drop")
    }

    /// The query ran to completion: the connection is ready for the next one.
    pub fn release(mut self) {
        self.released = true;
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let (true, Some(conn)) = (self.released, self.conn.take()) {
            self.readers
                .idle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(conn);
        }
        // Otherwise the connection is dropped here, which closes its socket.
    }
}
