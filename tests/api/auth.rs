//! Registration, login and account listing. (Who may call what, tokens and throttling are in
//! the security suite.)

use axum::{
    body::Body,
    http::{Method, Request, StatusCode, header},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::json;

use crate::{db_test, helpers::*};

db_test!(
    register_returns_201_with_user_read_and_never_a_hash,
    |app| {
        let res = app.register("Alice_1", USER_PASSWORD).await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
        let body = res.json();
        assert_eq!(body["username"], "alice_1", "stored lower-cased");
        assert_eq!(body["is_admin"], false);
        assert_eq!(body["is_active"], true);
        assert!(body["id"].is_i64());
        assert_eq!(
            body.as_object().unwrap().len(),
            4,
            "exactly id, username, is_admin, is_active: {body}"
        );
        assert!(!res.text().contains("argon2"));
    }
);

db_test!(register_taken_username_in_any_case_returns_409, |app| {
    assert_eq!(
        app.register("bob", USER_PASSWORD).await.status,
        StatusCode::CREATED
    );
    for variant in ["bob", "Bob", "BOB"] {
        let res = app.register(variant, USER_PASSWORD).await;
        assert_eq!(res.status, StatusCode::CONFLICT, "{variant}");
        assert_eq!(res.detail(), "Username already exists");
    }
});

db_test!(
    concurrent_registration_of_bob_and_bob_gives_one_201_and_one_409,
    |app| {
        let a = app.register("Bob", USER_PASSWORD);
        let b = app.register("bob", USER_PASSWORD);
        let (a, b) = tokio::join!(a, b);
        let mut statuses = [a.status, b.status];
        statuses.sort();
        assert_eq!(statuses, [StatusCode::CREATED, StatusCode::CONFLICT]);
    }
);

db_test!(register_validates_username_and_password_rules, |app| {
    let long = "x".repeat(129);
    let cases = [
        ("ab", USER_PASSWORD, "body.username"),
        ("has space", USER_PASSWORD, "body.username"),
        ("bad@name", USER_PASSWORD, "body.username"),
        ("carol", "short-pass", "body.password"),
        ("carol", long.as_str(), "body.password"),
        ("carol", "my name is carol, hello!!", "body.password"),
        ("carol", "1qaz2wsx3edc4rfv", "body.password"),
        ("carol", "employee-admin-2024", "body.password"),
    ];
    for (username, password, loc) in cases {
        let res = app.register(username, password).await;
        assert_eq!(res.error_locs(), vec![loc], "{username} / {password}");
        assert!(
            !res.text().contains(password),
            "a 422 must not echo the password"
        );
    }
    let res = app
        .post_json("/auth/register", None, json!({"username": "carol"}))
        .await;
    assert_eq!(res.error_locs(), vec!["body.password"]);
    let res = app
        .post_json(
            "/auth/register",
            None,
            json!({"username": 5, "password": 7}),
        )
        .await;
    assert_eq!(res.error_locs(), vec!["body.username", "body.password"]);
});

db_test!(login_returns_a_bearer_token_that_is_not_cached, |app| {
    app.register("dave", USER_PASSWORD).await;
    let res = app.login_raw("DAVE", USER_PASSWORD).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.header("cache-control"), Some("no-store"));
    assert_eq!(res.header("pragma"), Some("no-cache"));
    let body = res.json();
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 1800);
    let token = body["access_token"].as_str().unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    let me = app.get("/users/me", Some(token)).await.json();
    assert_eq!(
        claims["sub"],
        me["id"].to_string(),
        "sub is the user id, not the name"
    );
    for claim in ["exp", "iat", "jti"] {
        assert!(claims.get(claim).is_some(), "{claim} in {claims}");
    }
    assert_eq!(me["username"], "dave");
});

db_test!(login_with_missing_fields_returns_422, |app| {
    let req = Request::builder()
        .method(Method::POST)
        .uri("/auth/token")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("username=x"))
        .unwrap();
    let res = app.send_request(req).await;
    assert_eq!(res.error_locs(), vec!["body.password"]);
});

db_test!(login_with_json_body_returns_415, |app| {
    let res = app
        .post_json(
            "/auth/token",
            None,
            json!({"username": "admin", "password": ADMIN_PASSWORD}),
        )
        .await;
    assert_eq!(res.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
});

db_test!(admin_lists_users_with_offset_and_limit, |app| {
    let admin = app.admin_token().await;
    for name in ["u1xx", "u2xx", "u3xx"] {
        app.register(name, USER_PASSWORD).await;
    }
    let all = app.get("/users/", Some(&admin)).await.json();
    let names: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "u1xx", "u2xx", "u3xx"]);
    let page = app
        .get("/users/?offset=1&limit=2", Some(&admin))
        .await
        .json();
    assert_eq!(page.as_array().unwrap().len(), 2);
    assert_eq!(page[0]["username"], "u1xx");
    for bad in ["limit=0", "limit=1001", "offset=-1", "offset=x", "sort=1"] {
        assert_eq!(
            app.get(&format!("/users/?{bad}"), Some(&admin))
                .await
                .status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}"
        );
    }
});
