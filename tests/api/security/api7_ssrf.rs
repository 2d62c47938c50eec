//! API7:2023 Server Side Request Forgery.
//!
//! The service makes no outbound requests on a client's behalf; the one place a client could
//! name a URL is a token's `jku`/`x5u` header, which must never be fetched.

use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde_json::json;

use crate::{db_test, helpers::*};

db_test!(
    a_token_naming_a_key_url_is_rejected_without_fetching_it,
    |app| {
        app.register_ok("alice").await;
        let base = app.claims_for("alice").await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a local port");
        let url = format!(
            "http://{}/jwks.json",
            listener.local_addr().expect("local address")
        );
        for key in ["jku", "x5u"] {
            let token = forge(
                &json!({"alg": "HS256", "typ": "JWT", key: url}),
                &base,
                Algorithm::HS256,
            );
            assert_invalid_token(&app.get("/users/me", Some(&token)).await, key);
        }
        let contacted = tokio::time::timeout(Duration::from_millis(300), listener.accept()).await;
        assert!(
            contacted.is_err(),
            "the server connected to the URL in the token header"
        );
    }
);
