//! API5:2023 Broken Function Level Authorization.

use axum::http::StatusCode;
use serde_json::json;

use crate::{db_test, helpers::*};

/// The sample import file: employees 1001 to 1005.
const SAMPLE_CSV: &str = include_str!("../../../examples/employees.csv");

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
            (
                "import employees",
                app.import(Some(&user), "", "text/csv", SAMPLE_CSV).await,
            ),
            (
                "import employees as JSON",
                app.import(
                    Some(&user),
                    "?on_conflict=update",
                    "application/json",
                    json!([employee_body(1001)]).to_string(),
                )
                .await,
            ),
            (
                "export employees",
                app.get("/employees/export", Some(&user)).await,
            ),
            (
                "export employees as NDJSON",
                app.get("/employees/export?format=ndjson", Some(&user))
                    .await,
            ),
        ];
        for (case, res) in &cases {
            assert_forbidden(res, case);
            assert!(
                !res.text().contains("Ada Lovelace"),
                "{case} leaked a record: {}",
                res.text()
            );
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
        let list = app.get("/employees/", Some(&admin)).await;
        assert_eq!(
            list.header("x-total-count"),
            Some("1"),
            "the refused imports stored rows: {}",
            list.text()
        );
        // Control: the same import as the administrator stores the five sample rows.
        let res = app.import(Some(&admin), "", "text/csv", SAMPLE_CSV).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
        assert_eq!(res.json()["written"], 5);
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
        (
            "import employees",
            app.import(None, "", "text/csv", SAMPLE_CSV).await,
        ),
        ("export employees", app.get("/employees/export", None).await),
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
    let admin = app.admin_token().await;
    assert_eq!(
        app.get("/employees/1001", Some(&admin)).await.status,
        StatusCode::NOT_FOUND,
        "the anonymous import stored rows"
    );
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

        // alice becomes an administrator first (the last one cannot be demoted); her
        // old token still carries only the scopes of a normal user.
        let alice = app.get("/users/me", Some(&user)).await.json()["id"].clone();
        let promoted = app
            .patch_json(
                &format!("/users/{alice}"),
                Some(&admin),
                json!({"is_admin": true}),
            )
            .await;
        assert_eq!(promoted.status, StatusCode::OK, "{}", promoted.text());
        let me = app.get("/users/me", Some(&admin)).await.json();
        let alice_admin = app.login("alice", USER_PASSWORD).await;
        let demoted = app
            .patch_json(
                &format!("/users/{}", me["id"]),
                Some(&alice_admin),
                json!({"is_admin": false}),
            )
            .await;
        assert_eq!(demoted.status, StatusCode::OK, "{}", demoted.text());
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

        // Her token from before the promotion carries only `employees:read`: admin routes
        // need a token issued since (scopes are fixed at login).
        let old = app.get("/users/", Some(&user)).await;
        assert_eq!(old.status, StatusCode::FORBIDDEN, "{}", old.text());
        assert_eq!(
            old.header("www-authenticate"),
            Some(r#"Bearer error="insufficient_scope", scope="users:admin""#)
        );
        assert_eq!(
            app.get("/users/", Some(&alice_admin)).await.status,
            StatusCode::OK,
            "promoted user, new token"
        );
    }
);

db_test!(
    rights_are_answered_before_a_malformed_emp_id_on_patch_and_delete,
    |app| {
        // PATCH and DELETE check the credential and read the employee in one query, which needs
        // a well-formed emp_id; a malformed one must still get 401 and 403 first, as on every
        // other write.
        let (admin, user) = (app.admin_token().await, app.user_token().await);
        for path in ["/employees/abc", "/employees/0"] {
            let body = json!({"city": "Riga"});
            for (who, token, expected) in [
                ("anonymous", None, StatusCode::UNAUTHORIZED),
                ("a bad token", Some("not-a-token"), StatusCode::UNAUTHORIZED),
                ("a user", Some(user.as_str()), StatusCode::FORBIDDEN),
                (
                    "an administrator",
                    Some(admin.as_str()),
                    StatusCode::UNPROCESSABLE_ENTITY,
                ),
            ] {
                let patched = app.patch_json(path, token, body.clone()).await;
                assert_eq!(patched.status, expected, "PATCH {path} by {who}");
                let deleted = app.delete(path, token).await;
                assert_eq!(deleted.status, expected, "DELETE {path} by {who}");
            }
        }
    }
);
