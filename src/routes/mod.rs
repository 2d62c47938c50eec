//! HTTP routes, one module per resource. Handlers parse input into domain types, call `db`
//! or `auth`, and build the response; they never write SQL.

pub mod api_keys;
pub mod audit;
pub mod auth;
pub mod employees;
pub mod health;
pub mod idempotency;
pub mod users;

use utoipa_axum::router::OpenApiRouter;

use crate::{app::AppState, openapi::ApiDoc};

/// Every documented route, with its OpenAPI description.
pub fn router() -> OpenApiRouter<AppState> {
    use utoipa::OpenApi as _;
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(health::router())
        .merge(auth::router())
        .merge(users::router())
        .merge(employees::router())
        .merge(api_keys::router())
        .merge(audit::router())
}
