//! The current user, and the account list for administrators.

use axum::{Json, extract::State};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    app::AppState,
    domain::{
        listing::{Page, PageParams},
        user::User,
    },
    error::{ApiError, ValidationErrorBody},
    extract::{
        auth::{AdminUser, AuthUser},
        query::ApiQuery,
    },
    openapi::{Forbidden, Unauthorized},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(me))
        .routes(routes!(list_users))
}

/// The account the token belongs to.
#[utoipa::path(get, path = "/users/me", tag = "Users",
    security(("OAuth2PasswordBearer" = [])),
    responses(
        (status = 200, body = User),
        (status = 401, response = Unauthorized),
    ))]
async fn me(AuthUser(user): AuthUser) -> Json<User> {
    Json(user)
}

/// All accounts, ordered by id (administrators only).
#[utoipa::path(get, path = "/users/", tag = "Users",
    security(("OAuth2PasswordBearer" = [])),
    params(PageParams),
    responses(
        (status = 200, body = Vec<User>),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 422, description = "Invalid offset/limit or unknown parameter", body = ValidationErrorBody,
            example = json!({"detail": [{"loc": ["query", "limit"], "msg": "Input should be less than or equal to 1000", "type": "less_than_equal"}]})),
    ))]
async fn list_users(
    State(state): State<AppState>,
    _admin: AdminUser,
    ApiQuery(params): ApiQuery<PageParams>,
) -> Result<Json<Vec<User>>, ApiError> {
    let page = Page::parse(&params, state.config.max_offset).map_err(ApiError::Validation)?;
    Ok(Json(state.db.list_users(page).await?))
}
