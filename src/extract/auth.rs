//! Extractors that say who may call a handler. The credential is read once per request by the
//! `authenticate` middleware, which leaves an [`Authentication`]; these extractors check it
//! against the database (the session or API key must be live, the user active) and against
//! the scopes the operation needs:
//!
//! - [`AuthUser`]: any live credential (`/users/me`);
//! - [`SessionUser`]: a logged-in user, not an API key (sessions, password, logout);
//! - [`ReadAccess`]: `employees:read`, checked without a database round trip for tokens (the
//!   handler's own query checks the session);
//! - [`Writer`]: an administrator with `employees:write`;
//! - [`EmployeeWriter`]: the same, and the employee the path names, read with the check;
//! - [`UserAdmin`]: an administrator with `users:admin`.
//!
//! A user without administrator rights gets 403 with FastAPI's message; an administrator whose
//! credential lacks the scope gets 403 with `WWW-Authenticate: Bearer error="insufficient_scope"`.

use axum::{extract::FromRequestParts, http::request::Parts};
use uuid::Uuid;

use crate::{
    app::AppState,
    auth::token::VerifiedToken,
    db::viewer::{ApiKeyUse, Credential, Viewer},
    domain::{
        audit::{ActorKind, AuditContext},
        clock::unix_now,
        employee::{EmpId, Employee},
        scope::{Scope, Scopes},
        user::User,
    },
    error::ApiError,
    extract::{client::Origin, path::EmpIdPath},
};

/// What the request's credentials turned out to be, before any database check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authentication {
    /// No credential was sent.
    Anonymous,
    /// A credential was sent but is unusable (RFC 6750 `invalid_token`).
    Invalid,
    /// An access token with a valid signature and claims.
    Token(VerifiedToken),
    /// An API key (by its stored hash), still to be looked up.
    ApiKey { hash: Vec<u8> },
}

impl Authentication {
    fn from_parts(parts: &Parts) -> &Authentication {
        parts
            .extensions
            .get::<Authentication>()
            .unwrap_or(&Authentication::Anonymous)
    }

    /// The credential to check against the database; 401 without a usable one.
    pub fn credential(&self) -> Result<Credential, ApiError> {
        match self {
            Authentication::Anonymous => Err(ApiError::NotAuthenticated),
            Authentication::Invalid => Err(ApiError::InvalidToken),
            Authentication::Token(token) => Ok(Credential::Session {
                user_id: token.user_id,
                session_id: token.session_id,
            }),
            Authentication::ApiKey { hash } => Ok(Credential::ApiKey { hash: hash.clone() }),
        }
    }
}

/// A caller whose credential is live: who they are and what their credential allows.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: User,
    /// The session of an access token.
    pub session_id: Option<Uuid>,
    /// The API key the request came with.
    pub api_key: Option<ApiKeyUse>,
    /// What the credential may do.
    pub scopes: Scopes,
}

impl Principal {
    /// 403 unless the credential carries `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.scopes.contains(scope) {
            Ok(())
        } else {
            tracing::warn!(
                event = "authz_fail",
                user_id = self.user.id,
                scope = scope.as_str(),
                "scope missing"
            );
            Err(ApiError::InsufficientScope(scope))
        }
    }

    /// Who this is, as the audit trail records it.
    pub fn audit(&self, origin: &Origin) -> AuditContext {
        let (actor, actor_id) = match &self.api_key {
            Some(key) => (ActorKind::ApiKey, key.id),
            None => (ActorKind::User, self.user.id),
        };
        AuditContext {
            actor,
            actor_id: Some(actor_id),
            session_id: self.session_id,
            client_ip: Some(origin.client_ip.to_string()),
            request_id: origin.request_id.clone(),
        }
    }

    /// 403 for an API key: only a login session may do this.
    pub fn require_session(&self) -> Result<Uuid, ApiError> {
        self.session_id.ok_or_else(|| {
            tracing::warn!(
                event = "authz_fail",
                user_id = self.user.id,
                key_id = self.api_key.as_ref().map(|k| k.id),
                "an API key was refused where a login session is needed"
            );
            ApiError::SessionRequired
        })
    }

    /// 403 unless the user is an administrator (checked on the current account, so a
    /// demotion takes effect at once) and the credential carries `scope`.
    fn require_admin(&self, scope: Scope, path: &str) -> Result<(), ApiError> {
        if !self.user.is_admin {
            tracing::warn!(
                event = "authz_fail",
                user_id = self.user.id,
                username = %self.user.username,
                path,
                "administrator route refused"
            );
            return Err(ApiError::Forbidden);
        }
        self.require(scope)
    }
}

/// Any caller with a live credential.
#[derive(Debug, Clone)]
pub struct AuthUser(pub Principal);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let authentication = Authentication::from_parts(parts);
        let credential = authentication.credential()?;
        let viewer = state
            .db
            .viewer(&credential, unix_now())
            .await?
            .ok_or(ApiError::InvalidToken)?;
        let principal = principal(state, authentication, viewer);
        tracing::Span::current().record("user_id", principal.user.id);
        Ok(AuthUser(principal))
    }
}

/// A caller with a live login session: API keys are refused (403), so a script's key can
/// neither touch its creator's account and sessions nor mint further keys.
#[derive(Debug, Clone)]
pub struct SessionUser(pub Principal);

impl FromRequestParts<AppState> for SessionUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let AuthUser(principal) = AuthUser::from_request_parts(parts, state).await?;
        principal.require_session()?;
        Ok(SessionUser(principal))
    }
}

/// Builds the principal of a live credential, and records an API key's use now and then.
fn principal(state: &AppState, authentication: &Authentication, viewer: Viewer) -> Principal {
    match (authentication, viewer.api_key) {
        (Authentication::Token(token), _) => Principal {
            user: viewer.user,
            session_id: Some(token.session_id),
            api_key: None,
            scopes: token.scopes,
        },
        (_, Some(key)) => {
            note_key_use(state, &key);
            Principal {
                user: viewer.user,
                session_id: None,
                scopes: key.scopes,
                api_key: Some(key),
            }
        }
        (_, None) => Principal {
            user: viewer.user,
            session_id: None,
            api_key: None,
            scopes: Scopes::NONE,
        },
    }
}

/// How stale an API key's `last_used_at` may get before it is written again: a key used by a
/// busy script costs one write a minute, not one per request.
const KEY_USE_RESOLUTION: i64 = 60;

fn note_key_use(state: &AppState, key: &ApiKeyUse) {
    let now = unix_now();
    if key
        .last_used_at
        .is_some_and(|last| now - last < KEY_USE_RESOLUTION)
    {
        return;
    }
    let (db, id) = (state.db.clone(), key.id);
    tokio::spawn(async move {
        if let Err(e) = db.touch_api_key(id, now).await {
            tracing::warn!(error = %e, key_id = id, "could not record an API key's use");
        }
    });
}

/// A caller allowed to read employees. For an access token only its signature and scope are
/// checked here: the handler's query checks the session and user in the same round trip.
/// An API key is looked up now (its scopes live in the database).
#[derive(Debug, Clone)]
pub struct ReadAccess(pub Credential);

impl FromRequestParts<AppState> for ReadAccess {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let authentication = Authentication::from_parts(parts);
        if let Authentication::Token(token) = authentication {
            if !token.scopes.contains(Scope::EmployeesRead) {
                return Err(ApiError::InsufficientScope(Scope::EmployeesRead));
            }
            tracing::Span::current().record("user_id", token.user_id);
            return Ok(ReadAccess(authentication.credential()?));
        }
        let AuthUser(principal) = AuthUser::from_request_parts(parts, state).await?;
        principal.require(Scope::EmployeesRead)?;
        Ok(ReadAccess(Authentication::from_parts(parts).credential()?))
    }
}

/// An administrator allowed to change employee records.
#[derive(Debug, Clone)]
pub struct Writer(pub Principal);

impl FromRequestParts<AppState> for Writer {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let AuthUser(principal) = AuthUser::from_request_parts(parts, state).await?;
        principal.require_admin(Scope::EmployeesWrite, parts.uri.path())?;
        Ok(Writer(principal))
    }
}

/// An administrator allowed to change employee records ([`Writer`]), the employee `{emp_id}`
/// names, and that employee as it is now (`None`: absent), read in the credential check's
/// query: `PATCH` and `DELETE` start from it instead of reading it again.
#[derive(Debug, Clone)]
pub struct EmployeeWriter {
    pub admin: Principal,
    pub emp_id: EmpId,
    pub current: Option<Employee>,
}

impl FromRequestParts<AppState> for EmployeeWriter {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let credential = Authentication::from_parts(parts).credential()?;
        let emp_id = match EmpIdPath::from_request_parts(parts, state).await {
            Ok(EmpIdPath(emp_id)) => emp_id,
            // The caller's rights are answered before a malformed path, as on every write.
            Err(invalid) => {
                Writer::from_request_parts(parts, state).await?;
                return Err(invalid);
            }
        };
        let (viewer, current) = state
            .db
            .employee_seen_by(&credential, emp_id, unix_now())
            .await?
            .ok_or(ApiError::InvalidToken)?;
        let admin = principal(state, Authentication::from_parts(parts), viewer);
        tracing::Span::current().record("user_id", admin.user.id);
        admin.require_admin(Scope::EmployeesWrite, parts.uri.path())?;
        Ok(EmployeeWriter {
            admin,
            emp_id,
            current,
        })
    }
}

/// An administrator allowed to manage accounts and API keys.
#[derive(Debug, Clone)]
pub struct UserAdmin(pub Principal);

impl FromRequestParts<AppState> for UserAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let AuthUser(principal) = AuthUser::from_request_parts(parts, state).await?;
        principal.require_admin(Scope::UsersAdmin, parts.uri.path())?;
        Ok(UserAdmin(principal))
    }
}
