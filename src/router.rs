//! The complete application: every route with its OpenAPI description, the documentation
//! pages, the fallback, and the middleware stack.

use axum::Router;
use utoipa::openapi::OpenApi;

use crate::{app::AppState, error::ApiError, middleware, openapi, routes};

/// The application for `state`, ready to serve (tests drive it in process, without a socket).
pub fn build_router(state: AppState) -> Router {
    let (routes, document) = routes::router().split_for_parts();
    let router = routes
        .merge(openapi::docs_router(document))
        .fallback(|| async { ApiError::NotFound("Not Found") });
    middleware::stack(router, &state).with_state(state)
}

/// The OpenAPI document of every route (for `employee-api openapi` and the snapshot test).
pub fn openapi_document() -> OpenApi {
    routes::router().split_for_parts().1
}
