//! Test fixtures: a fresh application per test, on SQLite (always) and PostgreSQL (when
//! `TEST_DATABASE_URL` is set), each in its own database file or schema.

#![allow(
    dead_code,
    reason = "each test file uses a different subset of the helpers"
)]

use std::{
    net::SocketAddr,
    sync::atomic::{AtomicU32, Ordering},
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::ConnectInfo,
    http::{HeaderMap, Method, Request, StatusCode, header},
};
use employee_api::{
    app::AppState,
    config::{Config, DatabaseUrl, Secret},
    db::Db,
    router::build_router,
    server::ensure_admin,
};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

pub const ADMIN_USERNAME: &str = "admin";
pub const ADMIN_PASSWORD: &str = "test-root-passphrase-4821";
pub const USER_PASSWORD: &str = "correct horse battery staple";
pub const SECRET: &str = "test-secret-0123456789abcdef0123456789abcdef0123456789abcdef";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs a test body once per backend: `db_test!(name, |app| { ... })` makes `name::sqlite` and
/// `name::postgres` (the latter returns early, printing why, without `TEST_DATABASE_URL`).
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
                    eprintln!("skipped: TEST_DATABASE_URL is not set");
                    return;
                };
                $body
            }
        }
    };
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

pub struct TestApp {
    pub router: Router,
    pub state: AppState,
    pub backend: Backend,
    pub database_url: DatabaseUrl,
    /// The client address requests appear to come from.
    pub peer: SocketAddr,
    storage: Storage,
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
/// off (tests of limits turn them on).
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

/// `TEST_DATABASE_URL`, when PostgreSQL tests should run.
pub fn postgres_url() -> Option<String> {
    std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// `TEST_REDIS_URL`, when Redis tests should run.
pub fn redis_url() -> Option<String> {
    std::env::var("TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
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

    /// A new database location for `backend` (None: PostgreSQL not configured).
    pub async fn fresh_database(backend: Backend) -> Option<(DatabaseUrl, StorageHandle)> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("data").join("test.db");
                Some((
                    DatabaseUrl::Sqlite { path },
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
        let db = Db::connect(&database_url, config.db_max_connections)
            .await
            .expect("database opens");
        db.migrate().await.expect("migrations apply");
        let secret = employee_api::server::resolve_secret(&config).expect("secret");
        let prefix = unique_name("employee-api-test");
        let state = AppState::new(config, db, &secret, &prefix).expect("state");
        ensure_admin(&state).await.expect("admin bootstrap");
        let router = build_router(state.clone());
        (state, router)
    }

    /// Sends a request. `body` is JSON unless a content type is given in `headers`.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> TestResponse {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match body {
            Some(value) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                Body::from(value.to_string())
            }
            None => Body::empty(),
        };
        self.send_request(builder.body(body).unwrap()).await
    }

    /// Sends a fully built request, from `self.peer` unless it carries its own ConnectInfo.
    pub async fn send_request(&self, mut req: Request<Body>) -> TestResponse {
        if req.extensions().get::<ConnectInfo<SocketAddr>>().is_none() {
            req.extensions_mut().insert(ConnectInfo(self.peer));
        }
        let res = self.router.clone().oneshot(req).await.unwrap();
        let (parts, body) = res.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        TestResponse {
            status: parts.status,
            headers: parts.headers,
            body,
        }
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

    /// `POST /auth/token` with a form body.
    pub async fn login_raw(&self, username: &str, password: &str) -> TestResponse {
        let form =
            serde_urlencoded::to_string([("username", username), ("password", password)]).unwrap();
        let req = Request::builder()
            .method(Method::POST)
            .uri("/auth/token")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form))
            .unwrap();
        self.send_request(req).await
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

    /// A logged-in administrator's token.
    pub async fn admin_token(&self) -> String {
        self.login(ADMIN_USERNAME, ADMIN_PASSWORD).await
    }

    /// Registers `username` as a normal user and returns its token.
    pub async fn user_token_for(&self, username: &str) -> String {
        let res = self.register(username, USER_PASSWORD).await;
        assert_eq!(
            res.status,
            StatusCode::CREATED,
            "register {username}: {}",
            res.text()
        );
        self.login(username, USER_PASSWORD).await
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
}

/// Keeps a test database alive; dropping it removes the data.
pub struct StorageHandle(Storage);

impl Setup {
    pub async fn spawn(&self, backend: Backend) -> Option<TestApp> {
        let (database_url, StorageHandle(storage)) = TestApp::fresh_database(backend).await?;
        let mut config = test_config(database_url.clone());
        (self.tweak)(&mut config);
        let (state, router) = TestApp::start_on(database_url.clone(), config).await;
        let port = NEXT_PORT.fetch_add(1, Ordering::Relaxed) as u16;
        Some(TestApp {
            router,
            state,
            backend,
            database_url,
            peer: SocketAddr::from(([127, 0, 0, 1], port)),
            storage,
        })
    }
}

/// A minimal employee JSON body.
pub fn employee_body(emp_id: u64) -> Value {
    json!({"emp_id": emp_id, "emp_name": "Test Person", "city": "Oslo", "country": "Norway", "emp_dob": "1990-05-17"})
}

/// A body sent in `chunk`-sized pieces with no Content-Length (like HTTP chunked encoding).
pub fn chunked_body(data: Vec<u8>, chunk: usize) -> Body {
    use std::{
        collections::VecDeque,
        pin::Pin,
        task::{Context, Poll},
    };
    struct Chunks(VecDeque<Bytes>);
    impl axum::body::HttpBody for Chunks {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
            Poll::Ready(self.0.pop_front().map(|b| Ok(hyper::body::Frame::data(b))))
        }
    }
    Body::new(Chunks(
        data.chunks(chunk).map(Bytes::copy_from_slice).collect(),
    ))
}

/// A TCP port on 127.0.0.1 that was free a moment ago (for starting the real binary).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// For each list query (e.g. `city=osl&country=nor`), asserts that `X-Total-Count` equals the
/// number of rows the query actually returns (all of them fit in one page of 1000).
pub async fn assert_totals_match_rows(app: &TestApp, token: &str, queries: &[&str]) {
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
