//! The per-client cap on requests in flight (`MAX_IN_FLIGHT_PER_CLIENT`), checked before the
//! body is read: one client with slow bodies or many accounts cannot hold every request slot.
//! The client is keyed as for the rate limit (its user, or its network; always its network on
//! `/auth/*`). Probes are exempt.

use axum::{
    extract::{Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};

use super::{is_probe, rate_limit::client_key};
use crate::{app::AppState, error::ApiError};

/// Refuses a request with 429 while its client already has the maximum in flight.
pub async fn cap_per_client(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(in_flight) = state
        .limiters
        .in_flight
        .as_ref()
        .filter(|_| !is_probe(req.uri().path()))
    else {
        return next.run(req).await;
    };
    let key = client_key(&state, &req);
    let Some(_slot) = in_flight.enter(key) else {
        tracing::warn!(event = "excess_rate_limit_exceeded", client = %key, limit = "in_flight", "too many requests in flight");
        metrics::counter!("rate_limit_rejections_total", "limit" => "in_flight").increment(1);
        return ApiError::TooManyRequests {
            retry_after_secs: 1,
        }
        .into_response();
    };
    next.run(req).await
}
