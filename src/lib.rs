//! employee-api: a secure Employee Management HTTP/JSON API on SQLite or PostgreSQL.

/// Application state and the complete router (routes + middleware).
pub mod app;
/// Authentication: password hashing, tokens, and the `AuthUser`/`AdminUser` extractors.
pub mod auth;
/// The command line (`serve`, `migrate`, `user`, ...).
pub mod cli;
/// Settings from flags, environment and `.env`, validated once.
pub mod config;
/// Storage: the only module that writes SQL.
pub mod db;
/// Domain types that parse input once.
pub mod domain;
/// The one error type of the HTTP layer, and extractors that use it.
pub mod error;
/// The OpenAPI document and Swagger UI.
pub mod openapi;
/// Rate limits and login throttling.
pub mod rate_limit;
/// Shared limiter state in Redis.
pub mod redis_store;
/// HTTP handlers, one module per resource.
pub mod routes;
/// Start-up, serving and graceful shutdown.
pub mod server;
/// Logging set-up and Prometheus metrics.
pub mod telemetry;
/// Bulk import and export (CSV, NDJSON, JSON).
pub mod transfer;
