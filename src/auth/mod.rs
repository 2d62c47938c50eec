//! Authentication: password hashing, access tokens, and the extractors that say who may call.

pub mod extract;
pub mod password;
pub mod token;
