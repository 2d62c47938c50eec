//! Budgets shared between instances through Redis (API2 login throttling, API4 request
//! budgets, API6 registration limits): two instances on one database and one Redis key
//! namespace, as behind a load balancer. Redis does not depend on the database backend, so
//! each test runs once, on SQLite; without `TEST_REDIS_URL` they are skipped, except under
//! `CI=true`, where they fail.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::{Duration, Instant},
};

use axum::http::StatusCode;
use employee_api::config::{Config, Secret, ThrottleConfig};

use super::api4_resource_consumption::assert_budget_of_five;
use crate::helpers::{net::Proxy, *};

/// An app on SQLite using Redis at `redis`, with `tweak` applied.
async fn app_with_redis(redis: &str, tweak: fn(&mut Config)) -> TestApp {
    let redis = redis.to_owned();
    TestApp::configure(move |config| {
        config.redis_url = Some(Secret::new(redis.clone()));
        tweak(config);
    })
    .spawn(Backend::Sqlite)
    .await
    .expect("sqlite always available")
}

/// A second instance of `app`'s service, on its database and Redis namespace.
async fn second_instance(app: &TestApp, redis: &str, tweak: fn(&mut Config)) -> Instance {
    let (_state, instance) = app
        .second_instance(|config| {
            config.redis_url = Some(Secret::new(redis));
            tweak(config);
        })
        .await;
    instance
}

/// Polls `/readyz` (whose checks run at most once a second) until it reports Redis as `want`;
/// at most 30 s.
async fn wait_for_redis_status(app: &Instance, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = redis_status(app).await;
        if status == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz still says Redis is {status:?}, not {want:?}, after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What `/readyz` says about Redis.
async fn redis_status(app: &Instance) -> String {
    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text());
    ready.json()["checks"]["redis"]["status"]
        .as_str()
        .unwrap_or_else(|| panic!("no Redis check in {}", ready.text()))
        .to_owned()
}

fn five_per_minute(config: &mut Config) {
    config.rate_limit_per_minute = 5;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_the_request_budget_is_enforced_through_redis() {
    let Some(redis) = redis_url() else { return };
    let app = app_with_redis(&redis, five_per_minute).await;
    assert_eq!(redis_status(&app).await, "ok", "Redis is in use");
    assert_budget_of_five(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_sharing_redis_share_one_request_budget() {
    let Some(redis) = redis_url() else { return };
    let first = app_with_redis(&redis, five_per_minute).await;
    let second = second_instance(&first, &redis, five_per_minute).await;
    let (first, second) = (first.from(other_peer(30)), second.from(other_peer(30)));
    for n in 1..=3 {
        let res = first.get("/", None).await;
        assert_eq!(res.status, StatusCode::OK, "first instance, request {n}");
    }
    let res = second.get("/", None).await;
    assert_eq!(res.status, StatusCode::OK, "second instance, request 4");
    assert_eq!(
        res.header("ratelimit-remaining"),
        Some("1"),
        "the second instance saw the first's requests"
    );
    let res = second.get("/", None).await;
    assert_eq!(res.status, StatusCode::OK, "second instance, request 5");
    assert_too_many(&second.get("/", None).await, "second instance, request 6");
    assert_too_many(&first.get("/", None).await, "first instance, request 7");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_sharing_redis_share_login_throttling() {
    fn throttled(config: &mut Config) {
        config.login_account = LOCKS_FOR_THE_HOUR_AFTER_3;
        config.login_ip = UNTHROTTLED;
    }
    let Some(redis) = redis_url() else { return };
    let first = app_with_redis(&redis, throttled).await;
    let second = second_instance(&first, &redis, throttled).await;
    first.register_ok("alice").await;
    first.register_ok("bob").await;
    // Three failures spread over both instances: each alone has seen fewer than three.
    for (n, instance) in [(1, &*first), (2, &second), (3, &*first)] {
        let res = instance
            .login_raw("alice", &format!("wrong guess {n}"))
            .await;
        assert_eq!(
            res.status,
            StatusCode::UNAUTHORIZED,
            "guess {n}: {}",
            res.text()
        );
    }
    assert_too_many(
        &second.login_raw("alice", USER_PASSWORD).await,
        "the right password on the second instance",
    );
    assert_too_many(
        &first.login_raw("alice", USER_PASSWORD).await,
        "the right password on the first instance",
    );
    // Control: another account logs in on either.
    second.login("bob", USER_PASSWORD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_sharing_redis_share_the_registration_limit() {
    fn two_then_hourly(config: &mut Config) {
        config.register_burst = 2;
        config.register_per_hour = 1;
    }
    let Some(redis) = redis_url() else { return };
    let first = app_with_redis(&redis, two_then_hourly).await;
    let second = second_instance(&first, &redis, two_then_hourly).await;
    let (a, b) = (first.from(other_peer(31)), second.from(other_peer(31)));
    assert_eq!(
        a.register("user-1", USER_PASSWORD).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        b.register("user-2", USER_PASSWORD).await.status,
        StatusCode::CREATED
    );
    assert_too_many(
        &a.register("user-3", USER_PASSWORD).await,
        "third, first instance",
    );
    assert_too_many(
        &b.register("user-4", USER_PASSWORD).await,
        "fourth, second instance",
    );
    // Control: another address has its own limit.
    let res = second
        .from(other_peer(32))
        .register("user-5", USER_PASSWORD)
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
}

/// Sends `count` requests made by `request` at once, alternating between the two instances;
/// returns their statuses. Both instances have reached Redis before (their readiness says
/// so), since the first requests of an instance that has not may use local limits.
async fn in_parallel<F, Fut>(instances: [&Instance; 2], count: usize, request: F) -> Vec<StatusCode>
where
    F: Fn(Instance, usize) -> Fut,
    Fut: std::future::Future<Output = TestResponse> + Send + 'static,
{
    for instance in instances {
        assert_eq!(redis_status(instance).await, "ok", "connected to Redis");
    }
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..count {
        tasks.spawn(request(instances[n % 2].clone(), n));
    }
    let mut statuses = Vec::new();
    while let Some(res) = tasks.join_next().await {
        statuses.push(res.expect("request task").status);
    }
    statuses
}

fn count(statuses: &[StatusCode], status: StatusCode) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_requests_on_two_instances_get_exactly_the_shared_budget() {
    let Some(redis) = redis_url() else { return };
    let first = app_with_redis(&redis, five_per_minute).await;
    let second = second_instance(&first, &redis, five_per_minute).await;
    let (a, b) = (first.from(other_peer(33)), second.from(other_peer(33)));
    let statuses = in_parallel([&a, &b], 40, |instance, _| async move {
        instance.get("/", None).await
    })
    .await;
    assert_eq!(
        (
            count(&statuses, StatusCode::OK),
            count(&statuses, StatusCode::TOO_MANY_REQUESTS)
        ),
        (5, 35),
        "{statuses:?}"
    );
}

/// While an instance makes its first connection to Redis, concurrent requests wait for that
/// attempt rather than being judged by local limits (which let two cold instances through
/// about twice the budget).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_requests_to_instances_not_yet_connected_to_redis_get_exactly_the_shared_budget() {
    let Some(redis) = redis_url() else { return };
    let first = app_with_redis(&redis, five_per_minute).await;
    let second = second_instance(&first, &redis, five_per_minute).await;
    let (a, b) = (first.from(other_peer(35)), second.from(other_peer(35)));
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..40 {
        let instance = if n % 2 == 0 { a.clone() } else { b.clone() };
        tasks.spawn(async move { instance.get("/", None).await.status });
    }
    let statuses = tasks.join_all().await;
    assert_eq!(count(&statuses, StatusCode::OK), 5, "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_registrations_on_two_instances_get_exactly_the_shared_burst() {
    fn three_then_hourly(config: &mut Config) {
        config.register_burst = 3;
        config.register_per_hour = 1;
    }
    let Some(redis) = redis_url() else { return };
    let first = app_with_redis(&redis, three_then_hourly).await;
    let second = second_instance(&first, &redis, three_then_hourly).await;
    let (a, b) = (first.from(other_peer(34)), second.from(other_peer(34)));
    let statuses = in_parallel([&a, &b], 12, |instance, n| async move {
        instance
            .register(&format!("parallel-{n}"), USER_PASSWORD)
            .await
    })
    .await;
    assert_eq!(
        (
            count(&statuses, StatusCode::CREATED),
            count(&statuses, StatusCode::TOO_MANY_REQUESTS)
        ),
        (3, 9),
        "{statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_login_guesses_on_two_instances_get_no_more_tries_than_the_shared_budget() {
    fn five_free(config: &mut Config) {
        // Five free failures; a sixth (if the 1 s wait has passed) hits the hourly cap.
        config.login_account = ThrottleConfig {
            free_failures: 5,
            max_failures_per_hour: 6,
        };
        config.login_ip = UNTHROTTLED;
    }
    let Some(redis) = redis_url() else { return };
    let first = app_with_redis(&redis, five_free).await;
    let second = second_instance(&first, &redis, five_free).await;
    first.register_ok("alice").await;
    let statuses = in_parallel([&first, &second], 40, |instance, n| async move {
        instance
            .login_raw("alice", &format!("parallel guess {n}"))
            .await
    })
    .await;
    let heard = count(&statuses, StatusCode::UNAUTHORIZED);
    assert_eq!(
        heard + count(&statuses, StatusCode::TOO_MANY_REQUESTS),
        40,
        "{statuses:?}"
    );
    assert!(
        (5..=6).contains(&heard),
        "{heard} guesses were checked (budget 5, at most 6)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_waits_through_redis_double_up_to_fifteen_minutes_and_no_further() {
    fn five_free(config: &mut Config) {
        config.login_account = ThrottleConfig {
            free_failures: 5,
            max_failures_per_hour: 100,
        };
        config.login_ip = UNTHROTTLED;
    }
    let Some(redis) = redis_url() else { return };
    let app = app_with_redis(&redis, five_free).await;
    app.register_ok("alice").await;
    let client = redis::Client::open(redis.as_str()).expect("TEST_REDIS_URL parses");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("Redis answers");
    let key = format!("{}:login-acct:alice", app.redis_prefix);
    // Waits that long cannot be lived through in a test: the account's record is written as
    // it would stand after `failures` failures this hour, with no wait running, and the next
    // failure, over HTTP, starts the wait that follows.
    for (failures, wait) in [(13, 512), (14, 900), (40, 900)] {
        let (secs, micros): (u64, u64) = redis::cmd("TIME")
            .query_async(&mut conn)
            .await
            .expect("TIME");
        let now_ms = secs * 1000 + micros / 1000;
        let () = redis::cmd("HSET")
            .arg(&key)
            .arg("c")
            .arg(failures)
            .arg("w")
            .arg(now_ms)
            .arg("l")
            .arg(0)
            .query_async(&mut conn)
            .await
            .expect("HSET");
        let res = app.login_raw("alice", "one more wrong guess").await;
        assert_eq!(
            res.status,
            StatusCode::UNAUTHORIZED,
            "after {failures}: {}",
            res.text()
        );
        let announced = assert_too_many(
            &app.login_raw("alice", USER_PASSWORD).await,
            &format!("after {} failures", failures + 1),
        );
        assert!(
            (wait - 5..=wait).contains(&announced),
            "after {} failures: Retry-After {announced}, expected about {wait}",
            failures + 1
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_unreachable_the_local_limit_still_applies_and_readiness_says_degraded() {
    // Nothing listens on port 1: no Redis needed, so this one always runs.
    let app = TestApp::configure(|config| {
        config.rate_limit_per_minute = 5;
        config.redis_url = Some(Secret::new("redis://127.0.0.1:1"));
    })
    .spawn(Backend::Sqlite)
    .await
    .expect("sqlite always available");
    assert_budget_of_five(&app).await;
    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text());
    assert_eq!(
        ready.json()["checks"]["redis"]["status"],
        "degraded",
        "{}",
        ready.text()
    );
    assert_eq!(
        ready.json()["checks"]["database"]["status"],
        "ok",
        "{}",
        ready.text()
    );
}

/// `redis` with its host and port replaced by `addr`.
fn redis_url_at(redis: &str, addr: SocketAddr) -> String {
    let mut url = url::Url::parse(redis).expect("TEST_REDIS_URL parses");
    url.set_host(Some(&addr.ip().to_string()))
        .expect("a host can be set");
    url.set_port(Some(addr.port())).expect("a port can be set");
    url.to_string()
}

/// Where `redis` points (an IP address, or localhost).
fn redis_addr(redis: &str) -> SocketAddr {
    let url = url::Url::parse(redis).expect("TEST_REDIS_URL parses");
    let host = url.host_str().expect("TEST_REDIS_URL names a host");
    let ip = if host == "localhost" {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host.trim_matches(['[', ']'])
            .parse()
            .expect("TEST_REDIS_URL names an IP address or localhost")
    };
    SocketAddr::new(ip, url.port().unwrap_or(6379))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_redis_outage_an_instance_uses_local_limits_then_returns_to_redis() {
    fn two_per_minute(config: &mut Config) {
        // One token per 30 s: nothing refills while the test runs.
        config.rate_limit_per_minute = 2;
    }
    let Some(redis) = redis_url() else { return };
    // The first instance reaches Redis through a proxy the test can cut; the second directly.
    let proxy = Proxy::start(redis_addr(&redis)).await;
    let first = app_with_redis(&redis_url_at(&redis, proxy.addr), two_per_minute).await;
    let second = second_instance(&first, &redis, two_per_minute).await;

    // Shared while Redis is up.
    let (a, b) = (first.from(other_peer(40)), second.from(other_peer(40)));
    assert_eq!(redis_status(&a).await, "ok");
    assert_eq!(a.get("/", None).await.status, StatusCode::OK);
    assert_eq!(b.get("/", None).await.status, StatusCode::OK);
    assert_too_many(&a.get("/", None).await, "before the outage");

    // Redis gone: the first instance answers on its local limits (never unlimited).
    proxy.cut();
    let local = first.from(other_peer(41));
    assert_eq!(local.get("/", None).await.status, StatusCode::OK);
    assert_eq!(local.get("/", None).await.status, StatusCode::OK);
    assert_too_many(&local.get("/", None).await, "local limit during the outage");
    wait_for_redis_status(&first, "degraded").await;

    // Redis back: readiness says so once the instance has reconnected...
    proxy.restore();
    wait_for_redis_status(&first, "ok").await;
    // ...and the budget is shared again: a client that spent its budget on the second
    // instance is refused by the first, whose local state for it is untouched.
    let (a, b) = (first.from(other_peer(42)), second.from(other_peer(42)));
    assert_eq!(b.get("/", None).await.status, StatusCode::OK);
    assert_eq!(b.get("/", None).await.status, StatusCode::OK);
    assert_too_many(&a.get("/", None).await, "after the outage, via Redis");
}
