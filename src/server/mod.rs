//! Start-up and serving: connect, migrate, resolve the token secret, make sure an
//! administrator exists, then serve HTTP ([`listener`]) until a shutdown signal.

mod bootstrap;
mod listener;
mod metrics;

use std::{future::Future, time::Duration};

use tokio::net::TcpListener;

pub use bootstrap::{
    admin_password_file_for, ensure_admin, generate_password, resolve_secret, secret_file_for,
};
pub use listener::{SHUTDOWN_DEADLINE, serve, shutdown_signal};

use crate::{app::AppState, config::Config, db::Db};

/// A start-up failure, printed as one line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartupError(pub String);

fn fail(context: &str, err: impl std::fmt::Display) -> StartupError {
    StartupError(format!("{context}: {err}"))
}

/// How long PostgreSQL may run one statement: a second under the request timeout (at least a
/// second), so the database gives up on a query about when the client is answered 408.
fn statement_timeout(request_timeout: Duration) -> Duration {
    request_timeout
        .saturating_sub(Duration::from_secs(1))
        .max(Duration::from_secs(1))
}

/// Connects to the database and applies migrations.
pub async fn open_database(config: &Config) -> Result<Db, StartupError> {
    let db = tokio::time::timeout(
        Duration::from_secs(15),
        Db::connect_with_timeout(
            &config.database_url,
            config.db_max_connections,
            Some(statement_timeout(config.request_timeout)),
        ),
    )
    .await
    .map_err(|_| {
        StartupError(format!(
            "cannot reach the database at {} (timed out)",
            config.database_url
        ))
    })?
    .map_err(|e| {
        fail(
            &format!("cannot open the database at {}", config.database_url),
            e,
        )
    })?;
    db.migrate()
        .await
        .map_err(|e| fail("database migration failed", e))?;
    Ok(db)
}

/// Everything `serve` does: open, migrate, bootstrap, bind, serve until `shutdown` resolves.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartupError> {
    let db = open_database(&config).await?;
    let secret = resolve_secret(&config)?;
    let bind_addr = config.bind_addr;
    let state = AppState::new(config, db, &secret, "employee-api")
        .map_err(|e| StartupError(e.to_string()))?;
    ensure_admin(&state).await?;
    if let Some(addr) = state.config.metrics_addr {
        metrics::serve_metrics(addr, state.db.clone()).await?;
    }
    let listener = TcpListener::bind(bind_addr)
        .await
        .map_err(|e| fail(&format!("cannot listen on {bind_addr}"), e))?;
    // The address actually bound: with port 0 the system picks one, and tests read it here.
    let address = listener.local_addr().unwrap_or(bind_addr);
    tracing::info!(%address, database = %state.config.database_url, "serving on http://{address} (docs at /docs)");
    let db = state.db.clone();
    serve(listener, state, shutdown).await;
    db.close().await;
    tracing::info!("stopped");
    Ok(())
}
