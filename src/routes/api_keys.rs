//! API keys for scripts and integrations (administrators only). The secret is shown once, at
//! creation; it starts with `emp_` so secret scanners can find a leaked one. A key works only
//! while it is neither revoked nor expired and its creator is an active administrator. Keys
//! are managed from a login session only: a key cannot mint or revoke keys.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    app::AppState,
    auth::secrets::SecretKeys,
    db::api_keys::{ApiKey, NewApiKey},
    domain::{
        clock::{rfc3339, unix_now},
        input::{ObjectReader, bounded_text},
        scope::{Scope, Scopes},
        validation::Invalid,
    },
    error::{ApiError, DbResultExt, ErrorDetail, ValidationErrorBody},
    extract::{auth::UserAdmin, body::JsonObject, client::Origin},
    openapi::{Forbidden, NotJson, Unauthorized},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_api_key, list_api_keys))
        .routes(routes!(revoke_api_key))
}

/// Body of `POST /api-keys`.
#[derive(ToSchema)]
#[schema(as = ApiKeyCreate, example = json!({"name": "nightly HR sync", "scopes": ["employees:read"], "expires_at": "2027-06-30T00:00:00Z"}))]
#[expect(dead_code, reason = "describes the request body for OpenAPI only")]
#[serde(deny_unknown_fields)]
pub struct ApiKeyCreate {
    /// What the key is for, 1-100 characters once trimmed; no control characters inside.
    #[schema(
        pattern = r"^[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000](?:[^\x00-\x1f\x7f-\x9f]{0,98}[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$"
    )]
    name: String,
    /// What the key may do.
    #[schema(min_items = 1)]
    scopes: Vec<ScopeName>,
    /// When the key stops working (RFC 3339, in the future); absent: until revoked.
    #[schema(format = DateTime, nullable = false)]
    expires_at: Option<String>,
}

/// A scope's name, as `scope` parameters, tokens and API keys carry it.
#[derive(ToSchema)]
pub enum ScopeName {
    #[serde(rename = "employees:read")]
    EmployeesRead,
    #[serde(rename = "employees:write")]
    EmployeesWrite,
    #[serde(rename = "users:admin")]
    UsersAdmin,
}

/// An API key as listed: never its secret.
#[derive(Serialize, ToSchema)]
#[schema(as = ApiKeyRead, example = json!({"id": 3, "name": "nightly HR sync", "prefix": "emp_Q2xvdWRz",
    "scopes": ["employees:read"], "created_at": "2026-12-02T08:00:00Z", "expires_at": "2027-06-30T00:00:00Z", "last_used_at": null}))]
pub struct ApiKeyRead {
    id: i64,
    name: String,
    /// The key's first characters, to recognise it.
    prefix: String,
    #[schema(value_type = Vec<ScopeName>)]
    scopes: Vec<&'static str>,
    /// RFC 3339, UTC.
    #[schema(format = DateTime)]
    created_at: String,
    /// RFC 3339, UTC; `null`: until revoked.
    #[schema(format = DateTime, required = true)]
    expires_at: Option<String>,
    /// Recorded at most once a minute; `null`: never used.
    #[schema(format = DateTime, required = true)]
    last_used_at: Option<String>,
}

impl From<ApiKey> for ApiKeyRead {
    fn from(key: ApiKey) -> Self {
        ApiKeyRead {
            scopes: key.scopes().iter().map(Scope::as_str).collect(),
            created_at: rfc3339(key.created_at),
            expires_at: key.expires_at.map(rfc3339),
            last_used_at: key.last_used_at.map(rfc3339),
            id: key.id,
            name: key.name,
            prefix: key.prefix,
        }
    }
}

/// A new API key, with its secret (shown only here).
#[derive(Serialize, ToSchema)]
#[schema(as = ApiKeyCreated, example = json!({"id": 3, "name": "nightly HR sync", "key": "emp_Q2xvdWRzIGFyZSBqdXN0IHdhdGVyIHZhcG91ciBpbiB0aGUgc2t5",
    "prefix": "emp_Q2xvdWRz", "scopes": ["employees:read"], "created_at": "2026-12-02T08:00:00Z", "expires_at": "2027-06-30T00:00:00Z", "last_used_at": null}))]
pub struct ApiKeyCreated {
    /// Send it as `Authorization: Bearer <key>` or `X-API-Key: <key>`. It is shown only now.
    key: String,
    #[serde(flatten)]
    read: ApiKeyRead,
}

fn json_scopes(value: &Value) -> Result<Scopes, Invalid> {
    let items = value
        .as_array()
        .ok_or_else(|| Invalid::new("list_type", "Input should be a valid list"))?;
    let mut scopes = Scopes::NONE;
    for item in items {
        let scope = item.as_str().and_then(Scope::parse).ok_or_else(|| {
            Invalid::new(
                "literal_error",
                "Scopes should be among 'employees:read', 'employees:write' and 'users:admin'",
            )
        })?;
        scopes = [scopes, scope.into()].into_iter().collect();
    }
    if scopes.is_empty() {
        return Err(Invalid::new(
            "too_short",
            "List should have at least 1 item",
        ));
    }
    Ok(scopes)
}

fn json_future_time(value: &Value) -> Result<i64, Invalid> {
    let invalid = || {
        Invalid::new(
            "datetime_parsing",
            "Input should be an RFC 3339 date and time",
        )
    };
    let raw = value.as_str().ok_or_else(invalid)?;
    let at = OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
        .map_err(|_| invalid())?
        .unix_timestamp();
    if at <= unix_now() {
        return Err(Invalid::new(
            "value_error",
            "The expiry should be in the future",
        ));
    }
    Ok(at)
}

/// Create an API key; its secret is in this answer only.
#[utoipa::path(post, path = "/api-keys", tag = "API keys",
    security(("OAuth2PasswordBearer" = ["users:admin"])),
    request_body = ApiKeyCreate,
    responses(
        (status = 201, description = "Created; `key` is shown only now", body = ApiKeyCreated),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 415, response = NotJson),
        (status = 422, description = "Invalid name, scopes or expiry", body = ValidationErrorBody,
            example = json!({"detail": [{"loc": ["body", "scopes"], "msg": "Scopes should be among 'employees:read', 'employees:write' and 'users:admin'", "type": "literal_error"}]})),
    ))]
async fn create_api_key(
    State(state): State<AppState>,
    UserAdmin(admin): UserAdmin,
    origin: Origin,
    JsonObject(body): JsonObject,
) -> Result<(StatusCode, Json<ApiKeyCreated>), ApiError> {
    admin.require_session()?;
    let mut reader = ObjectReader::new(vec!["body".into()], body);
    let name = reader.required("name", |v| bounded_text(v, 1, 100));
    let scopes = reader.required("scopes", json_scopes);
    let expires_at = reader.optional("expires_at", json_future_time);
    reader.finish().map_err(ApiError::Validation)?;
    let (Some(name), Some(scopes)) = (name, scopes) else {
        unreachable!("finish() reported the missing fields")
    };
    let (key, prefix) = SecretKeys::new_api_key();
    let created = state
        .db
        .create_api_key(
            NewApiKey {
                name,
                prefix,
                hash: state.secrets.api_key_hash(&key),
                scopes,
                created_by: admin.user.id,
                expires_at,
            },
            unix_now(),
            &admin.audit(&origin),
        )
        .await?;
    tracing::warn!(event = "authz_api_key_created", by = admin.user.id, key_id = created.id, scopes = %scopes, "API key created");
    Ok((
        StatusCode::CREATED,
        Json(ApiKeyCreated {
            key,
            read: created.into(),
        }),
    ))
}

/// The API keys not revoked (never their secrets).
#[utoipa::path(get, path = "/api-keys", tag = "API keys",
    security(("OAuth2PasswordBearer" = ["users:admin"])),
    responses(
        (status = 200, description = "The keys", body = Vec<ApiKeyRead>),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
    ))]
async fn list_api_keys(
    State(state): State<AppState>,
    UserAdmin(admin): UserAdmin,
) -> Result<Json<Vec<ApiKeyRead>>, ApiError> {
    admin.require_session()?;
    let keys = state.db.api_keys().await?;
    Ok(Json(keys.into_iter().map(ApiKeyRead::from).collect()))
}

/// Revoke an API key: it stops working at once, on every instance.
#[utoipa::path(delete, path = "/api-keys/{id}", tag = "API keys",
    security(("OAuth2PasswordBearer" = ["users:admin"])),
    params(("id" = i64, Path, description = "The key's id", minimum = 1)),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such key", body = ErrorDetail, example = json!({"detail": "API key not found"})),
        (status = 422, description = "Not an id", body = ValidationErrorBody,
            example = json!({"detail": [{"loc": ["path", "id"], "msg": "Input should be a valid integer, unable to parse string as an integer", "type": "int_parsing"}]})),
    ))]
async fn revoke_api_key(
    State(state): State<AppState>,
    UserAdmin(admin): UserAdmin,
    origin: Origin,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    admin.require_session()?;
    let id = raw
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| {
            ApiError::field(
                "path",
                "id",
                "int_parsing",
                "Input should be a valid integer, unable to parse string as an integer",
            )
        })?;
    state
        .db
        .revoke_api_key(id, unix_now(), &admin.audit(&origin))
        .await
        .on_not_found("API key not found")?;
    tracing::warn!(
        event = "authz_api_key_revoked",
        by = admin.user.id,
        key_id = id,
        "API key revoked"
    );
    Ok(StatusCode::NO_CONTENT)
}
