//! The ports: small traits the services are generic over.
//!
//! Cloudflare adapters (D1, R2, Queues, Fetch) and native adapters (rusqlite,
//! memory, reqwest) implement the same traits. Traits use plain `async fn`
//! without `Send` bounds because JS-backed types are `!Send`.

use std::borrow::Cow;
use std::marker::PhantomData;

use serde::{Deserialize, Serialize};

use crate::domain::{EpochMs, JobId};
use crate::error::{Error, StoreError, UpstreamError};

/// A value bound to a SQL parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    /// SQL NULL.
    Null,
    /// An integer. D1 binds it as a JS number, exact below 2^53.
    Integer(i64),
    /// A float.
    Real(f64),
    /// Text.
    Text(String),
}

impl From<i64> for SqlValue {
    fn from(v: i64) -> Self {
        SqlValue::Integer(v)
    }
}
impl From<EpochMs> for SqlValue {
    fn from(t: EpochMs) -> Self {
        SqlValue::Integer(t.ms())
    }
}
impl From<f64> for SqlValue {
    fn from(v: f64) -> Self {
        SqlValue::Real(v)
    }
}
impl From<&str> for SqlValue {
    fn from(v: &str) -> Self {
        SqlValue::Text(v.to_owned())
    }
}
impl From<String> for SqlValue {
    fn from(v: String) -> Self {
        SqlValue::Text(v)
    }
}
impl<T: Into<SqlValue>> From<Option<T>> for SqlValue {
    fn from(v: Option<T>) -> Self {
        v.map_or(SqlValue::Null, Into::into)
    }
}

/// One SQL statement with its bound parameters. Every statement the system
/// runs is built in [`crate::store`].
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// SQL text with `?` placeholders.
    pub sql: Cow<'static, str>,
    /// Parameters, in order.
    pub params: Vec<SqlValue>,
}

/// A result row, column name to JSON value.
pub type Row = serde_json::Map<String, serde_json::Value>;

/// A SQL database: D1 in the Worker, SQLite natively.
pub trait SqlDb {
    /// Runs a query and returns its rows.
    async fn query(&self, stmt: &Statement) -> Result<Vec<Row>, StoreError>;
    /// Runs a statement and returns the number of rows it changed. D1
    /// counts rows its triggers changed too, so callers test zero against
    /// non-zero, never for an exact count.
    async fn execute(&self, stmt: &Statement) -> Result<u64, StoreError>;
    /// Runs statements in order as one transaction (one round trip); returns
    /// the rows changed by each.
    async fn batch(&self, stmts: &[Statement]) -> Result<Vec<u64>, StoreError>;
}

/// Custom metadata and content type of an object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobMeta {
    /// `Content-Type`.
    pub content_type: String,
    /// Custom metadata pairs.
    pub custom: Vec<(String, String)>,
}

/// A part uploaded in a multipart upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadedPart {
    /// 1-based part number.
    pub part_number: u16,
    /// The part's ETag.
    pub etag: String,
}

/// The most keys one [`BlobStore::delete`] takes: R2's bulk-delete limit.
pub const MAX_DELETE_KEYS: usize = 1000;

/// An object store: R2 in the Worker, memory natively.
pub trait BlobStore {
    /// Writes an object, replacing any.
    async fn put(&self, key: &str, bytes: Vec<u8>, meta: &BlobMeta) -> Result<(), StoreError>;
    /// Writes an object only if none exists; returns whether it wrote.
    async fn put_if_absent(
        &self,
        key: &str,
        bytes: Vec<u8>,
        meta: &BlobMeta,
    ) -> Result<bool, StoreError>;
    /// Reads a whole object.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Reads `len` bytes of an object from `offset` (fewer past its end).
    /// The default reads the whole object; R2 reads only the range.
    async fn get_range(
        &self,
        key: &str,
        offset: u64,
        len: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.get(key).await?.map(|all| {
            let start = (offset as usize).min(all.len());
            let end = start.saturating_add(len as usize).min(all.len());
            all[start..end].to_vec()
        }))
    }
    /// Whether an object exists, and its size.
    async fn head(&self, key: &str) -> Result<Option<u64>, StoreError>;
    /// Deletes objects, at most [`MAX_DELETE_KEYS`] in one call (R2's
    /// limit for a bulk delete); absent keys are not an error.
    async fn delete(&self, keys: &[String]) -> Result<(), StoreError>;
    /// Starts a multipart upload; returns its upload id.
    async fn multipart_begin(&self, key: &str, meta: &BlobMeta) -> Result<String, StoreError>;
    /// Uploads one part (at least 5 MiB except the last).
    async fn multipart_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u16,
        bytes: Vec<u8>,
    ) -> Result<UploadedPart, StoreError>;
    /// Completes a multipart upload.
    async fn multipart_complete(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<UploadedPart>,
    ) -> Result<(), StoreError>;
}

/// The message on the jobs queue: ids, never data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobMessage {
    /// The job to work on.
    pub job_id: JobId,
    /// Which continuation of the job this is (0 for the first message).
    #[serde(default)]
    pub hop: u32,
}

/// The jobs queue, and the nudge that wakes the dead-letter Worker.
pub trait JobQueue {
    /// Sends a message, visible after `delay_seconds`.
    async fn send(&self, msg: &JobMessage, delay_seconds: u32) -> Result<(), Error>;

    /// Tells the dead-letter Worker that notices wait in D1 (the notify
    /// queue). A Worker without that queue does nothing: the reaper's
    /// minute run delivers them anyway.
    async fn nudge(&self) -> Result<(), Error>;
}

/// An outbound HTTP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// Absolute URL.
    pub url: String,
    /// Request headers.
    pub headers: Vec<(String, String)>,
    /// Body, for POST.
    pub body: Option<Vec<u8>>,
    /// The call fails with [`UpstreamError::Timeout`] past this.
    pub timeout_ms: u64,
    /// The response body is read up to this many bytes; a longer one fails
    /// with [`UpstreamError::TooLarge`] while it is read, not after.
    pub max_body_bytes: u64,
}

/// An HTTP response, read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// The `Retry-After` header, if any.
    pub retry_after: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

/// An HTTP client with a timeout on every call: Fetch with an AbortSignal
/// in the Worker, reqwest natively.
pub trait HttpClient {
    /// Sends a request. Timeouts and connection failures are errors; any
    /// status is a response.
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, UpstreamError>;
}

/// Time and randomness, injected so tests control them.
pub trait Clock {
    /// Now, in UTC epoch milliseconds.
    fn now_ms(&self) -> EpochMs;
    /// Waits this long.
    async fn sleep(&self, ms: u64);
    /// 16 random bytes (for job ids).
    fn random_bytes(&self) -> [u8; 16];
}

/// The five ports of one deployment, named once: the services take a
/// [`crate::service::Deps`] over a `Platform` instead of one type parameter
/// (and one bound) per port.
///
/// [`Ports`] is the one implementor: any combination of adapters is a
/// platform, so the Worker's timed adapters, the native ones, the budget's
/// metered wrappers and a test's fault-injecting mocks need no
/// `impl Platform` of their own.
pub trait Platform {
    /// The SQL database.
    type Db: SqlDb;
    /// The object store.
    type Blobs: BlobStore;
    /// The jobs queue.
    type Queue: JobQueue;
    /// Outbound HTTP.
    type Http: HttpClient;
    /// Time and randomness.
    type Clock: Clock;
}

/// The [`Platform`] made of the adapters `D`, `B`, `Q`, `H` and `C`. A type
/// name only, never a value: the adapters themselves are borrowed by
/// [`crate::service::Deps`].
pub struct Ports<D, B, Q, H, C>(PhantomData<(D, B, Q, H, C)>);

impl<D, B, Q, H, C> Platform for Ports<D, B, Q, H, C>
where
    D: SqlDb,
    B: BlobStore,
    Q: JobQueue,
    H: HttpClient,
    C: Clock,
{
    type Db = D;
    type Blobs = B;
    type Queue = Q;
    type Http = H;
    type Clock = C;
}
