//! API9:2023 Improper Inventory Management

use axum::http::StatusCode;

use crate::db_test;

db_test!(no_undocumented_debug_or_legacy_endpoints_answer, |app| {
    let admin = app.admin_token().await;
    for path in [
        "/debug",
        "/metrics",
        "/admin",
        "/.env",
        "/actuator/health",
        "/api/v1/employees/",
        "/graphql",
        "/server-status",
        "/users/all/",
        "/users/me/tokens",
    ] {
        let res = app.get(path, Some(&admin)).await;
        assert_eq!(res.status, StatusCode::NOT_FOUND, "{path}: {}", res.text());
    }
});
