//! The security suite, organised by the OWASP API Security Top 10 (2023), one file per item.
//! Every test goes through the HTTP API; database tests run on SQLite and PostgreSQL
//! (`db_test!`), Redis tests once. Each threat has at least one test that would fail if the
//! defence were missing, and a control case proving the attack request was otherwise
//! well-formed (so a rejection means what it seems to mean). The request builders and
//! assertions are the shared ones in `helpers`.

mod api1_bola;
mod api2_broken_authentication;
mod api2_tokens;
mod api3_property_level_authorization;
mod api4_resource_consumption;
mod api5_function_level_authorization;
mod api6_sensitive_business_flows;
mod api7_ssrf;
mod api8_security_misconfiguration;
mod api9_inventory;
mod injection;
mod redis;
