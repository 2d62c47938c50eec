//! Welcome, liveness, readiness, unknown paths and methods, response headers.

use std::time::{Duration, Instant};

use axum::{
    body::Body,
    http::{Method, Request, StatusCode},
};

use crate::db_test;

db_test!(root_returns_the_welcome_message, |app| {
    let res = app.get("/", None).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(
        res.json(),
        serde_json::json!({"message": "Welcome to the Employee Management API."})
    );
});

db_test!(
    healthz_and_readyz_answer_200_when_the_database_is_up,
    |app| {
        assert_eq!(
            app.get("/healthz", None).await.json(),
            serde_json::json!({"status": "ok"})
        );
        let ready = app.get("/readyz", None).await;
        assert_eq!(ready.status, StatusCode::OK);
        assert_eq!(ready.json()["checks"]["database"]["status"], "ok");
    }
);

db_test!(
    database_down_gives_503_with_retry_after_within_five_seconds,
    |app| {
        let token = app.admin_token().await;
        app.state.db.close().await;
        for path in ["/readyz", "/employees/", "/users/me"] {
            let started = Instant::now();
            let res = app.get(path, Some(&token)).await;
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{path} took {:?}",
                started.elapsed()
            );
            assert_eq!(
                res.status,
                StatusCode::SERVICE_UNAVAILABLE,
                "{path}: {}",
                res.text()
            );
            assert!(res.header("retry-after").is_some(), "{path}");
            assert!(res.json()["detail"].is_string());
        }
        assert_eq!(
            app.get("/healthz", None).await.status,
            StatusCode::OK,
            "liveness does not depend on the database"
        );
    }
);

db_test!(unknown_path_returns_404_json, |app| {
    let res = app.get("/nope", None).await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    assert_eq!(res.detail(), "Not Found");
});

db_test!(unsupported_method_returns_405_with_allow, |app| {
    for (method, path) in [
        (Method::PUT, "/employees/1"),
        (Method::DELETE, "/employees/"),
        (Method::GET, "/auth/token"),
    ] {
        let req = Request::builder()
            .method(method.clone())
            .uri(path)
            .body(Body::empty())
            .unwrap();
        let res = app.send_request(req).await;
        assert_eq!(
            res.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert!(res.header("allow").is_some(), "{method} {path}");
        assert_eq!(res.detail(), "Method Not Allowed");
    }
});

db_test!(
    request_id_is_echoed_when_well_formed_and_replaced_otherwise,
    |app| {
        let send = |id: &'static str| {
            Request::builder()
                .uri("/healthz")
                .header("x-request-id", id)
                .body(Body::empty())
                .unwrap()
        };
        let res = app.send_request(send("abc-123")).await;
        assert_eq!(res.header("x-request-id"), Some("abc-123"));
        let res = app.send_request(send("evil id\twith tab")).await;
        let id = res.header("x-request-id").unwrap();
        assert_ne!(id, "evil id\twith tab");
        assert!(uuid::Uuid::parse_str(id).is_ok());
        assert!(
            uuid::Uuid::parse_str(app.get("/", None).await.header("x-request-id").unwrap()).is_ok()
        );
    }
);

db_test!(docs_are_served_from_the_binary, |app| {
    let res = app.get("/docs/", None).await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(res.text().contains("swagger"), "Swagger UI page");
    let spec = app.get("/openapi.json", None).await;
    assert_eq!(spec.json()["openapi"], "3.1.0");
});

db_test!(
    redoc_is_served_from_the_binary_under_the_docs_policy,
    |app| {
        let page = app.get("/redoc", None).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.text().contains(r#"<redoc spec-url="/openapi.json""#));
        let csp = page.header("content-security-policy").unwrap().to_owned();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-eval"),
            "{csp}"
        );
        let js = app.get("/redoc/redoc.standalone.js", None).await;
        assert_eq!(js.status, StatusCode::OK);
        assert!(
            js.body.len() > 500_000,
            "the bundle itself, not a CDN loader"
        );
        assert!(!js.text().contains("cdn.jsdelivr.net/npm/redoc"));
    }
);
