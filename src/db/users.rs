//! User accounts, and the per-request check of who is asking ([`Db::viewer`]).

use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, FromRow};
use uuid::Uuid;

use super::{
    Backend, BeginWrite, Db, Error,
    audit::Append,
    list::Dialect,
    on_pool,
    statement::{Param, Statement, bind_all},
    viewer::{Credential, Viewer, ViewerColumns},
};
use crate::domain::{
    audit::{Action, AuditContext, NewEntry},
    clock::{unix_millis, unix_now},
    listing::Page,
    user::User,
    username::Username,
};

#[derive(FromRow)]
struct UserRow {
    id: i64,
    username: String,
    is_admin: bool,
    is_active: bool,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        User {
            id: row.id,
            username: Username::from_db(row.username),
            is_admin: row.is_admin,
            is_active: row.is_active,
        }
    }
}

#[derive(FromRow)]
struct CredentialRow {
    #[sqlx(flatten)]
    user: UserRow,
    password_hash: String,
}

/// What `GET /users/` may filter on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserFilter {
    pub is_admin: Option<bool>,
    pub is_active: Option<bool>,
    /// A substring of the (lower-case) username.
    pub username_contains: Option<String>,
}

/// A change to an account's flags; absent fields stay as they are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserChange {
    pub is_active: Option<bool>,
    pub is_admin: Option<bool>,
}

const USER_COLUMNS: &str = "id, username, is_admin, is_active";

/// A PostgreSQL transaction-level lock taken by every change that could remove the last
/// active administrator, so two such changes never run at once (SQLite's one writer already
/// serializes them).
const ADMIN_CHANGE_LOCK: i64 = 0x0E3A_D311;

impl Db {
    /// Creates an account ([`Error::Conflict`] when the name is taken: names are lower-case
    /// and unique).
    pub async fn insert_user(
        &self,
        username: &Username,
        password_hash: &str,
        is_admin: bool,
        ctx: &AuditContext,
    ) -> Result<User, Error> {
        let row: UserRow = on_pool!(self, write, |pool| {
            async {
                let mut tx = pool.begin_write().await?;
                let row: UserRow = sqlx::query_as(AssertSqlSafe(format!(
                    "INSERT INTO users (username, password_hash, is_admin) VALUES ($1, $2, $3) \
                     RETURNING {USER_COLUMNS}"
                )))
                .bind(username.as_str())
                .bind(password_hash)
                .bind(is_admin)
                .fetch_one(&mut *tx)
                .await?;
                let entry = NewEntry::new(Action::UserCreate, row.id)
                    .change("username", Value::Null, json!(username.as_str()))
                    .change("is_admin", Value::Null, json!(is_admin));
                Append::append(&mut *tx, ctx, vec![entry], unix_millis()).await?;
                tx.commit().await?;
                Ok::<UserRow, sqlx::Error>(row)
            }
            .await
        })?;
        Ok(row.into())
    }

    /// The user a live credential belongs to, checked at `now` (see [`Credential`]). Runs on
    /// every request that needs the user; the hot reads carry the same check in their own
    /// query instead.
    pub async fn viewer(&self, credential: &Credential, now: i64) -> Result<Option<Viewer>, Error> {
        let mut sql = Statement::default();
        sql.text = format!("SELECT * FROM ({}) v", credential.live_sql(now, &mut sql));
        // One row at most; fetch_all avoids sqlx's extra Sync after fetch_optional (see
        // `Db::employee_seen_by`).
        let rows: Vec<ViewerColumns> = match &self.backend {
            Backend::Postgres { hot, .. } => {
                let mut lease = hot.get().await?;
                let rows = bind_all(sqlx::query_as(AssertSqlSafe(sql.text)), sql.params)
                    .fetch_all(lease.conn())
                    .await;
                lease.finish(rows)?
            }
            Backend::Sqlite { reader, .. } => {
                bind_all(sqlx::query_as(AssertSqlSafe(sql.text)), sql.params)
                    .fetch_all(reader)
                    .await
                    .map_err(|e| self.outages.classify(e))?
            }
        };
        Ok(rows.into_iter().next().map(ViewerColumns::into_viewer))
    }

    /// The account with this id.
    pub async fn user(&self, id: i64) -> Result<Option<User>, Error> {
        let row: Option<UserRow> = on_pool!(self, read, |pool| {
            sqlx::query_as(AssertSqlSafe(format!(
                "SELECT {USER_COLUMNS} FROM users WHERE id = $1"
            )))
            .bind(id)
            .fetch_optional(pool)
            .await
        })?;
        Ok(row.map(User::from))
    }

    /// The account with this name.
    pub async fn user_named(&self, username: &Username) -> Result<Option<User>, Error> {
        let row: Option<UserRow> = on_pool!(self, read, |pool| {
            sqlx::query_as(AssertSqlSafe(format!(
                "SELECT {USER_COLUMNS} FROM users WHERE username = $1"
            )))
            .bind(username.as_str())
            .fetch_optional(pool)
            .await
        })?;
        Ok(row.map(User::from))
    }

    /// The account and its password hash, for login.
    pub async fn credentials(&self, username: &Username) -> Result<Option<(User, String)>, Error> {
        let row: Option<CredentialRow> = on_pool!(self, read, |pool| {
            sqlx::query_as(AssertSqlSafe(format!(
                "SELECT {USER_COLUMNS}, password_hash FROM users WHERE username = $1"
            )))
            .bind(username.as_str())
            .fetch_optional(pool)
            .await
        })?;
        Ok(row.map(|r| (r.user.into(), r.password_hash)))
    }

    /// The password hash of account `id`.
    pub async fn password_hash(&self, id: i64) -> Result<Option<String>, Error> {
        on_pool!(self, read, |pool| {
            sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await
        })
    }

    /// Accounts matching `filter`, ordered by id.
    pub async fn list_users(&self, page: Page, filter: &UserFilter) -> Result<Vec<User>, Error> {
        let mut sql = Statement::default();
        let mut conds = Vec::new();
        if let Some(is_admin) = filter.is_admin {
            conds.push(format!("is_admin = {}", sql.bind(Param::Bool(is_admin))));
        }
        if let Some(is_active) = filter.is_active {
            conds.push(format!("is_active = {}", sql.bind(Param::Bool(is_active))));
        }
        if let Some(part) = &filter.username_contains {
            let p = sql.bind(Param::Text(part.clone()));
            conds.push(match self.dialect() {
                Dialect::Postgres => format!("strpos(username, {p}) > 0"),
                Dialect::Sqlite => format!("instr(username, {p}) > 0"),
            });
        }
        let limit = sql.bind(Param::Int(i64::from(page.limit)));
        let offset = sql.bind(Param::Int(page.offset as i64));
        let where_clause = if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        };
        sql.text = format!(
            "SELECT {USER_COLUMNS} FROM users{where_clause} ORDER BY id LIMIT {limit} OFFSET {offset}"
        );
        let rows: Vec<UserRow> = on_pool!(self, read, |pool| {
            bind_all(sqlx::query_as(AssertSqlSafe(sql.text)), sql.params)
                .fetch_all(pool)
                .await
        })?;
        Ok(rows.into_iter().map(User::from).collect())
    }

    /// Whether any active administrator exists.
    pub async fn admin_exists(&self) -> Result<bool, Error> {
        on_pool!(self, write, |pool| {
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE is_admin AND is_active)")
                .fetch_one(pool)
                .await
        })
    }

    /// Replaces the password hash of account `id` and ends its sessions but `keep` (the one a
    /// user changing their own password is using), in one transaction, recorded as `action`.
    /// Returns how many sessions ended ([`Error::NotFound`] when there is no such account).
    pub async fn set_password_hash(
        &self,
        id: i64,
        password_hash: &str,
        keep: Option<Uuid>,
        action: Action,
        ctx: &AuditContext,
    ) -> Result<u64, Error> {
        let ended = on_pool!(self, write, |pool| {
            async {
                let mut tx = pool.begin_write().await?;
                let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
                    .bind(password_hash)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if done == 0 {
                    return Ok(None);
                }
                let ended = sqlx::query(
                    "UPDATE sessions SET revoked_at = $1, revoked_reason = 'password changed' \
                     WHERE user_id = $2 AND revoked_at IS NULL AND ($3 IS NULL OR id <> $3)",
                )
                .bind(unix_now())
                .bind(id)
                .bind(keep)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                Append::append(
                    &mut *tx,
                    ctx,
                    vec![NewEntry::new(action, id)],
                    unix_millis(),
                )
                .await?;
                tx.commit().await?;
                Ok::<Option<u64>, sqlx::Error>(Some(ended))
            }
            .await
        })?;
        ended.ok_or(Error::NotFound)
    }

    /// Changes the flags of account `id`. [`Error::NotFound`] when there is none;
    /// [`Error::Conflict`] when the change would leave no active administrator (checked under
    /// a lock, so concurrent changes cannot together remove the last two). Disabling an account
    /// also revokes its sessions, in the same transaction: enabling it again does not bring
    /// them back.
    pub async fn change_user(
        &self,
        id: i64,
        change: UserChange,
        now: i64,
        ctx: &AuditContext,
    ) -> Result<User, Error> {
        let lock = self.admin_change_lock();
        on_pool!(self, write, |pool| {
            async {
            let mut tx = pool.begin_write().await?;
            if let Some(lock) = &lock {
                sqlx::query(AssertSqlSafe(lock.clone())).execute(&mut *tx).await?;
            }
            let current: Option<UserRow> = sqlx::query_as(AssertSqlSafe(format!(
                "SELECT {USER_COLUMNS} FROM users WHERE id = $1"
            )))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(current) = current else {
                return Ok(Err(Error::NotFound));
            };
            let is_admin = change.is_admin.unwrap_or(current.is_admin);
            let is_active = change.is_active.unwrap_or(current.is_active);
            if current.is_admin && current.is_active && !(is_admin && is_active) {
                let others: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM users WHERE is_admin AND is_active AND id <> $1",
                )
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
                if others == 0 {
                    return Ok(Err(Error::Conflict));
                }
            }
            let row: UserRow = sqlx::query_as(AssertSqlSafe(format!(
                "UPDATE users SET is_admin = $1, is_active = $2 WHERE id = $3 RETURNING {USER_COLUMNS}"
            )))
            .bind(is_admin)
            .bind(is_active)
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
            if current.is_active && !is_active {
                sqlx::query(
                    "UPDATE sessions SET revoked_at = $1, revoked_reason = 'account disabled' \
                     WHERE user_id = $2 AND revoked_at IS NULL",
                )
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
            let mut entry = NewEntry::new(Action::UserUpdate, id);
            if current.is_admin != is_admin {
                entry = entry.change("is_admin", json!(current.is_admin), json!(is_admin));
            }
            if current.is_active != is_active {
                entry = entry.change("is_active", json!(current.is_active), json!(is_active));
            }
            if !entry.changes.is_empty() {
                Append::append(&mut *tx, ctx, vec![entry], unix_millis()).await?;
            }
            tx.commit().await?;
            Ok::<Result<User, Error>, sqlx::Error>(Ok(row.into()))
        }
        .await
        })?
    }

    /// Deletes account `id`, its sessions and API keys. [`Error::NotFound`] when there is none;
    /// [`Error::Conflict`] when it is the last active administrator.
    pub async fn delete_user(&self, id: i64, ctx: &AuditContext) -> Result<(), Error> {
        let lock = self.admin_change_lock();
        on_pool!(self, write, |pool| {
            async {
                let mut tx = pool.begin_write().await?;
                if let Some(lock) = &lock {
                    sqlx::query(AssertSqlSafe(lock.clone()))
                        .execute(&mut *tx)
                        .await?;
                }
                let last_admin: Option<bool> = sqlx::query_scalar(
                    "SELECT is_admin AND is_active AND NOT EXISTS (SELECT 1 FROM users o \
                   WHERE o.is_admin AND o.is_active AND o.id <> u.id) FROM users u WHERE u.id = $1",
                )
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
                match last_admin {
                    None => return Ok(Err(Error::NotFound)),
                    Some(true) => return Ok(Err(Error::Conflict)),
                    Some(false) => {}
                }
                let name: Option<String> =
                    sqlx::query_scalar("DELETE FROM users WHERE id = $1 RETURNING username")
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await?;
                let entry = NewEntry::new(Action::UserDelete, id).change(
                    "username",
                    json!(name),
                    Value::Null,
                );
                Append::append(&mut *tx, ctx, vec![entry], unix_millis()).await?;
                tx.commit().await?;
                Ok::<Result<(), Error>, sqlx::Error>(Ok(()))
            }
            .await
        })?
    }

    /// The statement that serializes administrator changes on PostgreSQL.
    fn admin_change_lock(&self) -> Option<String> {
        (self.dialect() == Dialect::Postgres)
            .then(|| format!("SELECT pg_advisory_xact_lock({ADMIN_CHANGE_LOCK})"))
    }
}
