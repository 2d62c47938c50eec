//! Floods against the built binary, over loopback: a greedy client's slow requests, made-up
//! methods and paths, and a spray of client networks. Each test sends what an attacker would
//! and checks that another client is still served and that what the server keeps stays
//! bounded, with the server's own figures (its metrics, its resident memory).
//!
//! The server is the shared black-box fixture (`helpers::server::Server`). Client sockets bind
//! to addresses of 127.0.0.0/8 to act as distinct clients.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{IpAddr, Ipv4Addr, SocketAddr},
    ops::Range,
    time::{Duration, Instant},
};

use futures_util::StreamExt;
use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    task::JoinSet,
};

use employee_api::middleware::BODY_DEADLINE;

use crate::helpers::{
    net::{connect_from, parse_response},
    server::Server,
};

const ADMIN_PW: &str = "flood-test-root-passphrase";
const PASSPHRASE: &str = "a perfectly fine passphrase";

/// The binary with the administrator's password and a secret, and `env`.
async fn start(env: &[(&str, &str)]) -> Server {
    Server::builder()
        .envs(&[
            ("ADMIN_PASSWORD", ADMIN_PW),
            ("JWT_SECRET_KEY", &"s".repeat(40)),
        ])
        .envs(env)
        .start()
        .await
}

fn loopback(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// An HTTP client whose connections come from `from`, one fresh connection per request (so
/// each request also waits for the server to accept), giving up after 5 s.
fn fresh_client_from(from: IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .local_address(from)
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("HTTP client")
}

/// Logs in from `client`; returns the bearer token.
async fn login(server: &Server, client: &reqwest::Client, username: &str, pw: &str) -> String {
    let res = client
        .post(server.url("/auth/token"))
        .form(&[("username", username), ("password", pw)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "login as {username}");
    res.json::<serde_json::Value>().await.unwrap()["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned()
}

/// Registers `username` from `client`, then logs in; returns the bearer token.
async fn new_account(server: &Server, client: &reqwest::Client, username: &str) -> String {
    let res = client
        .post(server.url("/auth/register"))
        .json(&json!({"username": username, "password": PASSPHRASE}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "register {username}");
    login(server, client, username, PASSPHRASE).await
}

// ---------------------------------------------------------------------------------------------
// A greedy client
// ---------------------------------------------------------------------------------------------

/// How one slow request of the greedy client ended.
struct SlowAnswer {
    account: usize,
    status: u16,
    retry_after: Option<String>,
    /// From the request head being sent to the answer's head arriving.
    after: Duration,
    at: Instant,
}

/// `POST /users/me/password` as `token`, its 101-byte body trickled one byte a second, so it
/// would take well over a minute to arrive; returns when the server answers (or an error if
/// it closes without one, or nothing comes within 30 s).
async fn trickled_request(
    from: IpAddr,
    to: SocketAddr,
    account: usize,
    token: String,
) -> Result<SlowAnswer, String> {
    let body = json!({"current_password": PASSPHRASE, "new_password": "another perfectly fine passphrase"})
        .to_string();
    let mut stream = connect_from(from, to)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let head = format!(
        "POST /users/me/password HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .await
        .map_err(|e| format!("send the head: {e}"))?;
    let sent = Instant::now();
    let (mut reader, mut writer) = stream.split();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut trickled = 0;
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let give_up = tokio::time::sleep(Duration::from_secs(30));
    tokio::pin!(give_up);
    loop {
        let head_complete = raw.windows(4).any(|w| w == b"\r\n\r\n");
        if head_complete {
            break;
        }
        tokio::select! {
            _ = tick.tick(), if trickled < body.len() => {
                // A server that has answered may stop reading: its answer is read below.
                let _ = writer.write_all(&body.as_bytes()[trickled..=trickled]).await;
                trickled += 1;
            }
            read = reader.read(&mut buf) => match read {
                Ok(0) | Err(_) => {
                    return Err(format!("closed without an answer after {:?}", sent.elapsed()));
                }
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            },
            () = &mut give_up => return Err("no answer within 30 s".to_owned()),
        }
    }
    let answer = parse_response(&raw);
    Ok(SlowAnswer {
        account,
        status: answer.status,
        retry_after: answer.header("retry-after").map(str::to_owned),
        after: sent.elapsed(),
        at: Instant::now(),
    })
}

/// One request of the other client: what it asked, when, how long it took, and its status
/// (or why it failed).
struct Probe {
    path: &'static str,
    started: Instant,
    took: Duration,
    status: Result<u16, String>,
}

/// The median of `probes`' latencies, and the slowest probe.
fn median_and_slowest<'a>(probes: &[&'a Probe]) -> (Duration, &'a Probe) {
    let mut took: Vec<Duration> = probes.iter().map(|p| p.took).collect();
    took.sort();
    let slowest = probes.iter().max_by_key(|p| p.took).expect("probes");
    (took[took.len() / 2], slowest)
}

/// Issue 10: "one client with 5 accounts and 600 slow requests cannot make another client's
/// `GET /employees/1` or `/healthz` fail or wait more than 1 s."
///
/// The slow requests are bodies trickled a byte a second: the cheapest way for a client to
/// hold a request slot (the global `MAX_CONCURRENT_REQUESTS`, its own in-flight slot, a
/// connection and a task) for the whole body deadline, at almost no cost to itself. 600 of
/// them would take every one of the 512 global slots; the per-client cap (64 per account)
/// leaves the greedy client 320, and refuses the rest before reading their bodies.
///
/// Only the in-flight cap is tested: the request budget and the per-address connection cap,
/// which would otherwise refuse this client first, are raised out of the way. (With
/// `MAX_IN_FLIGHT_PER_CLIENT=0` the same flood holds all 512 slots and the other client's
/// `GET /employees/1` gets 503 for as long.)
///
/// The 1 s is the issue's bound, not loosened. The slowest answer is the other client's first,
/// queued behind the 600 connections arriving at once: 0.1-0.3 s alone, up to 0.7 s beside
/// the key spray below, for the debug build on two shared cores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_greedy_client_with_five_accounts_and_600_slow_requests_never_delays_another_client() {
    const ACCOUNTS: usize = 5;
    const SLOW_REQUESTS: usize = 600;
    /// `MAX_IN_FLIGHT_PER_CLIENT`'s default.
    const CAP: usize = 64;
    /// How long the other client may wait for any answer (issue 10).
    const PATIENCE: Duration = Duration::from_secs(1);
    // This process holds the flood's sockets.
    let fd_limit = rlimit::increase_nofile_limit(u64::MAX).unwrap();
    assert!(
        fd_limit >= SLOW_REQUESTS as u64 + 500,
        "this test needs RLIMIT_NOFILE of at least {} (hard limit {fd_limit})",
        SLOW_REQUESTS + 500
    );
    let server = start(&[
        ("METRICS_ADDR", "127.0.0.1:0"),
        ("RATE_LIMIT_PER_MINUTE", "1000000"),
        ("MAX_CONNECTIONS_PER_IP", "2000"),
    ])
    .await;
    let (greedy_ip, other_ip) = (loopback(2), loopback(3));
    // Employee 1, created by the administrator from 127.0.0.1.
    let admin_client = fresh_client_from(loopback(1));
    let admin = login(&server, &admin_client, "admin", ADMIN_PW).await;
    let created = admin_client
        .post(server.url("/employees/"))
        .bearer_auth(&admin)
        .json(&json!({"emp_id": 1, "emp_name": "Ada", "city": "London", "country": "UK", "emp_dob": "1990-01-01"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    // The greedy client registers five accounts from its one address; the other client one.
    let greedy_client = fresh_client_from(greedy_ip);
    let mut tokens = Vec::new();
    for n in 1..=ACCOUNTS {
        tokens.push(new_account(&server, &greedy_client, &format!("greedy{n}")).await);
    }
    let other = fresh_client_from(other_ip);
    let other_token = new_account(&server, &other, "bystander").await;

    // 600 slow requests at once, 120 per account.
    let fired = Instant::now();
    let mut greedy = JoinSet::new();
    for i in 0..SLOW_REQUESTS {
        let account = i % ACCOUNTS;
        greedy.spawn(trickled_request(
            greedy_ip,
            server.addr,
            account,
            tokens[account].clone(),
        ));
    }
    // Meanwhile the other client asks, one request after the other, until the flood is over.
    let mut probes = Vec::new();
    let mut answers = Vec::with_capacity(SLOW_REQUESTS);
    while answers.len() < SLOW_REQUESTS {
        for path in ["/healthz", "/employees/1"] {
            let mut req = other.get(server.url(path));
            if path != "/healthz" {
                req = req.bearer_auth(&other_token);
            }
            let started = Instant::now();
            let status = match req.send().await {
                Ok(res) => {
                    let status = res.status().as_u16();
                    res.bytes()
                        .await
                        .map(|_| status)
                        .map_err(|e| format!("body: {e}"))
                }
                Err(e) => Err(e.to_string()),
            };
            probes.push(Probe {
                path,
                started,
                took: started.elapsed(),
                status,
            });
        }
        while let Some(done) = greedy.try_join_next() {
            answers.push(
                done.unwrap()
                    .unwrap_or_else(|e| panic!("a slow request: {e}")),
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let flood_took = fired.elapsed();

    // The greedy client: each account had exactly 64 requests admitted and held until the
    // body deadline; every other request was refused at once with 429 and Retry-After.
    let refused: Vec<&SlowAnswer> = answers.iter().filter(|a| a.status == 429).collect();
    let held: Vec<&SlowAnswer> = answers.iter().filter(|a| a.status == 408).collect();
    let statuses: BTreeMap<u16, usize> = answers.iter().fold(BTreeMap::new(), |mut m, a| {
        *m.entry(a.status).or_default() += 1;
        m
    });
    assert_eq!(
        (refused.len(), held.len()),
        (SLOW_REQUESTS - ACCOUNTS * CAP, ACCOUNTS * CAP),
        "statuses of the slow requests: {statuses:?}"
    );
    for account in 0..ACCOUNTS {
        let admitted = held.iter().filter(|a| a.account == account).count();
        assert_eq!(admitted, CAP, "requests of account {account} held");
    }
    for answer in &refused {
        let retry_after = answer.retry_after.as_deref().unwrap_or_default();
        assert!(
            retry_after.parse::<u64>().is_ok_and(|s| s >= 1),
            "a 429 without a usable Retry-After: {retry_after:?}"
        );
    }
    let slowest_refusal = refused.iter().map(|a| a.after).max().unwrap();
    let first_release = held.iter().map(|a| a.after).min().unwrap();
    assert!(
        first_release >= BODY_DEADLINE - Duration::from_secs(1),
        "a held request ended after only {first_release:?}"
    );
    // The server says the same: 280 refusals by the in-flight cap, none by anything else.
    let metrics = server.scrape_metrics().await;
    let in_flight_refusals = r#"rate_limit_rejections_total{limit="in_flight"} "#;
    assert!(
        metrics.contains(&format!(
            "{in_flight_refusals}{}\n",
            SLOW_REQUESTS - ACCOUNTS * CAP
        )),
        "{metrics}"
    );
    assert!(
        !metrics.contains(r#"rate_limit_rejections_total{limit="request"}"#),
        "{metrics}"
    );

    // The other client: every request answered, none slower than 1 s; and many were asked
    // while the greedy client held all 320 of its slots (after the last refusal, before the
    // first release).
    for probe in &probes {
        assert_eq!(
            probe.status,
            Ok(200),
            "{} {:?} after the flood began",
            probe.path,
            probe.started - fired
        );
        assert!(
            probe.took < PATIENCE,
            "{} took {:?}, {:?} after the flood began",
            probe.path,
            probe.took,
            probe.started - fired
        );
    }
    let all_held_from = refused.iter().map(|a| a.at).max().unwrap();
    let all_held_until = held.iter().map(|a| a.at).min().unwrap();
    let mut figures = Vec::new();
    for path in ["/healthz", "/employees/1"] {
        let of_path: Vec<&Probe> = probes.iter().filter(|p| p.path == path).collect();
        let while_held = of_path
            .iter()
            .filter(|p| p.started >= all_held_from && p.started + p.took <= all_held_until)
            .count();
        assert!(
            while_held >= 20,
            "only {while_held} {path} requests were made while every slot was held"
        );
        let (median, slowest) = median_and_slowest(&of_path);
        figures.push(format!(
            "{path}: {} requests ({while_held} while all 320 slots were held), median {median:?}, \
             max {:?} (sent {:?} after the flood began)",
            of_path.len(),
            slowest.took,
            slowest.started - fired
        ));
    }
    eprintln!(
        "greedy client: {SLOW_REQUESTS} slow requests from {ACCOUNTS} accounts: {} refused 429 \
         (the last {slowest_refusal:?} after being sent), {} held until the body deadline \
         (released from {first_release:?}); flood over in {flood_took:?}; other client: {}",
        refused.len(),
        held.len(),
        figures.join("; ")
    );
}

// ---------------------------------------------------------------------------------------------
// Metric series
// ---------------------------------------------------------------------------------------------

/// One series of a Prometheus scrape: its family and its labels.
type Series = (String, Vec<(String, String)>);

/// The name and labels of one sample line (`name{a="x",b="y"} value`), values unescaped.
fn parse_series(line: &str) -> Option<Series> {
    let Some((name, mut rest)) = line.split_once('{') else {
        return Some((line.split_whitespace().next()?.to_owned(), Vec::new()));
    };
    let mut labels = Vec::new();
    while !rest.starts_with('}') {
        let (key, after) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (_, '\\') => value.push(chars.next()?.1),
                (i, '"') => break i,
                (_, c) => value.push(c),
            }
        };
        labels.push((key.to_owned(), value));
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    Some((name.to_owned(), labels))
}

/// The series of the request metrics (`http_requests_total`, `http_request_duration_seconds`)
/// in `scrape`: a histogram's `_bucket`, `_sum` and `_count` lines (or a summary's quantiles)
/// are one series.
fn request_series(scrape: &str) -> BTreeSet<Series> {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(parse_series)
        .filter_map(|(name, labels)| {
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(&name);
            let family = matches!(
                family,
                "http_requests_total" | "http_request_duration_seconds"
            )
            .then(|| family.to_owned())?;
            let labels = labels
                .into_iter()
                .filter(|(k, _)| k != "le" && k != "quantile")
                .collect();
            Some((family, labels))
        })
        .collect()
}

fn label<'a>(series: &'a Series, key: &str) -> &'a str {
    series
        .1
        .iter()
        .find(|(k, _)| k == key)
        .map_or("", |(_, v)| v.as_str())
}

/// Issue 10: "the method label is one of the standard methods or `other`; the route label is
/// the matched route template or `unmatched`; a test sends 1,000 made-up methods and paths and
/// counts the series."
#[tokio::test]
async fn a_thousand_made_up_methods_and_paths_add_no_metric_series() {
    const REQUESTS: usize = 1_000;
    const STANDARD: [&str; 9] = [
        "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "CONNECT",
    ];
    // The budget is raised so that every request reaches routing: a 429 would be labelled the
    // same way, but would not show how unmatched paths and methods are labelled.
    let server = start(&[
        ("METRICS_ADDR", "127.0.0.1:0"),
        ("RATE_LIMIT_PER_MINUTE", "1000000"),
    ])
    .await;
    let client = fresh_client_from(loopback(4));
    let before = request_series(&server.scrape_metrics().await);

    // Four kinds, in turn: a made-up method on a made-up path; a standard method on a made-up
    // path; a made-up method on a route; a made-up method on a route template's made-up value.
    let made_up: Vec<(String, String)> = (0..REQUESTS)
        .map(|i| {
            let random = uuid::Uuid::new_v4().simple().to_string();
            let method = format!("X{}", random[..12].to_ascii_uppercase());
            match i % 4 {
                0 => (method, format!("/x/{random}")),
                1 => ("GET".to_owned(), format!("/x/{random}/{i}")),
                2 => (method, "/employees/".to_owned()),
                _ => (method, format!("/employees/{random}")),
            }
        })
        .collect();
    let send = |(method, path): &(String, String)| {
        let req = client.request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            server.url(path),
        );
        async move { req.send().await.map(|r| r.status().as_u16()) }
    };
    let mut statuses = BTreeMap::<u16, usize>::new();
    let mut halfway = BTreeSet::new();
    for half in made_up.chunks(REQUESTS / 2) {
        let answers: Vec<_> = futures_util::stream::iter(half)
            .map(send)
            .buffer_unordered(8)
            .collect()
            .await;
        for answer in answers {
            *statuses.entry(answer.unwrap()).or_default() += 1;
        }
        if halfway.is_empty() {
            halfway = request_series(&server.scrape_metrics().await);
        }
    }
    let metrics = server.scrape_metrics().await;
    let after = request_series(&metrics);

    assert!(
        statuses.keys().all(|s| *s < 500),
        "answers to made-up requests: {statuses:?}"
    );
    // The second 500 requests, all different from the first, added no series at all.
    assert_eq!(halfway, after, "series added by the second half");
    // At most one series per kind of request and metric, each labelled `other` or `unmatched`
    // where the request was made up.
    let added: Vec<&Series> = after.difference(&before).collect();
    assert!(added.len() <= 2 * 4, "series added: {added:#?}");
    for series in &after {
        let (method, route) = (label(series, "method"), label(series, "route"));
        assert!(
            STANDARD.contains(&method) || method == "other",
            "method label {method:?}"
        );
        assert!(
            route == "unmatched" || !route.starts_with("/x/"),
            "route label {route:?}"
        );
    }
    for series in &added {
        let (method, route) = (label(series, "method"), label(series, "route"));
        assert!(
            method == "other" || route == "unmatched",
            "a made-up request added {series:?}"
        );
    }
    // Nothing made up appears anywhere in the scrape.
    for (method, path) in &made_up {
        let segment = path.rsplit('/').find(|s| s.len() >= 12).unwrap_or("/x/");
        assert!(
            !metrics.contains(method.as_str()) || method == "GET",
            "{method} in the metrics"
        );
        assert!(!metrics.contains(segment), "{segment} in the metrics");
    }
    eprintln!(
        "metric series: {REQUESTS} made-up requests (answers {statuses:?}); request series \
         {} before, {} after 500, {} after 1,000; added: {:?}",
        before.len(),
        halfway.len(),
        after.len(),
        added
            .iter()
            .map(|s| format!(
                "{} {} {} {}",
                s.0,
                label(s, "method"),
                label(s, "route"),
                label(s, "status")
            ))
            .collect::<Vec<_>>()
    );
}

// ---------------------------------------------------------------------------------------------
// Limiter state
// ---------------------------------------------------------------------------------------------

/// The client network of key `k`: the /64 `2001:db8:HI:LO::/64`, so each key is a network of
/// its own in every budget.
fn forwarded_for(k: u32) -> String {
    format!("2001:db8:{:x}:{:x}::1", k >> 16, k & 0xffff)
}

/// Reads `count` pipelined answers off `stream` (with `pending` holding bytes already read);
/// returns their statuses.
async fn read_answers(stream: &mut TcpStream, pending: &mut Vec<u8>, count: usize) -> Vec<u16> {
    let mut statuses = Vec::with_capacity(count);
    let mut buf = vec![0u8; 64 * 1024];
    while statuses.len() < count {
        // Each complete answer at the front of `pending`: head, then Content-Length bytes.
        if let Some(head_end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&pending[..head_end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("an answer without Content-Length: {head}"));
            if pending.len() >= head_end + 4 + length {
                let status = head
                    .split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| panic!("no status in {head}"));
                statuses.push(status);
                pending.drain(..head_end + 4 + length);
                continue;
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buf))
            .await
            .expect("answers within 30 s")
            .expect("read answers");
        assert!(n > 0, "the server closed after {} answers", statuses.len());
        pending.extend_from_slice(&buf[..n]);
    }
    statuses
}

/// `GET /` once for each key in `keys`, through the trusted proxy 127.0.0.1 on one keep-alive
/// connection, each naming its client network in `X-Forwarded-For`; pipelined 100 at a time.
/// Panics unless every answer is 200.
async fn spray(to: SocketAddr, keys: Vec<u32>) {
    let mut stream = TcpStream::connect(to).await.expect("connect");
    let mut pending = Vec::new();
    for batch in keys.chunks(100) {
        let mut requests = String::new();
        for &k in batch {
            requests.push_str(&format!(
                "GET / HTTP/1.1\r\nHost: test\r\nX-Forwarded-For: {}\r\n\r\n",
                forwarded_for(k)
            ));
        }
        stream.write_all(requests.as_bytes()).await.expect("send");
        let statuses = read_answers(&mut stream, &mut pending, batch.len()).await;
        assert!(statuses.iter().all(|s| *s == 200), "statuses: {statuses:?}");
    }
}

/// The latency of `GET /` for each key in `keys`, one request at a time on one keep-alive
/// connection (each a network the server has not seen: a new entry in the full table).
async fn latencies(to: SocketAddr, keys: Range<u32>) -> Vec<Duration> {
    let mut stream = TcpStream::connect(to).await.expect("connect");
    let mut pending = Vec::new();
    let mut took = Vec::with_capacity(keys.len());
    for k in keys {
        let request = format!(
            "GET / HTTP/1.1\r\nHost: test\r\nX-Forwarded-For: {}\r\n\r\n",
            forwarded_for(k)
        );
        let started = Instant::now();
        stream.write_all(request.as_bytes()).await.expect("send");
        let status = read_answers(&mut stream, &mut pending, 1).await;
        took.push(started.elapsed());
        assert_eq!(status, [200]);
    }
    took.sort();
    took
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

/// Issue 10: "the local limiter and throttle tables have a fixed capacity with eviction ... Test
/// with a million distinct keys: memory stays within a stated bound and p99 of a request does
/// not grow."
///
/// Over HTTP, 130,000 client networks are what a debug build serves in this test's time: the
/// request budget's table (`rate_limit::table::CAPACITY`, 100,000 keys) fills and then evicts
/// 30,000. The million is `a_million_keys_never_hold_more_than_the_capacity`, in process, on
/// the same `BoundedTable`; this test measures what a full table costs the real server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spray_of_130_000_client_networks_keeps_memory_bounded_and_latency_flat() {
    const KEYS: u32 = 130_000;
    const PHASE: u32 = 10_000;
    const CONNECTIONS: u32 = 4;
    const PROBES: u32 = 500;
    /// The stated bound: a full table of 100,000 networks and its index, resident. (Measured
    /// here: about 6.3 MiB at 100,000 keys, then once about 2 MiB more when the evictions'
    /// tombstones make the index double; it stays at that size afterwards.)
    const BOUND_KIB: u64 = 16 * 1024;
    // Every network gets one request: the default budget never refuses. Access lines are off:
    // the log would grow with the spray, not the tables.
    let server = start(&[
        ("TRUSTED_PROXIES", "127.0.0.1/32"),
        ("RUST_LOG", "warn,employee_api::server=info"),
    ])
    .await;
    let to = server.addr;
    let send = async |keys: Range<u32>| {
        let mut senders = JoinSet::new();
        for c in 0..CONNECTIONS {
            let share: Vec<u32> = keys.clone().filter(|k| k % CONNECTIONS == c).collect();
            senders.spawn(spray(to, share));
        }
        while let Some(done) = senders.join_next().await {
            done.unwrap();
        }
    };
    // Keys past the spray's range, for the warm-up and the latency probes.
    let probe_keys = |n: u32| 1_000_000 + n * PROBES..1_000_000 + (n + 1) * PROBES;
    // Warm-up: connections, buffers and tasks of the kind the spray uses exist before the
    // baseline.
    send(KEYS..KEYS + 5_000).await;
    let empty = latencies(to, probe_keys(0)).await;
    let baseline = server.memory_kib("VmRSS");

    let started = Instant::now();
    let mut rss = Vec::new();
    for phase in 0..KEYS / PHASE {
        send(phase * PHASE..(phase + 1) * PHASE).await;
        rss.push(server.memory_kib("VmRSS"));
    }
    let spray_took = started.elapsed();
    let full = latencies(to, probe_keys(1)).await;
    let after = server.memory_kib("VmRSS");

    let growth: Vec<String> = rss
        .iter()
        .enumerate()
        .map(|(i, kib)| {
            format!(
                "{}k +{}",
                (i as u32 + 1) * PHASE / 1000,
                kib.saturating_sub(baseline)
            )
        })
        .collect();
    let (p50_empty, p99_empty) = (percentile(&empty, 50), percentile(&empty, 99));
    let (p50_full, p99_full) = (percentile(&full, 50), percentile(&full, 99));
    eprintln!(
        "limiter spray: {KEYS} client networks in {spray_took:?} over {CONNECTIONS} connections; \
         server RSS {baseline} KiB before, {after} KiB after (+{} KiB; bound {BOUND_KIB} KiB); \
         growth in KiB by networks sent: {}; GET / from a new network ({PROBES} one at a time) \
         p50/p99/max {p50_empty:?}/{p99_empty:?}/{:?} before, {p50_full:?}/{p99_full:?}/{:?} \
         with the table full",
        after.saturating_sub(baseline),
        growth.join(", "),
        percentile(&empty, 100),
        percentile(&full, 100),
    );
    let peak_growth = rss
        .iter()
        .chain([&after])
        .max()
        .unwrap()
        .saturating_sub(baseline);
    assert!(
        peak_growth <= BOUND_KIB,
        "{KEYS} networks grew the server by {peak_growth} KiB (bound {BOUND_KIB} KiB)"
    );
    // Work that grew with the table would show at 100,000 keys; jitter of a shared machine
    // (a few ms at worst for one request in 100 here) must not fail the test: hence three
    // times, plus 10 ms.
    assert!(
        p99_full <= p99_empty * 3 + Duration::from_millis(10),
        "p99 {p99_empty:?} with the table empty, {p99_full:?} full"
    );
}
