//! Answers stored for `Idempotency-Key`, one row per (owner, key).
//!
//! The life of a row: [`Db::claim_idempotency_key`] inserts it as a claim before the request
//! runs, so of two concurrent requests with one key exactly one runs. The runner then either
//! stores its answer under its claim ([`Db::store_idempotent_answer`]), after which repeats get
//! that answer, or gives the claim up ([`Db::release_idempotency_key`]) so that a retry runs
//! anew. A claim whose lease ran out (the process died mid-request) is taken over by the next
//! retry; the old runner's claim id then no longer matches, so it can neither store nor release.
//! [`Db::purge_idempotency_keys`] deletes rows past their expiry.

use sqlx::AssertSqlSafe;
use uuid::Uuid;

use super::{BeginWrite, Db, Error, list::Dialect, on_pool};
use crate::domain::idempotency::{Fingerprint, IdempotencyKey, Owner};

/// How long claims and answers last, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Terms {
    /// A claim older than this belongs to a request that can no longer be running.
    pub lease: i64,
    /// An answer is replayed for this long after it was given.
    pub ttl: i64,
}

/// The largest answer body stored (the schema refuses more). The answers of the two operations
/// that take a key are small JSON objects: an employee, an import report, or an error detail.
pub const MAX_STORED_BODY: usize = 64 * 1024;

/// An answer as stored: status, the headers worth replaying, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Identifies one claim on a key: only its holder may store an answer or release the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimId(Vec<u8>);

/// What a claim on a key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is now held for this request: it was free, its answer had expired, or an
    /// earlier claim's lease had run out.
    Claimed(ClaimId),
    /// This request was answered before: here is the answer.
    Answered(StoredAnswer),
    /// This request is running under another claim whose lease has not run out.
    Running,
    /// The key was used for a different request (another fingerprint).
    Mismatch,
}

/// A row as a claim reads it.
#[derive(sqlx::FromRow)]
struct Row {
    fingerprint: Vec<u8>,
    locked_until: Option<i64>,
    expires_at: i64,
    status: Option<i32>,
    headers: Option<String>,
    body: Option<Vec<u8>>,
}

/// What a claim does about an existing row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Expired, or a claim whose lease ran out: this request takes the key.
    TakeOver,
    Mismatch,
    Answered,
    Running,
}

impl Row {
    /// The verdict on this row for a request `fingerprint` at `now`.
    fn verdict(&self, fingerprint: &Fingerprint, now: i64) -> Verdict {
        // An expired answer no longer exists, whatever the purge has done yet.
        if self.expires_at <= now {
            return Verdict::TakeOver;
        }
        if self.fingerprint != fingerprint.as_bytes() {
            return Verdict::Mismatch;
        }
        if self.status.is_some() {
            return Verdict::Answered;
        }
        match self.locked_until {
            Some(locked_until) if locked_until > now => Verdict::Running,
            _ => Verdict::TakeOver,
        }
    }

    /// The stored answer of an answered row.
    fn answer(self) -> Result<StoredAnswer, Error> {
        let status = self
            .status
            .and_then(|s| u16::try_from(s).ok())
            .ok_or_else(|| Error::Other("a stored idempotent answer without a status".into()))?;
        let headers = serde_json::from_str(self.headers.as_deref().unwrap_or("[]"))
            .map_err(|e| Error::other("stored idempotent answer headers", e))?;
        Ok(StoredAnswer {
            status,
            headers,
            body: self.body.unwrap_or_default(),
        })
    }
}

/// A claim's outcome inside its transaction (the answer is decoded after it).
enum Found {
    Claimed,
    Answered(Row),
    Running,
    Mismatch,
}

impl Db {
    /// Claims `key` for `owner`'s request `fingerprint`, or says why not (see [`Claim`]). One
    /// transaction: the insert of the claim, or, when the row exists, its locked read and, when
    /// it is expired or abandoned, its takeover. Concurrent claims of one key therefore queue
    /// (PostgreSQL: on the row; SQLite: on the single writer) and exactly one gets it.
    pub async fn claim_idempotency_key(
        &self,
        owner: &Owner,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        now: i64,
        terms: Terms,
    ) -> Result<Claim, Error> {
        let lock = match self.dialect() {
            Dialect::Postgres => " FOR UPDATE",
            Dialect::Sqlite => "",
        };
        let select = format!(
            "SELECT fingerprint, locked_until, expires_at, status, headers, body \
             FROM idempotency_keys WHERE owner = $1 AND idem_key = $2{lock}"
        );
        let claim = Uuid::new_v4().into_bytes().to_vec();
        let (locked_until, expires_at) = (now + terms.lease, now + terms.ttl);
        let found = on_pool!(self, write, |pool| {
            async {
                let mut tx = pool.begin_write().await?;
                // Twice at most: a row deleted (released, purged) between the insert that found
                // it and the read is gone for good, and the second insert takes the key.
                let mut found = None;
                for _ in 0..2 {
                    let inserted = sqlx::query(
                        "INSERT INTO idempotency_keys \
                           (owner, idem_key, fingerprint, claim, created_at, locked_until, expires_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7) \
                         ON CONFLICT (owner, idem_key) DO NOTHING",
                    )
                    .bind(owner.as_str())
                    .bind(key.as_str())
                    .bind(fingerprint.as_bytes())
                    .bind(&claim)
                    .bind(now)
                    .bind(locked_until)
                    .bind(expires_at)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if inserted == 1 {
                        found = Some(Found::Claimed);
                        break;
                    }
                    let row: Option<Row> = sqlx::query_as(AssertSqlSafe(select.as_str()))
                        .bind(owner.as_str())
                        .bind(key.as_str())
                        .fetch_optional(&mut *tx)
                        .await?;
                    let Some(row) = row else { continue };
                    found = Some(match row.verdict(fingerprint, now) {
                        Verdict::Mismatch => Found::Mismatch,
                        Verdict::Answered => Found::Answered(row),
                        Verdict::Running => Found::Running,
                        Verdict::TakeOver => {
                            sqlx::query(
                                "UPDATE idempotency_keys SET fingerprint = $3, claim = $4, \
                                   created_at = $5, locked_until = $6, expires_at = $7, \
                                   status = NULL, headers = NULL, body = NULL \
                                 WHERE owner = $1 AND idem_key = $2",
                            )
                            .bind(owner.as_str())
                            .bind(key.as_str())
                            .bind(fingerprint.as_bytes())
                            .bind(&claim)
                            .bind(now)
                            .bind(locked_until)
                            .bind(expires_at)
                            .execute(&mut *tx)
                            .await?;
                            Found::Claimed
                        }
                    });
                    break;
                }
                tx.commit().await?;
                // Claimed and freed by others twice under our feet: the client may retry.
                Ok::<Found, sqlx::Error>(found.unwrap_or(Found::Running))
            }
            .await
        })?;
        match found {
            Found::Claimed => Ok(Claim::Claimed(ClaimId(claim))),
            Found::Answered(row) => row.answer().map(Claim::Answered),
            Found::Running => Ok(Claim::Running),
            Found::Mismatch => Ok(Claim::Mismatch),
        }
    }

    /// Stores the answer of the request holding `claim`; from now on, and for `ttl` seconds,
    /// repeats get it. False when the claim is no longer held (taken over after its lease):
    /// nothing is stored then.
    pub async fn store_idempotent_answer(
        &self,
        owner: &Owner,
        key: &IdempotencyKey,
        claim: &ClaimId,
        answer: &StoredAnswer,
        now: i64,
        ttl: i64,
    ) -> Result<bool, Error> {
        let headers = serde_json::to_string(&answer.headers)
            .map_err(|e| Error::other("idempotent answer headers", e))?;
        let stored = on_pool!(self, write, |pool| {
            sqlx::query(
                "UPDATE idempotency_keys SET status = $4, headers = $5, body = $6, \
                   locked_until = NULL, expires_at = $7 \
                 WHERE owner = $1 AND idem_key = $2 AND claim = $3 AND status IS NULL",
            )
            .bind(owner.as_str())
            .bind(key.as_str())
            .bind(&claim.0)
            .bind(i32::from(answer.status))
            .bind(&headers)
            .bind(&answer.body)
            .bind(now + ttl)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(stored == 1)
    }

    /// Gives up the claim: the key is free again, so a retry runs anew. Nothing happens when
    /// the claim is no longer held.
    pub async fn release_idempotency_key(
        &self,
        owner: &Owner,
        key: &IdempotencyKey,
        claim: &ClaimId,
    ) -> Result<(), Error> {
        on_pool!(self, write, |pool| {
            sqlx::query(
                "DELETE FROM idempotency_keys \
                 WHERE owner = $1 AND idem_key = $2 AND claim = $3 AND status IS NULL",
            )
            .bind(owner.as_str())
            .bind(key.as_str())
            .bind(&claim.0)
            .execute(pool)
            .await
            .map(|_| ())
        })
    }

    /// Deletes the answers (and abandoned claims) expired at `now`; returns how many.
    pub async fn purge_idempotency_keys(&self, now: i64) -> Result<u64, Error> {
        on_pool!(self, write, |pool| {
            sqlx::query("DELETE FROM idempotency_keys WHERE expires_at <= $1")
                .bind(now)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim_row(fingerprint: &Fingerprint) -> Row {
        Row {
            fingerprint: fingerprint.as_bytes().to_vec(),
            locked_until: Some(160),
            expires_at: 1000,
            status: None,
            headers: None,
            body: None,
        }
    }

    #[test]
    fn a_claim_decides_by_expiry_then_fingerprint_then_answer_then_lease() {
        let mine = Fingerprint::of("POST", "/employees/", "", b"application/json", b"{}");
        let other = Fingerprint::of("POST", "/employees/", "", b"application/json", b"[]");
        let answered = Row {
            status: Some(201),
            locked_until: None,
            ..claim_row(&mine)
        };
        let cases = [
            ("running", claim_row(&mine), 100, Verdict::Running),
            ("lease over", claim_row(&mine), 160, Verdict::TakeOver),
            ("another request", claim_row(&other), 100, Verdict::Mismatch),
            (
                "another request, lease over",
                claim_row(&other),
                200,
                Verdict::Mismatch,
            ),
            (
                "expired, another request",
                claim_row(&other),
                1000,
                Verdict::TakeOver,
            ),
            ("answered", answered, 100, Verdict::Answered),
        ];
        for (case, row, now, expected) in cases {
            assert_eq!(row.verdict(&mine, now), expected, "{case}");
        }
    }

    #[test]
    fn a_stored_answer_reads_back_its_status_headers_and_body() {
        let fingerprint = Fingerprint::of("POST", "/employees/", "", b"", b"");
        let row = Row {
            status: Some(201),
            headers: Some(r#"[["location","/employees/1"]]"#.into()),
            body: Some(b"{}".to_vec()),
            locked_until: None,
            ..claim_row(&fingerprint)
        };
        assert_eq!(
            row.answer().unwrap(),
            StoredAnswer {
                status: 201,
                headers: vec![("location".into(), "/employees/1".into())],
                body: b"{}".to_vec(),
            }
        );
    }
}
