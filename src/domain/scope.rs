//! OAuth2 scopes: what a token or an API key may do, on top of who its user is.

use std::fmt;

/// One permission a credential can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Read employee records.
    EmployeesRead,
    /// Create, change, delete, import and export employee records (administrators only).
    EmployeesWrite,
    /// Manage user accounts and API keys (administrators only).
    UsersAdmin,
}

impl Scope {
    pub const ALL: [Scope; 3] = [
        Scope::EmployeesRead,
        Scope::EmployeesWrite,
        Scope::UsersAdmin,
    ];

    /// The scope's name on the wire (`scope` parameters and claims).
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::EmployeesRead => "employees:read",
            Scope::EmployeesWrite => "employees:write",
            Scope::UsersAdmin => "users:admin",
        }
    }

    /// What the scope allows, for the OpenAPI document and help texts.
    pub fn description(self) -> &'static str {
        match self {
            Scope::EmployeesRead => "Read employee records",
            Scope::EmployeesWrite => "Create, change and delete employee records (administrators)",
            Scope::UsersAdmin => "Manage user accounts and API keys (administrators)",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    fn bit(self) -> u8 {
        match self {
            Scope::EmployeesRead => 1,
            Scope::EmployeesWrite => 2,
            Scope::UsersAdmin => 4,
        }
    }
}

/// A set of scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Scopes(u8);

impl Scopes {
    pub const NONE: Scopes = Scopes(0);

    /// Everything a user may hold: every scope for an administrator, reading for others.
    pub fn allowed_for(is_admin: bool) -> Self {
        if is_admin {
            Scope::ALL.into_iter().collect()
        } else {
            Scope::EmployeesRead.into()
        }
    }

    /// A space-separated list (RFC 6749 §3.3), refusing unknown names (the unknown name is
    /// returned). Repeats are fine; an empty list is the empty set.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut scopes = Scopes::NONE;
        for name in raw.split(' ').filter(|s| !s.is_empty()) {
            let scope = Scope::parse(name).ok_or_else(|| name.to_owned())?;
            scopes.0 |= scope.bit();
        }
        Ok(scopes)
    }

    /// The scopes both sets hold.
    pub fn intersect(self, other: Scopes) -> Scopes {
        Scopes(self.0 & other.0)
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }
}

impl From<Scope> for Scopes {
    fn from(scope: Scope) -> Self {
        Scopes(scope.bit())
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        Scopes(iter.into_iter().fold(0, |bits, s| bits | s.bit()))
    }
}

impl FromIterator<Scopes> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scopes>>(iter: I) -> Self {
        Scopes(iter.into_iter().fold(0, |bits, s| bits | s.0))
    }
}

impl fmt::Display for Scopes {
    /// Space-separated, in a fixed order.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(Scope::as_str).collect();
        f.write_str(&names.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admins_may_hold_every_scope_and_others_only_reading() {
        assert_eq!(
            Scopes::allowed_for(true).to_string(),
            "employees:read employees:write users:admin"
        );
        assert_eq!(Scopes::allowed_for(false).to_string(), "employees:read");
    }

    #[test]
    fn requested_scopes_are_limited_to_the_allowed_ones() {
        let asked = Scopes::parse("users:admin employees:read").unwrap();
        assert_eq!(
            asked.intersect(Scopes::allowed_for(false)).to_string(),
            "employees:read"
        );
        assert_eq!(Scopes::parse("  ").unwrap(), Scopes::NONE);
        assert_eq!(Scopes::parse("employees:read root").unwrap_err(), "root");
    }
}
