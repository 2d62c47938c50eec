//! Self-service registration of normal accounts.

use axum::{Json, extract::State, http::StatusCode};
use utoipa::ToSchema;

use crate::{
    app::AppState,
    domain::{
        input::{ObjectReader, json_str},
        password::Password,
        user::User,
        username::Username,
        validation::{FieldError, Invalid},
    },
    error::{ApiError, DbResultExt, ErrorDetail, ValidationErrorBody},
    extract::{
        body::JsonObject,
        client::{ClientIp, Origin},
    },
    openapi::{NotJson, PayloadTooLarge, TooManyRequests},
};

/// Body of `POST /auth/register` (documentation; parsing is in the handler).
#[derive(ToSchema)]
#[schema(as = UserCreate, example = json!({"username": "alice", "password": "plum-sandwich-at-noon"}))]
#[expect(dead_code, reason = "describes the request body for OpenAPI only")]
#[serde(deny_unknown_fields)]
pub struct UserCreate {
    /// 3-64 characters of `A-Z a-z 0-9 _ . -`; stored lower-case, unique ignoring case.
    #[schema(min_length = 3, max_length = 64, pattern = "^[A-Za-z0-9_.-]+$")]
    username: String,
    /// PASSWORD_MIN_LENGTH (default 15) to 128 characters, both as sent and after NFKC
    /// normalisation; not a common password, not containing the username or a word of this
    /// service (employee, admin, management).
    #[schema(min_length = 8, max_length = 128)]
    password: String,
}

/// Create an account. Registration never creates an administrator.
#[utoipa::path(post, path = "/auth/register", tag = "Authentication",
    request_body = UserCreate,
    responses(
        (status = 201, description = "Account created", body = User),
        (status = 409, description = "Username taken (ignoring case)", body = ErrorDetail, example = json!({"detail": "Username already exists"})),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = NotJson),
        (status = 422, description = "Invalid input (e.g. common password, unknown field)", body = ValidationErrorBody,
            example = json!({"detail": [{"loc": ["body", "password"], "msg": "Password is on the list of commonly used or breached passwords", "type": "password_too_common"}]})),
        (status = 429, response = TooManyRequests),
    ))]
pub(super) async fn register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    origin: Origin,
    JsonObject(body): JsonObject,
) -> Result<(StatusCode, Json<User>), ApiError> {
    let decision = state
        .limiters
        .registrations
        .check(state.limiters.network(ip))
        .await;
    if !decision.allowed {
        tracing::warn!(event = "excess_rate_limit_exceeded", client_ip = %ip, limit = "registration", "registration refused");
        metrics::counter!("rate_limit_rejections_total", "limit" => "registration").increment(1);
        return Err(ApiError::RateLimited(decision));
    }
    let (username, password) = parse_registration(&state, body)?;
    let hash = state.hasher.hash(&password).await?;
    let user = state
        .db
        .insert_user(&username, &hash, false, &origin.anonymous())
        .await
        .on_conflict("Username already exists")?;
    tracing::info!(event = "user_created", user_id = user.id, username = %user.username, client_ip = %ip, "account registered");
    Ok((StatusCode::CREATED, Json(user)))
}

fn parse_registration(
    state: &AppState,
    body: serde_json::Map<String, serde_json::Value>,
) -> Result<(Username, Password), ApiError> {
    let mut reader = ObjectReader::new(vec!["body".into()], body);
    let username = reader.required("username", Username::from_json);
    let raw_password = reader.required("password", |v| json_str(v).map(str::to_owned));
    let mut errors = reader.finish().err().unwrap_or_default();
    let password = raw_password.and_then(|raw| match state.policy.check(&raw, username.as_ref()) {
        Ok(p) => Some(p),
        Err(Invalid { kind, msg }) => {
            errors.push(FieldError::at("body", "password", kind, msg));
            None
        }
    });
    match (username, password) {
        (Some(u), Some(p)) if errors.is_empty() => Ok((u, p)),
        _ => Err(ApiError::Validation(errors)),
    }
}
