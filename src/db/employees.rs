//! Employee records, including the list query (sort, filters, offset or keyset pagination).

use sqlx::{AssertSqlSafe, Database, query::QueryAs};
use time::Date;
use uuid::Uuid;

use super::{
    Db, Kind, on_pool,
    sqlite_pages::{PageQuery, Statement},
};
use crate::domain::{
    employee::{EmpId, Employee, EmployeeChanges, NewEmployee, fold},
    listing::{Cursor, EmployeeQuery, Filters, Order, SortKey, SortValue, parse_date},
    user::User,
    username::Username,
};

const COLUMNS: &str = "e.emp_id, e.emp_name, e.city, e.country, e.emp_dob, e.id";

/// A value bound to a list query, in placeholder order.
pub(super) enum Param {
    Text(String),
    Int(i64),
    Date(Date),
}

/// SQL text plus its parameters. Only fixed identifiers (from [`SortKey::column`]) and
/// numbered placeholders are ever written into the text; every value is bound.
struct Sql {
    text: String,
    params: Vec<Param>,
}

impl Sql {
    fn new(text: &str) -> Self {
        Self {
            text: text.to_owned(),
            params: Vec::new(),
        }
    }

    /// Appends `param` and returns its placeholder (`$n`).
    fn bind(&mut self, param: Param) -> String {
        self.params.push(param);
        format!("${}", self.params.len())
    }
}

fn bind_all<'q, DB, O>(
    mut query: QueryAs<'q, DB, O, <DB as Database>::Arguments>,
    params: Vec<Param>,
) -> QueryAs<'q, DB, O, <DB as Database>::Arguments>
where
    DB: Database,
    String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Date: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    for param in params {
        query = match param {
            Param::Text(v) => query.bind(v),
            Param::Int(v) => query.bind(v),
            Param::Date(v) => query.bind(v),
        };
    }
    query
}

/// Escapes `%`, `_` and `\` so a LIKE pattern matches them literally (with `ESCAPE '\'`).
fn like_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl Db {
    /// The FROM clause (employees aliased `e`) and conditions that apply `filters`.
    ///
    /// PostgreSQL: `LIKE '%x%'` on the folded columns, served by the pg_trgm GIN indexes (the
    /// planner sees each value: these statements are planned per execution).
    /// SQLite: `instr()` on the folded columns while walking the sort order's index, which stops
    /// after a page of matches; a filter matching too few rows for that to be quick is instead
    /// answered through its places (`list_sql` with `by_place`, chosen in `sqlite_pages`).
    fn filtered_from(&self, filters: &Filters, sql: &mut Sql) -> (&'static str, Vec<String>) {
        let mut conds = Vec::new();
        for (column, value) in [
            ("e.city_folded", filters.city.as_deref()),
            ("e.country_folded", filters.country.as_deref()),
        ] {
            let Some(value) = value else { continue };
            match self.kind() {
                Kind::Postgres => {
                    let p = sql.bind(Param::Text(format!("%{}%", like_literal(value))));
                    conds.push(format!("{column} LIKE {p} ESCAPE '\\'"));
                }
                Kind::Sqlite => {
                    let p = sql.bind(Param::Text(value.to_owned()));
                    conds.push(format!("instr({column}, {p}) > 0"));
                }
            }
        }
        ("employees e", conds)
    }

    /// Inserts an employee; a taken `emp_id` is a unique violation for the caller to map.
    pub async fn insert_employee(&self, new: NewEmployee) -> Result<Employee, sqlx::Error> {
        let id = Uuid::new_v4();
        on_pool!(self, write, |pool| {
            sqlx::query(
                "INSERT INTO employees (emp_id, id, emp_name, city, country, emp_dob, city_folded, country_folded) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(new.emp_id.get())
            .bind(id)
            .bind(new.emp_name.as_str())
            .bind(new.city.as_str())
            .bind(new.country.as_str())
            .bind(new.emp_dob.get())
            .bind(fold(new.city.as_str()))
            .bind(fold(new.country.as_str()))
            .execute(pool)
            .await
            .map(|_| ())
        })?;
        Ok(Employee::new(id, new))
    }

    /// The employee with this `emp_id`.
    pub async fn employee(&self, emp_id: EmpId) -> Result<Option<Employee>, sqlx::Error> {
        on_pool!(self, read, |pool| {
            sqlx::query_as(SELECT_BY_ID)
                .bind(emp_id.get())
                .fetch_optional(pool)
                .await
        })
    }

    /// The user `user_id` (if it still exists) and the employee `emp_id` (if any), in one round
    /// trip: the per-request user check and the read share a query on the hottest route.
    pub async fn employee_seen_by(
        &self,
        user_id: i64,
        emp_id: EmpId,
    ) -> Result<Option<(User, Option<Employee>)>, sqlx::Error> {
        let row: Option<ViewerRow> = on_pool!(self, hot_read, |pool| {
            sqlx::query_as(
                "SELECT u.id AS viewer_id, u.username AS viewer_name, u.is_admin AS viewer_is_admin, \
                        e.emp_id, e.emp_name, e.city, e.country, e.emp_dob, e.id \
                 FROM users u LEFT JOIN employees e ON e.emp_id = $2 WHERE u.id = $1",
            )
            .bind(user_id)
            .bind(emp_id.get())
            // fetch_all, not fetch_optional: sqlx runs fetch_optional as "Execute at most one
            // row" and then sends an extra Sync to close the portal (one more message each way
            // per request, seen with strace); the key lookup yields one row at most anyway.
            .fetch_all(pool)
            .await
            .map(|rows| rows.into_iter().next())
        })?;
        Ok(row.map(|r| {
            let user = User {
                id: r.viewer_id,
                username: Username::from_db(r.viewer_name),
                is_admin: r.viewer_is_admin,
            };
            let employee = match (r.emp_id, r.emp_name, r.city, r.country, r.emp_dob, r.id) {
                (
                    Some(emp_id),
                    Some(emp_name),
                    Some(city),
                    Some(country),
                    Some(emp_dob),
                    Some(id),
                ) => Some(Employee {
                    emp_id,
                    emp_name,
                    city,
                    country,
                    emp_dob,
                    id,
                }),
                _ => None,
            };
            (user, employee)
        }))
    }

    /// Applies the changes present in `changes`, in one statement; `None` when no such employee.
    pub async fn update_employee(
        &self,
        emp_id: EmpId,
        changes: &EmployeeChanges,
    ) -> Result<Option<Employee>, sqlx::Error> {
        let city = changes.city.as_ref().map(|c| c.as_str());
        let country = changes.country.as_ref().map(|c| c.as_str());
        on_pool!(self, write, |pool| {
            sqlx::query_as(
                "UPDATE employees SET \
                   emp_name = COALESCE($2, emp_name), \
                   city = COALESCE($3, city), \
                   country = COALESCE($4, country), \
                   emp_dob = COALESCE($5, emp_dob), \
                   city_folded = COALESCE($6, city_folded), \
                   country_folded = COALESCE($7, country_folded) \
                 WHERE emp_id = $1 \
                 RETURNING emp_id, emp_name, city, country, emp_dob, id",
            )
            .bind(emp_id.get())
            .bind(changes.emp_name.as_ref().map(|n| n.as_str()))
            .bind(city)
            .bind(country)
            .bind(changes.emp_dob.map(|d| d.get()))
            .bind(city.map(fold))
            .bind(country.map(fold))
            .fetch_optional(pool)
            .await
        })
    }

    /// Deletes an employee; false when there was none.
    pub async fn delete_employee(&self, emp_id: EmpId) -> Result<bool, sqlx::Error> {
        let done = on_pool!(self, write, |pool| {
            sqlx::query("DELETE FROM employees WHERE emp_id = $1")
                .bind(emp_id.get())
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(done == 1)
    }

    /// One page of employees: at most `query.limit + 1` rows, so the caller can tell whether
    /// another page follows.
    pub async fn list_employees(
        &self,
        query: &EmployeeQuery,
    ) -> Result<Vec<Employee>, sqlx::Error> {
        let mut sql = Sql::new("");
        sql.text = self.list_sql(query, i64::from(query.limit) + 1, false, &mut sql);
        on_pool!(self, read, |pool| {
            bind_all(sqlx::query_as(AssertSqlSafe(sql.text)), sql.params)
                .fetch_all(pool)
                .await
        })
    }

    /// The SELECT of at most `fetch` rows of the list (its parameters bound into `sql`).
    ///
    /// `by_place` (with filters): select the rows through the places that match
    /// (`employee_places`, then `employees_place_idx`) instead of walking the sort order
    /// (SQLite) or intersecting the trigram index (PostgreSQL).
    fn list_sql(&self, query: &EmployeeQuery, fetch: i64, by_place: bool, sql: &mut Sql) -> String {
        let (from, mut conds) = if by_place {
            match self.kind() {
                Kind::Sqlite => (
                    "employees e INDEXED BY employees_place_idx",
                    vec![format!(
                        "(e.city_folded, e.country_folded) IN \
                         (SELECT city_folded, country_folded FROM employee_places WHERE {})",
                        self.place_conds(&query.filters, "", sql)
                    )],
                ),
                // LATERAL with OFFSET 0 keeps the nested loop: for each matching place, its
                // employees by employees_place_idx (the planner cannot tell how few places
                // strpos() keeps, and would otherwise hash-join the whole table).
                Kind::Postgres => (
                    "employee_places p CROSS JOIN LATERAL (SELECT * FROM employees \
                       WHERE city_folded = p.city_folded AND country_folded = p.country_folded \
                       OFFSET 0) e",
                    vec![self.place_conds(&query.filters, "p.", sql)],
                ),
            }
        } else {
            self.filtered_from(&query.filters, sql)
        };
        let column = query.sort.column();
        // SQLite, filtered: walk the sort order itself. Left to choose, SQLite 3.51 scans all of
        // employees_place_idx (it holds the filtered columns) and sorts every match: 200 ms for
        // "london" by name instead of 4 ms.
        let from = match (self.kind(), by_place, query.filters.is_empty()) {
            (Kind::Sqlite, false, false) => match query.sort {
                SortKey::EmpId => format!("{from} NOT INDEXED"),
                _ => format!("{from} INDEXED BY employees_{column}_idx"),
            },
            _ => from.to_owned(),
        };
        let (cmp, dir) = match query.order {
            Order::Asc => (">", "ASC"),
            Order::Desc => ("<", "DESC"),
        };
        if let Some(cursor) = &query.after {
            conds.push(keyset_condition(cursor, column, cmp, sql));
        }
        let where_clause = if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        };
        let order_by = match query.sort {
            SortKey::EmpId => format!("e.emp_id {dir}"),
            _ => format!("e.{column} {dir}, e.emp_id {dir}"),
        };
        // The page size is written into the text (an integer the query parser bounded to
        // 1..=1000, never client text), and OFFSET only when there is one: then the statement
        // of a first or cursor page has no parameter that changes its best plan, so PostgreSQL
        // settles on a cached generic plan instead of planning it again on every request (a
        // third of its CPU per page under perf). See `Db::list_plan_is_stable`.
        let mut text =
            format!("SELECT {COLUMNS} FROM {from}{where_clause} ORDER BY {order_by} LIMIT {fetch}");
        if query.after.is_none() && query.offset > 0 {
            let offset = sql.bind(Param::Int(query.offset as i64));
            text.push_str(&format!(" OFFSET {offset}"));
        }
        text
    }

    /// Whether the list statement for `query` may be kept prepared. A substring filter's best
    /// plan depends on its value (a rare city: the trigram index; a common one: walk the sort
    /// index and stop early), and so does a large OFFSET's: those are planned per execution
    /// (an unnamed statement), so PostgreSQL never falls back to one generic plan for every
    /// value.
    fn list_plan_is_stable(query: &EmployeeQuery) -> bool {
        query.filters.is_empty() && (query.after.is_some() || query.offset == 0)
    }

    /// A scalar subquery giving the number of employees matching `filters`. Without filters it
    /// reads the counter the triggers keep; with filters it sums the per-place counters
    /// (`employee_places`, one row per distinct folded (city, country) pair) whose place passes
    /// the same substring tests, so a common city costs a few hundred short rows, not a visit
    /// to each of its employees.
    fn count_sql(&self, filters: &Filters, sql: &mut Sql) -> String {
        if filters.is_empty() {
            return "(SELECT n FROM employee_count)".to_owned();
        }
        format!(
            "(SELECT CAST(coalesce(sum(n), 0) AS BIGINT) FROM employee_places WHERE {})",
            self.place_conds(filters, "", sql)
        )
    }

    /// The conditions on `employee_places` (aliased `alias`, e.g. `p.`) that select the places
    /// `filters` match.
    fn place_conds(&self, filters: &Filters, alias: &str, sql: &mut Sql) -> String {
        // strpos/instr: a literal substring test, the same one the list query applies.
        let contains = match self.kind() {
            Kind::Postgres => "strpos",
            Kind::Sqlite => "instr",
        };
        let mut conds = Vec::new();
        for (column, value) in [
            ("city_folded", filters.city.as_deref()),
            ("country_folded", filters.country.as_deref()),
        ] {
            if let Some(value) = value {
                let p = sql.bind(Param::Text(value.to_owned()));
                conds.push(format!("{contains}({alias}{column}, {p}) > 0"));
            }
        }
        conds.join(" AND ")
    }

    /// One page of the list as the response body, read together with the viewer check and
    /// (when `with_total`) the count. `None` when the user `viewer` no longer exists.
    ///
    /// The rows never become `Employee` values: under `perf`, a value copy, a channel message
    /// and a decode per column and row, then serialization again, were most of a page's cost.
    /// PostgreSQL writes each row as a JSON object (strings escaped by `to_json`), with the
    /// viewer check and the count as columns of the same statement (one round trip; two with
    /// filters, whose count comes first to choose the plan); SQLite runs the statements on one
    /// rusqlite connection and writes each row from SQLite's buffers (`sqlite_pages`). The row
    /// after the page tells whether another page follows; the page's last row is parsed back
    /// for the `next` cursor.
    pub async fn list_page(
        &self,
        viewer: i64,
        query: &EmployeeQuery,
        with_total: bool,
    ) -> Result<Option<Page>, sqlx::Error> {
        let readers = match &self.backend {
            super::Backend::Postgres { readers, .. } => readers,
            super::Backend::Sqlite { pages, .. } => {
                let filtered = !query.filters.is_empty();
                // With filters the count also chooses how to find the rows, so it always runs.
                let count = (with_total || filtered).then(|| {
                    let mut sql = Sql::new("");
                    let text = format!("SELECT {}", self.count_sql(&query.filters, &mut sql));
                    Statement {
                        text,
                        params: sql.params,
                    }
                });
                let rows = |by_place| {
                    let mut sql = Sql::new("");
                    let text = self.list_sql(query, i64::from(query.limit) + 1, by_place, &mut sql);
                    Statement {
                        text,
                        params: sql.params,
                    }
                };
                return pages
                    .page(PageQuery {
                        viewer,
                        count,
                        report_total: with_total,
                        rows: rows(false),
                        rows_by_place: filtered.then(|| rows(true)),
                        limit: query.limit as usize,
                    })
                    .await;
            }
        };
        let mut lease = readers.acquire().await?;
        // With filters, the count comes first: it chooses how the page finds its rows (as on
        // SQLite; see `sqlite_pages`), at the cost of a second round trip.
        let mut known_total = None;
        let mut by_place = false;
        if !query.filters.is_empty() {
            let mut sql = Sql::new("");
            let matches = self.count_sql(&query.filters, &mut sql);
            sql.text = format!("SELECT {matches}, (SELECT n FROM employee_count)");
            let (matches, all): (i64, i64) =
                bind_all(sqlx::query_as(AssertSqlSafe(sql.text)), sql.params)
                    .fetch_one(lease.conn())
                    .await?;
            by_place = prefer_places(matches, all, query.limit);
            known_total = Some(matches);
        }
        let mut sql = Sql::new("");
        let viewer_id = viewer;
        let viewer = sql.bind(Param::Int(viewer));
        // The total as an SQL expression: none, the count already read, or its subquery.
        let total_sql = |sql: &mut Sql| match (with_total, known_total) {
            (false, _) => "CAST(NULL AS BIGINT)".to_owned(),
            (true, Some(known)) => format!("CAST({} AS BIGINT)", sql.bind(Param::Int(known))),
            (true, None) => self.count_sql(&query.filters, sql),
        };
        let total = total_sql(&mut sql);
        let rows = self.list_sql(query, i64::from(query.limit) + 1, by_place, &mut sql);
        let column = query.sort.column();
        let dir = match query.order {
            Order::Asc => "ASC",
            Order::Desc => "DESC",
        };
        // The same order as `rows`, which PostgreSQL knows the subquery already yields (no sort).
        let order = match query.sort {
            SortKey::EmpId => format!("emp_id {dir}"),
            _ => format!("{column} {dir}, emp_id {dir}"),
        };
        let viewer_and_total =
            format!("(SELECT 1 FROM users WHERE id = {viewer}) AS viewer, {total} AS total");
        sql.text = format!(
            "SELECT {viewer_and_total}, {JSON_OBJECT} AS j FROM ({rows}) page ORDER BY {order}"
        );
        // Through the places, the plan is the same whatever the values (a nested loop over the
        // matching places): kept prepared, like the unfiltered pages.
        let persistent = by_place || Self::list_plan_is_stable(query);
        let rows: Vec<PageRow> = bind_all(sqlx::query_as(AssertSqlSafe(sql.text)), sql.params)
            .persistent(persistent)
            .fetch_all(lease.conn())
            .await?;
        let (viewer, total) = match rows.first() {
            Some(row) => (row.viewer, row.total),
            // No rows, so no row to carry the viewer check and the count: ask for them alone.
            None => {
                let mut sql = Sql::new("");
                let viewer = sql.bind(Param::Int(viewer_id));
                let total = total_sql(&mut sql);
                let (viewer, total) = bind_all(
                    sqlx::query_as(AssertSqlSafe(format!(
                        "SELECT (SELECT 1 FROM users WHERE id = {viewer}), {total}"
                    ))),
                    sql.params,
                )
                .fetch_one(lease.conn())
                .await?;
                (viewer, total)
            }
        };
        lease.release();
        if viewer.is_none() {
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
                Some(serde_json::from_str(&last.j).map_err(|e| sqlx::Error::Decode(Box::new(e)))?)
            }
            _ => None,
        };
        Ok(Some(Page {
            body,
            next_after,
            total,
        }))
    }
}

/// A page of the list, ready to send.
pub struct Page {
    /// The JSON array of the page's employees.
    pub body: String,
    /// The page's last employee when more rows follow it (for the `next` cursor).
    pub next_after: Option<Employee>,
    /// Rows matching the filters, when asked for.
    pub total: Option<i64>,
}

/// One row of a PostgreSQL page: the employee as JSON, and the viewer check and the count
/// (the same on every row).
#[derive(sqlx::FromRow)]
struct PageRow {
    viewer: Option<i32>,
    total: Option<i64>,
    j: String,
}

/// One employee as a JSON object (the `Employee` shape, keys in the same order), written by
/// PostgreSQL from the `page` columns. `to_json` escapes the strings and writes the date as
/// `YYYY-MM-DD` whatever the session's DateStyle.
const JSON_OBJECT: &str = "'{\"emp_id\":' || emp_id || ',\"emp_name\":' || to_json(emp_name) \
    || ',\"city\":' || to_json(city) || ',\"country\":' || to_json(country) \
    || ',\"emp_dob\":' || to_json(emp_dob) || ',\"id\":\"' || id || '\"}'";

/// A user joined with an employee that may not exist.
#[derive(sqlx::FromRow)]
struct ViewerRow {
    viewer_id: i64,
    viewer_name: String,
    viewer_is_admin: bool,
    emp_id: Option<i64>,
    emp_name: Option<String>,
    city: Option<String>,
    country: Option<String>,
    emp_dob: Option<Date>,
    id: Option<Uuid>,
}

const SELECT_BY_ID: &str =
    "SELECT emp_id, emp_name, city, country, emp_dob, id FROM employees WHERE emp_id = $1";

/// Whether a filter's page is cheaper through its places than by walking the sort order.
///
/// Walking the sort order's index and keeping the matches reads about `(limit + 1) * all /
/// matches` rows; collecting the matches through their places (the few hundred rows of
/// `employee_places`, then `employees_place_idx`) reads every match and sorts them. The
/// second wins when `matches^2 < (limit + 1) * all`: a rare city of 10 rows in a million costs
/// 10 look-ups instead of a long walk (SQLite) or a trigram index intersection (PostgreSQL).
pub(super) fn prefer_places(matches: i64, all: i64, limit: u32) -> bool {
    matches.saturating_mul(matches) < (i64::from(limit) + 1).saturating_mul(all)
}

/// `(sort column, emp_id)` strictly after the cursor's position, in the list's direction.
fn keyset_condition(cursor: &Cursor, column: &str, cmp: &str, sql: &mut Sql) -> String {
    if cursor.sort == SortKey::EmpId {
        let p = sql.bind(Param::Int(cursor.after_emp_id));
        return format!("e.emp_id {cmp} {p}");
    }
    let value = match (&cursor.after_value, cursor.sort) {
        (SortValue::Text(v), SortKey::EmpDob) => {
            parse_date(v).map_or(Param::Text(v.clone()), Param::Date)
        }
        (SortValue::Text(v), _) => Param::Text(v.clone()),
        (SortValue::Int(v), _) => Param::Int(*v),
    };
    let v = sql.bind(value);
    let k = sql.bind(Param::Int(cursor.after_emp_id));
    format!("(e.{column}, e.emp_id) {cmp} ({v}, {k})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_wildcards_and_backslash_are_escaped() {
        assert_eq!(like_literal(r"50%_a\b"), r"50\%\_a\\b");
    }
}

/// What an import does with an `emp_id` that already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnConflict {
    /// Refuse the whole import (the default).
    #[default]
    Error,
    /// Keep the stored row, ignore the imported one.
    Skip,
    /// Replace the stored row's fields (its `id` is kept).
    Update,
}

/// A write transaction for bulk imports. Dropping it without [`ImportTx::commit`] rolls back.
pub struct ImportTx {
    tx: Tx,
}

enum Tx {
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
}

/// SQLite page cache during an import (256 MiB) and SQLite's default (2 MiB) after it.
const IMPORT_CACHE: &str = "PRAGMA cache_size = -262144";
const DEFAULT_CACHE: &str = "PRAGMA cache_size = -2000";

/// Rows per INSERT statement: 8 parameters each, 32,000 in all, within both backends' limits
/// (SQLite 32,766, PostgreSQL 65,535). Large on purpose: on PostgreSQL every statement's
/// trigger updates the same few hundred `employee_places` rows, and inside the one import
/// transaction each update leaves a version the next one must step over. 1,000-row batches
/// made a 1M-row import 4x slower than with no such trigger.
pub const IMPORT_BATCH: usize = 4000;

impl Db {
    /// Starts an import. On SQLite the transaction takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so it cannot fail half-way with SQLITE_BUSY.
    pub async fn begin_import(&self) -> Result<ImportTx, sqlx::Error> {
        let tx = match &self.backend {
            super::Backend::Postgres { pool, .. } => Tx::Postgres(pool.begin().await?),
            super::Backend::Sqlite { writer, .. } => {
                let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
                // A bulk load touches every index at random: a large page cache for its
                // duration keeps them in memory (restored by commit/rollback).
                sqlx::query(IMPORT_CACHE).execute(&mut *tx).await?;
                Tx::Sqlite(tx)
            }
        };
        Ok(ImportTx { tx })
    }
}

impl ImportTx {
    /// Writes up to [`IMPORT_BATCH`] rows in one statement. Returns the `emp_id`s written
    /// (with `Error` or `Skip`, the ones missing from the answer already existed).
    pub async fn insert_batch(
        &mut self,
        rows: &[NewEmployee],
        mode: OnConflict,
    ) -> Result<Vec<i64>, sqlx::Error> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let mut text = String::from(
            "INSERT INTO employees (emp_id, id, emp_name, city, country, emp_dob, city_folded, country_folded) VALUES ",
        );
        for i in 0..rows.len() {
            if i > 0 {
                text.push(',');
            }
            match &self.tx {
                Tx::Postgres(_) => {
                    let b = i * 8;
                    let p: Vec<String> = (1..=8).map(|k| format!("${}", b + k)).collect();
                    text.push_str(&format!("({})", p.join(",")));
                }
                // Anonymous placeholders: binding 8,000 *named* ones costs SQLite a linear name
                // search each (78% of an import's CPU under perf, 6k rows/s).
                Tx::Sqlite(_) => text.push_str("(?,?,?,?,?,?,?,?)"),
            }
        }
        text.push_str(match mode {
            OnConflict::Error | OnConflict::Skip => " ON CONFLICT (emp_id) DO NOTHING RETURNING emp_id",
            OnConflict::Update => {
                " ON CONFLICT (emp_id) DO UPDATE SET emp_name = excluded.emp_name, city = excluded.city, \
                 country = excluded.country, emp_dob = excluded.emp_dob, city_folded = excluded.city_folded, \
                 country_folded = excluded.country_folded RETURNING emp_id"
            }
        });
        macro_rules! run {
            ($conn:expr) => {{
                let mut q = sqlx::query_scalar(AssertSqlSafe(text));
                for row in rows {
                    q = q
                        .bind(row.emp_id.get())
                        .bind(Uuid::new_v4())
                        .bind(row.emp_name.as_str().to_owned())
                        .bind(row.city.as_str().to_owned())
                        .bind(row.country.as_str().to_owned())
                        .bind(row.emp_dob.get())
                        .bind(fold(row.city.as_str()))
                        .bind(fold(row.country.as_str()));
                }
                q.fetch_all(&mut **$conn).await
            }};
        }
        match &mut self.tx {
            Tx::Postgres(tx) => run!(tx),
            Tx::Sqlite(tx) => run!(tx),
        }
    }

    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self.tx {
            Tx::Postgres(tx) => tx.commit().await,
            Tx::Sqlite(mut tx) => {
                sqlx::query(DEFAULT_CACHE).execute(&mut *tx).await?;
                tx.commit().await
            }
        }
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        match self.tx {
            Tx::Postgres(tx) => tx.rollback().await,
            Tx::Sqlite(mut tx) => {
                sqlx::query(DEFAULT_CACHE).execute(&mut *tx).await?;
                tx.rollback().await
            }
        }
    }
}
