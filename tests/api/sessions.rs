//! Sessions: the token response, refresh token rotation and theft detection, logout,
//! revocation (RFC 7009), the session list, and the purge that keeps the tables bounded.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use employee_api::server::housekeeping::purge;
use serde_json::{Value, json};

use crate::{db_test, helpers::*};

/// Logs in with the form `fields` (username and password first) and returns the whole body.
async fn login_body(app: &Instance, fields: &[(&str, &str)]) -> Value {
    let res = app.post_form("/auth/token", None, fields).await;
    assert_eq!(res.status, StatusCode::OK, "login: {}", res.text());
    res.json()
}

async fn alice_login(app: &TestApp) -> Value {
    login_body(app, &[("username", "alice"), ("password", USER_PASSWORD)]).await
}

async fn refresh(app: &Instance, refresh_token: &str) -> TestResponse {
    app.post_form(
        "/auth/token",
        None,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

fn access(body: &Value) -> &str {
    body["access_token"].as_str().expect("access_token")
}

fn refresh_of(body: &Value) -> &str {
    body["refresh_token"].as_str().expect("refresh_token")
}

/// A 400 `invalid_grant` (RFC 6749 §5.2), with FastAPI's `detail` beside the OAuth `error`.
fn assert_invalid_grant(res: &TestResponse, case: &str) {
    assert_eq!(
        res.status,
        StatusCode::BAD_REQUEST,
        "{case}: {}",
        res.text()
    );
    assert_eq!(res.json()["error"], "invalid_grant", "{case}");
    assert_eq!(res.detail(), "Invalid or expired refresh token", "{case}");
}

async fn assert_live(app: &Instance, token: &str, case: &str) {
    let res = app.get("/users/me", Some(token)).await;
    assert_eq!(res.status, StatusCode::OK, "{case}: {}", res.text());
}

async fn assert_dead(app: &Instance, token: &str, case: &str) {
    assert_invalid_token(&app.get("/users/me", Some(token)).await, case);
}

db_test!(
    a_login_returns_a_refresh_token_and_the_scopes_and_names_its_session,
    |app| {
        app.register_ok("alice").await;
        let before = now();
        let body = alice_login(&app).await;
        let mut keys: Vec<_> = body.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "access_token",
                "expires_in",
                "refresh_expires_in",
                "refresh_token",
                "scope",
                "token_type"
            ]
        );
        assert_eq!(body["token_type"], "bearer");
        assert_eq!(body["expires_in"], 30 * 60);
        assert_eq!(body["scope"], "employees:read");
        // REFRESH_TOKEN_IDLE_MINUTES, 7 days by default.
        let refresh_in = body["refresh_expires_in"].as_i64().unwrap();
        assert!(
            (7 * 24 * 3600 - 2..=7 * 24 * 3600).contains(&refresh_in),
            "{refresh_in}"
        );
        // 256 random bits, base64url: 43 characters, not a JWT.
        let refresh = refresh_of(&body);
        assert_eq!(refresh.len(), 43, "{refresh}");
        assert!(!refresh.contains('.'));

        // The access token keeps its claims and adds the session id and the scopes.
        let claims = claims_of(access(&body));
        assert_eq!(claims["scope"], "employees:read");
        let sid = claims["sid"].as_str().expect("sid claim").to_owned();
        assert!(claims["iat"].as_u64().unwrap() >= before);

        let sessions = app.get("/users/me/sessions", Some(access(&body))).await;
        assert_eq!(sessions.status, StatusCode::OK, "{}", sessions.text());
        let sessions = sessions.json();
        assert_eq!(sessions.as_array().unwrap().len(), 1, "{sessions}");
        let session = &sessions[0];
        assert_eq!(session["id"], sid.as_str());
        assert_eq!(session["current"], true);
        assert_eq!(session["client_ip"], "127.0.0.1");
        let mut keys: Vec<_> = session.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "client_ip",
                "created_at",
                "current",
                "expires_at",
                "id",
                "last_used_at",
                "user_agent"
            ]
        );
        assert!(
            !sessions.to_string().contains(refresh),
            "the list shows a secret"
        );
        // The database holds only its hash.
        assert!(
            !app.database_contains(refresh).await,
            "the refresh token is stored"
        );
        assert!(
            app.database_contains("employees:read").await,
            "control: the session's scopes are found"
        );
    }
);

db_test!(
    the_session_list_shows_each_login_with_its_user_agent_and_marks_the_current_one,
    |app| {
        app.register_ok("alice").await;
        let mut tokens = Vec::new();
        for (n, agent) in ["curl/8.5.0", "Mozilla/5.0 (X11; Linux x86_64)"]
            .into_iter()
            .enumerate()
        {
            if n > 0 {
                // Times are stored by the second: let "newest" mean something.
                tokio::time::sleep(Duration::from_millis(1100)).await;
            }
            let req = with_header(login_req("alice", USER_PASSWORD), "user-agent", agent);
            let res = app.send_request(req).await;
            assert_eq!(res.status, StatusCode::OK, "{}", res.text());
            tokens.push(res.json()["access_token"].as_str().unwrap().to_owned());
        }
        let listed = app.get("/users/me/sessions", Some(&tokens[0])).await.json();
        let agents: Vec<_> = listed
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["user_agent"].as_str().unwrap(),
                    s["current"].as_bool().unwrap(),
                )
            })
            .collect();
        // Newest first.
        assert_eq!(
            agents,
            [
                ("Mozilla/5.0 (X11; Linux x86_64)", false),
                ("curl/8.5.0", true)
            ]
        );
    }
);

db_test!(
    a_refresh_rotates_the_refresh_token_and_keeps_the_session,
    |app| {
        app.register_ok("alice").await;
        let first = alice_login(&app).await;
        let res = refresh(&app, refresh_of(&first)).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
        assert_eq!(res.header("cache-control"), Some("no-store"));
        let second = res.json();
        assert_ne!(refresh_of(&second), refresh_of(&first), "rotated");
        assert_ne!(access(&second), access(&first));
        assert_eq!(second["scope"], "employees:read");
        assert_eq!(
            claims_of(access(&second))["sid"],
            claims_of(access(&first))["sid"],
            "the same session"
        );
        // Both access tokens belong to the live session.
        assert_live(&app, access(&first), "the first access token").await;
        assert_live(&app, access(&second), "the refreshed access token").await;
        // The successor refreshes in turn.
        let third = refresh(&app, refresh_of(&second)).await;
        assert_eq!(third.status, StatusCode::OK, "{}", third.text());
        let sessions = app.get("/users/me/sessions", Some(access(&second))).await;
        assert_eq!(sessions.json().as_array().unwrap().len(), 1);
    }
);

db_test!(
    twenty_concurrent_refreshes_with_one_token_all_succeed_with_one_successor,
    |app| {
        app.register_ok("alice").await;
        let login = alice_login(&app).await;
        let presented = refresh_of(&login).to_owned();
        let calls = (0..20).map(|_| {
            let (app, presented) = (app.instance(), presented.clone());
            tokio::spawn(async move { refresh(&app, &presented).await })
        });
        let mut successors = std::collections::BTreeSet::new();
        for call in calls {
            let res = call.await.unwrap();
            assert_eq!(res.status, StatusCode::OK, "{}", res.text());
            let body = res.json();
            successors.insert(refresh_of(&body).to_owned());
            assert_live(&app, access(&body), "a racing refresh's access token").await;
        }
        assert_eq!(successors.len(), 1, "one successor: {successors:?}");
        // No logout: the original access token and the successor still work.
        assert_live(&app, access(&login), "the login's access token").await;
        let successor = successors.into_iter().next().unwrap();
        let next = refresh(&app, &successor).await;
        assert_eq!(next.status, StatusCode::OK, "{}", next.text());
        let (sessions, _) = app.state.db.session_table_sizes().await.unwrap();
        assert_eq!(sessions, 1, "one session, never logged out");
    }
);

db_test!(
    a_spent_refresh_token_coming_back_after_the_grace_window_revokes_the_whole_session,
    TestApp::configure(|c| c.refresh_reuse_grace = Duration::ZERO),
    |app| {
        app.register_ok("alice").await;
        let other_session = app.login("alice", USER_PASSWORD).await;
        let login = alice_login(&app).await;
        let stolen = refresh_of(&login).to_owned();
        // The owner refreshes; the thief's copy is now spent.
        let owner = refresh(&app, &stolen).await.json();
        // The grace window is zero; spent tokens are compared by the second.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_invalid_grant(&refresh(&app, &stolen).await, "the spent token");
        // Every token of that session is dead: the thief's and the owner's alike.
        assert_dead(&app, access(&login), "the login's access token").await;
        assert_dead(&app, access(&owner), "the owner's refreshed access token").await;
        assert_invalid_grant(
            &refresh(&app, refresh_of(&owner)).await,
            "the owner's current refresh token",
        );
        // Only that session: the account's other login goes on.
        assert_live(&app, &other_session, "another session of the account").await;
    }
);

db_test!(
    within_the_grace_window_a_repeated_refresh_gets_the_same_successor,
    |app| {
        app.register_ok("alice").await;
        let login = alice_login(&app).await;
        let first = refresh(&app, refresh_of(&login)).await.json();
        let again = refresh(&app, refresh_of(&login)).await;
        assert_eq!(again.status, StatusCode::OK, "{}", again.text());
        assert_eq!(refresh_of(&again.json()), refresh_of(&first));
        assert_live(&app, access(&first), "after the repeat").await;
    }
);

db_test!(
    an_idle_session_ends_and_takes_its_access_tokens_with_it,
    TestApp::configure(|c| c.refresh_idle = Duration::from_secs(1)),
    |app| {
        app.register_ok("alice").await;
        let login = alice_login(&app).await;
        assert_eq!(login["refresh_expires_in"], 1);
        assert_live(&app, access(&login), "fresh").await;
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert_dead(&app, access(&login), "after the idle lifetime").await;
        assert_invalid_grant(&refresh(&app, refresh_of(&login)).await, "idle session");
    }
);

db_test!(
    a_refresh_never_extends_a_session_past_its_absolute_lifetime,
    TestApp::configure(|c| c.refresh_absolute = Duration::from_secs(2)),
    |app| {
        app.register_ok("alice").await;
        let login = alice_login(&app).await;
        let refresh_in = login["refresh_expires_in"].as_i64().unwrap();
        assert!((1..=2).contains(&refresh_in), "{refresh_in}");
        let mut current = refresh_of(&login).to_owned();
        let deadline = std::time::Instant::now() + Duration::from_secs(4);
        // Refreshing all the time does not keep it alive.
        let ended = loop {
            let res = refresh(&app, &current).await;
            if res.status != StatusCode::OK {
                break res;
            }
            current = refresh_of(&res.json()).to_owned();
            assert!(
                std::time::Instant::now() < deadline,
                "still alive after 4 s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_invalid_grant(&ended, "past the absolute lifetime");
    }
);

db_test!(refresh_token_requests_are_validated, |app| {
    let missing = app
        .post_form("/auth/token", None, &[("grant_type", "refresh_token")])
        .await;
    assert_eq!(missing.error_locs(), ["body.refresh_token"]);
    for (case, token) in [
        ("unknown", "A".repeat(43)),
        ("absurdly long", "A".repeat(1_000)),
        ("a JWT", app.admin_token().await),
    ] {
        assert_invalid_grant(&refresh(&app, &token).await, case);
    }
    let grant = app
        .post_form("/auth/token", None, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(grant.error_locs(), ["body.grant_type"]);
});

db_test!(
    scopes_are_what_was_asked_limited_to_what_the_account_may_hold,
    |app| {
        app.register_ok("alice").await;
        let body = login_body(
            &app,
            &[
                ("username", "admin"),
                ("password", ADMIN_PASSWORD),
                ("scope", "employees:read"),
            ],
        )
        .await;
        assert_eq!(body["scope"], "employees:read");
        let narrow = access(&body);
        let res = app
            .post_json("/employees/", Some(narrow), employee_body(1))
            .await;
        assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.text());
        assert_eq!(
            res.header("www-authenticate"),
            Some(r#"Bearer error="insufficient_scope", scope="employees:write""#)
        );
        let res = app.get("/users/", Some(narrow)).await;
        assert_eq!(
            res.header("www-authenticate"),
            Some(r#"Bearer error="insufficient_scope", scope="users:admin""#)
        );
        assert_eq!(
            app.get("/employees/", Some(narrow)).await.status,
            StatusCode::OK
        );
        // A refresh may not widen the scopes.
        let widen = app
            .post_form(
                "/auth/token",
                None,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh_of(&body)),
                    ("scope", "employees:read employees:write"),
                ],
            )
            .await;
        assert_eq!(widen.error_locs(), ["body.scope"]);

        // A normal user asking for everything gets what a user may hold; FastAPI's form
        // fields client_id and client_secret are accepted and ignored.
        let body = login_body(
            &app,
            &[
                ("username", "alice"),
                ("password", USER_PASSWORD),
                ("scope", "employees:read employees:write users:admin"),
                ("client_id", "swagger"),
                ("client_secret", ""),
            ],
        )
        .await;
        assert_eq!(body["scope"], "employees:read");
        // No scope: everything the account may hold.
        let full = login_body(&app, &[("username", "admin"), ("password", ADMIN_PASSWORD)]).await;
        assert_eq!(full["scope"], "employees:read employees:write users:admin");
        // A refresh may narrow them.
        let narrowed = app
            .post_form(
                "/auth/token",
                None,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh_of(&full)),
                    ("scope", "employees:read"),
                ],
            )
            .await;
        assert_eq!(narrowed.status, StatusCode::OK, "{}", narrowed.text());
        assert_eq!(narrowed.json()["scope"], "employees:read");
        // Unknown scope names are a 422.
        let res = app
            .post_form(
                "/auth/token",
                None,
                &[
                    ("username", "admin"),
                    ("password", ADMIN_PASSWORD),
                    ("scope", "employees:delete"),
                ],
            )
            .await;
        assert_eq!(res.error_locs(), ["body.scope"]);
    }
);

db_test!(logout_ends_this_session_at_once_and_only_it, |app| {
    app.register_ok("alice").await;
    let this = alice_login(&app).await;
    let other = alice_login(&app).await;
    let res = app
        .post_form("/auth/logout", Some(access(&this)), &[])
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text());
    assert_dead(&app, access(&this), "the logged-out access token").await;
    assert_invalid_grant(
        &refresh(&app, refresh_of(&this)).await,
        "the logged-out refresh token",
    );
    assert_live(&app, access(&other), "the other session").await;
    let sessions = app.get("/users/me/sessions", Some(access(&other))).await;
    assert_eq!(sessions.json().as_array().unwrap().len(), 1);
});

db_test!(logout_with_scope_others_or_global, |app| {
    app.register_ok("alice").await;
    let a = alice_login(&app).await;
    let b = alice_login(&app).await;
    let c = alice_login(&app).await;
    let res = app
        .post_form("/auth/logout?scope=others", Some(access(&a)), &[])
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text());
    assert_live(&app, access(&a), "the current session").await;
    assert_dead(&app, access(&b), "another session").await;
    assert_dead(&app, access(&c), "a third session").await;

    let d = alice_login(&app).await;
    let res = app
        .post_form("/auth/logout?scope=global", Some(access(&a)), &[])
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text());
    assert_dead(&app, access(&a), "the current session").await;
    assert_dead(&app, access(&d), "the newest session").await;

    let e = alice_login(&app).await;
    let res = app
        .post_form("/auth/logout?scope=everyone", Some(access(&e)), &[])
        .await;
    assert_eq!(res.error_locs(), ["query.scope"]);
    assert_live(&app, access(&e), "after a refused logout").await;
    assert_not_authenticated(
        &app.post_form("/auth/logout", None, &[]).await,
        "logout without a token",
    );
});

db_test!(
    revoking_a_refresh_token_ends_its_session_and_always_answers_200,
    |app| {
        app.register_ok("alice").await;
        let login = alice_login(&app).await;
        let res = app
            .post_form(
                "/auth/revoke",
                None,
                &[
                    ("token", refresh_of(&login)),
                    ("token_type_hint", "refresh_token"),
                ],
            )
            .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
        assert_dead(&app, access(&login), "the session's access token").await;
        assert_invalid_grant(&refresh(&app, refresh_of(&login)).await, "revoked");
        // Unknown, already revoked, or an access token: 200 all the same (RFC 7009 §2.2).
        let other = alice_login(&app).await;
        for token in [
            "A".repeat(43),
            refresh_of(&login).to_owned(),
            access(&other).to_owned(),
        ] {
            let res = app
                .post_form("/auth/revoke", None, &[("token", &token)])
                .await;
            assert_eq!(res.status, StatusCode::OK, "{}", res.text());
        }
        assert_dead(&app, access(&other), "revoked by its access token").await;
        let res = app.post_form("/auth/revoke", None, &[]).await;
        assert_eq!(res.error_locs(), ["body.token"]);
    }
);

db_test!(
    ending_a_session_from_the_list_stops_its_tokens_at_once,
    |app| {
        app.register_ok("alice").await;
        let mine = alice_login(&app).await;
        let lost_phone = alice_login(&app).await;
        let sid = claims_of(access(&lost_phone))["sid"]
            .as_str()
            .unwrap()
            .to_owned();
        let res = app
            .delete(&format!("/users/me/sessions/{sid}"), Some(access(&mine)))
            .await;
        assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text());
        assert_dead(&app, access(&lost_phone), "the ended session").await;
        assert_invalid_grant(
            &refresh(&app, refresh_of(&lost_phone)).await,
            "the ended session's refresh token",
        );
        assert_live(&app, access(&mine), "the session that ended it").await;
        let again = app
            .delete(&format!("/users/me/sessions/{sid}"), Some(access(&mine)))
            .await;
        assert_eq!(again.status, StatusCode::NOT_FOUND, "{}", again.text());
        let res = app
            .delete("/users/me/sessions/not-a-uuid", Some(access(&mine)))
            .await;
        assert_eq!(res.error_locs(), ["path.id"]);
    }
);

db_test!(
    a_password_change_ends_every_other_session_and_this_one_continues,
    |app| {
        app.register_ok("alice").await;
        let this = alice_login(&app).await;
        let other = alice_login(&app).await;
        let new_password = "a quieter river of bells";
        let change = |current: &'static str, new: &'static str| {
            let app = app.instance();
            let token = access(&this).to_owned();
            async move {
                app.post_json(
                    "/users/me/password",
                    Some(&token),
                    json!({"current_password": current, "new_password": new}),
                )
                .await
            }
        };
        let wrong = change("not the password at all", new_password).await;
        assert_eq!(wrong.error_locs(), ["body.current_password"]);
        let weak = change(USER_PASSWORD, "employee records rock").await;
        assert_eq!(weak.error_locs(), ["body.new_password"]);
        let named = change(USER_PASSWORD, "alice has a long password").await;
        assert_eq!(named.error_locs(), ["body.new_password"]);
        assert_live(&app, access(&other), "after refused changes").await;

        let res = change(USER_PASSWORD, new_password).await;
        assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text());
        assert_dead(&app, access(&other), "the other session").await;
        assert_invalid_grant(
            &refresh(&app, refresh_of(&other)).await,
            "the other session's refresh token",
        );
        assert_live(&app, access(&this), "this session").await;
        let refreshed = refresh(&app, refresh_of(&this)).await;
        assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.text());
        assert_eq!(
            app.login_raw("alice", USER_PASSWORD).await.status,
            StatusCode::UNAUTHORIZED
        );
        app.login("alice", new_password).await;

        let extra = app
            .post_json(
                "/users/me/password",
                Some(access(&this)),
                json!({"current_password": new_password, "new_password": "x", "is_admin": true}),
            )
            .await;
        assert!(
            extra.error_locs().contains(&"body.is_admin".to_owned()),
            "{}",
            extra.text()
        );
    }
);

db_test!(
    wrong_current_passwords_are_throttled_like_logins,
    TestApp::configure(|c| c.login_account = LOCKS_FOR_THE_HOUR_AFTER_3),
    |app| {
        app.register_ok("alice").await;
        let token = app.login("alice", USER_PASSWORD).await;
        let attempt = |current: &'static str| {
            let (app, token) = (app.instance(), token.clone());
            async move {
                app.post_json(
                    "/users/me/password",
                    Some(&token),
                    json!({"current_password": current, "new_password": "a quieter river of bells"}),
                )
                .await
            }
        };
        for n in 0..3 {
            let res = attempt("a wrong guess here").await;
            assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "guess {n}");
        }
        // Locked for the hour: even the right password is refused now.
        let res = attempt(USER_PASSWORD).await;
        assert_too_many(&res, "after three wrong current passwords");
    }
);

db_test!(a_user_holds_at_most_one_hundred_live_sessions, |app| {
    app.register_ok("alice").await;
    let oldest = alice_login(&app).await;
    // Times are stored by the second: make the first login the least recently used.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut newest = oldest.clone();
    for _ in 0..100 {
        newest = alice_login(&app).await;
    }
    let sessions = app.get("/users/me/sessions", Some(access(&newest))).await;
    assert_eq!(sessions.json().as_array().unwrap().len(), 100);
    assert_dead(&app, access(&oldest), "the least recently used session").await;
});

db_test!(
    the_purge_deletes_ended_sessions_and_old_spent_refresh_tokens,
    |app| {
        app.register_ok("alice").await;
        // A session refreshed 60 times: 61 refresh-token rows until the purge.
        let mut current = alice_login(&app).await;
        for _ in 0..60 {
            let res = refresh(&app, refresh_of(&current)).await;
            assert_eq!(res.status, StatusCode::OK, "{}", res.text());
            current = res.json();
        }
        let (_, tokens) = app.state.db.session_table_sizes().await.unwrap();
        assert_eq!(tokens, 61);
        purge(&app.state).await;
        let (sessions, tokens) = app.state.db.session_table_sizes().await.unwrap();
        assert_eq!(sessions, 1);
        assert_eq!(tokens, 51, "the current token and the newest 50 spent ones");
        assert_live(&app, access(&current), "the purge leaves a live session").await;

        // Past its idle lifetime (7 days by default) the session has ended, and the purge
        // deletes it with its tokens: the purge run with a clock 8 days ahead.
        let idle = app.state.session_lifetimes().idle;
        app.state
            .db
            .purge_sessions(now() as i64 + 8 * 24 * 3600, 24 * 3600, idle)
            .await
            .unwrap();
        assert_eq!(app.state.db.session_table_sizes().await.unwrap(), (0, 0));
    }
);

db_test!(
    a_revoked_session_is_purged_a_day_after_its_revocation,
    |app| {
        app.register_ok("alice").await;
        let login = alice_login(&app).await;
        app.post_form("/auth/logout", Some(access(&login)), &[])
            .await;
        purge(&app.state).await;
        let (sessions, _) = app.state.db.session_table_sizes().await.unwrap();
        assert_eq!(sessions, 1, "kept for a day after revocation");
        // The purge with a clock a day and a second later.
        app.state
            .db
            .purge_sessions(now() as i64 + 24 * 3600 + 1, 24 * 3600, 3600)
            .await
            .unwrap();
        assert_eq!(app.state.db.session_table_sizes().await.unwrap(), (0, 0));
    }
);

db_test!(
    a_logout_on_one_instance_is_refused_by_another_on_the_next_request,
    |app| {
        let (_, other) = app.second_instance(|_| {}).await;
        app.register_ok("alice").await;
        let login = alice_login(&app).await;
        assert_live(&other, access(&login), "the other instance").await;
        let res = app
            .post_form("/auth/logout", Some(access(&login)), &[])
            .await;
        assert_eq!(res.status, StatusCode::NO_CONTENT);
        assert_dead(
            &other,
            access(&login),
            "the other instance after the logout",
        )
        .await;
        // A read of employee records is refused too (the check rides on that query).
        let res = other
            .send(Method::GET, "/employees/1", Some(access(&login)), None)
            .await;
        assert_invalid_token(&res, "a point read on the other instance");
        let res = other.get("/employees/", Some(access(&login))).await;
        assert_invalid_token(&res, "a list on the other instance");
    }
);
