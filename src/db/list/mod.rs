//! The employee list: one page with its count, read with the viewer check, by a reader made
//! for each backend ([`postgres`], [`sqlite`]) from statements built by [`Dialect`].
//!
//! The rows of a page never become `Employee` values: under `perf`, a value copy, a channel
//! message and a decode per column and row, then serialization again, were most of a page's
//! cost. The row after the page tells whether another page follows; the page's last row is
//! parsed back for the `next` cursor.

mod postgres;
mod sql;
mod sqlite;

use sqlx::AssertSqlSafe;

pub use sql::Dialect;

use super::{
    Backend, Db, Error,
    employees::EmployeeRow,
    on_pool,
    statement::{Statement, bind_all},
    viewer::Credential,
};
use crate::domain::{employee::Employee, listing::EmployeeQuery};

/// A page of the list, ready to send.
#[derive(Debug)]
pub struct ListPage {
    /// The JSON array of the page's employees.
    pub body: String,
    /// The page's last employee when more rows follow it (for the `next` cursor).
    pub next_after: Option<Employee>,
    /// Rows matching the filters, when asked for.
    pub total: Option<i64>,
    /// The data version of all employees when the page was read (its weak ETag).
    pub data_version: i64,
}

/// Whether a filter's page is cheaper through its places than by walking the sort order.
///
/// Walking the sort order's index and keeping the matches reads about `(limit + 1) * all /
/// matches` rows; collecting the matches through their places (the few hundred rows of
/// `employee_places`, then `employees_place_idx`) reads every match and sorts them. The
/// second wins when `matches^2 < (limit + 1) * all`: a rare city of 10 rows in a million costs
/// 10 look-ups instead of a long walk (SQLite) or a trigram index intersection (PostgreSQL).
fn prefer_places(matches: i64, all: i64, limit: u32) -> bool {
    matches.saturating_mul(matches) < (i64::from(limit) + 1).saturating_mul(all)
}

/// The data version of the employee rows (the list's weak ETag) as an SQL expression: the
/// committed writes to them, chained or still pending (see migrations/*/0007). Exact in any one
/// snapshot: each such commit adds one, and sealing moves entries from one term to the other in
/// a single transaction.
const DATA_VERSION: &str = "(SELECT employee_writes FROM audit_head) + \
    (SELECT count(*) FROM audit_pending WHERE lists)";

impl Db {
    /// One page of the list as the response body, read together with the check that the
    /// `viewer`'s credential is live at `now` and (when `with_total`) the count. `None` when the
    /// credential is not live.
    pub async fn list_page(
        &self,
        viewer: &Credential,
        query: &EmployeeQuery,
        with_total: bool,
        now: i64,
    ) -> Result<Option<ListPage>, Error> {
        match &self.backend {
            Backend::Postgres { hot, .. } => {
                postgres::page(hot, viewer, query, with_total, now).await
            }
            Backend::Sqlite { pages, .. } => {
                sqlite::page(pages, viewer, query, with_total, now).await
            }
        }
    }

    /// The data version of all employees (the list's weak ETag), read with the check that the
    /// `viewer`'s credential is live at `now`; `None` when it is not. Answers a conditional
    /// list request without building its page.
    pub async fn list_version(&self, viewer: &Credential, now: i64) -> Result<Option<i64>, Error> {
        let mut sql = Statement::default();
        let live = viewer.live_sql(now, &mut sql);
        sql.text = format!("SELECT (SELECT 1 FROM ({live}) v), {DATA_VERSION}");
        let (viewer, version): (Option<i32>, i64) = on_pool!(self, read, |pool| {
            bind_all(
                sqlx::query_as(AssertSqlSafe(sql.text.clone())),
                sql.params.clone(),
            )
            .fetch_one(pool)
            .await
        })?;
        Ok(viewer.map(|_| version))
    }

    /// At most `query.limit + 1` employees of the list, so the caller can tell whether
    /// another page follows (exports read page after page this way).
    pub async fn list_employees(&self, query: &EmployeeQuery) -> Result<Vec<Employee>, Error> {
        let mut sql = Statement::default();
        let text = self
            .dialect()
            .rows(query, i64::from(query.limit) + 1, false, &mut sql);
        let rows: Vec<EmployeeRow> = on_pool!(self, read, |pool| {
            bind_all(sqlx::query_as(AssertSqlSafe(text)), sql.params)
                .fetch_all(pool)
                .await
        })?;
        Ok(rows.into_iter().map(Employee::from).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_matches_go_through_their_places_and_many_walk_the_sort_order() {
        assert!(prefer_places(10, 1_000_000, 100));
        assert!(!prefer_places(68_000, 1_000_000, 100));
        assert!(!prefer_places(i64::MAX, i64::MAX, 1000), "no overflow");
    }
}
