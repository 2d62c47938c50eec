//! The edge of the HTTP layer: extractors that turn a request into domain values and the
//! caller's identity, rejecting with [`crate::error::ApiError`] (so every refusal has the
//! service's one error shape).

pub mod auth;
pub mod body;
pub mod client;
pub mod conditional;
pub mod idempotency;
pub mod path;
pub mod query;
