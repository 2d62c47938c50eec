//! The accept loop: connection limits, hyper with deadlines and size limits (which
//! `axum::serve` lacks), the peer address for every request, and graceful shutdown.
//!
//! Deadlines, per connection:
//! - the first request within [`FIRST_BYTES_DEADLINE`] of accept, whatever the protocol
//!   (before HTTP/1 or HTTP/2 is even detected: see [`super::watchdog`]);
//! - every HTTP/1 request head within [`HEADER_READ_TIMEOUT`]; hyper starts that clock as soon
//!   as the previous response is written, so an idle HTTP/1.1 keep-alive connection closes
//!   after 10 s;
//! - an HTTP/2 connection with no stream open and no byte moving for [`IDLE_TIMEOUT`] gets a
//!   GOAWAY and is closed. A request in flight is never cut by these.

use std::{convert::Infallible, future::Future, net::SocketAddr, sync::Arc, time::Duration};

use axum::{Router, extract::ConnectInfo, http::Request};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulConnection},
};
use tokio::{net::TcpListener, sync::watch};
use tower::ServiceExt;

use super::{
    connections::{AcceptBackoff, ConnectionLimits, Permit, RefusalLog},
    watchdog::{self, Activity, InFlight, Metered, Timeouts},
};
use crate::{app::AppState, router::build_router};

/// How long in-flight requests may take to finish after a shutdown signal.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(20);
/// How long a client may take to send an HTTP/1 request head (slow-loris protection).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a new connection may take to start its first request, in either protocol.
pub const FIRST_BYTES_DEADLINE: Duration = HEADER_READ_TIMEOUT;
/// How long a connection with nothing in flight may stay silent (HTTP/2; HTTP/1.1 keep-alive
/// connections are closed sooner by [`HEADER_READ_TIMEOUT`]).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// After a GOAWAY for an expired connection, how long the client has to close it cleanly.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// The largest request head accepted (request line plus headers; HTTP/2: the header list).
const MAX_HEADER_BYTES: usize = 16 * 1024;
/// HTTP/2 streams one connection may have open at once.
const H2_MAX_CONCURRENT_STREAMS: u32 = 100;
/// HTTP/2 streams a client may open and reset before the server reads them (the "rapid reset"
/// attack, CVE-2023-44487): past this, GOAWAY. The h2 crate's default, set here visibly.
const H2_MAX_PENDING_ACCEPT_RESETS: usize = 20;
/// HTTP/2 streams the server may have to reset because of the client's protocol errors
/// (RUSTSEC-2024-0003): past this, GOAWAY. hyper's default, set here visibly.
const H2_MAX_LOCAL_ERROR_RESETS: usize = 1024;

const TIMEOUTS: Timeouts = Timeouts {
    first_request: FIRST_BYTES_DEADLINE,
    idle: IDLE_TIMEOUT,
};

/// hyper's protocol settings: HTTP/1 and HTTP/2, detected per connection.
fn http_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEADER_BYTES as u32)
        .max_concurrent_streams(H2_MAX_CONCURRENT_STREAMS)
        .max_pending_accept_reset_streams(H2_MAX_PENDING_ACCEPT_RESETS)
        .max_local_error_reset_streams(H2_MAX_LOCAL_ERROR_RESETS);
    builder
}

/// Serves `state`'s router on an already-bound listener until `shutdown` resolves, holding at
/// most `max_connections` connections (and `MAX_CONNECTIONS_PER_IP` per client network); then
/// `/readyz` turns 503, no new connections are accepted, and in-flight requests get
/// [`SHUTDOWN_DEADLINE`] to finish.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    max_connections: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let router: Router = build_router(state.clone());
    let limits = Arc::new(ConnectionLimits::new(
        max_connections,
        state.config.max_connections_per_ip,
        state.config.ipv6_prefix_length,
        state.config.trusted_proxies.clone(),
    ));
    let builder = http_builder();
    // Every connection task holds a receiver; shutdown sends, then waits for all to be gone.
    let (stop_tx, stop_rx) = watch::channel(());
    let mut backoff = AcceptBackoff::default();
    let mut refusals = RefusalLog::default();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => {
                    backoff.succeeded();
                    conn
                }
                Err(e) if AcceptBackoff::is_per_connection(&e) => continue,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    let delay = backoff.failed(&e);
                    tokio::select! {
                        () = tokio::time::sleep(delay) => continue,
                        () = &mut shutdown => break,
                    }
                }
            },
            () = &mut shutdown => break,
        };
        let permit = match limits.try_acquire(peer.ip()) {
            Ok(permit) => permit,
            Err(why) => {
                // Closed at once: no task, no buffer, no answer.
                drop(stream);
                refusals.refused(why, &limits);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let activity = Activity::new();
        let service = {
            let (router, activity) = (router.clone(), activity.clone());
            hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                let in_flight = activity.request_started();
                let router = router.clone();
                async move {
                    let response = match router.oneshot(req).await {
                        Ok(response) => response,
                        Err(never) => match never {},
                    };
                    Ok::<_, Infallible>(response.map(|body| InFlight::new(body, in_flight)))
                }
            })
        };
        let io = TokioIo::new(Metered::new(stream, activity.clone()));
        let conn = builder
            .serve_connection_with_upgrades(io, service)
            .into_owned();
        tokio::spawn(drive(conn, activity, stop_rx.clone(), permit));
    }
    state.begin_shutdown();
    drop(listener);
    drop(stop_rx);
    tracing::info!("shutdown signal received; finishing in-flight requests");
    let _ = stop_tx.send(());
    if tokio::time::timeout(SHUTDOWN_DEADLINE, stop_tx.closed())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish within {SHUTDOWN_DEADLINE:?}; closing");
    }
}

/// Runs one connection to its end: the client closes it, it breaks a deadline of
/// [`watchdog::expiry`], or shutdown asks it to finish. Its place in the limits is given back
/// when this returns.
async fn drive<C: GracefulConnection>(
    conn: C,
    activity: Arc<Activity>,
    mut stop: watch::Receiver<()>,
    permit: Permit,
) {
    tokio::pin!(conn);
    let expiry = watchdog::expiry(&activity, TIMEOUTS);
    tokio::pin!(expiry);
    let mut stopping = false;
    loop {
        tokio::select! {
            _ = conn.as_mut() => break,
            _ = stop.changed(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            why = &mut expiry, if !stopping => {
                metrics::counter!("connections_expired_total", "reason" => why.label()).increment(1);
                // Before detection this ends the connection at once; HTTP/2 gets a GOAWAY.
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(CLOSE_GRACE, conn.as_mut()).await;
                break;
            }
        }
    }
    drop(permit);
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
