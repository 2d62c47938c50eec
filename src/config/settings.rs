//! The raw settings as the command line, the environment, `.env` and the config file give
//! them (clap: a flag with an environment fallback each), before [`super::Config`] validates
//! them.

use std::path::PathBuf;

use clap::{Args, CommandFactory, FromArgMatches, ValueEnum};

/// `PASSWORD_MIN_LENGTH` when unset.
pub const DEFAULT_PASSWORD_MIN_LENGTH: usize = 15;
/// `MAX_OFFSET` when unset.
pub const DEFAULT_MAX_OFFSET: u64 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// The raw settings, as flags with environment fallbacks (clap), before validation.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// sqlite://PATH (embedded default) or postgres://USER:PASSWORD@HOST/DB.
    #[arg(
        long,
        global = true,
        env = "DATABASE_URL",
        default_value = "sqlite://data/employees.db",
        hide_env_values = true
    )]
    pub database_url: String,
    /// Address and port to listen on.
    #[arg(
        long,
        global = true,
        env = "BIND_ADDR",
        default_value = "127.0.0.1:8000"
    )]
    pub bind_addr: String,
    /// HMAC secret for access tokens (at least 32/48/64 bytes for HS256/384/512).
    #[arg(long, global = true, env = "JWT_SECRET_KEY", hide_env_values = true)]
    pub jwt_secret_key: Option<String>,
    /// File holding the HMAC secret (alternative to JWT_SECRET_KEY).
    #[arg(long, global = true, env = "JWT_SECRET_KEY_FILE")]
    pub jwt_secret_key_file: Option<PathBuf>,
    /// HS256, HS384 or HS512.
    #[arg(long, global = true, env = "JWT_ALGORITHM", default_value = "HS256")]
    pub jwt_algorithm: String,
    /// Access-token lifetime in minutes (1..=1440).
    #[arg(
        long,
        global = true,
        env = "ACCESS_TOKEN_EXPIRE_MINUTES",
        default_value_t = 30
    )]
    pub access_token_expire_minutes: u64,
    /// Name of the administrator created at start when none exists.
    #[arg(long, global = true, env = "ADMIN_USERNAME", default_value = "admin")]
    pub admin_username: String,
    /// Password for that administrator; generated and printed once when unset.
    #[arg(long, global = true, env = "ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
    /// File holding the administrator password (alternative to ADMIN_PASSWORD).
    #[arg(long, global = true, env = "ADMIN_PASSWORD_FILE")]
    pub admin_password_file: Option<PathBuf>,
    /// Minimum password length in characters (8..=128).
    #[arg(long, global = true, env = "PASSWORD_MIN_LENGTH", default_value_t = DEFAULT_PASSWORD_MIN_LENGTH)]
    pub password_min_length: usize,
    /// Requests per minute per client (user id, else IP); 0 disables.
    #[arg(
        long,
        global = true,
        env = "RATE_LIMIT_PER_MINUTE",
        default_value_t = 300
    )]
    pub rate_limit_per_minute: u32,
    /// Proxies whose X-Forwarded-For is believed: comma-separated addresses or CIDRs.
    #[arg(long, global = true, env = "TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: String,
    /// Redis URL for limits shared by several instances (optional).
    #[arg(long, global = true, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Comma-separated origins allowed by CORS (off when empty).
    #[arg(long, global = true, env = "CORS_ALLOWED_ORIGINS", default_value = "")]
    pub cors_allowed_origins: String,
    /// Failed logins per account per hour before the account is locked for the rest of it.
    #[arg(
        long,
        global = true,
        env = "LOGIN_MAX_FAILURES_PER_HOUR",
        default_value_t = 100
    )]
    pub login_max_failures_per_hour: u32,
    /// Failed logins per account allowed before waits start (then 1 s, 2 s, 4 s, ...).
    #[arg(long, global = true, env = "LOGIN_FREE_FAILURES", default_value_t = 5)]
    pub login_free_failures: u32,
    /// Failed logins per client IP per hour.
    #[arg(
        long,
        global = true,
        env = "LOGIN_IP_MAX_FAILURES_PER_HOUR",
        default_value_t = 300
    )]
    pub login_ip_max_failures_per_hour: u32,
    /// Failed logins per client IP allowed before waits start.
    #[arg(
        long,
        global = true,
        env = "LOGIN_IP_FREE_FAILURES",
        default_value_t = 20
    )]
    pub login_ip_free_failures: u32,
    /// Registrations per client IP: burst size.
    #[arg(long, global = true, env = "REGISTER_BURST", default_value_t = 5)]
    pub register_burst: u32,
    /// Registrations per client IP: sustained rate per hour.
    #[arg(long, global = true, env = "REGISTER_PER_HOUR", default_value_t = 20)]
    pub register_per_hour: u32,
    /// Seconds a request may take in total before it is answered 408 and dropped.
    #[arg(
        long,
        global = true,
        env = "REQUEST_TIMEOUT_SECONDS",
        default_value_t = 30
    )]
    pub request_timeout_seconds: u64,
    /// Requests served at once; more get a fast 503 with Retry-After.
    #[arg(
        long,
        global = true,
        env = "MAX_CONCURRENT_REQUESTS",
        default_value_t = 512
    )]
    pub max_concurrent_requests: usize,
    /// Requests one client may have in flight at once (its user id, or its address; always
    /// its address on /auth/*); more get 429. 0 disables.
    #[arg(
        long,
        global = true,
        env = "MAX_IN_FLIGHT_PER_CLIENT",
        default_value_t = 64
    )]
    pub max_in_flight_per_client: usize,
    /// Open connections in all; more are closed at once. Default: what the file-descriptor
    /// limit allows, minus room for database connections and files.
    #[arg(long, global = true, env = "MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Open connections per client address (per /IPV6_PREFIX_LENGTH network for IPv6).
    #[arg(
        long,
        global = true,
        env = "MAX_CONNECTIONS_PER_IP",
        default_value_t = 256
    )]
    pub max_connections_per_ip: usize,
    /// IPv6 clients are counted per network of this prefix length in every budget (1..=128).
    #[arg(long, global = true, env = "IPV6_PREFIX_LENGTH", default_value_t = 64)]
    pub ipv6_prefix_length: u8,
    /// Minutes a refresh token stays usable without being used (each refresh starts it again).
    #[arg(
        long,
        global = true,
        env = "REFRESH_TOKEN_IDLE_MINUTES",
        default_value_t = 7 * 24 * 60
    )]
    pub refresh_token_idle_minutes: u64,
    /// Days a session (and its refresh tokens) lasts at most, however often it is refreshed.
    #[arg(
        long,
        global = true,
        env = "REFRESH_TOKEN_ABSOLUTE_DAYS",
        default_value_t = 30
    )]
    pub refresh_token_absolute_days: u64,
    /// Seconds during which a refresh token already exchanged still yields the same successor
    /// (concurrent refreshes by one client), instead of counting as theft.
    #[arg(
        long,
        global = true,
        env = "REFRESH_REUSE_GRACE_SECONDS",
        default_value_t = 10
    )]
    pub refresh_reuse_grace_seconds: u64,
    /// Require `If-Match` on PATCH and DELETE of an employee (428 without it).
    #[arg(long, global = true, env = "REQUIRE_IF_MATCH", default_value_t = false)]
    pub require_if_match: bool,
    /// Hours a response stored for an `Idempotency-Key` is replayed.
    #[arg(
        long,
        global = true,
        env = "IDEMPOTENCY_TTL_HOURS",
        default_value_t = 24
    )]
    pub idempotency_ttl_hours: u64,
    /// Days a deleted employee stays restorable before it is erased.
    #[arg(
        long,
        global = true,
        env = "DELETED_RETENTION_DAYS",
        default_value_t = 30
    )]
    pub deleted_retention_days: u64,
    /// The largest `offset` of a list page; deeper pages are reached by the `Link` cursor.
    #[arg(long, global = true, env = "MAX_OFFSET", default_value_t = DEFAULT_MAX_OFFSET)]
    pub max_offset: u64,
    /// Password hashes computed at once (each holds 19 MiB); default: CPU cores.
    #[arg(long, global = true, env = "HASH_CONCURRENCY")]
    pub hash_concurrency: Option<usize>,
    /// Database connections this process opens in all (at least 3). PostgreSQL: half for hot
    /// reads, half for everything else. SQLite: one writer, up to 4 point readers and one
    /// list-page reader per CPU core (at most 4).
    #[arg(long, global = true, env = "DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,
    /// SQLite only: the most MiB the database file may grow to; a write that needs more is
    /// answered 503 "database full", as on a full disk (unset: no cap but the disk's).
    #[arg(long, global = true, env = "SQLITE_MAX_SIZE_MB")]
    pub sqlite_max_size_mb: Option<u64>,
    /// pretty or json.
    #[arg(
        long,
        global = true,
        env = "LOG_FORMAT",
        value_enum,
        default_value = "pretty"
    )]
    pub log_format: LogFormat,
    /// Serve Prometheus metrics on this separate address (off when unset).
    #[arg(long, global = true, env = "METRICS_ADDR")]
    pub metrics_addr: Option<String>,
}

impl Settings {
    /// Every setting at its default, whatever the process environment holds (tests and tools
    /// build configurations from this, so they never read the real environment).
    pub fn defaults() -> Self {
        let command = SettingsParser::command()
            .mut_args(|arg| arg.env(None))
            .no_binary_name(true);
        let matches = command
            .try_get_matches_from(std::iter::empty::<&str>())
            .unwrap_or_else(|e| unreachable!("the defaults parse: {e}"));
        SettingsParser::from_arg_matches(&matches)
            .unwrap_or_else(|e| unreachable!("the defaults parse: {e}"))
            .settings
    }
}

/// Parses only the settings (used for the defaults).
#[derive(clap::Parser)]
struct SettingsParser {
    #[command(flatten)]
    settings: Settings,
}
