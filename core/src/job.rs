//! The job state machine and the job row.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

use crate::domain::{EpochMs, JobId};
use crate::store::NewJob;

/// Where a job is in its life.
///
/// ```text
/// queued ──claim──▶ processing ──last chunk──▶ completed
///    │                 │  ▲  │
///    │                 │  └──┴─ transient failure ─▶ failed ─claim─▶ processing
///    │                 └──────────────── permanent / retries exhausted ─▶ failed_permanent
///    └──────── cancel (any non-terminal) ─────────────────────────────▶ cancelled
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Accepted, waiting for a consumer.
    Queued,
    /// A consumer holds its lease.
    Processing,
    /// Finished; the result object exists.
    Completed,
    /// The last attempt failed transiently; a retry is scheduled.
    Failed,
    /// Dead: archived and alerted. Only `retry` brings it back.
    FailedPermanent,
    /// Cancelled by its owner.
    Cancelled,
}

impl JobStatus {
    /// Every status, in storage order.
    pub const ALL: [JobStatus; 6] = [
        JobStatus::Queued,
        JobStatus::Processing,
        JobStatus::Completed,
        JobStatus::Failed,
        JobStatus::FailedPermanent,
        JobStatus::Cancelled,
    ];

    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Processing => "processing",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::FailedPermanent => "failed_permanent",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// No further work happens in a terminal state.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Completed | JobStatus::FailedPermanent | JobStatus::Cancelled
        )
    }
}

impl FromStr for JobStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown job status {s:?}"))
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `queue_jobs` row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Job id.
    pub id: JobId,
    /// Owning tenant.
    pub owner: String,
    /// Site.
    pub site: String,
    /// Sorted, unique points.
    #[serde(deserialize_with = "de::json_text")]
    pub points: Vec<String>,
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
    /// Times the reaper resent it.
    #[serde(default, deserialize_with = "de::int_or_zero")]
    pub resends: i64,
    /// The dead-letter alert went out at.
    #[serde(default, deserialize_with = "de::opt_int")]
    pub alerted_at: Option<EpochMs>,
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
    pub plan_requested: crate::plan::PlanChoice,
    /// The plan the consumer chose at its first claim.
    #[serde(default, deserialize_with = "de::plan")]
    pub plan: Option<crate::plan::Plan>,
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
    pub points_without_data: Option<Vec<String>>,
}

impl Job {
    /// The row [`store::insert_job`](crate::store::insert_job) writes for
    /// `new`, as a read would return it: built rather than read back.
    pub fn queued(new: &NewJob<'_>, points: Vec<String>) -> Self {
        Job {
            id: new.id.clone(),
            owner: new.owner.to_owned(),
            site: new.site.to_owned(),
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
            resends: 0,
            alerted_at: None,
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
        }
    }
}

fn default_window_days() -> u32 {
    crate::chunk::MAX_WINDOW_DAYS
}

/// Row decoding helpers. D1 hands integers back as JS numbers, which may
/// arrive as floats; SQLite hands them back as integers. Both are accepted.
pub(crate) mod de {
    use super::*;

    fn to_i64(v: &serde_json::Value) -> Option<i64> {
        v.as_i64().or_else(|| {
            v.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15)
                .map(|f| f as i64)
        })
    }

    pub fn int<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        to_i64(&v).ok_or_else(|| serde::de::Error::custom(format!("expected an integer, got {v}")))
    }

    /// A non-negative integer that fits `T` (checkpoint counters).
    pub fn uint<'de, D: Deserializer<'de>, T: TryFrom<i64>>(d: D) -> Result<T, D::Error> {
        let n = int(d)?;
        T::try_from(n).map_err(|_| serde::de::Error::custom(format!("{n} is out of range")))
    }

    pub fn int_or_zero<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        Ok(opt_int(d)?.unwrap_or(0))
    }

    pub fn opt_int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        if v.is_null() {
            return Ok(None);
        }
        to_i64(&v)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("expected an integer, got {v}")))
    }

    pub fn window_days<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        let n = int(d)?;
        u32::try_from(n)
            .ok()
            .filter(|n| (1..=crate::chunk::MAX_WINDOW_DAYS).contains(n))
            .ok_or_else(|| serde::de::Error::custom(format!("window_days {n} is out of range")))
    }

    pub fn plan_choice<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<crate::plan::PlanChoice, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map_or(Ok(Default::default()), |s| {
            s.parse().map_err(serde::de::Error::custom)
        })
    }

    pub fn plan<'de, D: Deserializer<'de>>(d: D) -> Result<Option<crate::plan::Plan>, D::Error> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_through_storage_form() {
        for st in JobStatus::ALL {
            assert_eq!(st.as_str().parse::<JobStatus>(), Ok(st));
        }
        assert!("done".parse::<JobStatus>().is_err());
    }
}
