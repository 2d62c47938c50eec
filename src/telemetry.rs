//! Logging: `tracing` to stdout, human-readable or JSON, filtered by `RUST_LOG`.

use tracing_subscriber::{EnvFilter, fmt, layer::SubscriberExt, util::SubscriberInitExt};

use crate::config::LogFormat;

/// Keeps the background log writer alive; logs still queued are flushed when it drops.
pub type LogGuard = Option<tracing_appender::non_blocking::WorkerGuard>;

/// Installs the global subscriber. Default filter: `info`, with sqlx's per-query logs at warn.
///
/// Lines go through a bounded in-memory queue to a writer thread, so a slow or blocked stdout
/// (a full pipe, a stalled log shipper) can never stall request handling: when the queue is
/// full, lines are dropped and counted instead.
pub fn init(format: LogFormat) -> LogGuard {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(64 * 1024)
        .lossy(true)
        .finish(std::io::stdout());
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(writer),
            )
            .try_init(),
        LogFormat::Pretty => registry
            .with(fmt::layer().with_target(false).with_writer(writer))
            .try_init(),
    };
    // A second init (tests) keeps the first subscriber; its guard is not needed then.
    result.ok().map(|()| guard)
}

/// Prometheus metrics. Recording goes through the `metrics` facade, which costs nothing until
/// a recorder is installed (only when METRICS_ADDR is set).
pub mod metrics_export {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

    /// Latency buckets in seconds, from 0.5 ms to 10 s.
    const BUCKETS: &[f64] = &[
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ];

    /// Writes per SQLite group commit, up to its largest group.
    const GROUP_SIZES: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];

    /// Installs the process-wide recorder and describes every metric.
    pub fn install() -> Result<PrometheusHandle, String> {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("http_request_duration_seconds".into()),
                BUCKETS,
            )
            .map_err(|e| e.to_string())?
            .set_buckets_for_metric(Matcher::Full("db_write_group_size".into()), GROUP_SIZES)
            .map_err(|e| e.to_string())?
            .install_recorder()
            .map_err(|e| e.to_string())?;
        metrics::describe_counter!(
            "http_requests_total",
            "HTTP requests answered, by method, route and status"
        );
        metrics::describe_histogram!(
            "http_request_duration_seconds",
            metrics::Unit::Seconds,
            "Time from request to response head, by method, route and status"
        );
        metrics::describe_gauge!(
            "db_pool_connections",
            "Database connections by state (in_use, idle)"
        );
        metrics::describe_histogram!(
            "db_write_group_size",
            "SQLite: employee writes committed together, per transaction (group commit)"
        );
        metrics::describe_counter!(
            "auth_login_failures_total",
            "Failed logins (wrong password or unknown user)"
        );
        metrics::describe_counter!(
            "auth_login_throttled_total",
            "Login attempts refused by the throttle (429)"
        );
        metrics::describe_counter!(
            "rate_limit_rejections_total",
            "Requests refused by a rate limit, by limit"
        );
        metrics::describe_gauge!("build_info", "Always 1; labels carry the version");
        metrics::gauge!("build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        Ok(handle)
    }
}
