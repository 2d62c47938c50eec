//! Who is asking, checked against the database in the same query as the data asked for: the
//! per-request check of a session (or an API key) and its user rides on every read, so a
//! logout, a revocation, a disabled account or a lost admin right takes effect on the very next
//! request, on every instance, without a round trip of its own.

use uuid::Uuid;

use super::statement::{Param, Statement};
use crate::domain::{scope::Scopes, user::User, username::Username};

/// A credential the token layer vouched for, still to be checked against the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// An access token of this session of this user.
    Session { user_id: i64, session_id: Uuid },
    /// An API key, by its stored hash.
    ApiKey { hash: Vec<u8> },
}

/// A credential that is live: its user, and for an API key the key and its scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    pub user: User,
    pub api_key: Option<ApiKeyUse>,
}

/// The API key a request came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyUse {
    pub id: i64,
    pub scopes: Scopes,
    /// When it was last recorded as used (Unix seconds), to update it only now and then.
    pub last_used_at: Option<i64>,
}

/// The columns every viewer query returns first, in this order.
#[derive(sqlx::FromRow)]
pub(super) struct ViewerColumns {
    pub viewer_id: i64,
    pub viewer_name: String,
    pub viewer_is_admin: bool,
    pub key_id: Option<i64>,
    pub key_scopes: Option<String>,
    pub key_last_used_at: Option<i64>,
}

impl ViewerColumns {
    pub fn into_viewer(self) -> Viewer {
        Viewer {
            user: User {
                id: self.viewer_id,
                username: Username::from_db(self.viewer_name),
                is_admin: self.viewer_is_admin,
                is_active: true,
            },
            api_key: self.key_id.map(|id| ApiKeyUse {
                id,
                // Stored by the server from parsed scopes; an unknown name grants nothing.
                scopes: Scopes::parse(self.key_scopes.as_deref().unwrap_or_default())
                    .unwrap_or_default(),
                last_used_at: self.key_last_used_at,
            }),
        }
    }
}

impl Credential {
    /// A subquery (aliased `v` by the caller) giving the credential's user when the credential
    /// is live at `now`, and no row otherwise: the session exists, belongs to the user, is not
    /// revoked and has not expired; or the key exists, is neither revoked nor expired, and its
    /// creator is still an administrator. Either way the user must be active.
    pub(super) fn live_sql(&self, now: i64, sql: &mut Statement) -> String {
        match self {
            Credential::Session {
                user_id,
                session_id,
            } => {
                let user = sql.bind(Param::Int(*user_id));
                let session = sql.bind(Param::Uuid(*session_id));
                let now = sql.bind(Param::Int(now));
                format!(
                    "SELECT u.id AS viewer_id, u.username AS viewer_name, u.is_admin AS viewer_is_admin, \
                       CAST(NULL AS BIGINT) AS key_id, CAST(NULL AS TEXT) AS key_scopes, \
                       CAST(NULL AS BIGINT) AS key_last_used_at \
                     FROM users u JOIN sessions s ON s.user_id = u.id \
                     WHERE u.id = {user} AND s.id = {session} AND u.is_active \
                       AND s.revoked_at IS NULL AND s.expires_at > {now} AND s.idle_expires_at > {now}"
                )
            }
            Credential::ApiKey { hash } => {
                let hash = sql.bind(Param::Bytes(hash.clone()));
                let now = sql.bind(Param::Int(now));
                format!(
                    "SELECT u.id AS viewer_id, u.username AS viewer_name, u.is_admin AS viewer_is_admin, \
                       k.id AS key_id, k.scopes AS key_scopes, k.last_used_at AS key_last_used_at \
                     FROM api_keys k JOIN users u ON u.id = k.created_by \
                     WHERE k.hash = {hash} AND k.revoked_at IS NULL \
                       AND (k.expires_at IS NULL OR k.expires_at > {now}) AND u.is_active AND u.is_admin"
                )
            }
        }
    }
}
