//! The request span (method, matched route, request id, user id) and the access log line.

use std::time::Duration;

use axum::{
    extract::{MatchedPath, Request},
    response::Response,
};
use tower_http::request_id::RequestId;

/// The span every log line of a request belongs to; `user_id` is recorded once known.
pub fn make_span(req: &Request) -> tracing::Span {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or("-");
    tracing::info_span!(
        "request",
        method = super::metrics::method_label(req.method()),
        route,
        request_id,
        user_id = tracing::field::Empty,
    )
}

pub fn on_response(res: &Response, latency: Duration, _span: &tracing::Span) {
    tracing::info!(
        status = res.status().as_u16(),
        latency_ms = latency.as_secs_f64() * 1000.0,
        "request finished"
    );
}
