//! The audit trail in the database: appending inside the caller's transaction, reading pages
//! of it, erasing a person's values, and walking the chain to verify it.
//!
//! Appending locks the chain's head row (`audit_head`) until the transaction commits: that is
//! what makes sequence numbers follow commit order, so a reader of `seq > N` never sees a
//! later number before an earlier one becomes visible. It also serializes audited writes; the
//! lock is taken as late as possible (after the change itself) and held for two statements and
//! the commit.

use sqlx::{AssertSqlSafe, PgConnection, SqliteConnection};
use uuid::Uuid;

use super::{BeginWrite, Db, Error, on_pool};
use crate::domain::{
    audit::{ActorKind, AuditContext, Broken, NewEntry, Personal, Public, Sealed, Verifier},
    clock::unix_millis,
};

/// Appends entries to the chain inside the connection's open transaction.
pub(super) trait Append {
    /// Seals `entries` after the current head and stores them; returns their sequence
    /// numbers, in order. The employee record of an entry that leaves it in place (create,
    /// update, restore, import) takes the entry's number as its version, in the same
    /// statement.
    async fn append(
        &mut self,
        ctx: &AuditContext,
        entries: Vec<NewEntry>,
        at_millis: i64,
    ) -> Result<Vec<i64>, sqlx::Error>;
}

const LOCK_HEAD_PG: &str = "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE";
const READ_HEAD: &str = "SELECT seq, hash FROM audit_head WHERE id = 1";

/// Seals `entries` one after the other from the head (`seq`, `hash`).
fn seal_all(
    ctx: &AuditContext,
    entries: Vec<NewEntry>,
    head: (i64, Vec<u8>),
    at_millis: i64,
) -> Vec<Sealed> {
    let (mut seq, mut previous) = head;
    entries
        .into_iter()
        .map(|entry| {
            seq += 1;
            let sealed = entry.seal(ctx, seq, &previous, at_millis);
            previous.clone_from(&sealed.hash);
            sealed
        })
        .collect()
}

/// The head after `sealed`, and whether any of them changed employee rows.
fn new_head(sealed: &[Sealed], employees: bool) -> (i64, Vec<u8>, bool) {
    let last = sealed.last().expect("at least one entry");
    (last.public.seq, last.hash.clone(), employees)
}

fn changes_employees(entries: &[NewEntry]) -> bool {
    entries.iter().any(|e| e.action.changes_employees())
}

/// The employee records whose version becomes their entry's number.
fn versions(sealed: &[Sealed]) -> (Vec<Uuid>, Vec<i64>) {
    sealed
        .iter()
        .filter(|s| {
            matches!(
                s.public.action.as_str(),
                "employee.create" | "employee.update" | "employee.restore" | "employee.import"
            )
        })
        .filter_map(|s| s.public.record_id.map(|id| (id, s.public.seq)))
        .unzip()
}

/// The entries of one append as PostgreSQL arrays, one per column (bound to `UNNEST`).
#[derive(Default)]
struct Columns {
    seq: Vec<i64>,
    at: Vec<i64>,
    actor_type: Vec<String>,
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
    hash: Vec<Vec<u8>>,
    personal_seq: Vec<i64>,
    salt: Vec<Vec<u8>>,
    data: Vec<String>,
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
        let employees = changes_employees(&entries);
        let head: (i64, Vec<u8>) = sqlx::query_as(LOCK_HEAD_PG).fetch_one(&mut *self).await?;
        let sealed = seal_all(ctx, entries, head, at_millis);
        let (head_seq, head_hash, employees) = new_head(&sealed, employees);
        let (version_ids, version_seqs) = versions(&sealed);
        // One statement: the entries, their personal parts, the versions and the new head.
        let mut c = Columns::default();
        for s in &sealed {
            let p = &s.public;
            c.seq.push(p.seq);
            c.at.push(p.at);
            c.actor_type.push(p.actor.as_str().to_owned());
            c.actor_id.push(p.actor_id);
            c.session_id.push(p.session_id);
            c.client_ip.push(p.client_ip.clone());
            c.request_id.push(p.request_id.clone());
            c.action.push(p.action.clone());
            c.target_type.push(p.target_type.clone());
            c.target_id.push(p.target_id.clone());
            c.record_id.push(p.record_id);
            c.fields.push(p.fields.clone());
            c.personal_hash.push(p.personal_hash.clone());
            c.hash.push(s.hash.clone());
            if let Some(x) = &s.personal {
                c.personal_seq.push(p.seq);
                c.salt.push(x.salt.clone());
                c.data.push(x.data.clone());
            }
        }
        sqlx::query(
            "WITH entries AS (INSERT INTO audit_entries (seq, at, actor_type, actor_id, session_id, \
               client_ip, request_id, action, target_type, target_id, record_id, fields, \
               personal_hash, hash) \
               SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::bigint[], \
                 $5::uuid[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], \
                 $11::uuid[], $12::text[], $13::bytea[], $14::bytea[])), \
             personal AS (INSERT INTO audit_personal (seq, salt, data) \
               SELECT * FROM UNNEST($15::bigint[], $16::bytea[], $17::text[])), \
             versions AS (UPDATE employees e SET version = v.seq \
               FROM UNNEST($21::uuid[], $22::bigint[]) AS v (id, seq) WHERE e.id = v.id) \
             UPDATE audit_head SET seq = $18, hash = $19, \
               employees_seq = CASE WHEN $20 THEN $18 ELSE employees_seq END \
             WHERE id = 1",
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
        .bind(c.hash)
        .bind(c.personal_seq)
        .bind(c.salt)
        .bind(c.data)
        .bind(head_seq)
        .bind(head_hash)
        .bind(employees)
        .bind(version_ids)
        .bind(version_seqs)
        .execute(&mut *self)
        .await?;
        Ok(sealed.iter().map(|s| s.public.seq).collect())
    }
}

impl Append for SqliteConnection {
    async fn append(
        &mut self,
        ctx: &AuditContext,
        entries: Vec<NewEntry>,
        at_millis: i64,
    ) -> Result<Vec<i64>, sqlx::Error> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let employees = changes_employees(&entries);
        // The one writer connection: the transaction already excludes other writers.
        let head: (i64, Vec<u8>) = sqlx::query_as(READ_HEAD).fetch_one(&mut *self).await?;
        let sealed = seal_all(ctx, entries, head, at_millis);
        let (head_seq, head_hash, employees) = new_head(&sealed, employees);
        for s in &sealed {
            let p = &s.public;
            sqlx::query(
                "INSERT INTO audit_entries (seq, at, actor_type, actor_id, session_id, client_ip, \
                   request_id, action, target_type, target_id, record_id, fields, personal_hash, hash) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(p.seq)
            .bind(p.at)
            .bind(p.actor.as_str())
            .bind(p.actor_id)
            .bind(p.session_id)
            .bind(p.client_ip.as_deref())
            .bind(p.request_id.as_deref())
            .bind(p.action.as_str())
            .bind(p.target_type.as_str())
            .bind(p.target_id.as_deref())
            .bind(p.record_id)
            .bind(p.fields.as_str())
            .bind(p.personal_hash.as_deref())
            .bind(s.hash.as_slice())
            .execute(&mut *self)
            .await?;
            if let Some(x) = &s.personal {
                sqlx::query("INSERT INTO audit_personal (seq, salt, data) VALUES (?, ?, ?)")
                    .bind(p.seq)
                    .bind(x.salt.as_slice())
                    .bind(x.data.as_str())
                    .execute(&mut *self)
                    .await?;
            }
        }
        let (version_ids, version_seqs) = versions(&sealed);
        for (id, seq) in version_ids.into_iter().zip(version_seqs) {
            sqlx::query("UPDATE employees SET version = ? WHERE id = ?")
                .bind(seq)
                .bind(id)
                .execute(&mut *self)
                .await?;
        }
        sqlx::query(
            "UPDATE audit_head SET seq = ?1, hash = ?2, \
               employees_seq = CASE WHEN ?3 THEN ?1 ELSE employees_seq END WHERE id = 1",
        )
        .bind(head_seq)
        .bind(head_hash)
        .bind(employees)
        .execute(&mut *self)
        .await?;
        Ok(sealed.iter().map(|s| s.public.seq).collect())
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

#[derive(sqlx::FromRow)]
struct EntryRow {
    seq: i64,
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
    hash: Vec<u8>,
    salt: Option<Vec<u8>>,
    data: Option<String>,
}

impl From<EntryRow> for StoredEntry {
    fn from(r: EntryRow) -> Self {
        StoredEntry {
            public: Public {
                seq: r.seq,
                at: r.at,
                actor: ActorKind::parse(&r.actor_type),
                actor_id: r.actor_id,
                session_id: r.session_id,
                client_ip: r.client_ip,
                request_id: r.request_id,
                action: r.action,
                target_type: r.target_type,
                target_id: r.target_id,
                record_id: r.record_id,
                fields: r.fields,
                personal_hash: r.personal_hash,
            },
            personal: match (r.salt, r.data) {
                (Some(salt), Some(data)) => Some(Personal { salt, data }),
                _ => None,
            },
            erased: r.erased_at.is_some(),
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

impl Db {
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

    /// The chain's head: the last sequence number and hash.
    pub async fn audit_head(&self) -> Result<(i64, Vec<u8>), Error> {
        on_pool!(self, read, |pool| sqlx::query_as(READ_HEAD)
            .fetch_one(pool)
            .await)
    }

    /// Walks the whole chain; the number of entries when it verifies, else the first break.
    /// Reads the head first and then entries up to it, so entries appended meanwhile are
    /// simply not part of this check.
    pub async fn verify_audit(&self) -> Result<Result<i64, Broken>, Error> {
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
        Ok(verifier.finish(head_seq, &head_hash))
    }
}

/// Erases the personal parts of every entry about `records`, inside the caller's transaction
/// (the entries stay, marked erased; the chain still verifies).
macro_rules! erase_personal {
    ($tx:expr, $records:expr, $now:expr) => {{
        let mut erased = 0u64;
        for record in $records {
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
