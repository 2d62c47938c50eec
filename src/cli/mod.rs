//! The command line: `serve` (default) and the operator subcommands. Argument definitions and
//! dispatch live here; each subcommand family has its own file, and the config file its
//! layering ([`config_file`]). Nothing here ends the process: failures return a [`Failure`]
//! for `main` to print.

mod audit;
mod config_file;
mod employees;
mod healthcheck;
mod user;

use std::{io::Write, path::PathBuf};

use clap::{
    Parser, Subcommand,
    builder::{PossibleValuesParser, TypedValueParser},
};

pub use config_file::{Origins, command, load_dotenv, parse_args, parse_args_with};

use crate::{
    config::{Config, ConfigError, Settings},
    domain::employee::OnConflict,
    server::{self, StartupError},
    transfer::ExportFormat,
};

/// Employee Management API server and administration tool.
#[derive(Debug, Parser)]
#[command(
    name = "employee-api",
    version,
    about,
    after_help = "Server settings (flags, environment variables, .env, config file): employee-api serve --help\nExample: employee-api serve --bind-addr 127.0.0.1:8080"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// A TOML file of settings (keys: the environment names in lower case); default:
    /// ./employee-api.toml when it exists. Flags, environment and .env take precedence.
    #[arg(long, global = true, env = "EMPLOYEE_API_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub settings: Settings,
    /// Where each setting came from (filled by [`parse_args`]), for messages.
    #[arg(skip)]
    pub origins: Origins,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (the default).
    #[command(
        after_help = "Every setting is also an environment variable (shown in brackets), a line in .env, or a key of the config file.\nSecrets (JWT_SECRET_KEY, ADMIN_PASSWORD) belong in the environment or a file (_FILE), not on the command line.\nExample: BIND_ADDR=0.0.0.0:8000 employee-api serve"
    )]
    Serve,
    /// Apply database migrations (or show them with --status).
    #[command(after_help = "Example: employee-api migrate --status")]
    Migrate {
        /// List migrations and whether each is applied; change nothing.
        #[arg(long)]
        status: bool,
    },
    /// Exit 0 when the server at BIND_ADDR answers /readyz with 200, else 1.
    #[command(after_help = "Example: BIND_ADDR=127.0.0.1:8000 employee-api healthcheck")]
    Healthcheck,
    /// Print the OpenAPI document.
    #[command(after_help = "Example: employee-api openapi > openapi.json")]
    Openapi,
    /// Print the version.
    Version,
    /// Print the effective configuration, secrets masked, after checking it as `serve` would.
    #[command(
        after_help = "Exit code 2 and one line naming the setting when a value is wrong.\nExample: employee-api config --check --check-connections"
    )]
    Config {
        /// Only check; print "configuration OK" instead of the settings.
        #[arg(long)]
        check: bool,
        /// Also connect to the database and Redis (nothing is created or changed).
        #[arg(long)]
        check_connections: bool,
    },
    /// Manage user accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Bulk import and export of employees.
    #[command(subcommand)]
    Employees(EmployeesCommand),
    /// Check the audit trail.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
}

#[derive(Debug, Subcommand)]
pub enum EmployeesCommand {
    /// Import a CSV file (header emp_id,emp_name,city,country,emp_dob), all rows or none.
    #[command(
        after_help = "While an import runs on SQLite it holds the database's only writer: API writes wait for it (reads go on).\nExample: employee-api employees import staff.csv --dry-run"
    )]
    Import {
        /// The CSV file ("-" for standard input).
        file: PathBuf,
        /// Check every row and report; store nothing.
        #[arg(long)]
        dry_run: bool,
        /// What to do with an emp_id that already exists: error (nothing stored), skip or update.
        #[arg(long, default_value = "error", value_parser = PossibleValuesParser::new(OnConflict::NAMES)
            .map(|name| OnConflict::parse(&name).unwrap_or_default()))]
        on_conflict: OnConflict,
    },
    /// Export employees as CSV or NDJSON to standard output (or --output).
    #[command(after_help = "Example: employee-api employees export --city london -o london.csv")]
    Export {
        /// csv or ndjson.
        #[arg(long, default_value = "csv", value_parser = PossibleValuesParser::new(ExportFormat::NAMES)
            .map(|name| ExportFormat::parse(&name).unwrap_or_default()))]
        format: ExportFormat,
        /// Only employees whose city contains this (caseless, as the API's filter).
        #[arg(long)]
        city: Option<String>,
        /// Only employees whose country contains this (caseless, as the API's filter).
        #[arg(long)]
        country: Option<String>,
        /// emp_id, emp_name, emp_dob, city or country.
        #[arg(long, default_value = "emp_id")]
        sort_by: String,
        /// asc or desc.
        #[arg(long, default_value = "asc")]
        order: String,
        /// Write to this file instead of standard output.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account; the password is read from a prompt or standard input.
    #[command(
        after_help = "Example: echo 'a long passphrase of yours' | employee-api user create alice --admin"
    )]
    Create {
        /// The account's name: 3-64 of A-Z a-z 0-9 _ . - (stored in lower case).
        username: String,
        /// Make the account an administrator.
        #[arg(long)]
        admin: bool,
    },
    /// Replace an account's password (prompt or standard input); its sessions end.
    #[command(after_help = "Example: employee-api user set-password alice")]
    SetPassword {
        /// The account's name.
        username: String,
    },
    /// List accounts.
    #[command(after_help = "Example: employee-api user list")]
    List,
    /// Delete an account with its sessions and API keys; its tokens stop working at once.
    #[command(after_help = "Example: employee-api user delete alice")]
    Delete {
        /// The account's name.
        username: String,
    },
    /// Grant administrator rights.
    #[command(after_help = "Example: employee-api user promote alice")]
    Promote {
        /// The account's name.
        username: String,
    },
    /// Remove administrator rights (not from the last active administrator).
    #[command(after_help = "Example: employee-api user demote alice")]
    Demote {
        /// The account's name.
        username: String,
    },
    /// Disable an account: it cannot log in, its sessions and API keys stop working at once.
    #[command(after_help = "Example: employee-api user disable alice")]
    Disable {
        /// The account's name.
        username: String,
    },
    /// Enable a disabled account.
    #[command(after_help = "Example: employee-api user enable alice")]
    Enable {
        /// The account's name.
        username: String,
    },
    /// List an account's live sessions.
    #[command(after_help = "Example: employee-api user sessions alice")]
    Sessions {
        /// The account's name.
        username: String,
    },
    /// End an account's sessions: all of them, or the one given with --session.
    #[command(after_help = "Example: employee-api user revoke alice --session 5f0c...")]
    Revoke {
        /// The account's name.
        username: String,
        /// The id of one session to end (see `user sessions`).
        #[arg(long)]
        session: Option<uuid::Uuid>,
    },
}

/// What a command ended with instead of success: the message, and the process exit code.
/// (Help and version output are "failures" of code 0 too, printed to standard output; a
/// closed standard output is one of code 0 with no message.)
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

    /// An invalid setting: one line, exit code 2.
    pub fn config(message: impl std::fmt::Display) -> Self {
        Failure {
            message: format!("configuration error: {message}"),
            code: 2,
        }
    }

    /// A configuration error, naming its setting as the user wrote it.
    fn config_at(e: ConfigError, origins: &Origins) -> Self {
        match e.setting {
            Some(setting) => Failure::config(format!("{}: {}", origins.name(setting), e.message)),
            None => Failure::config(e.message),
        }
    }

    /// The reader of standard output went away (`| head`): end quietly, as a pipe expects.
    fn closed_pipe() -> Self {
        Failure {
            message: String::new(),
            code: 0,
        }
    }
}

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Self {
        Failure::config_at(e, &Origins::default())
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

/// Writes one line to standard output; a closed pipe ends the command quietly.
fn out(line: impl std::fmt::Display) -> Result<(), Failure> {
    writeln!(std::io::stdout().lock(), "{line}").map_err(write_failure)
}

/// A failed write to standard output: quiet when the reader went away.
fn write_failure(e: std::io::Error) -> Failure {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        Failure::closed_pipe()
    } else {
        failure(format!(
            "writing the output: {}",
            crate::files::io_reason(&e)
        ))
    }
}

/// One line on standard error for each secret given as a flag, which other users of the
/// machine can read in the process list.
fn warn_secret_flags(origins: &Origins) {
    for (setting, flag) in [
        ("ADMIN_PASSWORD", "--admin-password"),
        ("JWT_SECRET_KEY", "--jwt-secret-key"),
    ] {
        if origins.on_command_line(setting) {
            eprintln!(
                "warning: {flag} is deprecated (the command line is visible to other users): set {setting} or {setting}_FILE instead"
            );
        }
    }
}

/// Seals the audit entries a command recorded, so they are in the chain when it exits (a running
/// server would seal them within a second anyway). A failure is only worth a warning: the
/// entries are committed, and the next sealer takes them.
async fn seal_audit(db: &crate::db::Db) {
    if let Err(e) = db.seal().await {
        tracing::warn!(error = %e, "the audit entries of this command are recorded but not yet sealed");
    }
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> Result<(), Failure> {
    let command = cli.command.unwrap_or(Command::Serve);
    // Commands that need no configuration.
    match &command {
        Command::Openapi => {
            let limits = crate::openapi::Limits {
                max_offset: cli.settings.max_offset,
                password_min_length: cli.settings.password_min_length,
            };
            let json = crate::router::openapi_document_with(limits)
                .to_pretty_json()
                .map_err(|e| failure(e.to_string()))?;
            return out(json);
        }
        Command::Version => return out(format!("employee-api {}", env!("CARGO_PKG_VERSION"))),
        _ => {}
    }
    let origins = cli.origins;
    warn_secret_flags(&origins);
    let config =
        Config::from_settings(cli.settings).map_err(|e| Failure::config_at(e, &origins))?;
    if matches!(command, Command::Serve | Command::Config { .. }) {
        config
            .check_for_serve()
            .map_err(|e| Failure::config_at(e, &origins))?;
    }
    let _log_guard = crate::telemetry::init(config.log_format);
    match command {
        Command::Serve => server::run(config, server::shutdown_signal())
            .await
            .map_err(Failure::from),
        Command::Migrate { status } => migrate(&config, status).await,
        Command::Healthcheck => healthcheck::healthcheck(&config).await,
        Command::Config {
            check,
            check_connections,
        } => {
            server::check_secret_file(&config)?;
            if check_connections {
                for line in server::check_connections(&config).await? {
                    out(line)?;
                }
            }
            if check {
                out("configuration OK")
            } else {
                print_config(&config)
            }
        }
        Command::User(cmd) => user::user(config, cmd).await,
        Command::Employees(cmd) => employees::employees(config, cmd).await,
        Command::Audit(cmd) => audit::audit(config, cmd).await,
        Command::Openapi | Command::Version => Ok(()),
    }
}

async fn migrate(config: &Config, status: bool) -> Result<(), Failure> {
    if status {
        let db = server::connect_database(config).await?;
        let rows = db
            .migration_status()
            .await
            .map_err(|e| failure(e.to_string()))?;
        for (version, description, applied) in rows {
            out(format!(
                "{version:>4}  {:<8} {description}",
                if applied { "applied" } else { "pending" }
            ))?;
        }
        let refolded = db.refold_applied().await.map_err(|e| failure(e.reason()))?;
        out(format!(
            "data  {:<8} {} (refold city and country for full case folding)",
            if refolded { "applied" } else { "pending" },
            crate::domain::employee::FOLD_VERSION
        ))?;
        return Ok(());
    }
    server::open_database(config).await?;
    out(format!("migrations applied to {}", config.database_url))
}

fn print_config(c: &Config) -> Result<(), Failure> {
    let secret =
        |s: &Option<crate::config::Secret>| if s.is_some() { "*** (set)" } else { "(unset)" };
    let rows: Vec<(&str, String)> = vec![
        ("DATABASE_URL", c.database_url.to_string()),
        ("BIND_ADDR", c.bind_addr.to_string()),
        ("JWT_SECRET_KEY", secret(&c.jwt_secret).into()),
        (
            "JWT_ALGORITHM",
            crate::config::algorithm_name(c.jwt_algorithm).into(),
        ),
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
        (
            "MAX_IN_FLIGHT_PER_CLIENT",
            c.max_in_flight_per_client.to_string(),
        ),
        ("IPV6_PREFIX_LENGTH", c.ipv6_prefix_length.to_string()),
        ("MAX_OFFSET", c.max_offset.to_string()),
        (
            "IDEMPOTENCY_TTL_HOURS",
            (c.idempotency_ttl.as_secs() / 3600).to_string(),
        ),
        ("HASH_CONCURRENCY", c.hash_concurrency.to_string()),
        ("DB_MAX_CONNECTIONS", c.db_max_connections.to_string()),
        (
            "SQLITE_MAX_SIZE_MB",
            c.sqlite_max_size.map_or("(unset)".into(), |bytes| {
                (bytes / (1024 * 1024)).to_string()
            }),
        ),
        (
            "LOG_FORMAT",
            match c.log_format {
                crate::config::LogFormat::Pretty => "pretty",
                crate::config::LogFormat::Json => "json",
            }
            .into(),
        ),
        (
            "METRICS_ADDR",
            c.metrics_addr.map_or("(unset)".into(), |a| a.to_string()),
        ),
    ];
    for (name, value) in rows {
        out(format!("{name}={value}"))?;
    }
    Ok(())
}
