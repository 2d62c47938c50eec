//! Injection (API8:2019; in 2023 folded into API8/API10): every parameter, LIKE, big numbers.

use axum::http::{Method, StatusCode};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::json;

use crate::{db_test, helpers::*};

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
