//! A held claim, and what the consumer's steps share about it: the lease
//! (its fencing token and heartbeat), the checkpoint record and the part
//! keys. Both [`super::process`] and [`super::assemble`] build on it, so
//! neither imports the other's internals.

use std::cell::Cell;

use serde::Deserialize;

use crate::domain::{EpochMs, JobId};
use crate::error::Error;
use crate::ports::{Clock, Platform, SqlDb};
use crate::service::{circuit, Deps};
use crate::store::{self, Holder};

/// Longest time between heartbeats (lease renewals, which also notice a
/// cancellation) while a holder works.
const HEARTBEAT_MS: i64 = 10_000;
/// Longest time between liveness checks before a page (one D1 read,
/// shared by the windows in flight): a cancelled holder stops within a
/// page or this long, whichever is longer. A read per page would spend
/// the invocation's D1 queries on a per-point plan's hundreds of pages.
const LIVENESS_MS: i64 = 1_000;

/// The R2 key of a chunk's encoded block.
pub fn part_key(id: &JobId, idx: u32) -> String {
    format!("parts/{id}/{idx:06}.gz")
}

/// The R2 key of a chunk's Parquet part (its rows, one row group per point).
pub fn parquet_part_key(id: &JobId, idx: u32) -> String {
    format!("parts/{id}/{idx:06}.parquet")
}

/// A checkpoint: a finished chunk's index, samples and encoded bytes.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct DoneChunk {
    /// Position in the plan.
    #[serde(deserialize_with = "crate::job::de::uint")]
    pub idx: u32,
    /// Samples in its block.
    #[serde(deserialize_with = "crate::job::de::uint")]
    pub samples: u64,
    /// Bytes of its part.
    #[serde(deserialize_with = "crate::job::de::uint")]
    pub bytes: u64,
    /// Bytes of its Parquet part (0: none).
    #[serde(deserialize_with = "crate::job::de::uint")]
    pub parquet_bytes: u64,
}

/// A claim held: the job, its token, and when it was last renewed.
pub(crate) struct Lease<'a> {
    pub(crate) id: &'a JobId,
    pub(crate) token: String,
    pub(crate) renewed: Cell<EpochMs>,
    /// When it last checked that it still holds the job.
    pub(crate) checked: Cell<EpochMs>,
    /// Whether this delivery checkpointed at least one chunk.
    pub(crate) progressed: Cell<bool>,
    /// This message's view of the upstream circuit.
    pub(crate) circuit: circuit::Tracker,
}

impl Lease<'_> {
    pub(crate) fn holder(&self) -> Holder<'_> {
        Holder {
            id: self.id,
            token: &self.token,
        }
    }

    /// Before a page: renews the lease if it is due (a renewal that
    /// changes nothing means the job is no longer ours), else checks that
    /// it still holds the job if [`LIVENESS_MS`] passed since the last
    /// check. A cancelled job's holder so stops within about a page.
    pub(crate) async fn heartbeat<P: Platform>(&self, deps: &Deps<'_, P>) -> Result<(), Error> {
        let now = deps.clock.now_ms();
        let every = (deps.cfg.lease_ms / 3).clamp(1, HEARTBEAT_MS);
        if now - self.renewed.get() >= every {
            self.renewed.set(now);
            self.checked.set(now);
            let stmt = store::renew_lease(self.holder(), now, now + deps.cfg.lease_ms);
            return fenced(deps.db.execute(&stmt).await?);
        }
        if now - self.checked.get() >= LIVENESS_MS {
            return self.alive(deps).await;
        }
        Ok(())
    }

    /// Checks now that it still holds the job (one D1 read): before a part
    /// is written, so a cancelled job gets no new part.
    pub(crate) async fn alive<P: Platform>(&self, deps: &Deps<'_, P>) -> Result<(), Error> {
        self.checked.set(deps.clock.now_ms());
        let rows = deps.db.query(&store::select_held(self.holder())).await?;
        fenced(rows.len() as u64)
    }
}

/// A fenced write that changed no row means the holder lost the job.
pub(crate) fn fenced(changed: u64) -> Result<(), Error> {
    if changed == 0 {
        Err(Error::Fenced)
    } else {
        Ok(())
    }
}
