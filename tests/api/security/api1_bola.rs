//! API1:2023 Broken Object Level Authorization.
//!
//! Accounts are the only per-owner objects; employee records are shared by design (any user
//! reads, only admins write: see API5). The only way to an account is the caller's own token.

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

db_test!(no_route_addresses_an_account_by_id_or_name, |app| {
    let id = app.register_ok("alice").await;
    let token = app.user_token_for("bob").await;
    for path in [
        format!("/users/{id}"),
        "/users/alice".to_owned(),
        format!("/users/me/../{id}"),
    ] {
        let res = app.get(&path, Some(&token)).await;
        assert_eq!(res.status, StatusCode::NOT_FOUND, "{path}: {}", res.text());
        assert!(
            !res.text().contains("alice"),
            "{path} leaked the account: {}",
            res.text()
        );
    }
});
