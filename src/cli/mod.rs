//! The command line: `serve` (default) and the operator subcommands. Argument definitions and
//! dispatch live here; each subcommand family has its own file, and the config file its
//! layering ([`config_file`]). Nothing here ends the process: failures return a [`Failure`]
//! for `main` to print.

mod config_file;
mod employees;
mod healthcheck;
mod user;

use std::path::PathBuf;

use clap::{
    Parser, Subcommand,
    builder::{PossibleValuesParser, TypedValueParser},
};

pub use config_file::parse_args;

use crate::{
    config::{Config, ConfigError, Settings},
    domain::employee::OnConflict,
    server::{self, StartupError},
    transfer::ExportFormat,
};

/// Employee Management API server and administration tool.
#[derive(Debug, Parser)]
#[command(name = "employee-api", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// A TOML file of settings (keys as the environment names, lower-case); default:
    /// ./employee-api.toml when it exists. Flags, environment and .env take precedence.
    #[arg(long, global = true, env = "EMPLOYEE_API_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub settings: Settings,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (the default).
    Serve,
    /// Apply database migrations (or show them with --status).
    Migrate {
        /// List migrations and whether each is applied; change nothing.
        #[arg(long)]
        status: bool,
    },
    /// Exit 0 when the server at BIND_ADDR answers /readyz with 200, else 1.
    Healthcheck,
    /// Print the OpenAPI document.
    Openapi,
    /// Print the version.
    Version,
    /// Print the effective configuration, secrets masked.
    Config,
    /// Manage user accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Bulk import and export of employees.
    #[command(subcommand)]
    Employees(EmployeesCommand),
}

#[derive(Debug, Subcommand)]
pub enum EmployeesCommand {
    /// Import a CSV file (header emp_id,emp_name,city,country,emp_dob), all rows or none.
    Import {
        /// The CSV file ("-" for standard input).
        file: PathBuf,
        /// Validate and report; store nothing.
        #[arg(long)]
        dry_run: bool,
        /// What to do with an emp_id that already exists.
        #[arg(long, default_value = "error", value_parser = PossibleValuesParser::new(OnConflict::NAMES)
            .map(|name| OnConflict::parse(&name).unwrap_or_default()))]
        on_conflict: OnConflict,
    },
    /// Export employees as CSV or NDJSON to standard output (or --output).
    Export {
        /// csv or ndjson.
        #[arg(long, default_value = "csv", value_parser = PossibleValuesParser::new(ExportFormat::NAMES)
            .map(|name| ExportFormat::parse(&name).unwrap_or_default()))]
        format: ExportFormat,
        /// Case-insensitive substring of the city.
        #[arg(long)]
        city: Option<String>,
        /// Case-insensitive substring of the country.
        #[arg(long)]
        country: Option<String>,
        /// emp_id, emp_name, emp_dob, city or country.
        #[arg(long, default_value = "emp_id")]
        sort_by: String,
        /// asc or desc.
        #[arg(long, default_value = "asc")]
        order: String,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account; the password is read from a prompt or standard input.
    Create {
        username: String,
        /// Make the account an administrator.
        #[arg(long)]
        admin: bool,
    },
    /// Replace an account's password (prompt or standard input); its sessions end.
    SetPassword { username: String },
    /// List accounts.
    List,
    /// Delete an account with its sessions and API keys; its tokens stop working at once.
    Delete { username: String },
    /// Grant administrator rights.
    Promote { username: String },
    /// Remove administrator rights (not from the last active administrator).
    Demote { username: String },
    /// Disable an account: it cannot log in, its sessions and API keys stop working at once.
    Disable { username: String },
    /// Enable a disabled account.
    Enable { username: String },
    /// List an account's live sessions.
    Sessions { username: String },
    /// End an account's sessions: all of them, or the one given with --session.
    Revoke {
        username: String,
        /// The id of one session to end (see `user sessions`).
        #[arg(long)]
        session: Option<uuid::Uuid>,
    },
}

/// What a command ended with instead of success: the message, and the process exit code.
/// (Help and version output are "failures" of code 0 too, printed to standard output.)
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub code: u8,
}

impl Failure {
    /// A usage error, or the help or version text, as clap rendered it.
    fn from_clap(err: clap::Error) -> Self {
        Failure {
            message: err.render().to_string().trim_end().to_owned(),
            code: u8::try_from(err.exit_code()).unwrap_or(2),
        }
    }
}

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Self {
        Failure {
            message: format!("configuration error: {e}"),
            code: 2,
        }
    }
}

impl From<StartupError> for Failure {
    fn from(e: StartupError) -> Self {
        Failure {
            message: format!("error: {e}"),
            code: 1,
        }
    }
}

fn failure(message: impl Into<String>) -> Failure {
    Failure {
        message: format!("error: {}", message.into()),
        code: 1,
    }
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> Result<(), Failure> {
    let command = cli.command.unwrap_or(Command::Serve);
    // Commands that need no configuration.
    match &command {
        Command::Openapi => {
            let json = crate::router::openapi_document()
                .to_pretty_json()
                .map_err(|e| failure(e.to_string()))?;
            println!("{json}");
            return Ok(());
        }
        Command::Version => {
            println!("employee-api {}", env!("CARGO_PKG_VERSION"));
            return Ok(());
        }
        _ => {}
    }
    let config = Config::from_settings(cli.settings)?;
    let _log_guard = crate::telemetry::init(config.log_format);
    match command {
        Command::Serve => server::run(config, server::shutdown_signal())
            .await
            .map_err(Failure::from),
        Command::Migrate { status } => migrate(&config, status).await,
        Command::Healthcheck => healthcheck::healthcheck(&config).await,
        Command::Config => {
            print_config(&config);
            Ok(())
        }
        Command::User(cmd) => user::user(config, cmd).await,
        Command::Employees(cmd) => employees::employees(config, cmd).await,
        Command::Openapi | Command::Version => Ok(()),
    }
}

async fn migrate(config: &Config, status: bool) -> Result<(), Failure> {
    if status {
        let db = crate::db::Db::connect(&config.database_url, 1)
            .await
            .map_err(|e| failure(e.to_string()))?;
        let rows = db
            .migration_status()
            .await
            .map_err(|e| failure(e.to_string()))?;
        for (version, description, applied) in rows {
            println!(
                "{version:>4}  {:<8} {description}",
                if applied { "applied" } else { "pending" }
            );
        }
        return Ok(());
    }
    server::open_database(config).await?;
    println!("migrations applied to {}", config.database_url);
    Ok(())
}

fn print_config(c: &Config) {
    let secret =
        |s: &Option<crate::config::Secret>| if s.is_some() { "*** (set)" } else { "(unset)" };
    let rows: Vec<(&str, String)> = vec![
        ("DATABASE_URL", c.database_url.to_string()),
        ("BIND_ADDR", c.bind_addr.to_string()),
        ("JWT_SECRET_KEY", secret(&c.jwt_secret).into()),
        ("JWT_ALGORITHM", format!("{:?}", c.jwt_algorithm)),
        (
            "ACCESS_TOKEN_EXPIRE_MINUTES",
            (c.token_ttl.as_secs() / 60).to_string(),
        ),
        ("ADMIN_USERNAME", c.admin_username.to_string()),
        ("ADMIN_PASSWORD", secret(&c.admin_password).into()),
        ("PASSWORD_MIN_LENGTH", c.password_min_length.to_string()),
        ("RATE_LIMIT_PER_MINUTE", c.rate_limit_per_minute.to_string()),
        (
            "TRUSTED_PROXIES",
            c.trusted_proxies
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
        ),
        (
            "REDIS_URL",
            c.redis_url.as_ref().map_or("(unset)".into(), |u| {
                crate::config::mask_url_secrets(u.expose())
            }),
        ),
        ("CORS_ALLOWED_ORIGINS", c.cors_allowed_origins.join(",")),
        (
            "LOGIN_FREE_FAILURES",
            c.login_account.free_failures.to_string(),
        ),
        (
            "LOGIN_MAX_FAILURES_PER_HOUR",
            c.login_account.max_failures_per_hour.to_string(),
        ),
        (
            "LOGIN_IP_FREE_FAILURES",
            c.login_ip.free_failures.to_string(),
        ),
        (
            "LOGIN_IP_MAX_FAILURES_PER_HOUR",
            c.login_ip.max_failures_per_hour.to_string(),
        ),
        ("REGISTER_BURST", c.register_burst.to_string()),
        ("REGISTER_PER_HOUR", c.register_per_hour.to_string()),
        (
            "REQUEST_TIMEOUT_SECONDS",
            c.request_timeout.as_secs().to_string(),
        ),
        (
            "MAX_CONCURRENT_REQUESTS",
            c.max_concurrent_requests.to_string(),
        ),
        (
            "MAX_CONNECTIONS",
            c.max_connections
                .map_or("(from the file-descriptor limit)".into(), |n| n.to_string()),
        ),
        (
            "MAX_CONNECTIONS_PER_IP",
            c.max_connections_per_ip.to_string(),
        ),
        ("HASH_CONCURRENCY", c.hash_concurrency.to_string()),
        ("DB_MAX_CONNECTIONS", c.db_max_connections.to_string()),
        ("LOG_FORMAT", format!("{:?}", c.log_format).to_lowercase()),
        (
            "METRICS_ADDR",
            c.metrics_addr.map_or("(unset)".into(), |a| a.to_string()),
        ),
    ];
    for (name, value) in rows {
        println!("{name}={value}");
    }
}
