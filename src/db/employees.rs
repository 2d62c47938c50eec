//! Employee records, including the list query (sort, filters, offset or keyset pagination).

use sqlx::{AssertSqlSafe, Database, query::QueryAs};
use time::Date;
use uuid::Uuid;

use super::{Db, Kind, on_pool};
use crate::domain::{
    employee::{EmpId, Employee, EmployeeChanges, NewEmployee, fold},
    listing::{Cursor, EmployeeQuery, Filters, Order, SortKey, SortValue, parse_date},
    user::User,
    username::Username,
};

const COLUMNS: &str = "e.emp_id, e.emp_name, e.city, e.country, e.emp_dob, e.id";

/// SQLite: the trigram index drives filtered queries (CROSS JOIN keeps it the outer loop).
const FTS_FROM: &str = "employees_fts CROSS JOIN employees e ON e.emp_id = employees_fts.rowid";

/// FTS5's trigram tokenizer cannot match fewer than three characters.
const TRIGRAM: usize = 3;

/// A value bound to a list query, in placeholder order.
enum Param {
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

/// An FTS5 string literal: the text in double quotes, inner quotes doubled. Inside it every
/// character (including `*`, `:`, `-`, `%`) is literal.
fn fts_phrase(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

impl Db {
    /// The FROM clause (employees aliased `e`) and conditions that apply `filters`.
    ///
    /// PostgreSQL: `LIKE '%x%'` on the folded columns, served by the pg_trgm GIN indexes.
    /// SQLite: values of three or more characters are an FTS5 trigram phrase query, which is an
    /// exact substring match on the folded text; the FTS table then drives the query (it yields
    /// rows in `emp_id` order, so a common value's first page stops early). Shorter values, which
    /// trigrams cannot index, use `instr()`.
    fn filtered_from(&self, filters: &Filters, sql: &mut Sql) -> (&'static str, Vec<String>) {
        let wanted = [
            ("e.city_folded", "city_folded", filters.city.as_deref()),
            (
                "e.country_folded",
                "country_folded",
                filters.country.as_deref(),
            ),
        ];
        let mut conds = Vec::new();
        match self.kind() {
            Kind::Postgres => {
                for (column, _, value) in wanted {
                    if let Some(value) = value {
                        let p = sql.bind(Param::Text(format!("%{}%", like_literal(value))));
                        conds.push(format!("{column} LIKE {p} ESCAPE '\\'"));
                    }
                }
                ("employees e", conds)
            }
            Kind::Sqlite => {
                let mut phrases = Vec::new();
                for (column, fts_column, value) in wanted {
                    match value {
                        Some(value) if value.chars().count() >= TRIGRAM => {
                            phrases.push(format!("{fts_column} : {}", fts_phrase(value)));
                        }
                        Some(value) => {
                            let p = sql.bind(Param::Text(value.to_owned()));
                            conds.push(format!("instr({column}, {p}) > 0"));
                        }
                        None => {}
                    }
                }
                if phrases.is_empty() {
                    return ("employees e", conds);
                }
                let p = sql.bind(Param::Text(phrases.join(" AND ")));
                conds.insert(0, format!("employees_fts MATCH {p}"));
                (FTS_FROM, conds)
            }
        }
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
        let row: Option<ViewerRow> = on_pool!(self, read, |pool| {
            sqlx::query_as(
                "SELECT u.id AS viewer_id, u.username AS viewer_name, u.is_admin AS viewer_is_admin, \
                        e.emp_id, e.emp_name, e.city, e.country, e.emp_dob, e.id \
                 FROM users u LEFT JOIN employees e ON e.emp_id = $2 WHERE u.id = $1",
            )
            .bind(user_id)
            .bind(emp_id.get())
            .fetch_optional(pool)
            .await
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
        let sql = self.list_sql(query, i64::from(query.limit) + 1);
        on_pool!(self, read, |pool| {
            bind_all(sqlx::query_as(AssertSqlSafe(sql.text)), sql.params)
                .fetch_all(pool)
                .await
        })
    }

    fn list_sql(&self, query: &EmployeeQuery, fetch: i64) -> Sql {
        let mut sql = Sql::new("");
        let (from, mut conds) = self.filtered_from(&query.filters, &mut sql);
        let column = query.sort.column();
        let (cmp, dir) = match query.order {
            Order::Asc => (">", "ASC"),
            Order::Desc => ("<", "DESC"),
        };
        let id_column = if from == FTS_FROM {
            "employees_fts.rowid"
        } else {
            "e.emp_id"
        };
        if let Some(cursor) = &query.after {
            conds.push(keyset_condition(cursor, column, id_column, cmp, &mut sql));
        }
        let where_clause = if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        };
        let order_by = match query.sort {
            // The FTS table yields rowids (= emp_id) in order: no sort needed.
            SortKey::EmpId => format!("{id_column} {dir}"),
            _ => format!("e.{column} {dir}, e.emp_id {dir}"),
        };
        let limit = sql.bind(Param::Int(fetch));
        let offset = sql.bind(Param::Int(if query.after.is_some() {
            0
        } else {
            query.offset as i64
        }));
        sql.text = format!(
            "SELECT {COLUMNS} FROM {from}{where_clause} ORDER BY {order_by} LIMIT {limit} OFFSET {offset}"
        );
        sql
    }

    /// The number of employees matching `filters`. Without filters this reads the counter the
    /// triggers keep, not the table.
    pub async fn count_employees(&self, filters: &Filters) -> Result<i64, sqlx::Error> {
        if filters.is_empty() {
            return on_pool!(self, read, |pool| {
                sqlx::query_scalar("SELECT n FROM employee_count")
                    .fetch_one(pool)
                    .await
            });
        }
        let mut sql = Sql::new("");
        let (from, conds) = self.filtered_from(filters, &mut sql);
        // When the trigram index answers every filter, count its matches without visiting the
        // rows (a common city: 68k index entries instead of 68k row look-ups).
        let from = if from == FTS_FROM && conds.len() == 1 {
            "employees_fts"
        } else {
            from
        };
        let text = format!("SELECT count(*) FROM {from} WHERE {}", conds.join(" AND "));
        let (count,): (i64,) = on_pool!(self, read, |pool| {
            bind_all(sqlx::query_as(AssertSqlSafe(text)), sql.params)
                .fetch_one(pool)
                .await
        })?;
        Ok(count)
    }
}

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

/// `(sort column, emp_id)` strictly after the cursor's position, in the list's direction.
///
/// `id_column` is `e.emp_id`, or the FTS rowid when the trigram index drives the query (so
/// the index seeks straight to the cursor instead of scanning up to it).
fn keyset_condition(
    cursor: &Cursor,
    column: &str,
    id_column: &str,
    cmp: &str,
    sql: &mut Sql,
) -> String {
    if cursor.sort == SortKey::EmpId {
        let p = sql.bind(Param::Int(cursor.after_emp_id));
        return format!("{id_column} {cmp} {p}");
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

    #[test]
    fn fts_phrase_doubles_quotes() {
        assert_eq!(fts_phrase(r#"a"b"#), r#""a""b""#);
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

/// Rows per INSERT statement: 8 parameters each stays far below both backends' limits.
pub const IMPORT_BATCH: usize = 1000;

impl Db {
    /// Starts an import. On SQLite the transaction takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so it cannot fail half-way with SQLITE_BUSY.
    pub async fn begin_import(&self) -> Result<ImportTx, sqlx::Error> {
        let tx = match &self.backend {
            super::Backend::Postgres(pool) => Tx::Postgres(pool.begin().await?),
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
