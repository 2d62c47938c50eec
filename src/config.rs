//! Configuration: every setting of the contract, read once (flags, environment, `.env`),
//! validated once. A bad value stops start-up with one clear line naming the setting.

use std::{fmt, net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, ValueEnum};
use ipnet::IpNet;
use jsonwebtoken::Algorithm;

use crate::domain::username::Username;

/// A secret string whose `Debug`/`Display` never reveal it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where the data lives.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite { path: PathBuf },
    Postgres(Secret),
}

impl DatabaseUrl {
    /// Accepts `sqlite://PATH`, `sqlite:PATH` and `postgres://` / `postgresql://` URLs.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if let Some(rest) = raw
            .strip_prefix("sqlite://")
            .or_else(|| raw.strip_prefix("sqlite:"))
        {
            let path = rest.split('?').next().unwrap_or_default();
            if path.is_empty() || path == ":memory:" {
                return Err(
                    "DATABASE_URL: a SQLite database needs a file path (sqlite://PATH)".into(),
                );
            }
            return Ok(DatabaseUrl::Sqlite {
                path: PathBuf::from(path),
            });
        }
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(Secret::new(raw)));
        }
        Err("DATABASE_URL: must start with sqlite:// or postgres://".into())
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for DatabaseUrl {
    /// Shows the URL with any password replaced by `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatabaseUrl::Sqlite { path } => write!(f, "sqlite://{}", path.display()),
            DatabaseUrl::Postgres(url) => f.write_str(&mask_url_password(url.expose())),
        }
    }
}

/// `postgres://user:pw@host/db` -> `postgres://user:***@host/db`.
pub fn mask_url_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match (authority.rfind('@'), authority.find(':')) {
        (Some(at), Some(colon)) if colon < at => {
            format!(
                "{}{}:***{}",
                &url[..scheme_end + 3],
                &authority[..colon],
                &rest[at..]
            )
        }
        _ => url.to_owned(),
    }
}

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
    #[arg(long, global = true, env = "PASSWORD_MIN_LENGTH", default_value_t = 15)]
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
    /// Password hashes computed at once (each holds 19 MiB); default: CPU cores.
    #[arg(long, global = true, env = "HASH_CONCURRENCY")]
    pub hash_concurrency: Option<usize>,
    /// Database connections per set: PostgreSQL opens up to this many for writes and as many
    /// for hot reads; SQLite readers (2 to 4) for point reads, and one list-page reader per
    /// CPU core up to that.
    #[arg(long, global = true, env = "DB_MAX_CONNECTIONS", default_value_t = 8)]
    pub db_max_connections: u32,
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
    pub hash_concurrency: usize,
    pub db_max_connections: u32,
    pub log_format: LogFormat,
    pub metrics_addr: Option<SocketAddr>,
}

/// A configuration error: one line naming the setting.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

/// The minimum HMAC key length for `alg`: its hash output size (RFC 7518 §3.2).
pub fn min_secret_len(alg: Algorithm) -> usize {
    match alg {
        Algorithm::HS384 => 48,
        Algorithm::HS512 => 64,
        _ => 32,
    }
}

fn read_secret_file(setting: &str, path: &PathBuf) -> Result<Secret, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Secret::new(text.trim_end_matches(['\r', '\n']))),
        Err(e) => err(format!("{setting}: cannot read {}: {e}", path.display())),
    }
}

fn secret_from(
    name: &str,
    value: Option<String>,
    file: Option<PathBuf>,
) -> Result<Option<Secret>, ConfigError> {
    match (value.filter(|v| !v.is_empty()), file) {
        (Some(_), Some(_)) => err(format!("{name} and {name}_FILE are both set; set only one")),
        (Some(v), None) => Ok(Some(Secret::new(v))),
        (None, Some(path)) => read_secret_file(&format!("{name}_FILE"), &path).map(Some),
        (None, None) => Ok(None),
    }
}

fn comma_list(raw: &str) -> impl Iterator<Item = &str> {
    raw.split(',').map(str::trim).filter(|s| !s.is_empty())
}

impl Config {
    /// Validates raw settings.
    pub fn from_settings(s: Settings) -> Result<Self, ConfigError> {
        let database_url = DatabaseUrl::parse(&s.database_url).map_err(ConfigError)?;
        let Ok(bind_addr) = s.bind_addr.parse() else {
            return err("BIND_ADDR: expected HOST:PORT with an IP address, e.g. 127.0.0.1:8000");
        };
        let jwt_algorithm = match s.jwt_algorithm.as_str() {
            "HS256" => Algorithm::HS256,
            "HS384" => Algorithm::HS384,
            "HS512" => Algorithm::HS512,
            _ => return err("JWT_ALGORITHM: only HS256, HS384 and HS512 are supported"),
        };
        let jwt_secret = secret_from("JWT_SECRET_KEY", s.jwt_secret_key, s.jwt_secret_key_file)?;
        match &jwt_secret {
            Some(secret) if secret.expose().len() < min_secret_len(jwt_algorithm) => {
                return err(format!(
                    "JWT_SECRET_KEY: must be at least {} bytes for {:?} (got {}); generate one with: openssl rand -hex 32",
                    min_secret_len(jwt_algorithm),
                    jwt_algorithm,
                    secret.expose().len()
                ));
            }
            _ => {}
        }
        if !(1..=1440).contains(&s.access_token_expire_minutes) {
            return err("ACCESS_TOKEN_EXPIRE_MINUTES: must be between 1 and 1440");
        }
        let Ok(admin_username) = Username::parse(&s.admin_username) else {
            return err("ADMIN_USERNAME: 3-64 characters of A-Z a-z 0-9 _ . -");
        };
        if !(8..=128).contains(&s.password_min_length) {
            return err("PASSWORD_MIN_LENGTH: must be between 8 and 128");
        }
        let admin_password =
            secret_from("ADMIN_PASSWORD", s.admin_password, s.admin_password_file)?;
        let trusted_proxies = comma_list(&s.trusted_proxies)
            .map(|item| {
                item.parse::<IpNet>()
                    .or_else(|_| item.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        ConfigError(format!(
                            "TRUSTED_PROXIES: {item:?} is not an IP address or CIDR"
                        ))
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
                    err(format!(
                        "CORS_ALLOWED_ORIGINS: {origin:?} is not an origin like https://app.example.com (no '*', no 'null', no path)"
                    ))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        if s.login_free_failures == 0 || s.login_free_failures > s.login_max_failures_per_hour {
            return err(
                "LOGIN_FREE_FAILURES: must be at least 1 and at most LOGIN_MAX_FAILURES_PER_HOUR",
            );
        }
        if s.login_ip_free_failures == 0
            || s.login_ip_free_failures > s.login_ip_max_failures_per_hour
        {
            return err(
                "LOGIN_IP_FREE_FAILURES: must be at least 1 and at most LOGIN_IP_MAX_FAILURES_PER_HOUR",
            );
        }
        if s.register_burst == 0 || s.register_per_hour == 0 {
            return err("REGISTER_BURST / REGISTER_PER_HOUR: must be at least 1");
        }
        if s.request_timeout_seconds == 0 {
            return err("REQUEST_TIMEOUT_SECONDS: must be at least 1");
        }
        if s.max_concurrent_requests == 0 {
            return err("MAX_CONCURRENT_REQUESTS: must be at least 1");
        }
        if s.db_max_connections == 0 {
            return err("DB_MAX_CONNECTIONS: must be at least 1");
        }
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let hash_concurrency = s.hash_concurrency.unwrap_or(cores);
        if hash_concurrency == 0 {
            return err("HASH_CONCURRENCY: must be at least 1");
        }
        let metrics_addr = match s.metrics_addr.as_deref().filter(|v| !v.is_empty()) {
            None => None,
            Some(raw) => Some(
                raw.parse()
                    .map_err(|_| ConfigError("METRICS_ADDR: expected HOST:PORT".into()))?,
            ),
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
            redis_url: s.redis_url.filter(|v| !v.is_empty()).map(Secret::new),
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
            hash_concurrency,
            db_max_connections: s.db_max_connections,
            log_format: s.log_format,
            metrics_addr,
        })
    }

    /// The configuration with every default, for `database_url` (tests and tools).
    pub fn defaults_for(database_url: DatabaseUrl) -> Self {
        let settings = <SettingsParser as clap::Parser>::parse_from(["employee-api"]).settings;
        let mut config = Config::from_settings(Settings {
            database_url: "sqlite://unused.db".into(),
            jwt_secret_key: None,
            jwt_secret_key_file: None,
            admin_password: None,
            admin_password_file: None,
            redis_url: None,
            ..settings
        })
        .unwrap_or_else(|e| unreachable!("defaults are valid: {e}"));
        config.database_url = database_url;
        config
    }
}

/// Parses only the settings (used for defaults).
#[derive(clap::Parser)]
struct SettingsParser {
    #[command(flatten)]
    settings: Settings,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_debug_masks_the_password() {
        let url = DatabaseUrl::parse("postgres://app:s3cret@db.internal:5432/emp").unwrap();
        let shown = format!("{url:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("app:***@db.internal"));
    }

    #[test]
    fn secret_debug_is_masked() {
        assert_eq!(format!("{:?}", Secret::new("abc")), "***");
    }

    #[test]
    fn sqlite_urls_need_a_path() {
        assert!(DatabaseUrl::parse("sqlite://data/x.db").is_ok());
        assert!(DatabaseUrl::parse("sqlite::memory:").is_err());
        assert!(DatabaseUrl::parse("mysql://x").is_err());
    }
}
