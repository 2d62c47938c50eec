//! The audit trail's entries and their hash chain.
//!
//! An entry has a public part (who, when, from where, what, which fields) and a personal part
//! (the fields' values before and after), stored apart so a person can be erased. The chain
//! covers both without keeping the personal values:
//!
//! ```text
//! personal_hash = SHA-256(salt || personal JSON)           salt: 16 random bytes, kept with it
//! hash          = SHA-256(previous hash || seq as 8 bytes big-endian || canonical public JSON)
//! ```
//!
//! The canonical public JSON is an array in a fixed order and includes `personal_hash`, so
//! changing, deleting or reordering any entry breaks every later hash, while erasing a
//! personal part (salt and values together) breaks nothing and leaves a hash nobody can test
//! guesses against.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The hash before the first entry.
pub const GENESIS: [u8; 32] = [0; 32];

/// Who did something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// A user, by an access token.
    User,
    /// An API key (`id` is the key's id).
    ApiKey,
    /// The command line on the server.
    Cli,
    /// The server itself (the retention purge).
    System,
    /// Nobody logged in (registration, a failed login).
    Anonymous,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::User => "user",
            ActorKind::ApiKey => "api_key",
            ActorKind::Cli => "cli",
            ActorKind::System => "system",
            ActorKind::Anonymous => "anonymous",
        }
    }

    /// The kind stored as `text` (unknown text reads as anonymous: it cannot have been
    /// written by this server).
    pub fn parse(text: &str) -> ActorKind {
        match text {
            "user" => ActorKind::User,
            "api_key" => ActorKind::ApiKey,
            "cli" => ActorKind::Cli,
            "system" => ActorKind::System,
            _ => ActorKind::Anonymous,
        }
    }
}

/// Who did it, and through what: recorded with every entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditContext {
    pub actor: ActorKind,
    /// The user's id, or the API key's.
    pub actor_id: Option<i64>,
    pub session_id: Option<Uuid>,
    pub client_ip: Option<String>,
    pub request_id: Option<String>,
}

impl AuditContext {
    /// The command line on the server.
    pub fn cli() -> Self {
        Self::bare(ActorKind::Cli)
    }

    /// The server's own housekeeping.
    pub fn system() -> Self {
        Self::bare(ActorKind::System)
    }

    fn bare(actor: ActorKind) -> Self {
        AuditContext {
            actor,
            actor_id: None,
            session_id: None,
            client_ip: None,
            request_id: None,
        }
    }
}

/// What was done: dotted names, the first part naming the kind of target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    EmployeeCreate,
    EmployeeUpdate,
    EmployeeDelete,
    EmployeeRestore,
    EmployeeErase,
    EmployeeImport,
    EmployeeExport,
    UserCreate,
    UserLogin,
    UserLoginFailed,
    UserLogout,
    UserPasswordChange,
    UserPasswordReset,
    UserUpdate,
    UserDelete,
    SessionRefresh,
    SessionReuse,
    SessionRevoke,
    ApiKeyCreate,
    ApiKeyRevoke,
}

impl Action {
    pub const ALL: [Action; 20] = [
        Action::EmployeeCreate,
        Action::EmployeeUpdate,
        Action::EmployeeDelete,
        Action::EmployeeRestore,
        Action::EmployeeErase,
        Action::EmployeeImport,
        Action::EmployeeExport,
        Action::UserCreate,
        Action::UserLogin,
        Action::UserLoginFailed,
        Action::UserLogout,
        Action::UserPasswordChange,
        Action::UserPasswordReset,
        Action::UserUpdate,
        Action::UserDelete,
        Action::SessionRefresh,
        Action::SessionReuse,
        Action::SessionRevoke,
        Action::ApiKeyCreate,
        Action::ApiKeyRevoke,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::EmployeeCreate => "employee.create",
            Action::EmployeeUpdate => "employee.update",
            Action::EmployeeDelete => "employee.delete",
            Action::EmployeeRestore => "employee.restore",
            Action::EmployeeErase => "employee.erase",
            Action::EmployeeImport => "employee.import",
            Action::EmployeeExport => "employee.export",
            Action::UserCreate => "user.create",
            Action::UserLogin => "user.login",
            Action::UserLoginFailed => "user.login_failed",
            Action::UserLogout => "user.logout",
            Action::UserPasswordChange => "user.password_change",
            Action::UserPasswordReset => "user.password_reset",
            Action::UserUpdate => "user.update",
            Action::UserDelete => "user.delete",
            Action::SessionRefresh => "session.refresh",
            Action::SessionReuse => "session.reuse",
            Action::SessionRevoke => "session.revoke",
            Action::ApiKeyCreate => "api_key.create",
            Action::ApiKeyRevoke => "api_key.revoke",
        }
    }

    pub fn parse(text: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == text)
    }

    /// Whether the action changes the rows employee lists show (the list ETag's data version).
    pub fn changes_employees(self) -> bool {
        matches!(
            self,
            Action::EmployeeCreate
                | Action::EmployeeUpdate
                | Action::EmployeeDelete
                | Action::EmployeeRestore
                | Action::EmployeeImport
        )
    }

    /// The kind of target the action is about.
    pub fn target_type(self) -> &'static str {
        self.as_str().split('.').next().unwrap_or_default()
    }
}

/// The values a change took: field name to (before, after). JSON `null` for "none".
pub type Changes = BTreeMap<&'static str, (Value, Value)>;

/// An entry to append, before the chain gives it a number and a hash.
#[derive(Debug, Clone)]
pub struct NewEntry {
    pub action: Action,
    pub target_id: Option<String>,
    /// The employee record (person) it is about, for erasure.
    pub record_id: Option<Uuid>,
    pub changes: Changes,
}

impl NewEntry {
    pub fn new(action: Action, target_id: impl ToString) -> Self {
        NewEntry {
            action,
            target_id: Some(target_id.to_string()),
            record_id: None,
            changes: Changes::new(),
        }
    }

    /// An entry about no particular target (an export).
    pub fn untargeted(action: Action) -> Self {
        NewEntry {
            action,
            target_id: None,
            record_id: None,
            changes: Changes::new(),
        }
    }

    pub fn record(mut self, id: Uuid) -> Self {
        self.record_id = Some(id);
        self
    }

    pub fn change(mut self, field: &'static str, from: Value, to: Value) -> Self {
        self.changes.insert(field, (from, to));
        self
    }
}

/// The personal part of an entry as stored: its salt and its JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Personal {
    pub salt: Vec<u8>,
    pub data: String,
}

impl Personal {
    /// SHA-256(salt || data).
    pub fn hash(&self) -> Vec<u8> {
        let mut h = Sha256::new();
        h.update(&self.salt);
        h.update(self.data.as_bytes());
        h.finalize().to_vec()
    }
}

/// An entry's public part, as stored and as hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Public {
    pub seq: i64,
    /// Unix milliseconds.
    pub at: i64,
    pub actor: ActorKind,
    pub actor_id: Option<i64>,
    pub session_id: Option<Uuid>,
    pub client_ip: Option<String>,
    pub request_id: Option<String>,
    pub action: String,
    pub target_type: String,
    pub target_id: Option<String>,
    pub record_id: Option<Uuid>,
    /// JSON array of field names.
    pub fields: String,
    pub personal_hash: Option<Vec<u8>>,
}

impl Public {
    /// The bytes the entry's hash covers after the previous hash and the sequence number.
    fn canonical(&self) -> Vec<u8> {
        let hex = |b: &Vec<u8>| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        json!([
            self.at,
            self.actor.as_str(),
            self.actor_id,
            self.session_id.map(|s| s.to_string()),
            self.client_ip,
            self.request_id,
            self.action,
            self.target_type,
            self.target_id,
            self.record_id.map(|r| r.to_string()),
            self.fields,
            self.personal_hash.as_ref().map(hex),
        ])
        .to_string()
        .into_bytes()
    }

    /// The entry's hash, chained to `previous`.
    pub fn hash(&self, previous: &[u8]) -> Vec<u8> {
        let mut h = Sha256::new();
        h.update(previous);
        h.update(self.seq.to_be_bytes());
        h.update(self.canonical());
        h.finalize().to_vec()
    }
}

/// An entry recorded with its context, time and personal part, waiting for the chain to give
/// it a number and a hash (see [`Unsealed::seal`]).
#[derive(Debug, Clone)]
pub struct Unsealed {
    /// Its `seq` is 0 until the entry is sealed.
    pub public: Public,
    /// `None` when the entry has no values, or they were erased before it was sealed.
    pub personal: Option<Personal>,
    /// When the personal part was erased (Unix milliseconds), if it was.
    pub erased_at: Option<i64>,
}

/// An entry ready to store: numbered, hashed, with its personal part (if it has values).
#[derive(Debug, Clone)]
pub struct Sealed {
    pub public: Public,
    pub personal: Option<Personal>,
    pub erased_at: Option<i64>,
    pub hash: Vec<u8>,
}

impl Unsealed {
    /// Numbers and hashes the entry as the one after (`seq - 1`, `previous`).
    pub fn seal(self, seq: i64, previous: &[u8]) -> Sealed {
        let mut public = self.public;
        public.seq = seq;
        let hash = public.hash(previous);
        Sealed {
            public,
            personal: self.personal,
            erased_at: self.erased_at,
            hash,
        }
    }
}

impl NewEntry {
    /// The entry as recorded by `ctx` at `at_millis`: its field names public, its values in a
    /// freshly salted personal part.
    pub fn prepare(self, ctx: &AuditContext, at_millis: i64) -> Unsealed {
        let fields: Vec<&str> = self.changes.keys().copied().collect();
        let personal = (!self.changes.is_empty()).then(|| {
            let data: BTreeMap<&str, Value> = self
                .changes
                .iter()
                .map(|(field, (from, to))| (*field, json!({"from": from, "to": to})))
                .collect();
            Personal {
                salt: rand::random::<[u8; 16]>().to_vec(),
                data: serde_json::to_string(&data).unwrap_or_default(),
            }
        });
        let public = Public {
            seq: 0,
            at: at_millis,
            actor: ctx.actor,
            actor_id: ctx.actor_id,
            session_id: ctx.session_id,
            client_ip: ctx.client_ip.clone(),
            request_id: ctx.request_id.clone(),
            action: self.action.as_str().to_owned(),
            target_type: self.action.target_type().to_owned(),
            target_id: self.target_id,
            record_id: self.record_id,
            fields: serde_json::to_string(&fields).unwrap_or_default(),
            personal_hash: personal.as_ref().map(Personal::hash),
        };
        Unsealed {
            public,
            personal,
            erased_at: None,
        }
    }
}

/// Why a chain does not verify, at the first entry that fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Broken {
    /// The sequence jumps: entries are missing (or were reordered).
    Gap { expected: i64, found: i64 },
    /// The entry's stored hash is not what its content and predecessor give.
    Hash { seq: i64 },
    /// The personal part is not what the entry's hash covers.
    Personal { seq: i64 },
    /// The personal part is missing without a recorded erasure.
    Missing { seq: i64 },
    /// The head does not name the last entry.
    Head { seq: i64 },
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Broken::Gap { expected, found } => write!(
                f,
                "entry {expected} is missing (the next entry is {found}): entries were deleted or reordered"
            ),
            Broken::Hash { seq } => write!(
                f,
                "entry {seq} does not match its hash: it, or an entry before it, was changed"
            ),
            Broken::Personal { seq } => write!(
                f,
                "entry {seq}: its personal values do not match the hash the entry covers"
            ),
            Broken::Missing { seq } => write!(
                f,
                "entry {seq}: its personal values are gone but no erasure was recorded"
            ),
            Broken::Head { seq } => write!(
                f,
                "the chain's head does not name its last entry ({seq}): the newest entries were removed"
            ),
        }
    }
}

/// Checks the chain entry by entry, carrying the previous hash; feed it entries in `seq`
/// order, starting from 1.
#[derive(Debug, Clone)]
pub struct Verifier {
    previous: Vec<u8>,
    next: i64,
}

impl Default for Verifier {
    fn default() -> Self {
        Verifier {
            previous: GENESIS.to_vec(),
            next: 1,
        }
    }
}

impl Verifier {
    /// Checks one entry: its number follows, its hash is its content's, its personal part (if
    /// still there) is what the hash covers, or it is gone by a recorded erasure.
    pub fn check(
        &mut self,
        public: &Public,
        stored_hash: &[u8],
        personal: Option<&Personal>,
        erased: bool,
    ) -> Result<(), Broken> {
        if public.seq != self.next {
            return Err(Broken::Gap {
                expected: self.next,
                found: public.seq,
            });
        }
        if public.hash(&self.previous) != stored_hash {
            return Err(Broken::Hash { seq: public.seq });
        }
        match (&public.personal_hash, personal) {
            (Some(expected), Some(p)) if &p.hash() != expected => {
                return Err(Broken::Personal { seq: public.seq });
            }
            (Some(_), None) if !erased => return Err(Broken::Missing { seq: public.seq }),
            (None, Some(_)) => return Err(Broken::Personal { seq: public.seq }),
            _ => {}
        }
        self.previous = stored_hash.to_vec();
        self.next += 1;
        Ok(())
    }

    /// Checks the head names the last entry checked.
    pub fn finish(&self, head_seq: i64, head_hash: &[u8]) -> Result<i64, Broken> {
        let last = self.next - 1;
        if head_seq != last || head_hash != self.previous.as_slice() {
            return Err(Broken::Head { seq: last });
        }
        Ok(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> AuditContext {
        AuditContext {
            actor: ActorKind::User,
            actor_id: Some(1),
            session_id: Some(Uuid::nil()),
            client_ip: Some("127.0.0.1".into()),
            request_id: Some("r-1".into()),
        }
    }

    fn chain(n: i64) -> Vec<Sealed> {
        let mut previous = GENESIS.to_vec();
        (1..=n)
            .map(|seq| {
                let sealed = NewEntry::new(Action::EmployeeUpdate, 7)
                    .record(Uuid::nil())
                    .change("city", json!("London"), json!(format!("City {seq}")))
                    .prepare(&ctx(), 1_000 * seq)
                    .seal(seq, &previous);
                previous = sealed.hash.clone();
                sealed
            })
            .collect()
    }

    fn verify(entries: &[Sealed], erased: &[i64]) -> Result<i64, Broken> {
        let mut v = Verifier::default();
        for e in entries {
            let erased = erased.contains(&e.public.seq);
            let personal = if erased { None } else { e.personal.as_ref() };
            v.check(&e.public, &e.hash, personal, erased)?;
        }
        let last = entries.last().unwrap();
        v.finish(last.public.seq, &last.hash)
    }

    #[test]
    fn an_untouched_chain_verifies_and_survives_an_erasure() {
        let entries = chain(5);
        assert_eq!(verify(&entries, &[]), Ok(5));
        assert_eq!(verify(&entries, &[2, 3]), Ok(5));
    }

    #[test]
    fn any_edit_deletion_or_reordering_breaks_it_at_that_entry() {
        let mut edited = chain(5);
        edited[2].public.client_ip = Some("10.0.0.1".into());
        assert_eq!(verify(&edited, &[]), Err(Broken::Hash { seq: 3 }));

        let mut values = chain(5);
        values[1].personal.as_mut().unwrap().data = r#"{"city":{"from":"x","to":"y"}}"#.into();
        assert_eq!(verify(&values, &[]), Err(Broken::Personal { seq: 2 }));

        let mut deleted = chain(5);
        deleted.remove(3);
        assert_eq!(
            verify(&deleted, &[]),
            Err(Broken::Gap {
                expected: 4,
                found: 5
            })
        );

        let mut swapped = chain(5);
        swapped.swap(1, 2);
        assert_eq!(
            verify(&swapped, &[]),
            Err(Broken::Gap {
                expected: 2,
                found: 3
            })
        );

        let entries = chain(5);
        let mut v = Verifier::default();
        for e in &entries[..4] {
            v.check(&e.public, &e.hash, e.personal.as_ref(), false)
                .unwrap();
        }
        assert_eq!(
            v.finish(5, &entries[4].hash),
            Err(Broken::Head { seq: 4 }),
            "the newest entry removed"
        );
    }

    #[test]
    fn personal_values_are_hashed_with_a_salt() {
        let a = chain(1).remove(0);
        let b = chain(1).remove(0);
        assert_eq!(
            a.personal.as_ref().unwrap().data,
            b.personal.as_ref().unwrap().data
        );
        assert_ne!(a.public.personal_hash, b.public.personal_hash);
        assert!(
            !String::from_utf8_lossy(&a.public.canonical()).contains("London"),
            "the public part holds no value"
        );
    }

    #[test]
    fn action_names_round_trip() {
        for action in Action::ALL {
            assert_eq!(Action::parse(action.as_str()), Some(action));
        }
        assert_eq!(Action::EmployeeErase.target_type(), "employee");
        assert_eq!(Action::ApiKeyCreate.target_type(), "api_key");
    }
}
