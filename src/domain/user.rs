//! User accounts as the API shows them.

use serde::Serialize;
use utoipa::ToSchema;

use super::username::Username;

/// An account (UserRead). Never carries the password hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = UserRead, example = json!({"id": 2, "username": "alice", "is_admin": false, "is_active": true}))]
pub struct User {
    pub id: i64,
    #[schema(value_type = String, example = "alice")]
    pub username: Username,
    pub is_admin: bool,
    /// A disabled account cannot log in and its sessions and API keys stop working.
    pub is_active: bool,
}

impl Serialize for Username {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}
