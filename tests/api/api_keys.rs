//! API keys: created by administrators with chosen scopes, shown once, stored hashed, sent as
//! `X-API-Key` or a bearer token, rate limited per key, and dead at once when revoked, expired
//! or when their creator is no longer an active administrator.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::{db_test, helpers::*};

async fn create_key(app: &Instance, admin: &str, body: Value) -> Value {
    let res = app.post_json("/api-keys", Some(admin), body).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    res.json()
}

fn key_of(created: &Value) -> &str {
    created["key"]
        .as_str()
        .expect("the secret, in the creation answer")
}

/// A GET with the key in `X-API-Key`.
async fn get_with_key(app: &Instance, path: &str, key: &str) -> TestResponse {
    app.send_request(with_header(get_req(path, None), "x-api-key", key))
        .await
}

fn rfc3339_in(seconds: i64) -> String {
    (OffsetDateTime::now_utc() + time::Duration::seconds(seconds))
        .replace_nanosecond(0)
        .unwrap()
        .format(&Rfc3339)
        .unwrap()
}

db_test!(
    a_key_is_shown_once_listed_without_its_secret_and_works_by_either_header,
    |app| {
        let admin = app.admin_token().await;
        let res = app
            .post_json("/employees/", Some(&admin), employee_body(1))
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
        let expires_at = rfc3339_in(3600);
        let created = create_key(
            &app,
            &admin,
            json!({"name": "nightly HR sync", "scopes": ["employees:read"], "expires_at": expires_at}),
        )
        .await;
        let key = key_of(&created).to_owned();
        assert!(key.starts_with("emp_"), "{key}");
        assert_eq!(key.len(), 4 + 43, "emp_ and 256 bits in base64url: {key}");
        assert_eq!(created["prefix"], &key[..12]);
        assert_eq!(created["name"], "nightly HR sync");
        assert_eq!(created["scopes"], json!(["employees:read"]));
        assert_eq!(created["expires_at"], expires_at.as_str());
        assert_eq!(created["last_used_at"], Value::Null);

        let listed = app.get("/api-keys", Some(&admin)).await;
        assert_eq!(listed.status, StatusCode::OK, "{}", listed.text());
        assert!(!listed.text().contains(&key), "the list shows the secret");
        let mut fields: Vec<_> = listed.json()[0]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        fields.sort();
        assert_eq!(
            fields,
            [
                "created_at",
                "expires_at",
                "id",
                "last_used_at",
                "name",
                "prefix",
                "scopes"
            ]
        );
        // Nor does the database hold it: only its keyed hash and its prefix.
        assert!(
            app.database_contains(&key[..12]).await,
            "the prefix is stored"
        );
        assert!(
            !app.database_contains(&key[12..]).await,
            "the secret part of the key is stored"
        );

        let by_header = get_with_key(&app, "/employees/1", &key).await;
        assert_eq!(by_header.status, StatusCode::OK, "{}", by_header.text());
        let by_bearer = app.get("/employees/", Some(&key)).await;
        assert_eq!(by_bearer.status, StatusCode::OK, "{}", by_bearer.text());
        let me = get_with_key(&app, "/users/me", &key).await;
        assert_eq!(me.json()["username"], "admin", "a key acts as its creator");

        // Its last use is recorded (in the background, at most once a minute).
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let listed = app.get("/api-keys", Some(&admin)).await.json();
            if listed[0]["last_used_at"].is_string() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "last_used_at never set"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
);

db_test!(a_key_can_do_only_what_its_scopes_allow, |app| {
    let admin = app.admin_token().await;
    let reader = create_key(
        &app,
        &admin,
        json!({"name": "reader", "scopes": ["employees:read"]}),
    )
    .await;
    let res = app
        .send_request(with_header(
            json_req(
                Method::POST,
                "/employees/",
                None,
                employee_body(7).to_string(),
            ),
            "x-api-key",
            key_of(&reader),
        ))
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.text());
    assert_eq!(
        res.header("www-authenticate"),
        Some(r#"Bearer error="insufficient_scope", scope="employees:write""#)
    );
    let writer = create_key(
        &app,
        &admin,
        json!({"name": "writer", "scopes": ["employees:write"]}),
    )
    .await;
    let res = app
        .post_json("/employees/", Some(key_of(&writer)), employee_body(7))
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    let res = app.get("/employees/7", Some(key_of(&writer))).await;
    assert_eq!(
        res.header("www-authenticate"),
        Some(r#"Bearer error="insufficient_scope", scope="employees:read""#),
        "write does not imply read"
    );
    let admin_key = create_key(
        &app,
        &admin,
        json!({"name": "provisioning", "scopes": ["users:admin"]}),
    )
    .await;
    let res = get_with_key(&app, "/users/", key_of(&admin_key)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
});

db_test!(keys_cannot_manage_keys_sessions_or_passwords, |app| {
    let admin = app.admin_token().await;
    let created = create_key(
            &app,
            &admin,
            json!({"name": "everything", "scopes": ["employees:read", "employees:write", "users:admin"]}),
        )
        .await;
    let key = key_of(&created);
    let id = created["id"].clone();
    let responses = [
        app.post_json(
            "/api-keys",
            Some(key),
            json!({"name": "persistence", "scopes": ["users:admin"]}),
        )
        .await,
        app.get("/api-keys", Some(key)).await,
        app.delete(&format!("/api-keys/{id}"), Some(key)).await,
        app.get("/users/me/sessions", Some(key)).await,
        app.post_json(
            "/users/me/password",
            Some(key),
            json!({"current_password": ADMIN_PASSWORD, "new_password": "a quieter river of bells"}),
        )
        .await,
        app.post_form("/auth/logout", Some(key), &[]).await,
    ];
    for res in responses {
        assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.text());
        assert_eq!(
            res.detail(),
            "This needs a login session; API keys cannot do it"
        );
    }
    let listed = app.get("/api-keys", Some(&admin)).await.json();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    app.login(ADMIN_USERNAME, ADMIN_PASSWORD).await;
});

db_test!(a_revoked_key_stops_working_at_once, |app| {
    let admin = app.admin_token().await;
    let created = create_key(
        &app,
        &admin,
        json!({"name": "script", "scopes": ["employees:read"]}),
    )
    .await;
    let key = key_of(&created);
    let (_, other_instance) = app.second_instance(|_| {}).await;
    assert_eq!(
        get_with_key(&other_instance, "/employees/", key)
            .await
            .status,
        StatusCode::OK
    );
    let res = app
        .delete(&format!("/api-keys/{}", created["id"]), Some(&admin))
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text());
    for instance in [app.instance(), other_instance] {
        assert_invalid_token(
            &get_with_key(&instance, "/employees/", key).await,
            "a revoked key",
        );
        assert_invalid_token(
            &instance.get("/employees/1", Some(key)).await,
            "a revoked key as a bearer token",
        );
    }
    assert_eq!(
        app.get("/api-keys", Some(&admin)).await.json(),
        json!([]),
        "revoked keys are not listed"
    );
    let again = app
        .delete(&format!("/api-keys/{}", created["id"]), Some(&admin))
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND, "{}", again.text());
    assert_invalid_token(
        &get_with_key(&app, "/employees/", &format!("emp_{}", "A".repeat(43))).await,
        "a key that never existed",
    );
});

db_test!(a_key_expires_at_its_expiry, |app| {
    let admin = app.admin_token().await;
    let created = create_key(
        &app,
        &admin,
        json!({"name": "short", "scopes": ["employees:read"], "expires_at": rfc3339_in(2)}),
    )
    .await;
    let key = key_of(&created);
    assert_eq!(
        get_with_key(&app, "/employees/", key).await.status,
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert_invalid_token(&get_with_key(&app, "/employees/", key).await, "expired");
});

db_test!(
    a_key_dies_when_its_creator_is_no_longer_an_active_administrator,
    |app| {
        let admin = app.admin_token().await;
        let bob = app.register_ok("bob").await;
        let res = app
            .patch_json(
                &format!("/users/{bob}"),
                Some(&admin),
                json!({"is_admin": true}),
            )
            .await;
        assert_eq!(res.status, StatusCode::OK);
        let bob_token = app.login("bob", USER_PASSWORD).await;
        let bobs = create_key(
            &app,
            &bob_token,
            json!({"name": "bob's script", "scopes": ["employees:read"]}),
        )
        .await;
        let key = key_of(&bobs);
        assert_eq!(
            get_with_key(&app, "/employees/", key).await.status,
            StatusCode::OK
        );
        let res = app
            .patch_json(
                &format!("/users/{bob}"),
                Some(&admin),
                json!({"is_admin": false}),
            )
            .await;
        assert_eq!(res.status, StatusCode::OK);
        assert_invalid_token(
            &get_with_key(&app, "/employees/", key).await,
            "the creator was demoted",
        );
        // Promoted again, the key works again (it was never revoked); disabled, it does not.
        for (body, works) in [
            (json!({"is_admin": true}), true),
            (json!({"is_active": false}), false),
        ] {
            app.patch_json(&format!("/users/{bob}"), Some(&admin), body)
                .await;
            let res = get_with_key(&app, "/employees/", key).await;
            assert_eq!(res.status == StatusCode::OK, works, "{}", res.text());
        }
    }
);

db_test!(key_requests_are_validated, |app| {
    let admin = app.admin_token().await;
    for (body, loc) in [
        (json!({"scopes": ["employees:read"]}), "body.name"),
        (
            json!({"name": "", "scopes": ["employees:read"]}),
            "body.name",
        ),
        (
            json!({"name": "x".repeat(101), "scopes": ["employees:read"]}),
            "body.name",
        ),
        (json!({"name": "k"}), "body.scopes"),
        (json!({"name": "k", "scopes": []}), "body.scopes"),
        (
            json!({"name": "k", "scopes": ["everything"]}),
            "body.scopes",
        ),
        (
            json!({"name": "k", "scopes": "employees:read"}),
            "body.scopes",
        ),
        (
            json!({"name": "k", "scopes": ["employees:read"], "expires_at": rfc3339_in(-60)}),
            "body.expires_at",
        ),
        (
            json!({"name": "k", "scopes": ["employees:read"], "expires_at": "tomorrow"}),
            "body.expires_at",
        ),
        (
            json!({"name": "k", "scopes": ["employees:read"], "key": "emp_chosen"}),
            "body.key",
        ),
    ] {
        let res = app.post_json("/api-keys", Some(&admin), body.clone()).await;
        assert_eq!(res.error_locs(), [loc], "{body}");
    }
    assert_eq!(app.get("/api-keys", Some(&admin)).await.json(), json!([]));
    let res = app.delete("/api-keys/abc", Some(&admin)).await;
    assert_eq!(res.error_locs(), ["path.id"]);
});

db_test!(only_administrators_manage_keys, |app| {
    let user = app.user_token().await;
    let body = json!({"name": "mine", "scopes": ["employees:read"]});
    for (token, expected) in [
        (Some(user.as_str()), StatusCode::FORBIDDEN),
        (None, StatusCode::UNAUTHORIZED),
    ] {
        let responses = [
            app.post_json("/api-keys", token, body.clone()).await,
            app.get("/api-keys", token).await,
            app.delete("/api-keys/1", token).await,
        ];
        for res in responses {
            assert_eq!(res.status, expected, "{}", res.text());
        }
    }
});

db_test!(
    each_key_has_its_own_rate_limit_budget,
    TestApp::configure(|c| c.rate_limit_per_minute = 5),
    |app| {
        let admin = app.from(other_peer(31)).admin_token().await;
        let admin_app = app.from(other_peer(31));
        let first = create_key(
            &admin_app,
            &admin,
            json!({"name": "one", "scopes": ["employees:read"]}),
        )
        .await;
        let second = create_key(
            &admin_app,
            &admin,
            json!({"name": "two", "scopes": ["employees:read"]}),
        )
        .await;
        // Both keys are used from one address: each has its own budget.
        for n in 0..5 {
            let res = get_with_key(&app, "/employees/", key_of(&first)).await;
            assert_eq!(res.status, StatusCode::OK, "request {n}: {}", res.text());
        }
        assert_too_many(
            &get_with_key(&app, "/employees/", key_of(&first)).await,
            "the sixth request with one key",
        );
        let res = get_with_key(&app, "/employees/", key_of(&second)).await;
        assert_eq!(res.status, StatusCode::OK, "another key: {}", res.text());
    }
);
