//! Hostile traffic, in process: IPv6 address sprays, greedy clients, slow and oversized bodies,
//! forged cursors, spreadsheet formulas, deep offsets and unreadable credentials. Each test
//! sends what an attacker would and checks the service's answer and that it stays usable.

use std::time::{Duration, Instant};

use axum::{
    body::Body,
    http::{HeaderValue, Method, Request, StatusCode, header},
};
use employee_api::config::ThrottleConfig;
use serde_json::{Value, json};

use crate::{db_test, helpers::*};

fn register_req(username: &str, forwarded_for: &str) -> Request<Body> {
    Request::builder()
        .method(Method::POST)
        .uri("/auth/register")
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-forwarded-for", forwarded_for)
        .body(Body::from(
            json!({"username": username, "password": USER_PASSWORD}).to_string(),
        ))
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Addresses
// ---------------------------------------------------------------------------------------------

db_test!(
    ipv6_clients_share_one_registration_budget_per_64,
    TestApp::configure(|c| {
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        c.register_burst = 5;
        c.register_per_hour = 5;
    }),
    |app| {
        // Eight addresses of one /64, as a client holding that network would send them.
        let mut statuses = Vec::new();
        for i in 1..=8 {
            let req = register_req(&format!("spray{i}"), &format!("2001:db8:1:2::{i}"));
            statuses.push(app.send_request(req).await.status.as_u16());
        }
        assert_eq!(statuses, [201, 201, 201, 201, 201, 429, 429, 429]);
        // Another /64 has its own budget.
        let res = app
            .send_request(register_req("neighbour", "2001:db8:1:3::1"))
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    }
);

db_test!(
    an_ipv4_proxy_seen_through_a_dual_stack_listener_is_still_trusted,
    TestApp::configure(|c| {
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        c.register_burst = 1;
        c.register_per_hour = 1;
    }),
    |app| {
        // The proxy connects as ::ffff:127.0.0.1; the clients behind it are told apart.
        for (i, client) in ["198.51.100.1", "198.51.100.2"].into_iter().enumerate() {
            let req = from_peer(
                register_req(&format!("behind{i}"), client),
                addr("[::ffff:127.0.0.1]:5000"),
            );
            let res = app.send_request(req).await;
            assert_eq!(res.status, StatusCode::CREATED, "{client}: {}", res.text());
        }
        // A mapped client address is the IPv4 client: same budget as 198.51.100.1.
        let req = from_peer(
            register_req("behind9", "::ffff:198.51.100.1"),
            addr("[::ffff:127.0.0.1]:5000"),
        );
        assert_too_many(
            &app.send_request(req).await,
            "mapped address of a spent client",
        );
    }
);

db_test!(
    failed_logins_from_one_ipv6_64_count_against_one_budget,
    TestApp::configure(|c| {
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        c.login_ip = ThrottleConfig {
            free_failures: 3,
            max_failures_per_hour: 3,
        };
        c.login_account = ThrottleConfig {
            free_failures: 1000,
            max_failures_per_hour: 1000,
        };
    }),
    |app| {
        let mut statuses = Vec::new();
        for i in 1..=4 {
            let mut req = login_req(&format!("nobody{i}"), "wrong password here");
            req.headers_mut().insert(
                "x-forwarded-for",
                HeaderValue::from_str(&format!("2001:db8:7:7::{i}")).unwrap(),
            );
            statuses.push(app.send_request(req).await.status.as_u16());
        }
        assert_eq!(statuses, [401, 401, 401, 429]);
    }
);

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

db_test!(
    one_client_cannot_hold_more_than_its_requests_in_flight,
    TestApp::configure(|c| c.max_in_flight_per_client = 3),
    |app| {
        let admin = app.admin_token().await;
        let user = app.user_token().await;
        // Three requests whose bodies never arrive hold the admin's slots: each is past the
        // cap once the server starts reading its body...
        let mut held = Vec::new();
        for _ in 0..3 {
            let app = app.from(addr("127.0.0.1:1"));
            let (req, reading) = stalled_post("/employees/", &admin);
            held.push(tokio::spawn(async move {
                let _ = app.send_request(req).await;
            }));
            tokio::time::timeout(Duration::from_secs(5), reading.notified())
                .await
                .expect("the server reads the stalled body");
        }
        for task in &held {
            assert!(!task.is_finished(), "a stalled request ended early");
        }
        assert_eq!(
            app.state.limiters.in_flight.as_ref().unwrap().clients(),
            1,
            "the admin holds slots"
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        let fourth = loop {
            let res = app.get("/employees/1", Some(&admin)).await;
            if res.status == StatusCode::TOO_MANY_REQUESTS || Instant::now() > deadline {
                break res;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        // ...so a fourth is refused before its body is read, while others are served.
        assert_too_many(&fourth, "fourth request in flight");
        let other = app.get("/employees/1", Some(&user)).await;
        assert_eq!(other.status, StatusCode::NOT_FOUND, "{}", other.text());
        assert_eq!(app.get("/healthz", None).await.status, StatusCode::OK);
        for task in held {
            task.abort();
        }
        // Slots come back when the requests go away.
        let deadline = Instant::now() + Duration::from_secs(5);
        while app.get("/employees/1", Some(&admin)).await.status != StatusCode::NOT_FOUND {
            assert!(Instant::now() < deadline, "slots never came back");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
);

db_test!(
    probes_answer_while_every_request_slot_is_taken,
    TestApp::configure(|c| {
        c.max_concurrent_requests = 2;
        c.max_in_flight_per_client = 0;
    }),
    |app| {
        let admin = app.admin_token().await;
        let hold = || {
            let app = app.from(addr("127.0.0.1:1"));
            let (req, _) = stalled_post("/employees/", &admin);
            tokio::spawn(async move {
                let _ = app.send_request(req).await;
            })
        };
        // Two requests whose bodies never come take both slots. (One may lose its slot to a
        // probe request below and end with 503: it is sent again.)
        let mut held = vec![hold(), hold()];
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let res = app.get("/employees/1", Some(&admin)).await;
            if res.status == StatusCode::SERVICE_UNAVAILABLE {
                break;
            }
            assert!(Instant::now() < deadline, "the slots were never all taken");
            for task in &mut held {
                if task.is_finished() {
                    *task = hold();
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(app.get("/healthz", None).await.status, StatusCode::OK);
        assert_eq!(app.get("/readyz", None).await.status, StatusCode::OK);
        for task in held {
            task.abort();
        }
    }
);

db_test!(
    auth_requests_are_charged_to_the_address_even_with_a_token,
    TestApp::configure(|c| c.rate_limit_per_minute = 6),
    |app| {
        // Two accounts: registering and logging in spend 4 of the address's 6 requests.
        let first = app.user_token_for("tokenholder1").await;
        let second = app.user_token_for("tokenholder2").await;
        // With a token in hand, /auth/* still spends the address's budget, not the accounts'
        // (else each account a client holds would be a fresh budget for logins).
        let mut statuses = Vec::new();
        for token in [&first, &second, &first] {
            let mut req = login_req("tokenholder1", USER_PASSWORD);
            req.headers_mut().insert(
                header::AUTHORIZATION,
                HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
            );
            statuses.push(app.send_request(req).await.status.as_u16());
        }
        assert_eq!(statuses, [200, 200, 429]);
        // Elsewhere a token has its user's own budget.
        assert_eq!(
            app.get("/users/me", Some(&first)).await.status,
            StatusCode::OK
        );
    }
);

db_test!(readiness_checks_run_at_most_once_a_second, |app| {
    let first = app.get("/readyz", None).await.json();
    let second = app.get("/readyz", None).await.json();
    // The same round of checks answers both: the latencies are the very same numbers.
    assert_eq!(first, second);
    assert_eq!(first["status"], "ok");
});

db_test!(a_body_that_stops_arriving_is_answered_408, |app| {
    let admin = app.admin_token().await;
    let started = Instant::now();
    let res = app
        .send_request(stalled_post("/employees/", &admin).0)
        .await;
    assert_eq!(res.status, StatusCode::REQUEST_TIMEOUT, "{}", res.text());
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(res.json(), json!({"detail": "Request timed out"}));
});

db_test!(auth_bodies_over_4_kib_are_refused_before_parsing, |app| {
    let big = format!("username=admin&password={}", "x".repeat(5 * 1024));
    let req = Request::builder()
        .method(Method::POST)
        .uri("/auth/token")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(big))
        .unwrap();
    let res = app.send_request(req).await;
    assert_eq!(res.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", res.text());
    // A body of `=&=&...` pairs within the limit is an ordinary 422.
    let pairs = "=&".repeat(1500);
    let req = Request::builder()
        .method(Method::POST)
        .uri("/auth/token")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(pairs))
        .unwrap();
    assert_eq!(
        app.send_request(req).await.error_locs(),
        ["body.username", "body.password"]
    );
});

db_test!(a_422_lists_at_most_twenty_errors_then_a_count, |app| {
    let admin = app.admin_token().await;
    let mut body = employee_body(1);
    for i in 0..1000 {
        body[format!("extra{i}")] = json!(i);
    }
    let res = app.post_json("/employees/", Some(&admin), body).await;
    let detail = res.json()["detail"].as_array().unwrap().clone();
    assert_eq!(detail.len(), 21, "{}", res.text());
    assert_eq!(detail[20]["type"], "too_many_errors");
    assert_eq!(detail[20]["msg"], "and 980 more errors not shown");
});

db_test!(a_bare_token_request_names_both_missing_fields, |app| {
    let req = Request::builder()
        .method(Method::POST)
        .uri("/auth/token")
        .body(Body::empty())
        .unwrap();
    let res = app.send_request(req).await;
    assert_eq!(res.error_locs(), ["body.username", "body.password"]);
});

db_test!(an_unreadable_credential_is_an_invalid_token, |app| {
    for value in ["Bearer tök€n".as_bytes(), b"Bearer", b"bearer   "] {
        let mut req = Request::builder()
            .uri("/users/me")
            .body(Body::empty())
            .unwrap();
        req.headers_mut().insert(
            header::AUTHORIZATION,
            HeaderValue::from_bytes(value).unwrap(),
        );
        let res = app.send_request(req).await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED);
        assert_eq!(res.detail(), "Could not validate credentials");
        assert_eq!(
            res.header("www-authenticate"),
            Some(r#"Bearer error="invalid_token""#),
            "{value:?}"
        );
    }
});

db_test!(
    passwords_naming_the_service_in_any_spacing_or_case_are_refused,
    |app| {
        for password in [
            "EmployeeManagementAPI",
            "employee management api!",
            "my employee account pass",
            "employee-api-password",
        ] {
            let res = app.register("carol", password).await;
            assert_eq!(res.error_locs(), ["body.password"], "{password}");
            assert_eq!(res.json()["detail"][0]["type"], "password_context_word");
        }
    }
);

// ---------------------------------------------------------------------------------------------
// Inputs that reach storage or other programs
// ---------------------------------------------------------------------------------------------

db_test!(forged_cursors_are_a_422_never_a_500, |app| {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let admin = app.admin_token().await;
    for json in [
        r#"{"s":"emp_id","o":"asc","c":"\u0000","v":1,"k":1}"#,
        r#"{"s":"emp_name","o":"asc","v":"a\u0000b","k":1}"#,
        r#"{"s":"emp_dob","o":"asc","v":"99999-01-01","k":1}"#,
    ] {
        let body = URL_SAFE_NO_PAD.encode(json);
        for token in [body.clone(), format!("{body}.AAAAAAAAAAAAAAAAAAAAAA")] {
            let res = app
                .get(&format!("/employees/?cursor={token}"), Some(&admin))
                .await;
            assert_eq!(res.error_locs(), ["query.cursor"], "{json}");
        }
    }
    // The database is unharmed and still answers.
    assert_eq!(
        app.get("/employees/", Some(&admin)).await.status,
        StatusCode::OK
    );
});

db_test!(
    the_link_cursor_is_accepted_with_the_documented_defaults,
    |app| {
        let admin = app.admin_token().await;
        for id in 1..=3 {
            app.create_employee(&admin, id, "Ada", "Oslo", "Norway", "1990-01-01")
                .await;
        }
        let first = app.get("/employees/?limit=2", Some(&admin)).await;
        let link = first.header("link").unwrap().to_owned();
        let next = link.trim_start_matches('<').split('>').next().unwrap();
        // What a generated client sends: its documented defaults beside the cursor.
        let res = app
            .get(
                &format!("{next}&offset=0&order=asc&sort_by=emp_id"),
                Some(&admin),
            )
            .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
        assert_eq!(res.json()[0]["emp_id"], 3);
        // A parameter that contradicts the cursor is still refused.
        let res = app.get(&format!("{next}&order=desc"), Some(&admin)).await;
        assert_eq!(res.error_locs(), ["query.cursor"]);
    }
);

db_test!(offsets_past_max_offset_point_to_the_cursor, |app| {
    let admin = app.admin_token().await;
    let res = app.get("/employees/?offset=10001", Some(&admin)).await;
    assert_eq!(res.error_locs(), ["query.offset"]);
    assert!(
        res.json()["detail"][0]["msg"]
            .as_str()
            .unwrap()
            .contains("Link"),
        "{}",
        res.text()
    );
    assert_eq!(
        app.get("/employees/?offset=10000", Some(&admin))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        app.get("/users/?offset=10001", Some(&admin))
            .await
            .error_locs(),
        ["query.offset"]
    );
});

db_test!(
    spreadsheet_formulas_are_exported_as_text_and_imported_back_as_they_were,
    |app| {
        let admin = app.admin_token().await;
        let people = [
            (1, "=HYPERLINK(\"http://x\")", "+London", "@UK"),
            (2, "-2+3", "'=quoted", "Norway"),
            (3, "O'Brien", "Oslo", "Norway"),
        ];
        for (id, name, city, country) in people {
            app.create_employee(&admin, id, name, city, country, "1990-01-01")
                .await;
        }
        let csv = app.get("/employees/export?format=csv", Some(&admin)).await;
        let text = csv.text();
        assert!(
            text.contains(r#"1,"'=HYPERLINK(""http://x"")",'+London,'@UK,1990-01-01"#),
            "{text}"
        );
        assert!(text.contains("2,'-2+3,''=quoted,Norway"), "{text}");
        assert!(text.contains("3,O'Brien,Oslo,Norway"), "{text}");
        // NDJSON is data for programs, not spreadsheets: written as is.
        let ndjson = app
            .get("/employees/export?format=ndjson", Some(&admin))
            .await;
        assert!(
            ndjson
                .text()
                .contains(r#""emp_name":"=HYPERLINK(\"http://x\")""#)
        );

        // The export imports back to the very same values.
        for (id, ..) in people {
            app.delete(&format!("/employees/{id}"), Some(&admin)).await;
        }
        let req = Request::builder()
            .method(Method::POST)
            .uri("/employees/import")
            .header(header::AUTHORIZATION, format!("Bearer {admin}"))
            .header(header::CONTENT_TYPE, "text/csv")
            .body(Body::from(text))
            .unwrap();
        let res = app.send_request(req).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
        for (id, name, city, country) in people {
            let e: Value = app
                .get(&format!("/employees/{id}"), Some(&admin))
                .await
                .json();
            assert_eq!(
                (
                    e["emp_name"].as_str(),
                    e["city"].as_str(),
                    e["country"].as_str()
                ),
                (Some(name), Some(city), Some(country))
            );
        }
    }
);

// ---------------------------------------------------------------------------------------------
// Data at rest
// ---------------------------------------------------------------------------------------------

db_test!(
    the_database_refuses_an_upper_case_username_whoever_writes_it,
    |app| {
        use employee_api::config::DatabaseUrl;
        use sqlx::Connection;
        let sql =
            "INSERT INTO users (username, password_hash, is_admin) VALUES ('Mallory', 'x', false)";
        let refused = match &app.database_url {
            DatabaseUrl::Postgres(url) => {
                let mut conn = sqlx::PgConnection::connect(url.expose()).await.unwrap();
                sqlx::query(sql).execute(&mut conn).await.is_err()
            }
            DatabaseUrl::Sqlite { path, .. } => {
                let mut conn =
                    sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
                        .await
                        .unwrap();
                sqlx::query(sql).execute(&mut conn).await.is_err()
            }
        };
        assert!(refused, "the CHECK refuses a name that is not lower-case");
        // Control: the same row in lower case is stored.
        let ok = sql.replace("Mallory", "mallory");
        let stored = match &app.database_url {
            DatabaseUrl::Postgres(url) => {
                let mut conn = sqlx::PgConnection::connect(url.expose()).await.unwrap();
                sqlx::query(sqlx::AssertSqlSafe(ok))
                    .execute(&mut conn)
                    .await
                    .is_ok()
            }
            DatabaseUrl::Sqlite { path, .. } => {
                let mut conn =
                    sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
                        .await
                        .unwrap();
                sqlx::query(sqlx::AssertSqlSafe(ok))
                    .execute(&mut conn)
                    .await
                    .is_ok()
            }
        };
        assert!(stored);
    }
);

#[cfg(unix)]
#[tokio::test]
async fn the_sqlite_database_and_its_folder_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let app = TestApp::spawn(crate::helpers::Backend::Sqlite)
        .await
        .unwrap();
    let employee_api::config::DatabaseUrl::Sqlite { path, .. } = &app.database_url else {
        unreachable!()
    };
    let admin = app.admin_token().await;
    app.post_json("/employees/", Some(&admin), employee_body(1))
        .await;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(path), 0o600, "database file");
    assert_eq!(mode(path.parent().unwrap()), 0o700, "its folder");
    let wal = path.with_extension("db-wal");
    assert!(wal.exists(), "WAL in use");
    assert_eq!(mode(&wal), 0o600, "the WAL file");
}
