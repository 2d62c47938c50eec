//! Start-up and serving: connect, migrate, resolve the token secret, make sure an
//! administrator exists, then serve HTTP until a shutdown signal.

use std::{
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::atomic::Ordering,
    time::Duration,
};

use axum::{Router, extract::ConnectInfo, http::Request};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::{
    app::{AppState, build_router},
    config::{Config, DatabaseUrl, Secret},
    db::Db,
    domain::password::Password,
    error::OnConflict,
};

/// How long in-flight requests may take to finish after a shutdown signal.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(20);
/// How long a client may take to send the request head (slow-loris protection).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request head accepted (request line plus headers).
const MAX_HEADER_BYTES: usize = 16 * 1024;

/// A start-up failure, printed as one line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartupError(pub String);

fn fail(context: &str, err: impl std::fmt::Display) -> StartupError {
    StartupError(format!("{context}: {err}"))
}

/// Connects to the database and applies migrations.
pub async fn open_database(config: &Config) -> Result<Db, StartupError> {
    let db = tokio::time::timeout(
        Duration::from_secs(15),
        Db::connect(&config.database_url, config.db_max_connections),
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

/// The JWT secret: the configured one, or (SQLite only) one generated once and kept in a
/// 0600 file beside the database so tokens survive restarts.
pub fn resolve_secret(config: &Config) -> Result<Secret, StartupError> {
    if let Some(secret) = &config.jwt_secret {
        return Ok(secret.clone());
    }
    let DatabaseUrl::Sqlite { path } = &config.database_url else {
        return Err(StartupError(
            "JWT_SECRET_KEY: required with PostgreSQL".into(),
        ));
    };
    let file = secret_file_for(path);
    if let Ok(existing) = std::fs::read_to_string(&file) {
        let existing = existing.trim().to_owned();
        if existing.len() >= crate::config::min_secret_len(config.jwt_algorithm) {
            return Ok(Secret::new(existing));
        }
        return Err(StartupError(format!(
            "{}: too short for {:?}; delete it to regenerate",
            file.display(),
            config.jwt_algorithm
        )));
    }
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write_private_file(&file, &hex)
        .map_err(|e| fail(&format!("cannot write {}", file.display()), e))?;
    tracing::warn!(
        file = %file.display(),
        "JWT_SECRET_KEY is not set: generated a random secret and saved it beside the database (set JWT_SECRET_KEY to manage it yourself)"
    );
    Ok(Secret::new(hex))
}

/// `data/employees.db` -> `data/employees.db.jwt-secret`.
pub fn secret_file_for(db_path: &Path) -> PathBuf {
    let mut name = db_path.as_os_str().to_owned();
    name.push(".jwt-secret");
    PathBuf::from(name)
}

fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

/// Creates the administrator when none exists. Without ADMIN_PASSWORD a random password is
/// generated and printed once.
pub async fn ensure_admin(state: &AppState) -> Result<(), StartupError> {
    let db = &state.db;
    if db
        .admin_exists()
        .await
        .map_err(|e| fail("checking for an administrator", e))?
    {
        return Ok(());
    }
    let config = &state.config;
    let username = &config.admin_username;
    let (password, generated) = match &config.admin_password {
        Some(secret) => {
            let password = state
                .policy
                .check(secret.expose(), Some(username))
                .map_err(|e| StartupError(format!("ADMIN_PASSWORD: {}", e.msg)))?;
            (password, false)
        }
        None => (generate_password(), true),
    };
    let hash = state
        .hasher
        .hash(&password)
        .await
        .map_err(|e| fail("hashing the admin password", e))?;
    match db
        .insert_user(username, &hash, true)
        .await
        .on_conflict("exists")
    {
        Ok(_) => {}
        Err(crate::error::ApiError::Conflict(_)) => {
            // Another instance may have just created it; a plain user of that name is refused.
            if db
                .admin_exists()
                .await
                .map_err(|e| fail("checking for an administrator", e))?
            {
                return Ok(());
            }
            return Err(StartupError(format!(
                "ADMIN_USERNAME: a non-admin user named {username:?} already exists; choose another name or promote it with `employee-api user promote {username}`"
            )));
        }
        Err(e) => return Err(fail("creating the administrator", e)),
    }
    if generated {
        // Printed, not logged: it must appear once on the console and never in log storage.
        println!(
            "\n  Created administrator \"{username}\" with generated password: {}\n  It is shown only now. Change it with `employee-api user set-password {username}`.\n",
            password.expose()
        );
    } else {
        tracing::info!(event = "user_created", username = %username, "administrator created from ADMIN_PASSWORD");
    }
    Ok(())
}

/// 24 characters from a 62-letter alphabet: about 143 bits.
pub fn generate_password() -> Password {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut raw = [0u8; 24];
    rand::fill(&mut raw);
    let text: String = raw
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect();
    Password::for_login(&text)
        .unwrap_or_else(|_| unreachable!("24 ASCII characters are a valid password"))
}

/// Everything `serve` does: open, migrate, bootstrap, bind, serve until `shutdown` resolves.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartupError> {
    let db = open_database(&config).await?;
    let secret = resolve_secret(&config)?;
    let bind_addr = config.bind_addr;
    let state =
        AppState::new(config, db, &secret, "employee-api").map_err(|e| fail("start-up", e))?;
    ensure_admin(&state).await?;
    spawn_housekeeping(&state);
    if let Some(addr) = state.config.metrics_addr {
        serve_metrics(addr, state.db.clone()).await?;
    }
    let listener = TcpListener::bind(bind_addr)
        .await
        .map_err(|e| fail(&format!("cannot listen on {bind_addr}"), e))?;
    tracing::info!(address = %bind_addr, database = %state.config.database_url, "serving on http://{bind_addr} (docs at /docs)");
    let db = state.db.clone();
    serve(listener, state, shutdown).await;
    db.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Serves Prometheus metrics at `http://addr/metrics`, on a listener of its own so the API
/// port never exposes them.
async fn serve_metrics(addr: SocketAddr, db: Db) -> Result<(), StartupError> {
    let handle = crate::telemetry::metrics_export::install().map_err(|e| fail("metrics", e))?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| fail(&format!("cannot listen on METRICS_ADDR {addr}"), e))?;
    let router = Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let (handle, db) = (handle.clone(), db.clone());
            async move {
                let (in_use, idle) = db.pool_usage();
                metrics::gauge!("db_pool_connections", "state" => "in_use").set(f64::from(in_use));
                metrics::gauge!("db_pool_connections", "state" => "idle").set(f64::from(idle));
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

fn spawn_housekeeping(state: &AppState) {
    let limiters = state.limiters.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            limiters.prune();
        }
    });
}

/// Serves `state`'s router on an already-bound listener until `shutdown` resolves; then
/// `/readyz` turns 503, no new connections are accepted, and in-flight requests get
/// [`SHUTDOWN_DEADLINE`] to finish.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let shutting_down = state.shutting_down.clone();
    let router: Router = build_router(state);
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES.max(8192));
    builder
        .http2()
        .max_header_list_size(MAX_HEADER_BYTES as u32);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = router
            .clone()
            .map_request(move |mut req: Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                req
            });
        let service = TowerToHyperService::new(service.map_err(|e: Infallible| match e {}));
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
    shutting_down.store(true, Ordering::Relaxed);
    drop(listener);
    tracing::info!("shutdown signal received; finishing in-flight requests");
    if tokio::time::timeout(SHUTDOWN_DEADLINE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish within {SHUTDOWN_DEADLINE:?}; closing");
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
