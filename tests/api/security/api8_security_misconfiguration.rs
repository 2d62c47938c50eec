//! API8:2023 Security Misconfiguration: secure headers, methods, CORS, what errors reveal.

use std::time::{Duration, Instant};

use axum::{
    Router,
    body::Body,
    http::{Method, Request, StatusCode, header},
    routing::get,
};
use employee_api::middleware::BODY_LIMIT;
use serde_json::json;

use crate::{db_test, helpers::*};

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
        ("one employee", get_req("/employees/1", Some(&admin))),
        ("own account", get_req("/users/me", Some(&admin))),
        ("login", login_req(ADMIN_USERNAME, ADMIN_PASSWORD)),
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
        assert!(res.json()["detail"].is_string(), "{case}: {}", res.text());
        assert_no_internals(&res, case);
    }
    let live = app.get("/healthz", None).await;
    assert_eq!(
        live.status,
        StatusCode::OK,
        "liveness does not depend on the database: {}",
        live.text()
    );
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
        for forged in [
            "two words",
            "id<script>",
            "id\"quoted\"",
            "evil id\twith tab",
            long.as_str(),
        ] {
            let res = app
                .send_request(with_header(get_req("/", None), "x-request-id", forged))
                .await;
            let echoed = res.header("x-request-id").unwrap_or_default();
            assert!(
                uuid::Uuid::parse_str(echoed).is_ok(),
                "{forged:?} was answered with {echoed:?}, not a fresh UUID"
            );
        }
        let res = app.get("/healthz", None).await;
        let made = res.header("x-request-id").unwrap_or_default();
        assert!(
            uuid::Uuid::parse_str(made).is_ok(),
            "without a client id: {made:?}"
        );
    }
);

/// A handler that panics with a message full of what must never reach a client.
async fn boom() -> &'static str {
    panic!("sqlx: SELECT password_hash FROM users; secret {SECRET} at src/db.rs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_answers_only_internal_server_error_and_the_service_goes_on() {
    // No route of the product panics on purpose; a test route does, behind the product's own
    // middleware stack (the one `build_router` wraps every route in).
    let app = TestApp::spawn(Backend::Sqlite).await.expect("sqlite");
    let routes: Router<employee_api::app::AppState> = Router::new()
        .route("/boom", get(boom))
        .route("/fine", get(|| async { "fine" }));
    let stack = employee_api::middleware::stack(routes, &app.state).with_state(app.state.clone());
    let client = Instance {
        router: stack,
        peer: app.peer,
    };
    for round in 1..=2 {
        let res = client.get("/boom", None).await;
        assert_eq!(
            res.status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "round {round}: {}",
            res.text()
        );
        assert_eq!(
            res.json(),
            json!({"detail": "Internal Server Error"}),
            "round {round}"
        );
        assert_no_internals(&res, "panic");
        assert!(!res.text().contains(SECRET), "the panic message came back");
    }
    let res = client.get("/fine", None).await;
    assert_eq!(
        res.status,
        StatusCode::OK,
        "after the panics: {}",
        res.text()
    );
}
