//! The complete application: every route with its OpenAPI description, the documentation
//! pages, the fallback, and the middleware stack.

use axum::Router;
use utoipa::openapi::OpenApi;

use crate::{app::AppState, error::ApiError, middleware, openapi, routes};

/// The application for `state`, ready to serve (tests drive it in process, without a socket).
pub fn build_router(state: AppState) -> Router {
    let (routes, document) = routes::router().split_for_parts();
    let limits = openapi::Limits {
        max_offset: state.config.max_offset,
        password_min_length: state.config.password_min_length,
    };
    let document = openapi::with_limits(document, limits);
    let router = routes
        .merge(openapi::docs_router(document))
        .fallback(|| async { ApiError::NotFound("Not Found") });
    middleware::stack(router, &state).with_state(state)
}

/// The OpenAPI document of every route at the default settings (for the snapshot test).
pub fn openapi_document() -> OpenApi {
    openapi_document_with(openapi::Limits::default())
}

/// The OpenAPI document of every route with these settings' limits (`employee-api openapi`).
pub fn openapi_document_with(limits: openapi::Limits) -> OpenApi {
    openapi::with_limits(routes::router().split_for_parts().1, limits)
}
