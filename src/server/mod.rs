//! Start-up and serving: bind, connect, migrate, resolve the token secret, make sure an
//! administrator exists, then serve HTTP ([`listener`]) until a shutdown signal.

mod bootstrap;
mod connections;
pub mod housekeeping;
mod listener;
mod metrics;
mod watchdog;

use std::{future::Future, net::SocketAddr, time::Duration};

use tokio::net::{TcpListener, TcpSocket};

pub use bootstrap::{
    admin_password_file_for, check_secret_file, ensure_admin, generate_password, resolve_secret,
    secret_file_for,
};
pub use connections::{default_max_connections, raise_fd_limit};
pub use listener::{FIRST_BYTES_DEADLINE, IDLE_TIMEOUT, SHUTDOWN_DEADLINE, serve, shutdown_signal};

use crate::{
    app::AppState,
    config::Config,
    db::{Db, DbOptions},
};

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

/// Connects to the database (no migrations), within 15 s; a failure is one line that says
/// what to do.
pub async fn connect_database(config: &Config) -> Result<Db, StartupError> {
    tokio::time::timeout(
        Duration::from_secs(15),
        Db::connect_with(
            &config.database_url,
            DbOptions {
                max_connections: config.db_max_connections,
                statement_timeout: Some(statement_timeout(config.request_timeout)),
                sqlite_max_size: config.sqlite_max_size,
            },
        ),
    )
    .await
    .map_err(|_| {
        StartupError(format!(
            "database ({}): no answer within 15 s (check the host and port in DATABASE_URL)",
            config.database_url
        ))
    })?
    .map_err(|e| {
        StartupError(format!(
            "database ({}): {}",
            config.database_url,
            e.reason()
        ))
    })
}

/// Connects to the database, applies the migrations, and brings stored data up to the
/// current rules (see [`Db::migrate`]).
pub async fn open_database(config: &Config) -> Result<Db, StartupError> {
    let db = connect_database(config).await?;
    db.migrate()
        .await
        .map_err(|e| StartupError(format!("database migration failed: {}", e.reason())))?;
    Ok(db)
}

/// `employee-api config --check-connections`: the database and Redis answer. Nothing is
/// created or changed. Returns what was found, a line each.
pub async fn check_connections(config: &Config) -> Result<Vec<String>, StartupError> {
    let mut found = Vec::new();
    let database = tokio::time::timeout(Duration::from_secs(15), Db::probe(&config.database_url))
        .await
        .map_err(|_| {
            StartupError(format!(
                "database ({}): no answer within 15 s",
                config.database_url
            ))
        })?
        .map_err(|e| {
            StartupError(format!(
                "database ({}): {}",
                config.database_url,
                e.reason()
            ))
        })?;
    found.push(format!("database: {database}"));
    if let Some(url) = &config.redis_url {
        let shown = crate::config::mask_url_secrets(url.expose());
        let ping = async {
            let client = redis::Client::open(url.expose())?;
            let mut conn = client.get_multiplexed_async_connection().await?;
            redis::cmd("PING").query_async::<String>(&mut conn).await
        };
        match tokio::time::timeout(Duration::from_secs(5), ping).await {
            Ok(Ok(_)) => found.push(format!("redis: {shown} answers")),
            Ok(Err(e)) => {
                let reason = if e.is_connection_refusal() {
                    "connection refused: is Redis running there?".to_owned()
                } else {
                    e.to_string()
                };
                return Err(StartupError(format!("REDIS_URL ({shown}): {reason}")));
            }
            Err(_) => {
                return Err(StartupError(format!(
                    "REDIS_URL ({shown}): no answer within 5 s"
                )));
            }
        }
    }
    Ok(found)
}

/// Everything `serve` does, in an order that leaves nothing half-made: bind the listeners
/// (a taken port stops here, before any file, secret or account exists), then connect,
/// migrate, resolve the token secret, make sure an administrator exists, and serve until
/// `shutdown` resolves.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartupError> {
    check_secret_file(&config)?;
    let max_connections = max_connections(&config, raise_fd_limit());
    let bind_addr = config.bind_addr;
    let listener = listen(bind_addr).map_err(|e| cannot_listen("BIND_ADDR", bind_addr, &e))?;
    let metrics_listener = match config.metrics_addr {
        Some(addr) => Some(
            metrics::bind(addr)
                .await
                .map_err(|e| cannot_listen("METRICS_ADDR", addr, &e))?,
        ),
        None => None,
    };
    let db = open_database(&config).await?;
    let secret = resolve_secret(&config)?;
    let state = AppState::new(config, db, &secret, "employee-api")
        .map_err(|e| StartupError(e.to_string()))?;
    ensure_admin(&state).await?;
    housekeeping::spawn(&state);
    if let Some(listener) = metrics_listener {
        metrics::serve_metrics(listener, state.db.clone())?;
    }
    // The address actually bound: with port 0 the system picks one, and tests read it here.
    let address = listener.local_addr().unwrap_or(bind_addr);
    tracing::info!(%address, database = %state.config.database_url, "serving on http://{address} (docs at /docs)");
    let db = state.db.clone();
    serve(listener, state, max_connections, shutdown).await;
    if let Err(e) = db.seal().await {
        tracing::warn!(error = %e, "audit entries left unsealed at shutdown; the next start seals them");
    }
    db.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// A listener that could not be bound, as one line saying what to do.
fn cannot_listen(setting: &str, addr: SocketAddr, err: &std::io::Error) -> StartupError {
    use std::io::ErrorKind;
    let advice = match err.kind() {
        ErrorKind::AddrInUse => format!(
            "address already in use: another process listens on {addr} (stop it, or set {setting} to a free port)"
        ),
        ErrorKind::PermissionDenied => format!(
            "permission denied (ports below 1024 need privileges; set {setting} to a port above 1023)"
        ),
        ErrorKind::AddrNotAvailable => format!(
            "{} is not an address of this machine (set {setting} to one of its addresses, or 0.0.0.0)",
            addr.ip()
        ),
        _ => crate::files::io_reason(err),
    };
    StartupError(format!("cannot listen on {addr}: {advice}"))
}

/// Connections the kernel completes and queues for `accept` (capped by `net.core.somaxconn`).
/// tokio's `TcpListener::bind` uses 128: a burst of new connections beyond that has its SYNs
/// dropped and retried a second or more later, even though the accept loop is idle.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds the API listener with [`LISTEN_BACKLOG`].
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    // As tokio's `bind` does: a restart can bind while old connections are in TIME_WAIT.
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// `MAX_CONNECTIONS`, or by default what the file-descriptor limit (already raised) leaves
/// after the database and files: see [`default_max_connections`].
fn max_connections(config: &Config, fd_limit: Option<u64>) -> usize {
    /// Only where the limit cannot be read at all.
    const FALLBACK: usize = 1024;
    let fitting = fd_limit.map(|limit| default_max_connections(limit, config.db_max_connections));
    let max = match (config.max_connections, fitting) {
        (Some(max), Some(fitting)) if max > fitting => {
            tracing::warn!(
                max_connections = max,
                fits = fitting,
                "MAX_CONNECTIONS is more than the file-descriptor limit leaves room for; past that, accepting backs off"
            );
            max
        }
        (Some(max), _) => max,
        (None, fitting) => fitting.unwrap_or(FALLBACK),
    };
    tracing::info!(
        fd_limit,
        max_connections = max,
        max_connections_per_ip = config.max_connections_per_ip,
        ipv6_prefix_length = config.ipv6_prefix_length,
        "connections: at most {max} open, {} per client address",
        config.max_connections_per_ip
    );
    max
}
