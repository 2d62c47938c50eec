//! The first hour of a new user (issue 13), driven through the built binary: settings that
//! fail in one line naming the setting as written, a start-up that leaves nothing half-made,
//! database errors in plain words, a CLI that helps, and full Unicode case folding of the
//! filters (with the data migration that refolds stored rows) on both backends.
//!
//! Self-contained on purpose: its helpers are here, not in `helpers.rs`.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_employee-api");
const ADMIN_PW: &str = "first-hour-root-passphrase";
const JWT: &str = "first-hour-secret-0123456789abcdef0123456789";

/// The binary in `dir`, with a clean environment (PATH only), `env` and `stdin`.
fn run_in(dir: &Path, args: &[&str], env: &[(&str, &str)], stdin: &str) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    // A command that should have stopped but serves instead must not hang the suite.
    let pid = child.id();
    let (done, waited) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if waited.recv_timeout(Duration::from_secs(60)).is_err() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    });
    let output = child.wait_with_output().unwrap();
    let _ = done.send(());
    let _ = watchdog.join();
    output
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts exit code `code` and exactly one line on standard error, equal to `line`.
#[track_caller]
fn assert_one_line(out: &Output, code: i32, line: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert_eq!(err.trim_end(), line);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Files and folders under `dir`, for "nothing was created" checks.
fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        found.push(entry.path());
        if entry.path().is_dir() {
            found.extend(entries(&entry.path()));
        }
    }
    found
}

// ---- settings ---------------------------------------------------------------------------

#[test]
fn an_invalid_setting_is_one_line_naming_it_as_written_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Environment: clap's own type errors.
    assert_one_line(
        &run_in(d, &["config"], &[("LOG_FORMAT", "xml")], ""),
        2,
        r#"configuration error: LOG_FORMAT: "xml" is not one of pretty, json"#,
    );
    assert_one_line(
        &run_in(d, &["config"], &[("RATE_LIMIT_PER_MINUTE", "-1")], ""),
        2,
        r#"configuration error: RATE_LIMIT_PER_MINUTE: "-1" is not a whole number from 0 to 4294967295"#,
    );
    assert_one_line(
        &run_in(d, &["config"], &[("REQUIRE_IF_MATCH", "maybe")], ""),
        2,
        r#"configuration error: REQUIRE_IF_MATCH: "maybe" is not true or false"#,
    );
    // The same setting as a flag.
    assert_one_line(
        &run_in(d, &["config", "--log-format", "xml"], &[], ""),
        2,
        r#"configuration error: --log-format: "xml" is not one of pretty, json"#,
    );
    // In .env.
    std::fs::write(d.join(".env"), "LOG_FORMAT=xml\n").unwrap();
    assert_one_line(
        &run_in(d, &["config"], &[], ""),
        2,
        r#"configuration error: LOG_FORMAT (in .env): "xml" is not one of pretty, json"#,
    );
    std::fs::remove_file(d.join(".env")).unwrap();
    // In the config file: a string where a number belongs, and a value only the validation
    // after parsing refuses.
    std::fs::write(
        d.join("employee-api.toml"),
        "rate_limit_per_minute = \"lots\"\n",
    )
    .unwrap();
    assert_one_line(
        &run_in(d, &["config"], &[], ""),
        2,
        r#"configuration error: employee-api.toml: rate_limit_per_minute: "lots" is not a whole number"#,
    );
    std::fs::write(d.join("employee-api.toml"), "bind_addr = \"nope\"\n").unwrap();
    assert_one_line(
        &run_in(d, &["serve"], &[], ""),
        2,
        "configuration error: employee-api.toml: bind_addr: expected HOST:PORT with an IP address, e.g. 127.0.0.1:8000",
    );
    // The environment overrides the file; then the environment is named.
    assert_one_line(
        &run_in(d, &["serve"], &[("BIND_ADDR", "also-bad")], ""),
        2,
        "configuration error: BIND_ADDR: expected HOST:PORT with an IP address, e.g. 127.0.0.1:8000",
    );
    std::fs::remove_file(d.join("employee-api.toml")).unwrap();
    assert!(entries(d).is_empty(), "nothing created: {:?}", entries(d));
}

#[test]
fn config_finds_every_error_serve_would() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bad_redis = [("REDIS_URL", "http://x")];
    let line = "configuration error: REDIS_URL: not a Redis URL (expected redis://[:PASSWORD@]HOST[:PORT][/DB], rediss:// for TLS, or redis+unix:///PATH)";
    for args in [&["config"][..], &["config", "--check"], &["serve"]] {
        assert_one_line(&run_in(d, args, &bad_redis, ""), 2, line);
    }
    // PostgreSQL without a token secret: refused before any connection is tried.
    let pg = [("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none")];
    let line = "configuration error: JWT_SECRET_KEY: required with PostgreSQL (set it, or JWT_SECRET_KEY_FILE; generate one with: openssl rand -hex 32)";
    for args in [&["config"][..], &["config", "--check"], &["serve"]] {
        assert_one_line(&run_in(d, args, &pg, ""), 2, line);
    }
    // An ADMIN_PASSWORD that breaks the password rules.
    assert_one_line(
        &run_in(
            d,
            &["config", "--check"],
            &[("ADMIN_PASSWORD", "my admin password 2024")],
            "",
        ),
        2,
        "configuration error: ADMIN_PASSWORD: Password must not contain the username",
    );
    // A good configuration.
    let ok = run_in(d, &["config", "--check"], &[sqlite_refs(d)], "");
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert_eq!(stdout(&ok), "configuration OK\n");
    assert!(entries(d).is_empty(), "{:?}", entries(d));
}

/// `DATABASE_URL` for a SQLite file in `db/` under `d` (leaked: a test's few bytes).
fn sqlite_refs(d: &Path) -> (&'static str, &'static str) {
    let url = format!("sqlite://{}/db/e.db", d.display());
    ("DATABASE_URL", Box::leak(url.into_boxed_str()))
}

#[test]
fn check_connections_reaches_the_database_and_redis_without_creating_anything() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ok = run_in(
        d,
        &["config", "--check", "--check-connections"],
        &[sqlite_refs(d)],
        "",
    );
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(
        stdout(&ok).contains("db/e.db will be created at start"),
        "{}",
        stdout(&ok)
    );
    assert!(entries(d).is_empty(), "{:?}", entries(d));
    let closed = free_port();
    let url = format!("postgres://postgres@127.0.0.1:{closed}/x");
    assert_one_line(
        &run_in(
            d,
            &["config", "--check-connections"],
            &[("DATABASE_URL", &url), ("JWT_SECRET_KEY", JWT)],
            "",
        ),
        1,
        &format!(
            "error: database ({url}): connection refused by 127.0.0.1:{closed}: is PostgreSQL running there? (check the host and port in DATABASE_URL)"
        ),
    );
    let redis = format!("redis://127.0.0.1:{closed}");
    let out = run_in(
        d,
        &["config", "--check-connections"],
        &[sqlite_refs(d), ("REDIS_URL", &redis)],
        "",
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!("error: REDIS_URL (redis://127.0.0.1:{closed}"))
            && err.ends_with("): connection refused: is Redis running there?\n"),
        "{err}"
    );
}

#[test]
fn secrets_on_the_command_line_still_work_with_a_one_line_warning() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = run_in(
        d,
        &[
            "config",
            "--check",
            "--admin-password",
            "a fine long passphrase here",
            "--jwt-secret-key",
            JWT,
        ],
        &[],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        "warning: --admin-password is deprecated (the command line is visible to other users): set ADMIN_PASSWORD or ADMIN_PASSWORD_FILE instead\n\
         warning: --jwt-secret-key is deprecated (the command line is visible to other users): set JWT_SECRET_KEY or JWT_SECRET_KEY_FILE instead\n"
    );
    let quiet = run_in(
        d,
        &["config", "--check"],
        &[("ADMIN_PASSWORD", "a fine long passphrase here")],
        "",
    );
    assert_eq!(stderr(&quiet), "", "no warning for the environment");
}

// ---- start-up -----------------------------------------------------------------------------

#[test]
fn a_taken_port_stops_start_up_before_anything_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = run_in(
        d,
        &["serve"],
        &[sqlite_refs(d), ("BIND_ADDR", &addr), ("RUST_LOG", "off")],
        "",
    );
    assert_one_line(
        &out,
        1,
        &format!(
            "error: cannot listen on {addr}: address already in use: another process listens on {addr} (stop it, or set BIND_ADDR to a free port)"
        ),
    );
    assert!(
        entries(d).is_empty(),
        "no database, secret or password file: {:?}",
        entries(d)
    );
}

#[test]
fn database_errors_are_one_plain_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let closed = free_port();
    let url = format!("postgres://postgres@127.0.0.1:{closed}/employees");
    let out = run_in(
        d,
        &["migrate"],
        &[("DATABASE_URL", &url), ("JWT_SECRET_KEY", JWT)],
        "",
    );
    assert_one_line(
        &out,
        1,
        &format!(
            "error: database ({url}): connection refused by 127.0.0.1:{closed}: is PostgreSQL running there? (check the host and port in DATABASE_URL)"
        ),
    );
    let Some(base) = std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("skipped the PostgreSQL half: TEST_DATABASE_URL is not set");
        return;
    };
    let missing = with_database(&base, "first_hour_no_such_database");
    let out = run_in(
        d,
        &["serve"],
        &[
            ("DATABASE_URL", &missing),
            ("JWT_SECRET_KEY", JWT),
            ("BIND_ADDR", "127.0.0.1:0"),
            ("RUST_LOG", "off"),
        ],
        "",
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains(r#"database "first_hour_no_such_database" does not exist at"#)
            && err.contains("createdb"),
        "{err}"
    );
    assert!(!err.contains(" line "), "no PostgreSQL source line: {err}");
    assert!(
        !d.join("employee-api.admin-password").exists(),
        "no admin was made"
    );
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let mut parsed = url::Url::parse(url).unwrap();
    parsed.set_path(&format!("/{name}"));
    parsed.to_string()
}

// ---- the command line -----------------------------------------------------------------------

#[test]
fn each_subcommand_help_is_about_itself_and_server_settings_are_in_serve_help() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let help = |args: &[&str]| {
        let out = run_in(d, args, &[], "");
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    let import = help(&["employees", "import", "--help"]);
    assert!(import.lines().count() <= 25, "{import}");
    assert!(!import.contains("--rate-limit-per-minute"), "{import}");
    let options = import.find("--dry-run").unwrap();
    assert!(
        options < import.find("--config").unwrap(),
        "own options first"
    );
    assert!(import.contains("Example: employee-api employees import"));
    let create = help(&["user", "create", "--help"]);
    assert!(
        create.contains("<USERNAME>  The account's name"),
        "{create}"
    );
    assert!(create.contains("Example: "));
    let serve = help(&["serve", "--help"]);
    for flag in ["--database-url", "--rate-limit-per-minute", "--log-format"] {
        assert!(serve.contains(flag), "{flag} in {serve}");
    }
    let top = help(&["--help"]);
    assert!(top.contains("employee-api serve --help"), "{top}");
    assert!(!top.contains("--rate-limit-per-minute"), "{top}");
}

/// Runs `BIN args | true` in a shell: the reader goes away at once.
fn into_closed_pipe(dir: &Path, args: &str, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("bash");
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("BIN", BIN)
        .arg("-c")
        .arg(format!("set -o pipefail; \"$BIN\" {args} | true"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn closed_pipes_end_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sqlite = sqlite_refs(d);
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/employees.csv");
    let imported = run_in(d, &["employees", "import", sample], &[sqlite], "");
    assert!(imported.status.success(), "{}", stderr(&imported));
    for args in [
        "config",
        "openapi",
        "employees export",
        "user list",
        "--help",
    ] {
        let out = into_closed_pipe(d, args, &[sqlite]);
        assert!(
            matches!(out.status.code(), Some(0 | 141)),
            "{args}: {:?} {}",
            out.status,
            stderr(&out)
        );
        let err = stderr(&out);
        assert!(
            !err.contains("error") && !err.contains("panicked"),
            "{args}: {err}"
        );
    }
}

#[test]
fn cli_messages_name_things_plainly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sqlite = sqlite_refs(d);
    assert_one_line(
        &run_in(d, &["user", "promote", "nobody"], &[sqlite], ""),
        1,
        r#"error: no user "nobody""#,
    );
    assert_one_line(
        &run_in(d, &["user", "create", "bob"], &[sqlite], "\n"),
        1,
        "error: no password given (type one at the prompt, or send it as one line on standard input)",
    );
    assert_one_line(
        &run_in(d, &["user", "create", "bob"], &[sqlite], ""),
        1,
        "error: no password given (type one at the prompt, or send it as one line on standard input)",
    );
    let digits = run_in(
        d,
        &["user", "create", "bob"],
        &[sqlite],
        "123456789012345\n",
    );
    assert!(digits.status.success(), "{}", stderr(&digits));
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/employees.csv");
    let dry = run_in(
        d,
        &["employees", "import", sample, "--dry-run"],
        &[sqlite],
        "",
    );
    assert!(dry.status.success(), "{}", stderr(&dry));
    assert!(
        stdout(&dry).starts_with("checked 5 rows: would write 5, skip 0 (dry run, nothing stored)"),
        "{}",
        stdout(&dry)
    );
}

#[test]
fn a_repeated_emp_id_is_reported_at_the_repeat_naming_the_first_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sqlite = sqlite_refs(d);
    let import = |csv: &str| {
        let file = d.join("dup.csv");
        std::fs::write(&file, csv).unwrap();
        run_in(
            d,
            &["employees", "import", file.to_str().unwrap()],
            &[sqlite],
            "",
        )
    };
    // Line 4 repeats line 2's emp_id, in the same batch of rows.
    let out = import(
        "emp_id,emp_name,city,country,emp_dob\n1,Ada,London,UK,1990-01-01\n\
         2,Bob,Paris,France,1990-01-01\n1,Ada again,London,UK,1990-01-01\n",
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "line 4: emp_id 1 appears again (first on line 2)\n\
         error: 1 rows conflict; nothing was imported (see --on-conflict)\n"
    );
    // Line 1504 repeats line 3's, a batch of 1000 rows later.
    let mut csv = String::from("emp_id,emp_name,city,country,emp_dob\n");
    csv.push_str("1,Ada,London,UK,1990-01-01\n2,Bob,Paris,France,1990-01-01\n");
    for id in 10..1510 {
        csv.push_str(&format!("{id},P{id},Oslo,Norway,1990-01-01\n"));
    }
    csv.push_str("2,Bob again,Paris,France,1990-01-01\n");
    let out = import(&csv);
    assert_eq!(
        stderr(&out),
        "line 1504: emp_id 2 appears again (first on line 3)\n\
         error: 1 rows conflict; nothing was imported (see --on-conflict)\n"
    );
    // Against rows already stored: "already exists".
    let first = d.join("first.csv");
    std::fs::write(
        &first,
        "emp_id,emp_name,city,country,emp_dob\n1,Ada,London,UK,1990-01-01\n",
    )
    .unwrap();
    assert!(
        run_in(
            d,
            &["employees", "import", first.to_str().unwrap()],
            &[sqlite],
            ""
        )
        .status
        .success()
    );
    let again = run_in(
        d,
        &["employees", "import", first.to_str().unwrap()],
        &[sqlite],
        "",
    );
    assert!(
        stderr(&again).starts_with("line 2: emp_id 1 already exists\n"),
        "{}",
        stderr(&again)
    );
}

// ---- full Unicode case folding, and the migration of stored rows ----------------------------

/// A server process on a free port; killed on drop.
struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    async fn start(dir: &Path, database_url: &str) -> Server {
        let port = free_port();
        let child = Command::new(BIN)
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", database_url)
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("ADMIN_PASSWORD", ADMIN_PW)
            .env("JWT_SECRET_KEY", JWT)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while reqwest::get(format!("{}/healthz", server.base))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "server did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server
    }

    async fn token(&self) -> String {
        let body: Value = reqwest::Client::new()
            .post(format!("{}/auth/token", self.base))
            .form(&[("username", "admin"), ("password", ADMIN_PW)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// `X-Total-Count` and the cities of `GET /employees/?{query}`.
    async fn list(&self, token: &str, query: &str) -> (u64, Vec<String>) {
        let res = reqwest::Client::new()
            .get(format!("{}/employees/?{query}&limit=1000", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{query}");
        let total = res.headers()["x-total-count"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let rows: Vec<Value> = res.json().await.unwrap();
        let cities = rows
            .iter()
            .map(|r| r["city"].as_str().unwrap().to_owned())
            .collect();
        (total, cities)
    }
}

const PLACES: &str = "emp_id,emp_name,city,country,emp_dob
1,A,Straßburg,France,1990-01-01
2,B,STRASSBURG,France,1990-01-01
3,C,ﬁrenze,Italy,1990-01-01
4,D,Firenze,Italy,1990-01-01
5,E,Großenhain,Germany,1990-01-01
6,F,İstanbul,Türkiye,1990-01-01
7,G,Istanbul,Turkey,1990-01-01
8,H,ıstanbul,TÜRKIYE,1990-01-01
9,I,London,United Kingdom,1990-01-01
";

/// The folding rule before full case folding: NFKC, then lower case.
fn old_fold(text: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    text.nfkc().collect::<String>().to_lowercase()
}

/// Runs `f` with a database connection of either backend.
async fn on_database(url: &str, statements: Vec<(String, Vec<String>)>) {
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        for (sql, binds) in statements {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for b in binds {
                q = q.bind(b);
            }
            q.execute(&pool).await.unwrap();
        }
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        for (sql, binds) in statements {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for b in binds {
                q = q.bind(b);
            }
            q.execute(&pool).await.unwrap();
        }
        pool.close().await;
    }
}

/// (city_folded, country_folded, n) per place, from `employee_places` and counted from
/// `employees`: the two must be equal.
async fn place_counts(url: &str) -> (Vec<(String, String, i64)>, Vec<(String, String, i64)>) {
    let kept =
        "SELECT city_folded, country_folded, CAST(n AS BIGINT) FROM employee_places ORDER BY 1, 2";
    let counted = "SELECT city_folded, country_folded, CAST(count(*) AS BIGINT) FROM employees GROUP BY 1, 2 ORDER BY 1, 2";
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        let a = sqlx::query_as(kept).fetch_all(&pool).await.unwrap();
        let b = sqlx::query_as(counted).fetch_all(&pool).await.unwrap();
        pool.close().await;
        (a, b)
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let a = sqlx::query_as(kept).fetch_all(&pool).await.unwrap();
        let b = sqlx::query_as(counted).fetch_all(&pool).await.unwrap();
        pool.close().await;
        (a, b)
    }
}

/// Imports [`PLACES`], rewinds the stored folds to the old rule (as a database of the previous
/// release holds them), runs `migrate`, and checks what the filters find, with exact
/// `X-Total-Count`s, before and after.
async fn folding_and_its_migration(dir: &Path, url: &str) {
    let env = [("DATABASE_URL", url), ("JWT_SECRET_KEY", JWT)];
    let csv = dir.join("places.csv");
    std::fs::write(&csv, PLACES).unwrap();
    let out = run_in(
        dir,
        &["employees", "import", csv.to_str().unwrap()],
        &env,
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // The previous release's folds, and no record of the data migration.
    let mut rewind = vec![("DELETE FROM data_migrations".to_owned(), vec![])];
    for line in PLACES.lines().skip(1) {
        let cells: Vec<&str> = line.split(',').collect();
        rewind.push((
            "UPDATE employees SET city_folded = $1, country_folded = $2 WHERE emp_id = CAST($3 AS BIGINT)".into(),
            vec![old_fold(cells[2]), old_fold(cells[3]), cells[0].to_owned()],
        ));
    }
    on_database(url, rewind).await;
    {
        // A server of this release on the old folds would first migrate them: so look at
        // them through the old rule's eyes by querying the database directly instead.
        let (kept, counted) = place_counts(url).await;
        assert_eq!(kept, counted, "places exact before the migration");
        assert!(
            kept.iter().any(|(c, _, _)| c == "straßburg"),
            "the rewind worked: {kept:?}"
        );
    }
    let migrated = run_in(dir, &["migrate"], &env, "");
    assert!(migrated.status.success(), "{}", stderr(&migrated));
    let (kept, counted) = place_counts(url).await;
    assert_eq!(kept, counted, "places exact after the migration");
    assert!(kept.iter().all(|(c, _, _)| c != "straßburg"), "{kept:?}");
    let server = Server::start(dir, url).await;
    let token = server.token().await;
    for (query, total) in [
        ("city=STRASSBURG", 2),
        ("city=stra%C3%9Fb", 2), // straßb
        ("city=%C3%9F", 3),      // ß matches ss, also in the middle of a word
        ("city=OSSEN", 1),       // Großenhain
        ("city=%EF%AC%81", 2),   // the ligature ﬁ: ﬁrenze and Firenze
        ("city=fi", 2),
        ("city=istanbul", 1), // only Istanbul: İ folds to i + U+0307, ı stays ı
        ("city=stanbul", 3),
        ("city=%C4%B1", 1), // ı finds only ıstanbul
        ("country=T%C3%9CRKIYE", 2),
        ("city=london&country=KINGDOM", 1),
    ] {
        let (count, cities) = server.list(&token, query).await;
        assert_eq!(count, total, "X-Total-Count of {query}: {cities:?}");
        assert_eq!(cities.len() as u64, total, "rows of {query}: {cities:?}");
    }
    // Recorded: a second run changes nothing.
    let again = run_in(dir, &["migrate"], &env, "");
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(place_counts(url).await.0, kept);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_case_folding_and_the_refold_migration_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/e.db", dir.path().display());
    folding_and_its_migration(dir.path(), &url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_case_folding_and_the_refold_migration_on_postgres() {
    let Some(base) = std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("skipped: TEST_DATABASE_URL is not set");
        return;
    };
    let name = format!("first_hour_fold_{}", std::process::id());
    let admin = sqlx::PgPool::connect(&base).await.unwrap();
    let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
    sqlx::query(sqlx::AssertSqlSafe(drop.clone()))
        .execute(&admin)
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = with_database(&base, &name);
    let outcome = tokio::spawn({
        let (dir, url) = (dir.path().to_owned(), url.clone());
        async move { folding_and_its_migration(&dir, &url).await }
    })
    .await;
    sqlx::query(sqlx::AssertSqlSafe(drop))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
}

/// A stand-in PostgreSQL server on a free port that refuses every connection the way a real
/// one does for `refusal`: answering the TLS request with "no", and, when `error` is given
/// (SQLSTATE, message), the start-up message with that error. Returns its port.
fn refusing_postgres(error: Option<(&'static str, &'static str)>) -> u16 {
    use std::io::Read;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(4) {
            let Ok(mut stream) = stream else { return };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let read_message = |stream: &mut std::net::TcpStream| -> Option<Vec<u8>> {
                let mut len = [0u8; 4];
                stream.read_exact(&mut len).ok()?;
                let mut body = vec![0u8; (u32::from_be_bytes(len) as usize).saturating_sub(4)];
                stream.read_exact(&mut body).ok()?;
                Some(body)
            };
            let Some(first) = read_message(&mut stream) else {
                continue;
            };
            // SSLRequest: the code 80877103. No TLS here.
            if first == 80_877_103u32.to_be_bytes() {
                let _ = stream.write_all(b"N");
                if read_message(&mut stream).is_none() {
                    continue;
                }
            }
            if let Some((code, message)) = error {
                let mut fields = Vec::new();
                for (kind, value) in [
                    (b'S', "FATAL"),
                    (b'V', "FATAL"),
                    (b'C', code),
                    (b'M', message),
                ] {
                    fields.push(kind);
                    fields.extend_from_slice(value.as_bytes());
                    fields.push(0);
                }
                fields.push(0);
                let mut reply = vec![b'E'];
                reply.extend_from_slice(&((fields.len() + 4) as u32).to_be_bytes());
                reply.extend_from_slice(&fields);
                let _ = stream.write_all(&reply);
            }
        }
    });
    port
}

#[test]
fn authentication_and_tls_refusals_are_one_plain_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let check = |url: &str| {
        run_in(
            d,
            &["config", "--check-connections"],
            &[("DATABASE_URL", url), ("JWT_SECRET_KEY", JWT)],
            "",
        )
    };
    let port = refusing_postgres(Some((
        "28P01",
        "password authentication failed for user \"alice\"",
    )));
    let url = format!("postgres://alice:wrong@127.0.0.1:{port}/staff");
    assert_one_line(
        &check(&url),
        1,
        &format!(
            "error: database (postgres://alice:***@127.0.0.1:{port}/staff): password authentication failed for user \"alice\" at 127.0.0.1:{port} (check the user and password in DATABASE_URL)"
        ),
    );
    let port = refusing_postgres(Some((
        "28000",
        "no pg_hba.conf entry for host \"127.0.0.1\", user \"alice\", database \"staff\", no encryption",
    )));
    let url = format!("postgres://alice@127.0.0.1:{port}/staff");
    assert_one_line(
        &check(&url),
        1,
        &format!(
            "error: database ({url}): 127.0.0.1:{port} accepts user \"alice\" only over TLS: add ?sslmode=require to DATABASE_URL"
        ),
    );
    let port = refusing_postgres(None);
    let url = format!("postgres://alice@127.0.0.1:{port}/staff?sslmode=require");
    assert_one_line(
        &check(&url),
        1,
        &format!(
            "error: database ({url}): 127.0.0.1:{port} does not offer TLS, but DATABASE_URL requires it (sslmode)"
        ),
    );
}

#[test]
fn the_import_progress_bar_counts_rows_with_rate_and_eta_within_80_columns() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: script(1) is not installed (util-linux)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut csv = String::from("emp_id,emp_name,city,country,emp_dob\n");
    for id in 1..=60_000 {
        csv.push_str(&format!(
            "{id},Name {id},City {},Country,1990-01-01\n",
            id % 300
        ));
    }
    std::fs::write(d.join("big.csv"), csv).unwrap();
    // A terminal of 80 columns (script(1) gives the command a pty).
    let inner = format!(
        "stty cols 80 rows 24; env -i PATH=\"$PATH\" TERM=xterm DATABASE_URL=sqlite://{}/e.db {BIN} employees import big.csv --dry-run",
        d.display()
    );
    let out = Command::new("script")
        .current_dir(d)
        .args(["-qec", &inner, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&out.stdout);
    // The frames the terminal shows, escape sequences removed.
    // A frame ends at a line break, a carriage return, or an escape sequence that moves the
    // cursor or clears (K, A, G, J); other escape sequences (colours) are dropped.
    let mut frames: Vec<String> = Vec::new();
    let mut visible = String::new();
    let mut chars = screen.chars();
    let mut end_frame = |visible: &mut String| {
        if visible.contains("rows/s") && visible.contains(" eta ") {
            frames.push(visible.trim_end().to_owned());
        }
        visible.clear();
    };
    while let Some(c) = chars.next() {
        match c {
            '\r' | '\n' => end_frame(&mut visible),
            '\u{1b}' => {
                for e in chars.by_ref() {
                    if e.is_ascii_alphabetic() {
                        if matches!(e, 'K' | 'A' | 'G' | 'J') {
                            end_frame(&mut visible);
                        }
                        break;
                    }
                }
            }
            c => visible.push(c),
        }
    }
    end_frame(&mut visible);
    assert!(!frames.is_empty(), "no progress frame in: {screen:?}");
    for frame in &frames {
        assert!(frame.chars().count() <= 80, "{frame:?}");
        assert!(frame.contains("/60,000 rows"), "counts rows: {frame:?}");
    }
    assert!(
        screen.contains("checked 60000 rows: would write 60000"),
        "{screen}"
    );
}

#[cfg(unix)]
#[test]
fn a_secret_file_others_can_read_is_found_by_config_and_stops_serve_before_anything_is_made() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("db")).unwrap();
    let secret = d.join("db/e.db.jwt-secret");
    std::fs::write(&secret, "s".repeat(64)).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let line = format!(
        "error: {0}: other users may read it (mode 644); make it private with `chmod 600 {0}`",
        secret.display()
    );
    assert_one_line(
        &run_in(d, &["config", "--check"], &[sqlite_refs(d)], ""),
        1,
        &line,
    );
    let port = free_port().to_string();
    let bind = format!("127.0.0.1:{port}");
    assert_one_line(
        &run_in(
            d,
            &["serve"],
            &[sqlite_refs(d), ("BIND_ADDR", &bind), ("RUST_LOG", "off")],
            "",
        ),
        1,
        &line,
    );
    assert_eq!(entries(&d.join("db")), vec![secret], "no database was made");
}

#[test]
fn migrate_status_lists_the_data_migration() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let status = |d: &Path| stdout(&run_in(d, &["migrate", "--status"], &[sqlite_refs(d)], ""));
    assert!(
        status(d).contains("data  pending  fold-2-full-case-folding"),
        "{}",
        status(d)
    );
    assert!(
        run_in(d, &["migrate"], &[sqlite_refs(d)], "")
            .status
            .success()
    );
    assert!(
        status(d).contains("data  applied  fold-2-full-case-folding"),
        "{}",
        status(d)
    );
}
