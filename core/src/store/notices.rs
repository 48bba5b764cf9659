//! The notices outbox's statements (`schema/0013_notices.sql`).

use serde::Deserialize;

use super::stmt;
use crate::domain::{EpochMs, JobId};
use crate::job::de;
use crate::ports::Statement;

/// One notice waiting to be sent.
#[derive(Debug, Clone, Deserialize)]
pub struct Notice {
    /// The alert's `Idempotency-Key`.
    pub key: String,
    /// The dead job it is about, if any.
    pub job_id: Option<JobId>,
    /// The webhook's JSON body.
    pub payload: String,
    /// When it is due (the compare-and-set of a take).
    #[serde(deserialize_with = "de::int")]
    pub next_at: i64,
    /// Tries so far.
    #[serde(deserialize_with = "de::int")]
    pub attempts: i64,
}

/// Writes a notice once: a second write of the same key (a redelivery)
/// changes nothing.
pub fn insert(key: &str, job_id: Option<&JobId>, payload: &str, now: EpochMs) -> Statement {
    stmt(
        "INSERT INTO notices (key, job_id, payload, created_at, next_at) \
         VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT (key) DO NOTHING",
        vec![
            key.into(),
            job_id.map(|j| j.as_str()).into(),
            payload.into(),
            now.into(),
        ],
    )
}

/// Notices due now, oldest first.
pub fn select_due(now: EpochMs, limit: i64) -> Statement {
    stmt(
        "SELECT key, job_id, payload, next_at, attempts FROM notices \
         WHERE sent_at IS NULL AND error IS NULL AND next_at <= ?1 \
         ORDER BY next_at LIMIT ?2",
        vec![now.into(), limit.into()],
    )
}

/// Takes a due notice for one delivery (compare-and-set on its due time,
/// moved `hold_ms` on): two senders never send it at once.
pub fn take(key: &str, due: i64, now: EpochMs, hold_ms: i64) -> Statement {
    stmt(
        "UPDATE notices SET next_at = ?3, attempts = attempts + 1 \
         WHERE key = ?1 AND next_at = ?2 AND sent_at IS NULL AND error IS NULL",
        vec![key.into(), due.into(), (now + hold_ms).into()],
    )
}

/// Records a delivery: sent, refused for good (`error`), or due again.
pub fn outcome(
    key: &str,
    sent_at: Option<EpochMs>,
    next_at: Option<i64>,
    error: Option<&str>,
) -> Statement {
    stmt(
        "UPDATE notices SET sent_at = ?2, next_at = COALESCE(?3, next_at), error = ?4 \
         WHERE key = ?1",
        vec![key.into(), sent_at.into(), next_at.into(), error.into()],
    )
}

/// When the next notice or callback is due (NULL: none is pending).
pub fn next_due() -> Statement {
    stmt(
        "SELECT MIN(t) AS next_at FROM ( \
           SELECT MIN(next_at) AS t FROM notices WHERE sent_at IS NULL AND error IS NULL \
           UNION ALL \
           SELECT MIN(callback_next_at) FROM queue_jobs WHERE callback_state = 'pending')",
        vec![],
    )
}

/// Notices sent or given up on that long ago are forgotten.
pub fn purge(before: EpochMs) -> Statement {
    stmt(
        "DELETE FROM notices WHERE (sent_at IS NOT NULL OR error IS NOT NULL) AND created_at < ?1",
        vec![before.into()],
    )
}
