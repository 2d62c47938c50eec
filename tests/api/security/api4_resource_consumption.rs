//! API4:2023 Unrestricted Resource Consumption: per-client budgets, body and query limits,
//! stalled clients, overload. (The same budgets shared between instances through Redis are in
//! `redis.rs`.)

use std::time::{Duration, Instant};

use axum::{
    body::Body,
    http::{Method, Request, StatusCode, header},
};
use employee_api::middleware::BODY_LIMIT;
use serde_json::json;

use crate::{db_test, helpers::*};

/// With RATE_LIMIT_PER_MINUTE=5: five anonymous requests from `app.peer` pass with RateLimit
/// headers, the sixth is refused; probes stay unlimited.
pub(super) async fn assert_budget_of_five(app: &Instance) {
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
        let setup = app.from(other_peer(20));
        let alice = setup.user_token_for("alice").await;
        let bob = setup.user_token_for("bob").await;
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
    invalid_tokens_are_charged_to_the_client_address,
    TestApp::configure(|config| config.rate_limit_per_minute = 5),
    |app| {
        let alice = app.from(other_peer(21)).user_token_for("alice").await;
        let base = claims_of(&alice);
        // Five different unacceptable tokens: each is refused, and each is charged to the
        // address. Were they charged to the token, every fake one would bring a fresh budget.
        for n in 1..=5 {
            let fake = forge_with(
                &json!({"alg": "HS256", "typ": "JWT"}),
                &with_claim(base.clone(), "jti", json!(n)),
                jsonwebtoken::Algorithm::HS256,
                format!("not the server's secret, attempt {n}, long enough").as_bytes(),
            );
            assert_invalid_token(
                &app.get("/users/me", Some(&fake)).await,
                &format!("fake token {n}"),
            );
        }
        assert_too_many(
            &app.get("/users/me", Some("yet-another-fake-token")).await,
            "a sixth fake token",
        );
        assert_too_many(&app.get("/", None).await, "no token, same address");
        // Controls: a valid token has its user's own budget; another address has its own.
        let res = app.get("/users/me", Some(&alice)).await;
        assert_eq!(res.status, StatusCode::OK, "alice: {}", res.text());
        let elsewhere = app.from(other_peer(22));
        assert_invalid_token(
            &elsewhere.get("/users/me", Some("a-fake-token")).await,
            "a fake token from another address",
        );
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

/// CSV rows of employees, at least `bytes` long: an import body that is valid all the way.
fn csv_of_at_least(bytes: usize) -> Vec<u8> {
    let mut csv = String::from("emp_id,emp_name,city,country,emp_dob\n");
    let mut id = 1;
    while csv.len() < bytes {
        csv.push_str(&format!("{id},Person {id},Oslo,Norway,1990-05-17\n"));
        id += 1;
    }
    csv.into_bytes()
}

/// Method, path, content type, token, and an oversized body for it.
type Route<'a> = (Method, &'a str, &'a str, Option<&'a str>, &'a [u8]);

db_test!(
    bodies_over_one_mebibyte_are_refused_with_413_even_when_chunked,
    |app| {
        let admin = app.admin_token().await;
        let spaces = vec![b' '; BODY_LIMIT + 1];
        let rows = csv_of_at_least(BODY_LIMIT + 1);
        let json_rows = {
            let one = employee_body(1).to_string();
            let mut array = String::from("[");
            while array.len() <= BODY_LIMIT {
                array.push_str(&one);
                array.push(',');
            }
            array.push_str(&one);
            array.push(']');
            array.into_bytes()
        };
        let routes: [Route; 7] = [
            (
                Method::POST,
                "/auth/register",
                "application/json",
                None,
                &spaces,
            ),
            (
                Method::POST,
                "/auth/token",
                "application/x-www-form-urlencoded",
                None,
                &spaces,
            ),
            (
                Method::POST,
                "/employees/",
                "application/json",
                Some(&admin),
                &spaces,
            ),
            (
                Method::PATCH,
                "/employees/1",
                "application/json",
                Some(&admin),
                &spaces,
            ),
            // Import bodies that are valid rows all the way: a streaming importer that stored
            // the first batches before noticing the size would show below.
            (
                Method::POST,
                "/employees/import",
                "text/csv",
                Some(&admin),
                &rows,
            ),
            (
                Method::POST,
                "/employees/import?on_conflict=skip",
                "text/csv",
                Some(&admin),
                &rows,
            ),
            (
                Method::POST,
                "/employees/import",
                "application/json",
                Some(&admin),
                &json_rows,
            ),
        ];
        for (method, path, content_type, token, big) in routes {
            assert!(big.len() > BODY_LIMIT);
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
            let cases = [
                (
                    "with Content-Length",
                    build(Body::from(big.to_vec()), Some(big.len())),
                ),
                (
                    "without Content-Length",
                    build(Body::from(big.to_vec()), None),
                ),
                ("chunked", build(chunked(big, 64 * 1024), None)),
            ];
            for (case, req) in cases {
                assert_too_large(
                    &app.send_request(req).await,
                    &format!("{method} {path} {case}"),
                );
            }
        }
        let list = app.get("/employees/", Some(&admin)).await;
        assert_eq!(
            list.header("x-total-count"),
            Some("0"),
            "a refused body stored rows: {}",
            list.text()
        );
        // Controls: just under the limit is read and judged on its content (on a route with
        // the 1 MiB limit: /auth/* takes 4 KiB).
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
        let res = app
            .import(
                Some(&admin),
                "",
                "text/csv",
                csv_of_at_least(BODY_LIMIT - 100),
            )
            .await;
        assert_eq!(
            res.status,
            StatusCode::OK,
            "import under the limit: {}",
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
        let user = app.user_token().await;
        let admin = app.admin_token().await;
        let too_long = "a".repeat(101);
        let cases = [
            ("/employees/?limit=1001".to_owned(), Some("query.limit")),
            ("/employees/?limit=0".to_owned(), Some("query.limit")),
            ("/employees/?limit=ten".to_owned(), Some("query.limit")),
            ("/employees/?offset=-1".to_owned(), Some("query.offset")),
            (
                "/employees/?offset=10000001".to_owned(),
                Some("query.offset"),
            ),
            (
                "/employees/?sort_by=password_hash".to_owned(),
                Some("query.sort_by"),
            ),
            (
                "/employees/?sort_by=emp_id;DROP".to_owned(),
                Some("query.sort_by"),
            ),
            ("/employees/?order=sideways".to_owned(), Some("query.order")),
            ("/employees/?colour=red".to_owned(), Some("query.colour")),
            (
                "/employees/?cursor=not-a-cursor".to_owned(),
                Some("query.cursor"),
            ),
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
            let token = if path.starts_with("/users/") {
                &admin
            } else {
                &user
            };
            let res = app.get(path, Some(token)).await;
            match error_at {
                Some(loc) => assert_eq!(res.error_locs(), [*loc], "{path}"),
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
        let (body, reading) = Stalled::body();
        let req = json_req(Method::POST, "/auth/register", None, body);
        let started = Instant::now();
        let stalled = {
            let app = app.instance();
            tokio::spawn(async move { app.send_request(req).await })
        };
        // Once the server asks the body for data, the request holds the only slot.
        tokio::time::timeout(Duration::from_secs(5), reading.notified())
            .await
            .expect("the server starts reading the stalled body");
        let sent = Instant::now();
        let shed = app.get("/", None).await;
        let took = sent.elapsed();
        assert_eq!(
            shed.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "second request while the slot is held: {}",
            shed.text()
        );
        assert!(took < Duration::from_millis(500), "503 took {took:?}");
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
