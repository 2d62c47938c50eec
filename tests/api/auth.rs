//! Registration, login, tokens and who may call what.

use axum::{
    body::Body,
    http::{Method, Request, StatusCode, header},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use employee_api::domain::username::Username;
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
        assert!(body["id"].is_i64());
        assert_eq!(
            body.as_object().unwrap().len(),
            3,
            "exactly id, username, is_admin: {body}"
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

db_test!(
    register_with_is_admin_is_rejected_and_creates_nobody,
    |app| {
        let res = app
            .post_json(
                "/auth/register",
                None,
                json!({"username": "mallory", "password": USER_PASSWORD, "is_admin": true}),
            )
            .await;
        assert_eq!(res.error_locs(), vec!["body.is_admin"]);
        assert_eq!(
            app.login_raw("mallory", USER_PASSWORD).await.status,
            StatusCode::UNAUTHORIZED
        );
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

db_test!(
    wrong_password_and_unknown_user_get_the_identical_401,
    |app| {
        app.register("erin", USER_PASSWORD).await;
        let wrong = app.login_raw("erin", "not the right password").await;
        let unknown = app.login_raw("nobody-here", "not the right password").await;
        for res in [&wrong, &unknown] {
            assert_eq!(res.status, StatusCode::UNAUTHORIZED);
            assert_eq!(res.detail(), "Incorrect username or password");
            assert_eq!(res.header("www-authenticate"), Some("Bearer"));
        }
        assert_eq!(wrong.body, unknown.body);
    }
);

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

db_test!(login_with_huge_password_is_rejected_before_hashing, |app| {
    // Over 128 characters but within the 4 KiB /auth body cap: a 422 at the password...
    let res = app.login_raw("admin", &"p".repeat(3_000)).await;
    assert_eq!(res.error_locs(), vec!["body.password"]);
    // ...and past the cap, refused before the form is even parsed.
    let res = app.login_raw("admin", &"p".repeat(100_000)).await;
    assert_eq!(res.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", res.text());
});

db_test!(
    missing_token_returns_401_not_authenticated_with_bearer_challenge,
    |app| {
        for path in ["/users/me", "/employees/", "/employees/1", "/users/"] {
            let res = app.get(path, None).await;
            assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{path}");
            assert_eq!(res.detail(), "Not authenticated");
            assert_eq!(res.header("www-authenticate"), Some("Bearer"));
        }
    }
);

db_test!(
    invalid_tokens_return_401_could_not_validate_credentials,
    |app| {
        let expired = {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let head = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
            let body = URL_SAFE_NO_PAD
                .encode(json!({"sub": "1", "exp": now - 3600, "iat": now - 7200}).to_string());
            let input = format!("{head}.{body}");
            let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
            let sig =
                jsonwebtoken::crypto::sign(input.as_bytes(), &key, jsonwebtoken::Algorithm::HS256)
                    .unwrap();
            format!("{input}.{sig}")
        };
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(r#"{"sub":"1","exp":9999999999,"iat":1}"#)
        );
        for token in ["garbage", "a.b.c", expired.as_str(), none.as_str()] {
            let res = app.get("/users/me", Some(token)).await;
            assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{token}");
            assert_eq!(res.detail(), "Could not validate credentials");
            assert_eq!(
                res.header("www-authenticate"),
                Some(r#"Bearer error="invalid_token""#)
            );
        }
    }
);

db_test!(
    token_of_a_deleted_user_is_rejected_even_after_the_name_is_registered_again,
    |app| {
        let token = app.user_token_for("frank").await;
        assert_eq!(
            app.get("/users/me", Some(&token)).await.status,
            StatusCode::OK
        );
        app.state
            .db
            .delete_user(&Username::parse("frank").unwrap())
            .await
            .expect("frank existed");
        assert_eq!(
            app.get("/users/me", Some(&token)).await.status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            app.register("frank", USER_PASSWORD).await.status,
            StatusCode::CREATED
        );
        let res = app.get("/users/me", Some(&token)).await;
        assert_eq!(
            res.status,
            StatusCode::UNAUTHORIZED,
            "old token must not name the new frank"
        );
    }
);

db_test!(normal_user_on_admin_routes_gets_403, |app| {
    let token = app.user_token().await;
    let cases = [
        app.post_json("/employees/", Some(&token), employee_body(1))
            .await,
        app.patch_json("/employees/1", Some(&token), json!({"city": "X"}))
            .await,
        app.delete("/employees/1", Some(&token)).await,
        app.get("/users/", Some(&token)).await,
    ];
    for res in cases {
        assert_eq!(res.status, StatusCode::FORBIDDEN);
        assert_eq!(
            res.detail(),
            "The user does not have administrative privileges"
        );
    }
});

db_test!(demoted_admin_loses_admin_rights_at_once, |app| {
    let token = app.admin_token().await;
    assert_eq!(
        app.get("/users/", Some(&token)).await.status,
        StatusCode::OK
    );
    app.state
        .db
        .set_admin(&Username::parse(ADMIN_USERNAME).unwrap(), false)
        .await
        .unwrap();
    assert_eq!(
        app.get("/users/", Some(&token)).await.status,
        StatusCode::FORBIDDEN
    );
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
