//! The job state machine and the job row.

use serde::{Deserialize, Deserializer, Serialize};

use crate::api::{
    CallbackStatus, JobView, ParquetLink, Progress, ResultContentType, ResultEncoding, ResultLink,
    StoreUse, UpstreamUse, Waiting,
};
use crate::domain::{format_rfc3339, EpochMs, JobId, PointName, Site};

/// A new job to insert.
#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    /// Id.
    pub id: &'a JobId,
    /// Owner.
    pub owner: &'a str,
    /// Site.
    pub site: &'a Site,
    /// Points as a JSON array.
    pub points_json: String,
    /// Range start.
    pub start_ms: EpochMs,
    /// Range end.
    pub end_ms: EpochMs,
    /// Fingerprint.
    pub fingerprint: &'a str,
    /// Chunks (windows) in the plan.
    pub chunks_total: i64,
    /// What it counts against the daily quota (points × months).
    pub quota_units: i64,
    /// Days per window.
    pub window_days: u32,
    /// The plan asked for.
    pub plan_requested: crate::domain::PlanChoice,
    /// Bypass the settled-sample store, and refresh it.
    pub force: bool,
    /// Where its view is POSTed when it ends (checked).
    pub callback_url: Option<&'a str>,
    /// Now.
    pub now: EpochMs,
}

pub use tsp_api::JobStatus;

/// A `queue_jobs` row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Job id.
    pub id: JobId,
    /// Owning tenant.
    pub owner: String,
    /// Site.
    pub site: Site,
    /// Sorted, unique points.
    #[serde(deserialize_with = "de::json_text")]
    pub points: Vec<PointName>,
    /// Range start, epoch ms.
    #[serde(deserialize_with = "de::int")]
    pub start_ms: EpochMs,
    /// Range end (exclusive), epoch ms.
    #[serde(deserialize_with = "de::int")]
    pub end_ms: EpochMs,
    /// SHA-256 hex of the canonical request.
    pub fingerprint: String,
    /// Status.
    pub status: JobStatus,
    /// Deliveries claimed so far.
    #[serde(deserialize_with = "de::int")]
    pub attempts: i64,
    /// Chunks in the plan.
    #[serde(deserialize_with = "de::int")]
    pub chunks_total: i64,
    /// Chunks checkpointed.
    #[serde(deserialize_with = "de::int")]
    pub chunks_done: i64,
    /// Samples in checkpointed chunks.
    #[serde(deserialize_with = "de::int")]
    pub sample_count: i64,
    /// Accepted at.
    #[serde(deserialize_with = "de::int")]
    pub created_at: EpochMs,
    /// Last changed at.
    #[serde(deserialize_with = "de::int")]
    pub updated_at: EpochMs,
    /// First claimed at.
    #[serde(default, deserialize_with = "de::opt_int")]
    pub started_at: Option<EpochMs>,
    /// Reached a terminal state at.
    #[serde(default, deserialize_with = "de::opt_int")]
    pub finished_at: Option<EpochMs>,
    /// The queue accepted its message at (the outbox flag).
    #[serde(default, deserialize_with = "de::opt_int")]
    pub sent_at: Option<EpochMs>,
    /// The consumer's lease runs until.
    #[serde(default, deserialize_with = "de::opt_int")]
    pub lease_until: Option<EpochMs>,
    /// The last error.
    #[serde(default)]
    pub last_error: Option<String>,
    /// The result object key.
    #[serde(default)]
    pub result_key: Option<String>,
    /// The result object size.
    #[serde(default, deserialize_with = "de::opt_int")]
    pub result_bytes: Option<i64>,
    /// SHA-256 hex of the result object.
    #[serde(default)]
    pub result_sha256: Option<String>,
    /// The result's Parquet file key, when it has one.
    #[serde(default)]
    pub parquet_key: Option<String>,
    /// The Parquet file's size.
    #[serde(default, deserialize_with = "de::opt_int")]
    pub parquet_bytes: Option<i64>,
    /// Times the reaper resent it.
    #[serde(default, deserialize_with = "de::int_or_zero")]
    pub resends: i64,
    /// The dead-letter alert went out at.
    #[serde(default, deserialize_with = "de::opt_int")]
    pub alerted_at: Option<EpochMs>,
    /// Where its view is POSTed when it ends.
    #[serde(default)]
    pub callback_url: Option<String>,
    /// `pending`, `sent` or `failed`; none until it ends.
    #[serde(default)]
    pub callback_state: Option<String>,
    /// Deliveries tried for its current end state.
    #[serde(default, deserialize_with = "de::int_or_zero")]
    pub callback_attempts: i64,
    /// When the next delivery is due.
    #[serde(default, deserialize_with = "de::opt_int")]
    pub callback_next_at: Option<EpochMs>,
    /// Why the last delivery failed.
    #[serde(default)]
    pub callback_error: Option<String>,
    /// When a window of it last committed.
    #[serde(default, deserialize_with = "de::opt_int")]
    pub progress_at: Option<EpochMs>,
    /// When the webhook last took an alert for it (kept across retries).
    #[serde(default, deserialize_with = "de::opt_int")]
    pub last_alert_at: Option<EpochMs>,
    /// Consecutive deliveries without progress.
    #[serde(default, deserialize_with = "de::int_or_zero")]
    pub stalls: i64,
    /// When the next delivery is due (a delayed retry or continuation).
    #[serde(default, deserialize_with = "de::opt_int")]
    pub next_attempt_at: Option<EpochMs>,
    /// Why the webhook refused the dead-letter alert, if it did (never retried).
    #[serde(default)]
    pub alert_error: Option<String>,
    /// Waiting for something outside the job until then (an open upstream circuit).
    #[serde(default, deserialize_with = "de::opt_int")]
    pub waiting_until: Option<EpochMs>,
    /// What it is waiting for.
    #[serde(default)]
    pub waiting_for: Option<String>,
    /// Days per window (the chunk plan), fixed at submission.
    #[serde(default = "default_window_days", deserialize_with = "de::window_days")]
    pub window_days: u32,
    /// The plan the request asked for.
    #[serde(default, deserialize_with = "de::plan_choice")]
    pub plan_requested: tsp_api::PlanChoice,
    /// The plan the consumer chose at its first claim.
    #[serde(default, deserialize_with = "de::plan")]
    pub plan: Option<tsp_api::Plan>,
    /// Rows per page of its site walk, chosen with the plan.
    #[serde(default, deserialize_with = "de::opt_int")]
    pub page_size: Option<i64>,
    /// The site's configured points, as the plan saw them.
    #[serde(default, deserialize_with = "de::opt_int")]
    pub site_points: Option<i64>,
    /// Upstream body bytes of its committed windows.
    #[serde(default, deserialize_with = "de::int_or_zero")]
    pub upstream_bytes: i64,
    /// Upstream requests of its committed windows.
    #[serde(default, deserialize_with = "de::int_or_zero")]
    pub upstream_requests: i64,
    /// Points that yielded no sample over the whole range (once completed).
    #[serde(default, deserialize_with = "de::opt_json_text")]
    pub points_without_data: Option<Vec<PointName>>,
    /// Bypasses the settled-sample store, and refreshes it.
    #[serde(default, deserialize_with = "de::flag")]
    pub force: bool,
    /// Where its committed windows' samples came from.
    #[serde(flatten)]
    pub sources: Sources,
}

/// Where a job's samples came from, over its committed windows: the
/// settled-sample store or the upstream. A window that used both counts
/// once in each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sources {
    /// Samples read from the store.
    #[serde(default, deserialize_with = "de::int_or_zero")]
    pub store_samples: i64,
    /// Windows that read the store.
    #[serde(default, deserialize_with = "de::int_or_zero")]
    pub store_windows: i64,
    /// Samples fetched from the upstream.
    #[serde(default, deserialize_with = "de::int_or_zero")]
    pub upstream_samples: i64,
    /// Windows that fetched from the upstream.
    #[serde(default, deserialize_with = "de::int_or_zero")]
    pub upstream_windows: i64,
}

impl Job {
    /// The row [`store::insert_job`](crate::store::insert_job) writes for
    /// `new`, as a read would return it: built rather than read back.
    pub fn queued(new: &NewJob<'_>, points: Vec<PointName>) -> Self {
        Job {
            id: new.id.clone(),
            owner: new.owner.to_owned(),
            site: new.site.clone(),
            points,
            start_ms: new.start_ms,
            end_ms: new.end_ms,
            fingerprint: new.fingerprint.to_owned(),
            status: JobStatus::Queued,
            attempts: 0,
            chunks_total: new.chunks_total,
            chunks_done: 0,
            sample_count: 0,
            created_at: new.now,
            updated_at: new.now,
            started_at: None,
            finished_at: None,
            sent_at: None,
            lease_until: None,
            last_error: None,
            result_key: None,
            result_bytes: None,
            result_sha256: None,
            parquet_key: None,
            parquet_bytes: None,
            resends: 0,
            alerted_at: None,
            last_alert_at: None,
            progress_at: None,
            callback_url: new.callback_url.map(str::to_owned),
            callback_state: None,
            callback_attempts: 0,
            callback_next_at: None,
            callback_error: None,
            stalls: 0,
            next_attempt_at: None,
            alert_error: None,
            waiting_until: None,
            waiting_for: None,
            window_days: new.window_days,
            plan_requested: new.plan_requested,
            plan: None,
            page_size: None,
            site_points: None,
            upstream_bytes: 0,
            upstream_requests: 0,
            points_without_data: None,
            force: new.force,
            sources: Sources::default(),
        }
    }
}

fn default_window_days() -> u32 {
    crate::chunk::MAX_WINDOW_DAYS
}

/// Row decoding helpers. D1 hands integers back as JS numbers, which may
/// arrive as floats; SQLite hands them back as integers. Both are accepted.
impl Job {
    /// When it last made progress: a window committed, or else its claim
    /// (or, never claimed, its submission).
    pub fn last_progress(&self) -> EpochMs {
        self.progress_at
            .or(self.started_at)
            .unwrap_or(self.created_at)
    }

    /// The job's status document.
    pub fn view(&self) -> JobView {
        let job = self;
        let ts = |v: Option<EpochMs>| v.map(format_rfc3339);
        let percent = if job.chunks_total > 0 {
            (job.chunks_done as f64 * 100.0 / job.chunks_total as f64 * 10.0).round() / 10.0
        } else {
            0.0
        };
        let id = job.id.as_str();
        let result = (job.status == JobStatus::Completed).then(|| ResultLink {
            url: format!("/v1/jobs/{id}/result"),
            bytes: job.result_bytes,
            sha256: job.result_sha256.clone(),
            content_type: ResultContentType::Columnar,
            content_encoding: ResultEncoding::Gzip,
            parquet: job.parquet_bytes.map(|bytes| ParquetLink {
                url: format!("/v1/jobs/{id}/result.parquet"),
                bytes,
            }),
        });
        JobView {
            job_id: job.id.clone(),
            status: job.status,
            site: job.site.to_string(),
            points: names(&job.points),
            start: format_rfc3339(job.start_ms),
            end: format_rfc3339(job.end_ms),
            attempts: job.attempts,
            stalled_deliveries: job.stalls,
            progress: Progress {
                chunks_done: job.chunks_done,
                chunks_total: job.chunks_total,
                samples: job.sample_count,
                percent,
            },
            last_error: job.last_error.clone(),
            created_at: format_rfc3339(job.created_at),
            updated_at: format_rfc3339(job.updated_at),
            started_at: ts(job.started_at),
            finished_at: ts(job.finished_at),
            status_url: format!("/v1/jobs/{id}"),
            result,
            waiting: job.waiting_until.map(|until| Waiting {
                r#for: job.waiting_for.clone(),
                until: format_rfc3339(until),
            }),
            upstream: UpstreamUse {
                plan_requested: job.plan_requested,
                plan: job.plan,
                bytes: job.upstream_bytes,
                requests: job.upstream_requests,
                samples: job.sources.upstream_samples,
                windows: job.sources.upstream_windows,
            },
            store: StoreUse {
                samples: job.sources.store_samples,
                windows: job.sources.store_windows,
            },
            points_without_data: job.points_without_data.as_deref().map(names),
            callback: job.callback_url.as_ref().map(|url| CallbackStatus {
                url: url.clone(),
                state: job.callback_state.clone(),
                attempts: job.callback_attempts,
                error: job.callback_error.clone(),
            }),
        }
    }
}

/// Names as the wire and the result header carry them.
pub(crate) fn names(points: &[PointName]) -> Vec<String> {
    points.iter().map(|p| p.as_str().to_owned()).collect()
}

pub(crate) mod de {
    use super::*;

    pub use tsp_api::de::{int, int_or_zero, opt_int, uint};

    pub fn window_days<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        let n: i64 = int(d)?;
        u32::try_from(n)
            .ok()
            .filter(|n| (1..=crate::chunk::MAX_WINDOW_DAYS).contains(n))
            .ok_or_else(|| serde::de::Error::custom(format!("window_days {n} is out of range")))
    }

    /// A SQL boolean: 0 or 1 (NULL reads as false).
    pub fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        Ok(opt_int::<D, i64>(d)?.unwrap_or(0) != 0)
    }

    pub fn plan_choice<'de, D: Deserializer<'de>>(d: D) -> Result<tsp_api::PlanChoice, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map_or(Ok(Default::default()), |s| {
            s.parse().map_err(serde::de::Error::custom)
        })
    }

    pub fn plan<'de, D: Deserializer<'de>>(d: D) -> Result<Option<tsp_api::Plan>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map(|s| s.parse().map_err(serde::de::Error::custom))
            .transpose()
    }

    pub fn opt_json_text<'de, D: Deserializer<'de>, T: serde::de::DeserializeOwned>(
        d: D,
    ) -> Result<Option<T>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map(|s| serde_json::from_str(&s).map_err(serde::de::Error::custom))
            .transpose()
    }

    pub fn json_text<'de, D: Deserializer<'de>, T: serde::de::DeserializeOwned>(
        d: D,
    ) -> Result<T, D::Error> {
        let s = String::deserialize(d)?;
        serde_json::from_str(&s).map_err(serde::de::Error::custom)
    }
}
