//! Black-box tests: the built binary, started on port 0 by `helpers::server::Server`, over
//! real HTTP.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::net::TcpStream;

use crate::helpers::{
    net::{read_response, write_lenient},
    server::{Server, http_client_from, run_cli, stderr, stdout},
};

const ADMIN_PW: &str = "black-box-root-passphrase";
const JWT_SECRET: &str = "ssssssssssssssssssssssssssssssssssssssss";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client")
}

/// Logs in over HTTP (panics unless 200) and returns the token.
async fn login(client: &reqwest::Client, server: &Server, user: &str, password: &str) -> String {
    let res = client
        .post(server.url("/auth/token"))
        .form(&[("username", user), ("password", password)])
        .send()
        .await
        .expect("login answered");
    assert_eq!(res.status(), 200, "login as {user}");
    res.json::<Value>().await.expect("JSON token")["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

#[tokio::test]
async fn built_binary_serves_the_api_over_http() {
    let server =
        Server::start(&[("ADMIN_PASSWORD", ADMIN_PW), ("JWT_SECRET_KEY", JWT_SECRET)]).await;
    let client = client();
    let token = login(&client, &server, "admin", ADMIN_PW).await;
    let created = client
        .post(server.url("/employees/"))
        .bearer_auth(&token)
        .json(&json!({"emp_id": 1, "emp_name": "Ada", "city": "London", "country": "UK", "emp_dob": "1990-01-01"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let list = client
        .get(server.url("/employees/"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(list.headers()["x-total-count"], "1");
    assert_eq!(list.json::<Value>().await.unwrap()[0]["emp_name"], "Ada");
    let stopped = server.stop().await;
    assert_eq!(stopped.status.code(), Some(0), "{}", stopped.output);
}

#[tokio::test]
async fn oversized_body_gets_a_413_answer_over_a_real_connection() {
    let server =
        Server::start(&[("ADMIN_PASSWORD", ADMIN_PW), ("JWT_SECRET_KEY", JWT_SECRET)]).await;
    let res = client()
        .post(server.url("/auth/register"))
        .header("content-type", "application/json")
        .body(vec![b' '; 2 * 1024 * 1024])
        .send()
        .await
        .expect("the client receives an answer, not a reset");
    assert_eq!(res.status(), 413);
    assert_eq!(
        res.json::<Value>().await.unwrap()["detail"],
        "Request body too large"
    );
}

#[tokio::test]
async fn an_oversized_request_head_is_refused_with_431_before_routing() {
    let server =
        Server::start(&[("ADMIN_PASSWORD", ADMIN_PW), ("JWT_SECRET_KEY", JWT_SECRET)]).await;
    // 20 KiB of header, over the 16 KiB head limit; written whole, then the answer is read
    // (what arrived before the server closes counts, even if it then resets).
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    let head = format!(
        "GET /healthz HTTP/1.1\r\nHost: {}\r\nX-Padding: {}\r\n\r\n",
        server.addr,
        "p".repeat(20 * 1024)
    );
    write_lenient(&mut stream, head.as_bytes()).await;
    let res = read_response(&mut stream).await;
    assert_eq!(res.status, 431, "{res:?}");
    // Control: a head under the limit is served, and the server is unharmed.
    let ok = client()
        .get(server.url("/healthz"))
        .header("x-padding", "p".repeat(8 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn generated_admin_password_goes_to_a_private_file_never_to_the_log() {
    // No terminal here (the output is piped): the password goes to an owner-only file beside
    // the database, whose path the log names.
    let server = Server::start(&[]).await;
    let file = server.dir().join("data/employees.db.admin-password");
    let password = std::fs::read_to_string(&file)
        .expect("the password file exists")
        .trim()
        .to_owned();
    assert_eq!(password.len(), 24);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "owner-only");
    }
    login(&client(), &server, "admin", &password).await;
    let output = server.stop().await.output;
    assert!(!output.contains(&password), "never in the output");
    assert!(
        output.contains("employees.db.admin-password"),
        "the log names the file"
    );
}

#[tokio::test]
async fn logs_never_contain_passwords_tokens_or_dates_of_birth() {
    let canary_password = "canary-password-do-not-log-7f3a";
    let canary_dob = "1937-04-23";
    let server =
        Server::start(&[("ADMIN_PASSWORD", ADMIN_PW), ("JWT_SECRET_KEY", JWT_SECRET)]).await;
    let client = client();
    let url = |p: &str| server.url(p);
    client
        .post(url("/auth/register"))
        .json(&json!({"username": "bird", "password": canary_password}))
        .send()
        .await
        .unwrap();
    let token = login(&client, &server, "bird", canary_password).await;
    client
        .post(url("/auth/token"))
        .form(&[("username", "bird"), ("password", "wrong-canary-guess")])
        .send()
        .await
        .unwrap();
    client
        .get(url("/users/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    client
        .post(url("/auth/register"))
        .json(&json!({"username": "x", "password": canary_password}))
        .send()
        .await
        .unwrap();
    // Dates of birth: created, changed to another, and refused in a 422.
    let admin = login(&client, &server, "admin", ADMIN_PW).await;
    let created = client
        .post(url("/employees/"))
        .bearer_auth(&admin)
        .json(&json!({"emp_id": 7, "emp_name": "Canary", "city": "Oslo", "country": "Norway", "emp_dob": canary_dob}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let patched = client
        .patch(url("/employees/7"))
        .bearer_auth(&admin)
        .json(&json!({"emp_dob": "1941-11-02"}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    let refused = client
        .post(url("/employees/"))
        .bearer_auth(&admin)
        .json(&json!({"emp_id": 8, "emp_name": "Late", "city": "Oslo", "country": "Norway", "emp_dob": "2999-12-24"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    // A username with a newline cannot forge a log line.
    client
        .post(url("/auth/token"))
        .form(&[("username", "evil\nFAKE LOG LINE"), ("password", "x")])
        .send()
        .await
        .unwrap();
    let logs = server.stop().await.output;
    assert!(
        logs.contains("authn_login_fail"),
        "security events are logged:\n{logs}"
    );
    assert!(logs.contains("user_created"));
    for secret in [
        canary_password,
        "wrong-canary-guess",
        token.as_str(),
        admin.as_str(),
        ADMIN_PW,
        JWT_SECRET,
        "$argon2id",
        canary_dob,
        "1941-11-02",
        "2999-12-24",
    ] {
        assert!(!logs.contains(secret), "logs contain {secret:?}:\n{logs}");
    }
    assert!(
        !logs
            .lines()
            .any(|l| l.to_lowercase().starts_with("fake log line")),
        "forged line in:\n{logs}"
    );
    // The name is logged (lower-cased, as accounts are), its newline escaped.
    assert!(
        logs.contains(r"evil\nfake log line"),
        "the name is logged, escaped:\n{logs}"
    );
}

/// The JSON log lines of a server's output (start-up text that is not JSON is skipped).
fn json_lines(output: &str) -> Vec<Value> {
    output
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect()
}

#[tokio::test]
async fn security_events_are_logged_with_the_request_id_on_every_line() {
    let server = Server::start(&[
        ("ADMIN_PASSWORD", ADMIN_PW),
        ("JWT_SECRET_KEY", JWT_SECRET),
        ("LOG_FORMAT", "json"),
        // One failed login locks the account for the hour; one registration per address.
        ("LOGIN_FREE_FAILURES", "1"),
        ("LOGIN_MAX_FAILURES_PER_HOUR", "1"),
        ("REGISTER_BURST", "1"),
        ("REGISTER_PER_HOUR", "1"),
        // Two requests per address, then one more every 30 s: each phase below has its own
        // address, and a third request within the phase is refused.
        ("RATE_LIMIT_PER_MINUTE", "2"),
    ])
    .await;
    let from = |last: u8| http_client_from(std::net::IpAddr::from([127, 0, 0, last]));
    let (logins, registrations, alice_address, spender) = (from(11), from(12), from(13), from(14));
    let send = |id: &'static str, req: reqwest::RequestBuilder| async move {
        let res = req
            .header("x-request-id", id)
            .send()
            .await
            .expect("answered");
        assert_eq!(res.headers()["x-request-id"], id);
        let status = res.status().as_u16();
        (status, res.text().await.unwrap_or_default())
    };
    let form = |client: &reqwest::Client, user: &str, password: &str| {
        client
            .post(server.url("/auth/token"))
            .form(&[("username", user), ("password", password)])
    };
    let register = |user: &str| {
        registrations
            .post(server.url("/auth/register"))
            .json(&json!({"username": user, "password": "a perfectly fine passphrase"}))
    };
    // (request id, (status, body), the event it must log)
    let mut expected = vec![
        (
            "ev-1",
            send("ev-1", form(&logins, "admin", "wrong")).await,
            Some("authn_login_fail"),
        ),
        (
            "ev-2",
            send("ev-2", form(&logins, "admin", "wrong again")).await,
            Some("authn_login_lock"),
        ),
        (
            "ev-3",
            send("ev-3", register("alice")).await,
            Some("user_created"),
        ),
        (
            "ev-4",
            send("ev-4", register("bob")).await,
            Some("excess_rate_limit_exceeded"),
        ),
        (
            "ev-5",
            send(
                "ev-5",
                alice_address
                    .post(server.url("/auth/token"))
                    .form(&[("username", "alice")]),
            )
            .await,
            Some("input_validation_fail"),
        ),
    ];
    let alice = send(
        "ev-6",
        form(&alice_address, "alice", "a perfectly fine passphrase"),
    )
    .await;
    let token = serde_json::from_str::<Value>(&alice.1).expect("token JSON")["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned();
    expected.push(("ev-6", alice, None));
    for id in ["ev-7", "ev-8"] {
        expected.push((id, send(id, spender.get(server.url("/"))).await, None));
    }
    expected.push((
        "ev-9",
        send("ev-9", spender.get(server.url("/"))).await,
        Some("excess_rate_limit_exceeded"),
    ));
    expected.push((
        "ev-10",
        send(
            "ev-10",
            spender.get(server.url("/users/")).bearer_auth(&token),
        )
        .await,
        Some("authz_fail"),
    ));
    let statuses: Vec<u16> = expected.iter().map(|(_, (status, _), _)| *status).collect();
    assert_eq!(
        statuses,
        [401, 429, 201, 429, 422, 200, 200, 200, 429, 403],
        "{expected:?}"
    );

    let output = server.stop().await.output;
    let lines = json_lines(&output);
    let request_id = |line: &Value| line["span"]["request_id"].as_str().map(str::to_owned);
    // Start-up and shutdown log from `employee_api::server`; every other line is written while
    // a request is handled, and carries that request's id.
    for line in &lines {
        let target = line["target"].as_str().unwrap_or_default();
        if !target.starts_with("employee_api::server") {
            let id = request_id(line).unwrap_or_default();
            assert!(
                !id.is_empty() && id != "-",
                "a line of a request without its request id: {line}"
            );
        }
    }
    for (id, (status, _), event) in &expected {
        let of_request: Vec<&Value> = lines
            .iter()
            .filter(|l| request_id(l).as_deref() == Some(*id))
            .collect();
        let access: Vec<&&Value> = of_request
            .iter()
            .filter(|l| l["message"] == "request finished")
            .collect();
        assert_eq!(access.len(), 1, "{id}: one access line in {of_request:#?}");
        assert_eq!(access[0]["status"], *status, "{id}");
        if let Some(event) = event {
            assert!(
                of_request.iter().any(|l| l["event"] == *event),
                "{id}: no {event} event among {of_request:#?}"
            );
        }
    }
}

#[test]
fn invalid_configuration_exits_non_zero_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_cli(
        dir.path(),
        &["config"],
        &[("JWT_SECRET_KEY", "too-short")],
        "",
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = stderr(&out);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("JWT_SECRET_KEY"), "{stderr}");
    assert!(!stderr.contains("panicked"));
    assert!(!stderr.contains("too-short"), "the secret is not echoed");
}

#[test]
fn openapi_and_version_subcommands_print_without_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_cli(dir.path(), &["openapi"], &[], "");
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let out = run_cli(dir.path(), &["version"], &[], "");
    assert!(
        stdout(&out).starts_with("employee-api "),
        "{}",
        stdout(&out)
    );
}

#[tokio::test]
async fn login_storm_keeps_memory_bounded_and_healthz_answering() {
    // Throttling off for this test: every one of the 200 logins really runs Argon2.
    let server = Server::start(&[
        ("ADMIN_PASSWORD", ADMIN_PW),
        ("JWT_SECRET_KEY", JWT_SECRET),
        ("RATE_LIMIT_PER_MINUTE", "0"),
        ("LOGIN_FREE_FAILURES", "1000"),
        ("LOGIN_MAX_FAILURES_PER_HOUR", "1000"),
        ("LOGIN_IP_FREE_FAILURES", "1000"),
        ("LOGIN_IP_MAX_FAILURES_PER_HOUR", "1000"),
        ("HASH_CONCURRENCY", "2"),
        // 200 logins from one address at once: past the per-client cap on requests in flight.
        ("MAX_IN_FLIGHT_PER_CLIENT", "0"),
    ])
    .await;
    let logins = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    // /healthz must answer within this, storm or not.
    let health = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    // Warm up once, then take the baseline.
    login(&logins, &server, "admin", ADMIN_PW).await;
    let baseline = server.memory_kib("VmHWM");

    let mut storm = tokio::task::JoinSet::new();
    for i in 0..200 {
        let (client, url) = (logins.clone(), server.url("/auth/token"));
        storm.spawn(async move {
            let password = if i % 2 == 0 {
                ADMIN_PW.to_owned()
            } else {
                format!("wrong-{i}")
            };
            client
                .post(url)
                .form(&[("username", "admin"), ("password", password.as_str())])
                .send()
                .await
                .map(|r| r.status().as_u16())
                .map_err(|e| e.to_string())
        });
    }
    let mut latencies = Vec::new();
    let mut statuses = Vec::new();
    while !storm.is_empty() && latencies.len() < 2000 {
        let started = Instant::now();
        let res = health
            .get(server.url("/healthz"))
            .send()
            .await
            .expect("healthz answers during the storm, within 5 s");
        assert_eq!(res.status(), 200);
        latencies.push(started.elapsed());
        while let Some(done) = storm.try_join_next() {
            statuses.push(done.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    while let Some(done) = storm.join_next().await {
        statuses.push(done.unwrap());
    }
    let peak = server.memory_kib("VmHWM");
    let ok = statuses.iter().filter(|s| **s == Ok(200)).count();
    let refused = statuses.iter().filter(|s| **s == Ok(401)).count();
    if (ok, refused) != (100, 100) {
        let output = server.stop().await.output;
        let warnings: Vec<&str> = output
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .take(20)
            .collect();
        let odd: Vec<_> = statuses
            .iter()
            .filter(|s| **s != Ok(200) && **s != Ok(401))
            .take(5)
            .collect();
        panic!(
            "{ok} logins got 200 and {refused} got 401 (expected 100 and 100); others: {odd:?}; server warnings:\n{}",
            warnings.join("\n")
        );
    }
    latencies.sort();
    let p = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    eprintln!(
        "login storm: 200 logins; peak RSS {} MiB (baseline {} MiB); /healthz n={} p50={:?} p99={:?} max={:?}",
        peak / 1024,
        baseline / 1024,
        latencies.len(),
        p(0.5),
        p(0.99),
        latencies.last().unwrap()
    );
    assert!(
        latencies.len() >= 10,
        "only {} health checks during the storm",
        latencies.len()
    );
    assert!(
        p(0.99) < Duration::from_secs(1),
        "/healthz p99 {:?} during the storm: hashing starves the other requests",
        p(0.99)
    );
    // 200 unbounded Argon2 hashes would need 200 x 19 MiB; the pool of 2 needs ~38 MiB.
    assert!(
        peak.saturating_sub(baseline) < 100 * 1024,
        "memory grew by {} MiB during the storm",
        (peak - baseline) / 1024
    );
}
