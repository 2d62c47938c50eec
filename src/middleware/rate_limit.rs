//! Charges each request to its client's budget: the user id for a valid token, else the
//! client address. Probes (`/healthz`, `/readyz`) are never charged.

use axum::{
    extract::{Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::{
    app::AppState,
    error::{ApiError, insert_rate_limit_headers},
    extract::{auth::Authentication, client::ClientIp},
};

/// Paths that are never rate limited: probes from the orchestrator or load balancer.
fn is_probe(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz")
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
    let key = match req.extensions().get::<Authentication>() {
        Some(Authentication::Token { user_id }) => format!("u:{user_id}"),
        _ => {
            let ClientIp(ip) = req
                .extensions()
                .get::<ClientIp>()
                .copied()
                .unwrap_or(ClientIp([0, 0, 0, 0].into()));
            format!("ip:{ip}")
        }
    };
    let decision = bucket.check(&key).await;
    if !decision.allowed {
        tracing::warn!(event = "excess_rate_limit_exceeded", client = %key, "request budget exhausted");
        metrics::counter!("rate_limit_rejections_total", "limit" => "request").increment(1);
        return ApiError::RateLimited(decision).into_response();
    }
    let mut res = next.run(req).await;
    insert_rate_limit_headers(res.headers_mut(), &decision);
    res
}
