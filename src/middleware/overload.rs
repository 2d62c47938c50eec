//! The global cap on requests in flight: past `MAX_CONCURRENT_REQUESTS`, an immediate 503
//! with Retry-After instead of a queue without bound. Probes are never refused, so a flood
//! cannot make an orchestrator restart a healthy process.

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};
use tokio::sync::Semaphore;

use super::is_probe;
use crate::error::ApiError;

/// Admits a request while fewer than the cap are in flight (the permit is held until the
/// response is made).
pub async fn shed(State(slots): State<Arc<Semaphore>>, req: Request, next: Next) -> Response {
    if is_probe(req.uri().path()) {
        return next.run(req).await;
    }
    let Ok(_permit) = slots.try_acquire() else {
        return ApiError::Unavailable {
            retry_after_secs: 1,
        }
        .into_response();
    };
    next.run(req).await
}
