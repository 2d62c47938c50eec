//! Black-box tests: the built binary, started on a free port, over real HTTP.

use crate::helpers::free_port;
use std::{
    io::Read,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

const BIN: &str = env!("CARGO_BIN_EXE_employee-api");

/// A running server process; killed on drop.
struct Server {
    child: Child,
    base: String,
    /// Everything the process printed, drained continuously (a full pipe would block it).
    output: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    _dir: tempfile::TempDir,
}

/// Copies everything `source` produces into `sink`, on a thread of its own.
fn drain(mut source: impl Read + Send + 'static, sink: std::sync::Arc<std::sync::Mutex<Vec<u8>>>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = source.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts the binary with `env` on a fresh SQLite file and waits for /healthz.
    async fn start(env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut cmd = Command::new(BIN);
        cmd.current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env(
                "DATABASE_URL",
                format!("sqlite://{}/db/employees.db", dir.path().display()),
            )
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("binary starts");
        let output = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        drain(child.stdout.take().unwrap(), output.clone());
        drain(child.stderr.take().unwrap(), output.clone());
        let server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
            output,
            _dir: dir,
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(res) = client.get(format!("{}/healthz", server.base)).send().await
                && res.status() == 200
            {
                return server;
            }
            assert!(Instant::now() < deadline, "server did not become healthy");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the server with SIGTERM (so it flushes its logs) and returns all it printed.
    fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(25);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Give the drain threads a moment to read what is left in the pipes.
        std::thread::sleep(Duration::from_millis(100));
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }
}

const ADMIN_PW: &str = "black-box-root-passphrase";

#[tokio::test]
async fn built_binary_serves_the_api_over_http() {
    let server = Server::start(&[
        ("ADMIN_PASSWORD", ADMIN_PW),
        ("JWT_SECRET_KEY", &"s".repeat(40)),
    ])
    .await;
    let client = reqwest::Client::new();
    let login = client
        .post(format!("{}/auth/token", server.base))
        .form(&[("username", "admin"), ("password", ADMIN_PW)])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let token = login.json::<serde_json::Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let created = client
        .post(format!("{}/employees/", server.base))
        .bearer_auth(&token)
        .json(&serde_json::json!({"emp_id": 1, "emp_name": "Ada", "city": "London", "country": "UK", "emp_dob": "1990-01-01"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let list = client
        .get(format!("{}/employees/", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(list.headers()["x-total-count"], "1");
    assert_eq!(
        list.json::<serde_json::Value>().await.unwrap()[0]["emp_name"],
        "Ada"
    );
}

#[tokio::test]
async fn oversized_body_gets_a_413_answer_over_a_real_connection() {
    let server = Server::start(&[
        ("ADMIN_PASSWORD", ADMIN_PW),
        ("JWT_SECRET_KEY", &"s".repeat(40)),
    ])
    .await;
    let res = reqwest::Client::new()
        .post(format!("{}/auth/register", server.base))
        .header("content-type", "application/json")
        .body(vec![b' '; 2 * 1024 * 1024])
        .send()
        .await
        .expect("the client receives an answer, not a reset");
    assert_eq!(res.status(), 413);
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap()["detail"],
        "Request body too large"
    );
}

#[tokio::test]
async fn oversized_request_head_is_refused_before_routing() {
    let server = Server::start(&[
        ("ADMIN_PASSWORD", ADMIN_PW),
        ("JWT_SECRET_KEY", &"s".repeat(40)),
    ])
    .await;
    let res = reqwest::Client::new()
        .get(format!("{}/healthz", server.base))
        .header("x-padding", "p".repeat(64 * 1024))
        .send()
        .await;
    // hyper answers 431 when the head exceeds its buffer; some clients see the close first.
    match res {
        Ok(res) => assert_eq!(res.status(), 431),
        Err(e) => assert!(e.is_request() || e.is_connect() || e.is_body(), "{e}"),
    }
    // The server is unharmed.
    let ok = reqwest::get(format!("{}/healthz", server.base))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn generated_admin_password_goes_to_a_private_file_never_to_the_log() {
    // No terminal here (the output is piped): the password goes to an owner-only file beside
    // the database, whose path the log names.
    let server = Server::start(&[]).await;
    let file = server._dir.path().join("db/employees.db.admin-password");
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
    let login = reqwest::Client::new()
        .post(format!("{}/auth/token", server.base))
        .form(&[("username", "admin"), ("password", password.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200, "the generated password logs in");
    let output = server.stop();
    assert!(!output.contains(&password), "never in the output");
    assert!(
        output.contains("employees.db.admin-password"),
        "the log names the file"
    );
}

#[tokio::test]
async fn logs_never_contain_passwords_or_tokens() {
    let canary_password = "canary-password-do-not-log-7f3a";
    let server = Server::start(&[
        ("ADMIN_PASSWORD", ADMIN_PW),
        ("JWT_SECRET_KEY", &"s".repeat(40)),
    ])
    .await;
    let client = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", server.base);
    client
        .post(url("/auth/register"))
        .json(&serde_json::json!({"username": "bird", "password": canary_password}))
        .send()
        .await
        .unwrap();
    let token = client
        .post(url("/auth/token"))
        .form(&[("username", "bird"), ("password", canary_password)])
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
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
        .json(&serde_json::json!({"username": "x", "password": canary_password}))
        .send()
        .await
        .unwrap();
    // A username with a newline cannot forge a log line.
    client
        .post(url("/auth/token"))
        .form(&[("username", "evil\nFAKE LOG LINE"), ("password", "x")])
        .send()
        .await
        .unwrap();
    let logs = server.stop();
    assert!(
        logs.contains("authn_login_fail"),
        "security events are logged:\n{logs}"
    );
    assert!(logs.contains("user_created"));
    for secret in [
        canary_password,
        "wrong-canary-guess",
        token.as_str(),
        ADMIN_PW,
        "$argon2id",
    ] {
        assert!(!logs.contains(secret), "logs contain {secret:?}");
    }
    assert!(
        !logs.lines().any(|l| l.starts_with("FAKE LOG LINE")),
        "forged line in:\n{logs}"
    );
}

#[test]
fn invalid_configuration_exits_non_zero_with_one_clear_line() {
    let out = Command::new(BIN)
        .env_clear()
        .env("JWT_SECRET_KEY", "too-short")
        .arg("config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("JWT_SECRET_KEY"), "{stderr}");
    assert!(!stderr.contains("panicked"));
    assert!(!stderr.contains("too-short"), "the secret is not echoed");
}

#[test]
fn openapi_and_version_subcommands_print_without_configuration() {
    let out = Command::new(BIN)
        .env_clear()
        .arg("openapi")
        .output()
        .unwrap();
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let out = Command::new(BIN)
        .env_clear()
        .arg("version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("employee-api "));
}

/// Peak resident memory of a process, from /proc (Linux).
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
}

#[tokio::test]
async fn login_storm_keeps_memory_bounded_and_healthz_answering() {
    // Throttling off for this test: every one of the 200 logins really runs Argon2.
    let relaxed = [
        ("ADMIN_PASSWORD", ADMIN_PW),
        ("JWT_SECRET_KEY", "ssssssssssssssssssssssssssssssssssssssss"),
        ("RATE_LIMIT_PER_MINUTE", "0"),
        ("LOGIN_FREE_FAILURES", "1000"),
        ("LOGIN_MAX_FAILURES_PER_HOUR", "1000"),
        ("LOGIN_IP_FREE_FAILURES", "1000"),
        ("LOGIN_IP_MAX_FAILURES_PER_HOUR", "1000"),
        ("HASH_CONCURRENCY", "2"),
        // 200 logins from one address at once: past the per-client cap on requests in flight.
        ("MAX_IN_FLIGHT_PER_CLIENT", "0"),
    ];
    let server = Server::start(&relaxed).await;
    let pid = server.child.id();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let base = server.base.clone();
    // Warm up once, then take the baseline.
    client
        .post(format!("{base}/auth/token"))
        .form(&[("username", "admin"), ("password", ADMIN_PW)])
        .send()
        .await
        .unwrap();
    let baseline = peak_rss_kib(pid).unwrap_or(0);

    let mut storm = tokio::task::JoinSet::new();
    for i in 0..200 {
        let (client, base) = (client.clone(), base.clone());
        storm.spawn(async move {
            let password = if i % 2 == 0 {
                ADMIN_PW.to_owned()
            } else {
                format!("wrong-{i}")
            };
            client
                .post(format!("{base}/auth/token"))
                .form(&[("username", "admin"), ("password", password.as_str())])
                .send()
                .await
                .map(|r| {
                    (
                        r.status().as_u16(),
                        r.headers().get("retry-after").is_some(),
                    )
                })
        });
    }
    let mut health = Vec::new();
    let mut statuses = Vec::new();
    while !storm.is_empty() && health.len() < 2000 {
        let started = Instant::now();
        let res = client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .expect("healthz answers during the storm");
        assert_eq!(res.status(), 200);
        health.push(started.elapsed());
        while let Some(done) = storm.try_join_next() {
            statuses.push(done.unwrap().expect("login answered"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    while let Some(done) = storm.join_next().await {
        statuses.push(done.unwrap().expect("login answered"));
    }
    let peak = peak_rss_kib(pid).unwrap_or(0);
    let unexpected: Vec<_> = statuses
        .iter()
        .filter(|(s, _)| *s != 200 && *s != 401)
        .collect();
    if !unexpected.is_empty() {
        let log = server.stop();
        let tail: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .take(20)
            .collect();
        panic!(
            "{} logins got {:?}; server warnings:\n{}",
            unexpected.len(),
            unexpected[0],
            tail.join("\n")
        );
    }
    health.sort();
    let p = |q: f64| health[((health.len() - 1) as f64 * q) as usize];
    eprintln!(
        "login storm: 200 logins; peak RSS {} MiB (baseline {} MiB); /healthz n={} p50={:?} p99={:?} max={:?}",
        peak / 1024,
        baseline / 1024,
        health.len(),
        p(0.5),
        p(0.99),
        health.last().unwrap()
    );
    // 200 unbounded Argon2 hashes would need 200 x 19 MiB; the pool of 2 needs ~38 MiB.
    assert!(
        peak.saturating_sub(baseline) < 100 * 1024,
        "memory grew by {} MiB during the storm",
        (peak - baseline) / 1024
    );
}
