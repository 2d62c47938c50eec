//! The command line, run as the real binary: subcommands, configuration (precedence, files,
//! ranges), and, with a server started by `helpers::server::Server`, the health check,
//! metrics and graceful shutdown.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::{io::AsyncWriteExt, net::TcpStream};

use crate::helpers::{
    net::{connection_refused, read_response, wait_until_server_has_read},
    server::{Server, config_value, http_client_from, run_cli, stderr, stdout},
};

const ADMIN_PW: &str = "cli-test-root-passphrase";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client")
}

#[test]
fn migrate_applies_and_reports_status() {
    let dir = tempfile::tempdir().unwrap();
    let status = run_cli(dir.path(), &["migrate", "--status"], &[], "");
    assert!(status.status.success(), "{}", stderr(&status));
    assert!(stdout(&status).contains("pending"), "{}", stdout(&status));
    assert!(run_cli(dir.path(), &["migrate"], &[], "").status.success());
    let status = run_cli(dir.path(), &["migrate", "--status"], &[], "");
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
    let out = run_cli(
        d,
        &["user", "create", "Carol", "--admin"],
        &[],
        "a long enough passphrase\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("created user carol"));
    let out = run_cli(d, &["user", "create", "dave"], &[], "short\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("password"), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("short"),
        "the password is not echoed"
    );
    assert!(
        run_cli(
            d,
            &["user", "create", "dave"],
            &[],
            "another fine passphrase\n"
        )
        .status
        .success()
    );
    let dup = run_cli(
        d,
        &["user", "create", "DAVE"],
        &[],
        "another fine passphrase\n",
    );
    assert!(stderr(&dup).contains("already exists"));
    assert!(
        run_cli(d, &["user", "promote", "dave"], &[], "")
            .status
            .success()
    );
    assert!(
        run_cli(
            d,
            &["user", "set-password", "dave"],
            &[],
            "a third good passphrase\n"
        )
        .status
        .success()
    );
    let list = stdout(&run_cli(d, &["user", "list"], &[], ""));
    assert!(list.contains("carol") && list.contains("dave"), "{list}");
    assert_eq!(list.matches("admin").count(), 2, "{list}");
    assert!(
        run_cli(d, &["user", "delete", "dave"], &[], "")
            .status
            .success()
    );
    assert!(!stdout(&run_cli(d, &["user", "list"], &[], "")).contains("dave"));
    assert_eq!(
        run_cli(d, &["user", "delete", "dave"], &[], "")
            .status
            .code(),
        Some(1)
    );
}

#[test]
fn employees_import_and_export_round_trip_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/employees.csv");
    let dry = run_cli(d, &["employees", "import", sample, "--dry-run"], &[], "");
    assert!(dry.status.success(), "{}", stderr(&dry));
    assert!(stdout(&dry).contains("checked 5 rows"), "{}", stdout(&dry));
    let export = run_cli(d, &["employees", "export"], &[], "");
    assert_eq!(stdout(&export).lines().count(), 1, "dry run stored nothing");
    assert!(
        run_cli(d, &["employees", "import", sample], &[], "")
            .status
            .success()
    );
    let again = run_cli(d, &["employees", "import", sample], &[], "");
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("line 2: emp_id 1001 already exists"),
        "{}",
        stderr(&again)
    );
    let export = run_cli(d, &["employees", "export", "--format", "csv"], &[], "");
    assert_eq!(
        stdout(&export).replace("\r\n", "\n"),
        std::fs::read_to_string(sample).unwrap()
    );
    let ndjson = run_cli(
        d,
        &["employees", "export", "--format", "ndjson", "--city", "ZÜR"],
        &[],
        "",
    );
    assert_eq!(stdout(&ndjson).lines().count(), 1);
    assert!(stdout(&ndjson).contains("Zoë Müller"));
}

#[test]
fn employees_import_can_skip_or_update_existing_rows_and_export_to_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/employees.csv");
    let first = d.join("first.csv");
    std::fs::write(
        &first,
        "emp_id,emp_name,city,country,emp_dob\n1001,Old Name,Oslo,Norway,1950-01-01\n",
    )
    .unwrap();
    assert!(
        run_cli(
            d,
            &["employees", "import", first.to_str().unwrap()],
            &[],
            ""
        )
        .status
        .success()
    );
    let skip = run_cli(
        d,
        &["employees", "import", sample, "--on-conflict", "skip"],
        &[],
        "",
    );
    assert!(skip.status.success(), "{}", stderr(&skip));
    assert!(
        stdout(&skip).contains("4 written, 1 skipped"),
        "{}",
        stdout(&skip)
    );
    let exported = d.join("out/export.csv");
    std::fs::create_dir(d.join("out")).unwrap();
    let out = run_cli(
        d,
        &["employees", "export", "-o", exported.to_str().unwrap()],
        &[],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let kept = std::fs::read_to_string(&exported).unwrap();
    assert!(
        kept.contains("1001,Old Name,Oslo"),
        "skip kept the row:\n{kept}"
    );
    assert_eq!(kept.lines().count(), 6, "{kept}");

    let update = run_cli(
        d,
        &["employees", "import", sample, "--on-conflict", "update"],
        &[],
        "",
    );
    assert!(update.status.success(), "{}", stderr(&update));
    let out = run_cli(
        d,
        &[
            "employees",
            "export",
            "--output",
            exported.to_str().unwrap(),
        ],
        &[],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "", "the export went to the file, not stdout");
    assert_eq!(
        std::fs::read_to_string(&exported)
            .unwrap()
            .replace("\r\n", "\n"),
        std::fs::read_to_string(sample).unwrap(),
        "update replaced the row's fields"
    );
}

#[test]
fn bad_import_rows_are_reported_by_line_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let file = d.join("bad.csv");
    std::fs::write(&file, "emp_id,emp_name,city,country,emp_dob\n1,A,B,C,1990-01-01\n2,A,B,C,2999-01-01\n0,,B,C,1990-01-01\n").unwrap();
    let out = run_cli(d, &["employees", "import", file.to_str().unwrap()], &[], "");
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
        stdout(&run_cli(d, &["employees", "export"], &[], ""))
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
    let get = |out: &std::process::Output, key: &str| config_value(out, key).unwrap_or_default();
    let out = run_cli(d, &["config"], &[], "");
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
    let out = run_cli(d, &["config"], &[("RATE_LIMIT_PER_MINUTE", "33")], "");
    assert_eq!(
        get(&out, "RATE_LIMIT_PER_MINUTE"),
        "33",
        "the environment beats .env"
    );
    let out = run_cli(
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
    let out = run_cli(d, &["config"], &[], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no_such_setting"));
}

#[test]
fn a_config_file_can_be_named_with_the_flag_or_employee_api_config() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("employee-api.toml"), "rate_limit_per_minute = 11\n").unwrap();
    std::fs::create_dir(d.join("etc")).unwrap();
    std::fs::write(d.join("etc/flag.toml"), "rate_limit_per_minute = 22\n").unwrap();
    std::fs::write(d.join("etc/env.toml"), "rate_limit_per_minute = 33\n").unwrap();
    let flag = d.join("etc/flag.toml");
    let env = d.join("etc/env.toml");
    let rate = |out: &std::process::Output| {
        assert!(out.status.success(), "{}", stderr(out));
        config_value(out, "RATE_LIMIT_PER_MINUTE").unwrap_or_default()
    };
    assert_eq!(
        rate(&run_cli(d, &["config"], &[], "")),
        "11",
        "the default file in the working directory"
    );
    assert_eq!(
        rate(&run_cli(
            d,
            &["config", "--config", flag.to_str().unwrap()],
            &[],
            ""
        )),
        "22",
        "--config PATH"
    );
    assert_eq!(
        rate(&run_cli(
            d,
            &["config"],
            &[("EMPLOYEE_API_CONFIG", env.to_str().unwrap())],
            ""
        )),
        "33",
        "EMPLOYEE_API_CONFIG"
    );
    assert_eq!(
        rate(&run_cli(
            d,
            &["config", "--config", flag.to_str().unwrap()],
            &[("EMPLOYEE_API_CONFIG", env.to_str().unwrap())],
            ""
        )),
        "22",
        "the flag beats the variable"
    );
    // A named file that is not there is an error, not a silent default.
    let out = run_cli(d, &["config", "--config", "etc/missing.toml"], &[], "");
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stderr(&out).contains("missing.toml"), "{}", stderr(&out));
}

#[test]
fn secrets_can_come_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let jwt = d.join("jwt");
    let admin = d.join("admin");
    std::fs::write(&jwt, format!("{}\n", "f".repeat(48))).unwrap();
    std::fs::write(&admin, "a root passphrase from a file\n").unwrap();
    let out = run_cli(
        d,
        &["config"],
        &[
            ("JWT_SECRET_KEY_FILE", jwt.to_str().unwrap()),
            ("JWT_ALGORITHM", "HS384"),
            ("ADMIN_PASSWORD_FILE", admin.to_str().unwrap()),
        ],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        config_value(&out, "JWT_SECRET_KEY").as_deref(),
        Some("*** (set)")
    );
    assert_eq!(
        config_value(&out, "ADMIN_PASSWORD").as_deref(),
        Some("*** (set)")
    );
    assert!(!stdout(&out).contains("fff"), "{}", stdout(&out));
    // The file is really read: 40 bytes are too few for HS384 (48), and the message names the
    // setting that gave them.
    std::fs::write(&jwt, format!("{}\n", "f".repeat(40))).unwrap();
    let out = run_cli(
        d,
        &["config"],
        &[
            ("JWT_SECRET_KEY_FILE", jwt.to_str().unwrap()),
            ("JWT_ALGORITHM", "HS384"),
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("JWT_SECRET_KEY_FILE: must be at least 48 bytes"),
        "{}",
        stderr(&out)
    );
    let out = run_cli(
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
async fn the_admin_password_can_come_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("admin-password");
    std::fs::write(&file, "a root passphrase from a file\n").unwrap();
    let server = Server::builder()
        .in_dir(dir.path())
        .env("ADMIN_PASSWORD_FILE", file.to_str().unwrap())
        .start()
        .await;
    let client = client();
    let login = |password: &'static str| {
        client
            .post(server.url("/auth/token"))
            .form(&[("username", "admin"), ("password", password)])
            .send()
    };
    assert_eq!(
        login("a root passphrase from a file")
            .await
            .unwrap()
            .status(),
        200,
        "the file's password, without its newline"
    );
    assert_eq!(
        login("a root passphrase from a file\n")
            .await
            .unwrap()
            .status(),
        401
    );
    let output = server.stop().await.output;
    assert!(
        !output.contains("generated password"),
        "a password was generated although the file gave one:\n{output}"
    );
    assert!(
        !output.contains("a root passphrase from a file"),
        "{output}"
    );
}

#[test]
fn access_token_expire_minutes_is_accepted_from_1_to_1440_only() {
    let dir = tempfile::tempdir().unwrap();
    for (minutes, accepted) in [("0", false), ("1", true), ("1440", true), ("1441", false)] {
        let out = run_cli(
            dir.path(),
            &["config"],
            &[("ACCESS_TOKEN_EXPIRE_MINUTES", minutes)],
            "",
        );
        if accepted {
            assert!(out.status.success(), "{minutes}: {}", stderr(&out));
            assert_eq!(
                config_value(&out, "ACCESS_TOKEN_EXPIRE_MINUTES").as_deref(),
                Some(minutes)
            );
        } else {
            assert_eq!(out.status.code(), Some(2), "{minutes}: {}", stdout(&out));
            assert!(
                stderr(&out).contains("ACCESS_TOKEN_EXPIRE_MINUTES"),
                "{minutes}: {}",
                stderr(&out)
            );
        }
    }
}

#[tokio::test]
async fn user_demote_takes_the_admin_rights_away_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = run_cli(
        d,
        &["user", "create", "carol", "--admin"],
        &[],
        "a long enough passphrase\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // A second administrator: the last active one cannot be demoted.
    let out = run_cli(
        d,
        &["user", "create", "dave", "--admin"],
        &[],
        "another long passphrase\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let server = Server::builder()
        .in_dir(d)
        .env("ADMIN_PASSWORD", ADMIN_PW)
        .start()
        .await;
    let client = client();
    let token = client
        .post(server.url("/auth/token"))
        .form(&[
            ("username", "carol"),
            ("password", "a long enough passphrase"),
        ])
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["access_token"]
        .as_str()
        .expect("carol logs in")
        .to_owned();
    let users = || client.get(server.url("/users/")).bearer_auth(&token).send();
    assert_eq!(users().await.unwrap().status(), 200, "carol is an admin");

    let out = run_cli(d, &["user", "demote", "carol"], &[], "");
    assert!(out.status.success(), "{}", stderr(&out));
    // The running server sees it on the next request, with the same token.
    assert_eq!(users().await.unwrap().status(), 403, "carol was demoted");
    let list = stdout(&run_cli(d, &["user", "list"], &[], ""));
    let carol = list
        .lines()
        .find(|l| l.contains("carol"))
        .unwrap_or_else(|| panic!("carol missing from:\n{list}"));
    assert!(!carol.contains("admin"), "{list}");
    let last = run_cli(d, &["user", "demote", "dave"], &[], "");
    assert_eq!(last.status.code(), Some(1), "{}", stderr(&last));
    assert!(
        stderr(&last).contains("last active administrator"),
        "{}",
        stderr(&last)
    );
    assert_eq!(
        run_cli(d, &["user", "demote", "nobody"], &[], "")
            .status
            .code(),
        Some(1)
    );
}

#[tokio::test]
async fn healthcheck_exits_0_while_the_server_is_ready_and_1_once_it_has_stopped() {
    let server = Server::start(&[("ADMIN_PASSWORD", ADMIN_PW)]).await;
    let bind = server.addr.to_string();
    let env = [("BIND_ADDR", bind.as_str())];
    let dir = tempfile::tempdir().unwrap();
    let out = run_cli(dir.path(), &["healthcheck"], &env, "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "ready");
    let stopped = server.stop().await;
    assert_eq!(stopped.status.code(), Some(0), "{}", stopped.output);
    let out = run_cli(dir.path(), &["healthcheck"], &env, "");
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stderr(&out).contains(&bind), "{}", stderr(&out));
}

#[tokio::test]
async fn sigint_stops_the_server_gracefully_too() {
    let server = Server::start(&[("ADMIN_PASSWORD", ADMIN_PW)]).await;
    server.sigint().await;
    let stopped = server.wait_for_exit().await;
    assert_eq!(stopped.status.code(), Some(0), "{}", stopped.output);
    assert!(
        stopped.output.contains("shutdown signal received") && stopped.output.contains("stopped"),
        "{}",
        stopped.output
    );
}

/// The value of the sample `series` (name and labels exactly as printed) in Prometheus text.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test]
async fn metrics_are_served_on_their_own_listener_only() {
    let server = Server::start(&[
        ("ADMIN_PASSWORD", ADMIN_PW),
        ("METRICS_ADDR", "127.0.0.1:0"),
    ])
    .await;
    let client = client();
    let metrics_url = format!("http://{}/metrics", server.metrics_addr());
    assert_eq!(
        client
            .get(server.url("/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        404,
        "not on the API port"
    );
    let metrics = client
        .get(&metrics_url)
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
}

#[tokio::test]
async fn metrics_count_failed_and_throttled_logins_and_rate_limit_rejections() {
    let server = Server::start(&[
        ("ADMIN_PASSWORD", ADMIN_PW),
        ("METRICS_ADDR", "127.0.0.1:0"),
        // One failed login locks the account for the hour; one registration per address; two
        // requests per address, then one every 30 s. Each kind has an address of its own.
        ("LOGIN_FREE_FAILURES", "1"),
        ("LOGIN_MAX_FAILURES_PER_HOUR", "1"),
        ("REGISTER_BURST", "1"),
        ("REGISTER_PER_HOUR", "1"),
        ("RATE_LIMIT_PER_MINUTE", "2"),
    ])
    .await;
    let from = |last: u8| http_client_from(std::net::IpAddr::from([127, 0, 0, last]));
    let (logins, registrations, spender) = (from(21), from(22), from(23));
    let login = || {
        logins
            .post(server.url("/auth/token"))
            .form(&[("username", "admin"), ("password", "not the password")])
            .send()
    };
    let register = |name: &str| {
        registrations
            .post(server.url("/auth/register"))
            .json(&json!({"username": name, "password": "a perfectly fine passphrase"}))
            .send()
    };
    let mut statuses = vec![
        login().await.unwrap().status().as_u16(),
        login().await.unwrap().status().as_u16(),
        register("alice").await.unwrap().status().as_u16(),
        register("bob").await.unwrap().status().as_u16(),
    ];
    for _ in 0..3 {
        statuses.push(
            spender
                .get(server.url("/"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [401, 429, 201, 429, 200, 200, 429]);

    let client = client();
    let metrics = client
        .get(format!("http://{}/metrics", server.metrics_addr()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for (series, expected) in [
        ("auth_login_failures_total", 1.0),
        ("auth_login_throttled_total", 1.0),
        (r#"rate_limit_rejections_total{limit="registration"}"#, 1.0),
        (r#"rate_limit_rejections_total{limit="request"}"#, 1.0),
    ] {
        assert_eq!(
            sample(&metrics, series),
            Some(expected),
            "{series} in:\n{metrics}"
        );
    }
}

#[tokio::test]
async fn sigterm_turns_readyz_503_closes_the_listener_and_lets_in_flight_requests_finish() {
    let server = Server::start(&[("ADMIN_PASSWORD", ADMIN_PW)]).await;
    let addr = server.addr;
    // An upload in flight: the head and half the body sent, the rest held back.
    let body = r#"{"username": "late_user", "password": "a late but valid passphrase"}"#;
    let (first_half, second_half) = body.split_at(body.len() / 2);
    let mut upload = TcpStream::connect(addr).await.unwrap();
    upload
        .write_all(
            format!(
                "POST /auth/register HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{first_half}",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    // A readiness probe whose connection is open and whose request has begun: the request
    // line sent, the rest of the head held back.
    let mut probe = TcpStream::connect(addr).await.unwrap();
    probe.write_all(b"GET /readyz HTTP/1.1\r\n").await.unwrap();
    // Both are the server's before the signal: it has read all they sent.
    wait_until_server_has_read(addr, &upload).await;
    wait_until_server_has_read(addr, &probe).await;

    server.sigterm().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !connection_refused(addr).await {
        assert!(
            Instant::now() < deadline,
            "the listener was still open 10 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The probe, completed during the shutdown: not ready.
    probe
        .write_all(format!("Host: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let ready = read_response(&mut probe).await;
    assert_eq!(ready.status, 503, "{ready:?}");
    assert_eq!(ready.json()["detail"], "Shutting down", "{ready:?}");
    assert!(ready.header("retry-after").is_some(), "{ready:?}");

    // The upload, completed during the shutdown: served in full.
    upload.write_all(second_half.as_bytes()).await.unwrap();
    let created = read_response(&mut upload).await;
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(created.json()["username"], "late_user");

    let stopped = server.wait_for_exit().await;
    assert_eq!(stopped.status.code(), Some(0), "{}", stopped.output);
    assert!(
        stopped.output.contains("shutdown signal received"),
        "{}",
        stopped.output
    );
}

#[tokio::test]
async fn user_disable_enable_sessions_and_revoke_act_on_the_running_server_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = run_cli(
        d,
        &["user", "create", "erin"],
        &[],
        "a long enough passphrase\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let server = Server::builder()
        .in_dir(d)
        .env("ADMIN_PASSWORD", ADMIN_PW)
        .start()
        .await;
    let client = client();
    let login = || async {
        let res = client
            .post(server.url("/auth/token"))
            .form(&[
                ("username", "erin"),
                ("password", "a long enough passphrase"),
            ])
            .send()
            .await
            .unwrap();
        (res.status(), res.json::<Value>().await.unwrap())
    };
    let me = |token: String| {
        let request = client.get(server.url("/users/me")).bearer_auth(token);
        async move { request.send().await.unwrap().status() }
    };
    let (status, first) = login().await;
    assert_eq!(status, 200);
    let first = first["access_token"].as_str().unwrap().to_owned();
    let sid = {
        let payload = first.split('.').nth(1).unwrap();
        let claims: Value = serde_json::from_slice(
            &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
                .unwrap(),
        )
        .unwrap();
        claims["sid"].as_str().unwrap().to_owned()
    };

    let listed = stdout(&run_cli(d, &["user", "sessions", "erin"], &[], ""));
    assert!(listed.contains(&sid), "{listed}");
    assert!(listed.contains("1 live sessions"), "{listed}");

    let out = run_cli(d, &["user", "disable", "erin"], &[], "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        me(first.clone()).await,
        401,
        "disabled: the token fails at once"
    );
    assert_eq!(login().await.0, 401, "disabled: no login");

    let out = run_cli(d, &["user", "enable", "erin"], &[], "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        me(first).await,
        401,
        "the disabling ended that session for good"
    );
    let (status, second) = login().await;
    assert_eq!(status, 200);
    let second = second["access_token"].as_str().unwrap().to_owned();
    assert_eq!(me(second.clone()).await, 200);

    let out = run_cli(d, &["user", "revoke", "erin"], &[], "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("1 sessions of erin ended"),
        "{}",
        stdout(&out)
    );
    assert_eq!(me(second).await, 401, "revoked from the command line");
    assert_eq!(
        run_cli(d, &["user", "disable", "nobody"], &[], "")
            .status
            .code(),
        Some(1)
    );
}
