//! One invocation's budgets, shared by every message of its batch.
//!
//! The platform counts D1 queries (1,000), subrequests and wall time per
//! *invocation*, and a queue invocation may carry several messages. So one
//! [`Budget`] is made per invocation, and the ports every message uses are
//! wrapped in [`Metered`], which charges each call to it: statements for
//! the database (each statement of a batch counts), one subrequest for
//! every object-store call, upstream request and queue send. Work that
//! starts later (a chunk, finalize, the next message) first reserves what
//! it will cost, and does not start if the reservation does not fit.

use std::cell::Cell;

use crate::config::Config;
use crate::domain::EpochMs;
use crate::error::{Error, StoreError, UpstreamError};
use crate::ports::{
    BlobMeta, BlobStore, HttpClient, HttpRequest, HttpResponse, JobMessage, JobQueue, Row, SqlDb,
    Statement, UploadedPart,
};

/// D1 statements one invocation may run: the platform allows 1,000
/// queries per invocation; the rest is margin.
pub const STATEMENT_LIMIT: u64 = 900;
/// Kept back from chunk work for what a message does around its chunks:
/// heartbeats of chunks in flight, hand-over, failure records, the
/// terminal path.
pub const CONTROL_STATEMENTS: u64 = 60;
/// Subrequests kept back the same way.
pub const CONTROL_SUBREQUESTS: u64 = 20;
/// Kept back besides for each further message of a batch that runs at the
/// same time: its hand-over or terminal path (a few statements, a queue
/// send, an archive), which may fall at once with the others'.
pub const CONTROL_PER_MESSAGE: Cost = Cost {
    statements: 20,
    subrequests: 5,
};

/// What a piece of work may cost, at most.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cost {
    /// D1 statements.
    pub statements: u64,
    /// Subrequests (upstream, object store, queue).
    pub subrequests: u64,
}

/// The limits of one invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// D1 statements.
    pub statements: u64,
    /// Subrequests.
    pub subrequests: u64,
    /// Wall time after which no new work starts.
    pub wall_ms: u64,
}

impl Limits {
    /// The limits the configuration sets.
    pub fn from_config(cfg: &Config) -> Self {
        Self {
            statements: STATEMENT_LIMIT,
            subrequests: cfg.subrequest_budget,
            wall_ms: cfg.invocation_budget_ms,
        }
    }
}

#[derive(Debug, Default)]
struct Meter {
    used: Cell<u64>,
    reserved: Cell<u64>,
}

impl Meter {
    fn committed(&self) -> u64 {
        self.used.get() + self.reserved.get()
    }
}

/// The budgets of one invocation: what was spent, what running work has
/// reserved, and the deadline.
#[derive(Debug)]
pub struct Budget {
    limits: Limits,
    started: EpochMs,
    deadline: EpochMs,
    statements: Meter,
    subrequests: Meter,
    upstream_bytes: Cell<u64>,
    /// The messages sharing it: each keeps its own control reserve back.
    messages: u64,
}

/// The platform's own limits per invocation, against which usage is
/// warned about at 80 %.
pub mod platform {
    /// D1 queries per invocation.
    pub const D1_QUERIES: u64 = 1_000;
    /// Subrequests per invocation (current paid plans).
    pub const SUBREQUESTS: u64 = 10_000;
    /// Isolate memory, bytes.
    pub const MEMORY_BYTES: u64 = 128 * 1_000_000;
    /// Wall time of a queue consumer invocation, ms.
    pub const QUEUE_WALL_MS: u64 = 15 * 60_000;
}

/// What one invocation used, for its log line and its warnings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// D1 statements.
    pub statements: u64,
    /// Subrequests.
    pub subrequests: u64,
    /// Upstream response bytes read.
    pub upstream_bytes: u64,
    /// Wall time, ms.
    pub wall_ms: u64,
    /// wasm linear memory at the end (0 where unknown), bytes.
    pub memory_bytes: u64,
}

impl Usage {
    /// One line per figure past 80 % of its platform limit.
    pub fn warnings(&self) -> Vec<String> {
        let checks = [
            ("D1 statements", self.statements, platform::D1_QUERIES),
            ("subrequests", self.subrequests, platform::SUBREQUESTS),
            (
                "wasm memory bytes",
                self.memory_bytes,
                platform::MEMORY_BYTES,
            ),
            ("wall ms", self.wall_ms, platform::QUEUE_WALL_MS),
        ];
        checks
            .iter()
            .filter(|(_, used, limit)| *used * 5 > *limit * 4)
            .map(|(what, used, limit)| {
                format!(
                    "{what}: {used} of the platform's {limit} ({}%)",
                    used * 100 / limit
                )
            })
            .collect()
    }
}

impl Budget {
    /// A fresh budget for an invocation that started at `now`.
    pub fn new(limits: Limits, now: EpochMs) -> Self {
        Self {
            limits,
            started: now,
            deadline: now.saturating_add(limits.wall_ms as i64),
            statements: Meter::default(),
            subrequests: Meter::default(),
            upstream_bytes: Cell::new(0),
            messages: 1,
        }
    }

    /// The same budget shared by `n` messages running at once: the control
    /// reserve grows by [`CONTROL_PER_MESSAGE`] for each message past the
    /// first.
    pub fn shared_by(mut self, n: usize) -> Self {
        self.messages = n.max(1) as u64;
        self
    }

    /// How many windows one message may run at once when `slots` are the
    /// invocation's: an equal share, at least one. The messages of a batch
    /// run together, so the invocation never holds more than `slots`
    /// windows (memory, connections), and a message retrying a failing
    /// site's pages holds only its own share, never another's.
    pub fn window_share(&self, slots: usize) -> usize {
        (slots / self.messages as usize).max(1)
    }

    /// What was used by `now`.
    pub fn usage(&self, now: EpochMs, memory_bytes: u64) -> Usage {
        Usage {
            statements: self.statements_used(),
            subrequests: self.subrequests_used(),
            upstream_bytes: self.upstream_bytes.get(),
            wall_ms: (now - self.started).max(0) as u64,
            memory_bytes,
        }
    }

    /// The limits it was made with.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// D1 statements run so far.
    pub fn statements_used(&self) -> u64 {
        self.statements.used.get()
    }

    /// Subrequests made so far.
    pub fn subrequests_used(&self) -> u64 {
        self.subrequests.used.get()
    }

    /// Whether the deadline has passed.
    pub fn expired(&self, now: EpochMs) -> bool {
        now >= self.deadline
    }

    fn fits(&self, cost: Cost, keep: Cost) -> bool {
        let s = self.statements.committed() + cost.statements + keep.statements;
        let r = self.subrequests.committed() + cost.subrequests + keep.subrequests;
        s <= self.limits.statements && r <= self.limits.subrequests
    }

    /// Whether `cost` fits now, on top of what is spent and reserved,
    /// leaving nothing back (finalize, the last step of a message).
    pub fn can_afford(&self, cost: Cost) -> bool {
        self.fits(cost, Cost::default())
    }

    /// Whether a fresh invocation could afford `cost` at all.
    pub fn could_ever_afford(&self, cost: Cost) -> bool {
        cost.statements <= self.limits.statements && cost.subrequests <= self.limits.subrequests
    }

    /// Reserves `cost` for work about to start, keeping the control
    /// reserve back; `None` if it does not fit or the deadline has passed.
    pub fn reserve(&self, cost: Cost, now: EpochMs) -> Option<Reservation<'_>> {
        let more = self.messages - 1;
        let keep = Cost {
            statements: CONTROL_STATEMENTS + CONTROL_PER_MESSAGE.statements * more,
            subrequests: CONTROL_SUBREQUESTS + CONTROL_PER_MESSAGE.subrequests * more,
        };
        if self.expired(now) || !self.fits(cost, keep) {
            return None;
        }
        add(&self.statements.reserved, cost.statements);
        add(&self.subrequests.reserved, cost.subrequests);
        Some(Reservation { budget: self, cost })
    }

    fn charge_statements(&self, n: u64) {
        add(&self.statements.used, n);
    }

    fn charge_subrequest(&self) {
        add(&self.subrequests.used, 1);
    }
}

fn add(c: &Cell<u64>, n: u64) {
    c.set(c.get().saturating_add(n));
}

/// Work's share of a [`Budget`], held while it runs and given back when it
/// is dropped (what it actually spent is charged by [`Metered`]).
#[derive(Debug)]
pub struct Reservation<'a> {
    budget: &'a Budget,
    cost: Cost,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let (s, r) = (&self.budget.statements, &self.budget.subrequests);
        s.reserved
            .set(s.reserved.get().saturating_sub(self.cost.statements));
        r.reserved
            .set(r.reserved.get().saturating_sub(self.cost.subrequests));
    }
}

/// A port whose every call is charged to a [`Budget`].
pub struct Metered<'a, T> {
    inner: &'a T,
    budget: &'a Budget,
}

impl<'a, T> Metered<'a, T> {
    /// Wraps `inner`.
    pub fn new(inner: &'a T, budget: &'a Budget) -> Self {
        Self { inner, budget }
    }
}

impl<D: SqlDb> SqlDb for Metered<'_, D> {
    async fn query(&self, stmt: &Statement) -> Result<Vec<Row>, StoreError> {
        self.budget.charge_statements(1);
        self.inner.query(stmt).await
    }
    async fn execute(&self, stmt: &Statement) -> Result<u64, StoreError> {
        self.budget.charge_statements(1);
        self.inner.execute(stmt).await
    }
    async fn batch(&self, stmts: &[Statement]) -> Result<Vec<u64>, StoreError> {
        self.budget.charge_statements(stmts.len() as u64);
        self.inner.batch(stmts).await
    }
}

impl<B: BlobStore> BlobStore for Metered<'_, B> {
    async fn put(&self, key: &str, bytes: Vec<u8>, meta: &BlobMeta) -> Result<(), StoreError> {
        self.budget.charge_subrequest();
        self.inner.put(key, bytes, meta).await
    }
    async fn put_if_absent(
        &self,
        key: &str,
        bytes: Vec<u8>,
        meta: &BlobMeta,
    ) -> Result<bool, StoreError> {
        self.budget.charge_subrequest();
        self.inner.put_if_absent(key, bytes, meta).await
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.budget.charge_subrequest();
        self.inner.get(key).await
    }
    async fn get_range(
        &self,
        key: &str,
        offset: u64,
        len: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.budget.charge_subrequest();
        self.inner.get_range(key, offset, len).await
    }
    async fn head(&self, key: &str) -> Result<Option<u64>, StoreError> {
        self.budget.charge_subrequest();
        self.inner.head(key).await
    }
    async fn delete(&self, keys: &[String]) -> Result<(), StoreError> {
        self.budget.charge_subrequest();
        self.inner.delete(keys).await
    }
    async fn multipart_begin(&self, key: &str, meta: &BlobMeta) -> Result<String, StoreError> {
        self.budget.charge_subrequest();
        self.inner.multipart_begin(key, meta).await
    }
    async fn multipart_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u16,
        bytes: Vec<u8>,
    ) -> Result<UploadedPart, StoreError> {
        self.budget.charge_subrequest();
        self.inner
            .multipart_part(key, upload_id, part_number, bytes)
            .await
    }
    async fn multipart_complete(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<UploadedPart>,
    ) -> Result<(), StoreError> {
        self.budget.charge_subrequest();
        self.inner.multipart_complete(key, upload_id, parts).await
    }
}

impl<H: HttpClient> HttpClient for Metered<'_, H> {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, UpstreamError> {
        self.budget.charge_subrequest();
        let resp = self.inner.send(req).await?;
        add(&self.budget.upstream_bytes, resp.body.len() as u64);
        Ok(resp)
    }
}

impl<Q: JobQueue> JobQueue for Metered<'_, Q> {
    async fn send(&self, msg: &JobMessage, delay_seconds: u32) -> Result<(), Error> {
        self.budget.charge_subrequest();
        self.inner.send(msg, delay_seconds).await
    }

    async fn nudge(&self) -> Result<(), Error> {
        self.budget.charge_subrequest();
        self.inner.nudge().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            statements: 100,
            subrequests: 50,
            wall_ms: 1_000,
        }
    }

    #[test]
    fn reservations_keep_the_control_reserve_and_are_given_back() {
        let b = Budget::new(limits(), EpochMs(0));
        let chunk = Cost {
            statements: 20,
            subrequests: 2,
        };
        let r1 = b.reserve(chunk, EpochMs(0)).expect("first fits");
        let _r2 = b
            .reserve(chunk, EpochMs(0))
            .expect("second fits: 40 + 60 kept = 100");
        assert!(
            b.reserve(chunk, EpochMs(0)).is_none(),
            "a third would eat the reserve"
        );
        drop(r1);
        assert!(b.reserve(chunk, EpochMs(0)).is_some(), "given back on drop");
        assert!(
            b.reserve(chunk, EpochMs(1_000)).is_none(),
            "nothing starts past the deadline"
        );
    }

    #[test]
    fn usage_past_80_percent_of_a_platform_limit_warns() {
        let calm = Usage {
            statements: 800,
            subrequests: 8_000,
            ..Usage::default()
        };
        assert!(calm.warnings().is_empty(), "80 % exactly is not past it");
        let hot = Usage {
            statements: 801,
            memory_bytes: 110_000_000,
            ..Usage::default()
        };
        let w = hot.warnings();
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].starts_with("D1 statements: 801 of the platform's 1000"));
        assert!(w[1].contains("memory"));
    }

    #[test]
    fn what_was_spent_counts_against_later_work() {
        let b = Budget::new(limits(), EpochMs(0));
        b.charge_statements(39);
        assert!(b
            .reserve(
                Cost {
                    statements: 1,
                    subrequests: 0
                },
                EpochMs(0)
            )
            .is_some());
        assert!(b
            .reserve(
                Cost {
                    statements: 2,
                    subrequests: 0
                },
                EpochMs(0)
            )
            .is_none());
        assert!(b.can_afford(Cost {
            statements: 61,
            subrequests: 0
        }));
        assert!(!b.can_afford(Cost {
            statements: 62,
            subrequests: 0
        }));
        assert!(b.could_ever_afford(Cost {
            statements: 100,
            subrequests: 50
        }));
        assert!(!b.could_ever_afford(Cost {
            statements: 0,
            subrequests: 51
        }));
    }
}
