//! Every layer between the socket and the handlers, one file each, assembled in one place
//! ([`stack`]) in the order a request meets them.

pub mod authenticate;
pub mod client_ip;
pub mod cors;
pub mod error_bodies;
pub mod in_flight;
pub mod metrics;
pub mod overload;
pub mod rate_limit;
pub mod request_id;
pub mod security_headers;
pub mod trace;

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::StatusCode,
    middleware::{from_fn, from_fn_with_state},
    response::IntoResponse,
};
use tokio::sync::Semaphore;
use tower_http::{
    catch_panic::CatchPanicLayer,
    limit::RequestBodyLimitLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    timeout::{RequestBodyDeadlineLayer, TimeoutLayer},
    trace::TraceLayer,
};

use crate::{app::AppState, error::ApiError};

/// The largest request body accepted: 1 MiB.
pub const BODY_LIMIT: usize = 1024 * 1024;
/// How long a client may take to send a whole request body (a slow body otherwise holds a
/// request slot for the whole request timeout). 1 MiB in 10 s is 100 KiB/s.
pub const BODY_DEADLINE: Duration = Duration::from_secs(10);

/// Paths that no cap or rate limit refuses: probes from the orchestrator or load balancer.
pub(crate) fn is_probe(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz")
}

/// Wraps `router` in the whole middleware stack. A request passes the layers in this order:
///
/// 1. catch-panic: a panic anywhere becomes a plain 500, never a dropped connection;
/// 2. request id: a malformed client id is dropped, then one is made and echoed back;
/// 3. trace: the request span and the access line;
/// 4. security headers, JSON error bodies for answers made by layers, metrics;
/// 5. CORS;
/// 6. load shedding: past `MAX_CONCURRENT_REQUESTS` in flight, an immediate 503 (probes
///    exempt);
/// 7. timeout (408), then the body limit (413, also for chunked bodies) and the body deadline;
/// 8. client address, then the bearer token verified once, then the per-client cap on
///    requests in flight and the per-client budget (both 429; probes exempt).
pub fn stack(router: Router<AppState>, state: &AppState) -> Router<AppState> {
    let config = &state.config;
    let slots = Arc::new(Semaphore::new(config.max_concurrent_requests));
    // `Router::layer` wraps everything added so far, so the LAST layer below is the OUTERMOST:
    // read this list bottom-up for the order a request passes through.
    router
        .layer(from_fn_with_state(state.clone(), rate_limit::charge_client))
        .layer(from_fn_with_state(state.clone(), in_flight::cap_per_client))
        .layer(from_fn_with_state(
            state.clone(),
            authenticate::authenticate,
        ))
        .layer(from_fn_with_state(state.clone(), client_ip::resolve))
        // Content-Length over the limit is refused before reading; chunked bodies are cut off
        // at the limit while being read (the extractors turn that into 413).
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
        .layer(RequestBodyDeadlineLayer::new(BODY_DEADLINE))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            config.request_timeout,
        ))
        .layer(from_fn_with_state(slots, overload::shed))
        .layer(cors::cors_layer(config))
        .layer(from_fn(error_bodies::json_error_bodies))
        .layer(from_fn(metrics::record_metrics))
        .layer(from_fn(security_headers::security_headers))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(trace::make_span)
                .on_response(trace::on_response),
        )
        .layer(PropagateRequestIdLayer::new(request_id::HEADER))
        .layer(SetRequestIdLayer::new(request_id::HEADER, MakeRequestUuid))
        // A client's request id is checked first, so every later log line carries a clean one.
        .layer(from_fn(request_id::drop_malformed))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::Internal("handler panicked".into()).into_response()
        }))
}
