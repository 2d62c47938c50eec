//! API3:2023 Broken Object Property Level Authorization (mass assignment, data exposure).

use axum::http::StatusCode;
use serde_json::json;

use crate::{db_test, helpers::*};

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
            assert_eq!(res.error_locs(), [loc], "{username}");
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
    a_patch_cannot_change_the_keys_and_an_invalid_one_changes_nothing,
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
            (json!({"id": before["id"]}), "body.id"),
            (json!({"emp_id": 2}), "body.emp_id"),
            (json!({"emp_id": 2, "city": "Paris"}), "body.emp_id"),
            (json!({"city": "Paris", "is_admin": true}), "body.is_admin"),
            (json!({"nickname": "Ada"}), "body.nickname"),
            (json!({"city": null}), "body.city"),
            (json!({"emp_dob": "2999-01-01"}), "body.emp_dob"),
            (json!({"emp_name": ""}), "body.emp_name"),
        ];
        for (body, loc) in cases {
            let res = app
                .patch_json("/employees/1", Some(&admin), body.clone())
                .await;
            assert_eq!(res.error_locs(), [loc], "{body}");
            let after = app.get("/employees/1", Some(&admin)).await;
            assert_eq!(after.json(), before, "{body} changed the record");
        }
        assert_eq!(
            app.get("/employees/2", Some(&admin)).await.status,
            StatusCode::NOT_FOUND,
            "emp_id 2 came into being"
        );
        let res = app
            .patch_json("/employees/999", Some(&admin), json!({"city": "Paris"}))
            .await;
        assert_eq!(res.status, StatusCode::NOT_FOUND, "{}", res.text());
    }
);

db_test!(account_representations_never_carry_a_password_hash, |app| {
    let admin = app.admin_token().await;
    let user = app.user_token().await;
    let responses = [
        ("register", app.register("bob", USER_PASSWORD).await),
        ("users/me", app.get("/users/me", Some(&user)).await),
        ("users list", app.get("/users/", Some(&admin)).await),
        ("user by id", app.get("/users/2", Some(&admin)).await),
        (
            "user patched",
            app.patch_json("/users/2", Some(&admin), json!({"is_active": true}))
                .await,
        ),
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
            assert_eq!(keys, ["id", "is_active", "is_admin", "username"], "{case}");
        }
        assert_no_internals(res, case);
    }
});
