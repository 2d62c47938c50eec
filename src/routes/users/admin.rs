//! Accounts, for administrators: list, read, enable/disable, grant/revoke admin rights, reset
//! a password, delete. The last active administrator can be neither demoted, disabled nor
//! deleted (409), whatever runs concurrently.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::{
    app::AppState,
    db::{
        self,
        users::{UserChange, UserFilter},
    },
    domain::{
        audit::Action,
        clock::unix_now,
        input::{ObjectReader, json_str},
        listing::{Page, PageParams},
        user::User,
        validation::{FieldError, Invalid},
    },
    error::{ApiError, DbResultExt, ErrorDetail, ValidationErrorBody},
    extract::{auth::UserAdmin, body::JsonObject, client::Origin, query::ApiQuery},
    openapi::{Forbidden, NotJson, Unauthorized},
};

const LAST_ADMIN: &str = "The last active administrator cannot be demoted, disabled or deleted";

/// Query parameters of the account list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct UserListParams {
    /// Rows to skip.
    #[param(value_type = u64, minimum = 0, maximum = 10000000, default = 0, required = false)]
    offset: Option<String>,
    /// Rows to return.
    #[param(value_type = u32, minimum = 1, maximum = 1000, default = 100, required = false)]
    limit: Option<String>,
    /// Only administrators (`true`) or only others (`false`).
    #[param(value_type = bool, required = false)]
    is_admin: Option<String>,
    /// Only active (`true`) or only disabled (`false`) accounts.
    #[param(value_type = bool, required = false)]
    is_active: Option<String>,
    /// A substring of the username (case-insensitive).
    #[param(value_type = String, max_length = 64, pattern = r"^[^\x00-\x1f\x7f-\x9f]*$", required = false)]
    username: Option<String>,
}

fn parse_bool(field: &str, raw: Option<&str>, errors: &mut Vec<FieldError>) -> Option<bool> {
    match raw? {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => {
            errors.push(FieldError::at(
                "query",
                field,
                "bool_parsing",
                "Input should be a valid boolean",
            ));
            None
        }
    }
}

/// Accounts, ordered by id, optionally filtered.
#[utoipa::path(get, path = "/users/", tag = "Users",
    security(("OAuth2PasswordBearer" = ["users:admin"]), ("ApiKey" = [])),
    params(UserListParams),
    responses(
        (status = 200, description = "The accounts", body = Vec<User>),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 422, description = "Invalid paging, filter or unknown parameter", body = ValidationErrorBody,
            example = json!({"detail": [{"loc": ["query", "limit"], "msg": "Input should be less than or equal to 1000", "type": "less_than_equal"}]})),
    ))]
pub(super) async fn list_users(
    State(state): State<AppState>,
    _admin: UserAdmin,
    ApiQuery(params): ApiQuery<UserListParams>,
) -> Result<Json<Vec<User>>, ApiError> {
    let page = Page::parse(
        &PageParams {
            offset: params.offset.clone(),
            limit: params.limit.clone(),
        },
        state.config.max_offset,
    );
    let mut errors = page.as_ref().err().cloned().unwrap_or_default();
    let filter = UserFilter {
        is_admin: parse_bool("is_admin", params.is_admin.as_deref(), &mut errors),
        is_active: parse_bool("is_active", params.is_active.as_deref(), &mut errors),
        username_contains: params
            .username
            .as_deref()
            .filter(|u| !u.is_empty())
            .map(str::to_ascii_lowercase),
    };
    if filter
        .username_contains
        .as_ref()
        .is_some_and(|u| u.chars().count() > 64 || u.chars().any(char::is_control))
    {
        errors.push(FieldError::at(
            "query",
            "username",
            "string_too_long",
            "String should have at most 64 characters, without control characters",
        ));
    }
    match page {
        Ok(page) if errors.is_empty() => Ok(Json(state.db.list_users(page, &filter).await?)),
        _ => Err(ApiError::Validation(errors)),
    }
}

/// `{id}` of a user from the path (422 otherwise).
fn user_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
        ApiError::field(
            "path",
            "id",
            "int_parsing",
            "Input should be a valid integer, unable to parse string as an integer",
        )
    })
}

const NOT_FOUND: &str = "User not found";

/// One account.
#[utoipa::path(get, path = "/users/{id}", tag = "Users",
    security(("OAuth2PasswordBearer" = ["users:admin"]), ("ApiKey" = [])),
    params(("id" = i64, Path, description = "The account's id", minimum = 1)),
    responses(
        (status = 200, description = "The account", body = User),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such account", body = ErrorDetail, example = json!({"detail": NOT_FOUND})),
        (status = 422, description = "Not an id", body = ValidationErrorBody,
            example = json!({"detail": [{"loc": ["path", "id"], "msg": "Input should be a valid integer, unable to parse string as an integer", "type": "int_parsing"}]})),
    ))]
pub(super) async fn get_user(
    State(state): State<AppState>,
    _admin: UserAdmin,
    Path(raw): Path<String>,
) -> Result<Json<User>, ApiError> {
    let id = user_id(&raw)?;
    state
        .db
        .user(id)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound(NOT_FOUND))
}

/// Body of `PATCH /users/{id}`: either field or both; `null` and other fields are refused.
#[derive(ToSchema)]
#[schema(as = UserUpdate, example = json!({"is_active": false}))]
#[expect(dead_code, reason = "describes the request body for OpenAPI only")]
#[serde(deny_unknown_fields)]
pub(super) struct UserUpdate {
    /// `false` disables the account: it cannot log in, and its sessions and API keys stop
    /// working at once.
    #[schema(nullable = false)]
    is_active: Option<bool>,
    /// Grants or removes administrator rights (effective on the next request).
    #[schema(nullable = false)]
    is_admin: Option<bool>,
}

fn json_bool(value: &serde_json::Value) -> Result<bool, Invalid> {
    value
        .as_bool()
        .ok_or_else(|| Invalid::new("bool_type", "Input should be a valid boolean"))
}

/// Enable or disable an account, grant or remove administrator rights.
#[utoipa::path(patch, path = "/users/{id}", tag = "Users",
    security(("OAuth2PasswordBearer" = ["users:admin"]), ("ApiKey" = [])),
    params(("id" = i64, Path, description = "The account's id", minimum = 1)),
    request_body = UserUpdate,
    responses(
        (status = 200, description = "The account as changed", body = User),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such account", body = ErrorDetail, example = json!({"detail": NOT_FOUND})),
        (status = 409, description = "It is the last active administrator", body = ErrorDetail, example = json!({"detail": LAST_ADMIN})),
        (status = 415, response = NotJson),
        (status = 422, description = "Unknown field, null, or not a boolean", body = ValidationErrorBody,
            example = json!({"detail": [{"loc": ["body", "username"], "msg": "Extra inputs are not permitted", "type": "extra_forbidden"}]})),
    ))]
pub(super) async fn update_user(
    State(state): State<AppState>,
    UserAdmin(admin): UserAdmin,
    origin: Origin,
    Path(raw): Path<String>,
    JsonObject(body): JsonObject,
) -> Result<Json<User>, ApiError> {
    let id = user_id(&raw)?;
    let mut reader = ObjectReader::new(vec!["body".into()], body);
    let change = UserChange {
        is_active: reader.optional("is_active", json_bool),
        is_admin: reader.optional("is_admin", json_bool),
    };
    reader.finish().map_err(ApiError::Validation)?;
    let user = state
        .db
        .change_user(id, change, unix_now(), &admin.audit(&origin))
        .await
        .map_err(|e| match e {
            db::Error::NotFound => ApiError::NotFound(NOT_FOUND),
            db::Error::Conflict => ApiError::Conflict(LAST_ADMIN),
            other => other.into(),
        })?;
    tracing::warn!(event = "authz_admin", by = admin.user.id, user_id = id, is_active = ?change.is_active, is_admin = ?change.is_admin, "account changed");
    Ok(Json(user))
}

/// Body of `POST /users/{id}/password`.
#[derive(ToSchema)]
#[schema(as = PasswordReset, example = json!({"new_password": "a quieter river of bells"}))]
#[expect(dead_code, reason = "describes the request body for OpenAPI only")]
#[serde(deny_unknown_fields)]
pub(super) struct PasswordReset {
    /// The registration rules apply.
    #[schema(format = Password, min_length = 8, max_length = 128)]
    new_password: String,
}

/// Reset an account's password; every session of the account ends.
#[utoipa::path(post, path = "/users/{id}/password", tag = "Users",
    security(("OAuth2PasswordBearer" = ["users:admin"]), ("ApiKey" = [])),
    params(("id" = i64, Path, description = "The account's id", minimum = 1)),
    request_body = PasswordReset,
    responses(
        (status = 204, description = "Reset; the account's sessions are ended"),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such account", body = ErrorDetail, example = json!({"detail": NOT_FOUND})),
        (status = 415, response = NotJson),
        (status = 422, description = "A password the rules refuse", body = ValidationErrorBody,
            example = json!({"detail": [{"loc": ["body", "new_password"], "msg": "Password should have at least 15 characters", "type": "string_too_short"}]})),
    ))]
pub(super) async fn reset_password(
    State(state): State<AppState>,
    UserAdmin(admin): UserAdmin,
    origin: Origin,
    Path(raw): Path<String>,
    JsonObject(body): JsonObject,
) -> Result<StatusCode, ApiError> {
    let id = user_id(&raw)?;
    let user = state
        .db
        .user(id)
        .await?
        .ok_or(ApiError::NotFound(NOT_FOUND))?;
    let mut reader = ObjectReader::new(vec!["body".into()], body);
    let raw_password = reader.required("new_password", |v| json_str(v).map(str::to_owned));
    let mut errors = reader.finish().err().unwrap_or_default();
    let password =
        raw_password.and_then(|raw| match state.policy.check(&raw, Some(&user.username)) {
            Ok(p) => Some(p),
            Err(Invalid { kind, msg }) => {
                errors.push(FieldError::at("body", "new_password", kind, msg));
                None
            }
        });
    let (Some(password), true) = (password, errors.is_empty()) else {
        return Err(ApiError::Validation(errors));
    };
    let hash = state.hasher.hash(&password).await?;
    let ended = state
        .db
        .set_password_hash(
            id,
            &hash,
            None,
            Action::UserPasswordReset,
            &admin.audit(&origin),
        )
        .await
        .on_not_found(NOT_FOUND)?;
    tracing::warn!(
        event = "authn_password_change",
        by = admin.user.id,
        user_id = id,
        sessions_ended = ended,
        "password reset by an administrator"
    );
    Ok(StatusCode::NO_CONTENT)
}

/// Delete an account with its sessions and API keys; its tokens stop working at once.
#[utoipa::path(delete, path = "/users/{id}", tag = "Users",
    security(("OAuth2PasswordBearer" = ["users:admin"]), ("ApiKey" = [])),
    params(("id" = i64, Path, description = "The account's id", minimum = 1)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such account", body = ErrorDetail, example = json!({"detail": NOT_FOUND})),
        (status = 409, description = "It is the last active administrator", body = ErrorDetail, example = json!({"detail": LAST_ADMIN})),
        (status = 422, description = "Not an id", body = ValidationErrorBody,
            example = json!({"detail": [{"loc": ["path", "id"], "msg": "Input should be a valid integer, unable to parse string as an integer", "type": "int_parsing"}]})),
    ))]
pub(super) async fn delete_user(
    State(state): State<AppState>,
    UserAdmin(admin): UserAdmin,
    origin: Origin,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = user_id(&raw)?;
    let ctx = admin.audit(&origin);
    state.db.delete_user(id, &ctx).await.map_err(|e| match e {
        db::Error::NotFound => ApiError::NotFound(NOT_FOUND),
        db::Error::Conflict => ApiError::Conflict(LAST_ADMIN),
        other => other.into(),
    })?;
    tracing::warn!(
        event = "authz_admin",
        by = admin.user.id,
        user_id = id,
        "account deleted"
    );
    Ok(StatusCode::NO_CONTENT)
}
