//! API1:2023 Broken Object Level Authorization.
//!
//! Accounts are the only per-owner objects; employee records are shared by design (any user
//! reads, only admins write: see API5). A normal user reaches only their own account, through
//! `/users/me`; the by-id routes are for administrators and refuse anyone else before looking
//! anything up, so they reveal neither the account nor whether it exists.

use axum::http::StatusCode;

use crate::db_test;

db_test!(users_me_shows_each_caller_only_their_own_account, |app| {
    let alice = app.user_token_for("alice").await;
    let bob = app.user_token_for("bob").await;
    for (token, name) in [(&alice, "alice"), (&bob, "bob")] {
        let res = app.get("/users/me", Some(token.as_str())).await;
        assert_eq!(res.status, StatusCode::OK, "{name}: {}", res.text());
        assert_eq!(
            res.json()["username"],
            name,
            "{name} sees someone else's account"
        );
    }
});

db_test!(
    a_normal_user_cannot_address_another_account_by_id_or_name,
    |app| {
        let id = app.register_ok("alice").await;
        let token = app.user_token_for("bob").await;
        let refused = app.get(&format!("/users/{id}"), Some(&token)).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text());
        // The same answer for an account that does not exist: no enumeration by status.
        let missing = app.get("/users/999999", Some(&token)).await;
        assert_eq!(missing.status, refused.status);
        assert_eq!(missing.text(), refused.text());
        for path in [
            format!("/users/{id}"),
            format!("/users/{id}/password"),
            format!("/users/me/../{id}"),
        ] {
            let res = app.get(&path, Some(&token)).await;
            assert!(
                !res.text().contains("alice"),
                "{path} leaked the account: {}",
                res.text()
            );
        }
        // Writes are refused the same way and change nothing.
        let res = app
            .patch_json(
                &format!("/users/{id}"),
                Some(&token),
                serde_json::json!({"is_active": false}),
            )
            .await;
        assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.text());
        app.login("alice", crate::helpers::USER_PASSWORD).await;
        // By name: no such route (the id must be an integer), and nothing about alice.
        let res = app.get("/users/alice", Some(&token)).await;
        assert!(res.status.is_client_error(), "{}", res.text());
        assert!(!res.text().contains("username"), "{}", res.text());
    }
);

db_test!(a_user_can_end_only_their_own_sessions, |app| {
    let alice = app.user_token_for("alice").await;
    let bob = app.user_token_for("bob").await;
    let bobs = app.get("/users/me/sessions", Some(&bob)).await.json();
    let bob_session = bobs[0]["id"].as_str().expect("a session id").to_owned();
    let res = app
        .delete(&format!("/users/me/sessions/{bob_session}"), Some(&alice))
        .await;
    assert_eq!(res.status, StatusCode::NOT_FOUND, "{}", res.text());
    assert_eq!(
        app.get("/users/me", Some(&bob)).await.status,
        StatusCode::OK,
        "alice ended bob's session"
    );
    let listed = app.get("/users/me/sessions", Some(&alice)).await.json();
    assert!(
        !listed.to_string().contains(&bob_session),
        "alice sees bob's session: {listed}"
    );
});
