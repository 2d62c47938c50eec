//! API6:2023 Unrestricted Access to Sensitive Business Flows (account creation).

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::{db_test, helpers::*};

db_test!(
    registration_is_limited_per_client_address,
    TestApp::configure(|config| {
        config.register_burst = 2;
        config.register_per_hour = 1;
    }),
    |app| {
        app.register_ok("user-1").await;
        app.register_ok("user-2").await;
        let wait = assert_too_many(
            &app.register("user-3", USER_PASSWORD).await,
            "third registration",
        );
        assert!(
            wait > 60,
            "refill is slow (one per hour), got Retry-After {wait}"
        );
        let body = json!({"username": "user-3", "password": USER_PASSWORD}).to_string();
        let spoofed = with_header(
            json_req(Method::POST, "/auth/register", None, body.clone()),
            "x-forwarded-for",
            "198.51.100.9",
        );
        assert_too_many(&app.send_request(spoofed).await, "spoofed X-Forwarded-For");
        assert_eq!(
            app.login_raw("user-3", USER_PASSWORD).await.status,
            StatusCode::UNAUTHORIZED,
            "user-3 was created"
        );

        let res = app
            .send_request(from_peer(
                json_req(Method::POST, "/auth/register", None, body),
                other_peer(40),
            ))
            .await;
        assert_eq!(
            res.status,
            StatusCode::CREATED,
            "another address is unaffected: {}",
            res.text()
        );
    }
);
