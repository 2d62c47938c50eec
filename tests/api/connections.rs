//! Connection limits against the built binary, over loopback: idle floods are held cheaply and
//! closed at the first-bytes deadline, other clients are served meanwhile, and the total and
//! per-address caps close extra connections at once.
//!
//! The server is the shared black-box fixture (`helpers::server::Server`). Client sockets bind
//! to addresses of 127.0.0.0/8 to act as distinct clients.

use std::{
    net::{IpAddr, Ipv4Addr},
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::{
    net::{connect_from, connection_refused, server_connections, wait_until_server_has_read},
    server::Server,
};

const ADMIN_PW: &str = "black-box-root-passphrase";
/// The server's first-bytes deadline and HTTP/1 head timeout (`FIRST_BYTES_DEADLINE`).
const DEADLINE: Duration = Duration::from_secs(10);

/// The binary with the administrator's password, a secret and JSON logs, and `env`.
async fn start(env: &[(&str, &str)]) -> Server {
    Server::builder()
        .envs(&[
            ("ADMIN_PASSWORD", ADMIN_PW),
            ("JWT_SECRET_KEY", &"s".repeat(40)),
            ("LOG_FORMAT", "json"),
        ])
        .envs(env)
        .start()
        .await
}

/// Waits until the server's descriptor count is at most `bound` (or `wait` passes); returns
/// the last count.
async fn fds_settle_to(server: &Server, bound: usize, wait: Duration) -> usize {
    let deadline = Instant::now() + wait;
    loop {
        let n = server.open_fds();
        if n <= bound || Instant::now() >= deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (at most 5 s) until the server holds no connection open: each one so far is closed
/// on both ends.
async fn no_connections_left(server: &Server) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while server_connections(server.addr) > 0 {
        assert!(
            Instant::now() < deadline,
            "{} connections still open",
            server_connections(server.addr)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

/// An HTTP client whose connections come from `from` and are not kept after each request.
fn client_from(from: IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(from)
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Logs in as the administrator from `client`; returns the bearer token.
async fn admin_token(server: &Server, client: &reqwest::Client) -> String {
    let login = client
        .post(server.url("/auth/token"))
        .form(&[("username", "admin"), ("password", ADMIN_PW)])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    login.json::<serde_json::Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Reads until the peer closes (EOF or reset) or `limit` passes; `Some(when)` if it closed.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Instant> {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return Instant::now(),
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
}

/// Sends one keep-alive `GET /healthz` on `stream` and reads its answer; `None` if the
/// connection was closed instead (refused).
async fn healthz_keep_alive(stream: &mut TcpStream) -> Option<()> {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .ok()?;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let n = stream.read(&mut buf).await.ok()?;
            if n == 0 {
                return None;
            }
            seen.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&seen);
            // The answer is small and has a Content-Length: complete once the JSON closes.
            if text.starts_with("HTTP/1.1 200") && text.trim_end().ends_with('}') {
                return Some(());
            }
        }
    })
    .await
    .ok()?
}

/// What an idle connection of the flood sends before falling silent.
fn opening(i: usize) -> &'static [u8] {
    match i % 50 {
        // The first byte of the HTTP/2 preface: protocol detection waits for more.
        0 => b"P",
        // Half an HTTP/1 request head.
        1 => b"GET /healthz HTTP/1.1\r\nHost: test\r\n",
        // The whole HTTP/2 preface and an empty SETTINGS frame, then no request.
        2 => b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00",
        _ => b"",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idle_connection_flood_is_held_closed_at_the_deadline_and_never_delays_others() {
    const FLOOD: usize = 5_000;
    const SOURCES: u8 = 40; // 125 connections per address, under MAX_CONNECTIONS_PER_IP (256)
    // This process holds the flood's client sockets.
    let fd_limit = rlimit::increase_nofile_limit(u64::MAX).unwrap();
    assert!(
        fd_limit >= FLOOD as u64 + 1_000,
        "this test needs RLIMIT_NOFILE of at least {} (hard limit {fd_limit})",
        FLOOD + 1_000
    );
    let server = start(&[]).await;
    let other = v4(127, 0, 0, 2);
    let client = client_from(other);
    let token = admin_token(&server, &client).await;
    let created = client
        .post(server.url("/employees/"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"emp_id": 1, "emp_name": "Ada", "city": "London", "country": "UK", "emp_dob": "1990-01-01"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let warm = client
        .get(server.url("/employees/1"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(warm.status(), 200);
    // Every connection so far was closed by its client: the descriptors settle.
    no_connections_left(&server).await;
    let baseline = server.open_fds();
    let rss_before = server.memory_kib("VmRSS");

    // The flood: 5,000 connections from 127.0.10.1..=40, opened 500 at a time.
    let flood_start = Instant::now();
    let mut watchers = Vec::with_capacity(FLOOD);
    for batch in 0..FLOOD / 500 {
        let opened = futures_util::future::join_all((0..500).map(|j| {
            let i = batch * 500 + j;
            let from = v4(127, 0, 10, 1 + (i % usize::from(SOURCES)) as u8);
            let to = server.addr;
            async move {
                // Taken before connecting: the server's clock starts later, at accept.
                let connected = Instant::now();
                let mut stream = connect_from(from, to).await.expect("flood connection");
                stream.write_all(opening(i)).await.unwrap();
                (i, stream, connected)
            }
        }))
        .await;
        for (i, mut stream, connected) in opened {
            watchers.push(tokio::spawn(async move {
                let closed = closed_within(&mut stream, DEADLINE + Duration::from_secs(10)).await;
                (i, closed.map(|at| at - connected))
            }));
        }
    }
    let connect_time = flood_start.elapsed();
    // The server holds them all (its descriptors grow by one each).
    let during = {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let n = server.open_fds();
            if n >= baseline + FLOOD || Instant::now() >= deadline {
                break n;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    assert!(
        during >= baseline + FLOOD,
        "server fds during the flood: {during}, baseline {baseline}"
    );

    let rss_during = server.memory_kib("VmRSS");

    // Meanwhile another client is served at once, on fresh connections.
    let asked = Instant::now();
    let health = client.get(server.url("/healthz")).send().await.unwrap();
    let healthz_latency = asked.elapsed();
    assert_eq!(health.status(), 200);
    let asked = Instant::now();
    let employee = client
        .get(server.url("/employees/1"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let employee_latency = asked.elapsed();
    assert_eq!(employee.status(), 200);
    assert_eq!(
        employee.json::<serde_json::Value>().await.unwrap()["emp_name"],
        "Ada"
    );
    assert!(
        healthz_latency < Duration::from_secs(1),
        "/healthz took {healthz_latency:?}"
    );
    assert!(
        employee_latency < Duration::from_secs(1),
        "/employees/1 took {employee_latency:?}"
    );

    // Every flood connection is closed by the server at the deadline (HTTP/2 ones after a
    // GOAWAY and a 1 s grace), not before.
    let mut open_for = Vec::with_capacity(FLOOD);
    for watcher in watchers {
        let (i, closed) = watcher.await.unwrap();
        let held = closed.unwrap_or_else(|| panic!("connection {i} was never closed"));
        open_for.push(held);
    }
    let all_closed = flood_start.elapsed();
    open_for.sort();
    let (first, last) = (open_for[0], open_for[FLOOD - 1]);
    assert!(
        first >= DEADLINE - Duration::from_millis(500),
        "a connection was closed after only {first:?}"
    );
    assert!(
        last <= DEADLINE + Duration::from_secs(3),
        "a connection stayed open {last:?}"
    );

    // The server's descriptors return to where they were.
    let after = fds_settle_to(&server, baseline + 4, Duration::from_secs(5)).await;
    assert!(
        after <= baseline + 4,
        "server fds: {baseline} before the flood, {during} during, {after} after"
    );
    let log = server.output();
    assert!(!log.contains("accept failed"), "{log}");
    assert!(!log.contains("connections refused"), "{log}");
    let limits = log
        .lines()
        .find(|l| l.contains("connections: at most"))
        .unwrap_or_default();
    println!(
        "flood: {FLOOD} idle connections from {SOURCES} addresses opened in {connect_time:?}; \
         /healthz {healthz_latency:?}, /employees/1 {employee_latency:?} during the flood; \
         closed by the server after {first:?}..{last:?} (all gone {all_closed:?} after the \
         flood began); server fds {baseline} before, {during} during, {after} after; server RSS \
         {rss_before} KiB before, {rss_during} KiB holding the flood; {limits}"
    );
}

#[tokio::test]
async fn the_connection_past_the_per_address_cap_is_closed_while_other_addresses_are_served() {
    let server = start(&[("MAX_CONNECTIONS_PER_IP", "10")]).await;
    let crowded = v4(127, 0, 20, 1);
    // Ten connections, each proven counted: it answered a request and stays open.
    let mut held = Vec::new();
    for _ in 0..10 {
        let mut stream = connect_from(crowded, server.addr).await.unwrap();
        healthz_keep_alive(&mut stream)
            .await
            .expect("a connection under the cap is served");
        held.push(stream);
    }
    // The eleventh is closed at once, without an answer.
    let mut eleventh = connect_from(crowded, server.addr).await.unwrap();
    let asked = Instant::now();
    assert!(
        closed_within(&mut eleventh, Duration::from_secs(1))
            .await
            .is_some(),
        "the 11th connection from one address must be closed"
    );
    let refused_in = asked.elapsed();
    // Another address still connects and is served.
    let res = client_from(v4(127, 0, 20, 2))
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // When one of the ten closes, that address may connect again.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let mut again = connect_from(crowded, server.addr).await.unwrap();
        if healthz_keep_alive(&mut again).await.is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a freed place was not given back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = server.output();
    assert!(log.contains("connections refused"), "{log}");
    // One warning, however many were refused.
    assert_eq!(log.matches("connections refused").count(), 1, "{log}");
    println!("per-address cap: the 11th connection was closed after {refused_in:?}");
}

#[tokio::test]
async fn the_connection_past_the_total_cap_is_closed_until_others_close() {
    let server = start(&[("MAX_CONNECTIONS", "5")]).await;
    // Five connections from five addresses, each proven counted. The readiness probe's own
    // connection may still be counted for a moment, so a refused one is retried.
    let mut held = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    for n in 1..=5 {
        loop {
            let mut stream = connect_from(v4(127, 0, 30, n), server.addr).await.unwrap();
            if healthz_keep_alive(&mut stream).await.is_some() {
                held.push(stream);
                break;
            }
            assert!(Instant::now() < deadline, "could not open 5 connections");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let mut sixth = connect_from(v4(127, 0, 30, 6), server.addr).await.unwrap();
    assert!(
        closed_within(&mut sixth, Duration::from_secs(1))
            .await
            .is_some(),
        "the connection past MAX_CONNECTIONS must be closed"
    );
    // After others close, a probe gets through.
    held.truncate(3);
    let probe = client_from(v4(127, 0, 30, 7));
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        if let Ok(res) = probe.get(server.url("/healthz")).send().await {
            assert_eq!(res.status(), 200);
            break;
        }
        assert!(Instant::now() < deadline, "no place was given back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(held);
    let stopped = server.stop().await;
    assert!(stopped.status.success(), "{}", stopped.output);
}

#[tokio::test]
async fn silent_half_open_and_idle_keep_alive_connections_are_closed_at_the_deadline() {
    let server = start(&[]).await;
    let from = v4(127, 0, 40, 1);
    let p_sent = Instant::now();
    let mut only_p = connect_from(from, server.addr).await.unwrap();
    only_p.write_all(b"P").await.unwrap();
    let mut keep_alive = connect_from(from, server.addr).await.unwrap();
    healthz_keep_alive(&mut keep_alive)
        .await
        .expect("the first request is served");
    let answered = Instant::now();
    let (p_closed, idle_closed) = tokio::join!(
        closed_within(&mut only_p, DEADLINE + Duration::from_secs(5)),
        closed_within(&mut keep_alive, DEADLINE + Duration::from_secs(5)),
    );
    let p_after = p_closed.expect("the `P` connection is closed") - p_sent;
    let idle_after = idle_closed.expect("the idle keep-alive connection is closed") - answered;
    for after in [p_after, idle_after] {
        assert!(
            after >= DEADLINE - Duration::from_millis(500)
                && after <= DEADLINE + Duration::from_secs(2),
            "closed after {after:?}"
        );
    }
    println!(
        "`P` only: closed after {p_after:?}; idle HTTP/1.1 keep-alive: closed {idle_after:?} after its answer"
    );
}

#[tokio::test]
async fn shutdown_lets_a_request_in_flight_finish_and_closes_idle_connections() {
    let server = start(&[]).await;
    let from = v4(127, 0, 50, 1);
    let _idle = connect_from(from, server.addr).await.unwrap();
    // A request in flight: its head is in, its body still coming.
    let body = format!("username=admin&password={ADMIN_PW}");
    let mut slow = connect_from(from, server.addr).await.unwrap();
    slow.write_all(
        format!(
            "POST /auth/token HTTP/1.1\r\nHost: test\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{}",
            body.len(),
            &body[..5]
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    // In flight once the server has read what was sent; then SIGTERM, and the rest of the
    // body once the listener is closed (the shutdown has begun).
    wait_until_server_has_read(server.addr, &slow).await;
    let asked = Instant::now();
    server.sigterm().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !connection_refused(server.addr).await {
        assert!(Instant::now() < deadline, "the listener stayed open");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    slow.write_all(&body.as_bytes()[5..]).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut answer))
        .await
        .expect("the answer comes and the connection closes")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("access_token"), "{answer}");
    // The idle connection does not hold the process up.
    let stopped = server.wait_for_exit().await;
    let took = asked.elapsed();
    assert!(stopped.status.success(), "{}", stopped.output);
    assert!(took < Duration::from_secs(5), "stopping took {took:?}");
}
