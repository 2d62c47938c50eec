//! Configuration: every setting of the contract, read once (flags, environment, `.env`, the
//! config file; see [`settings`]), validated once into [`Config`]. A bad value stops start-up
//! with one clear line naming the setting.

pub mod secret;
pub mod settings;

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use ipnet::IpNet;
use jsonwebtoken::Algorithm;

pub use secret::{DatabaseUrl, Secret, mask_url_secrets};
pub use settings::{LogFormat, Settings};

use crate::domain::username::Username;

/// The fewest database connections a process can work with: SQLite needs a writer, a reader
/// and a list-page reader; PostgreSQL a general and a hot-read connection.
pub const MIN_DB_CONNECTIONS: u32 = 3;

/// The largest `SQLITE_MAX_SIZE_MB`: 16 TiB, about SQLite's own limit with 4 KiB pages.
pub const SQLITE_MAX_SIZE_CEILING_MB: u64 = 16 * 1024 * 1024;

/// Login throttling thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleConfig {
    pub free_failures: u32,
    pub max_failures_per_hour: u32,
}

/// The validated configuration the service runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: DatabaseUrl,
    pub bind_addr: SocketAddr,
    /// `None` only with SQLite: the server then generates and keeps one beside the database.
    pub jwt_secret: Option<Secret>,
    pub jwt_algorithm: Algorithm,
    pub token_ttl: Duration,
    pub admin_username: Username,
    pub admin_password: Option<Secret>,
    pub password_min_length: usize,
    pub rate_limit_per_minute: u32,
    pub trusted_proxies: Vec<IpNet>,
    pub redis_url: Option<Secret>,
    pub cors_allowed_origins: Vec<String>,
    pub login_account: ThrottleConfig,
    pub login_ip: ThrottleConfig,
    pub register_burst: u32,
    pub register_per_hour: u32,
    pub request_timeout: Duration,
    pub max_concurrent_requests: usize,
    /// 0: no per-client cap.
    pub max_in_flight_per_client: usize,
    /// `None`: sized from the file-descriptor limit at start-up.
    pub max_connections: Option<usize>,
    pub max_connections_per_ip: usize,
    pub ipv6_prefix_length: u8,
    pub max_offset: u64,
    pub refresh_idle: Duration,
    pub refresh_absolute: Duration,
    pub refresh_reuse_grace: Duration,
    pub require_if_match: bool,
    pub idempotency_ttl: Duration,
    pub deleted_retention: Duration,
    pub hash_concurrency: usize,
    pub db_max_connections: u32,
    /// SQLite only: the most bytes the database file may hold (`SQLITE_MAX_SIZE_MB`).
    pub sqlite_max_size: Option<u64>,
    pub log_format: LogFormat,
    pub metrics_addr: Option<SocketAddr>,
}

/// A configuration error: one line about one setting. `setting` is its environment name; the
/// command line shows it as the user wrote it (the flag, the variable, or the config file's
/// key: see `cli::config_file`).
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub setting: Option<&'static str>,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.setting {
            Some(setting) => write!(f, "{setting}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl ConfigError {
    /// An error about `setting` (its environment name).
    pub fn at(setting: &'static str, message: impl Into<String>) -> Self {
        Self {
            setting: Some(setting),
            message: message.into(),
        }
    }

    /// An error about no one setting in particular (or several).
    pub fn general(message: impl Into<String>) -> Self {
        Self {
            setting: None,
            message: message.into(),
        }
    }
}

fn err_at<T>(setting: &'static str, msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError::at(setting, msg))
}

/// The algorithm's name as settings write it (`HS256`), for messages.
pub fn algorithm_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        _ => "HS256",
    }
}

/// The minimum HMAC key length for `alg`: its hash output size (RFC 7518 §3.2).
pub fn min_secret_len(alg: Algorithm) -> usize {
    match alg {
        Algorithm::HS384 => 48,
        Algorithm::HS512 => 64,
        _ => 32,
    }
}

fn read_secret_file(setting: &'static str, path: &PathBuf) -> Result<Secret, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Secret::new(text.trim_end_matches(['\r', '\n']))),
        Err(e) => err_at(
            setting,
            format!(
                "cannot read {}: {}",
                path.display(),
                crate::files::io_reason(&e)
            ),
        ),
    }
}

/// A secret from its setting or its `_FILE` twin (never both).
fn secret_from(
    (name, file_name): (&'static str, &'static str),
    value: Option<String>,
    file: Option<PathBuf>,
) -> Result<Option<Secret>, ConfigError> {
    match (value.filter(|v| !v.is_empty()), file) {
        (Some(_), Some(_)) => err_at(name, format!("set either {name} or {file_name}, not both")),
        (Some(v), None) => Ok(Some(Secret::new(v))),
        (None, Some(path)) => read_secret_file(file_name, &path).map(Some),
        (None, None) => Ok(None),
    }
}

fn comma_list(raw: &str) -> impl Iterator<Item = &str> {
    raw.split(',').map(str::trim).filter(|s| !s.is_empty())
}

impl Config {
    /// Validates raw settings.
    pub fn from_settings(s: Settings) -> Result<Self, ConfigError> {
        let database_url = DatabaseUrl::parse(&s.database_url).map_err(|e| {
            ConfigError::at(
                "DATABASE_URL",
                e.strip_prefix("DATABASE_URL: ").unwrap_or(&e).to_owned(),
            )
        })?;
        let Ok(bind_addr) = s.bind_addr.parse() else {
            return err_at(
                "BIND_ADDR",
                "expected HOST:PORT with an IP address, e.g. 127.0.0.1:8000",
            );
        };
        let jwt_algorithm = match s.jwt_algorithm.as_str() {
            "HS256" => Algorithm::HS256,
            "HS384" => Algorithm::HS384,
            "HS512" => Algorithm::HS512,
            _ => return err_at("JWT_ALGORITHM", "only HS256, HS384 and HS512 are supported"),
        };
        let jwt_secret_from_file = s.jwt_secret_key_file.is_some();
        let jwt_secret = secret_from(
            ("JWT_SECRET_KEY", "JWT_SECRET_KEY_FILE"),
            s.jwt_secret_key,
            s.jwt_secret_key_file,
        )?;
        match &jwt_secret {
            Some(secret) if secret.expose().len() < min_secret_len(jwt_algorithm) => {
                return err_at(
                    if jwt_secret_from_file {
                        "JWT_SECRET_KEY_FILE"
                    } else {
                        "JWT_SECRET_KEY"
                    },
                    format!(
                        "must be at least {} bytes for {} (got {}); generate one with: openssl rand -hex 32",
                        min_secret_len(jwt_algorithm),
                        algorithm_name(jwt_algorithm),
                        secret.expose().len()
                    ),
                );
            }
            _ => {}
        }
        if !(1..=1440).contains(&s.access_token_expire_minutes) {
            return err_at("ACCESS_TOKEN_EXPIRE_MINUTES", "must be between 1 and 1440");
        }
        let Ok(admin_username) = Username::parse(&s.admin_username) else {
            return err_at("ADMIN_USERNAME", "3-64 characters of A-Z a-z 0-9 _ . -");
        };
        if !(8..=128).contains(&s.password_min_length) {
            return err_at("PASSWORD_MIN_LENGTH", "must be between 8 and 128");
        }
        let admin_password = secret_from(
            ("ADMIN_PASSWORD", "ADMIN_PASSWORD_FILE"),
            s.admin_password,
            s.admin_password_file,
        )?;
        let trusted_proxies = comma_list(&s.trusted_proxies)
            .map(|item| {
                item.parse::<IpNet>()
                    .or_else(|_| item.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        ConfigError::at(
                            "TRUSTED_PROXIES",
                            format!("{item:?} is not an IP address or CIDR"),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let cors_allowed_origins = comma_list(&s.cors_allowed_origins)
            .map(|origin| {
                let valid = (origin.starts_with("https://") || origin.starts_with("http://"))
                    && !origin.ends_with('/')
                    && origin.parse::<axum::http::HeaderValue>().is_ok();
                if valid {
                    Ok(origin.to_owned())
                } else {
                    err_at(
                        "CORS_ALLOWED_ORIGINS",
                        format!("{origin:?} is not an origin like https://app.example.com (no '*', no 'null', no path)"),
                    )
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        if s.login_free_failures == 0 || s.login_free_failures > s.login_max_failures_per_hour {
            return err_at(
                "LOGIN_FREE_FAILURES",
                "must be at least 1 and at most LOGIN_MAX_FAILURES_PER_HOUR",
            );
        }
        if s.login_ip_free_failures == 0
            || s.login_ip_free_failures > s.login_ip_max_failures_per_hour
        {
            return err_at(
                "LOGIN_IP_FREE_FAILURES",
                "must be at least 1 and at most LOGIN_IP_MAX_FAILURES_PER_HOUR",
            );
        }
        if s.register_burst == 0 || s.register_per_hour == 0 {
            return err_at(
                if s.register_burst == 0 {
                    "REGISTER_BURST"
                } else {
                    "REGISTER_PER_HOUR"
                },
                "must be at least 1",
            );
        }
        if s.request_timeout_seconds == 0 {
            return err_at("REQUEST_TIMEOUT_SECONDS", "must be at least 1");
        }
        if s.max_concurrent_requests == 0 {
            return err_at("MAX_CONCURRENT_REQUESTS", "must be at least 1");
        }
        if s.max_connections == Some(0) {
            return err_at("MAX_CONNECTIONS", "must be at least 1");
        }
        if s.max_connections_per_ip == 0 {
            return err_at("MAX_CONNECTIONS_PER_IP", "must be at least 1");
        }
        if !(1..=128).contains(&s.ipv6_prefix_length) {
            return err_at("IPV6_PREFIX_LENGTH", "must be between 1 and 128");
        }
        if s.max_offset > crate::domain::listing::OFFSET_CEILING {
            return err_at(
                "MAX_OFFSET",
                format!("must be at most {}", crate::domain::listing::OFFSET_CEILING),
            );
        }
        if !(1..=365 * 24 * 60).contains(&s.refresh_token_idle_minutes) {
            return err_at(
                "REFRESH_TOKEN_IDLE_MINUTES",
                "must be between 1 and 525600 (a year)",
            );
        }
        if !(1..=365).contains(&s.refresh_token_absolute_days) {
            return err_at("REFRESH_TOKEN_ABSOLUTE_DAYS", "must be between 1 and 365");
        }
        if s.refresh_reuse_grace_seconds > 300 {
            return err_at("REFRESH_REUSE_GRACE_SECONDS", "must be at most 300");
        }
        if !(1..=24 * 30).contains(&s.idempotency_ttl_hours) {
            return err_at("IDEMPOTENCY_TTL_HOURS", "must be between 1 and 720");
        }
        if !(1..=3650).contains(&s.deleted_retention_days) {
            return err_at("DELETED_RETENTION_DAYS", "must be between 1 and 3650");
        }
        if s.db_max_connections < MIN_DB_CONNECTIONS {
            return err_at(
                "DB_MAX_CONNECTIONS",
                format!("must be at least {MIN_DB_CONNECTIONS}"),
            );
        }
        let sqlite_max_size = match (s.sqlite_max_size_mb, &database_url) {
            (None, _) => None,
            (Some(_), DatabaseUrl::Postgres(_)) => {
                return err_at(
                    "SQLITE_MAX_SIZE_MB",
                    "applies to a SQLite DATABASE_URL only (PostgreSQL's size is the disk's)",
                );
            }
            (Some(mb), DatabaseUrl::Sqlite { .. })
                if (1..=SQLITE_MAX_SIZE_CEILING_MB).contains(&mb) =>
            {
                Some(mb * 1024 * 1024)
            }
            (Some(_), DatabaseUrl::Sqlite { .. }) => {
                return err_at(
                    "SQLITE_MAX_SIZE_MB",
                    format!("must be between 1 and {SQLITE_MAX_SIZE_CEILING_MB}"),
                );
            }
        };
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let hash_concurrency = s.hash_concurrency.unwrap_or(cores);
        if hash_concurrency == 0 {
            return err_at("HASH_CONCURRENCY", "must be at least 1");
        }
        let redis_url = match s.redis_url.filter(|v| !v.is_empty()) {
            None => None,
            Some(url) => {
                // The client's own parser: what `serve` would refuse is refused here. The value
                // is never echoed (it may hold a password).
                if redis::Client::open(url.as_str()).is_err() {
                    return err_at(
                        "REDIS_URL",
                        "not a Redis URL (expected redis://[:PASSWORD@]HOST[:PORT][/DB], rediss:// for TLS, or redis+unix:///PATH)",
                    );
                }
                Some(Secret::new(url))
            }
        };
        let metrics_addr = match s.metrics_addr.as_deref().filter(|v| !v.is_empty()) {
            None => None,
            Some(raw) => Some(raw.parse().map_err(|_| {
                ConfigError::at("METRICS_ADDR", "expected HOST:PORT with an IP address")
            })?),
        };
        Ok(Config {
            database_url,
            bind_addr,
            jwt_secret,
            jwt_algorithm,
            token_ttl: Duration::from_secs(s.access_token_expire_minutes * 60),
            admin_username,
            admin_password,
            password_min_length: s.password_min_length,
            rate_limit_per_minute: s.rate_limit_per_minute,
            trusted_proxies,
            redis_url,
            cors_allowed_origins,
            login_account: ThrottleConfig {
                free_failures: s.login_free_failures,
                max_failures_per_hour: s.login_max_failures_per_hour,
            },
            login_ip: ThrottleConfig {
                free_failures: s.login_ip_free_failures,
                max_failures_per_hour: s.login_ip_max_failures_per_hour,
            },
            register_burst: s.register_burst,
            register_per_hour: s.register_per_hour,
            request_timeout: Duration::from_secs(s.request_timeout_seconds),
            max_concurrent_requests: s.max_concurrent_requests,
            max_in_flight_per_client: s.max_in_flight_per_client,
            max_connections: s.max_connections,
            max_connections_per_ip: s.max_connections_per_ip,
            ipv6_prefix_length: s.ipv6_prefix_length,
            max_offset: s.max_offset,
            refresh_idle: Duration::from_secs(s.refresh_token_idle_minutes * 60),
            refresh_absolute: Duration::from_secs(s.refresh_token_absolute_days * 24 * 3600),
            refresh_reuse_grace: Duration::from_secs(s.refresh_reuse_grace_seconds),
            require_if_match: s.require_if_match,
            idempotency_ttl: Duration::from_secs(s.idempotency_ttl_hours * 3600),
            deleted_retention: Duration::from_secs(s.deleted_retention_days * 24 * 3600),
            hash_concurrency,
            db_max_connections: s.db_max_connections,
            sqlite_max_size,
            log_format: s.log_format,
            metrics_addr,
        })
    }

    /// What `serve` needs beyond a valid configuration, checked before anything is bound or
    /// created (and by `employee-api config`): a token secret with PostgreSQL (SQLite
    /// generates one), and an `ADMIN_PASSWORD` that meets the password rules.
    pub fn check_for_serve(&self) -> Result<(), ConfigError> {
        if self.jwt_secret.is_none() && matches!(self.database_url, DatabaseUrl::Postgres(_)) {
            return err_at(
                "JWT_SECRET_KEY",
                "required with PostgreSQL (set it, or JWT_SECRET_KEY_FILE; generate one with: openssl rand -hex 32)",
            );
        }
        if let Some(password) = &self.admin_password {
            crate::domain::password::PasswordPolicy::new(self.password_min_length)
                .check(password.expose(), Some(&self.admin_username))
                .map_err(|e| ConfigError::at("ADMIN_PASSWORD", e.msg))?;
        }
        Ok(())
    }

    /// The configuration with every default, for `database_url`; never reads the process
    /// environment (tests and tools).
    pub fn defaults_for(database_url: DatabaseUrl) -> Self {
        let mut config = Config::from_settings(Settings::defaults())
            .unwrap_or_else(|e| unreachable!("defaults are valid: {e}"));
        config.database_url = database_url;
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_ignore_the_environment() {
        let defaults = Settings::defaults();
        assert_eq!(defaults.bind_addr, "127.0.0.1:8000");
        assert_eq!(defaults.database_url, "sqlite://data/employees.db");
        assert!(defaults.jwt_secret_key.is_none() && defaults.admin_password.is_none());
        let config = Config::defaults_for(DatabaseUrl::parse("sqlite://x/y.db").unwrap());
        assert_eq!(config.rate_limit_per_minute, 300);
    }

    #[test]
    fn sqlite_max_size_is_mebibytes_for_sqlite_only() {
        let mut settings = Settings::defaults();
        settings.sqlite_max_size_mb = Some(2);
        let config = Config::from_settings(settings.clone()).unwrap();
        assert_eq!(config.sqlite_max_size, Some(2 * 1024 * 1024));
        for (mb, url) in [
            (0, "sqlite://x/y.db"),
            (SQLITE_MAX_SIZE_CEILING_MB + 1, "sqlite://x/y.db"),
            (2, "postgres://app@db/emp"),
        ] {
            settings.sqlite_max_size_mb = Some(mb);
            settings.database_url = url.to_owned();
            let err = Config::from_settings(settings.clone()).unwrap_err();
            assert_eq!(err.setting, Some("SQLITE_MAX_SIZE_MB"), "{mb} {url}: {err}");
        }
    }
}
