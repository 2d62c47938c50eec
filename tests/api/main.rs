//! The API test suite: one binary, one module per area.

mod helpers;

mod auth;
mod binary;
mod bootstrap;
mod employees;
mod health;
mod listing;
mod openapi;
mod security;
mod transfer;
