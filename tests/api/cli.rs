//! The command line, run as the real binary: subcommands, configuration precedence, metrics,
//! graceful shutdown.

use crate::helpers::free_port;
use std::{
    io::Write,
    path::Path,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

const BIN: &str = env!("CARGO_BIN_EXE_employee-api");

/// Runs the binary in `dir` with a SQLite database there, and `stdin` on its standard input.
fn run(dir: &Path, args: &[&str], env: &[(&str, &str)], stdin: &str) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", format!("sqlite://{}/e.db", dir.display()))
        .env("RUST_LOG", "warn")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn migrate_applies_and_reports_status() {
    let dir = tempfile::tempdir().unwrap();
    let status = run(dir.path(), &["migrate", "--status"], &[], "");
    assert!(status.status.success(), "{}", stderr(&status));
    assert!(stdout(&status).contains("pending"), "{}", stdout(&status));
    assert!(run(dir.path(), &["migrate"], &[], "").status.success());
    let status = run(dir.path(), &["migrate", "--status"], &[], "");
    assert!(
        stdout(&status).contains("applied") && !stdout(&status).contains("pending"),
        "{}",
        stdout(&status)
    );
}

#[test]
fn user_commands_create_list_promote_and_delete_with_password_from_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = run(
        d,
        &["user", "create", "Carol", "--admin"],
        &[],
        "a long enough passphrase\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("created user carol"));
    let out = run(d, &["user", "create", "dave"], &[], "short\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("password"), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("short"),
        "the password is not echoed"
    );
    assert!(
        run(
            d,
            &["user", "create", "dave"],
            &[],
            "another fine passphrase\n"
        )
        .status
        .success()
    );
    let dup = run(
        d,
        &["user", "create", "DAVE"],
        &[],
        "another fine passphrase\n",
    );
    assert!(stderr(&dup).contains("already exists"));
    assert!(
        run(d, &["user", "promote", "dave"], &[], "")
            .status
            .success()
    );
    assert!(
        run(
            d,
            &["user", "set-password", "dave"],
            &[],
            "a third good passphrase\n"
        )
        .status
        .success()
    );
    let list = stdout(&run(d, &["user", "list"], &[], ""));
    assert!(list.contains("carol") && list.contains("dave"), "{list}");
    assert_eq!(list.matches("admin").count(), 2, "{list}");
    assert!(
        run(d, &["user", "delete", "dave"], &[], "")
            .status
            .success()
    );
    assert!(!stdout(&run(d, &["user", "list"], &[], "")).contains("dave"));
    assert_eq!(
        run(d, &["user", "delete", "dave"], &[], "").status.code(),
        Some(1)
    );
}

#[test]
fn employees_import_and_export_round_trip_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/employees.csv");
    let dry = run(d, &["employees", "import", sample, "--dry-run"], &[], "");
    assert!(dry.status.success(), "{}", stderr(&dry));
    assert!(stdout(&dry).contains("checked 5 rows"), "{}", stdout(&dry));
    let export = run(d, &["employees", "export"], &[], "");
    assert_eq!(stdout(&export).lines().count(), 1, "dry run stored nothing");
    assert!(
        run(d, &["employees", "import", sample], &[], "")
            .status
            .success()
    );
    let again = run(d, &["employees", "import", sample], &[], "");
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("line 2: emp_id 1001 already exists"),
        "{}",
        stderr(&again)
    );
    let export = run(d, &["employees", "export", "--format", "csv"], &[], "");
    assert_eq!(
        stdout(&export).replace("\r\n", "\n"),
        std::fs::read_to_string(sample).unwrap()
    );
    let ndjson = run(
        d,
        &["employees", "export", "--format", "ndjson", "--city", "ZÜR"],
        &[],
        "",
    );
    assert_eq!(stdout(&ndjson).lines().count(), 1);
    assert!(stdout(&ndjson).contains("Zoë Müller"));
}

#[test]
fn bad_import_rows_are_reported_by_line_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let file = d.join("bad.csv");
    std::fs::write(&file, "emp_id,emp_name,city,country,emp_dob\n1,A,B,C,1990-01-01\n2,A,B,C,2999-01-01\n0,,B,C,1990-01-01\n").unwrap();
    let out = run(d, &["employees", "import", file.to_str().unwrap()], &[], "");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("line 3: emp_dob: Date of birth cannot be in the future"),
        "{err}"
    );
    assert!(
        err.contains("line 4: emp_id:") && err.contains("line 4: emp_name:"),
        "{err}"
    );
    assert!(err.contains("nothing was imported"));
    assert_eq!(
        stdout(&run(d, &["employees", "export"], &[], ""))
            .lines()
            .count(),
        1
    );
}

#[test]
fn configuration_precedence_is_flag_then_env_then_dotenv_then_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("employee-api.toml"),
        "rate_limit_per_minute = 11\nbind_addr = \"127.0.0.1:9001\"\nlog_format = \"json\"\n",
    )
    .unwrap();
    std::fs::write(
        d.join(".env"),
        "RATE_LIMIT_PER_MINUTE=22\nJWT_SECRET_KEY=dotenv-secret-that-is-long-enough-xx\n",
    )
    .unwrap();
    let get = |out: &Output, key: &str| {
        stdout(out)
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .map(str::to_owned)
            .unwrap_or_default()
    };
    let out = run(d, &["config"], &[], "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        get(&out, "RATE_LIMIT_PER_MINUTE"),
        "22",
        ".env beats the file"
    );
    assert_eq!(
        get(&out, "BIND_ADDR"),
        "127.0.0.1:9001",
        "the file beats the default"
    );
    assert_eq!(get(&out, "LOG_FORMAT"), "json");
    assert_eq!(
        get(&out, "JWT_SECRET_KEY"),
        "*** (set)",
        "secrets are masked"
    );
    assert!(!stdout(&out).contains("dotenv-secret"));
    let out = run(d, &["config"], &[("RATE_LIMIT_PER_MINUTE", "33")], "");
    assert_eq!(
        get(&out, "RATE_LIMIT_PER_MINUTE"),
        "33",
        "the environment beats .env"
    );
    let out = run(
        d,
        &["config", "--rate-limit-per-minute", "44"],
        &[("RATE_LIMIT_PER_MINUTE", "33")],
        "",
    );
    assert_eq!(
        get(&out, "RATE_LIMIT_PER_MINUTE"),
        "44",
        "a flag beats everything"
    );
    std::fs::write(d.join("employee-api.toml"), "no_such_setting = 1\n").unwrap();
    let out = run(d, &["config"], &[], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no_such_setting"));
}

#[test]
fn secrets_can_come_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("jwt"), format!("{}\n", "f".repeat(48))).unwrap();
    let path = d.join("jwt");
    let out = run(
        d,
        &["config"],
        &[
            ("JWT_SECRET_KEY_FILE", path.to_str().unwrap()),
            ("JWT_ALGORITHM", "HS384"),
        ],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(
        d,
        &["config"],
        &[("JWT_SECRET_KEY_FILE", "/nonexistent/secret")],
        "",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with("configuration error: JWT_SECRET_KEY_FILE"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn healthcheck_metrics_and_graceful_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    let metrics_port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let env = [
        ("BIND_ADDR", bind.as_str()),
        ("METRICS_ADDR", metrics_addr.as_str()),
        ("ADMIN_PASSWORD", "cli-test-root-passphrase"),
    ];
    // Not running yet: the health check fails.
    assert_eq!(run(d, &["healthcheck"], &env, "").status.code(), Some(1));

    let mut cmd = Command::new(BIN);
    cmd.current_dir(d)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", format!("sqlite://{}/e.db", d.display()))
        .env("REQUEST_TIMEOUT_SECONDS", "30")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let client = reqwest::Client::new();
    let base = format!("http://{bind}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(run(d, &["healthcheck"], &env, "").status.success());

    // Metrics are on their own listener, not on the API port.
    assert_eq!(
        client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let metrics = client
        .get(format!("http://{metrics_addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "http_requests_total",
        "http_request_duration_seconds",
        "db_pool_connections",
        "build_info",
    ] {
        assert!(metrics.contains(name), "{name} missing from:\n{metrics}");
    }
    assert!(metrics.contains(r#"route="/healthz""#), "{metrics}");

    // A slow request in flight when SIGTERM arrives still completes; the process exits 0.
    let slow = {
        let client = client.clone();
        let url = format!("{base}/auth/register");
        tokio::spawn(async move {
            // A body that arrives slowly keeps the request in flight.
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
            let body = reqwest::Body::wrap_stream(ReceiverStream(rx));
            let sender = tokio::spawn(async move {
                tx.send(Ok(br#"{"username": "late_user", "#.to_vec()))
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(800)).await;
                tx.send(Ok(br#""password": "a late but valid passphrase"}"#.to_vec()))
                    .await
                    .unwrap();
            });
            let res = client
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await;
            sender.await.unwrap();
            res.map(|r| r.status().as_u16())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = slow.await.unwrap().expect("in-flight request answered");
    assert_eq!(status, 201, "the in-flight request finished normally");
    let deadline = Instant::now() + Duration::from_secs(25);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "did not exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(exit.code(), Some(0));
}

/// Adapts a tokio channel to the `Stream` reqwest wants, without extra crates.
struct ReceiverStream(tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>);

impl futures_util::Stream for ReceiverStream {
    type Item = Result<Vec<u8>, std::io::Error>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}
