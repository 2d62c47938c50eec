//! User accounts.

use sqlx::FromRow;

use super::{Backend, Db, Error, on_pool};
use crate::domain::{listing::Page, user::User, username::Username};

#[derive(FromRow)]
struct UserRow {
    id: i64,
    username: String,
    is_admin: bool,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        User {
            id: row.id,
            username: Username::from_db(row.username),
            is_admin: row.is_admin,
        }
    }
}

#[derive(FromRow)]
struct CredentialRow {
    id: i64,
    username: String,
    is_admin: bool,
    password_hash: String,
}

impl Db {
    /// Creates an account. A taken name (the column is unique and names are lower-case) is a
    /// unique violation for the caller to map.
    pub async fn insert_user(
        &self,
        username: &Username,
        password_hash: &str,
        is_admin: bool,
    ) -> Result<User, Error> {
        let row: UserRow = on_pool!(self, write, |pool| {
            sqlx::query_as(
                "INSERT INTO users (username, password_hash, is_admin) VALUES ($1, $2, $3) \
                 RETURNING id, username, is_admin",
            )
            .bind(username.as_str())
            .bind(password_hash)
            .bind(is_admin)
            .fetch_one(pool)
            .await
        })?;
        Ok(row.into())
    }

    /// The account with this id, if it still exists. Runs on every authenticated request.
    pub async fn user_by_id(&self, id: i64) -> Result<Option<User>, Error> {
        const SQL: &str = "SELECT id, username, is_admin FROM users WHERE id = $1";
        // One row at most; fetch_all avoids sqlx's extra Sync after fetch_optional (see
        // `Db::employee_seen_by`).
        let rows: Vec<UserRow> = match &self.backend {
            Backend::Postgres { hot, .. } => {
                let mut lease = hot.get().await?;
                let rows = sqlx::query_as(SQL).bind(id).fetch_all(lease.conn()).await;
                lease.finish(rows)?
            }
            Backend::Sqlite { reader, .. } => sqlx::query_as(SQL)
                .bind(id)
                .fetch_all(reader)
                .await
                .map_err(|e| self.outages.classify(e))?,
        };
        Ok(rows.into_iter().next().map(User::from))
    }

    /// The account and its password hash, for login.
    pub async fn credentials(&self, username: &Username) -> Result<Option<(User, String)>, Error> {
        let row: Option<CredentialRow> = on_pool!(self, read, |pool| {
            sqlx::query_as(
                "SELECT id, username, is_admin, password_hash FROM users WHERE username = $1",
            )
            .bind(username.as_str())
            .fetch_optional(pool)
            .await
        })?;
        Ok(row.map(|r| {
            let user = User {
                id: r.id,
                username: Username::from_db(r.username),
                is_admin: r.is_admin,
            };
            (user, r.password_hash)
        }))
    }

    /// Accounts ordered by id.
    pub async fn list_users(&self, page: Page) -> Result<Vec<User>, Error> {
        let rows: Vec<UserRow> = on_pool!(self, read, |pool| {
            sqlx::query_as(
                "SELECT id, username, is_admin FROM users ORDER BY id LIMIT $1 OFFSET $2",
            )
            .bind(i64::from(page.limit))
            .bind(page.offset as i64)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows.into_iter().map(User::from).collect())
    }

    /// Whether any administrator exists.
    pub async fn admin_exists(&self) -> Result<bool, Error> {
        on_pool!(self, write, |pool| {
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE is_admin)")
                .fetch_one(pool)
                .await
        })
    }

    /// Replaces a password hash ([`Error::NotFound`] when no such user).
    pub async fn set_password_hash(
        &self,
        username: &Username,
        password_hash: &str,
    ) -> Result<(), Error> {
        let done = on_pool!(self, write, |pool| {
            sqlx::query("UPDATE users SET password_hash = $1 WHERE username = $2")
                .bind(password_hash)
                .bind(username.as_str())
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?;
        if done == 1 {
            Ok(())
        } else {
            Err(Error::NotFound)
        }
    }

    /// Grants or removes administrator rights ([`Error::NotFound`] when no such user).
    pub async fn set_admin(&self, username: &Username, is_admin: bool) -> Result<(), Error> {
        let done = on_pool!(self, write, |pool| {
            sqlx::query("UPDATE users SET is_admin = $1 WHERE username = $2")
                .bind(is_admin)
                .bind(username.as_str())
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?;
        if done == 1 {
            Ok(())
        } else {
            Err(Error::NotFound)
        }
    }

    /// Deletes an account ([`Error::NotFound`] when no such user). Its tokens stop working at once, since
    /// every request re-reads the user.
    pub async fn delete_user(&self, username: &Username) -> Result<(), Error> {
        let done = on_pool!(self, write, |pool| {
            sqlx::query("DELETE FROM users WHERE username = $1")
                .bind(username.as_str())
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?;
        if done == 1 {
            Ok(())
        } else {
            Err(Error::NotFound)
        }
    }
}
