//! API2:2023 Broken Authentication: access tokens.

use std::time::Duration;

use axum::http::StatusCode;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::Algorithm;
use serde_json::json;

use crate::{db_test, helpers::*};

db_test!(forged_and_tampered_tokens_are_rejected_as_invalid, |app| {
    app.register_ok("alice").await;
    let base = app.claims_for("alice").await;
    let hs256 = json!({"alg": "HS256", "typ": "JWT"});
    // Control: the forging helpers make tokens the server accepts, so each rejection below
    // is caused by the one thing that case changes.
    let genuine = forge(&hs256, &base.clone(), Algorithm::HS256);
    let res = app.get("/users/me", Some(&genuine)).await;
    assert_eq!(
        res.status,
        StatusCode::OK,
        "forged control token: {}",
        res.text()
    );
    assert_eq!(res.json()["username"], "alice");

    let year = 365 * 24 * 3600;
    let cases = [
        (
            "alg none",
            unsigned(&json!({"alg": "none", "typ": "JWT"}), &base.clone()),
        ),
        (
            "alg None",
            unsigned(&json!({"alg": "None", "typ": "JWT"}), &base.clone()),
        ),
        (
            "alg none with the genuine signature",
            format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(json!({"alg": "none"}).to_string()),
                genuine.split_once('.').expect("three parts").1
            ),
        ),
        (
            "HS512 with the HS256 secret",
            forge(
                &json!({"alg": "HS512", "typ": "JWT"}),
                &base.clone(),
                Algorithm::HS512,
            ),
        ),
        (
            "HS256 header over an HS512 signature",
            forge(&hs256, &base.clone(), Algorithm::HS512),
        ),
        (
            "jwk header",
            forge(
                &json!({"alg": "HS256", "typ": "JWT", "jwk": {"kty": "oct", "k": URL_SAFE_NO_PAD.encode(SECRET)}}),
                &base.clone(),
                Algorithm::HS256,
            ),
        ),
        (
            "jku header",
            forge(
                &json!({"alg": "HS256", "typ": "JWT", "jku": "https://attacker.example/jwks.json"}),
                &base.clone(),
                Algorithm::HS256,
            ),
        ),
        (
            "x5u header",
            forge(
                &json!({"alg": "HS256", "typ": "JWT", "x5u": "https://attacker.example/cert.pem"}),
                &base.clone(),
                Algorithm::HS256,
            ),
        ),
        (
            "exp as a string",
            forge(
                &hs256,
                &with_claim(base.clone(), "exp", json!((now() + 600).to_string())),
                Algorithm::HS256,
            ),
        ),
        (
            "missing exp",
            forge(
                &hs256,
                &without_claim(base.clone(), "exp"),
                Algorithm::HS256,
            ),
        ),
        (
            "far-future nbf",
            forge(
                &hs256,
                &with_claim(base.clone(), "nbf", json!(now() + 10 * year)),
                Algorithm::HS256,
            ),
        ),
        (
            "expired an hour ago",
            forge(
                &hs256,
                &with_claim(
                    with_claim(base.clone(), "exp", json!(now() - 3600)),
                    "iat",
                    json!(now() - 7200),
                ),
                Algorithm::HS256,
            ),
        ),
        (
            "signed with another secret",
            forge_with(&hs256, &base.clone(), Algorithm::HS256, &[7; 64]),
        ),
        (
            "sub is the username",
            forge(
                &hs256,
                &with_claim(base.clone(), "sub", json!("alice")),
                Algorithm::HS256,
            ),
        ),
        (
            "sub is zero",
            forge(
                &hs256,
                &with_claim(base.clone(), "sub", json!("0")),
                Algorithm::HS256,
            ),
        ),
        // Signed with the server's own secret, yet not a live session of the subject: the
        // session check is what refuses them.
        (
            "no session id",
            forge(
                &hs256,
                &without_claim(base.clone(), "sid"),
                Algorithm::HS256,
            ),
        ),
        (
            "a session id that was never issued",
            forge(
                &hs256,
                &with_claim(base.clone(), "sid", json!(uuid::Uuid::new_v4().to_string())),
                Algorithm::HS256,
            ),
        ),
        (
            "alice's session under the administrator's id",
            forge(
                &hs256,
                &with_claim(base.clone(), "sub", json!("1")),
                Algorithm::HS256,
            ),
        ),
        (
            "truncated signature",
            genuine[..genuine.len() - 4].to_owned(),
        ),
        ("payload swapped under a genuine signature", {
            let other_claims =
                URL_SAFE_NO_PAD.encode(with_claim(base.clone(), "sub", json!("1")).to_string());
            let mut parts: Vec<&str> = genuine.split('.').collect();
            parts[1] = &other_claims;
            parts.join(".")
        }),
        ("not a JWT", "not.a.jwt".to_owned()),
        ("garbage", "garbage".to_owned()),
        ("three empty parts", "a.b.c".to_owned()),
    ];
    for (case, token) in &cases {
        assert_invalid_token(&app.get("/users/me", Some(token.as_str())).await, case);
    }
});

db_test!(
    a_request_without_a_token_is_challenged_without_an_error_code,
    |app| {
        for path in ["/users/me", "/users/", "/employees/", "/employees/1"] {
            assert_not_authenticated(&app.get(path, None).await, path);
        }
    }
);

db_test!(
    tokens_are_accepted_only_in_the_authorization_header,
    |app| {
        let token = app.user_token().await;
        let elsewhere = [
            (
                "query access_token",
                get_req(&format!("/users/me?access_token={token}"), None),
            ),
            (
                "query token",
                get_req(&format!("/users/me?token={token}"), None),
            ),
            (
                "cookie access_token",
                with_header(
                    get_req("/users/me", None),
                    "cookie",
                    &format!("access_token={token}"),
                ),
            ),
            (
                "cookie Authorization",
                with_header(
                    get_req("/users/me", None),
                    "cookie",
                    &format!("Authorization=Bearer%20{token}"),
                ),
            ),
            (
                "X-Access-Token header",
                with_header(get_req("/users/me", None), "x-access-token", &token),
            ),
            (
                "Authorization with another scheme",
                with_header(
                    get_req("/users/me", None),
                    "authorization",
                    &format!("Token {token}"),
                ),
            ),
        ];
        for (case, req) in elsewhere {
            assert_not_authenticated(&app.send_request(req).await, case);
        }
        // Control: the same token in the Authorization header is accepted, in any case of scheme.
        for scheme in ["Bearer", "bearer"] {
            let req = with_header(
                get_req("/users/me", None),
                "authorization",
                &format!("{scheme} {token}"),
            );
            let res = app.send_request(req).await;
            assert_eq!(res.status, StatusCode::OK, "{scheme}: {}", res.text());
            assert_eq!(res.json()["username"], "alice");
        }
    }
);

db_test!(
    a_token_lives_exactly_access_token_expire_minutes,
    TestApp::configure(|config| config.token_ttl = Duration::from_secs(7 * 60)),
    |app| {
        app.register_ok("alice").await;
        let before = now();
        let res = app.login_raw("alice", USER_PASSWORD).await;
        let after = now();
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
        let body = res.json();
        assert_eq!(body["expires_in"], 420, "{body}");
        let claims = claims_of(body["access_token"].as_str().expect("access_token"));
        let (iat, exp) = (
            claims["iat"].as_u64().expect("numeric iat"),
            claims["exp"].as_u64().expect("numeric exp"),
        );
        assert_eq!(exp - iat, 420, "exp - iat in {claims}");
        assert!(
            (before..=after).contains(&iat),
            "iat {iat} is the time of issue ({before}..={after})"
        );
    }
);

db_test!(
    the_clock_leeway_on_exp_and_nbf_is_at_most_30_seconds,
    |app| {
        app.register_ok("alice").await;
        let base = app.claims_for("alice").await;
        let hs256 = json!({"alg": "HS256", "typ": "JWT"});
        // Control: a token with both claims comfortably valid is accepted.
        let fresh = with_claim(base.clone(), "nbf", json!(now() - 60));
        let res = app
            .get("/users/me", Some(&forge(&hs256, &fresh, Algorithm::HS256)))
            .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());

        // exp 31 s ago: the server's clock can only be later than ours, so this is exact.
        let expired = with_claim(
            with_claim(base.clone(), "exp", json!(now() - 31)),
            "iat",
            json!(now() - 600),
        );
        assert_invalid_token(
            &app.get(
                "/users/me",
                Some(&forge(&hs256, &expired, Algorithm::HS256)),
            )
            .await,
            "expired 31 s ago",
        );
        // nbf 35 s ahead: five seconds of margin for the request to arrive.
        let early = with_claim(base.clone(), "nbf", json!(now() + 35));
        assert_invalid_token(
            &app.get("/users/me", Some(&forge(&hs256, &early, Algorithm::HS256)))
                .await,
            "not valid for another 35 s",
        );
    }
);

db_test!(
    a_deleted_users_token_stops_working_even_after_the_name_is_registered_again,
    |app| {
        let old_id = app.register_ok("alice").await;
        let old_token = app.login("alice", USER_PASSWORD).await;
        assert_eq!(
            app.get("/users/me", Some(&old_token)).await.status,
            StatusCode::OK
        );

        let admin = app.admin_token().await;
        let deleted = app.delete(&format!("/users/{old_id}"), Some(&admin)).await;
        assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text());
        assert_invalid_token(
            &app.get("/users/me", Some(&old_token)).await,
            "deleted user",
        );

        let new_id = app.register_ok("alice").await;
        assert_ne!(new_id, old_id, "the id of a deleted user was reused");
        assert_invalid_token(
            &app.get("/users/me", Some(&old_token)).await,
            "name registered again",
        );
        let new_token = app.login("alice", USER_PASSWORD).await;
        assert_eq!(
            app.get("/users/me", Some(&new_token)).await.json()["id"],
            new_id
        );
    }
);
