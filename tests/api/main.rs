//! The API test suite: one binary, one module per area.

mod helpers;

mod accounts;
mod api_keys;
mod architecture;
mod auth;
mod binary;
mod bootstrap;
mod browser;
mod cli;
mod connections;
mod crash;
mod employees;
mod first_hour;
mod floods;
mod health;
mod history;
mod hostile;
mod idempotency;
mod instances;
mod listing;
mod openapi;
mod pools;
mod security;
mod sessions;
mod transfer;
