//! Bulk imports: one write transaction, rows inserted in large batches.

use std::sync::Arc;

use sqlx::AssertSqlSafe;
use uuid::Uuid;

use std::collections::HashMap;

use serde_json::{Value, json};
use time::Date;

use super::{Backend, Db, Error, audit::Append, pool::Outages};
use crate::domain::{
    audit::{Action, AuditContext, NewEntry},
    clock::unix_millis,
    employee::{NewEmployee, OnConflict, fold},
};

/// Rows per INSERT statement: 8 parameters each, 32,000 in all, within both backends' limits
/// (SQLite 32,766, PostgreSQL 65,535). Large on purpose: on PostgreSQL every statement's
/// trigger updates the same few hundred `employee_places` rows, and inside the one import
/// transaction each update leaves a version the next one must step over. 1,000-row batches
/// made a 1M-row import 4x slower than with no such trigger.
pub const IMPORT_BATCH: usize = 4000;

/// SQLite page cache during an import (256 MiB) and SQLite's default (2 MiB) after it.
const IMPORT_CACHE: &str = "PRAGMA cache_size = -262144";
const DEFAULT_CACHE: &str = "PRAGMA cache_size = -2000";

/// A write transaction for bulk imports. Dropping it without [`ImportTx::commit`] rolls back.
///
/// Every row it creates or changes is recorded in the audit trail (`employee.import`, with the
/// values before and after), batch by batch, as pending entries that the sealer numbers once the
/// import commits (none if it rolls back). On SQLite the import holds the one writer
/// throughout, so other writes wait for it; on PostgreSQL they go on beside it.
pub struct ImportTx {
    tx: Tx,
    outages: Arc<Outages>,
    ctx: AuditContext,
}

/// A row as it was before an import changed it.
type Before = (Uuid, String, String, String, Date);

enum Tx {
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
}

impl Db {
    /// Starts an import. On SQLite the transaction takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so it cannot fail half-way with SQLITE_BUSY.
    pub async fn begin_import(&self, ctx: AuditContext) -> Result<ImportTx, Error> {
        let classify = |e| self.outages.classify(e);
        let tx = match &self.backend {
            Backend::Postgres { pool, .. } => Tx::Postgres(pool.begin().await.map_err(classify)?),
            Backend::Sqlite { writer, .. } => {
                let mut tx = writer
                    .begin_with("BEGIN IMMEDIATE")
                    .await
                    .map_err(classify)?;
                // A bulk load touches every index at random: a large page cache for its
                // duration keeps them in memory (restored by commit/rollback).
                sqlx::query(IMPORT_CACHE)
                    .execute(&mut *tx)
                    .await
                    .map_err(classify)?;
                Tx::Sqlite(tx)
            }
        };
        Ok(ImportTx {
            tx,
            outages: Arc::clone(&self.outages),
            ctx,
        })
    }
}

impl ImportTx {
    /// Writes up to [`IMPORT_BATCH`] rows in one statement. Returns the `emp_id`s written
    /// (with `Error` or `Skip`, the ones missing from the answer already existed).
    pub async fn insert_batch(
        &mut self,
        rows: &[NewEmployee],
        mode: OnConflict,
    ) -> Result<Vec<i64>, Error> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        // The rows an update would change, as they are now (for the audit's "from").
        let before = match mode {
            OnConflict::Update => self.existing(rows).await?,
            OnConflict::Error | OnConflict::Skip => HashMap::new(),
        };
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
            OnConflict::Error | OnConflict::Skip => {
                " ON CONFLICT (emp_id) DO NOTHING RETURNING emp_id, id"
            }
            OnConflict::Update => {
                " ON CONFLICT (emp_id) DO UPDATE SET emp_name = excluded.emp_name, city = excluded.city, \
                 country = excluded.country, emp_dob = excluded.emp_dob, city_folded = excluded.city_folded, \
                 country_folded = excluded.country_folded RETURNING emp_id, id"
            }
        });
        let ctx = self.ctx.clone();
        let result = match &mut self.tx {
            Tx::Postgres(tx) => {
                let written: Result<Vec<(i64, Uuid)>, _> =
                    bind_rows(sqlx::query_as(AssertSqlSafe(text)), rows)
                        .fetch_all(&mut **tx)
                        .await;
                match written {
                    Ok(written) => {
                        let (records, entries) = import_entries(rows, &written, &before);
                        match Append::append(&mut **tx, &ctx, entries, unix_millis()).await {
                            // Each written row's version: its entry's id.
                            Ok(ids) => sqlx::query(
                                "UPDATE employees e SET version = v.id \
                                 FROM UNNEST($1::bigint[], $2::bigint[]) AS v (emp_id, id) \
                                 WHERE e.emp_id = v.emp_id",
                            )
                            .bind(records)
                            .bind(ids)
                            .execute(&mut **tx)
                            .await
                            .map(|_| written),
                            Err(e) => Err(e),
                        }
                    }
                    Err(e) => Err(e),
                }
            }
            Tx::Sqlite(tx) => {
                let written: Result<Vec<(i64, Uuid)>, _> =
                    bind_rows(sqlx::query_as(AssertSqlSafe(text)), rows)
                        .fetch_all(&mut **tx)
                        .await;
                match written {
                    Ok(written) => {
                        let (records, entries) = import_entries(rows, &written, &before);
                        match Append::append(&mut **tx, &ctx, entries, unix_millis()).await {
                            // Each written row's version, in one statement: `[[emp_id, id], ..]`.
                            Ok(ids) => {
                                let versions: Vec<(i64, i64)> =
                                    records.into_iter().zip(ids).collect();
                                sqlx::query(
                                    "UPDATE employees SET version = v.value ->> 1 \
                                     FROM json_each(?) AS v WHERE employees.emp_id = v.value ->> 0",
                                )
                                .bind(serde_json::to_string(&versions).unwrap_or_default())
                                .execute(&mut **tx)
                                .await
                                .map(|_| written)
                            }
                            Err(e) => Err(e),
                        }
                    }
                    Err(e) => Err(e),
                }
            }
        };
        result
            .map(|written| written.into_iter().map(|(emp_id, _)| emp_id).collect())
            .map_err(|e| self.outages.classify(e))
    }

    /// The rows of `rows`' `emp_id`s that exist now.
    async fn existing(&mut self, rows: &[NewEmployee]) -> Result<HashMap<i64, Before>, Error> {
        let ids: Vec<i64> = rows.iter().map(|r| r.emp_id.get()).collect();
        type Row = (i64, Uuid, String, String, String, Date);
        let found: Result<Vec<Row>, sqlx::Error> = match &mut self.tx {
            Tx::Postgres(tx) => {
                sqlx::query_as(
                    "SELECT emp_id, id, emp_name, city, country, emp_dob FROM employees \
                     WHERE emp_id = ANY($1)",
                )
                .bind(&ids)
                .fetch_all(&mut **tx)
                .await
            }
            Tx::Sqlite(tx) => {
                sqlx::query_as(
                    "SELECT emp_id, id, emp_name, city, country, emp_dob FROM employees \
                     WHERE emp_id IN (SELECT value FROM json_each(?))",
                )
                .bind(serde_json::to_string(&ids).unwrap_or_default())
                .fetch_all(&mut **tx)
                .await
            }
        };
        let found = found.map_err(|e| self.outages.classify(e))?;
        Ok(found
            .into_iter()
            .map(|(emp_id, id, name, city, country, dob)| (emp_id, (id, name, city, country, dob)))
            .collect())
    }

    pub async fn commit(self) -> Result<(), Error> {
        let result = match self.tx {
            Tx::Postgres(tx) => tx.commit().await,
            Tx::Sqlite(mut tx) => match sqlx::query(DEFAULT_CACHE).execute(&mut *tx).await {
                Ok(_) => tx.commit().await,
                Err(e) => Err(e),
            },
        };
        result.map_err(|e| self.outages.classify(e))
    }

    pub async fn rollback(self) -> Result<(), Error> {
        let result = match self.tx {
            Tx::Postgres(tx) => tx.rollback().await,
            Tx::Sqlite(mut tx) => match sqlx::query(DEFAULT_CACHE).execute(&mut *tx).await {
                Ok(_) => tx.rollback().await,
                Err(e) => Err(e),
            },
        };
        result.map_err(|e| self.outages.classify(e))
    }
}

/// The audit entries of a batch, each with the `emp_id` of the record it versions: one per row
/// written, with the fields it set (created) or changed (updated).
fn import_entries(
    rows: &[NewEmployee],
    written: &[(i64, Uuid)],
    before: &HashMap<i64, Before>,
) -> (Vec<i64>, Vec<NewEntry>) {
    let by_id: HashMap<i64, &NewEmployee> = rows.iter().map(|r| (r.emp_id.get(), r)).collect();
    written
        .iter()
        .filter_map(|(emp_id, id)| {
            let row = by_id.get(emp_id)?;
            let now = [
                ("emp_name", json!(row.emp_name.as_str())),
                ("city", json!(row.city.as_str())),
                ("country", json!(row.country.as_str())),
                ("emp_dob", json!(row.emp_dob.get().to_string())),
            ];
            let was = before.get(emp_id).map(|(_, name, city, country, dob)| {
                [
                    json!(name),
                    json!(city),
                    json!(country),
                    json!(dob.to_string()),
                ]
            });
            let mut entry = NewEntry::new(Action::EmployeeImport, emp_id).record(*id);
            for (i, (field, to)) in now.into_iter().enumerate() {
                let from = was.as_ref().map_or(Value::Null, |w| w[i].clone());
                if from != to {
                    entry = entry.change(field, from, to);
                }
            }
            (!entry.changes.is_empty()).then_some((*emp_id, entry))
        })
        .unzip()
}

/// Binds the eight values of each row, in the order of the INSERT's column list.
fn bind_rows<'q, DB>(
    mut query: sqlx::query::QueryAs<'q, DB, (i64, Uuid), <DB as sqlx::Database>::Arguments>,
    rows: &[NewEmployee],
) -> sqlx::query::QueryAs<'q, DB, (i64, Uuid), <DB as sqlx::Database>::Arguments>
where
    DB: sqlx::Database,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Uuid: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    time::Date: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    for row in rows {
        query = query
            .bind(row.emp_id.get())
            .bind(Uuid::new_v4())
            .bind(row.emp_name.as_str().to_owned())
            .bind(row.city.as_str().to_owned())
            .bind(row.country.as_str().to_owned())
            .bind(row.emp_dob.get())
            .bind(fold(row.city.as_str()))
            .bind(fold(row.country.as_str()));
    }
    query
}
