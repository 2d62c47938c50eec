//! The security suite, organised by the OWASP API Security Top 10 (2023). Every test goes
//! through the HTTP API and runs on SQLite and PostgreSQL (`db_test!`). Each threat has at
//! least one test that would fail if the defence were missing, and a control case proving the
//! attack request was otherwise well-formed (so a rejection means what it seems to mean).

use std::{
    convert::Infallible,
    net::SocketAddr,
    pin::Pin,
    task::{Context, Poll},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use axum::{
    Router,
    body::{Body, Bytes, HttpBody},
    extract::ConnectInfo,
    http::{Method, Request, StatusCode, header},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use employee_api::{
    app::AppState,
    config::{Secret, ThrottleConfig},
    db::Db,
    domain::username::Username,
    middleware::BODY_LIMIT,
    router::build_router,
};
use http_body_util::BodyExt;
use hyper::body::Frame;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::{
    db_test,
    helpers::{
        self, ADMIN_USERNAME, SECRET, TestApp, TestResponse, USER_PASSWORD, employee_body,
        redis_url,
    },
};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Login throttling so generous it never interferes with what a test measures.
const UNTHROTTLED: ThrottleConfig = ThrottleConfig {
    free_failures: 100_000,
    max_failures_per_hour: 100_000,
};

/// Free failures equal to the hourly cap: the third failure locks for the rest of the hour,
/// so assertions about the lock never race a one-second wait.
const LOCKS_FOR_THE_HOUR_AFTER_3: ThrottleConfig = ThrottleConfig {
    free_failures: 3,
    max_failures_per_hour: 3,
};

/// Strings that break out of naive SQL, LIKE or FTS5 query text.
const INJECTIONS: &[&str] = &[
    "' OR '1'='1",
    "1; DROP TABLE employees; --",
    "%' --",
    "\\",
    "\"",
    ")",
    "' UNION SELECT username, password_hash FROM users --",
    "\" OR \"\"=\"",
    "1) OR (1=1",
    "';--",
    "osl*",
    "NEAR(osl slo)",
    "city_folded:oslo",
];

/// Fragments that must never appear in a response body (implementation internals).
const INTERNALS: &[&str] = &[
    "sqlx",
    "select ",
    "insert into",
    "syntax error",
    "sqlite",
    "postgres",
    "argon2",
    "password_hash",
    "panicked",
    "backtrace",
    "src/",
];

/// A client address other than `app.peer` (TEST-NET-1, so it never collides with a real one).
fn other_peer(last_octet: u8) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, last_octet], 40_000))
}

/// Makes `req` appear to come from `peer`.
fn from_peer(mut req: Request<Body>, peer: SocketAddr) -> Request<Body> {
    req.extensions_mut().insert(ConnectInfo(peer));
    req
}

fn get_req(path: &str, token: Option<&str>) -> Request<Body> {
    let mut builder = Request::builder().method(Method::GET).uri(path);
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    builder.body(Body::empty()).expect("valid request")
}

/// A request with an `application/json` body (the body need not be valid JSON).
fn json_req(
    method: Method,
    path: &str,
    token: Option<&str>,
    body: impl Into<Body>,
) -> Request<Body> {
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    builder.body(body.into()).expect("valid request")
}

fn login_req(username: &str, password: &str) -> Request<Body> {
    let form = serde_urlencoded::to_string([("username", username), ("password", password)])
        .expect("form encodes");
    Request::builder()
        .method(Method::POST)
        .uri("/auth/token")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form))
        .expect("valid request")
}

fn with_header(mut req: Request<Body>, name: &'static str, value: &str) -> Request<Body> {
    req.headers_mut()
        .insert(name, value.parse().expect("valid header value"));
    req
}

/// Sends `req` to any router (e.g. a second instance), as `TestApp::send_request` does.
async fn call(router: &Router, req: Request<Body>) -> TestResponse {
    let res = router
        .clone()
        .oneshot(req)
        .await
        .unwrap_or_else(|e| match e {});
    let (parts, body) = res.into_parts();
    let body = body.collect().await.expect("response body").to_bytes();
    TestResponse {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters (for paths and queries).
fn pct(text: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
    out
}

/// Registers `username` with the standard test password; returns its id.
async fn register_ok(app: &TestApp, username: &str) -> i64 {
    let res = app.register(username, USER_PASSWORD).await;
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

/// Registers and logs in `username` from `peer` (so `app.peer`'s budgets stay untouched).
async fn token_from(app: &TestApp, peer: SocketAddr, username: &str) -> String {
    let body = json!({"username": username, "password": USER_PASSWORD}).to_string();
    let res = app
        .send_request(from_peer(
            json_req(Method::POST, "/auth/register", None, body),
            peer,
        ))
        .await;
    assert_eq!(
        res.status,
        StatusCode::CREATED,
        "register {username}: {}",
        res.text()
    );
    let res = app
        .send_request(from_peer(login_req(username, USER_PASSWORD), peer))
        .await;
    assert_eq!(
        res.status,
        StatusCode::OK,
        "login {username}: {}",
        res.text()
    );
    res.json()["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

/// `Retry-After` as whole seconds (panics, naming `case`, if absent or not an integer).
fn retry_after(res: &TestResponse, case: &str) -> u64 {
    let raw = res
        .header("retry-after")
        .unwrap_or_else(|| panic!("{case}: no Retry-After on {} {}", res.status, res.text()));
    raw.parse()
        .unwrap_or_else(|_| panic!("{case}: Retry-After {raw:?} is not whole seconds"))
}

/// 429 `{"detail": "Too many requests"}` with a `Retry-After` of at least one second.
fn assert_too_many(res: &TestResponse, case: &str) -> u64 {
    assert_eq!(
        res.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{case}: {}",
        res.text()
    );
    assert_eq!(res.json(), json!({"detail": "Too many requests"}), "{case}");
    let wait = retry_after(res, case);
    assert!(wait >= 1, "{case}: Retry-After {wait}");
    wait
}

/// 401 for an unacceptable token, with the RFC 6750 challenge.
fn assert_invalid_token(res: &TestResponse, case: &str) {
    assert_eq!(
        res.status,
        StatusCode::UNAUTHORIZED,
        "{case}: {}",
        res.text()
    );
    assert_eq!(res.detail(), "Could not validate credentials", "{case}");
    let challenge = res.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.starts_with("Bearer") && challenge.contains(r#"error="invalid_token""#),
        "{case}: WWW-Authenticate was {challenge:?}"
    );
}

fn assert_forbidden(res: &TestResponse, case: &str) {
    assert_eq!(res.status, StatusCode::FORBIDDEN, "{case}: {}", res.text());
    assert_eq!(
        res.detail(),
        "The user does not have administrative privileges",
        "{case}"
    );
}

/// 422 whose `loc` list contains `loc` (e.g. `query.limit`).
fn assert_invalid_at(res: &TestResponse, loc: &str, case: &str) {
    assert_eq!(
        res.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{case}: {}",
        res.text()
    );
    let locs = res.error_locs();
    assert!(
        locs.iter().any(|l| l == loc),
        "{case}: expected an error at {loc}, got {locs:?}"
    );
}

/// The secure headers every response carries.
fn assert_hardened(res: &TestResponse, case: &str) {
    assert_eq!(
        res.header("x-content-type-options"),
        Some("nosniff"),
        "{case}: X-Content-Type-Options"
    );
    assert_eq!(
        res.header("cache-control"),
        Some("no-store"),
        "{case}: Cache-Control"
    );
    let csp = res.header("content-security-policy").unwrap_or_default();
    assert!(
        csp.contains("frame-ancestors 'none'"),
        "{case}: Content-Security-Policy was {csp:?}"
    );
    assert_eq!(
        res.header("referrer-policy"),
        Some("no-referrer"),
        "{case}: Referrer-Policy"
    );
    assert!(
        res.headers.get(header::SERVER).is_none(),
        "{case}: Server header {:?}",
        res.headers.get(header::SERVER)
    );
}

fn assert_no_internals(res: &TestResponse, case: &str) {
    let body = res.text().to_lowercase();
    for fragment in INTERNALS {
        assert!(
            !body.contains(fragment),
            "{case}: body leaks {fragment:?}: {body}"
        );
    }
}

/// Headers that must match between two answers an attacker compares: all but the ones that
/// legitimately differ per request.
fn comparable_headers(res: &TestResponse) -> Vec<(String, Vec<u8>)> {
    let mut headers: Vec<_> = res
        .headers
        .iter()
        .filter(|(name, _)| {
            let name = name.as_str();
            name != "x-request-id" && name != "date" && !name.starts_with("ratelimit")
        })
        .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
        .collect();
    headers.sort();
    headers
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// Valid claims for user `id`, as the server issues them.
fn claims(id: i64) -> Value {
    json!({"sub": id.to_string(), "exp": now() + 600, "iat": now(), "jti": uuid::Uuid::new_v4().to_string()})
}

fn with_claim(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

fn without_claim(mut claims: Value, key: &str) -> Value {
    claims
        .as_object_mut()
        .expect("claims are an object")
        .remove(key);
    claims
}

/// A JWT with exactly this header and these claims, HMAC-signed with `secret` using `alg`.
fn forge_with(header: &Value, claims: &Value, alg: Algorithm, secret: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature =
        jsonwebtoken::crypto::sign(input.as_bytes(), &EncodingKey::from_secret(secret), alg)
            .expect("HMAC signing works");
    format!("{input}.{signature}")
}

/// As [`forge_with`], with the server's own secret.
fn forge(header: &Value, claims: &Value, alg: Algorithm) -> String {
    forge_with(header, claims, alg, SECRET.as_bytes())
}

/// A JWT with an empty signature (for `alg: none`).
fn unsigned(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// A request body sent as `count` copies of `chunk`, with no length known in advance
/// (as `Transfer-Encoding: chunked`).
struct Chunks {
    chunk: Bytes,
    count: usize,
}

impl HttpBody for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.count == 0 {
            return Poll::Ready(None);
        }
        self.count -= 1;
        Poll::Ready(Some(Ok(Frame::data(self.chunk.clone()))))
    }
}

/// A request body whose sender never sends anything (a stalled or slowloris client).
struct Stalled;

impl HttpBody for Stalled {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Pending
    }
}

// ---------------------------------------------------------------------------------------------
// API1:2023 Broken Object Level Authorization
// ---------------------------------------------------------------------------------------------
// Accounts are the only per-owner objects; employee records are shared by design (any user
// reads, only admins write: see API5). The only way to an account is the caller's own token.
mod api1_bola {
    use super::*;

    db_test!(users_me_shows_each_caller_only_their_own_account, |app| {
        let alice = app.user_token_for("alice").await;
        let bob = app.user_token_for("bob").await;
        for (token, name) in [(&alice, "alice"), (&bob, "bob")] {
            let res = app.get("/users/me", Some(token.as_str())).await;
            assert_eq!(res.status, StatusCode::OK, "{name}: {}", res.text());
            assert_eq!(
                res.json()["username"],
                name,
                "{name} sees someone else's account"
            );
        }
    });

    db_test!(no_route_addresses_an_account_by_id_or_name, |app| {
        let id = register_ok(&app, "alice").await;
        let token = app.user_token_for("bob").await;
        for path in [
            format!("/users/{id}"),
            "/users/alice".to_owned(),
            format!("/users/me/../{id}"),
        ] {
            let res = app.get(&path, Some(&token)).await;
            assert_eq!(res.status, StatusCode::NOT_FOUND, "{path}: {}", res.text());
            assert!(
                !res.text().contains("alice"),
                "{path} leaked the account: {}",
                res.text()
            );
        }
    });
}

// ---------------------------------------------------------------------------------------------
// API2:2023 Broken Authentication: password guessing, enumeration, passwords
// ---------------------------------------------------------------------------------------------
mod api2_broken_authentication {
    use super::*;

    db_test!(
        brute_force_on_one_account_is_refused_after_the_free_failures_even_with_the_right_password,
        TestApp::configure(|config| {
            config.login_account = ThrottleConfig {
                free_failures: 3,
                max_failures_per_hour: 100,
            };
        }),
        |app| {
            register_ok(&app, "alice").await;
            for guess in 1..=3 {
                let res = app
                    .login_raw("alice", &format!("wrong guess {guess}"))
                    .await;
                assert_eq!(
                    res.status,
                    StatusCode::UNAUTHORIZED,
                    "guess {guess} is a free failure: {}",
                    res.text()
                );
            }
            // The third failure starts a wait; during it every attempt is refused unheard.
            assert_too_many(
                &app.login_raw("alice", "wrong guess 4").await,
                "fourth guess",
            );
            assert_too_many(
                &app.login_raw("alice", USER_PASSWORD).await,
                "correct password while throttled",
            );
        }
    );

    db_test!(
        an_account_that_hits_the_hourly_cap_stays_locked_for_the_rest_of_the_hour,
        TestApp::configure(|config| config.login_account = LOCKS_FOR_THE_HOUR_AFTER_3),
        |app| {
            register_ok(&app, "alice").await;
            for guess in 1..=3 {
                let res = app
                    .login_raw("alice", &format!("wrong guess {guess}"))
                    .await;
                assert_eq!(
                    res.status,
                    StatusCode::UNAUTHORIZED,
                    "guess {guess}: {}",
                    res.text()
                );
            }
            let wait = assert_too_many(
                &app.login_raw("alice", USER_PASSWORD).await,
                "correct password",
            );
            assert!(
                (3000..=3600).contains(&wait),
                "locked for the rest of the hour, got Retry-After {wait}"
            );
        }
    );

    db_test!(
        unknown_usernames_are_throttled_exactly_like_real_ones,
        TestApp::configure(|config| config.login_account = LOCKS_FOR_THE_HOUR_AFTER_3),
        |app| {
            register_ok(&app, "alice").await;
            let mut observed = Vec::new();
            for name in ["alice", "nobody-here"] {
                let mut sequence = Vec::new();
                for guess in 1..=5 {
                    let res = app.login_raw(name, &format!("wrong guess {guess}")).await;
                    sequence.push((
                        res.status,
                        res.body.clone(),
                        res.headers.contains_key(header::RETRY_AFTER),
                    ));
                }
                observed.push(sequence);
            }
            let statuses: Vec<_> = observed[0]
                .iter()
                .map(|(status, ..)| status.as_u16())
                .collect();
            assert_eq!(statuses, [401, 401, 401, 429, 429], "real account");
            assert_eq!(
                observed[0], observed[1],
                "an unknown name is throttled differently from a real one"
            );
        }
    );

    db_test!(
        a_successful_login_resets_the_account_failure_count,
        TestApp::configure(|config| config.login_account = LOCKS_FOR_THE_HOUR_AFTER_3),
        |app| {
            register_ok(&app, "alice").await;
            let mut statuses = Vec::new();
            for password in [
                "wrong 1",
                "wrong 2",
                USER_PASSWORD,
                "wrong 3",
                "wrong 4",
                "wrong 5",
                "wrong 6",
            ] {
                statuses.push(app.login_raw("alice", password).await.status.as_u16());
            }
            // Without the reset the success would be the third counted attempt and lock at once.
            assert_eq!(statuses, [401, 401, 200, 401, 401, 401, 429]);
        }
    );

    db_test!(
        fifty_parallel_guesses_get_no_more_tries_than_the_budget,
        TestApp::configure(|config| {
            // Five free failures; a sixth (if the 1 s wait has passed) hits the hourly cap.
            config.login_account = ThrottleConfig {
                free_failures: 5,
                max_failures_per_hour: 6,
            };
            config.login_ip = UNTHROTTLED;
        }),
        |app| {
            register_ok(&app, "alice").await;
            let mut guesses = tokio::task::JoinSet::new();
            for guess in 0..50 {
                let router = app.router.clone();
                let req = from_peer(
                    login_req("alice", &format!("parallel guess {guess}")),
                    app.peer,
                );
                guesses.spawn(async move { router.oneshot(req).await.map(|res| res.status()) });
            }
            let (mut heard, mut refused) = (0, 0);
            while let Some(joined) = guesses.join_next().await {
                match joined.expect("guess task").unwrap_or_else(|e| match e {}) {
                    StatusCode::UNAUTHORIZED => heard += 1,
                    StatusCode::TOO_MANY_REQUESTS => refused += 1,
                    other => panic!("unexpected status {other} for a parallel guess"),
                }
            }
            assert!(
                (5..=6).contains(&heard),
                "{heard} guesses were checked (budget 5, at most 6)"
            );
            assert_eq!(heard + refused, 50);
        }
    );

    db_test!(
        unknown_user_and_wrong_password_give_identical_status_body_and_headers,
        |app| {
            register_ok(&app, "alice").await;
            let reference = app.login_raw("alice", "not the right password").await;
            assert_eq!(
                reference.status,
                StatusCode::UNAUTHORIZED,
                "{}",
                reference.text()
            );
            assert_eq!(
                reference.json(),
                json!({"detail": "Incorrect username or password"})
            );
            assert_eq!(reference.header("www-authenticate"), Some("Bearer"));
            for name in ["ALICE", "nobody-here", "no", "' OR '1'='1"] {
                let res = app.login_raw(name, "not the right password").await;
                assert_eq!(res.status, reference.status, "{name}");
                assert_eq!(res.body, reference.body, "{name}: body differs");
                assert_eq!(
                    comparable_headers(&res),
                    comparable_headers(&reference),
                    "{name}: headers differ"
                );
            }
        }
    );

    db_test!(
        unknown_user_and_wrong_password_take_about_the_same_time,
        TestApp::configure(|config| {
            config.login_account = UNTHROTTLED;
            config.login_ip = UNTHROTTLED;
        }),
        |app| {
            register_ok(&app, "alice").await;
            for name in ["alice", "nobody-here"] {
                app.login_raw(name, "warm-up guess").await;
            }
            let (mut known, mut unknown) = (Vec::new(), Vec::new());
            for round in 0..20 {
                // Alternate the order so drift in machine load hits both sides alike.
                let order = if round % 2 == 0 {
                    ["alice", "nobody-here"]
                } else {
                    ["nobody-here", "alice"]
                };
                for name in order {
                    let started = Instant::now();
                    let res = app.login_raw(name, "wrong password").await;
                    let took = started.elapsed();
                    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{name} round {round}");
                    if name == "alice" {
                        known.push(took)
                    } else {
                        unknown.push(took)
                    }
                }
            }
            // Medians: one scheduler hiccup must not decide the outcome.
            let (known, unknown) = (median(&mut known), median(&mut unknown));
            let ratio = unknown.as_secs_f64() / known.as_secs_f64();
            eprintln!(
                "login timing ({:?}): wrong password median {known:?}, unknown user median {unknown:?}, ratio {ratio:.2}",
                app.backend
            );
            assert!(
                (0.5..=2.0).contains(&ratio),
                "unknown user {unknown:?} vs wrong password {known:?} (ratio {ratio:.2})"
            );
        }
    );

    db_test!(
        failed_logins_are_limited_per_client_ip_across_accounts,
        TestApp::configure(|config| {
            config.login_ip = LOCKS_FOR_THE_HOUR_AFTER_3;
            config.login_account = UNTHROTTLED;
        }),
        |app| {
            register_ok(&app, "alice").await;
            for n in 1..=3 {
                let res = app.login_raw(&format!("carol-{n}"), "wrong").await;
                assert_eq!(
                    res.status,
                    StatusCode::UNAUTHORIZED,
                    "account {n}: {}",
                    res.text()
                );
            }
            assert_too_many(
                &app.login_raw("carol-4", "wrong").await,
                "fourth account from the same IP",
            );
            assert_too_many(
                &app.login_raw("alice", USER_PASSWORD).await,
                "correct login from the throttled IP",
            );
            let spoofed = with_header(
                login_req("alice", USER_PASSWORD),
                "x-forwarded-for",
                "198.51.100.7",
            );
            assert_too_many(
                &app.send_request(spoofed).await,
                "spoofed X-Forwarded-For from an untrusted peer",
            );

            let elsewhere = other_peer(10);
            let res = app
                .send_request(from_peer(login_req("alice", USER_PASSWORD), elsewhere))
                .await;
            assert_eq!(
                res.status,
                StatusCode::OK,
                "another client is unaffected: {}",
                res.text()
            );
            let res = app
                .send_request(from_peer(login_req("carol-1", "wrong"), elsewhere))
                .await;
            assert_eq!(
                res.status,
                StatusCode::UNAUTHORIZED,
                "another client's failure: {}",
                res.text()
            );
        }
    );

    db_test!(
        common_and_context_passwords_are_rejected_with_the_reason,
        TestApp::configure(|config| {
            config.login_account = UNTHROTTLED;
            config.login_ip = UNTHROTTLED;
        }),
        |app| {
            let cases = [
                ("carol", "1qaz2wsx3edc4rfv", "password_too_common"),
                ("carol", "1QAZ2WSX3EDC4RFV", "password_too_common"),
                ("carol", "qazwsxedcrfvtgb", "password_too_common"),
                ("carol", "123456789987654321", "password_too_common"),
                ("carol", "employee-employee-2024", "password_context_word"),
                ("carol", "AdminAdminAdmin!!!", "password_context_word"),
                (
                    "margaret",
                    "my name is margaret, hello",
                    "password_contains_username",
                ),
                (
                    "margaret",
                    "MY NAME IS MARGARET, HELLO",
                    "password_contains_username",
                ),
                ("carol", "short-pw", "string_too_short"),
            ];
            for (username, password, kind) in cases {
                let res = app.register(username, password).await;
                assert_invalid_at(&res, "body.password", password);
                assert_eq!(res.json()["detail"][0]["type"], kind, "{password}");
                assert_eq!(
                    app.login_raw(username, password).await.status,
                    StatusCode::UNAUTHORIZED,
                    "{password} created {username}"
                );
            }
            // Control: the same names register with an acceptable password.
            register_ok(&app, "carol").await;
            register_ok(&app, "margaret").await;
        }
    );

    db_test!(
        passwords_differing_only_after_byte_72_are_different_passwords,
        |app| {
            let base = "q7-".repeat(30);
            let (real, other) = (format!("{base}AAAAAAAAAA"), format!("{base}BBBBBBBBBB"));
            assert_eq!(real.len(), 100);
            assert_eq!(
                app.register("alice", &real).await.status,
                StatusCode::CREATED
            );
            let res = app.login_raw("alice", &other).await;
            assert_eq!(
                res.status,
                StatusCode::UNAUTHORIZED,
                "bcrypt-style truncation at 72 bytes: {}",
                res.text()
            );
            app.login("alice", &real).await;
        }
    );

    db_test!(a_huge_login_password_is_refused_before_any_hashing, |app| {
        register_ok(&app, "alice").await;
        for size in [1_000_000, 2 * BODY_LIMIT] {
            let started = Instant::now();
            let res = app.login_raw("alice", &"a".repeat(size)).await;
            assert!(
                matches!(
                    res.status,
                    StatusCode::PAYLOAD_TOO_LARGE | StatusCode::UNPROCESSABLE_ENTITY
                ),
                "{size}-byte password: {} {}",
                res.status,
                res.text()
            );
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{size}-byte password took {:?}",
                started.elapsed()
            );
            assert!(
                !res.text().contains("aaaaaaaa"),
                "{size}-byte password echoed"
            );
        }
    });
}

// ---------------------------------------------------------------------------------------------
// API2:2023 Broken Authentication: access tokens
// ---------------------------------------------------------------------------------------------
mod api2_tokens {
    use super::*;

    db_test!(forged_and_tampered_tokens_are_rejected_as_invalid, |app| {
        let id = register_ok(&app, "alice").await;
        let hs256 = json!({"alg": "HS256", "typ": "JWT"});
        // Control: the forging helpers make tokens the server accepts, so each rejection below
        // is caused by the one thing that case changes.
        let genuine = forge(&hs256, &claims(id), Algorithm::HS256);
        let res = app.get("/users/me", Some(&genuine)).await;
        assert_eq!(
            res.status,
            StatusCode::OK,
            "forged control token: {}",
            res.text()
        );
        assert_eq!(res.json()["username"], "alice");

        let year = 365 * 24 * 3600;
        let cases = [
            (
                "alg none",
                unsigned(&json!({"alg": "none", "typ": "JWT"}), &claims(id)),
            ),
            (
                "alg None",
                unsigned(&json!({"alg": "None", "typ": "JWT"}), &claims(id)),
            ),
            (
                "alg none with the genuine signature",
                format!(
                    "{}.{}",
                    URL_SAFE_NO_PAD.encode(json!({"alg": "none"}).to_string()),
                    genuine.split_once('.').expect("three parts").1
                ),
            ),
            (
                "HS512 with the HS256 secret",
                forge(
                    &json!({"alg": "HS512", "typ": "JWT"}),
                    &claims(id),
                    Algorithm::HS512,
                ),
            ),
            (
                "HS256 header over an HS512 signature",
                forge(&hs256, &claims(id), Algorithm::HS512),
            ),
            (
                "jwk header",
                forge(
                    &json!({"alg": "HS256", "typ": "JWT", "jwk": {"kty": "oct", "k": URL_SAFE_NO_PAD.encode(SECRET)}}),
                    &claims(id),
                    Algorithm::HS256,
                ),
            ),
            (
                "jku header",
                forge(
                    &json!({"alg": "HS256", "typ": "JWT", "jku": "https://attacker.example/jwks.json"}),
                    &claims(id),
                    Algorithm::HS256,
                ),
            ),
            (
                "x5u header",
                forge(
                    &json!({"alg": "HS256", "typ": "JWT", "x5u": "https://attacker.example/cert.pem"}),
                    &claims(id),
                    Algorithm::HS256,
                ),
            ),
            (
                "exp as a string",
                forge(
                    &hs256,
                    &with_claim(claims(id), "exp", json!((now() + 600).to_string())),
                    Algorithm::HS256,
                ),
            ),
            (
                "missing exp",
                forge(&hs256, &without_claim(claims(id), "exp"), Algorithm::HS256),
            ),
            (
                "far-future nbf",
                forge(
                    &hs256,
                    &with_claim(claims(id), "nbf", json!(now() + 10 * year)),
                    Algorithm::HS256,
                ),
            ),
            (
                "expired an hour ago",
                forge(
                    &hs256,
                    &with_claim(
                        with_claim(claims(id), "exp", json!(now() - 3600)),
                        "iat",
                        json!(now() - 7200),
                    ),
                    Algorithm::HS256,
                ),
            ),
            (
                "signed with another secret",
                forge_with(&hs256, &claims(id), Algorithm::HS256, &[7; 64]),
            ),
            (
                "sub is the username",
                forge(
                    &hs256,
                    &with_claim(claims(id), "sub", json!("alice")),
                    Algorithm::HS256,
                ),
            ),
            (
                "sub is zero",
                forge(
                    &hs256,
                    &with_claim(claims(id), "sub", json!("0")),
                    Algorithm::HS256,
                ),
            ),
            (
                "truncated signature",
                genuine[..genuine.len() - 4].to_owned(),
            ),
            ("payload swapped under a genuine signature", {
                let other_claims =
                    URL_SAFE_NO_PAD.encode(with_claim(claims(id), "sub", json!("1")).to_string());
                let mut parts: Vec<&str> = genuine.split('.').collect();
                parts[1] = &other_claims;
                parts.join(".")
            }),
            ("not a JWT", "not.a.jwt".to_owned()),
        ];
        for (case, token) in &cases {
            assert_invalid_token(&app.get("/users/me", Some(token.as_str())).await, case);
        }
    });

    db_test!(
        a_request_without_a_token_is_challenged_without_an_error_code,
        |app| {
            let res = app.get("/users/me", None).await;
            assert_eq!(res.status, StatusCode::UNAUTHORIZED);
            assert_eq!(res.detail(), "Not authenticated");
            assert_eq!(res.header("www-authenticate"), Some("Bearer"));
        }
    );

    db_test!(
        a_deleted_users_token_stops_working_even_after_the_name_is_registered_again,
        |app| {
            let old_id = register_ok(&app, "alice").await;
            let old_token = app.login("alice", USER_PASSWORD).await;
            assert_eq!(
                app.get("/users/me", Some(&old_token)).await.status,
                StatusCode::OK
            );

            let alice = Username::parse("alice").expect("valid username");
            app.state
                .db
                .delete_user(&alice)
                .await
                .expect("alice existed and is deleted");
            assert_invalid_token(
                &app.get("/users/me", Some(&old_token)).await,
                "deleted user",
            );

            let new_id = register_ok(&app, "alice").await;
            assert_ne!(new_id, old_id, "the id of a deleted user was reused");
            assert_invalid_token(
                &app.get("/users/me", Some(&old_token)).await,
                "name registered again",
            );
            let new_token = app.login("alice", USER_PASSWORD).await;
            assert_eq!(
                app.get("/users/me", Some(&new_token)).await.json()["id"],
                new_id
            );
        }
    );
}

// ---------------------------------------------------------------------------------------------
// API3:2023 Broken Object Property Level Authorization (mass assignment, data exposure)
// ---------------------------------------------------------------------------------------------
mod api3_property_level_authorization {
    use super::*;

    db_test!(
        registration_with_extra_fields_is_refused_and_creates_nobody,
        |app| {
            let cases = [
                (
                    "mallory",
                    json!({"username": "mallory", "password": USER_PASSWORD, "is_admin": true}),
                    "body.is_admin",
                ),
                (
                    "mallory2",
                    json!({"username": "mallory2", "password": USER_PASSWORD, "is_admin": false}),
                    "body.is_admin",
                ),
                (
                    "mallory3",
                    json!({"username": "mallory3", "password": USER_PASSWORD, "id": 1}),
                    "body.id",
                ),
            ];
            for (username, body, loc) in cases {
                let res = app.post_json("/auth/register", None, body).await;
                assert_invalid_at(&res, loc, username);
                assert_eq!(
                    res.json()["detail"][0]["type"],
                    "extra_forbidden",
                    "{username}"
                );
                let login = app.login_raw(username, USER_PASSWORD).await;
                assert_eq!(
                    login.status,
                    StatusCode::UNAUTHORIZED,
                    "{username} was created anyway"
                );
            }
        }
    );

    db_test!(
        patch_cannot_change_the_keys_and_leaves_the_record_unchanged,
        |app| {
            let admin = app.admin_token().await;
            let before = app
                .create_employee(
                    &admin,
                    1,
                    "Ada Lovelace",
                    "London",
                    "United Kingdom",
                    "1985-12-10",
                )
                .await;
            let cases = [
                (json!({"id": uuid::Uuid::new_v4().to_string()}), "body.id"),
                (json!({"emp_id": 2}), "body.emp_id"),
                (json!({"emp_id": 2, "city": "Paris"}), "body.emp_id"),
                (json!({"city": "Paris", "is_admin": true}), "body.is_admin"),
            ];
            for (body, loc) in cases {
                let res = app
                    .patch_json("/employees/1", Some(&admin), body.clone())
                    .await;
                assert_invalid_at(&res, loc, &body.to_string());
                let after = app.get("/employees/1", Some(&admin)).await;
                assert_eq!(after.json(), before, "{body} changed the record");
            }
            assert_eq!(
                app.get("/employees/2", Some(&admin)).await.status,
                StatusCode::NOT_FOUND
            );
        }
    );

    db_test!(account_representations_never_carry_a_password_hash, |app| {
        let admin = app.admin_token().await;
        let user = app.user_token().await;
        let responses = [
            ("register", app.register("bob", USER_PASSWORD).await),
            ("users/me", app.get("/users/me", Some(&user)).await),
            ("users list", app.get("/users/", Some(&admin)).await),
        ];
        for (case, res) in &responses {
            assert!(res.status.is_success(), "{case}: {}", res.text());
            let body = res.json();
            let accounts = body
                .as_array()
                .cloned()
                .unwrap_or_else(|| vec![body.clone()]);
            for account in accounts {
                let mut keys: Vec<_> = account
                    .as_object()
                    .expect("an object")
                    .keys()
                    .cloned()
                    .collect();
                keys.sort();
                assert_eq!(keys, ["id", "is_admin", "username"], "{case}");
            }
            assert_no_internals(res, case);
        }
    });
}

// ---------------------------------------------------------------------------------------------
// API4:2023 Unrestricted Resource Consumption
// ---------------------------------------------------------------------------------------------
mod api4_resource_consumption {
    use super::*;

    /// With RATE_LIMIT_PER_MINUTE=5: five anonymous requests from `app.peer` pass with RateLimit
    /// headers, the sixth is refused; probes stay unlimited.
    async fn assert_budget_of_five(app: &TestApp) {
        for n in 1..=5u32 {
            let res = app.get("/", None).await;
            assert_eq!(
                res.status,
                StatusCode::OK,
                "request {n} of 5: {}",
                res.text()
            );
            assert_eq!(res.header("ratelimit-limit"), Some("5"), "request {n}");
            assert_eq!(
                res.header("ratelimit-remaining"),
                Some((5 - n).to_string().as_str()),
                "request {n}"
            );
            assert_eq!(
                res.header("ratelimit-policy"),
                Some("5;w=60"),
                "request {n}"
            );
            let reset: u64 = res
                .header("ratelimit-reset")
                .and_then(|v| v.parse().ok())
                .expect("ratelimit-reset in seconds");
            assert!(reset <= 60, "request {n}: ratelimit-reset {reset}");
        }
        let refused = app.get("/", None).await;
        let wait = assert_too_many(&refused, "sixth request");
        assert!(wait <= 60, "Retry-After {wait}");
        assert_eq!(refused.header("ratelimit-remaining"), Some("0"));
        assert_hardened(&refused, "429");
        for probe in ["/healthz", "/readyz"] {
            assert_eq!(
                app.get(probe, None).await.status,
                StatusCode::OK,
                "{probe} must never be rate limited"
            );
        }
    }

    db_test!(
        the_request_after_the_budget_is_refused_with_retry_after,
        TestApp::configure(|config| config.rate_limit_per_minute = 5),
        |app| {
            assert_budget_of_five(&app).await;
        }
    );

    db_test!(
        authenticated_requests_are_charged_to_the_user_not_the_address,
        TestApp::configure(|config| config.rate_limit_per_minute = 5),
        |app| {
            let setup = other_peer(20);
            let alice = token_from(&app, setup, "alice").await;
            let bob = token_from(&app, setup, "bob").await;
            for (name, token) in [("alice", &alice), ("bob", &bob)] {
                for n in 1..=5 {
                    let res = app.get("/users/me", Some(token.as_str())).await;
                    assert_eq!(
                        res.status,
                        StatusCode::OK,
                        "{name} request {n}: {}",
                        res.text()
                    );
                }
                assert_too_many(&app.get("/users/me", Some(token.as_str())).await, name);
            }
            let res = app.get("/", None).await;
            assert_eq!(
                res.status,
                StatusCode::OK,
                "users' calls drained the address's budget"
            );
        }
    );

    db_test!(
        a_spoofed_forwarded_for_from_an_untrusted_peer_gets_no_fresh_budget,
        TestApp::configure(|config| config.rate_limit_per_minute = 5),
        |app| {
            for n in 1..=5 {
                assert_eq!(
                    app.get("/", None).await.status,
                    StatusCode::OK,
                    "request {n}"
                );
            }
            for spoof in [
                "203.0.113.1",
                "203.0.113.2, 10.0.0.1",
                "127.0.0.2",
                "unknown",
            ] {
                let req = with_header(get_req("/", None), "x-forwarded-for", spoof);
                assert_too_many(&app.send_request(req).await, spoof);
            }
        }
    );

    db_test!(
        behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget,
        TestApp::configure(|config| {
            config.rate_limit_per_minute = 5;
            config.trusted_proxies = vec!["127.0.0.0/8".parse().expect("valid CIDR")];
        }),
        |app| {
            for n in 1..=5 {
                let req = with_header(get_req("/", None), "x-forwarded-for", "203.0.113.1");
                assert_eq!(
                    app.send_request(req).await.status,
                    StatusCode::OK,
                    "client 1 request {n}"
                );
            }
            let req = with_header(get_req("/", None), "x-forwarded-for", "203.0.113.1");
            assert_too_many(&app.send_request(req).await, "client 1 over budget");
            let req = with_header(get_req("/", None), "x-forwarded-for", "203.0.113.2");
            assert_eq!(
                app.send_request(req).await.status,
                StatusCode::OK,
                "client 2 has its own budget"
            );
        }
    );

    db_test!(
        with_redis_the_budget_is_enforced_through_redis,
        TestApp::configure(|config| {
            config.rate_limit_per_minute = 5;
            config.redis_url = redis_url().map(Secret::new);
        }),
        |app| {
            if redis_url().is_none() {
                eprintln!("skipped: TEST_REDIS_URL is not set");
                return;
            }
            let ready = app.get("/readyz", None).await;
            assert_eq!(
                ready.json()["checks"]["redis"]["status"],
                "ok",
                "Redis is in use: {}",
                ready.text()
            );
            assert_budget_of_five(&app).await;
        }
    );

    /// Another instance of the service on `app`'s database, with Redis keys under `prefix`.
    async fn instance_sharing_redis(app: &TestApp, redis: &str, prefix: &str) -> Router {
        let mut config = helpers::test_config(app.database_url.clone());
        config.rate_limit_per_minute = 5;
        config.redis_url = Some(Secret::new(redis));
        let db = Db::connect(&app.database_url, config.db_max_connections)
            .await
            .expect("database opens");
        let state = AppState::new(config, db, &Secret::new(SECRET), prefix).expect("app state");
        build_router(state)
    }

    db_test!(two_instances_sharing_redis_share_one_budget, |app| {
        let Some(redis) = redis_url() else {
            eprintln!("skipped: TEST_REDIS_URL is not set");
            return;
        };
        let prefix = format!("employee-api-test-shared_{}", uuid::Uuid::new_v4().simple());
        let first = instance_sharing_redis(&app, &redis, &prefix).await;
        let second = instance_sharing_redis(&app, &redis, &prefix).await;
        let client = other_peer(30);
        for n in 1..=3 {
            let res = call(&first, from_peer(get_req("/", None), client)).await;
            assert_eq!(res.status, StatusCode::OK, "first instance, request {n}");
        }
        let res = call(&second, from_peer(get_req("/", None), client)).await;
        assert_eq!(res.status, StatusCode::OK, "second instance, request 4");
        assert_eq!(
            res.header("ratelimit-remaining"),
            Some("1"),
            "the second instance saw the first's requests"
        );
        let res = call(&second, from_peer(get_req("/", None), client)).await;
        assert_eq!(res.status, StatusCode::OK, "second instance, request 5");
        assert_too_many(
            &call(&second, from_peer(get_req("/", None), client)).await,
            "second instance, request 6",
        );
        assert_too_many(
            &call(&first, from_peer(get_req("/", None), client)).await,
            "first instance, request 7",
        );
    });

    db_test!(
        with_redis_unreachable_the_local_limit_still_applies_and_readiness_says_degraded,
        TestApp::configure(|config| {
            config.rate_limit_per_minute = 5;
            config.redis_url = Some(Secret::new("redis://127.0.0.1:1"));
        }),
        |app| {
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
    );

    db_test!(
        bodies_over_one_mebibyte_are_refused_with_413_even_when_chunked,
        |app| {
            let admin = app.admin_token().await;
            let routes = [
                (Method::POST, "/auth/register", "application/json", None),
                (
                    Method::POST,
                    "/auth/token",
                    "application/x-www-form-urlencoded",
                    None,
                ),
                (
                    Method::POST,
                    "/employees/",
                    "application/json",
                    Some(admin.as_str()),
                ),
                (
                    Method::PATCH,
                    "/employees/1",
                    "application/json",
                    Some(admin.as_str()),
                ),
            ];
            for (method, path, content_type, token) in routes {
                let build = |body: Body, length: Option<usize>| {
                    let mut builder = Request::builder()
                        .method(method.clone())
                        .uri(path)
                        .header(header::CONTENT_TYPE, content_type);
                    if let Some(token) = token {
                        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
                    }
                    if let Some(length) = length {
                        builder = builder.header(header::CONTENT_LENGTH, length);
                    }
                    builder.body(body).expect("valid request")
                };
                let big = vec![b' '; BODY_LIMIT + 1];
                let cases = [
                    (
                        "with Content-Length",
                        build(Body::from(big.clone()), Some(big.len())),
                    ),
                    ("without Content-Length", build(Body::from(big), None)),
                    (
                        "chunked",
                        build(
                            Body::new(Chunks {
                                chunk: Bytes::from(vec![b' '; 64 * 1024]),
                                count: 17,
                            }),
                            None,
                        ),
                    ),
                ];
                for (case, req) in cases {
                    let res = app.send_request(req).await;
                    assert_eq!(
                        res.status,
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "{method} {path} {case}: {}",
                        res.text()
                    );
                    assert_eq!(
                        res.json(),
                        json!({"detail": "Request body too large"}),
                        "{method} {path} {case}"
                    );
                }
            }
            // Control: just under the limit is read and judged on its content (on a route
            // with the 1 MiB limit: /auth/* takes 4 KiB).
            let mut under = vec![b' '; BODY_LIMIT - 16];
            under.extend_from_slice(b"{}");
            let res = app
                .send_request(json_req(Method::POST, "/employees/", Some(&admin), under))
                .await;
            assert_eq!(
                res.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "body under the limit: {}",
                res.text()
            );
        }
    );

    db_test!(a_json_route_sent_another_content_type_answers_415, |app| {
        let admin = app.admin_token().await;
        let register = json!({"username": "alice", "password": USER_PASSWORD}).to_string();
        let cases = [
            (
                "register as text/plain",
                Method::POST,
                "/auth/register",
                Some("text/plain"),
                None,
            ),
            (
                "register without a content type",
                Method::POST,
                "/auth/register",
                None,
                None,
            ),
            (
                "register as a form",
                Method::POST,
                "/auth/register",
                Some("application/x-www-form-urlencoded"),
                None,
            ),
            (
                "token as JSON",
                Method::POST,
                "/auth/token",
                Some("application/json"),
                None,
            ),
            (
                "create as XML",
                Method::POST,
                "/employees/",
                Some("application/xml"),
                Some(admin.as_str()),
            ),
            (
                "patch as text/plain",
                Method::PATCH,
                "/employees/1",
                Some("text/plain"),
                Some(admin.as_str()),
            ),
        ];
        for (case, method, path, content_type, token) in cases {
            let mut builder = Request::builder().method(method).uri(path);
            if let Some(content_type) = content_type {
                builder = builder.header(header::CONTENT_TYPE, content_type);
            }
            if let Some(token) = token {
                builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
            }
            let res = app
                .send_request(
                    builder
                        .body(Body::from(register.clone()))
                        .expect("valid request"),
                )
                .await;
            assert_eq!(
                res.status,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{case}: {}",
                res.text()
            );
            assert!(
                res.detail().starts_with("Unsupported media type"),
                "{case}: {}",
                res.text()
            );
        }
        // Control: a charset parameter is fine.
        let req = Request::builder()
            .method(Method::POST)
            .uri("/auth/register")
            .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
            .body(Body::from(register))
            .expect("valid request");
        assert_eq!(app.send_request(req).await.status, StatusCode::CREATED);
    });

    db_test!(
        list_queries_are_bounded_and_unknown_parameters_refused,
        |app| {
            let admin = app.admin_token().await;
            let too_long = "a".repeat(101);
            let cases = [
                ("/employees/?limit=1001".to_owned(), Some("query.limit")),
                ("/employees/?limit=0".to_owned(), Some("query.limit")),
                (
                    "/employees/?offset=10000001".to_owned(),
                    Some("query.offset"),
                ),
                ("/employees/?colour=red".to_owned(), Some("query.colour")),
                (format!("/employees/?city={too_long}"), Some("query.city")),
                (
                    format!("/employees/?country={too_long}"),
                    Some("query.country"),
                ),
                ("/users/?limit=1001".to_owned(), Some("query.limit")),
                ("/users/?colour=red".to_owned(), Some("query.colour")),
                // Controls: the boundaries themselves are accepted (length counts characters).
                ("/employees/?limit=1000".to_owned(), None),
                (format!("/employees/?city={}", pct(&"é".repeat(100))), None),
                ("/users/?limit=1000".to_owned(), None),
            ];
            for (path, error_at) in &cases {
                let res = app.get(path, Some(&admin)).await;
                match error_at {
                    Some(loc) => assert_invalid_at(&res, loc, path),
                    None => assert_eq!(res.status, StatusCode::OK, "{path}: {}", res.text()),
                }
            }
        }
    );

    db_test!(
        a_stalled_upload_is_cut_off_and_excess_requests_get_a_fast_503,
        TestApp::configure(|config| {
            config.max_concurrent_requests = 1;
            config.request_timeout = Duration::from_secs(1);
        }),
        |app| {
            let router = app.router.clone();
            let req = from_peer(
                json_req(Method::POST, "/auth/register", None, Body::new(Stalled)),
                app.peer,
            );
            let started = Instant::now();
            let stalled = tokio::spawn(async move { call(&router, req).await });
            // Let the stalled upload take the only slot.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let sent = Instant::now();
            let shed = app.get("/", None).await;
            assert_eq!(
                shed.status,
                StatusCode::SERVICE_UNAVAILABLE,
                "second request while the slot is held: {}",
                shed.text()
            );
            assert!(
                sent.elapsed() < Duration::from_millis(500),
                "503 took {:?}",
                sent.elapsed()
            );
            assert!(retry_after(&shed, "503") >= 1);

            let timed_out = stalled.await.expect("stalled request task");
            assert_eq!(
                timed_out.status,
                StatusCode::REQUEST_TIMEOUT,
                "{}",
                timed_out.text()
            );
            assert_eq!(timed_out.detail(), "Request timed out");
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "stalled request held for {:?}",
                started.elapsed()
            );
            assert_eq!(
                app.get("/", None).await.status,
                StatusCode::OK,
                "the slot was not released"
            );
        }
    );
}

// ---------------------------------------------------------------------------------------------
// API5:2023 Broken Function Level Authorization
// ---------------------------------------------------------------------------------------------
mod api5_function_level_authorization {
    use super::*;

    db_test!(
        a_normal_user_gets_403_on_every_admin_route_and_changes_nothing,
        |app| {
            let admin = app.admin_token().await;
            let before = app
                .create_employee(
                    &admin,
                    1,
                    "Ada Lovelace",
                    "London",
                    "United Kingdom",
                    "1985-12-10",
                )
                .await;
            let user = app.user_token().await;
            let cases = [
                (
                    "create employee",
                    app.post_json("/employees/", Some(&user), employee_body(2))
                        .await,
                ),
                (
                    "update employee",
                    app.patch_json("/employees/1", Some(&user), json!({"city": "Paris"}))
                        .await,
                ),
                (
                    "delete employee",
                    app.delete("/employees/1", Some(&user)).await,
                ),
                ("list users", app.get("/users/", Some(&user)).await),
            ];
            for (case, res) in &cases {
                assert_forbidden(res, case);
            }
            assert_eq!(
                app.get("/employees/1", Some(&admin)).await.json(),
                before,
                "employee 1 changed"
            );
            assert_eq!(
                app.get("/employees/2", Some(&admin)).await.status,
                StatusCode::NOT_FOUND,
                "employee 2 created"
            );
        }
    );

    db_test!(anonymous_callers_get_401_not_403_on_admin_routes, |app| {
        let cases = [
            (
                "create employee",
                app.post_json("/employees/", None, employee_body(2)).await,
            ),
            (
                "update employee",
                app.patch_json("/employees/1", None, json!({"city": "Paris"}))
                    .await,
            ),
            ("delete employee", app.delete("/employees/1", None).await),
            ("list users", app.get("/users/", None).await),
        ];
        for (case, res) in &cases {
            assert_eq!(
                res.status,
                StatusCode::UNAUTHORIZED,
                "{case}: {}",
                res.text()
            );
            assert_eq!(res.detail(), "Not authenticated", "{case}");
        }
    });

    db_test!(
        a_demoted_admin_loses_rights_at_once_and_a_promoted_user_gains_them,
        |app| {
            let admin = app.admin_token().await;
            let user = app.user_token().await;
            assert_eq!(
                app.get("/users/", Some(&admin)).await.status,
                StatusCode::OK
            );

            let admin_name = Username::parse(ADMIN_USERNAME).expect("valid username");
            app.state
                .db
                .set_admin(&admin_name, false)
                .await
                .expect("demote works");
            assert_forbidden(
                &app.get("/users/", Some(&admin)).await,
                "demoted admin lists users",
            );
            assert_forbidden(
                &app.post_json("/employees/", Some(&admin), employee_body(1))
                    .await,
                "demoted admin creates",
            );
            assert_eq!(
                app.get("/users/me", Some(&admin)).await.json()["is_admin"],
                false
            );

            let alice = Username::parse("alice").expect("valid username");
            app.state
                .db
                .set_admin(&alice, true)
                .await
                .expect("promote works");
            assert_eq!(
                app.get("/users/", Some(&user)).await.status,
                StatusCode::OK,
                "promoted user, same token"
            );
        }
    );
}

// ---------------------------------------------------------------------------------------------
// API6:2023 Unrestricted Access to Sensitive Business Flows (account creation)
// ---------------------------------------------------------------------------------------------
mod api6_sensitive_business_flows {
    use super::*;

    db_test!(
        registration_is_limited_per_client_address,
        TestApp::configure(|config| {
            config.register_burst = 2;
            config.register_per_hour = 1;
        }),
        |app| {
            register_ok(&app, "user-1").await;
            register_ok(&app, "user-2").await;
            let wait = assert_too_many(
                &app.register("user-3", USER_PASSWORD).await,
                "third registration",
            );
            assert!(
                wait > 60,
                "refill is slow (one per hour), got Retry-After {wait}"
            );
            let body = json!({"username": "user-3", "password": USER_PASSWORD}).to_string();
            let spoofed = with_header(
                json_req(Method::POST, "/auth/register", None, body.clone()),
                "x-forwarded-for",
                "198.51.100.9",
            );
            assert_too_many(&app.send_request(spoofed).await, "spoofed X-Forwarded-For");
            assert_eq!(
                app.login_raw("user-3", USER_PASSWORD).await.status,
                StatusCode::UNAUTHORIZED,
                "user-3 was created"
            );

            let res = app
                .send_request(from_peer(
                    json_req(Method::POST, "/auth/register", None, body),
                    other_peer(40),
                ))
                .await;
            assert_eq!(
                res.status,
                StatusCode::CREATED,
                "another address is unaffected: {}",
                res.text()
            );
        }
    );
}

// ---------------------------------------------------------------------------------------------
// API7:2023 Server Side Request Forgery
// ---------------------------------------------------------------------------------------------
// The service makes no outbound requests on a client's behalf; the one place a client could
// name a URL is a token's `jku`/`x5u` header, which must never be fetched.
mod api7_ssrf {
    use super::*;

    db_test!(
        a_token_naming_a_key_url_is_rejected_without_fetching_it,
        |app| {
            let id = register_ok(&app, "alice").await;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind a local port");
            let url = format!(
                "http://{}/jwks.json",
                listener.local_addr().expect("local address")
            );
            for key in ["jku", "x5u"] {
                let token = forge(
                    &json!({"alg": "HS256", "typ": "JWT", key: url}),
                    &claims(id),
                    Algorithm::HS256,
                );
                assert_invalid_token(&app.get("/users/me", Some(&token)).await, key);
            }
            let contacted =
                tokio::time::timeout(Duration::from_millis(300), listener.accept()).await;
            assert!(
                contacted.is_err(),
                "the server connected to the URL in the token header"
            );
        }
    );
}

// ---------------------------------------------------------------------------------------------
// API8:2023 Security Misconfiguration
// ---------------------------------------------------------------------------------------------
mod api8_security_misconfiguration {
    use super::*;

    db_test!(
        every_response_carries_the_secure_headers_and_no_server_banner,
        |app| {
            let admin = app.admin_token().await;
            app.create_employee(
                &admin,
                1,
                "Ada Lovelace",
                "London",
                "United Kingdom",
                "1985-12-10",
            )
            .await;
            let user = app.user_token().await;
            let big = vec![b' '; BODY_LIMIT + 1];
            let too_large = Request::builder()
                .method(Method::POST)
                .uri("/auth/register")
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::CONTENT_LENGTH, big.len())
                .body(Body::from(big))
                .expect("valid request");
            let login = app.login_raw("alice", USER_PASSWORD).await;
            assert_eq!(login.header("pragma"), Some("no-cache"), "token response");
            let cases = [
                ("200 welcome", StatusCode::OK, app.get("/", None).await),
                ("200 token", StatusCode::OK, login),
                (
                    "200 list",
                    StatusCode::OK,
                    app.get("/employees/", Some(&user)).await,
                ),
                (
                    "201 register",
                    StatusCode::CREATED,
                    app.register("bob", USER_PASSWORD).await,
                ),
                (
                    "204 delete",
                    StatusCode::NO_CONTENT,
                    app.delete("/employees/1", Some(&admin)).await,
                ),
                (
                    "401 no token",
                    StatusCode::UNAUTHORIZED,
                    app.get("/users/me", None).await,
                ),
                (
                    "401 bad token",
                    StatusCode::UNAUTHORIZED,
                    app.get("/users/me", Some("garbage")).await,
                ),
                (
                    "403 not admin",
                    StatusCode::FORBIDDEN,
                    app.get("/users/", Some(&user)).await,
                ),
                (
                    "404 unknown path",
                    StatusCode::NOT_FOUND,
                    app.get("/no/such/path", None).await,
                ),
                (
                    "404 unknown employee",
                    StatusCode::NOT_FOUND,
                    app.get("/employees/999", Some(&user)).await,
                ),
                (
                    "405 wrong method",
                    StatusCode::METHOD_NOT_ALLOWED,
                    app.delete("/", None).await,
                ),
                (
                    "409 duplicate",
                    StatusCode::CONFLICT,
                    app.register("BOB", USER_PASSWORD).await,
                ),
                (
                    "413 too large",
                    StatusCode::PAYLOAD_TOO_LARGE,
                    app.send_request(too_large).await,
                ),
                (
                    "415 wrong type",
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    app.post_json(
                        "/auth/token",
                        None,
                        json!({"username": "alice", "password": USER_PASSWORD}),
                    )
                    .await,
                ),
                (
                    "422 invalid",
                    StatusCode::UNPROCESSABLE_ENTITY,
                    app.post_json("/auth/register", None, json!({})).await,
                ),
            ];
            for (case, status, res) in &cases {
                assert_eq!(res.status, *status, "{case}: {}", res.text());
                assert_hardened(res, case);
            }
        }
    );

    db_test!(a_wrong_method_answers_405_with_allow, |app| {
        let cases = [
            (Method::PUT, "/employees/", &["GET", "POST"][..]),
            (Method::PUT, "/employees/1", &["GET", "PATCH", "DELETE"][..]),
            (Method::DELETE, "/", &["GET"][..]),
            (Method::GET, "/auth/token", &["POST"][..]),
        ];
        for (method, path, allowed) in cases {
            let req = Request::builder()
                .method(method.clone())
                .uri(path)
                .body(Body::empty())
                .expect("valid request");
            let res = app.send_request(req).await;
            assert_eq!(
                res.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}: {}",
                res.text()
            );
            assert_eq!(res.detail(), "Method Not Allowed", "{method} {path}");
            let allow = res
                .header("allow")
                .unwrap_or_else(|| panic!("{method} {path}: no Allow header"));
            for m in allowed {
                assert!(
                    allow.contains(m),
                    "{method} {path}: Allow {allow:?} lacks {m}"
                );
            }
        }
    });

    db_test!(cors_is_off_by_default, |app| {
        let simple = with_header(get_req("/", None), "origin", "https://app.example.com");
        let preflight = Request::builder()
            .method(Method::OPTIONS)
            .uri("/employees/")
            .header(header::ORIGIN, "https://app.example.com")
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(
                header::ACCESS_CONTROL_REQUEST_HEADERS,
                "authorization,content-type",
            )
            .body(Body::empty())
            .expect("valid request");
        for (case, req) in [("simple request", simple), ("preflight", preflight)] {
            let res = app.send_request(req).await;
            assert!(
                res.headers
                    .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
                    .is_none(),
                "{case}: {:?}",
                res.headers
            );
            assert!(
                res.headers
                    .get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS)
                    .is_none(),
                "{case}: {:?}",
                res.headers
            );
        }
    });

    db_test!(
        cors_echoes_only_an_allowed_origin,
        TestApp::configure(
            |config| config.cors_allowed_origins = vec!["https://app.example.com".into()]
        ),
        |app| {
            let allowed = "https://app.example.com";
            let res = app
                .send_request(with_header(get_req("/", None), "origin", allowed))
                .await;
            assert_eq!(res.header("access-control-allow-origin"), Some(allowed));

            let preflight = Request::builder()
                .method(Method::OPTIONS)
                .uri("/employees/")
                .header(header::ORIGIN, allowed)
                .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
                .header(
                    header::ACCESS_CONTROL_REQUEST_HEADERS,
                    "authorization,content-type",
                )
                .body(Body::empty())
                .expect("valid request");
            let res = app.send_request(preflight).await;
            assert_eq!(
                res.header("access-control-allow-origin"),
                Some(allowed),
                "preflight"
            );
            let methods = res
                .header("access-control-allow-methods")
                .unwrap_or_default();
            assert!(
                methods.contains("POST"),
                "preflight allow-methods {methods:?}"
            );

            for origin in [
                "https://evil.example.com",
                "https://app.example.com.evil.example",
                "null",
                "http://app.example.com",
            ] {
                let res = app
                    .send_request(with_header(get_req("/", None), "origin", origin))
                    .await;
                assert!(
                    res.headers
                        .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
                        .is_none(),
                    "{origin}: {:?}",
                    res.headers
                );
            }
        }
    );

    db_test!(error_bodies_never_reveal_internals, |app| {
        let admin = app.admin_token().await;
        app.create_employee(
            &admin,
            1,
            "Ada Lovelace",
            "London",
            "United Kingdom",
            "1985-12-10",
        )
        .await;
        let mut nul_city = employee_body(2);
        nul_city["city"] = json!("Os\u{0}lo");
        let mut bad_date = employee_body(3);
        bad_date["emp_dob"] = json!("2001-02-29");
        let bad_form = Request::builder()
            .method(Method::POST)
            .uri("/auth/token")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from("%%%=%%%&&&"))
            .expect("valid request");
        let cases = [
            (
                "malformed JSON",
                json_req(Method::POST, "/employees/", Some(&admin), r#"{"emp_id": "#),
            ),
            (
                "invalid UTF-8",
                json_req(
                    Method::POST,
                    "/employees/",
                    Some(&admin),
                    vec![0xff_u8, 0xfe, 0xfd],
                ),
            ),
            (
                "deeply nested JSON",
                json_req(Method::POST, "/auth/register", None, "[".repeat(100_000)),
            ),
            (
                "JSON array body",
                json_req(Method::POST, "/employees/", Some(&admin), "[]"),
            ),
            (
                "NUL in a string",
                json_req(
                    Method::POST,
                    "/employees/",
                    Some(&admin),
                    nul_city.to_string(),
                ),
            ),
            (
                "impossible date",
                json_req(
                    Method::POST,
                    "/employees/",
                    Some(&admin),
                    bad_date.to_string(),
                ),
            ),
            (
                "duplicate emp_id",
                json_req(
                    Method::POST,
                    "/employees/",
                    Some(&admin),
                    employee_body(1).to_string(),
                ),
            ),
            (
                "duplicate username",
                json_req(
                    Method::POST,
                    "/auth/register",
                    None,
                    json!({"username": "ADMIN", "password": USER_PASSWORD}).to_string(),
                ),
            ),
            ("garbage token", get_req("/users/me", Some("garbage"))),
            ("huge token", get_req("/users/me", Some(&"a".repeat(5000)))),
            (
                "garbage cursor",
                get_req("/employees/?cursor=%00%FF", Some(&admin)),
            ),
            (
                "path traversal",
                get_req("/employees/1/../../etc/passwd", Some(&admin)),
            ),
            ("malformed form", bad_form),
        ];
        for (case, req) in cases {
            let res = app.send_request(req).await;
            assert!(
                res.status.is_client_error(),
                "{case}: {} {}",
                res.status,
                res.text()
            );
            assert_no_internals(&res, case);
        }
    });

    db_test!(a_lost_database_gives_503_quickly_without_internals, |app| {
        let admin = app.admin_token().await;
        app.state.db.close().await;
        let cases = [
            ("list employees", get_req("/employees/", Some(&admin))),
            ("login", login_req(ADMIN_USERNAME, helpers::ADMIN_PASSWORD)),
            ("readiness", get_req("/readyz", None)),
        ];
        for (case, req) in cases {
            let started = Instant::now();
            let res = app.send_request(req).await;
            assert_eq!(
                res.status,
                StatusCode::SERVICE_UNAVAILABLE,
                "{case}: {}",
                res.text()
            );
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{case} took {:?}",
                started.elapsed()
            );
            assert!(retry_after(&res, case) >= 1);
            assert_no_internals(&res, case);
        }
    });

    db_test!(
        a_malformed_request_id_is_replaced_and_a_clean_one_kept,
        |app| {
            let res = app
                .send_request(with_header(
                    get_req("/", None),
                    "x-request-id",
                    "client-req-42",
                ))
                .await;
            assert_eq!(res.header("x-request-id"), Some("client-req-42"));
            let long = "a".repeat(100);
            for forged in ["two words", "id<script>", "id\"quoted\"", long.as_str()] {
                let res = app
                    .send_request(with_header(get_req("/", None), "x-request-id", forged))
                    .await;
                let echoed = res.header("x-request-id").unwrap_or_default();
                assert!(
                    !echoed.is_empty() && echoed != forged,
                    "{forged:?} was kept as {echoed:?}"
                );
            }
        }
    );
}

// ---------------------------------------------------------------------------------------------
// API9:2023 Improper Inventory Management
// ---------------------------------------------------------------------------------------------
mod api9_inventory {
    use super::*;

    db_test!(no_undocumented_debug_or_legacy_endpoints_answer, |app| {
        let admin = app.admin_token().await;
        for path in [
            "/debug",
            "/metrics",
            "/admin",
            "/.env",
            "/actuator/health",
            "/api/v1/employees/",
            "/graphql",
            "/server-status",
            "/users/all",
        ] {
            let res = app.get(path, Some(&admin)).await;
            assert_eq!(res.status, StatusCode::NOT_FOUND, "{path}: {}", res.text());
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Injection (API8:2019; in 2023 folded into API8/API10): every parameter, LIKE, big numbers
// ---------------------------------------------------------------------------------------------
mod injection {
    use super::*;

    async fn seed(app: &TestApp) -> String {
        let admin = app.admin_token().await;
        app.create_employee(&admin, 1, "Ada Lovelace", "Oslo", "Norway", "1985-12-10")
            .await;
        app.create_employee(&admin, 2, "Bob Builder", "Bergen", "Norway", "1990-01-01")
            .await;
        admin
    }

    /// Both employees still there, and the users table still answers.
    async fn assert_tables_intact(app: &TestApp, admin: &str) {
        let res = app.get("/employees/", Some(admin)).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
        assert_eq!(
            res.header("x-total-count"),
            Some("2"),
            "employees table damaged"
        );
        assert_eq!(res.json().as_array().map(Vec::len), Some(2));
        assert_eq!(
            app.get("/users/", Some(admin)).await.status,
            StatusCode::OK,
            "users table damaged"
        );
    }

    db_test!(sql_in_the_path_emp_id_is_a_422, |app| {
        let admin = seed(&app).await;
        for attack in INJECTIONS.iter().chain(&["1 OR 1=1", "1--", "1;"]) {
            let path = format!("/employees/{}", pct(attack));
            let cases = [
                ("GET", app.get(&path, Some(&admin)).await),
                (
                    "PATCH",
                    app.patch_json(&path, Some(&admin), json!({"city": "Paris"}))
                        .await,
                ),
                ("DELETE", app.delete(&path, Some(&admin)).await),
            ];
            for (method, res) in &cases {
                assert_invalid_at(res, "path.emp_id", &format!("{method} {attack:?}"));
            }
        }
        assert_tables_intact(&app, &admin).await;
    });

    db_test!(
        sql_in_the_city_and_country_filters_matches_nothing_and_harms_nothing,
        |app| {
            let admin = seed(&app).await;
            for attack in INJECTIONS {
                for filter in ["city", "country"] {
                    let path = format!("/employees/?{filter}={}", pct(attack));
                    let res = app.get(&path, Some(&admin)).await;
                    assert_eq!(
                        res.status,
                        StatusCode::OK,
                        "{filter}={attack:?}: {}",
                        res.text()
                    );
                    assert_eq!(res.json(), json!([]), "{filter}={attack:?}");
                    assert_eq!(
                        res.header("x-total-count"),
                        Some("0"),
                        "{filter}={attack:?}"
                    );
                }
            }
            assert_tables_intact(&app, &admin).await;
        }
    );

    db_test!(sql_in_sort_by_and_order_is_a_422, |app| {
        let admin = seed(&app).await;
        let extra = [
            "password_hash",
            "emp_id desc",
            "emp_id; DROP TABLE users",
            "(SELECT 1)",
            "EMP_ID",
            "ASC",
        ];
        for attack in INJECTIONS.iter().chain(&extra) {
            for param in ["sort_by", "order"] {
                let res = app
                    .get(
                        &format!("/employees/?{param}={}", pct(attack)),
                        Some(&admin),
                    )
                    .await;
                assert_invalid_at(
                    &res,
                    &format!("query.{param}"),
                    &format!("{param}={attack:?}"),
                );
            }
        }
        assert_tables_intact(&app, &admin).await;
    });

    db_test!(
        sql_in_a_forged_list_cursor_matches_nothing_and_harms_nothing,
        |app| {
            let admin = seed(&app).await;
            let forged = [
                json!({"s": "city", "o": "asc", "c": "' or '1'='1", "v": "') OR 1=1 --", "k": 0}),
                json!({"s": "emp_name", "o": "desc", "v": "'; DROP TABLE employees; --", "k": 0, "n": "%"}),
            ];
            for cursor in &forged {
                let token = URL_SAFE_NO_PAD.encode(cursor.to_string());
                let res = app
                    .get(&format!("/employees/?cursor={token}&limit=5"), Some(&admin))
                    .await;
                assert!(
                    matches!(
                        res.status,
                        StatusCode::OK | StatusCode::UNPROCESSABLE_ENTITY
                    ),
                    "{cursor}: {}",
                    res.text()
                );
                if res.status == StatusCode::OK {
                    assert_eq!(res.json(), json!([]), "{cursor} matched rows");
                }
            }
            let bad_column = URL_SAFE_NO_PAD
                .encode(json!({"s": "password_hash", "o": "asc", "v": "x", "k": 0}).to_string());
            assert_invalid_at(
                &app.get(&format!("/employees/?cursor={bad_column}"), Some(&admin))
                    .await,
                "query.cursor",
                "cursor sorting by password_hash",
            );
            assert_tables_intact(&app, &admin).await;
        }
    );

    db_test!(
        sql_in_the_login_username_is_an_ordinary_failed_login,
        TestApp::configure(|config| config.login_ip = UNTHROTTLED),
        |app| {
            let admin = seed(&app).await;
            for attack in INJECTIONS
                .iter()
                .chain(&["admin' --", "admin'/*", "' OR 1=1 LIMIT 1 --"])
            {
                let res = app.login_raw(attack, "whatever password").await;
                assert_eq!(
                    res.status,
                    StatusCode::UNAUTHORIZED,
                    "{attack:?}: {}",
                    res.text()
                );
                assert_eq!(res.detail(), "Incorrect username or password", "{attack:?}");
            }
            assert_tables_intact(&app, &admin).await;
        }
    );

    db_test!(sql_in_the_registered_username_is_a_422, |app| {
        let admin = seed(&app).await;
        for attack in INJECTIONS
            .iter()
            .chain(&["admin' --", "x'); DROP TABLE users; --"])
        {
            let res = app.register(attack, USER_PASSWORD).await;
            assert_invalid_at(&res, "body.username", attack);
        }
        assert_tables_intact(&app, &admin).await;
    });

    db_test!(like_wildcards_in_filters_match_only_themselves, |app| {
        let admin = app.admin_token().await;
        let cities = ["100% Oslo", "A_B", "Back\\slash", "Plain"];
        for (n, city) in (1..).zip(cities) {
            app.create_employee(&admin, n, "Test Person", city, "Testland", "1990-05-17")
                .await;
        }
        let cases: [(&str, &str, &[&str]); 14] = [
            ("city", "%", &["100% Oslo"]),
            ("city", "_", &["A_B"]),
            ("city", "\\", &["Back\\slash"]),
            ("city", "0% o", &["100% Oslo"]),
            ("city", "a_b", &["A_B"]),
            ("city", "k\\s", &["Back\\slash"]),
            ("city", "%_", &[]),
            ("city", "a%", &[]),
            ("city", "%%", &[]),
            ("city", "\\\\", &[]),
            ("city", "PLAIN", &["Plain"]),
            ("country", "%", &[]),
            ("country", "_", &[]),
            ("country", "TLAND", &cities),
        ];
        for (filter, value, expected) in cases {
            let res = app
                .get(
                    &format!("/employees/?{filter}={}", pct(value)),
                    Some(&admin),
                )
                .await;
            assert_eq!(
                res.status,
                StatusCode::OK,
                "{filter}={value:?}: {}",
                res.text()
            );
            let found: Vec<String> = res
                .json()
                .as_array()
                .expect("a JSON array")
                .iter()
                .map(|e| e["city"].as_str().expect("city").to_owned())
                .collect();
            assert_eq!(found, expected, "{filter}={value:?}");
            assert_eq!(
                res.header("x-total-count"),
                Some(expected.len().to_string().as_str()),
                "{filter}={value:?}"
            );
        }
    });

    db_test!(oversized_integers_are_a_422_never_a_500, |app| {
        let admin = app.admin_token().await;
        let body = |emp_id: &str| {
            format!(
                r#"{{"emp_id": {emp_id}, "emp_name": "Big Number", "city": "Oslo", "country": "Norway", "emp_dob": "1990-05-17"}}"#
            )
        };
        for emp_id in [
            "9007199254740992",
            "99999999999999999999",
            "18446744073709551616",
            "-9223372036854775809",
            "1e400",
            "1e20",
            "0",
            "-1",
            "1.5",
        ] {
            let res = app
                .send_request(json_req(
                    Method::POST,
                    "/employees/",
                    Some(&admin),
                    body(emp_id),
                ))
                .await;
            assert_eq!(
                res.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "emp_id {emp_id}: {}",
                res.text()
            );
        }
        for raw in [
            "9007199254740992",
            "99999999999999999999",
            "18446744073709551616",
            "-1",
            "0",
            "1e3",
            "0x10",
            "+1",
        ] {
            let path = format!("/employees/{raw}");
            assert_invalid_at(
                &app.get(&path, Some(&admin)).await,
                "path.emp_id",
                &format!("GET {raw}"),
            );
            assert_invalid_at(
                &app.delete(&path, Some(&admin)).await,
                "path.emp_id",
                &format!("DELETE {raw}"),
            );
        }
        for query in [
            "limit=99999999999999999999",
            "offset=99999999999999999999999999",
            "limit=1e3",
            "offset=-1",
        ] {
            let res = app.get(&format!("/employees/?{query}"), Some(&admin)).await;
            assert_eq!(
                res.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{query}: {}",
                res.text()
            );
        }
        // Control: the largest JSON-safe integer is accepted and round-trips exactly.
        let res = app
            .send_request(json_req(
                Method::POST,
                "/employees/",
                Some(&admin),
                body("9007199254740991"),
            ))
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
        let res = app.get("/employees/9007199254740991", Some(&admin)).await;
        assert_eq!(res.json()["emp_id"], json!(9_007_199_254_740_991_u64));
    });

    db_test!(a_422_never_echoes_the_submitted_password, |app| {
        // Each password carries a unique marker; no part of a 422 body may contain it.
        let marker = || format!("Zq{}", uuid::Uuid::new_v4().simple());
        let long = marker();
        let too_long = format!("{long}{}", "x".repeat(200 - long.len()));
        let too_short = marker()[..12].to_owned();
        let extra = marker();
        let named = marker();
        let cases = [
            (
                "200 characters",
                app.register("carol", &too_long).await,
                &long,
            ),
            (
                "too short",
                app.register("carol", &too_short).await,
                &too_short,
            ),
            (
                "valid, with an extra field",
                app.post_json(
                    "/auth/register",
                    None,
                    json!({"username": "carol", "password": extra, "role": "admin"}),
                )
                .await,
                &extra,
            ),
            (
                "containing the username",
                app.register("margaret", &format!("margaret {named}")).await,
                &named,
            ),
            (
                "200 characters at login",
                app.login_raw("carol", &too_long).await,
                &long,
            ),
        ];
        for (case, res, marker) in &cases {
            assert_eq!(
                res.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{case}: {}",
                res.text()
            );
            assert!(
                !res.text().contains(marker.as_str()),
                "{case}: the password came back: {}",
                res.text()
            );
        }
    });
}
