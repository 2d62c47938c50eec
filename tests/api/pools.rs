//! The connection pools, seen through the API: a request cancelled in the middle of a read
//! never leaves a half-read connection for the next one; an exhausted pool answers 503 within
//! its acquire timeout; after the database drops every connection (what a PostgreSQL restart
//! does), at most the one request that noticed it fails.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use axum::http::StatusCode;
use employee_api::{
    app::AppState,
    config::{Config, DatabaseUrl, Secret},
    db::{Db, import::ImportTx},
    router::build_router,
    server::ensure_admin,
};
use sqlx::{Connection, PgConnection};

use crate::{
    db_test,
    helpers::{
        Backend, Instance, SECRET, TestApp, TestResponse, employee_body, fresh_postgres_schema,
        postgres_url, test_config,
    },
};

/// The fewest connections: PostgreSQL 1 hot reader + 2 general; SQLite 1 writer, 1 reader,
/// 1 page reader. Exhausting a pool then takes only a few requests.
fn smallest_pools(config: &mut Config) {
    config.db_max_connections = 3;
}

/// How long a request waits for a connection (`db::pool::ACQUIRE_TIMEOUT`).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

async fn create_employees(app: &TestApp, admin: &str, ids: std::ops::RangeInclusive<u64>) {
    for id in ids {
        let res = app
            .post_json("/employees/", Some(admin), employee_body(id))
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    }
}

/// Holds an ACCESS EXCLUSIVE lock on `employees` (PostgreSQL only): every read of the table
/// waits until [`Blocker::release`].
struct Blocker(PgConnection);

impl Blocker {
    async fn lock(app: &TestApp) -> Option<Self> {
        let DatabaseUrl::Postgres(url) = &app.database_url else {
            return None;
        };
        let mut conn = PgConnection::connect(url.expose()).await.unwrap();
        sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
        sqlx::query("LOCK TABLE employees IN ACCESS EXCLUSIVE MODE")
            .execute(&mut conn)
            .await
            .unwrap();
        Some(Self(conn))
    }

    async fn release(mut self) {
        sqlx::query("COMMIT").execute(&mut self.0).await.unwrap();
    }
}

/// `open == idle` for every pool of the app, polled for at most 5 s: nothing is lent out.
async fn assert_pools_settle(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let usage = app.state.db.pool_usage();
        if usage
            .iter()
            .all(|(_, u)| u.open == u.idle && u.open <= u.max)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "connections still lent: {usage:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

db_test!(
    a_request_cancelled_mid_read_never_leaves_a_half_read_connection,
    TestApp::configure(smallest_pools),
    |app| {
        let admin = app.admin_token().await;
        create_employees(&app, &admin, 1..=5).await;

        // PostgreSQL: the read is sent and waits on the lock, so the request is dropped with
        // the query in flight. SQLite: dropped while its blocking task runs or waits.
        let blocker = Blocker::lock(&app).await;
        for path in ["/employees/3", "/employees/?limit=1000"] {
            let cancelled =
                tokio::time::timeout(Duration::from_millis(200), app.get(path, Some(&admin))).await;
            if blocker.is_some() {
                assert!(cancelled.is_err(), "{path} should have waited on the lock");
            }
        }
        if let Some(blocker) = blocker {
            // The cancelled reads' connection still waits for its answer. Lent again, it would
            // hold the next request until the lock goes; discarded, a fresh one answers now.
            let me =
                tokio::time::timeout(Duration::from_secs(2), app.get("/users/me", Some(&admin)))
                    .await
                    .expect("a read of another table is not held behind the cancelled one");
            assert_eq!(me.status, StatusCode::OK, "{}", me.text());
            blocker.release().await;
        }

        // A connection handed back with its answer unread would give the next request the
        // answer of the cancelled one (employee 3, or a page) or a protocol error.
        for round in 0..3 {
            for id in 1..=5_i64 {
                let res = app.get(&format!("/employees/{id}"), Some(&admin)).await;
                assert_eq!(res.status, StatusCode::OK, "round {round}: {}", res.text());
                assert_eq!(res.json()["emp_id"], id, "round {round}");
            }
            let page = app.get("/employees/?limit=2", Some(&admin)).await;
            assert_eq!(page.status, StatusCode::OK, "{}", page.text());
            let ids: Vec<i64> = page
                .json()
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["emp_id"].as_i64().unwrap())
                .collect();
            assert_eq!(ids, [1, 2], "round {round}");
        }
        assert_pools_settle(&app).await;
    }
);

db_test!(
    an_exhausted_write_pool_answers_503_within_the_acquire_timeout,
    TestApp::configure(smallest_pools),
    |app| {
        let admin = app.admin_token().await;
        // Every connection that can write is held by an open import transaction.
        let writers = app
            .state
            .db
            .pool_usage()
            .into_iter()
            .find(|(name, _)| matches!(*name, "general" | "writer"))
            .map(|(_, usage)| usage.max)
            .unwrap();
        let mut held: Vec<ImportTx> = Vec::new();
        for _ in 0..writers {
            held.push(
                app.state
                    .db
                    .begin_import(employee_api::domain::audit::AuditContext::cli())
                    .await
                    .unwrap(),
            );
        }

        let started = Instant::now();
        let res = app
            .post_json("/employees/", Some(&admin), employee_body(1))
            .await;
        let waited = started.elapsed();
        assert_unavailable(&res);
        assert!(
            waited >= ACQUIRE_TIMEOUT - Duration::from_millis(100)
                && waited < ACQUIRE_TIMEOUT + Duration::from_secs(2),
            "answered after {waited:?}"
        );

        for tx in held {
            tx.rollback().await.unwrap();
        }
        let res = app
            .post_json("/employees/", Some(&admin), employee_body(1))
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    }
);

fn assert_unavailable(res: &TestResponse) {
    assert_eq!(
        res.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        res.text()
    );
    assert!(res.header("retry-after").is_some(), "Retry-After");
    assert_eq!(
        res.json(),
        serde_json::json!({"detail": "Service temporarily unavailable"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_hot_read_pool_answers_503_within_the_acquire_timeout_on_postgres() {
    // Without TEST_DATABASE_URL: skipped, or under CI a failure (`helpers::service_url`).
    let Some(app) = TestApp::configure(smallest_pools)
        .spawn(Backend::Postgres)
        .await
    else {
        return;
    };
    let admin = app.admin_token().await;
    create_employees(&app, &admin, 1..=2).await;
    let client = app.instance();
    let blocker = Blocker::lock(&app).await.unwrap();
    // The one hot-read connection waits on the lock with this read...
    let first = {
        let (client, token) = (client.clone(), admin.clone());
        tokio::spawn(async move { client.get("/employees/1", Some(&token)).await.status })
    };
    // ...so, once it is lent, this one finds the pool empty.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !app
        .state
        .db
        .pool_usage()
        .iter()
        .any(|(name, u)| *name == "hot_reads" && u.open == 1 && u.idle == 0)
    {
        assert!(
            Instant::now() < deadline,
            "the first read never took the connection"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = Instant::now();
    let res = app.get("/employees/2", Some(&admin)).await;
    let waited = started.elapsed();
    assert_unavailable(&res);
    assert!(
        waited >= ACQUIRE_TIMEOUT - Duration::from_millis(100)
            && waited < ACQUIRE_TIMEOUT + Duration::from_secs(2),
        "answered after {waited:?}"
    );
    blocker.release().await;
    assert_eq!(first.await.unwrap(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_database_drops_every_connection_at_most_the_request_that_noticed_fails() {
    let Some(base) = postgres_url() else {
        return;
    };
    let (url, admin_url, schema) = fresh_postgres_schema(&base).await;
    // Tag this app's connections so that only they are cut.
    let url = DatabaseUrl::parse(&format!("{url}&application_name={schema}")).unwrap();
    let mut config = test_config(url.clone());
    config.db_max_connections = 8;
    let (state, router) = TestApp::start_on(url, config).await;
    let app = Instance {
        router,
        peer: SocketAddr::from(([127, 0, 0, 1], 40_000)),
    };
    let admin = app.admin_token().await;
    for id in 1..=5 {
        let res = app
            .post_json("/employees/", Some(&admin), employee_body(id))
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    }
    // Open several connections in every pool.
    let warm: Vec<_> = (0..8_u64)
        .map(|i| {
            let (app, token) = (app.clone(), admin.clone());
            tokio::spawn(async move {
                let one = app
                    .get(&format!("/employees/{}", i % 5 + 1), Some(&token))
                    .await
                    .status;
                let page = app.get("/employees/?limit=3", Some(&token)).await.status;
                let me = app.get("/users/me", Some(&token)).await.status;
                (one, page, me)
            })
        })
        .collect();
    for task in warm {
        assert_eq!(
            task.await.unwrap(),
            (StatusCode::OK, StatusCode::OK, StatusCode::OK)
        );
    }

    // What a restart does to its clients: every backend of this app is terminated.
    let mut admin_conn = PgConnection::connect(&admin_url).await.unwrap();
    let cut: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = $1) t",
    )
    .bind(&schema)
    .fetch_one(&mut admin_conn)
    .await
    .unwrap();
    assert!(cut >= 3, "only {cut} connections were open");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let alive: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1")
                .bind(&schema)
                .fetch_one(&mut admin_conn)
                .await
                .unwrap();
        if alive == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{alive} backends still alive");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The probe, then every kind of request, reads and writes, in turn.
    let mut statuses = vec![app.get("/readyz", None).await.status];
    for i in 0..10_u64 {
        statuses.push(
            app.get(&format!("/employees/{}", i % 5 + 1), Some(&admin))
                .await
                .status,
        );
        statuses.push(app.get("/employees/?limit=3", Some(&admin)).await.status);
        statuses.push(app.get("/users/me", Some(&admin)).await.status);
        let created = app
            .post_json("/employees/", Some(&admin), employee_body(100 + i))
            .await;
        statuses.push(created.status);
    }
    let failed: Vec<(usize, StatusCode)> = statuses
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, s)| !s.is_success())
        .collect();
    assert!(
        failed.len() <= 1
            && failed
                .iter()
                .all(|(_, s)| *s == StatusCode::SERVICE_UNAVAILABLE),
        "more than the first request failed after the outage: {failed:?}"
    );
    state.db.close().await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE"
    )))
    .execute(&mut admin_conn)
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_statement_never_outlives_its_request() {
    let Some(base) = postgres_url() else {
        return;
    };
    let (url, admin_url, schema) = fresh_postgres_schema(&base).await;
    let url = DatabaseUrl::parse(&format!("{url}&application_name={schema}")).unwrap();
    // As the server opens it, with statements cancelled by PostgreSQL after one second.
    let db = Db::connect_with_timeout(&url, 4, Some(Duration::from_secs(1)))
        .await
        .unwrap();
    db.migrate().await.unwrap();
    let state = AppState::new(test_config(url.clone()), db, &Secret::new(SECRET), &schema).unwrap();
    ensure_admin(&state).await.unwrap();
    let app = Instance {
        router: build_router(state.clone()),
        peer: SocketAddr::from(([127, 0, 0, 1], 40_000)),
    };
    let admin = app.admin_token().await;

    // A lock holds every read of employees.
    let DatabaseUrl::Postgres(secret_url) = &url else {
        unreachable!()
    };
    let mut blocker = PgConnection::connect(secret_url.expose()).await.unwrap();
    sqlx::query("BEGIN").execute(&mut blocker).await.unwrap();
    sqlx::query("LOCK TABLE employees IN ACCESS EXCLUSIVE MODE")
        .execute(&mut blocker)
        .await
        .unwrap();
    let started = Instant::now();
    let res = app.get("/employees/1", Some(&admin)).await;
    assert_unavailable(&res);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // Nothing of this app still runs in the database.
    let mut admin_conn = PgConnection::connect(&admin_url).await.unwrap();
    let running: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND state = 'active' \
         AND pid <> $2",
    )
    .bind(&schema)
    .bind(
        sqlx::query_scalar::<_, i32>("SELECT pg_backend_pid()")
            .fetch_one(&mut blocker)
            .await
            .unwrap(),
    )
    .fetch_one(&mut admin_conn)
    .await
    .unwrap();
    assert_eq!(running, 0, "a cancelled statement still runs");
    sqlx::query("COMMIT").execute(&mut blocker).await.unwrap();
    // A cancelled statement is no outage: the next read is served at once.
    assert_eq!(
        app.get("/employees/1", Some(&admin)).await.status,
        StatusCode::NOT_FOUND
    );
    state.db.close().await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE"
    )))
    .execute(&mut admin_conn)
    .await
    .unwrap();
}
