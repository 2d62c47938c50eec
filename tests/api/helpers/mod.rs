//! The one helper module every test file uses.
//!
//! - here: [`TestApp`], a fresh application per test on SQLite (always) and PostgreSQL (with
//!   `TEST_DATABASE_URL`), each in its own database file or schema; [`Instance`], requests to
//!   one router from any task; [`db_test!`], one body run on both backends;
//! - [`requests`]: request builders, other client addresses, bodies that arrive in pieces or
//!   never;
//! - [`asserts`]: what a refusal looks like (401, 403, 422, 429, secure headers, no internals);
//! - [`tokens`]: JWTs forged exactly as a test needs them;
//! - [`server`]: the real binary, started on port 0 and read back from its log, and the
//!   command line;
//! - [`net`]: loopback plumbing for black-box tests (raw HTTP, the kernel's view of a socket,
//!   a TCP proxy that can fail on demand);
//! - [`cluster`]: a PostgreSQL cluster a test owns, to stop and start under load.

#![allow(
    dead_code,
    reason = "each test file uses a different subset of the helpers"
)]

pub mod asserts;
pub mod cluster;
pub mod net;
pub mod requests;
pub mod server;
pub mod tokens;

pub use asserts::*;
pub use requests::*;
pub use tokens::*;

use std::{
    net::SocketAddr,
    sync::atomic::{AtomicU32, Ordering},
};

use axum::{
    Router,
    body::{Body, Bytes},
    http::{HeaderMap, Method, Request, StatusCode},
};
use employee_api::{
    app::AppState,
    config::{Config, DatabaseUrl, Secret, ThrottleConfig},
    db::Db,
    router::build_router,
    server::ensure_admin,
};
use serde_json::{Value, json};

pub const ADMIN_USERNAME: &str = "admin";
pub const ADMIN_PASSWORD: &str = "test-root-passphrase-4821";
pub const USER_PASSWORD: &str = "correct horse battery staple";
pub const SECRET: &str = "test-secret-0123456789abcdef0123456789abcdef0123456789abcdef";

/// Login throttling so generous it never interferes with what a test measures.
pub const UNTHROTTLED: ThrottleConfig = ThrottleConfig {
    free_failures: 100_000,
    max_failures_per_hour: 100_000,
};

/// Free failures equal to the hourly cap: the third failure locks for the rest of the hour,
/// so assertions about the lock never race a one-second wait.
pub const LOCKS_FOR_THE_HOUR_AFTER_3: ThrottleConfig = ThrottleConfig {
    free_failures: 3,
    max_failures_per_hour: 3,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs a test body once per backend: `db_test!(name, |app| { ... })` makes `name::sqlite` and
/// `name::postgres`. Without `TEST_DATABASE_URL` the latter prints why and returns, unless
/// `CI=true`: then it fails (see [`service_url`]).
#[macro_export]
macro_rules! db_test {
    ($name:ident, |$app:ident| $body:block) => {
        db_test!($name, $crate::helpers::TestApp::configure(|_| {}), |$app| {
            $body
        });
    };
    ($name:ident, $setup:expr, |$app:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let $app = $setup
                    .spawn($crate::helpers::Backend::Sqlite)
                    .await
                    .expect("sqlite always available");
                $body
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some($app) = $setup.spawn($crate::helpers::Backend::Postgres).await else {
                    return;
                };
                $body
            }
        }
    };
}

/// Whether this run is CI (`CI=true` or `CI=1`, as `.ci/run` reads it).
pub fn is_ci() -> bool {
    matches!(std::env::var("CI").as_deref(), Ok("true" | "1"))
}

/// The URL in `var` when set. Unset: the test prints that it is skipped and gets `None`, except
/// under CI, where a skipped half of the suite would pass silently: there it fails.
pub fn service_url(var: &str, what: &str) -> Option<String> {
    if let Some(url) = std::env::var(var).ok().filter(|u| !u.is_empty()) {
        return Some(url);
    }
    assert!(
        !is_ci(),
        "CI=true but {var} is not set: the {what} tests would be skipped"
    );
    eprintln!("skipped: {var} is not set ({what} tests)");
    None
}

/// `TEST_DATABASE_URL`, when PostgreSQL tests should run (see [`service_url`]).
pub fn postgres_url() -> Option<String> {
    service_url("TEST_DATABASE_URL", "PostgreSQL")
}

/// `TEST_REDIS_URL`, when Redis tests should run (see [`service_url`]).
pub fn redis_url() -> Option<String> {
    service_url("TEST_REDIS_URL", "Redis")
}

/// What to change in the test configuration before the app starts.
pub struct Setup {
    tweak: Box<dyn Fn(&mut Config) + Send + Sync>,
}

static NEXT_PORT: AtomicU32 = AtomicU32::new(10_000);

/// Where a test's data lives; dropped (file deleted / schema dropped) with the app.
enum Storage {
    Sqlite(tempfile::TempDir),
    Postgres { admin_url: String, schema: String },
}

impl Drop for Storage {
    fn drop(&mut self) {
        if let Storage::Postgres { admin_url, schema } = self {
            let (url, schema) = (admin_url.clone(), schema.clone());
            // Drop runs inside the test's runtime; clean up from a thread with its own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    if let Ok(pool) = sqlx::PgPool::connect(&url).await {
                        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP SCHEMA IF EXISTS {schema} CASCADE"
                        )))
                        .execute(&pool)
                        .await;
                        pool.close().await;
                    }
                });
            })
            .join();
        }
    }
}

/// Keeps a test database alive; dropping it removes the data.
pub struct StorageHandle(Storage);

/// One router and the client address its requests appear to come from. Cheap to clone, so a
/// test can send from many tasks at once, or talk to a second instance of the service.
#[derive(Clone)]
pub struct Instance {
    pub router: Router,
    /// The client address requests appear to come from (unless one carries its own).
    pub peer: SocketAddr,
}

/// A fresh application: its router (through [`Instance`], which it dereferences to), its
/// state, and its database.
pub struct TestApp {
    instance: Instance,
    pub state: AppState,
    pub backend: Backend,
    pub database_url: DatabaseUrl,
    /// The namespace of this app's keys in Redis (a second instance sharing it shares budgets).
    pub redis_prefix: String,
    storage: Storage,
}

impl std::ops::Deref for TestApp {
    type Target = Instance;

    fn deref(&self) -> &Instance {
        &self.instance
    }
}

pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl TestResponse {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `detail` string of an error body.
    pub fn detail(&self) -> String {
        self.json()["detail"]
            .as_str()
            .unwrap_or_else(|| panic!("no string detail in {}", self.text()))
            .to_owned()
    }

    /// The `loc` paths of a 422 body, e.g. `["body.emp_dob"]`.
    pub fn error_locs(&self) -> Vec<String> {
        assert_eq!(
            self.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            self.text()
        );
        self.json()["detail"]
            .as_array()
            .expect("422 detail is a list")
            .iter()
            .map(|e| {
                e["loc"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p.as_str().map_or(p.to_string(), str::to_owned))
                    .collect::<Vec<_>>()
                    .join(".")
            })
            .collect()
    }
}

/// The configuration every test starts from: a known secret and admin password, rate limits
/// off (tests of limits turn them on). Built from the defaults alone: no test reads the
/// process environment for its configuration.
pub fn test_config(database_url: DatabaseUrl) -> Config {
    let mut config = Config::defaults_for(database_url);
    config.jwt_secret = Some(Secret::new(SECRET));
    config.admin_password = Some(Secret::new(ADMIN_PASSWORD));
    config.rate_limit_per_minute = 0;
    config.register_burst = 1000;
    config.register_per_hour = 100_000;
    config.hash_concurrency = 2;
    config.db_max_connections = 4;
    config
}

fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// A fresh Redis key namespace, so tests never see each other's budgets.
pub fn unique_redis_prefix() -> String {
    unique_name("employee-api-test")
}

/// Creates a fresh schema and returns (URL whose connections use it, admin URL, schema).
pub async fn fresh_postgres_schema(base: &str) -> (String, String, String) {
    let pool = sqlx::PgPool::connect(base)
        .await
        .expect("TEST_DATABASE_URL is reachable");
    // The trigram extension is per database; create it once, serialised across test threads.
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock(727274)")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let schema = unique_name("t");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}%2Cpublic");
    (url, base.to_owned(), schema)
}

impl TestApp {
    /// A setup that applies `tweak` to the configuration.
    pub fn configure(tweak: impl Fn(&mut Config) + Send + Sync + 'static) -> Setup {
        Setup {
            tweak: Box::new(tweak),
        }
    }

    /// A fresh app with default test settings.
    pub async fn spawn(backend: Backend) -> Option<TestApp> {
        Self::configure(|_| {}).spawn(backend).await
    }

    /// A clone of the app's router and client address, for other tasks.
    pub fn instance(&self) -> Instance {
        self.instance.clone()
    }

    /// A new database location for `backend` (None: PostgreSQL not configured, outside CI).
    pub async fn fresh_database(backend: Backend) -> Option<(DatabaseUrl, StorageHandle)> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("data").join("test.db");
                Some((
                    DatabaseUrl::Sqlite {
                        path,
                        read_only: false,
                    },
                    StorageHandle(Storage::Sqlite(dir)),
                ))
            }
            Backend::Postgres => {
                let base = postgres_url()?;
                let (url, admin_url, schema) = fresh_postgres_schema(&base).await;
                Some((
                    DatabaseUrl::parse(&url).unwrap(),
                    StorageHandle(Storage::Postgres { admin_url, schema }),
                ))
            }
        }
    }

    /// Starts an app on an existing database location (for restart tests).
    pub async fn start_on(database_url: DatabaseUrl, config: Config) -> (AppState, Router) {
        Self::start_on_with_prefix(database_url, config, &unique_redis_prefix()).await
    }

    /// As [`TestApp::start_on`], with the Redis keys under `redis_prefix` (instances with the
    /// same prefix share their budgets).
    pub async fn start_on_with_prefix(
        database_url: DatabaseUrl,
        config: Config,
        redis_prefix: &str,
    ) -> (AppState, Router) {
        let db = Db::connect(&database_url, config.db_max_connections)
            .await
            .expect("database opens");
        db.migrate().await.expect("migrations apply");
        let secret = employee_api::server::resolve_secret(&config).expect("secret");
        let state = AppState::new(config, db, &secret, redis_prefix).expect("state");
        ensure_admin(&state).await.expect("admin bootstrap");
        let router = build_router(state.clone());
        (state, router)
    }

    /// Whether `needle` appears anywhere in the stored credentials: for SQLite, anywhere in the
    /// database files (the WAL included); for PostgreSQL, in any row of the sessions, refresh
    /// token and API key tables.
    pub async fn database_contains(&self, needle: &str) -> bool {
        match &self.database_url {
            DatabaseUrl::Sqlite { path, .. } => {
                let dir = path.parent().expect("the database has a folder");
                std::fs::read_dir(dir)
                    .expect("database folder")
                    .any(|entry| {
                        let bytes = std::fs::read(entry.unwrap().path()).unwrap_or_default();
                        bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
                    })
            }
            DatabaseUrl::Postgres(url) => {
                let pool = sqlx::PgPool::connect(url.expose()).await.unwrap();
                let found: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM sessions t WHERE strpos(row_to_json(t)::text, $1) > 0) \
                       OR EXISTS (SELECT 1 FROM refresh_tokens t \
                         WHERE strpos(row_to_json(t)::text || encode(t.hash, 'escape'), $1) > 0) \
                       OR EXISTS (SELECT 1 FROM api_keys t \
                         WHERE strpos(row_to_json(t)::text || encode(t.hash, 'escape'), $1) > 0)",
                )
                .bind(needle)
                .fetch_one(&pool)
                .await
                .unwrap();
                pool.close().await;
                found
            }
        }
    }

    /// Another instance of the service on this app's database and Redis key namespace, with
    /// `tweak` applied to the test configuration (so budgets in Redis are shared with `self`).
    pub async fn second_instance(&self, tweak: impl Fn(&mut Config)) -> (AppState, Instance) {
        let mut config = test_config(self.database_url.clone());
        tweak(&mut config);
        let (state, router) =
            Self::start_on_with_prefix(self.database_url.clone(), config, &self.redis_prefix).await;
        (
            state,
            Instance {
                router,
                peer: self.peer,
            },
        )
    }
}

impl Setup {
    pub async fn spawn(&self, backend: Backend) -> Option<TestApp> {
        let (database_url, StorageHandle(storage)) = TestApp::fresh_database(backend).await?;
        let mut config = test_config(database_url.clone());
        (self.tweak)(&mut config);
        let redis_prefix = unique_redis_prefix();
        let (state, router) =
            TestApp::start_on_with_prefix(database_url.clone(), config, &redis_prefix).await;
        let port = NEXT_PORT.fetch_add(1, Ordering::Relaxed) as u16;
        Some(TestApp {
            instance: Instance {
                router,
                peer: SocketAddr::from(([127, 0, 0, 1], port)),
            },
            state,
            backend,
            database_url,
            redis_prefix,
            storage,
        })
    }
}

impl Instance {
    /// The same router, with requests from `peer`.
    pub fn from(&self, peer: SocketAddr) -> Instance {
        Instance {
            router: self.router.clone(),
            peer,
        }
    }

    /// Sends a request. `body` is JSON.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> TestResponse {
        let req = match body {
            Some(value) => json_req(method, path, token, value.to_string()),
            None => bare_req(method, path, token),
        };
        self.send_request(req).await
    }

    /// Sends a fully built request, from `self.peer` unless it carries its own address.
    pub async fn send_request(&self, req: Request<Body>) -> TestResponse {
        call(&self.router, from_peer_unless_set(req, self.peer)).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> TestResponse {
        self.send(Method::GET, path, token, None).await
    }

    pub async fn post_json(&self, path: &str, token: Option<&str>, body: Value) -> TestResponse {
        self.send(Method::POST, path, token, Some(body)).await
    }

    pub async fn patch_json(&self, path: &str, token: Option<&str>, body: Value) -> TestResponse {
        self.send(Method::PATCH, path, token, Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> TestResponse {
        self.send(Method::DELETE, path, token, None).await
    }

    /// A form-encoded POST (the token, revocation and logout endpoints).
    pub async fn post_form(
        &self,
        path: &str,
        token: Option<&str>,
        fields: &[(&str, &str)],
    ) -> TestResponse {
        let form = serde_urlencoded::to_string(fields).expect("form encodes");
        let mut req = bare_req(Method::POST, path, token);
        req.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        let (parts, _) = req.into_parts();
        self.send_request(Request::from_parts(parts, Body::from(form)))
            .await
    }

    /// `POST /auth/token` with a form body.
    pub async fn login_raw(&self, username: &str, password: &str) -> TestResponse {
        self.send_request(login_req(username, password)).await
    }

    /// Logs in and returns the access token (panics unless 200).
    pub async fn login(&self, username: &str, password: &str) -> String {
        let res = self.login_raw(username, password).await;
        assert_eq!(
            res.status,
            StatusCode::OK,
            "login as {username}: {}",
            res.text()
        );
        res.json()["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn register(&self, username: &str, password: &str) -> TestResponse {
        self.post_json(
            "/auth/register",
            None,
            json!({"username": username, "password": password}),
        )
        .await
    }

    /// Registers `username` with the standard test password (panics unless 201); its id.
    pub async fn register_ok(&self, username: &str) -> i64 {
        let res = self.register(username, USER_PASSWORD).await;
        assert_eq!(
            res.status,
            StatusCode::CREATED,
            "register {username}: {}",
            res.text()
        );
        res.json()["id"]
            .as_i64()
            .expect("UserRead.id is an integer")
    }

    /// A logged-in administrator's token.
    pub async fn admin_token(&self) -> String {
        self.login(ADMIN_USERNAME, ADMIN_PASSWORD).await
    }

    /// Registers `username` as a normal user and returns its token.
    pub async fn user_token_for(&self, username: &str) -> String {
        self.register_ok(username).await;
        self.login(username, USER_PASSWORD).await
    }

    /// The claims of a fresh login as `username` (a registered normal user), as the base
    /// for forged tokens: they name a live session (`sid`) and the scopes it carries, so a
    /// forgery fails only for what it changes.
    pub async fn claims_for(&self, username: &str) -> serde_json::Value {
        claims_of(&self.login(username, USER_PASSWORD).await)
    }

    /// A logged-in normal user's token (user `alice`).
    pub async fn user_token(&self) -> String {
        self.user_token_for("alice").await
    }

    /// Creates an employee as admin (panics unless 201).
    pub async fn create_employee(
        &self,
        token: &str,
        emp_id: u64,
        name: &str,
        city: &str,
        country: &str,
        dob: &str,
    ) -> Value {
        let res = self
            .post_json(
                "/employees/",
                Some(token),
                json!({"emp_id": emp_id, "emp_name": name, "city": city, "country": country, "emp_dob": dob}),
            )
            .await;
        assert_eq!(
            res.status,
            StatusCode::CREATED,
            "create {emp_id}: {}",
            res.text()
        );
        res.json()
    }

    /// `POST /employees/import{query}` with `body` as `content_type`.
    pub async fn import(
        &self,
        token: Option<&str>,
        query: &str,
        content_type: &str,
        body: impl Into<Body>,
    ) -> TestResponse {
        let req = with_header(
            bare_req(Method::POST, &format!("/employees/import{query}"), token),
            "content-type",
            content_type,
        );
        let (parts, _) = req.into_parts();
        self.send_request(Request::from_parts(parts, body.into()))
            .await
    }
}

/// A minimal employee JSON body.
pub fn employee_body(emp_id: u64) -> Value {
    json!({"emp_id": emp_id, "emp_name": "Test Person", "city": "Oslo", "country": "Norway", "emp_dob": "1990-05-17"})
}

/// For each list query (e.g. `city=osl&country=nor`), asserts that `X-Total-Count` equals the
/// number of rows the query actually returns (all of them fit in one page of 1000).
pub async fn assert_totals_match_rows(app: &Instance, token: &str, queries: &[&str]) {
    for query in queries {
        let res = app
            .get(&format!("/employees/?{query}&limit=1000"), Some(token))
            .await;
        assert_eq!(res.status, StatusCode::OK, "{query}");
        let rows = res.json().as_array().map_or(0, Vec::len);
        assert_eq!(
            res.header("x-total-count"),
            Some(rows.to_string().as_str()),
            "{query}: X-Total-Count against the rows returned"
        );
    }
}

/// Today's date in UTC, as the server computes it.
pub fn today_utc() -> time::Date {
    time::OffsetDateTime::now_utc().date()
}

/// Runs `attempt` with today's UTC date until the date is the same after the attempt as before
/// it, so an assertion about "today" never straddles midnight (the server reads its own clock).
/// `attempt` returns whether its result may be judged; on a date change it is run again.
pub async fn on_one_utc_day<F, Fut, T>(mut attempt: F) -> T
where
    F: FnMut(time::Date) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    loop {
        let today = today_utc();
        let result = attempt(today).await;
        if today_utc() == today {
            return result;
        }
        eprintln!("the UTC date changed during the attempt; trying again");
    }
}
