//! The command line: `serve` (default) and the operator subcommands.

use std::{io::IsTerminal, time::Duration};

use clap::{Parser, Subcommand};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{
    app::AppState,
    config::{Config, ConfigError, Settings},
    domain::username::Username,
    server::{self, StartupError},
};

/// Employee Management API server and administration tool.
#[derive(Debug, Parser)]
#[command(name = "employee-api", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
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
    /// Replace an account's password (prompt or standard input).
    SetPassword { username: String },
    /// List accounts.
    List,
    /// Delete an account; its tokens stop working at once.
    Delete { username: String },
    /// Grant administrator rights.
    Promote { username: String },
    /// Remove administrator rights.
    Demote { username: String },
}

/// What went wrong in a command: the message, and the process exit code.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub code: u8,
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
            let json = crate::openapi::document()
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
    crate::telemetry::init(config.log_format);
    match command {
        Command::Serve => server::run(config, server::shutdown_signal())
            .await
            .map_err(Failure::from),
        Command::Migrate { status } => migrate(&config, status).await,
        Command::Healthcheck => healthcheck(&config).await,
        Command::Config => {
            print_config(&config);
            Ok(())
        }
        Command::User(cmd) => user(config, cmd).await,
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

/// GET /readyz over plain HTTP/1.1 on the configured address.
async fn healthcheck(config: &Config) -> Result<(), Failure> {
    let mut addr = config.bind_addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            [127, 0, 0, 1].into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let check = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream
            .write_all(
                format!("GET /readyz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    match tokio::time::timeout(Duration::from_secs(5), check).await {
        Ok(Ok(response)) if response.starts_with(b"HTTP/1.1 200") => {
            println!("ready");
            Ok(())
        }
        Ok(Ok(response)) => {
            let line = String::from_utf8_lossy(&response)
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned();
            Err(failure(format!("not ready: {line}")))
        }
        Ok(Err(e)) => Err(failure(format!("cannot reach {addr}: {e}"))),
        Err(_) => Err(failure(format!("no answer from {addr} within 5 s"))),
    }
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
                crate::config::mask_url_password(u.expose())
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

/// Reads a password without echo from the terminal, or one line from standard input.
fn read_password(prompt: &str) -> Result<String, Failure> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(prompt).map_err(|e| failure(e.to_string()))?;
        let again = rpassword::prompt_password("Repeat: ").map_err(|e| failure(e.to_string()))?;
        if first != again {
            return Err(failure("the passwords do not match"));
        }
        Ok(first)
    } else {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| failure(e.to_string()))?;
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    }
}

fn parse_username(raw: &str) -> Result<Username, Failure> {
    Username::parse(raw).map_err(|e| failure(format!("username: {}", e.msg)))
}

async fn user(config: Config, cmd: UserCommand) -> Result<(), Failure> {
    let db = server::open_database(&config).await?;
    let secret = crate::config::Secret::new("x".repeat(64));
    let state = AppState::new(config, db, &secret, "employee-api-cli")
        .map_err(|e| failure(e.to_string()))?;
    let db = &state.db;
    let db_err = |e: sqlx::Error| failure(format!("database: {e}"));
    match cmd {
        UserCommand::Create { username, admin } => {
            let username = parse_username(&username)?;
            let raw = read_password("Password: ")?;
            let password = state
                .policy
                .check(&raw, Some(&username))
                .map_err(|e| failure(format!("password: {}", e.msg)))?;
            let hash = state
                .hasher
                .hash(&password)
                .await
                .map_err(|e| failure(e.to_string()))?;
            let user = db
                .insert_user(&username, &hash, admin)
                .await
                .map_err(|e| match &e {
                    sqlx::Error::Database(d) if d.is_unique_violation() => {
                        failure(format!("user {username:?} already exists"))
                    }
                    _ => db_err(e),
                })?;
            println!(
                "created user {} (id {}, admin: {})",
                user.username, user.id, user.is_admin
            );
        }
        UserCommand::SetPassword { username } => {
            let username = parse_username(&username)?;
            let raw = read_password("New password: ")?;
            let password = state
                .policy
                .check(&raw, Some(&username))
                .map_err(|e| failure(format!("password: {}", e.msg)))?;
            let hash = state
                .hasher
                .hash(&password)
                .await
                .map_err(|e| failure(e.to_string()))?;
            if !db
                .set_password_hash(&username, &hash)
                .await
                .map_err(db_err)?
            {
                return Err(failure(format!("no user {username:?}")));
            }
            println!("password changed for {username}");
        }
        UserCommand::List => {
            let mut offset = 0;
            loop {
                let page = crate::domain::listing::Page {
                    offset,
                    limit: 1000,
                };
                let users = db.list_users(page).await.map_err(db_err)?;
                for u in &users {
                    println!(
                        "{:>6}  {:<64}  {}",
                        u.id,
                        u.username,
                        if u.is_admin { "admin" } else { "" }
                    );
                }
                if users.len() < 1000 {
                    break;
                }
                offset += 1000;
            }
        }
        UserCommand::Delete { username } => {
            let username = parse_username(&username)?;
            if !db.delete_user(&username).await.map_err(db_err)? {
                return Err(failure(format!("no user {username:?}")));
            }
            println!("deleted user {username}");
        }
        UserCommand::Promote { username } => set_admin(db, &username, true).await?,
        UserCommand::Demote { username } => set_admin(db, &username, false).await?,
    }
    Ok(())
}

async fn set_admin(db: &crate::db::Db, username: &str, admin: bool) -> Result<(), Failure> {
    let username = parse_username(username)?;
    if !db
        .set_admin(&username, admin)
        .await
        .map_err(|e| failure(format!("database: {e}")))?
    {
        return Err(failure(format!("no user {username:?}")));
    }
    println!(
        "{username} is {} an administrator",
        if admin { "now" } else { "no longer" }
    );
    Ok(())
}
