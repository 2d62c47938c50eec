//! employee-api: a secure Employee Management HTTP/JSON API on SQLite or PostgreSQL.
//!
//! Modules, from the bottom up (a module uses only those above it in this list, never one
//! below; ARCHITECTURE.md draws the map):
//! `domain` → `config`, `files`, `telemetry` → `db`, `auth`, `rate_limit` → `transfer` → `app` →
//! `error` → `extract`, `openapi` → `middleware`, `routes` → `router` → `server` → `cli`.

/// Domain types that parse input once, and validation errors.
pub mod domain;

/// Settings from flags, environment, `.env` and the config file, validated once.
pub mod config;
/// Owner-only files for secrets and personal data, written atomically.
pub mod files;
/// Logging set-up and Prometheus metrics.
pub mod telemetry;

/// Password hashing and access tokens.
pub mod auth;
/// Storage: the only module that writes SQL.
pub mod db;
/// Rate limits and login throttling, in process or shared through Redis.
pub mod rate_limit;
/// Bulk import and export (CSV, NDJSON, JSON), shared by the CLI and the API.
pub mod transfer;

/// The application state.
pub mod app;
/// The command line (`serve`, `migrate`, `user`, ...).
pub mod cli;
/// The one error type of the HTTP layer.
pub mod error;
/// Extractors: request parts into domain values and the caller's identity.
pub mod extract;
/// The middleware stack, one layer per file.
pub mod middleware;
/// The OpenAPI document's frame, shared responses, Swagger UI and ReDoc.
pub mod openapi;
/// The complete router: routes, docs and middleware.
pub mod router;
/// HTTP handlers, one module per resource.
pub mod routes;
/// Start-up, the accept loop and graceful shutdown.
pub mod server;
