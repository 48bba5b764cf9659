//! Notices handed off between Workers: least privilege for the consumer.
//!
//! The consumer Worker holds the upstream token but no alert webhook URL
//! and no callback signing key ([`Notices::HandOff`]). An operator alert it
//! raises (a dead job, the upstream circuit, a budget warning) is written
//! to D1's `notices` outbox under its `Idempotency-Key`, and the dead-letter
//! Worker is nudged on the notify queue. A callback needs no row: the job
//! row makes it due, and the nudge alone sends it.
//!
//! The dead-letter Worker sends what is due ([`deliver_due`]) on each nudge
//! and on every reaper run, so a lost nudge costs at most a minute. Each
//! delivery is taken by compare-and-set (two senders never send one notice
//! at once) and is at least once; a 4xx is final, anything else is retried
//! with [`Backoff::CALLBACK`] up to [`NOTICE_TRIES`] times. A notice about
//! a dead job marks the job alerted (or refused) when it is sent, as an
//! alert sent in place does.
//!
//! [`Notices::HandOff`]: crate::config::Notices::HandOff

use serde_json::Value;

use crate::backoff::{Backoff, Jitter};
use crate::domain::{EpochMs, JobId};
use crate::error::Error;
use crate::ports::{Clock, Platform, SqlDb};
use crate::service::alert::{self, Alert, ALERT_SPACING_MS};
use crate::service::{callback, nudge, Deps};
use crate::store;
use crate::store::notices::{self as sql, Notice};

/// Tries of one notice before it is given up (recorded as its error).
pub const NOTICE_TRIES: i64 = 8;
/// Notices one run sends at most.
pub const NOTICES_PER_RUN: i64 = 20;
/// How long a taken notice is held before another sender may take it.
const HOLD_MS: i64 = 60_000;
/// Sent notices are kept this long (for the operator), then purged.
pub const NOTICE_RETENTION_MS: i64 = 7 * 86_400_000;

/// Writes an alert to the outbox (once per key) and nudges its sender.
pub(crate) async fn hand_off<P: Platform>(
    deps: &Deps<'_, P>,
    key: &str,
    job: Option<&JobId>,
    payload: &Value,
) -> Result<(), Error> {
    let now = deps.clock.now_ms();
    let body = payload.to_string();
    deps.db.execute(&sql::insert(key, job, &body, now)).await?;
    let line = serde_json::json!({"event": "notice_handed_off", "key": key, "job_id": job});
    (deps.log)(&line.to_string());
    nudge(deps).await;
    Ok(())
}

/// Sends every notice due now (at most [`NOTICES_PER_RUN`]); returns how
/// many were sent.
pub async fn deliver_due<P: Platform>(deps: &Deps<'_, P>) -> Result<u64, Error> {
    let now = deps.clock.now_ms();
    let due = deps
        .db
        .query(&sql::select_due(now, NOTICES_PER_RUN))
        .await?;
    let mut sent = 0;
    for notice in store::decode::<Notice>(due)? {
        sent += u64::from(deliver(deps, &notice, now).await?);
    }
    Ok(sent)
}

/// Sends what is due of both kinds, callbacks and alerts (a nudge, a
/// reaper run); a failure is logged, and the next run tries again.
pub async fn deliver_all<P: Platform>(deps: &Deps<'_, P>) -> (u64, u64) {
    let callbacks = callback::deliver_due(deps).await.unwrap_or_else(|e| {
        (deps.log)(&format!("could not send callbacks: {e}"));
        0
    });
    let alerts = deliver_due(deps).await.unwrap_or_else(|e| {
        (deps.log)(&format!("could not send notices: {e}"));
        0
    });
    if let Err(e) = purge(deps).await {
        (deps.log)(&format!("could not purge notices: {e}"));
    }
    (callbacks, alerts)
}

/// When the next notice or callback is due, if one is pending: the notify
/// handler wakes itself then (a delayed retry of its message), so a failed
/// send is retried without waiting for the reaper.
pub async fn next_due<P: Platform>(deps: &Deps<'_, P>) -> Result<Option<EpochMs>, Error> {
    let rows = deps.db.query(&sql::next_due()).await?;
    Ok(rows
        .first()
        .and_then(|r| r.get("next_at"))
        .and_then(|v| v.as_i64())
        .map(EpochMs))
}

/// Forgets notices sent (or given up) a week ago.
pub async fn purge<P: Platform>(deps: &Deps<'_, P>) -> Result<u64, Error> {
    let before = deps.clock.now_ms() - NOTICE_RETENTION_MS;
    Ok(deps.db.execute(&sql::purge(before)).await?)
}

/// Takes one notice and sends it once; true when the webhook took it.
async fn deliver<P: Platform>(deps: &Deps<'_, P>, n: &Notice, now: EpochMs) -> Result<bool, Error> {
    let take = sql::take(&n.key, n.next_at, now, HOLD_MS);
    if deps.db.execute(&take).await? == 0 {
        return Ok(false);
    }
    if let Some(id) = &n.job_id {
        if alerted_within_the_hour(deps, id, now).await? {
            return spare(deps, n, id, now).await;
        }
    }
    let payload: Value =
        serde_json::from_str(&n.payload).unwrap_or_else(|_| Value::String(n.payload.clone()));
    let tries = n.attempts + 1;
    let (sent, error, next) = match alert::post(deps, &n.key, &payload).await {
        Ok(Alert::Sent | Alert::HandedOff) => (true, None, None),
        Ok(Alert::Refused(why)) => (false, Some(why), None),
        Err(e) if tries >= NOTICE_TRIES => (false, Some(e.to_string()), None),
        Err(_) => {
            let jitter = Jitter::draw(deps.cfg.retry_jitter, deps.clock.random_bytes());
            let wait = Backoff::CALLBACK.delay_ms(tries as u32, jitter, None) as i64;
            (false, None, Some(now.ms() + wait))
        }
    };
    let at = sent.then(|| deps.clock.now_ms());
    let outcome = sql::outcome(&n.key, at, next, error.as_deref());
    deps.db.execute(&outcome).await?;
    if let Some(id) = &n.job_id {
        mark_job(deps, id, at, error.as_deref()).await?;
    }
    Ok(sent)
}

/// Whether an alert about the job went out within the hour (a job retried
/// and dead again while its first notice waited): the second is spared,
/// as one raised in place would be.
async fn alerted_within_the_hour<P: Platform>(
    deps: &Deps<'_, P>,
    id: &JobId,
    now: EpochMs,
) -> Result<bool, Error> {
    let job = store::get_job(deps.db, store::select_job(id)).await?;
    Ok(job
        .and_then(|j| j.last_alert_at)
        .is_some_and(|t| now - t < ALERT_SPACING_MS))
}

/// Ends a notice unsent: an alert for its job went out within the hour.
async fn spare<P: Platform>(
    deps: &Deps<'_, P>,
    n: &Notice,
    id: &JobId,
    now: EpochMs,
) -> Result<bool, Error> {
    let why = "spared: an alert for this job went out within the hour";
    deps.db
        .execute(&sql::outcome(&n.key, None, None, Some(why)))
        .await?;
    deps.db.execute(&store::mark_alert_spared(id, now)).await?;
    Ok(false)
}

/// A dead job's alert, sent or refused: the job row says so, as when the
/// alert goes out in place.
async fn mark_job<P: Platform>(
    deps: &Deps<'_, P>,
    id: &JobId,
    sent_at: Option<EpochMs>,
    error: Option<&str>,
) -> Result<(), Error> {
    if let Some(at) = sent_at {
        deps.db.execute(&store::mark_alerted(id, at)).await?;
    } else if let Some(why) = error {
        deps.db.execute(&store::mark_alert_refused(id, why)).await?;
    }
    Ok(())
}
