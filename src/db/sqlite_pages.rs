//! SQLite list pages, read with rusqlite on the blocking thread pool.
//!
//! sqlx runs each SQLite connection on its own thread and hands every row back through a
//! channel, copying each value first (`sqlite3_value_dup`) and decoding it again on the async
//! side. For a 100-row page that was nearly all of the request's CPU under `perf` (allocations
//! and futex wake-ups, not SQLite). Here one blocking task runs the viewer check, the count
//! and the page on one connection, inside one read transaction (so the total and the page
//! are from the same snapshot), and writes each row straight into the JSON body from
//! SQLite's own buffers.
//!
//! Everything else on SQLite (writes, point reads, exports) stays on the sqlx pools.

use std::{
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use rusqlite::{Connection, OpenFlags, types::ValueRef};
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use super::employees::{Page, Param, prefer_places};
use crate::domain::{
    employee::Employee,
    listing::{format_date, parse_date},
};

/// Read-only connections, each used by one blocking task at a time.
pub(super) struct SqlitePages {
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
    acquire_timeout: Duration,
}

impl std::fmt::Debug for SqlitePages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlitePages")
            .field("available", &self.permits.available_permits())
            .finish()
    }
}

/// A statement and its parameters, named `$1`, `$2`, ... in the text.
pub(super) struct Statement {
    pub text: String,
    pub params: Vec<Param>,
}

/// What one page needs: the viewer check, the count and the rows.
pub(super) struct PageQuery {
    pub viewer: i64,
    /// The number of matching rows; present when reported or when it chooses the plan.
    pub count: Option<Statement>,
    /// Whether the count goes into the response (`X-Total-Count`).
    pub report_total: bool,
    /// The page through the sort order's index (filters checked with `instr()` on the way).
    pub rows: Statement,
    /// With filters: the page through the matching places, for when they hold few rows.
    pub rows_by_place: Option<Statement>,
    pub limit: usize,
}

impl SqlitePages {
    /// Opens `size` read-only connections to the database at `path` (which must exist).
    pub fn open(path: &Path, size: usize, acquire_timeout: Duration) -> rusqlite::Result<Self> {
        let mut idle = Vec::with_capacity(size);
        for _ in 0..size {
            let conn = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            conn.busy_timeout(Duration::from_secs(5))?;
            // No memory map here (unlike the sqlx readers): each connection's mapping counts in
            // the process's resident memory once touched, and a deep OFFSET touches all of it
            // (252 MB peak RSS over the benchmark with 16 MiB each). Pages go through SQLite's
            // own 2 MiB cache per connection instead.
            conn.pragma_update(None, "mmap_size", 0)?;
            conn.set_prepared_statement_cache_capacity(256);
            idle.push(conn);
        }
        Ok(Self {
            idle: Mutex::new(idle),
            permits: Arc::new(Semaphore::new(size)),
            acquire_timeout,
        })
    }

    /// Runs `query` on an idle connection; `None` when the viewer no longer exists.
    pub async fn page(self: &Arc<Self>, query: PageQuery) -> Result<Option<Page>, sqlx::Error> {
        // The permit moves into the blocking task and is released only after the connection
        // is back, even when the request is dropped half-way (a client that hung up).
        let permit = tokio::time::timeout(
            self.acquire_timeout,
            Arc::clone(&self.permits).acquire_owned(),
        )
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut)?
        .map_err(|_| sqlx::Error::PoolClosed)?;
        let this = Arc::clone(self);
        let result = tokio::task::spawn_blocking(move || {
            let Some(conn) = this.idle.lock().unwrap_or_else(|e| e.into_inner()).pop() else {
                return Err(rusqlite::Error::InvalidQuery);
            };
            let mut lease = Lease {
                pages: &this,
                conn: Some(conn),
                _permit: permit,
            };
            read_page(lease.conn.as_mut().expect("set above"), &query)
        })
        .await
        .map_err(|_| sqlx::Error::WorkerCrashed)?;
        result.map_err(to_sqlx)
    }

    /// Closes every idle connection and refuses new work (graceful shutdown).
    pub fn close(&self) {
        self.permits.close();
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// A connection taken from the idle list, and the permit that allowed it. Dropping it (also
/// while unwinding from a panic) puts the connection back before the permit is released, so a
/// permit always finds a connection.
struct Lease<'p> {
    pages: &'p SqlitePages,
    conn: Option<Connection>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pages
                .idle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(conn);
        }
    }
}

fn read_page(conn: &mut Connection, query: &PageQuery) -> rusqlite::Result<Option<Page>> {
    let tx = conn.transaction()?;
    let viewer_exists = tx
        .prepare_cached("SELECT 1 FROM users WHERE id = ?1")?
        .exists([query.viewer])?;
    if !viewer_exists {
        return Ok(None);
    }
    let total = match &query.count {
        Some(count) => Some(scalar(&tx, count)?),
        None => None,
    };
    // A filter's count chooses how its rows are found (`employees::prefer_places`).
    let rows = match (&query.rows_by_place, total) {
        (Some(by_place), Some(matches)) => {
            let all: i64 = tx
                .prepare_cached("SELECT n FROM employee_count")?
                .query_row([], |row| row.get(0))?;
            if prefer_places(matches, all, query.limit as u32) {
                by_place
            } else {
                &query.rows
            }
        }
        _ => &query.rows,
    };
    let total = total.filter(|_| query.report_total);
    let mut body = Vec::with_capacity(64 + query.limit * 160);
    body.push(b'[');
    let mut next_after = None;
    let mut fetched = 0;
    {
        let mut stmt = prepared(&tx, rows)?;
        let mut rows = stmt.raw_query();
        while let Some(row) = rows.next()? {
            fetched += 1;
            if fetched > query.limit {
                break;
            }
            let employee = EmployeeRef {
                emp_id: row.get(0)?,
                emp_name: text(row, 1)?,
                city: text(row, 2)?,
                country: text(row, 3)?,
                emp_dob: text(row, 4)?,
                id: uuid(row, 5)?,
            };
            if fetched > 1 {
                body.push(b',');
            }
            serde_json::to_writer(&mut body, &employee)
                .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
            if fetched == query.limit {
                next_after = Some(employee.to_owned()?);
            }
        }
    }
    body.push(b']');
    tx.commit()?;
    // Only a page followed by another one carries a cursor.
    let next_after = next_after.filter(|_| fetched > query.limit);
    // serde_json writes valid UTF-8.
    let body =
        String::from_utf8(body).map_err(|e| rusqlite::Error::Utf8Error(0, e.utf8_error()))?;
    Ok(Some(Page {
        body,
        next_after,
        total,
    }))
}

/// The first column of the first row of `statement` (0 when there is no row).
fn scalar(conn: &Connection, statement: &Statement) -> rusqlite::Result<i64> {
    let mut stmt = prepared(conn, statement)?;
    let mut rows = stmt.raw_query();
    rows.next()?.map_or(Ok(0), |row| row.get(0))
}

/// A cached statement with `statement.params` bound to `$1`, `$2`, ...
fn prepared<'c>(
    conn: &'c Connection,
    statement: &Statement,
) -> rusqlite::Result<rusqlite::CachedStatement<'c>> {
    let mut stmt = conn.prepare_cached(&statement.text)?;
    for (i, param) in statement.params.iter().enumerate() {
        let name = format!("${}", i + 1);
        let Some(index) = stmt.parameter_index(&name)? else {
            continue;
        };
        match param {
            Param::Text(v) => stmt.raw_bind_parameter(index, v)?,
            Param::Int(v) => stmt.raw_bind_parameter(index, v)?,
            // Dates are stored as `YYYY-MM-DD` text, so compared as that text.
            Param::Date(v) => stmt.raw_bind_parameter(index, format_date(*v))?,
        }
    }
    Ok(stmt)
}

/// An employee row borrowed from SQLite's buffers, serialized like [`Employee`].
#[derive(Serialize)]
struct EmployeeRef<'r> {
    emp_id: i64,
    emp_name: &'r str,
    city: &'r str,
    country: &'r str,
    /// Stored as `YYYY-MM-DD` text (how sqlx encodes a `time::Date`).
    emp_dob: &'r str,
    id: Uuid,
}

impl EmployeeRef<'_> {
    fn to_owned(&self) -> rusqlite::Result<Employee> {
        let emp_dob = parse_date(self.emp_dob).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                4,
                rusqlite::types::Type::Text,
                "emp_dob is not a YYYY-MM-DD date".into(),
            )
        })?;
        Ok(Employee {
            emp_id: self.emp_id,
            emp_name: self.emp_name.to_owned(),
            city: self.city.to_owned(),
            country: self.country.to_owned(),
            emp_dob,
            id: self.id,
        })
    }
}

fn text<'r>(row: &'r rusqlite::Row<'_>, i: usize) -> rusqlite::Result<&'r str> {
    row.get_ref(i)?.as_str().map_err(Into::into)
}

/// `id` is stored as the UUID's 16 bytes (how sqlx encodes a `Uuid`).
fn uuid(row: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Uuid> {
    match row.get_ref(i)? {
        ValueRef::Blob(bytes) => Uuid::from_slice(bytes).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Blob, Box::new(e))
        }),
        other => Err(rusqlite::Error::InvalidColumnType(
            i,
            "id".to_owned(),
            other.data_type(),
        )),
    }
}

/// Busy, locked and I/O failures mean the database is unavailable right now (503); anything
/// else is unexpected (500).
pub(super) fn to_sqlx(err: rusqlite::Error) -> sqlx::Error {
    use rusqlite::ErrorCode::*;
    match err.sqlite_error_code() {
        Some(DatabaseBusy | DatabaseLocked | SystemIoFailure | CannotOpen | DiskFull) => {
            sqlx::Error::Io(std::io::Error::other(err))
        }
        _ => sqlx::Error::Decode(Box::new(err)),
    }
}
