//! The command line: `serve` (default) and the operator subcommands.

use std::{
    io::{IsTerminal, Write},
    path::PathBuf,
    time::{Duration, Instant},
};

use clap::{Parser, Subcommand};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{
    auth::password::PasswordHasher,
    config::{Config, ConfigError, Settings},
    db::employees::OnConflict,
    domain::password::PasswordPolicy,
    domain::username::Username,
    error::LocPart,
    server::{self, StartupError},
    transfer::{
        ExportFormat, ImportFailure, Importer, check_csv_header, csv_record_to_fields, export_page,
    },
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
        #[arg(long, value_enum, default_value = "error")]
        on_conflict: OnConflict,
    },
    /// Export employees as CSV or NDJSON to standard output (or --output).
    Export {
        #[arg(long, value_enum, default_value = "csv")]
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

/// Parses the command line with the config file's values as defaults, giving the precedence
/// flag > environment > `.env` (already loaded into the environment) > config file > default.
pub fn parse_args(args: Vec<std::ffi::OsString>) -> Result<Cli, Failure> {
    use clap::{CommandFactory, FromArgMatches};
    let mut cmd = Cli::command();
    if let Some(path) = config_file_path(&args) {
        let text = std::fs::read_to_string(&path).map_err(|e| Failure {
            message: format!("configuration error: {}: {e}", path.display()),
            code: 2,
        })?;
        let table: toml::Table = text.parse().map_err(|e| Failure {
            message: format!("configuration error: {}: {e}", path.display()).replace('\n', " "),
            code: 2,
        })?;
        let known: Vec<String> = cmd
            .get_arguments()
            .map(|a| a.get_id().to_string())
            .collect();
        for (key, value) in table {
            let id = key.to_ascii_lowercase();
            if !known.contains(&id) || id == "config" {
                return Err(Failure {
                    message: format!(
                        "configuration error: {}: unknown setting {key:?}",
                        path.display()
                    ),
                    code: 2,
                });
            }
            let text = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Array(items) => items
                    .iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                    .collect::<Vec<_>>()
                    .join(","),
                other => {
                    return Err(Failure {
                        message: format!(
                            "configuration error: {}: {key}: unsupported value {other}",
                            path.display()
                        ),
                        code: 2,
                    });
                }
            };
            cmd = cmd.mut_arg(id, |arg| arg.default_value(text));
        }
    }
    let matches = cmd.try_get_matches_from(args).unwrap_or_else(|e| e.exit());
    Cli::from_arg_matches(&matches).map_err(|e| Failure {
        message: e.to_string(),
        code: 2,
    })
}

/// `--config PATH`, else EMPLOYEE_API_CONFIG, else `./employee-api.toml` when present.
fn config_file_path(args: &[std::ffi::OsString]) -> Option<PathBuf> {
    let mut iter = args.iter().skip(1);
    while let Some(arg) = iter.next() {
        let arg = arg.to_string_lossy();
        if arg == "--config" {
            return iter.next().map(PathBuf::from);
        }
        if let Some(value) = arg.strip_prefix("--config=") {
            return Some(PathBuf::from(value));
        }
    }
    if let Some(path) = std::env::var_os("EMPLOYEE_API_CONFIG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let default = PathBuf::from("employee-api.toml");
    default.exists().then_some(default)
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
    let _log_guard = crate::telemetry::init(config.log_format);
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
        Command::Employees(cmd) => employees(config, cmd).await,
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
    let db = &server::open_database(&config).await?;
    // Only what account management needs: the password rules and the hasher.
    let policy = PasswordPolicy::new(config.password_min_length);
    let hasher = PasswordHasher::new(1).map_err(|e| failure(e.to_string()))?;
    let db_err = |e: sqlx::Error| failure(format!("database: {e}"));
    match cmd {
        UserCommand::Create { username, admin } => {
            let username = parse_username(&username)?;
            let raw = read_password("Password: ")?;
            let password = policy
                .check(&raw, Some(&username))
                .map_err(|e| failure(format!("password: {}", e.msg)))?;
            let hash = hasher
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
            let password = policy
                .check(&raw, Some(&username))
                .map_err(|e| failure(format!("password: {}", e.msg)))?;
            let hash = hasher
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

async fn employees(config: Config, cmd: EmployeesCommand) -> Result<(), Failure> {
    let db = server::open_database(&config).await?;
    match cmd {
        EmployeesCommand::Import {
            file,
            dry_run,
            on_conflict,
        } => import(&db, &file, dry_run, on_conflict).await,
        EmployeesCommand::Export {
            format,
            city,
            country,
            sort_by,
            order,
            output,
        } => {
            let mut pairs = vec![("sort_by".to_owned(), sort_by), ("order".to_owned(), order)];
            pairs.extend(city.map(|c| ("city".to_owned(), c)));
            pairs.extend(country.map(|c| ("country".to_owned(), c)));
            let mut query =
                crate::domain::listing::EmployeeQuery::parse(&pairs).map_err(|errors| {
                    failure(
                        errors
                            .iter()
                            .map(|e| format!("{}: {}", loc_text(&e.loc), e.msg))
                            .collect::<Vec<_>>()
                            .join("; "),
                    )
                })?;
            query.limit = crate::transfer::EXPORT_PAGE;
            let sink: Box<dyn Write> = match &output {
                Some(path) => Box::new(
                    std::fs::File::create(path)
                        .map_err(|e| failure(format!("{}: {e}", path.display())))?,
                ),
                None => Box::new(std::io::stdout().lock()),
            };
            let mut out = std::io::BufWriter::new(sink);
            let io_err = |e: std::io::Error| failure(format!("write: {e}"));
            out.write_all(&format.preamble()).map_err(io_err)?;
            let mut next = Some(query);
            let mut buf = Vec::new();
            let mut total = 0u64;
            while let Some(query) = next {
                let (rows, after) = export_page(&db, &query)
                    .await
                    .map_err(|e| failure(format!("database: {e}")))?;
                buf.clear();
                format.write_rows(&rows, &mut buf);
                out.write_all(&buf).map_err(io_err)?;
                total += rows.len() as u64;
                next = after;
            }
            out.flush().map_err(io_err)?;
            eprintln!("exported {total} employees");
            Ok(())
        }
    }
}

fn loc_text(loc: &[LocPart]) -> String {
    loc.iter()
        .map(|p| match p {
            LocPart::Key(k) => k.clone(),
            LocPart::Index(i) => i.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// Streams a CSV file through the importer, with a progress bar on a terminal and a plain
/// line every 100,000 rows otherwise.
async fn import(
    db: &crate::db::Db,
    file: &PathBuf,
    dry_run: bool,
    mode: OnConflict,
) -> Result<(), Failure> {
    let started = Instant::now();
    let (reader, size): (Box<dyn std::io::Read>, u64) = if file.as_os_str() == "-" {
        (Box::new(std::io::stdin().lock()), 0)
    } else {
        let f =
            std::fs::File::open(file).map_err(|e| failure(format!("{}: {e}", file.display())))?;
        let size = f.metadata().map(|m| m.len()).unwrap_or(0);
        (Box::new(f), size)
    };
    let bar = (std::io::stderr().is_terminal() && size > 0).then(|| {
        let bar = indicatif::ProgressBar::new(size);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {per_sec} eta {eta} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let reader: Box<dyn std::io::Read> = match &bar {
        Some(bar) => Box::new(bar.wrap_read(reader)),
        None => reader,
    };
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(std::io::BufReader::with_capacity(1 << 20, reader));
    let names = csv
        .headers()
        .map_err(|e| failure(format!("CSV header: {e}")))
        .and_then(|h| check_csv_header(h).map_err(failure))?;
    let mut importer = Importer::new(db, mode, dry_run);
    let mut record = csv::StringRecord::new();
    loop {
        match csv.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = record.position().map_or(0, |p| p.line()) as usize;
                importer
                    .push(LocPart::Index(line), csv_record_to_fields(&names, &record))
                    .await
                    .map_err(report_failure)?;
                if bar.is_none() && importer.rows().is_multiple_of(100_000) && importer.rows() > 0 {
                    eprintln!(
                        "{} rows read ({:.0} rows/s)",
                        importer.rows(),
                        importer.rows() as f64 / started.elapsed().as_secs_f64()
                    );
                }
            }
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                return Err(failure(format!(
                    "line {line}: malformed CSV ({e}); nothing was imported"
                )));
            }
        }
    }
    let report = importer.finish().await.map_err(report_failure)?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{} {} rows ({} written, {} skipped{}) in {secs:.1} s ({:.0} rows/s)",
        if report.dry_run {
            "checked"
        } else {
            "imported"
        },
        report.rows,
        report.written,
        report.skipped,
        if report.dry_run {
            "; dry run, nothing stored"
        } else {
            ""
        },
        report.rows as f64 / secs.max(1e-9)
    );
    Ok(())
}

/// Prints every problem of a failed import, one per line, and returns the summary failure.
fn report_failure(f: ImportFailure) -> Failure {
    match f {
        ImportFailure::Invalid { errors, more } => {
            for e in &errors {
                let (line, field) = match e.loc.as_slice() {
                    [_, LocPart::Index(line), LocPart::Key(field)] => (*line, field.as_str()),
                    [_, LocPart::Index(line)] => (*line, ""),
                    _ => (0, ""),
                };
                eprintln!("line {line}: {field}: {}", e.msg);
            }
            failure(format!(
                "{} invalid values{}; nothing was imported",
                errors.len(),
                if more > 0 {
                    format!(" (and {more} more)")
                } else {
                    String::new()
                }
            ))
        }
        ImportFailure::Conflict { locations } => {
            for (loc, id) in locations.iter().take(1000) {
                if let LocPart::Index(line) = loc {
                    eprintln!("line {line}: emp_id {id} already exists (or appears twice)");
                }
            }
            failure(format!(
                "{} rows conflict; nothing was imported (see --on-conflict)",
                locations.len()
            ))
        }
        ImportFailure::Database(e) => failure(format!("database: {e}; nothing was imported")),
    }
}
