//! Domain types. Each constrained value is a newtype with a private field and a fallible
//! constructor: raw input is parsed once, at the edge, and nothing past that re-checks it.

pub mod audit;
pub mod client;
pub mod clock;
pub mod employee;
pub mod idempotency;
pub mod input;
pub mod listing;
pub mod password;
pub mod scope;
pub mod user;
pub mod username;
pub mod validation;
pub mod version;
