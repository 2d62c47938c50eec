//! Account administration: reading, filtering, disabling, granting and removing admin rights,
//! password resets, deletion, and the guard that always leaves an active administrator.

use std::time::Instant;

use axum::http::StatusCode;
use serde_json::json;

use crate::{db_test, helpers::*};

db_test!(an_admin_reads_and_filters_accounts, |app| {
    let admin = app.admin_token().await;
    let alice = app.register_ok("alice").await;
    let bob = app.register_ok("bob").await;
    app.register_ok("malice").await;
    let res = app
        .patch_json(
            &format!("/users/{bob}"),
            Some(&admin),
            json!({"is_active": false}),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(
        res.json(),
        json!({"id": bob, "username": "bob", "is_admin": false, "is_active": false})
    );

    let one = app.get(&format!("/users/{alice}"), Some(&admin)).await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.text());
    assert_eq!(
        one.json(),
        json!({"id": alice, "username": "alice", "is_admin": false, "is_active": true})
    );
    let missing = app.get("/users/999999", Some(&admin)).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.text());
    assert_eq!(missing.detail(), "User not found");

    let names = |query: &'static str| {
        let (app, admin) = (app.instance(), admin.clone());
        async move {
            let res = app.get(&format!("/users/{query}"), Some(&admin)).await;
            assert_eq!(res.status, StatusCode::OK, "{query}: {}", res.text());
            res.json()
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["username"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(names("").await, ["admin", "alice", "bob", "malice"]);
    assert_eq!(names("?is_admin=true").await, ["admin"]);
    assert_eq!(names("?is_active=false").await, ["bob"]);
    assert_eq!(
        names("?is_active=true&is_admin=false").await,
        ["alice", "malice"]
    );
    assert_eq!(names("?username=ALI").await, ["alice", "malice"]);
    assert_eq!(
        names("?username=%25").await,
        Vec::<String>::new(),
        "literal %"
    );
    assert_eq!(names("?username=ali&limit=1&offset=1").await, ["malice"]);
    for (query, loc) in [
        ("?is_admin=yes", "query.is_admin"),
        ("?is_active=", "query.is_active"),
        ("?role=admin", "query.role"),
    ] {
        let res = app.get(&format!("/users/{query}"), Some(&admin)).await;
        assert_eq!(res.error_locs(), [loc], "{query}");
    }
});

db_test!(
    a_disabled_account_is_refused_at_once_and_cannot_log_in,
    TestApp::configure(|c| {
        c.login_account = UNTHROTTLED;
        c.login_ip = UNTHROTTLED;
    }),
    |app| {
        let admin = app.admin_token().await;
        let alice = app.register_ok("alice").await;
        let token = app.login("alice", USER_PASSWORD).await;
        let refresh_token = app.login_raw("alice", USER_PASSWORD).await.json()["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let disable = |active: bool| {
            let (app, admin) = (app.instance(), admin.clone());
            async move {
                app.patch_json(
                    &format!("/users/{alice}"),
                    Some(&admin),
                    json!({"is_active": active}),
                )
                .await
            }
        };
        assert_eq!(disable(false).await.status, StatusCode::OK);
        assert_invalid_token(&app.get("/users/me", Some(&token)).await, "disabled");
        assert_invalid_token(
            &app.get("/employees/", Some(&token)).await,
            "disabled, listing",
        );
        let refreshed = app
            .post_form(
                "/auth/token",
                None,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &refresh_token),
                ],
            )
            .await;
        assert_eq!(
            refreshed.status,
            StatusCode::BAD_REQUEST,
            "{}",
            refreshed.text()
        );

        // Its login answers exactly like a wrong password, in about the same time.
        let disabled = app.login_raw("alice", USER_PASSWORD).await;
        let wrong = app.login_raw("alice", "not alice's password at all").await;
        assert_eq!(disabled.status, StatusCode::UNAUTHORIZED);
        assert_eq!(disabled.body, wrong.body);
        assert_eq!(comparable_headers(&disabled), comparable_headers(&wrong));
        let mut ratios = Vec::new();
        for _ in 0..9 {
            let start = Instant::now();
            app.login_raw("alice", USER_PASSWORD).await;
            let disabled = start.elapsed();
            let start = Instant::now();
            app.login_raw("alice", "not alice's password at all").await;
            ratios.push(disabled.as_secs_f64() / start.elapsed().as_secs_f64());
        }
        let ratio = median_f64(&mut ratios);
        assert!(
            (0.5..2.0).contains(&ratio),
            "disabled/wrong-password login time ratio {ratio:.2}"
        );

        // Enabled again: it logs in, but the sessions ended by the disabling stay ended.
        assert_eq!(disable(true).await.status, StatusCode::OK);
        assert_invalid_token(
            &app.get("/users/me", Some(&token)).await,
            "a token from before the disabling",
        );
        app.login("alice", USER_PASSWORD).await;
    }
);

db_test!(account_changes_are_validated, |app| {
    let admin = app.admin_token().await;
    let alice = app.register_ok("alice").await;
    let path = format!("/users/{alice}");
    for (body, loc) in [
        (json!({"username": "mallory"}), "body.username"),
        (json!({"is_admin": null}), "body.is_admin"),
        (json!({"is_active": "false"}), "body.is_active"),
        (json!({"password_hash": "x"}), "body.password_hash"),
    ] {
        let res = app.patch_json(&path, Some(&admin), body.clone()).await;
        assert_eq!(res.error_locs(), [loc], "{body}");
    }
    let unchanged = app.patch_json(&path, Some(&admin), json!({})).await;
    assert_eq!(unchanged.status, StatusCode::OK, "{}", unchanged.text());
    assert_eq!(unchanged.json()["is_active"], true);
    for bad in ["/users/0", "/users/-1", "/users/abc"] {
        let res = app.patch_json(bad, Some(&admin), json!({})).await;
        assert_eq!(res.error_locs(), ["path.id"], "{bad}");
    }
    let res = app
        .patch_json("/users/999999", Some(&admin), json!({"is_admin": true}))
        .await;
    assert_eq!(res.status, StatusCode::NOT_FOUND, "{}", res.text());
});

db_test!(a_password_reset_ends_every_session_of_the_account, |app| {
    let admin = app.admin_token().await;
    let alice = app.register_ok("alice").await;
    let token = app.login("alice", USER_PASSWORD).await;
    let reset = |password: &'static str| {
        let (app, admin) = (app.instance(), admin.clone());
        async move {
            app.post_json(
                &format!("/users/{alice}/password"),
                Some(&admin),
                json!({"new_password": password}),
            )
            .await
        }
    };
    let weak = reset("alice alice alice alice").await;
    assert_eq!(weak.error_locs(), ["body.new_password"]);
    assert_eq!(
        app.get("/users/me", Some(&token)).await.status,
        StatusCode::OK
    );
    let res = reset("a quieter river of bells").await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text());
    assert_invalid_token(&app.get("/users/me", Some(&token)).await, "after a reset");
    assert_eq!(
        app.login_raw("alice", USER_PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    app.login("alice", "a quieter river of bells").await;
    let res = app
        .post_json(
            "/users/999999/password",
            Some(&admin),
            json!({"new_password": "a quieter river of bells"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::NOT_FOUND, "{}", res.text());
});

db_test!(a_deleted_account_is_gone_with_its_sessions, |app| {
    let admin = app.admin_token().await;
    let alice = app.register_ok("alice").await;
    let token = app.login("alice", USER_PASSWORD).await;
    let res = app.delete(&format!("/users/{alice}"), Some(&admin)).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text());
    assert_invalid_token(&app.get("/users/me", Some(&token)).await, "deleted");
    let again = app.delete(&format!("/users/{alice}"), Some(&admin)).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND, "{}", again.text());
    let (sessions, tokens) = app.state.db.session_table_sizes().await.unwrap();
    assert_eq!(
        (sessions, tokens),
        (1, 1),
        "only the admin's session is left"
    );
});

db_test!(
    the_last_active_administrator_can_be_neither_demoted_disabled_nor_deleted,
    |app| {
        let admin = app.admin_token().await;
        let me = app.get("/users/me", Some(&admin)).await.json()["id"].clone();
        let path = format!("/users/{me}");
        for body in [
            json!({"is_admin": false}),
            json!({"is_active": false}),
            json!({"is_admin": false, "is_active": false}),
        ] {
            let res = app.patch_json(&path, Some(&admin), body.clone()).await;
            assert_eq!(res.status, StatusCode::CONFLICT, "{body}: {}", res.text());
            assert_eq!(
                res.detail(),
                "The last active administrator cannot be demoted, disabled or deleted"
            );
        }
        let res = app.delete(&path, Some(&admin)).await;
        assert_eq!(res.status, StatusCode::CONFLICT, "{}", res.text());
        // A disabled administrator does not count: with bob promoted and then disabled, the
        // admin is still the last active one.
        let bob = app.register_ok("bob").await;
        let bob_path = format!("/users/{bob}");
        for body in [json!({"is_admin": true}), json!({"is_active": false})] {
            let res = app.patch_json(&bob_path, Some(&admin), body).await;
            assert_eq!(res.status, StatusCode::OK, "{}", res.text());
        }
        let res = app
            .patch_json(&path, Some(&admin), json!({"is_admin": false}))
            .await;
        assert_eq!(res.status, StatusCode::CONFLICT, "{}", res.text());
        // Once bob is active again, the admin may step down.
        let res = app
            .patch_json(&bob_path, Some(&admin), json!({"is_active": true}))
            .await;
        assert_eq!(res.status, StatusCode::OK);
        let res = app
            .patch_json(&path, Some(&admin), json!({"is_admin": false}))
            .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    }
);

db_test!(
    twenty_parallel_demotions_of_two_admins_leave_exactly_one,
    // Enough connections that the demotions really run side by side in the database.
    TestApp::configure(|c| c.db_max_connections = 16),
    |app| {
        let admin = app.admin_token().await;
        let root = app.get("/users/me", Some(&admin)).await.json()["id"]
            .as_i64()
            .unwrap();
        let bob = app.register_ok("bob").await;
        // Several rounds: the race this guards against needs two demotions to overlap.
        for round in 0..5 {
            // Both are administrators at the start of the round (set up directly), and log
            // in afresh so their tokens carry the admin scopes.
            for id in [root, bob] {
                let promote = employee_api::db::users::UserChange {
                    is_admin: Some(true),
                    is_active: None,
                };
                app.state
                    .db
                    .change_user(
                        id,
                        promote,
                        now() as i64,
                        &employee_api::domain::audit::AuditContext::cli(),
                    )
                    .await
                    .unwrap();
            }
            let root_token = app.login("admin", ADMIN_PASSWORD).await;
            let bob_token = app.login("bob", USER_PASSWORD).await;
            // Ten requests demote each admin, each sent by the other one.
            let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(20));
            let calls: Vec<_> = (0..20)
                .map(|n| {
                    let (app, barrier) = (app.instance(), barrier.clone());
                    let (target, token) = if n % 2 == 0 {
                        (root, bob_token.clone())
                    } else {
                        (bob, root_token.clone())
                    };
                    tokio::spawn(async move {
                        barrier.wait().await;
                        app.patch_json(
                            &format!("/users/{target}"),
                            Some(&token),
                            json!({"is_admin": false}),
                        )
                        .await
                        .status
                    })
                })
                .collect();
            let mut statuses = Vec::new();
            for call in calls {
                statuses.push(call.await.unwrap());
            }
            // 200: a demotion; 409: the other is the last admin; 403: the sender was demoted.
            for status in &statuses {
                assert!(
                    [StatusCode::OK, StatusCode::CONFLICT, StatusCode::FORBIDDEN].contains(status),
                    "{statuses:?}"
                );
            }
            let admins = app
                .state
                .db
                .list_users(
                    Default::default(),
                    &employee_api::db::users::UserFilter {
                        is_admin: Some(true),
                        is_active: Some(true),
                        username_contains: None,
                    },
                )
                .await
                .unwrap();
            assert_eq!(
                admins.len(),
                1,
                "round {round}: {admins:?} after {statuses:?}"
            );
        }
    }
);

db_test!(
    a_normal_user_and_an_anonymous_caller_cannot_administer_accounts,
    |app| {
        let alice = app.register_ok("alice").await;
        let user = app.user_token_for("bob").await;
        let path = format!("/users/{alice}");
        let password = format!("/users/{alice}/password");
        let body = json!({"new_password": "a quieter river of bells"});
        for (token, expected) in [
            (Some(user.as_str()), StatusCode::FORBIDDEN),
            (None, StatusCode::UNAUTHORIZED),
        ] {
            let responses = [
                app.get(&path, token).await,
                app.patch_json(&path, token, json!({"is_admin": true}))
                    .await,
                app.post_json(&password, token, body.clone()).await,
                app.delete(&path, token).await,
            ];
            for res in responses {
                assert_eq!(res.status, expected, "{}", res.text());
            }
        }
        app.login("alice", USER_PASSWORD).await;
        let admin = app.admin_token().await;
        let alice_now = app.get(&path, Some(&admin)).await.json();
        assert_eq!(alice_now["is_admin"], false);
    }
);
