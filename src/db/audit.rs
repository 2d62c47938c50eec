//! The audit trail in the database: recording entries inside the caller's transaction,
//! sealing them into the hash chain once they are committed, reading pages of it, erasing a
//! person's values, and walking the chain to verify it.
//!
//! Recording and sealing are two steps, so that audited writes do not wait for each other:
//!
//! 1. **Record** ([`Append`]): a write inserts its entries into `audit_pending`, unnumbered,
//!    in its own transaction (the entry commits or rolls back with the change); an employee
//!    record takes its entry's id as its version. No row is shared between writers, so their
//!    commits overlap (and share WAL flushes).
//! 2. **Seal** ([`Db::seal`]): the server, woken by its writes, moves committed pending entries
//!    into `audit_entries` in batches. One transaction locks the chain's head, numbers the
//!    entries after it, hashes each with its predecessor and deletes them from `audit_pending`.
//!    Only committed entries get numbers, and every batch's numbers follow the previous batch's,
//!    so a reader of `seq > N` never sees a number before a lower one is visible: the change
//!    feed has no gaps to skip. Readers of the trail seal first, so they see every write that
//!    was acknowledged before they asked.
//!
//! Writes then pay for one more row each (the pending entry), and the sealer for the chain, one
//! batch (up to [`SEAL_BATCH`] entries) per transaction, instead of every write holding a lock
//! across its commit.

use sqlx::{AssertSqlSafe, PgConnection, SqliteConnection};
use uuid::Uuid;

use super::{Backend, BeginWrite, Db, Error, on_pool};
use crate::domain::{
    audit::{
        Action, ActorKind, AuditContext, Broken, NewEntry, Personal, Public, Sealed, Unsealed,
        Verifier,
    },
    clock::unix_millis,
};

/// Records entries inside the connection's open transaction.
pub(super) trait Append {
    /// Records `entries` as pending (see the module's documentation); returns their ids, in
    /// order. The id of an entry that leaves an employee record in place (create, update,
    /// restore, import) is the record's new version: the caller writes it with the record.
    ///
    /// Callers append *before* they write the employee row: that write updates the employee
    /// counters (a row every create and delete shares), and each statement after it would
    /// keep other writers waiting on that row until the commit.
    async fn append(
        &mut self,
        ctx: &AuditContext,
        entries: Vec<NewEntry>,
        at_millis: i64,
    ) -> Result<Vec<i64>, sqlx::Error>;
}

/// The columns of a pending entry as bound by [`bind_pending!`] to `$1` .. `$15`: for the
/// statements that record an entry together with the change it is about (db/employees.rs).
pub(super) const PENDING_COLUMNS: &str = "at, actor_type, actor_id, session_id, client_ip, \
    request_id, action, target_type, target_id, record_id, fields, personal_hash, salt, data, lists";
pub(super) const PENDING_PARAMS: &str =
    "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15";

/// Binds the values of `$entry` (a [`NewEntry`]) recorded by `$ctx` at `$at` to `$query`'s
/// first 15 parameters, in [`PENDING_COLUMNS`] order.
macro_rules! bind_pending {
    ($query:expr, $ctx:expr, $entry:expr, $at:expr) => {{
        let at: i64 = $at;
        let action = $entry.action;
        let u = $entry.prepare($ctx, at);
        let (salt, data) = u.personal.map(|p| (p.salt, p.data)).unzip();
        $query
            .bind(at)
            .bind($ctx.actor.as_str())
            .bind($ctx.actor_id)
            .bind($ctx.session_id)
            .bind($ctx.client_ip.clone())
            .bind($ctx.request_id.clone())
            .bind(action.as_str())
            .bind(u.public.target_type)
            .bind(u.public.target_id)
            .bind(u.public.record_id)
            .bind(u.public.fields)
            .bind(u.public.personal_hash)
            .bind(salt)
            .bind(data)
            .bind(action.changes_employees())
    }};
}
pub(super) use bind_pending;

/// Seals pending entries inside the connection's open write transaction.
trait Seal {
    /// Seals up to [`SEAL_BATCH`] pending entries after the head; how many it sealed.
    async fn seal_batch(&mut self) -> Result<usize, sqlx::Error>;
}

/// Pending entries sealed per transaction.
pub const SEAL_BATCH: usize = 1_000;

const LOCK_HEAD_PG: &str = "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE";
const READ_HEAD: &str = "SELECT seq, hash FROM audit_head WHERE id = 1";
const READ_PENDING: &str = "SELECT id, at, actor_type, actor_id, session_id, client_ip, \
    request_id, action, target_type, target_id, record_id, fields, personal_hash, salt, data, \
    erased_at FROM audit_pending ORDER BY id LIMIT $1";

/// The columns every entry has, pending or sealed, as stored.
#[derive(sqlx::FromRow)]
struct StoredColumns {
    at: i64,
    actor_type: String,
    actor_id: Option<i64>,
    session_id: Option<Uuid>,
    client_ip: Option<String>,
    request_id: Option<String>,
    action: String,
    target_type: String,
    target_id: Option<String>,
    record_id: Option<Uuid>,
    fields: String,
    personal_hash: Option<Vec<u8>>,
    erased_at: Option<i64>,
    salt: Option<Vec<u8>>,
    data: Option<String>,
}

impl StoredColumns {
    /// The entry's public part numbered `seq` (0: not yet), and its personal part if it has
    /// one that was not erased.
    fn into_parts(self, seq: i64) -> (Public, Option<Personal>) {
        let public = Public {
            seq,
            at: self.at,
            actor: ActorKind::parse(&self.actor_type),
            actor_id: self.actor_id,
            session_id: self.session_id,
            client_ip: self.client_ip,
            request_id: self.request_id,
            action: self.action,
            target_type: self.target_type,
            target_id: self.target_id,
            record_id: self.record_id,
            fields: self.fields,
            personal_hash: self.personal_hash,
        };
        let personal = match (self.salt, self.data) {
            (Some(salt), Some(data)) => Some(Personal { salt, data }),
            _ => None,
        };
        (public, personal)
    }
}

/// A pending entry as stored.
#[derive(sqlx::FromRow)]
struct PendingRow {
    id: i64,
    #[sqlx(flatten)]
    entry: StoredColumns,
}

impl From<PendingRow> for Unsealed {
    fn from(r: PendingRow) -> Self {
        let erased_at = r.entry.erased_at;
        let (public, personal) = r.entry.into_parts(0);
        Unsealed {
            public,
            personal,
            erased_at,
        }
    }
}

/// The oldest pending entries, at most a batch of them.
macro_rules! read_pending {
    ($conn:expr) => {
        sqlx::query_as::<_, PendingRow>(READ_PENDING)
            .bind(SEAL_BATCH as i64)
            .fetch_all(&mut *$conn)
    };
}

/// A batch of pending entries sealed after the head (`seq`, `hash`): the sealed entries, the
/// pending ids they came from, and how many of them changed employee rows.
fn seal_all(pending: Vec<PendingRow>, head: (i64, Vec<u8>)) -> (Vec<Sealed>, Vec<i64>, i64) {
    let (mut seq, mut previous) = head;
    let ids = pending.iter().map(|p| p.id).collect();
    let mut lists = 0;
    let sealed = pending
        .into_iter()
        .map(|row| {
            seq += 1;
            let sealed = Unsealed::from(row).seal(seq, &previous);
            if Action::parse(&sealed.public.action).is_some_and(|a| a.changes_employees()) {
                lists += 1;
            }
            previous.clone_from(&sealed.hash);
            sealed
        })
        .collect();
    (sealed, ids, lists)
}

/// The entries of one record, as PostgreSQL arrays, one per column (bound to `UNNEST`).
#[derive(Default)]
struct PendingColumns {
    action: Vec<&'static str>,
    target_type: Vec<String>,
    target_id: Vec<Option<String>>,
    record_id: Vec<Option<Uuid>>,
    fields: Vec<String>,
    personal_hash: Vec<Option<Vec<u8>>>,
    salt: Vec<Option<Vec<u8>>>,
    data: Vec<Option<String>>,
    lists: Vec<bool>,
}

impl Append for PgConnection {
    async fn append(
        &mut self,
        ctx: &AuditContext,
        entries: Vec<NewEntry>,
        at_millis: i64,
    ) -> Result<Vec<i64>, sqlx::Error> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let mut c = PendingColumns::default();
        for entry in entries {
            let action = entry.action;
            let u = entry.prepare(ctx, at_millis);
            c.action.push(action.as_str());
            c.lists.push(action.changes_employees());
            c.target_type.push(u.public.target_type);
            c.target_id.push(u.public.target_id);
            c.record_id.push(u.public.record_id);
            c.fields.push(u.public.fields);
            c.personal_hash.push(u.public.personal_hash);
            let (salt, data) = u.personal.map(|p| (p.salt, p.data)).unzip();
            c.salt.push(salt);
            c.data.push(data);
        }
        // `WITH ORDINALITY` and the `ORDER BY`: ids are drawn in the entries' order.
        sqlx::query_scalar(
            "INSERT INTO audit_pending (at, actor_type, actor_id, session_id, client_ip, \
               request_id, action, target_type, target_id, record_id, fields, personal_hash, \
               salt, data, lists) \
             SELECT $1::bigint, $2::text, $3::bigint, $4::uuid, $5::text, $6::text, \
               e.action, e.target_type, e.target_id, e.record_id, e.fields, e.personal_hash, \
               e.salt, e.data, e.lists \
             FROM UNNEST($7::text[], $8::text[], $9::text[], $10::uuid[], $11::text[], \
               $12::bytea[], $13::bytea[], $14::text[], $15::bool[]) \
               WITH ORDINALITY AS e (action, target_type, target_id, record_id, fields, \
                 personal_hash, salt, data, lists, n) \
             ORDER BY e.n RETURNING id",
        )
        .bind(at_millis)
        .bind(ctx.actor.as_str())
        .bind(ctx.actor_id)
        .bind(ctx.session_id)
        .bind(ctx.client_ip.as_deref())
        .bind(ctx.request_id.as_deref())
        .bind(c.action)
        .bind(c.target_type)
        .bind(c.target_id)
        .bind(c.record_id)
        .bind(c.fields)
        .bind(c.personal_hash)
        .bind(c.salt)
        .bind(c.data)
        .bind(c.lists)
        .fetch_all(&mut *self)
        .await
        .map(|mut ids: Vec<i64>| {
            ids.sort_unstable();
            ids
        })
    }
}

/// Entries per INSERT on SQLite: 15 parameters each, 15,000 in all (SQLite allows 32,766).
const SQLITE_APPEND_CHUNK: usize = 1_000;

impl Append for SqliteConnection {
    async fn append(
        &mut self,
        ctx: &AuditContext,
        entries: Vec<NewEntry>,
        at_millis: i64,
    ) -> Result<Vec<i64>, sqlx::Error> {
        let mut ids = Vec::with_capacity(entries.len());
        let mut entries = entries.into_iter().peekable();
        while entries.peek().is_some() {
            let chunk: Vec<NewEntry> = entries.by_ref().take(SQLITE_APPEND_CHUNK).collect();
            // Anonymous placeholders: SQLite finds each numbered one by a linear search.
            let row = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
            let text = format!(
                "INSERT INTO audit_pending ({PENDING_COLUMNS}) VALUES {} RETURNING id",
                vec![row; chunk.len()].join(", ")
            );
            // Only the one-entry text recurs often enough to be worth a cached statement.
            let mut query = sqlx::query_scalar(AssertSqlSafe(text)).persistent(chunk.len() == 1);
            for entry in chunk {
                query = bind_pending!(query, ctx, entry, at_millis);
            }
            let mut drawn: Vec<i64> = query.fetch_all(&mut *self).await?;
            // One statement under the write lock inserts its rows in VALUES order, each with
            // the next id; RETURNING lists them in no promised order.
            drawn.sort_unstable();
            ids.extend(drawn);
        }
        Ok(ids)
    }
}

/// The sealed entries of one batch as PostgreSQL arrays, one per column (bound to `UNNEST`).
#[derive(Default)]
struct EntryColumns {
    seq: Vec<i64>,
    at: Vec<i64>,
    actor_type: Vec<&'static str>,
    actor_id: Vec<Option<i64>>,
    session_id: Vec<Option<Uuid>>,
    client_ip: Vec<Option<String>>,
    request_id: Vec<Option<String>>,
    action: Vec<String>,
    target_type: Vec<String>,
    target_id: Vec<Option<String>>,
    record_id: Vec<Option<Uuid>>,
    fields: Vec<String>,
    personal_hash: Vec<Option<Vec<u8>>>,
    erased_at: Vec<Option<i64>>,
    hash: Vec<Vec<u8>>,
    personal_seq: Vec<i64>,
    salt: Vec<Vec<u8>>,
    data: Vec<String>,
}

impl Seal for PgConnection {
    async fn seal_batch(&mut self) -> Result<usize, sqlx::Error> {
        // The head first: concurrent sealers (other instances) and erasures wait here, and
        // the pending entries read next are those committed before this one got the lock.
        let head: (i64, Vec<u8>) = sqlx::query_as(LOCK_HEAD_PG).fetch_one(&mut *self).await?;
        let pending = read_pending!(self).await?;
        if pending.is_empty() {
            return Ok(0);
        }
        let (sealed, ids, lists) = seal_all(pending, head);
        let last = sealed.last().expect("a pending entry");
        let (head_seq, head_hash) = (last.public.seq, last.hash.clone());
        let mut c = EntryColumns::default();
        for s in sealed {
            let p = s.public;
            c.seq.push(p.seq);
            c.at.push(p.at);
            c.actor_type.push(p.actor.as_str());
            c.actor_id.push(p.actor_id);
            c.session_id.push(p.session_id);
            c.client_ip.push(p.client_ip);
            c.request_id.push(p.request_id);
            c.action.push(p.action);
            c.target_type.push(p.target_type);
            c.target_id.push(p.target_id);
            c.record_id.push(p.record_id);
            c.fields.push(p.fields);
            c.personal_hash.push(p.personal_hash);
            c.erased_at.push(s.erased_at);
            c.hash.push(s.hash);
            if let Some(x) = s.personal {
                c.personal_seq.push(p.seq);
                c.salt.push(x.salt);
                c.data.push(x.data);
            }
        }
        // One statement: the entries, their personal parts, the pending rows gone, the head.
        sqlx::query(
            "WITH entries AS (INSERT INTO audit_entries (seq, at, actor_type, actor_id, session_id, \
               client_ip, request_id, action, target_type, target_id, record_id, fields, \
               personal_hash, erased_at, hash) \
               SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::bigint[], \
                 $5::uuid[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], \
                 $11::uuid[], $12::text[], $13::bytea[], $14::bigint[], $15::bytea[])), \
             personal AS (INSERT INTO audit_personal (seq, salt, data) \
               SELECT * FROM UNNEST($16::bigint[], $17::bytea[], $18::text[])), \
             sealed AS (DELETE FROM audit_pending WHERE id = ANY($19::bigint[])) \
             UPDATE audit_head SET seq = $20, hash = $21, \
               employee_writes = employee_writes + $22 WHERE id = 1",
        )
        .bind(c.seq)
        .bind(c.at)
        .bind(c.actor_type)
        .bind(c.actor_id)
        .bind(c.session_id)
        .bind(c.client_ip)
        .bind(c.request_id)
        .bind(c.action)
        .bind(c.target_type)
        .bind(c.target_id)
        .bind(c.record_id)
        .bind(c.fields)
        .bind(c.personal_hash)
        .bind(c.erased_at)
        .bind(c.hash)
        .bind(c.personal_seq)
        .bind(c.salt)
        .bind(c.data)
        .bind(&ids)
        .bind(head_seq)
        .bind(head_hash)
        .bind(lists)
        .execute(&mut *self)
        .await?;
        Ok(ids.len())
    }
}

impl Seal for SqliteConnection {
    async fn seal_batch(&mut self) -> Result<usize, sqlx::Error> {
        // The one writer connection: the transaction already excludes other writers.
        let head: (i64, Vec<u8>) = sqlx::query_as(READ_HEAD).fetch_one(&mut *self).await?;
        let pending = read_pending!(self).await?;
        if pending.is_empty() {
            return Ok(0);
        }
        let (sealed, ids, lists) = seal_all(pending, head);
        // One call for the whole batch: multi-row inserts, the pending rows gone, the head.
        // Anonymous placeholders, numbered on across the statements (named ones cost SQLite a
        // search each, see db/import.rs); at most 18,004 of them, under SQLite's 32,766.
        let row = |n: usize| format!("({})", vec!["?"; n].join(","));
        let mut text = format!(
            "INSERT INTO audit_entries (seq, at, actor_type, actor_id, session_id, client_ip, \
               request_id, action, target_type, target_id, record_id, fields, personal_hash, \
               erased_at, hash) VALUES {};",
            vec![row(15); sealed.len()].join(",")
        );
        let personal = sealed.iter().filter(|s| s.personal.is_some()).count();
        if personal > 0 {
            text.push_str(&format!(
                "INSERT INTO audit_personal (seq, salt, data) VALUES {};",
                vec![row(3); personal].join(",")
            ));
        }
        // Every id up to the last one read is in this batch: ids are handed out under the
        // write lock this transaction holds, in the order they commit.
        text.push_str(
            "DELETE FROM audit_pending WHERE id <= ?; \
             UPDATE audit_head SET seq = ?, hash = ?, employee_writes = employee_writes + ? \
             WHERE id = 1",
        );
        let mut query = sqlx::query(AssertSqlSafe(text)).persistent(false);
        for s in &sealed {
            let p = &s.public;
            query = query
                .bind(p.seq)
                .bind(p.at)
                .bind(p.actor.as_str())
                .bind(p.actor_id)
                .bind(p.session_id)
                .bind(p.client_ip.clone())
                .bind(p.request_id.clone())
                .bind(p.action.clone())
                .bind(p.target_type.clone())
                .bind(p.target_id.clone())
                .bind(p.record_id)
                .bind(p.fields.clone())
                .bind(p.personal_hash.clone())
                .bind(s.erased_at)
                .bind(s.hash.clone());
        }
        for s in &sealed {
            if let Some(x) = &s.personal {
                query = query
                    .bind(s.public.seq)
                    .bind(x.salt.clone())
                    .bind(x.data.clone());
            }
        }
        let last = sealed.last().expect("a pending entry");
        query
            .bind(ids.last().copied().unwrap_or_default())
            .bind(last.public.seq)
            .bind(last.hash.clone())
            .bind(lists)
            .execute(&mut *self)
            .await?;
        Ok(ids.len())
    }
}

/// An entry as read back: its public part, its personal values (None when it had none or they
/// were erased), whether they were erased, and its hash.
#[derive(Debug, Clone)]
pub struct StoredEntry {
    pub public: Public,
    pub personal: Option<Personal>,
    pub erased: bool,
    pub hash: Vec<u8>,
}

/// A sealed entry as stored, with its personal part (absent when erased).
#[derive(sqlx::FromRow)]
struct EntryRow {
    seq: i64,
    hash: Vec<u8>,
    #[sqlx(flatten)]
    entry: StoredColumns,
}

impl From<EntryRow> for StoredEntry {
    fn from(r: EntryRow) -> Self {
        let erased = r.entry.erased_at.is_some();
        let (public, personal) = r.entry.into_parts(r.seq);
        StoredEntry {
            public,
            personal,
            erased,
            hash: r.hash,
        }
    }
}

/// Which entries a page of the trail shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub actor_id: Option<i64>,
    pub action: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    /// Unix milliseconds, inclusive.
    pub since: Option<i64>,
    /// Unix milliseconds, exclusive.
    pub until: Option<i64>,
}

/// Entries read per round trip when verifying.
const VERIFY_BATCH: i64 = 5_000;

/// Seals one batch on `$pool` (a write pool of either backend) in its own transaction.
macro_rules! seal_once {
    ($pool:expr) => {
        async {
            let mut tx = $pool.begin_write().await?;
            let sealed = Seal::seal_batch(&mut *tx).await?;
            tx.commit().await?;
            Ok::<usize, sqlx::Error>(sealed)
        }
        .await
    };
}

impl Db {
    /// Seals every committed pending entry into the chain, batch after batch (see the module's
    /// documentation); how many it sealed.
    pub async fn seal(&self) -> Result<u64, Error> {
        let mut total = 0;
        loop {
            // Not `on_pool!`: sealing is no write that needs sealing after it.
            let sealed = match &self.backend {
                Backend::Postgres { pool, .. } => seal_once!(pool),
                Backend::Sqlite { writer, .. } => seal_once!(writer),
            }
            .map_err(|e| self.outages.classify(e))?;
            total += sealed as u64;
            if sealed < SEAL_BATCH {
                return Ok(total);
            }
        }
    }

    /// Returns after a write through this handle (or one of its clones) since the last call
    /// returned: what the sealer waits for.
    pub async fn written(&self) {
        self.written.notified().await;
    }

    /// Seals what is pending, if anything is (one cheap read otherwise). Run before the trail is
    /// read, so a reader sees every write that was acknowledged before it asked. A database
    /// that takes no writes (full, read-only) is no error here: the entries sealed so far are
    /// still shown, and the pending ones wait until it takes writes again.
    pub async fn seal_pending(&self) -> Result<(), Error> {
        let pending: bool = on_pool!(self, read, |pool| {
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM audit_pending)")
                .fetch_one(pool)
                .await
        })?;
        if !pending {
            return Ok(());
        }
        match self.seal().await {
            Ok(_) | Err(Error::Full(_) | Error::ReadOnly(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Records `entries` on their own (events that change nothing else, such as an export or
    /// a failed login).
    pub async fn record(&self, ctx: &AuditContext, entries: Vec<NewEntry>) -> Result<(), Error> {
        on_pool!(self, write, |pool| {
            async {
                let mut tx = pool.begin_write().await?;
                Append::append(&mut *tx, ctx, entries, unix_millis()).await?;
                tx.commit().await
            }
            .await
        })
    }

    /// Entries after `after` matching `filter`, oldest first, at most `limit`.
    pub async fn audit_page(
        &self,
        filter: &AuditFilter,
        after: i64,
        limit: i64,
    ) -> Result<Vec<StoredEntry>, Error> {
        self.seal_pending().await?;
        let mut text = String::from(
            "SELECT e.seq, e.at, e.actor_type, e.actor_id, e.session_id, e.client_ip, e.request_id, \
               e.action, e.target_type, e.target_id, e.record_id, e.fields, e.personal_hash, \
               e.erased_at, e.hash, p.salt, p.data \
             FROM audit_entries e LEFT JOIN audit_personal p ON p.seq = e.seq WHERE e.seq > $1",
        );
        let mut n = 1;
        let mut next = |column: &str, op: &str, text: &mut String| {
            n += 1;
            text.push_str(&format!(" AND e.{column} {op} ${n}"));
        };
        if filter.actor_id.is_some() {
            next("actor_id", "=", &mut text);
        }
        if filter.action.is_some() {
            next("action", "=", &mut text);
        }
        if filter.target_type.is_some() {
            next("target_type", "=", &mut text);
        }
        if filter.target_id.is_some() {
            next("target_id", "=", &mut text);
        }
        if filter.since.is_some() {
            next("at", ">=", &mut text);
        }
        if filter.until.is_some() {
            next("at", "<", &mut text);
        }
        text.push_str(&format!(" ORDER BY e.seq LIMIT {}", limit.clamp(1, 1000)));
        let rows: Vec<EntryRow> = on_pool!(self, read, |pool| {
            let mut q = sqlx::query_as(AssertSqlSafe(text.clone())).bind(after);
            if let Some(v) = filter.actor_id {
                q = q.bind(v);
            }
            if let Some(v) = &filter.action {
                q = q.bind(v.clone());
            }
            if let Some(v) = &filter.target_type {
                q = q.bind(v.clone());
            }
            if let Some(v) = &filter.target_id {
                q = q.bind(v.clone());
            }
            if let Some(v) = filter.since {
                q = q.bind(v);
            }
            if let Some(v) = filter.until {
                q = q.bind(v);
            }
            q.fetch_all(pool).await
        })?;
        Ok(rows.into_iter().map(StoredEntry::from).collect())
    }

    /// The chain's head: the last sequence number and hash, after sealing what is pending.
    pub async fn audit_head(&self) -> Result<(i64, Vec<u8>), Error> {
        self.seal_pending().await?;
        on_pool!(self, read, |pool| sqlx::query_as(READ_HEAD)
            .fetch_one(pool)
            .await)
    }

    /// Walks the whole chain; the number of entries and the head's hash when it verifies, else
    /// the first break. Reads the head first and then entries up to it, so entries appended
    /// meanwhile are simply not part of this check.
    pub async fn verify_audit(&self) -> Result<Result<(i64, Vec<u8>), Broken>, Error> {
        let (head_seq, head_hash) = self.audit_head().await?;
        let mut verifier = Verifier::default();
        let mut after = 0;
        loop {
            let text = format!(
                "SELECT e.seq, e.at, e.actor_type, e.actor_id, e.session_id, e.client_ip, \
                   e.request_id, e.action, e.target_type, e.target_id, e.record_id, e.fields, \
                   e.personal_hash, e.erased_at, e.hash, p.salt, p.data \
                 FROM audit_entries e LEFT JOIN audit_personal p ON p.seq = e.seq \
                 WHERE e.seq > $1 AND e.seq <= $2 ORDER BY e.seq LIMIT {VERIFY_BATCH}"
            );
            let rows: Vec<EntryRow> = on_pool!(self, read, |pool| {
                sqlx::query_as(AssertSqlSafe(text.clone()))
                    .bind(after)
                    .bind(head_seq)
                    .fetch_all(pool)
                    .await
            })?;
            let done = (rows.len() as i64) < VERIFY_BATCH;
            for row in rows {
                let entry = StoredEntry::from(row);
                if let Err(broken) = verifier.check(
                    &entry.public,
                    &entry.hash,
                    entry.personal.as_ref(),
                    entry.erased,
                ) {
                    return Ok(Err(broken));
                }
                after = entry.public.seq;
            }
            if done {
                break;
            }
        }
        Ok(verifier
            .finish(head_seq, &head_hash)
            .map(|entries| (entries, head_hash)))
    }
}

/// Erases the personal parts of every entry about `records`, inside the caller's transaction
/// (the entries stay, marked erased; the chain still verifies).
macro_rules! erase_personal {
    ($tx:expr, $records:expr, $now:expr) => {{
        // The head's row lock (a no-op update: valid on both backends) keeps the sealer out
        // until this commits, so no entry about the records moves from pending to sealed
        // between the two kinds of erasure below.
        sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1")
            .execute(&mut *$tx)
            .await?;
        let mut erased = 0u64;
        for record in $records {
            erased += sqlx::query(
                "UPDATE audit_pending SET salt = NULL, data = NULL, erased_at = $1 \
                 WHERE record_id = $2 AND personal_hash IS NOT NULL AND erased_at IS NULL",
            )
            .bind($now)
            .bind(*record)
            .execute(&mut *$tx)
            .await?
            .rows_affected();
            erased += sqlx::query(
                "DELETE FROM audit_personal WHERE seq IN \
                 (SELECT seq FROM audit_entries WHERE record_id = $1)",
            )
            .bind(*record)
            .execute(&mut *$tx)
            .await?
            .rows_affected();
            sqlx::query(
                "UPDATE audit_entries SET erased_at = $1 \
                 WHERE record_id = $2 AND personal_hash IS NOT NULL AND erased_at IS NULL",
            )
            .bind($now)
            .bind(*record)
            .execute(&mut *$tx)
            .await?;
        }
        erased
    }};
}
pub(super) use erase_personal;
