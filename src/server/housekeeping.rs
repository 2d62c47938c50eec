//! Work the server does in the background: sealing recorded audit entries into the chain as
//! soon as they commit; and on a timer, so its tables stay bounded without an operator: the purge
//! of ended sessions and old rotated refresh tokens, the purge of `Idempotency-Key` answers past
//! `IDEMPOTENCY_TTL_HOURS`, the erasure of deleted employees past `DELETED_RETENTION_DAYS`; and
//! the audit chain's head, logged at start and every hour so it can be witnessed outside the
//! database.

use std::time::Duration;

use crate::{
    app::AppState,
    domain::{audit::AuditContext, clock::unix_now},
};

/// How often the purge runs.
const PURGE_EVERY: Duration = Duration::from_secs(10 * 60);
/// Revoked sessions stay listed (for the audit of "who was logged in") this long.
const KEEP_REVOKED_SECS: i64 = 24 * 3600;

/// How often the audit head is logged.
const HEAD_EVERY: Duration = Duration::from_secs(3600);

/// The longest a committed audit entry waits to be sealed when this server did not write it
/// (another instance, the command line, a write cut off by a crash before its sealing).
const SEAL_AT_LEAST_EVERY: Duration = Duration::from_secs(1);

/// How long the sealer lets writes gather after the first wakes it: one batch then seals a
/// burst of them, for a fraction of the per-transaction cost each. No reader waits for it:
/// readers of the trail seal what is pending themselves.
const SEAL_GATHER: Duration = Duration::from_millis(100);

/// Starts the timer tasks; they end with the runtime.
pub fn spawn(state: &AppState) {
    let db = state.db.clone();
    tokio::spawn(async move {
        loop {
            let _ = tokio::time::timeout(SEAL_AT_LEAST_EVERY, db.written()).await;
            tokio::time::sleep(SEAL_GATHER).await;
            if let Err(e) = db.seal_pending().await {
                tracing::warn!(error = %e, "sealing audit entries failed; it is tried again");
                tokio::time::sleep(SEAL_AT_LEAST_EVERY).await;
            }
        }
    });
    let purging = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PURGE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            purge(&purging).await;
            purge_idempotency_keys(&purging).await;
            erase_expired(&purging).await;
        }
    });
    let witnessed = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(HEAD_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            log_audit_head(&witnessed).await;
        }
    });
}

/// Logs the audit chain's head (its last sequence number and hash). Copied somewhere the
/// database's administrators cannot write (a log service, a ticket, an email), it lets anyone
/// later prove the chain up to it was not rewritten: `employee-api audit verify` must reach
/// the same hash at that number.
pub async fn log_audit_head(state: &AppState) {
    match state.db.audit_head().await {
        Ok((seq, hash)) => tracing::info!(
            event = "sys_audit_head",
            seq,
            hash = %hash.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "audit trail head"
        ),
        Err(e) => tracing::warn!(error = %e, "could not read the audit trail's head"),
    }
}

/// Deletes the `Idempotency-Key` answers older than `IDEMPOTENCY_TTL_HOURS` and the claims
/// abandoned as long ago (a lookup already ignores them; this keeps the table bounded: between
/// two rounds it holds the keyed requests of one TTL and ten minutes). Returns how many rows
/// went (0 when the purge failed; it is logged and runs again later).
pub async fn purge_idempotency_keys(state: &AppState) -> u64 {
    match state.db.purge_idempotency_keys(unix_now()).await {
        Ok(0) => 0,
        Ok(deleted) => {
            tracing::info!(
                event = "sys_idempotency_purge",
                deleted,
                "expired Idempotency-Key answers deleted"
            );
            deleted
        }
        Err(e) => {
            tracing::warn!(error = %e, "the Idempotency-Key purge failed; it runs again later");
            0
        }
    }
}

/// Erases the deleted employees kept longer than `DELETED_RETENTION_DAYS`.
pub async fn erase_expired(state: &AppState) {
    let retention = i64::try_from(state.config.deleted_retention.as_secs()).unwrap_or(i64::MAX);
    let before = unix_now().saturating_sub(retention);
    match state
        .db
        .purge_deleted(before, &AuditContext::system())
        .await
    {
        Ok(0) => {}
        Ok(erased) => tracing::info!(
            event = "sys_retention_erase",
            erased,
            "deleted employees past their retention erased"
        ),
        Err(e) => tracing::warn!(error = %e, "the retention erasure failed; it runs again later"),
    }
}

/// One purge round. Rotated refresh tokens are kept as long as a session can stay idle (at most
/// the newest [`MAX_ROTATED_PER_SESSION`](crate::db::sessions::MAX_ROTATED_PER_SESSION) of a session), so a copied token is recognised (and
/// its session revoked) for that long; after it, it is merely unknown. With at most
/// [`MAX_SESSIONS_PER_USER`](crate::db::sessions::MAX_SESSIONS_PER_USER) live sessions per user, the tables hold at most, between two
/// rounds, users × 100 live sessions plus the sessions ended in the last day, and per session
/// its current refresh token and 50 rotated ones (plus those rotated since the last round).
pub async fn purge(state: &AppState) {
    let keep_rotated = state.session_lifetimes().idle;
    match state
        .db
        .purge_sessions(unix_now(), KEEP_REVOKED_SECS, keep_rotated)
        .await
    {
        Ok((sessions, tokens)) => {
            tracing::info!(
                event = "sys_purge",
                sessions,
                refresh_tokens = tokens,
                "ended sessions and old refresh tokens deleted"
            );
        }
        Err(e) => tracing::warn!(error = %e, "the session purge failed; it runs again later"),
    }
}
