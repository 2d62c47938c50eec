//! Work the server does on a timer, so its tables stay bounded without an operator: the purge
//! of ended sessions and old rotated refresh tokens.

use std::time::Duration;

use crate::{app::AppState, domain::clock::unix_now};

/// How often the purge runs.
const PURGE_EVERY: Duration = Duration::from_secs(10 * 60);
/// Revoked sessions stay listed (for the audit of "who was logged in") this long.
const KEEP_REVOKED_SECS: i64 = 24 * 3600;

/// Starts the timer tasks; they end with the runtime.
pub fn spawn(state: &AppState) {
    let state = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PURGE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            purge(&state).await;
        }
    });
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
