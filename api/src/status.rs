//! A job's status.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

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
