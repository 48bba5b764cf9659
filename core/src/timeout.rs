//! Timeouts for every outbound call, as decorators over the ports.
//!
//! The Worker wraps its D1, R2 and Queues adapters in [`TimedDb`],
//! [`TimedBlobs`] and [`TimedQueue`], so no storage call or queue send can
//! hang an invocation. HTTP clients take their timeout
//! per request ([`crate::ports::HttpRequest::timeout_ms`]).

use std::future::Future;

use futures::future::{select, Either};

use crate::error::{Error, StoreError};
use crate::ports::{
    BlobMeta, BlobStore, Clock, JobMessage, JobQueue, Row, SqlDb, Statement, UploadedPart,
};

/// Runs `fut`, giving up after `ms`: `None` means it timed out.
pub async fn within<C: Clock, F: Future>(clock: &C, ms: u64, fut: F) -> Option<F::Output> {
    let sleep = clock.sleep(ms);
    futures::pin_mut!(fut, sleep);
    match select(fut, sleep).await {
        Either::Left((out, _)) => Some(out),
        Either::Right(_) => None,
    }
}

async fn timed<C: Clock, T>(
    clock: &C,
    ms: u64,
    what: &'static str,
    fut: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    within(clock, ms, fut)
        .await
        .unwrap_or(Err(StoreError::Timeout(what)))
}

/// A [`SqlDb`] whose every call fails with [`StoreError::Timeout`] past `ms`.
pub struct TimedDb<D, C> {
    inner: D,
    clock: C,
    ms: u64,
}

impl<D, C> TimedDb<D, C> {
    /// Wraps `inner`.
    pub fn new(inner: D, clock: C, ms: u64) -> Self {
        Self { inner, clock, ms }
    }

    /// The wrapped database.
    pub fn inner(&self) -> &D {
        &self.inner
    }
}

impl<D: SqlDb, C: Clock> SqlDb for TimedDb<D, C> {
    async fn query(&self, stmt: &Statement) -> Result<Vec<Row>, StoreError> {
        timed(
            &self.clock,
            self.ms,
            "database query",
            self.inner.query(stmt),
        )
        .await
    }
    async fn execute(&self, stmt: &Statement) -> Result<u64, StoreError> {
        timed(
            &self.clock,
            self.ms,
            "database statement",
            self.inner.execute(stmt),
        )
        .await
    }
    async fn batch(&self, stmts: &[Statement]) -> Result<Vec<u64>, StoreError> {
        timed(
            &self.clock,
            self.ms,
            "database batch",
            self.inner.batch(stmts),
        )
        .await
    }
}

/// A [`JobQueue`] whose sends fail with [`Error::Queue`] past `ms`: a
/// transient error, so the submit's outbox and the consumer's retry apply.
pub struct TimedQueue<Q, C> {
    inner: Q,
    clock: C,
    ms: u64,
}

impl<Q, C> TimedQueue<Q, C> {
    /// Wraps `inner`.
    pub fn new(inner: Q, clock: C, ms: u64) -> Self {
        Self { inner, clock, ms }
    }
}

impl<Q: JobQueue, C: Clock> JobQueue for TimedQueue<Q, C> {
    async fn send(&self, msg: &JobMessage, delay_seconds: u32) -> Result<(), Error> {
        within(&self.clock, self.ms, self.inner.send(msg, delay_seconds))
            .await
            .unwrap_or_else(|| Err(Error::Queue(format!("send timed out after {} ms", self.ms))))
    }

    async fn nudge(&self) -> Result<(), Error> {
        within(&self.clock, self.ms, self.inner.nudge())
            .await
            .unwrap_or_else(|| {
                Err(Error::Queue(format!(
                    "nudge timed out after {} ms",
                    self.ms
                )))
            })
    }
}

/// A [`BlobStore`] whose every call fails with [`StoreError::Timeout`] past
/// `ms`. It also counts its calls and the time spent in them (the API's
/// `Server-Timing`).
pub struct TimedBlobs<B, C> {
    inner: B,
    clock: C,
    ms: u64,
    calls: std::cell::Cell<u64>,
    spent_ms: std::cell::Cell<i64>,
}

impl<B, C> TimedBlobs<B, C> {
    /// Wraps `inner`.
    pub fn new(inner: B, clock: C, ms: u64) -> Self {
        Self {
            inner,
            clock,
            ms,
            calls: Default::default(),
            spent_ms: Default::default(),
        }
    }

    /// Calls made so far.
    pub fn calls(&self) -> u64 {
        self.calls.get()
    }

    /// Milliseconds spent in them so far.
    pub fn spent_ms(&self) -> i64 {
        self.spent_ms.get()
    }
}

impl<B, C: Clock> TimedBlobs<B, C> {
    /// Runs one R2 call under the timeout, counting it and its time: every
    /// call of the port does, and the producer's streaming reads of the
    /// raw bucket go through it too, so `Server-Timing` counts them all.
    pub async fn time<T>(
        &self,
        what: &'static str,
        fut: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let t0 = self.clock.now_ms();
        let out = timed(&self.clock, self.ms, what, fut).await;
        self.calls.set(self.calls.get() + 1);
        self.spent_ms
            .set(self.spent_ms.get() + (self.clock.now_ms() - t0).max(0));
        out
    }
}

impl<B: BlobStore, C: Clock> BlobStore for TimedBlobs<B, C> {
    async fn put(&self, key: &str, bytes: Vec<u8>, meta: &BlobMeta) -> Result<(), StoreError> {
        self.time("object put", self.inner.put(key, bytes, meta))
            .await
    }
    async fn put_if_absent(
        &self,
        key: &str,
        bytes: Vec<u8>,
        meta: &BlobMeta,
    ) -> Result<bool, StoreError> {
        let fut = self.inner.put_if_absent(key, bytes, meta);
        self.time("object put", fut).await
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.time("object get", self.inner.get(key)).await
    }
    async fn get_range(
        &self,
        key: &str,
        offset: u64,
        len: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let fut = self.inner.get_range(key, offset, len);
        self.time("object range get", fut).await
    }
    async fn head(&self, key: &str) -> Result<Option<u64>, StoreError> {
        self.time("object head", self.inner.head(key)).await
    }
    async fn delete(&self, keys: &[String]) -> Result<(), StoreError> {
        let fut = self.inner.delete(keys);
        self.time("object delete", fut).await
    }
    async fn multipart_begin(&self, key: &str, meta: &BlobMeta) -> Result<String, StoreError> {
        let fut = self.inner.multipart_begin(key, meta);
        self.time("multipart begin", fut).await
    }
    async fn multipart_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u16,
        bytes: Vec<u8>,
    ) -> Result<UploadedPart, StoreError> {
        let fut = self
            .inner
            .multipart_part(key, upload_id, part_number, bytes);
        self.time("multipart part", fut).await
    }
    async fn multipart_complete(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<UploadedPart>,
    ) -> Result<(), StoreError> {
        let fut = self.inner.multipart_complete(key, upload_id, parts);
        self.time("multipart complete", fut).await
    }
}
