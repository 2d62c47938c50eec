//! PostgreSQL list pages: PostgreSQL writes each row's JSON object itself (strings escaped by
//! `to_json`), with the viewer check and the count as columns of the same statement: one
//! round trip, two with filters, whose count comes first to choose the plan.

use sqlx::{AssertSqlSafe, PgConnection};

use super::{DATA_VERSION, ListPage, prefer_places, sql};
use crate::{
    db::{
        Error,
        pool::PgReaders,
        statement::{Param, Statement, bind_all},
        viewer::Credential,
    },
    domain::listing::EmployeeQuery,
};

/// One employee as a JSON object (the `Employee` shape, keys in the same order), written by
/// PostgreSQL from the `page` columns. `to_json` escapes the strings and writes the date as
/// `YYYY-MM-DD` whatever the session's DateStyle.
const JSON_OBJECT: &str = "'{\"emp_id\":' || emp_id || ',\"emp_name\":' || to_json(emp_name) \
    || ',\"city\":' || to_json(city) || ',\"country\":' || to_json(country) \
    || ',\"emp_dob\":' || to_json(emp_dob) || ',\"id\":\"' || id || '\"}'";

const DIALECT: sql::Dialect = sql::Dialect::Postgres;

/// One row of a page: the employee as JSON, and the viewer check and the count (the same on
/// every row).
#[derive(sqlx::FromRow)]
struct PageRow {
    viewer: Option<i32>,
    total: Option<i64>,
    data_version: i64,
    j: String,
}

/// Reads one page on a hot-read connection; `None` when the viewer's credential is not live.
pub(super) async fn page(
    readers: &PgReaders,
    viewer: &Credential,
    query: &EmployeeQuery,
    with_total: bool,
    now: i64,
) -> Result<Option<ListPage>, Error> {
    let mut lease = readers.get().await?;
    let read = read(lease.conn(), viewer, query, with_total, now).await;
    let (rows, viewer_exists, total, data_version) = lease.finish(read)?;
    if !viewer_exists {
        return Ok(None);
    }
    let limit = query.limit as usize;
    let page = &rows[..rows.len().min(limit)];
    let mut body = String::with_capacity(2 + page.iter().map(|r| r.j.len() + 1).sum::<usize>());
    body.push('[');
    for (i, row) in page.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&row.j);
    }
    body.push(']');
    let next_after = match page.last() {
        Some(last) if rows.len() > limit => {
            Some(serde_json::from_str(&last.j).map_err(|e| Error::other("page row JSON", e))?)
        }
        _ => None,
    };
    Ok(Some(ListPage {
        body,
        next_after,
        total,
        data_version,
    }))
}

/// The statements of one page, on one connection: (rows, viewer exists, total, data version).
/// The data version is read in the statement that reads the rows (one snapshot).
async fn read(
    conn: &mut PgConnection,
    viewer: &Credential,
    query: &EmployeeQuery,
    with_total: bool,
    now: i64,
) -> Result<(Vec<PageRow>, bool, Option<i64>, i64), sqlx::Error> {
    // With filters, the count comes first: it chooses how the page finds its rows (as on
    // SQLite), at the cost of a second round trip.
    let mut known_total = None;
    let mut by_place = false;
    if !query.filters.is_empty() {
        let mut count = Statement::default();
        let matches = DIALECT.count(&query.filters, &mut count);
        count.text = format!("SELECT {matches}, (SELECT n FROM employee_count)");
        let (matches, all): (i64, i64) =
            bind_all(sqlx::query_as(AssertSqlSafe(count.text)), count.params)
                .fetch_one(&mut *conn)
                .await?;
        by_place = prefer_places(matches, all, query.limit);
        known_total = Some(matches);
    }
    // The total as an SQL expression: none, the count already read, or its subquery.
    let total_sql = |sql: &mut Statement| match (with_total, known_total) {
        (false, _) => "CAST(NULL AS BIGINT)".to_owned(),
        (true, Some(known)) => format!("CAST({} AS BIGINT)", sql.bind(Param::Int(known))),
        (true, None) => DIALECT.count(&query.filters, sql),
    };
    let mut sql = Statement::default();
    let live = viewer.live_sql(now, &mut sql);
    let total = total_sql(&mut sql);
    let rows = DIALECT.rows(query, i64::from(query.limit) + 1, by_place, &mut sql);
    // The same order as `rows`, which PostgreSQL knows the subquery already yields (no sort).
    let order = sql::order_by(query, "");
    sql.text = format!(
        "SELECT (SELECT 1 FROM ({live}) v) AS viewer, {total} AS total, \
         {DATA_VERSION} AS data_version, {JSON_OBJECT} AS j FROM ({rows}) page ORDER BY {order}"
    );
    // Through the places, the plan is the same whatever the values (a nested loop over the
    // matching places): kept prepared, like the unfiltered pages.
    let persistent = by_place || sql::plan_is_stable(query);
    let rows: Vec<PageRow> = bind_all(sqlx::query_as(AssertSqlSafe(sql.text)), sql.params)
        .persistent(persistent)
        .fetch_all(&mut *conn)
        .await?;
    let (viewer_row, total, data_version) = match rows.first() {
        Some(row) => (row.viewer, row.total, row.data_version),
        // No rows, so no row to carry the viewer check and the count: ask for them alone.
        None => {
            let mut sql = Statement::default();
            let live = viewer.live_sql(now, &mut sql);
            let total = total_sql(&mut sql);
            bind_all(
                sqlx::query_as(AssertSqlSafe(format!(
                    "SELECT (SELECT 1 FROM ({live}) v), {total}, {DATA_VERSION}"
                ))),
                sql.params,
            )
            .fetch_one(&mut *conn)
            .await?
        }
    };
    Ok((rows, viewer_row.is_some(), total, data_version))
}
