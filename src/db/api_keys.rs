//! API keys for scripts and integrations, stored by their keyed hash.

use serde_json::{Value, json};

use super::{BeginWrite, Db, Error, audit::Append, on_pool};
use crate::domain::{
    audit::{Action, AuditContext, NewEntry},
    clock::unix_millis,
    scope::Scopes,
};

/// An API key as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ApiKey {
    pub id: i64,
    pub name: String,
    /// The start of the key, to recognise it.
    pub prefix: String,
    pub scopes: String,
    pub created_by: i64,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

impl ApiKey {
    pub fn scopes(&self) -> Scopes {
        Scopes::parse(&self.scopes).unwrap_or_default()
    }
}

/// What creating a key records.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub name: String,
    pub prefix: String,
    pub hash: Vec<u8>,
    pub scopes: Scopes,
    pub created_by: i64,
    pub expires_at: Option<i64>,
}

const COLUMNS: &str = "id, name, prefix, scopes, created_by, created_at, expires_at, last_used_at";

impl Db {
    pub async fn create_api_key(
        &self,
        new: NewApiKey,
        now: i64,
        ctx: &AuditContext,
    ) -> Result<ApiKey, Error> {
        on_pool!(self, write, |pool| {
            async {
                let mut tx = pool.begin_write().await?;
                let key: ApiKey = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO api_keys (name, prefix, hash, scopes, created_by, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
                )))
                .bind(&new.name)
                .bind(&new.prefix)
                .bind(&new.hash)
                .bind(new.scopes.to_string())
                .bind(new.created_by)
                .bind(now)
                .bind(new.expires_at)
                .fetch_one(&mut *tx)
                .await?;
                let entry = NewEntry::new(Action::ApiKeyCreate, key.id)
                    .change("name", Value::Null, json!(key.name))
                    .change("scopes", Value::Null, json!(key.scopes))
                    .change("expires_at", Value::Null, json!(key.expires_at));
                Append::append(&mut *tx, ctx, vec![entry], unix_millis()).await?;
                tx.commit().await?;
                Ok::<ApiKey, sqlx::Error>(key)
            }
            .await
        })
    }

    /// Keys not revoked, newest first (expired ones included: they show when they ended).
    pub async fn api_keys(&self) -> Result<Vec<ApiKey>, Error> {
        on_pool!(self, read, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM api_keys WHERE revoked_at IS NULL ORDER BY id DESC"
            )))
            .fetch_all(pool)
            .await
        })
    }

    /// Revokes a key at once ([`Error::NotFound`] when there is no such live key).
    pub async fn revoke_api_key(&self, id: i64, now: i64, ctx: &AuditContext) -> Result<(), Error> {
        let done = on_pool!(self, write, |pool| {
            async {
                let mut tx = pool.begin_write().await?;
                let done = sqlx::query(
                    "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
                )
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if done > 0 {
                    let entry = NewEntry::new(Action::ApiKeyRevoke, id);
                    Append::append(&mut *tx, ctx, vec![entry], unix_millis()).await?;
                }
                tx.commit().await?;
                Ok::<u64, sqlx::Error>(done)
            }
            .await
        })?;
        match done {
            0 => Err(Error::NotFound),
            _ => Ok(()),
        }
    }

    /// Records that key `id` was used at `now`.
    pub async fn touch_api_key(&self, id: i64, now: i64) -> Result<(), Error> {
        on_pool!(self, write, |pool| {
            sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
                .bind(now)
                .bind(id)
                .execute(pool)
                .await
                .map(|_| ())
        })
    }
}
