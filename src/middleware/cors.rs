//! CORS: off (no headers at all) unless origins are configured.

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::config::Config;

/// The CORS layer for `config`: browsers keep the same-origin policy unless
/// `CORS_ALLOWED_ORIGINS` names origins.
pub fn cors_layer(config: &Config) -> CorsLayer {
    if config.cors_allowed_origins.is_empty() {
        // No CORS headers at all: browsers keep the same-origin policy.
        return CorsLayer::new();
    }
    let origins: Vec<HeaderValue> = config
        .cors_allowed_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .expose_headers([
            HeaderName::from_static("x-total-count"),
            header::LINK,
            HeaderName::from_static("x-request-id"),
        ])
        .max_age(Duration::from_secs(600))
}
