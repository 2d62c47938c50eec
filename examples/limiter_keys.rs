//! Memory and per-check latency of the local limits under a spray of a million distinct
//! client keys (issue 10's bound). Run on demand, in release:
//!
//! ```sh
//! cargo run --release --example limiter_keys
//! ```
//!
//! Prints the resident memory before and after, and the p50/p99 of one check while the tables
//! are empty and once they are full.

use std::{
    net::{IpAddr, Ipv6Addr},
    time::{Duration, Instant},
};

use employee_api::{
    config::{Config, DatabaseUrl},
    rate_limit::{ClientKey, Limiters},
};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    (
        samples[samples.len() / 2],
        samples[samples.len() * 99 / 100],
    )
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut config = Config::defaults_for(DatabaseUrl::Sqlite {
        path: "unused.db".into(),
        read_only: false,
    });
    config.rate_limit_per_minute = 300;
    let limiters = Limiters::new(&config, None);
    let requests = limiters.requests.as_ref().expect("request budget on");
    // Distinct networks: IPv6 /64s (each address below is in its own /64).
    let key = |i: u64| ClientKey::Network(IpAddr::V6(Ipv6Addr::from((u128::from(i) + 1) << 64)));
    let ip = |i: u64| IpAddr::V6(Ipv6Addr::from((u128::from(i) + 1) << 64));

    let measure = async |offset: u64| {
        let mut bucket = Vec::with_capacity(10_000);
        let mut login = Vec::with_capacity(10_000);
        for i in 0..10_000 {
            let started = Instant::now();
            requests.check(key(offset + i)).await;
            bucket.push(started.elapsed());
            let started = Instant::now();
            if let Ok(attempt) = limiters
                .logins
                .begin(&format!("user{}", offset + i), ip(offset + i))
                .await
            {
                limiters.logins.failed(attempt);
            }
            login.push(started.elapsed());
        }
        (percentiles(bucket), percentiles(login))
    };

    let before = rss_kib();
    let (empty_bucket, empty_login) = measure(0).await;
    for i in 10_000..1_000_000 {
        requests.check(key(i)).await;
        if let Ok(attempt) = limiters.logins.begin(&format!("user{i}"), ip(i)).await {
            limiters.logins.failed(attempt);
        }
    }
    let (full_bucket, full_login) = measure(1_000_000).await;
    let after = rss_kib();
    println!("keys sprayed: 1,010,000 networks and usernames");
    println!(
        "resident memory: {} MiB before, {} MiB after (+{} MiB)",
        before / 1024,
        after / 1024,
        (after - before) / 1024
    );
    println!(
        "request check p50/p99: empty {:?}/{:?}, full {:?}/{:?}",
        empty_bucket.0, empty_bucket.1, full_bucket.0, full_bucket.1
    );
    println!(
        "login reserve p50/p99: empty {:?}/{:?}, full {:?}/{:?}",
        empty_login.0, empty_login.1, full_login.0, full_login.1
    );
}
