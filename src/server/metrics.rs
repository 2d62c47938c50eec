//! The Prometheus endpoint, on a listener of its own so the API port never exposes it.

use std::net::SocketAddr;

use axum::Router;
use tokio::net::TcpListener;

use super::{StartupError, fail};
use crate::db::Db;

/// Binds the metrics listener (at start-up, before anything is created).
pub(super) async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves Prometheus metrics at `http://addr/metrics`, on a listener of its own so the API
/// port never exposes them.
pub(super) fn serve_metrics(listener: TcpListener, db: Db) -> Result<(), StartupError> {
    let handle = crate::telemetry::metrics_export::install().map_err(|e| fail("metrics", e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| fail("metrics listener", e))?;
    let router = Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let (handle, db) = (handle.clone(), db.clone());
            async move {
                for (pool, usage) in db.pool_usage() {
                    let in_use = usage.open.saturating_sub(usage.idle);
                    metrics::gauge!("db_pool_connections", "pool" => pool, "state" => "in_use")
                        .set(in_use as f64);
                    metrics::gauge!("db_pool_connections", "pool" => pool, "state" => "idle")
                        .set(usage.idle as f64);
                }
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4",
                    )],
                    handle.render(),
                )
            }
        }),
    );
    tracing::info!(address = %addr, "metrics on http://{addr}/metrics");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "metrics listener stopped");
        }
    });
    Ok(())
}
