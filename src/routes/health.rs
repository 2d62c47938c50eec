//! Welcome message, liveness and readiness.

use std::time::{Duration, Instant};

use axum::{
    Json,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::app::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(root))
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

#[derive(Serialize, ToSchema)]
pub struct Message {
    #[schema(example = "Welcome to the Employee Management API.")]
    message: &'static str,
}

/// Welcome message.
#[utoipa::path(get, path = "/", tag = "Health", responses((status = 200, description = "The welcome message", body = Message)))]
async fn root() -> Json<Message> {
    Json(Message {
        message: "Welcome to the Employee Management API.",
    })
}

/// Liveness: the process is up and serving.
#[utoipa::path(get, path = "/healthz", tag = "Health",
    responses((status = 200, description = "Alive", example = json!({"status": "ok"}))))]
async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

#[derive(Serialize, ToSchema)]
pub struct Check {
    /// `ok`, `unavailable`, or for Redis `degraded` (local limits in use).
    status: &'static str,
    latency_ms: f64,
}

/// Readiness: every dependency answers. 503 while the database is unreachable or shutdown has
/// begun. When Redis is down the instance stays ready on local limits, reported as degraded.
/// The checks run at most once a second; probes in between share the last result.
#[utoipa::path(get, path = "/readyz", tag = "Health",
    responses(
        (status = 200, description = "Ready", example = json!({"status": "ok", "checks": {"database": {"status": "ok", "latency_ms": 0.4,
            "pools": {"general": {"open": 2, "idle": 2, "max": 8}, "hot_reads": {"open": 4, "idle": 3, "max": 8}}}}})),
        (status = 503, description = "Not ready", example = json!({"detail": "Service not ready", "status": "unavailable", "checks": {"database": {"status": "unavailable", "latency_ms": 2000.0}}})),
    ))]
async fn readyz(State(state): State<AppState>) -> Response {
    let (db_ok, checks) = checks(&state).await;
    if db_ok && !state.is_shutting_down() {
        (
            StatusCode::OK,
            Json(json!({ "status": "ok", "checks": checks })),
        )
            .into_response()
    } else {
        let detail = if state.is_shutting_down() {
            "Shutting down"
        } else {
            "Service not ready"
        };
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            Json(json!({ "detail": detail, "status": "unavailable", "checks": checks })),
        )
            .into_response()
    }
}

/// How long one round of dependency checks answers every probe: a flood of `/readyz` costs
/// the database one query per interval, not one per probe.
const CHECKS_REUSED_FOR: Duration = Duration::from_secs(1);

/// Whether the database answers, and every dependency's report; at most one round per
/// [`CHECKS_REUSED_FOR`] (probes arriving meanwhile wait for that round and share it).
async fn checks(state: &AppState) -> (bool, Value) {
    let mut last = state.readiness.lock().await;
    if let Some((at, db_ok, checks)) = &*last
        && at.elapsed() < CHECKS_REUSED_FOR
    {
        return (*db_ok, checks.clone());
    }
    let started = Instant::now();
    let db_ok = state.db.ping(Duration::from_secs(2)).await;
    let mut checks = serde_json::Map::new();
    let mut database = json!(Check {
        status: if db_ok { "ok" } else { "unavailable" },
        latency_ms: ms(started)
    });
    database["pools"] = state
        .db
        .pool_usage()
        .into_iter()
        .map(|(name, usage)| (name.to_owned(), json!(usage)))
        .collect::<serde_json::Map<_, _>>()
        .into();
    checks.insert("database".into(), database);
    if let Some(redis) = &state.redis {
        let started = Instant::now();
        let redis_ok = redis.ping().await;
        checks.insert(
            "redis".into(),
            json!(Check {
                status: if redis_ok { "ok" } else { "degraded" },
                latency_ms: ms(started)
            }),
        );
    }
    let checks = Value::Object(checks);
    *last = Some((Instant::now(), db_ok, checks.clone()));
    (db_ok, checks)
}

fn ms(since: Instant) -> f64 {
    (since.elapsed().as_secs_f64() * 1e5).round() / 100.0
}
