//! Bulk imports: one write transaction, rows inserted in large batches.

use std::sync::Arc;

use sqlx::AssertSqlSafe;
use uuid::Uuid;

use super::{Backend, Db, Error, pool::Outages};
use crate::domain::employee::{NewEmployee, OnConflict, fold};

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
pub struct ImportTx {
    tx: Tx,
    outages: Arc<Outages>,
}

enum Tx {
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
}

impl Db {
    /// Starts an import. On SQLite the transaction takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so it cannot fail half-way with SQLITE_BUSY.
    pub async fn begin_import(&self) -> Result<ImportTx, Error> {
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
        let result = match &mut self.tx {
            Tx::Postgres(tx) => {
                bind_rows(sqlx::query_scalar(AssertSqlSafe(text)), rows)
                    .fetch_all(&mut **tx)
                    .await
            }
            Tx::Sqlite(tx) => {
                bind_rows(sqlx::query_scalar(AssertSqlSafe(text)), rows)
                    .fetch_all(&mut **tx)
                    .await
            }
        };
        result.map_err(|e| self.outages.classify(e))
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

/// Binds the eight values of each row, in the order of the INSERT's column list.
fn bind_rows<'q, DB>(
    mut query: sqlx::query::QueryScalar<'q, DB, i64, <DB as sqlx::Database>::Arguments>,
    rows: &[NewEmployee],
) -> sqlx::query::QueryScalar<'q, DB, i64, <DB as sqlx::Database>::Arguments>
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
