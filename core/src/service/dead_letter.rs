//! The terminal failure path: `failed_permanent`, archived, alerted once.
//!
//! Both the dead-letter queue's consumer and the consumer's permanent
//! failures come here, so `failed_permanent` always means "archived and
//! alerted". Each step is idempotent and the alert is guarded by
//! `alerted_at`, so a duplicate delivery or a crash between steps ends with
//! one archive object and one alert. (A crash after the webhook answered but
//! before `alerted_at` was written can still repeat the alert: a webhook
//! cannot take part in our transaction. Each alert carries the archive key
//! as its `Idempotency-Key` header, so a receiver that deduplicates drops
//! the repeat.) A job retried by its owner that dies again is a new death:
//! a new archive object and a new alert.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::config::Notices;
use crate::domain::{format_rfc3339, EpochMs, JobId};
use crate::error::Error;
use crate::job::{Job, JobStatus};
use crate::ports::{BlobMeta, BlobStore, Clock, Platform, SqlDb};
use crate::service::alert::{self, Alert, ALERT_SPACING_MS};
use crate::service::{notices, transition_log, Deps};
use crate::store;

/// What the terminal path did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadOutcome {
    /// The job was archived and alerted (now, or it already had been).
    Dead {
        /// The archive key.
        archive_key: String,
        /// Whether this call sent the alert.
        alerted_now: bool,
    },
    /// The job is `completed` or `cancelled`: nothing to do.
    NotApplicable(JobStatus),
    /// The message named no known job; it was archived raw.
    ArchivedRaw(String),
}

/// The archive key of a dead job, dated by when it died. The millisecond
/// of death is part of it, so a job retried by its owner that dies again
/// (even the same day) gets a second archive instead of losing it; every
/// redelivery of the same death maps to the same key.
pub fn archive_key(id: &str, died_at: EpochMs) -> String {
    format!("{}{id}-{died_at}.json", day_prefix(died_at))
}

/// The archive key of a raw (unparseable) message: its content digest,
/// dated by the day it was archived.
fn raw_archive_key(digest: &str, now: EpochMs) -> String {
    format!("{}unparsed-{digest}.json", day_prefix(now))
}

fn day_prefix(at: EpochMs) -> String {
    let day = format_rfc3339(at);
    let (y, m, d) = (&day[0..4], &day[5..7], &day[8..10]);
    format!("dead-letters/{y}/{m}/{d}/")
}

/// Takes a job (or an unparseable message, `job_id = None`) down the
/// terminal path, whoever holds it (the dead-letter queue, the reaper).
pub async fn dead_letter<P: Platform>(
    deps: &Deps<'_, P>,
    job_id: Option<&JobId>,
    reason: &str,
    message: &Value,
) -> Result<DeadOutcome, Error> {
    dead_letter_as(deps, job_id, None, reason, message).await
}

/// [`dead_letter`], by the lease holder with `token` when given: the job
/// dies only while that holder still holds it, so a stale holder's
/// permanent error cannot kill a job another invocation runs.
pub async fn dead_letter_as<P: Platform>(
    deps: &Deps<'_, P>,
    job_id: Option<&JobId>,
    token: Option<&str>,
    reason: &str,
    message: &Value,
) -> Result<DeadOutcome, Error> {
    let Deps { db, clock, .. } = *deps;
    let now = clock.now_ms();
    let Some(id) = job_id else {
        return archive_raw(deps, reason, message).await;
    };
    let fail = store::fail_job_permanent(id, now, reason, token);
    let job = match store::get_job(db, fail).await? {
        Some(job) => {
            let detail = Some(reason);
            let ev = store::insert_event(id, now, JobStatus::FailedPermanent, job.attempts, detail);
            db.execute(&ev).await?;
            (deps.log)(&transition_log(
                id.as_str(),
                "active",
                "failed_permanent",
                detail,
            ));
            job
        }
        None => match store::get_job(db, store::select_job(id)).await? {
            None => return archive_raw(deps, "message for an unknown job", message).await,
            Some(j) if j.status == JobStatus::FailedPermanent => j,
            Some(j) => return Ok(DeadOutcome::NotApplicable(j.status)),
        },
    };
    let key = archive_key(id.as_str(), job.finished_at.unwrap_or(now));
    if job.alerted_at.is_some() || job.alert_error.is_some() {
        return Ok(DeadOutcome::Dead {
            archive_key: key,
            alerted_now: false,
        });
    }
    let archive = archive_doc(db, &job, now, reason, message).await?;
    put_archive(deps, &key, &archive).await?;
    let alerted_now = alert_once(deps, &job, &key, now).await?;
    crate::service::callback::deliver_now(deps, &job).await;
    Ok(DeadOutcome::Dead {
        archive_key: key,
        alerted_now,
    })
}

/// Alerts a dead job's death, unless one went out for it within the hour
/// (a job retried and dead again is archived, not alerted again); says
/// whether it sent one.
async fn alert_once<P: Platform>(
    deps: &Deps<'_, P>,
    job: &Job,
    key: &str,
    now: EpochMs,
) -> Result<bool, Error> {
    let (db, id) = (deps.db, &job.id);
    if job
        .last_alert_at
        .is_some_and(|t| now - t < ALERT_SPACING_MS)
    {
        db.execute(&store::mark_alert_spared(id, now)).await?;
        let line = json!({"event": "alert_spared", "job_id": id, "archive": key,
            "why": "an alert for this job was sent within the hour"});
        (deps.log)(&line.to_string());
        return Ok(false);
    }
    Ok(
        match send_alert(deps, key, Some(id), &alert_payload(deps, job, key)).await? {
            Alert::HandedOff => false,
            Alert::Sent => {
                db.execute(&store::mark_alerted(id, deps.clock.now_ms()))
                    .await?
                    > 0
            }
            Alert::Refused(why) => {
                db.execute(&store::mark_alert_refused(id, &why)).await?;
                false
            }
        },
    )
}

/// A dead job's archive: the row, its status changes, the message that
/// failed and why.
async fn archive_doc<D: SqlDb>(
    db: &D,
    job: &Job,
    now: EpochMs,
    reason: &str,
    message: &Value,
) -> Result<Value, Error> {
    let events: Vec<Value> = db
        .query(&store::select_events(&job.id))
        .await?
        .into_iter()
        .map(Value::Object)
        .collect();
    Ok(json!({
        "kind": "dead_job",
        "archived_at": format_rfc3339(now),
        "reason": job.last_error.as_deref().unwrap_or(reason),
        "message": message,
        "job": job,
        "events": events,
    }))
}

async fn put_archive<P: Platform>(
    deps: &Deps<'_, P>,
    key: &str,
    doc: &Value,
) -> Result<bool, Error> {
    let meta = BlobMeta {
        content_type: "application/json".to_owned(),
        custom: vec![],
    };
    Ok(deps
        .blobs
        .put_if_absent(key, doc.to_string().into_bytes(), &meta)
        .await?)
}

/// An unparseable message (or one for no known job) is archived under an id
/// made from its content, and alerted on when first archived.
async fn archive_raw<P: Platform>(
    deps: &Deps<'_, P>,
    reason: &str,
    message: &Value,
) -> Result<DeadOutcome, Error> {
    let raw = message.to_string();
    let digest = &hex::encode(Sha256::digest(raw.as_bytes()))[..32];
    let key = raw_archive_key(digest, deps.clock.now_ms());
    let doc = json!({
        "kind": "raw_message",
        "archived_at": format_rfc3339(deps.clock.now_ms()),
        "reason": reason,
        "message": message,
    });
    put_archive(deps, &key, &doc).await?;
    // A marker object records the alert, so a failed alert is retried on
    // redelivery and a duplicate delivery does not alert twice.
    let marker = format!("alert-markers/{key}");
    if deps.blobs.head(&marker).await?.is_none() {
        let text = format!(
            "Dead letter: a queue message could not be handled ({reason}). Archived at {key}."
        );
        let payload = json!({ "text": text, "archive_key": key, "error": reason });
        // A refused alert is final too: the marker stops its retries.
        send_alert(deps, &key, None, &payload).await?;
        let meta = BlobMeta {
            content_type: "text/plain".to_owned(),
            custom: vec![],
        };
        deps.blobs.put(&marker, Vec::new(), &meta).await?;
    }
    Ok(DeadOutcome::ArchivedRaw(key))
}

fn alert_payload<P: Platform>(deps: &Deps<'_, P>, job: &Job, key: &str) -> Value {
    let status_url = format!("{}/v1/jobs/{}", deps.cfg.public_base_url, job.id);
    let error = job.last_error.clone().unwrap_or_default();
    json!({
        "text": format!(
            "Job {} (site {}, owner {}) failed permanently after {} attempts: {}. Status: {}",
            job.id, job.site, job.owner, job.attempts, error, status_url
        ),
        "job_id": job.id,
        "owner": job.owner,
        "site": job.site,
        "error": error,
        "attempts": job.attempts,
        "status_url": status_url,
        "archive_key": key,
    })
}

/// An operator alert that is not about one dead job (the upstream circuit):
/// the same webhook, tries and timeouts.
pub(crate) async fn send_operator_alert<P: Platform>(
    deps: &Deps<'_, P>,
    key: &str,
    payload: &Value,
) -> Result<(), Error> {
    match send_alert(deps, key, None, payload).await? {
        Alert::Sent | Alert::HandedOff => Ok(()),
        Alert::Refused(why) => Err(Error::Alert(why)),
    }
}

/// Sends an alert from here, or hands it off to the dead-letter Worker
/// when this Worker holds no webhook ([`Notices::HandOff`]).
async fn send_alert<P: Platform>(
    deps: &Deps<'_, P>,
    key: &str,
    job: Option<&JobId>,
    payload: &Value,
) -> Result<Alert, Error> {
    if deps.cfg.notices == Notices::HandOff {
        notices::hand_off(deps, key, job, payload).await?;
        return Ok(Alert::HandedOff);
    }
    alert::post(deps, key, payload).await
}
