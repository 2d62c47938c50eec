//! SQLite list pages, read with rusqlite on the blocking thread pool.
//!
//! sqlx runs each SQLite connection on its own thread and hands every row back through a
//! channel, copying each value first (`sqlite3_value_dup`) and decoding it again on the async
//! side. For a 100-row page that was nearly all of the request's CPU under `perf` (allocations
//! and futex wake-ups, not SQLite). Here one blocking task runs the viewer check, the count
//! and the page on one connection, inside one read transaction (so the total and the page are
//! from the same snapshot), and writes each row straight into the JSON body from SQLite's own
//! buffers.

use rusqlite::{Connection, types::ValueRef};
use serde::Serialize;
use uuid::Uuid;

use super::{DATA_VERSION, ListPage, prefer_places, sql};
use crate::{
    db::{
        Error,
        pool::SqlitePages,
        statement::{Param, Statement},
        viewer::Credential,
    },
    domain::{
        employee::Employee,
        listing::{EmployeeQuery, format_date, parse_date},
    },
};

const DIALECT: sql::Dialect = sql::Dialect::Sqlite;

/// What one page needs: the viewer check, the count and the rows.
struct PageQuery {
    /// Yields a row while the viewer's credential is live.
    viewer: Statement,
    /// The number of matching rows; present when reported or when it chooses the plan.
    count: Option<Statement>,
    /// Whether the count goes into the response (`X-Total-Count`).
    report_total: bool,
    /// The page through the sort order's index (filters checked with `instr()` on the way).
    rows: Statement,
    /// With filters: the page through the matching places, for when they hold few rows.
    rows_by_place: Option<Statement>,
    limit: usize,
}

/// Reads one page on a page-reader connection; `None` when the viewer's credential is not live.
pub(super) async fn page(
    pages: &SqlitePages,
    viewer: &Credential,
    query: &EmployeeQuery,
    with_total: bool,
    now: i64,
) -> Result<Option<ListPage>, Error> {
    let viewer = {
        let mut sql = Statement::default();
        sql.text = viewer.live_sql(now, &mut sql);
        sql
    };
    let filtered = !query.filters.is_empty();
    // With filters the count also chooses how to find the rows, so it always runs.
    let count = (with_total || filtered).then(|| {
        let mut sql = Statement::default();
        sql.text = format!("SELECT {}", DIALECT.count(&query.filters, &mut sql));
        sql
    });
    let rows = |by_place| {
        let mut sql = Statement::default();
        sql.text = DIALECT.rows(query, i64::from(query.limit) + 1, by_place, &mut sql);
        sql
    };
    let page = PageQuery {
        viewer,
        count,
        report_total: with_total,
        rows: rows(false),
        rows_by_place: filtered.then(|| rows(true)),
        limit: query.limit as usize,
    };
    pages.read(move |conn| Ok(read_page(conn, &page)?)).await
}

fn read_page(conn: &mut Connection, query: &PageQuery) -> rusqlite::Result<Option<ListPage>> {
    let tx = conn.transaction()?;
    let viewer_exists = prepared(&tx, &query.viewer)?.raw_query().next()?.is_some();
    if !viewer_exists {
        return Ok(None);
    }
    // In the page's read transaction: the version is that of the rows read.
    let data_version: i64 = tx
        .prepare_cached(&format!("SELECT {DATA_VERSION}"))?
        .query_row([], |row| row.get(0))?;
    let total = match &query.count {
        Some(count) => Some(scalar(&tx, count)?),
        None => None,
    };
    // A filter's count chooses how its rows are found (`prefer_places`).
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
    Ok(Some(ListPage {
        body,
        next_after,
        total,
        data_version,
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
            Param::Bool(v) => stmt.raw_bind_parameter(index, v)?,
            // Dates are stored as `YYYY-MM-DD` text, so compared as that text.
            Param::Date(v) => stmt.raw_bind_parameter(index, format_date(*v))?,
            // UUIDs are stored as their 16 bytes (how sqlx encodes a `Uuid`).
            Param::Uuid(v) => stmt.raw_bind_parameter(index, v.as_bytes().as_slice())?,
            Param::Bytes(v) => stmt.raw_bind_parameter(index, v.as_slice())?,
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
            version: 0,
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
