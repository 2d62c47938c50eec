//! Welcome, liveness, readiness, unknown paths, the documentation pages. (Methods, request ids
//! and an unreachable database are in the security suite, API8.)

use axum::http::StatusCode;

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

db_test!(unknown_path_returns_404_json, |app| {
    let res = app.get("/nope", None).await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    assert_eq!(res.detail(), "Not Found");
});

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
