//! Charges each request to its client's budget: the user id for a valid token, else the
//! client network (see [`client_key`]). Probes (`/healthz`, `/readyz`) are never charged.

use axum::{
    extract::{Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};

use super::is_probe;
use crate::{
    app::AppState,
    error::{ApiError, insert_rate_limit_headers},
    extract::{auth::Authentication, client::ClientIp},
    rate_limit::ClientKey,
};

/// The first 8 bytes of an API key's hash: enough to tell keys apart in a budget.
fn key_id(hash: &[u8]) -> u64 {
    let mut id = [0u8; 8];
    for (to, from) in id.iter_mut().zip(hash) {
        *to = *from;
    }
    u64::from_be_bytes(id)
}

/// Whom a request is charged to: its user for a valid token, its API key, its network
/// otherwise. On
/// `/auth/*` always its network: logging in or registering with a token in hand must not move
/// the cost to an account the client may hold many of.
pub fn client_key(state: &AppState, req: &Request) -> ClientKey {
    let on_auth = req.uri().path().starts_with("/auth/");
    match req.extensions().get::<Authentication>() {
        Some(Authentication::Token(token)) if !on_auth => ClientKey::User(token.user_id),
        Some(Authentication::ApiKey { hash }) if !on_auth => ClientKey::ApiKey(key_id(hash)),
        _ => {
            let ClientIp(ip) = req
                .extensions()
                .get::<ClientIp>()
                .copied()
                .unwrap_or(ClientIp([0, 0, 0, 0].into()));
            state.limiters.network(ip)
        }
    }
}

/// Refuses a request over its client's budget (429), and reports the budget on every answer.
pub async fn charge_client(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(bucket) = state
        .limiters
        .requests
        .as_ref()
        .filter(|_| !is_probe(req.uri().path()))
    else {
        return next.run(req).await;
    };
    let key = client_key(&state, &req);
    let decision = bucket.check(key).await;
    if !decision.allowed {
        tracing::warn!(event = "excess_rate_limit_exceeded", client = %key, "request budget exhausted");
        metrics::counter!("rate_limit_rejections_total", "limit" => "request").increment(1);
        return ApiError::RateLimited(decision).into_response();
    }
    let mut res = next.run(req).await;
    insert_rate_limit_headers(res.headers_mut(), &decision);
    res
}
