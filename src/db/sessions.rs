//! Sessions and their rotating refresh tokens.
//!
//! A login creates a session and its first refresh token. Exchanging a refresh token rotates
//! it: the token is marked rotated and its successor stored, in one transaction that locks
//! the token row, so concurrent exchanges of one token queue. An exchange of a token already
//! rotated within the grace window yields the same successor (the caller derives it again);
//! later, it means the token was copied: the whole session is revoked.

use sqlx::AssertSqlSafe;
use uuid::Uuid;

use super::{BeginWrite, Db, Error, audit::Append, list::Dialect, on_pool};
use crate::domain::{
    audit::{Action, ActorKind, AuditContext, NewEntry},
    clock::unix_millis,
    scope::Scopes,
    user::User,
    username::Username,
};

/// How long sessions live, in seconds.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    /// Without a refresh, a session ends this long after its last use.
    pub idle: i64,
    /// However often refreshed, a session ends this long after its login.
    pub absolute: i64,
    /// A rotated refresh token presented again within this many seconds gets the same
    /// successor instead of revoking the session.
    pub reuse_grace: i64,
}

/// A session as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Session {
    pub id: Uuid,
    pub user_id: i64,
    pub scopes: String,
    pub client_ip: String,
    pub user_agent: String,
    pub created_at: i64,
    pub last_used_at: i64,
    pub expires_at: i64,
    pub idle_expires_at: i64,
}

impl Session {
    /// The scopes its tokens carry.
    pub fn scopes(&self) -> Scopes {
        Scopes::parse(&self.scopes).unwrap_or_default()
    }

    /// When its refresh token stops working: the idle end, never after the absolute end.
    pub fn refresh_expires_at(&self) -> i64 {
        self.idle_expires_at.min(self.expires_at)
    }
}

/// What a login records.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub user_id: i64,
    pub scopes: Scopes,
    pub client_ip: String,
    pub user_agent: String,
    /// The hash of the session's first refresh token.
    pub refresh_hash: Vec<u8>,
}

/// What exchanging a refresh token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refresh {
    /// The token was current: it is now rotated and its successor stored.
    Rotated { session: Session, user: User },
    /// The token was rotated a moment ago (within the grace window): its successor stands.
    Replayed { session: Session, user: User },
    /// A token rotated before the grace window came back: the session is now revoked.
    Reused { session_id: Uuid, user_id: i64 },
    /// No such token, or its session ended, or its user is disabled.
    Invalid,
}

/// A refresh token with its session and user, as the exchange reads them.
#[derive(sqlx::FromRow)]
struct TokenRow {
    rotated_at: Option<i64>,
    revoked_at: Option<i64>,
    username: String,
    is_admin: bool,
    is_active: bool,
    #[sqlx(flatten)]
    session: Session,
}

/// Live sessions a user may hold; a login beyond it ends the least recently used one, so a
/// script that logs in in a loop cannot grow the table without bound.
pub const MAX_SESSIONS_PER_USER: i64 = 100;

/// Rotated refresh tokens kept per session (to recognise a copied one coming back); older
/// ones are purged even within the idle lifetime.
pub const MAX_ROTATED_PER_SESSION: i64 = 50;

const SESSION_COLUMNS: &str = "s.id, s.user_id, s.scopes, s.client_ip, s.user_agent, \
    s.created_at, s.last_used_at, s.expires_at, s.idle_expires_at";

impl Db {
    /// Records a login: a session and its first refresh token.
    pub async fn create_session(
        &self,
        new: NewSession,
        now: i64,
        life: Lifetimes,
        ctx: &AuditContext,
    ) -> Result<Session, Error> {
        let session = Session {
            id: Uuid::new_v4(),
            user_id: new.user_id,
            scopes: new.scopes.to_string(),
            client_ip: new.client_ip,
            user_agent: new.user_agent,
            created_at: now,
            last_used_at: now,
            expires_at: now + life.absolute,
            idle_expires_at: (now + life.idle).min(now + life.absolute),
        };
        let stored = session.clone();
        on_pool!(self, write, |pool| async {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "INSERT INTO sessions (id, user_id, scopes, client_ip, user_agent, created_at, \
                   last_used_at, expires_at, idle_expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(stored.id)
            .bind(stored.user_id)
            .bind(&stored.scopes)
            .bind(&stored.client_ip)
            .bind(&stored.user_agent)
            .bind(stored.created_at)
            .bind(stored.last_used_at)
            .bind(stored.expires_at)
            .bind(stored.idle_expires_at)
            .execute(&mut *tx)
            .await?;
            // The new session is among the newest, so it is never the one ended here.
            sqlx::query(
                "UPDATE sessions SET revoked_at = $1, revoked_reason = 'session limit' \
                 WHERE id IN (SELECT id FROM sessions \
                   WHERE user_id = $2 AND revoked_at IS NULL \
                     AND expires_at > $1 AND idle_expires_at > $1 \
                   ORDER BY last_used_at DESC, created_at DESC, id \
                   LIMIT 1000000000 OFFSET $3)",
            )
            .bind(now)
            .bind(stored.user_id)
            .bind(MAX_SESSIONS_PER_USER)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO refresh_tokens (hash, session_id, created_at) VALUES ($1, $2, $3)",
            )
            .bind(&new.refresh_hash)
            .bind(stored.id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let ctx = AuditContext {
                actor: ActorKind::User,
                actor_id: Some(stored.user_id),
                session_id: Some(stored.id),
                ..ctx.clone()
            };
            let entry = NewEntry::new(Action::UserLogin, stored.user_id);
            Append::append(&mut *tx, &ctx, vec![entry], unix_millis()).await?;
            tx.commit().await
        }
        .await)?;
        Ok(session)
    }

    /// Exchanges the refresh token whose hash is `presented` for the one whose hash is
    /// `successor` (see [`Refresh`]).
    pub async fn refresh_session(
        &self,
        presented: &[u8],
        successor: &[u8],
        now: i64,
        life: Lifetimes,
        ctx: &AuditContext,
    ) -> Result<Refresh, Error> {
        // PostgreSQL: lock the token row, so a concurrent exchange waits and then sees it
        // rotated. SQLite: the one writer connection already serializes them.
        let lock = match self.dialect() {
            Dialect::Postgres => " FOR UPDATE OF t",
            Dialect::Sqlite => "",
        };
        let select = format!(
            "SELECT t.rotated_at, s.revoked_at, u.username, u.is_admin, u.is_active, {SESSION_COLUMNS} \
             FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id \
               JOIN users u ON u.id = s.user_id \
             WHERE t.hash = $1{lock}"
        );
        on_pool!(self, write, |pool| {
            async {
            let mut tx = pool.begin_write().await?;
            let row: Option<TokenRow> = sqlx::query_as(AssertSqlSafe(select))
                .bind(presented)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else {
                return Ok(Refresh::Invalid);
            };
            let session = row.session;
            let live = row.revoked_at.is_none()
                && session.expires_at > now
                && session.idle_expires_at > now
                && row.is_active;
            if !live {
                return Ok(Refresh::Invalid);
            }
            let user = User {
                id: session.user_id,
                username: Username::from_db(row.username),
                is_admin: row.is_admin,
                is_active: row.is_active,
            };
            let outcome = match row.rotated_at {
                None => {
                    sqlx::query("UPDATE refresh_tokens SET rotated_at = $1 WHERE hash = $2")
                        .bind(now)
                        .bind(presented)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(
                        "INSERT INTO refresh_tokens (hash, session_id, created_at) VALUES ($1, $2, $3)",
                    )
                    .bind(successor)
                    .bind(session.id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    let idle_expires_at = (now + life.idle).min(session.expires_at);
                    sqlx::query(
                        "UPDATE sessions SET last_used_at = $1, idle_expires_at = $2 WHERE id = $3",
                    )
                    .bind(now)
                    .bind(idle_expires_at)
                    .bind(session.id)
                    .execute(&mut *tx)
                    .await?;
                    Refresh::Rotated {
                        session: Session {
                            last_used_at: now,
                            idle_expires_at,
                            ..session
                        },
                        user,
                    }
                }
                Some(rotated_at) if now - rotated_at <= life.reuse_grace => {
                    Refresh::Replayed { session, user }
                }
                Some(_) => {
                    sqlx::query(
                        "UPDATE sessions SET revoked_at = $1, revoked_reason = 'reuse' \
                         WHERE id = $2 AND revoked_at IS NULL",
                    )
                    .bind(now)
                    .bind(session.id)
                    .execute(&mut *tx)
                    .await?;
                    Refresh::Reused {
                        session_id: session.id,
                        user_id: session.user_id,
                    }
                }
            };
            let (action, session_id, user_id) = match &outcome {
                Refresh::Rotated { session, .. } | Refresh::Replayed { session, .. } => {
                    (Action::SessionRefresh, session.id, session.user_id)
                }
                Refresh::Reused {
                    session_id,
                    user_id,
                } => (Action::SessionReuse, *session_id, *user_id),
                Refresh::Invalid => unreachable!("returned before"),
            };
            let ctx = AuditContext {
                actor: ActorKind::User,
                actor_id: Some(user_id),
                session_id: Some(session_id),
                ..ctx.clone()
            };
            Append::append(
                &mut *tx,
                &ctx,
                vec![NewEntry::new(action, session_id)],
                unix_millis(),
            )
            .await?;
            tx.commit().await?;
            Ok::<Refresh, sqlx::Error>(outcome)
        }
        .await
        })
    }

    /// The live sessions of `user_id` (not revoked, not expired), newest first.
    pub async fn user_sessions(&self, user_id: i64, now: i64) -> Result<Vec<Session>, Error> {
        on_pool!(self, read, |pool| {
            sqlx::query_as(AssertSqlSafe(format!(
                "SELECT {SESSION_COLUMNS} FROM sessions s \
                 WHERE s.user_id = $1 AND s.revoked_at IS NULL AND s.expires_at > $2 \
                   AND s.idle_expires_at > $2 \
                 ORDER BY s.created_at DESC, s.id"
            )))
            .bind(user_id)
            .bind(now)
            .fetch_all(pool)
            .await
        })
    }

    /// Revokes one session of `user_id` ([`Error::NotFound`] when it is not theirs or not
    /// live).
    /// Recorded as `entry` when it revokes one.
    pub async fn revoke_session(
        &self,
        user_id: i64,
        session_id: Uuid,
        reason: &str,
        now: i64,
        (ctx, entry): (&AuditContext, NewEntry),
    ) -> Result<(), Error> {
        let done = on_pool!(self, write, |pool| {
            async {
                let mut tx = pool.begin_write().await?;
                let done = sqlx::query(
                    "UPDATE sessions SET revoked_at = $1, revoked_reason = $2 \
                     WHERE id = $3 AND user_id = $4 AND revoked_at IS NULL",
                )
                .bind(now)
                .bind(reason)
                .bind(session_id)
                .bind(user_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if done > 0 {
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

    /// Revokes every live session of `user_id` but `except`, recorded as `entry`; returns how
    /// many.
    pub async fn revoke_user_sessions(
        &self,
        user_id: i64,
        except: Option<Uuid>,
        reason: &str,
        now: i64,
        (ctx, entry): (&AuditContext, NewEntry),
    ) -> Result<u64, Error> {
        on_pool!(self, write, |pool| {
            async {
                let mut tx = pool.begin_write().await?;
                let done = sqlx::query(
                    "UPDATE sessions SET revoked_at = $1, revoked_reason = $2 \
                     WHERE user_id = $3 AND revoked_at IS NULL AND ($4 IS NULL OR id <> $4)",
                )
                .bind(now)
                .bind(reason)
                .bind(user_id)
                .bind(except)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                Append::append(&mut *tx, ctx, vec![entry], unix_millis()).await?;
                tx.commit().await?;
                Ok::<u64, sqlx::Error>(done)
            }
            .await
        })
    }

    /// Revokes the session of the refresh token whose hash is `hash` (RFC 7009), whether the
    /// token is current or already rotated; true when a live session was revoked.
    pub async fn revoke_by_refresh_token(
        &self,
        hash: &[u8],
        now: i64,
        ctx: &AuditContext,
    ) -> Result<bool, Error> {
        let revoked = on_pool!(self, write, |pool| {
            async {
                let mut tx = pool.begin_write().await?;
                let revoked: Option<(Uuid, i64)> = sqlx::query_as(
                    "UPDATE sessions SET revoked_at = $1, revoked_reason = 'revoked' \
                     WHERE revoked_at IS NULL \
                       AND id = (SELECT session_id FROM refresh_tokens WHERE hash = $2) \
                     RETURNING id, user_id",
                )
                .bind(now)
                .bind(hash)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some((session_id, user_id)) = revoked {
                    let ctx = AuditContext {
                        actor_id: Some(user_id),
                        actor: ActorKind::User,
                        session_id: Some(session_id),
                        ..ctx.clone()
                    };
                    let entry = NewEntry::new(Action::SessionRevoke, session_id);
                    Append::append(&mut *tx, &ctx, vec![entry], unix_millis()).await?;
                }
                tx.commit().await?;
                Ok::<bool, sqlx::Error>(revoked.is_some())
            }
            .await
        })?;
        Ok(revoked)
    }

    /// Deletes what no request can use any more: sessions that ended (expired, or revoked
    /// more than `keep_revoked` seconds ago) with their tokens, and rotated tokens older than
    /// `keep_rotated` seconds (past that, a copied token is simply unknown instead of revoking
    /// its session). Returns (sessions, tokens) deleted.
    pub async fn purge_sessions(
        &self,
        now: i64,
        keep_revoked: i64,
        keep_rotated: i64,
    ) -> Result<(u64, u64), Error> {
        on_pool!(self, write, |pool| {
            async {
                let mut tx = pool.begin_write().await?;
                let tokens = sqlx::query(
                    "DELETE FROM refresh_tokens WHERE rotated_at IS NOT NULL AND (rotated_at < $1 \
                       OR hash IN (SELECT hash FROM (SELECT hash, row_number() OVER \
                         (PARTITION BY session_id ORDER BY rotated_at DESC, created_at DESC) AS n \
                         FROM refresh_tokens WHERE rotated_at IS NOT NULL) ranked \
                       WHERE n > $2))",
                )
                .bind(now - keep_rotated)
                .bind(MAX_ROTATED_PER_SESSION)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                // Their refresh tokens go with them (ON DELETE CASCADE).
                let sessions = sqlx::query(
                    "DELETE FROM sessions WHERE expires_at <= $1 OR idle_expires_at <= $1 \
                   OR (revoked_at IS NOT NULL AND revoked_at < $2)",
                )
                .bind(now)
                .bind(now - keep_revoked)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                tx.commit().await?;
                Ok::<(u64, u64), sqlx::Error>((sessions, tokens))
            }
            .await
        })
    }

    /// How many sessions and refresh tokens are stored (for tests and the purge's log line).
    pub async fn session_table_sizes(&self) -> Result<(i64, i64), Error> {
        on_pool!(self, read, |pool| {
            sqlx::query_as(
                "SELECT (SELECT count(*) FROM sessions), (SELECT count(*) FROM refresh_tokens)",
            )
            .fetch_one(pool)
            .await
        })
    }
}
