//! The API's wire types: every body the producer takes or answers, as a
//! Rust type, shared by the producer and the CLI.
//!
//! Each derives `Serialize` and `Deserialize` (what goes on the wire, both
//! ways) and `utoipa::ToSchema` (what the OpenAPI document says about it),
//! so the three cannot drift: the producer's `openapi` module assembles the
//! document from these types and its route annotations, and
//! `producer/openapi.json` is that output. The CLI decodes the same types.
//!
//! - [`JobId`], [`Site`], [`PointName`]: the identifiers, parsed once.
//! - [`JobStatus`], [`PlanChoice`], [`Plan`]: the enums a job view names.
//! - [`Problem`], [`FieldError`], [`ValidationError`]: what a rejected request is told.
//! - [`de`]: numbers as D1 and SQLite answer them.
#![deny(missing_docs)]

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub mod de;
mod ids;
mod plan;
mod problem;
mod status;

pub use ids::{JobId, PointName, Site, MAX_POINT_BYTES};
pub use plan::{Plan, PlanChoice};
pub use problem::{FieldError, Problem, ProblemType, QuotaProblem, ValidationError};
pub use status::JobStatus;
pub use tsp_format::aggregate::Resolution;

/// Bucket width.
// The OpenAPI schema of [`Resolution`]: the engine's type carries none, as
// `tsp-format` does not depend on utoipa.
#[derive(ToSchema)]
#[schema(as = Resolution)]
#[allow(dead_code)]
pub enum ResolutionSchema {
    /// One UTC hour.
    #[schema(rename = "1h")]
    Hour,
    /// One UTC day.
    #[schema(rename = "1d")]
    Day,
}

/// The pattern of a job's status URL.
pub const JOB_URL_PATTERN: &str = "^/v1/jobs/[0-9a-f]{32}$";
/// The pattern of a list cursor (`created_at.job_id`, or a bare time).
pub const CURSOR_PATTERN: &str = "^-?[0-9]{1,19}(\\.[0-9a-f]{32})?$";
/// The pattern of a dead-letter archive key.
pub const ARCHIVE_KEY_PATTERN: &str =
    "^dead-letters/[0-9]{4}/[0-9]{2}/[0-9]{2}/[0-9a-f]{32}-[0-9]+\\.json$";
/// Largest page of `GET /v1/jobs` and `GET /v1/dead-letters`.
pub const MAX_LIST_LIMIT: i64 = 100;
/// Largest page of `GET /v1/aggregates`.
pub const MAX_AGG_LIMIT: i64 = 1_000;

/// `GET /healthz`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: HealthStatus,
}

/// The only health status.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Alive.
    Ok,
}

/// A job submission (`POST /v1/jobs`): a range, or the last `days`.
///
/// The producer parses the raw body with `JobRequest::parse`, which names
/// every invalid field; this type is the body's documented shape.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum JobSubmission {
    /// An explicit range.
    Range(RangeSubmission),
    /// The whole UTC days before today.
    Days(DaysSubmission),
}

/// A submission with `start` and `end`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RangeSubmission {
    /// The site.
    #[schema(value_type = Site)]
    pub site: String,
    /// At most `MAX_POINTS` (100) points; duplicates are merged.
    #[schema(value_type = Vec<PointName>, min_items = 1, max_items = 100)]
    pub points: Vec<String>,
    /// Range start (inclusive), not before 1970.
    #[schema(format = DateTime)]
    pub start: String,
    /// Range end (exclusive), not in the future, at most 366 days after `start`.
    #[schema(format = DateTime)]
    pub end: String,
    /// Skip coalescing with an identical job.
    #[serde(default)]
    #[schema(default = false)]
    pub force: bool,
    /// How to fetch from the upstream (default: the deployment's
    /// `UPSTREAM_PLAN`). The result does not depend on it.
    #[serde(default)]
    pub plan: Option<PlanChoice>,
    /// Where to POST the job view, signed, when the job ends: `https`, its
    /// origin on the deployment's `CALLBACK_ALLOWED_ORIGINS`.
    #[serde(default)]
    #[schema(max_length = 2048, example = "https://hooks.example.com/tsp")]
    pub callback_url: Option<String>,
}

/// A submission with `days`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DaysSubmission {
    /// The site.
    #[schema(value_type = Site)]
    pub site: String,
    /// At most `MAX_POINTS` (100) points; duplicates are merged.
    #[schema(value_type = Vec<PointName>, min_items = 1, max_items = 100)]
    pub points: Vec<String>,
    /// The whole UTC days before today.
    #[schema(minimum = 1, maximum = 366)]
    pub days: u32,
    /// Skip coalescing with an identical job.
    #[serde(default)]
    #[schema(default = false)]
    pub force: bool,
    /// How to fetch from the upstream (default: the deployment's
    /// `UPSTREAM_PLAN`). The result does not depend on it.
    #[serde(default)]
    pub plan: Option<PlanChoice>,
    /// Where to POST the job view, signed, when the job ends: `https`, its
    /// origin on the deployment's `CALLBACK_ALLOWED_ORIGINS`.
    #[serde(default)]
    #[schema(max_length = 2048, example = "https://hooks.example.com/tsp")]
    pub callback_url: Option<String>,
}

/// A job's progress.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Progress {
    /// Chunks checkpointed.
    #[schema(minimum = 0)]
    pub chunks_done: i64,
    /// Chunks in the plan (one window of whole UTC days within a month,
    /// every point of the job).
    #[schema(minimum = 0)]
    pub chunks_total: i64,
    /// Samples in checkpointed chunks.
    #[schema(minimum = 0)]
    pub samples: i64,
    /// `chunks_done / chunks_total`, in percent, one decimal.
    #[schema(minimum = 0, maximum = 100)]
    pub percent: f64,
}

/// A job's callback: where it goes, and how its delivery stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CallbackStatus {
    /// The URL the job view is POSTed to when the job ends.
    pub url: String,
    /// `pending` (due, or being retried), `sent`, or `failed` (refused with
    /// a 4xx, or its tries spent); null until the job ends.
    #[schema(required = true)]
    pub state: Option<String>,
    /// Deliveries tried for the current end state.
    #[schema(minimum = 0)]
    pub attempts: i64,
    /// Why the last try failed.
    #[schema(required = true)]
    pub error: Option<String>,
}

/// Where a completed job's result is.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ResultLink {
    /// The download URL.
    #[schema(pattern = "^/v1/jobs/[0-9a-f]{32}/result$")]
    pub url: String,
    /// The object's size.
    #[schema(minimum = 0, required = true)]
    pub bytes: Option<i64>,
    /// SHA-256 (hex) of the object.
    #[schema(pattern = "^[0-9a-f]{64}$", required = true)]
    pub sha256: Option<String>,
    /// The object's media type.
    #[serde(default)]
    #[schema(required = true)]
    pub content_type: ResultContentType,
    /// The object's encoding.
    #[serde(default)]
    #[schema(required = true)]
    pub content_encoding: ResultEncoding,
    /// The same rows as Parquet, for in-place queries (DuckDB's httpfs,
    /// duckdb-wasm, pyarrow over HTTP); null when the job was written
    /// without it (`PARQUET_RESULTS=0`).
    #[serde(default)]
    #[schema(required = true)]
    pub parquet: Option<ParquetLink>,
}

/// Where a completed job's Parquet file is.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ParquetLink {
    /// The download URL: `HEAD`, and `Range` reads (suffix ranges too).
    #[schema(pattern = "^/v1/jobs/[0-9a-f]{32}/result\\.parquet$")]
    pub url: String,
    /// The file's size.
    #[schema(minimum = 0)]
    pub bytes: i64,
}

/// The literal behind both media types below: a serde attribute takes no
/// constant, and `concat!` only literals.
macro_rules! result_media_type {
    () => {
        "application/vnd.tsp.columnar+msgpack"
    };
}

/// The result object's media type: columnar MessagePack (the object's
/// stored `Content-Type`, and [`ResultContentType::Columnar`] on the wire).
pub const RESULT_MEDIA_TYPE: &str = result_media_type!();

/// The media type of the binary result download: the object as stored, a
/// gzip stream (the `+gzip` structured suffix).
pub const RESULT_GZIP_MEDIA_TYPE: &str = concat!(result_media_type!(), "+gzip");

/// Parquet's media type (registered with IANA in 2024).
pub const PARQUET_MEDIA_TYPE: &str = "application/vnd.apache.parquet";

/// The result object's media type.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema)]
pub enum ResultContentType {
    /// Columnar MessagePack.
    #[default]
    // Must equal `RESULT_MEDIA_TYPE` (a test checks it).
    #[serde(rename = "application/vnd.tsp.columnar+msgpack")]
    Columnar,
}

/// The result object's encoding.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ResultEncoding {
    /// A multi-member gzip stream.
    #[default]
    Gzip,
}

/// What a job waits for, outside it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Waiting {
    /// What it waits for (`upstream`: the upstream's circuit is open).
    #[schema(required = true)]
    pub r#for: Option<String>,
    /// When its next delivery is due.
    #[schema(format = DateTime)]
    pub until: String,
}

/// A job's status document (`GET /v1/jobs/{id}`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = Job)]
pub struct JobView {
    /// The job id.
    pub job_id: JobId,
    /// Its status.
    pub status: JobStatus,
    /// The site.
    #[schema(value_type = Site)]
    pub site: String,
    /// Sorted, unique points.
    #[schema(value_type = Vec<PointName>, min_items = 1)]
    pub points: Vec<String>,
    /// Range start (inclusive).
    #[schema(format = DateTime)]
    pub start: String,
    /// Range end (exclusive).
    #[schema(format = DateTime)]
    pub end: String,
    /// Deliveries claimed so far.
    #[schema(minimum = 0)]
    pub attempts: i64,
    /// Deliveries in a row that made no progress; the job dies of transient
    /// errors at `MAX_STALLED_DELIVERIES`. Progress resets it; waiting out an
    /// open upstream circuit does not count.
    #[serde(default)]
    #[schema(minimum = 0, required = true)]
    pub stalled_deliveries: i64,
    /// Progress.
    pub progress: Progress,
    /// The last error.
    #[schema(required = true)]
    pub last_error: Option<String>,
    /// Accepted at.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Last changed at.
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// First claimed at.
    #[schema(format = DateTime, required = true)]
    pub started_at: Option<String>,
    /// Reached a terminal state at.
    #[schema(format = DateTime, required = true)]
    pub finished_at: Option<String>,
    /// This document's URL.
    #[schema(pattern = "^/v1/jobs/[0-9a-f]{32}$")]
    pub status_url: String,
    /// Set once the job is completed.
    #[schema(required = true)]
    pub result: Option<ResultLink>,
    /// Set while the job waits for something outside it: the upstream's
    /// circuit is open. `until` is when its next delivery is due.
    #[serde(default)]
    #[schema(required = true)]
    pub waiting: Option<Waiting>,
    /// How the job fetches from the upstream, and what it has cost.
    #[serde(default)]
    #[schema(required = true)]
    pub upstream: UpstreamUse,
    /// What it read from the shared sample store.
    #[serde(default)]
    #[schema(required = true)]
    pub store: StoreUse,
    /// Points that yielded no sample over the whole range (set once the
    /// job is completed): a name the upstream does not know, or a point
    /// that reported nothing.
    #[serde(default)]
    #[schema(value_type = Option<Vec<PointName>>, required = true)]
    pub points_without_data: Option<Vec<String>>,
    /// Its callback, if the request gave one.
    #[serde(default)]
    #[schema(required = true)]
    pub callback: Option<CallbackStatus>,
}

/// A job's use of the upstream.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct UpstreamUse {
    /// What the request asked for.
    pub plan_requested: PlanChoice,
    /// What the consumer chose at its first claim (`null` until then).
    #[schema(required = true)]
    pub plan: Option<Plan>,
    /// Response body bytes of its committed windows.
    #[schema(minimum = 0)]
    pub bytes: i64,
    /// Requests of its committed windows.
    #[schema(minimum = 0)]
    pub requests: i64,
    /// Samples of its committed windows fetched from the upstream.
    #[serde(default)]
    #[schema(minimum = 0)]
    pub samples: i64,
    /// Committed windows that fetched from the upstream.
    #[serde(default)]
    #[schema(minimum = 0)]
    pub windows: i64,
}

/// What a job read from the deployment's shared sample store of settled
/// upstream data, over its committed windows (a window that read some of
/// its span from the store and fetched the rest counts in both).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema)]
pub struct StoreUse {
    /// Samples read from the store.
    #[schema(minimum = 0)]
    pub samples: i64,
    /// Committed windows that read from the store.
    #[schema(minimum = 0)]
    pub windows: i64,
}

/// What an operator's refresh of a site's range removed from the sample
/// store: later jobs fetch that range from the upstream again.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StoreRefresh {
    /// The site.
    #[schema(value_type = Site)]
    pub site: String,
    /// Start of the range (RFC 3339).
    pub from: String,
    /// End of the range, exclusive (RFC 3339).
    pub to: String,
    /// Store entries that overlapped it, now gone.
    #[schema(minimum = 0)]
    pub entries_removed: u64,
}

/// A site an operator paused: its jobs wait, and no upstream call is made
/// for it, until it is resumed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SitePause {
    /// The site.
    #[schema(value_type = Site)]
    pub site: String,
    /// Paused since (RFC 3339).
    pub paused_at: String,
    /// The operator who paused it.
    pub paused_by: String,
    /// Why (free text; may be empty).
    pub reason: String,
}

/// The paused sites.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SitePauses {
    /// Oldest pause first.
    pub pauses: Vec<SitePause>,
}

/// A site resumed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SiteResumed {
    /// The site.
    #[schema(value_type = Site)]
    pub site: String,
    /// Whether it was paused.
    pub was_paused: bool,
}

/// Which dead jobs an operator retries in bulk: each filter optional,
/// every owner's jobs.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkRetryRequest {
    /// Only jobs of this site.
    #[serde(default)]
    #[schema(value_type = Option<Site>)]
    pub site: Option<String>,
    /// Only jobs whose last error contains this text.
    #[serde(default)]
    #[schema(max_length = 200)]
    pub error_contains: Option<String>,
    /// Only jobs that died at or after this (RFC 3339).
    #[serde(default)]
    #[schema(format = DateTime)]
    pub from: Option<String>,
    /// Only jobs that died before this (RFC 3339).
    #[serde(default)]
    #[schema(format = DateTime)]
    pub to: Option<String>,
    /// List what would be retried, and change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// At most this many (1 to 100, default 100).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// A dead job an operator's filter matched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeadMatch {
    /// The job.
    pub job_id: JobId,
    /// Its owner.
    pub owner: String,
    /// Its site.
    #[schema(value_type = Site)]
    pub site: String,
    /// Why it died.
    pub last_error: Option<String>,
    /// When it died (RFC 3339).
    pub finished_at: Option<String>,
}

/// What a bulk retry matched and did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BulkRetry {
    /// Whether it only listed.
    pub dry_run: bool,
    /// The jobs the filter matched (oldest death first).
    pub matched: Vec<DeadMatch>,
    /// How many were requeued (0 in a dry run).
    #[schema(minimum = 0)]
    pub retried: u64,
}

/// The deployment's shared sample store of settled upstream data.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema)]
pub struct SampleStore {
    /// Entries (R2 objects) in it.
    #[schema(minimum = 0)]
    pub entries: u64,
    /// Their bytes.
    #[schema(minimum = 0)]
    pub bytes: u64,
    /// `STORE_MAX_BYTES`.
    #[schema(minimum = 0)]
    pub max_bytes: u64,
    /// Windows with a settled span that read it.
    #[schema(minimum = 0)]
    pub hits: u64,
    /// Windows with a settled span that did not (nothing stored yet, `force`).
    #[schema(minimum = 0)]
    pub misses: u64,
    /// `hits / (hits + misses)`, 0 before any.
    pub hit_ratio: f64,
    /// Upstream bytes the samples read from it cost when they were fetched.
    #[schema(minimum = 0)]
    pub upstream_bytes_saved: u64,
    /// Entries evicted to stay under `max_bytes`.
    #[schema(minimum = 0)]
    pub evicted: u64,
}

/// The answer to a submission or a retry: the job, and a note.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SubmittedJob {
    /// The job.
    #[serde(flatten)]
    pub job: JobView,
    /// Why the answer is not a plain new queued job (an existing job, or a
    /// queue send that the reaper will retry).
    #[schema(required = true)]
    pub note: Option<String>,
}

/// A dead job in `GET /v1/dead-letters`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeadLetter {
    /// The job (always `failed_permanent`).
    #[serde(flatten)]
    pub job: JobView,
    /// Its archive's key in R2.
    #[schema(
        pattern = "^dead-letters/[0-9]{4}/[0-9]{2}/[0-9]{2}/[0-9a-f]{32}-[0-9]+\\.json$",
        required = true
    )]
    pub archive_key: Option<String>,
    /// Its archive.
    #[schema(pattern = "^/v1/jobs/[0-9a-f]{32}/archive$")]
    pub archive_url: String,
    /// Where to queue it again.
    #[schema(pattern = "^/v1/jobs/[0-9a-f]{32}/retry$")]
    pub retry_url: String,
}

/// A page of jobs.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobList {
    /// The jobs, newest first.
    #[schema(max_items = 100)]
    pub jobs: Vec<JobView>,
    /// `cursor` of the next page; null on the last page.
    #[schema(pattern = "^-?[0-9]{1,19}(\\.[0-9a-f]{32})?$", required = true)]
    pub next_cursor: Option<String>,
}

/// A page of dead letters.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeadLetterList {
    /// The dead jobs, newest first.
    #[schema(max_items = 100)]
    pub dead_letters: Vec<DeadLetter>,
    /// `cursor` of the next page; null on the last page.
    #[schema(pattern = "^-?[0-9]{1,19}(\\.[0-9a-f]{32})?$", required = true)]
    pub next_cursor: Option<String>,
}

/// `GET /v1/jobs/{id}/archive`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ArchiveResponse {
    /// The archive's key in R2.
    #[schema(pattern = "^dead-letters/[0-9]{4}/[0-9]{2}/[0-9]{2}/[0-9a-f]{32}-[0-9]+\\.json$")]
    pub key: String,
    /// The archive as stored.
    #[schema(value_type = DeadJobArchive)]
    pub archive: serde_json::Value,
}

/// A dead job's archive, as the dead-letter role stores it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct DeadJobArchive {
    kind: ArchiveKind,
    #[schema(format = DateTime)]
    archived_at: String,
    reason: String,
    /// The queue message that failed, as received.
    #[schema(value_type = Value)]
    message: serde_json::Value,
    job: ArchivedJob,
    events: Vec<ArchivedEvent>,
}

/// The only archive kind served.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ArchiveKind {
    /// A job's archive.
    DeadJob,
}

/// The job row in an archive (other fields of the row follow these).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct ArchivedJob {
    id: JobId,
    owner: String,
    status: JobStatus,
}

/// One status change in an archive.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct ArchivedEvent {
    /// Epoch ms.
    at: i64,
    status: JobStatus,
    #[schema(minimum = 0)]
    attempt: i64,
    #[schema(required = true)]
    detail: Option<String>,
}

/// One stored bucket of one point.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AggregateRow {
    /// Bucket start, epoch ms (UTC).
    #[serde(deserialize_with = "crate::de::int")]
    pub bucket_start: i64,
    /// Samples in the bucket.
    #[serde(deserialize_with = "crate::de::int")]
    #[schema(minimum = 0)]
    pub count: i64,
    /// Least finite numeric value.
    #[schema(required = true)]
    pub min: Option<f64>,
    /// Greatest finite numeric value.
    #[schema(required = true)]
    pub max: Option<f64>,
    /// Sum of the finite numeric values.
    #[schema(required = true)]
    pub sum: Option<f64>,
    /// Their mean.
    #[schema(required = true)]
    pub mean: Option<f64>,
    /// Their population standard deviation.
    #[schema(required = true)]
    pub stddev: Option<f64>,
    /// Time of the first sample, epoch ms.
    #[serde(default, deserialize_with = "crate::de::opt_int")]
    #[schema(required = true)]
    pub first_ts: Option<i64>,
    /// Its value, if numeric.
    #[schema(required = true)]
    pub first_value: Option<f64>,
    /// Time of the last sample, epoch ms.
    #[serde(default, deserialize_with = "crate::de::opt_int")]
    #[schema(required = true)]
    pub last_ts: Option<i64>,
    /// Its value, if numeric.
    #[schema(required = true)]
    pub last_value: Option<f64>,
    /// Samples whose value is not a number.
    #[serde(deserialize_with = "crate::de::int")]
    #[schema(minimum = 0)]
    pub non_numeric: i64,
    /// Numeric samples that are not finite.
    #[serde(deserialize_with = "crate::de::int")]
    #[schema(minimum = 0)]
    pub non_finite: i64,
    /// The job that wrote this bucket covered it only in part (its range
    /// starts or ends inside the bucket). A partial row never replaces a
    /// complete one.
    #[serde(deserialize_with = "de_flag")]
    pub partial: bool,
}

/// `partial` is stored as 0/1.
fn de_flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(crate::de::int::<D, i64>(d)? != 0)
}

/// `GET /v1/aggregates`: a page of buckets.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Aggregates {
    /// The site.
    #[schema(value_type = Site)]
    pub site: String,
    /// The point.
    #[schema(value_type = PointName)]
    pub point: String,
    /// The resolution.
    #[schema(value_type = ResolutionSchema)]
    pub resolution: Resolution,
    /// The buckets, oldest first.
    #[schema(max_items = 1000)]
    pub rows: Vec<AggregateRow>,
    /// `from` of the next page; null on the last page.
    #[schema(format = DateTime, required = true)]
    pub next_from: Option<String>,
}

/// `GET /v1/series`: chart-ready series of several points, at most two
/// values per pixel (M4: each pixel bucket's first, lowest, highest and
/// last value), drawn from stored hourly or daily buckets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Series {
    /// The site.
    #[schema(value_type = Site)]
    pub site: String,
    /// Start of the range, floored to a bucket start (RFC 3339).
    pub from: String,
    /// End of the range, exclusive (RFC 3339).
    pub to: String,
    /// Pixels asked for.
    #[schema(minimum = 1, maximum = 10000)]
    pub width: u32,
    /// What it was drawn from: the stored hourly (`1h`) or daily (`1d`)
    /// buckets, or the samples themselves (`raw`, short ranges).
    pub resolution: SeriesResolution,
    /// Milliseconds per pixel bucket (a whole number of buckets; a pixel
    /// bucket is two pixels wide).
    pub pixel_ms: i64,
    /// Epoch milliseconds of `from`: every `t` counts seconds after it.
    pub t0: i64,
    /// One series per point asked for, in the order asked.
    pub series: Vec<PointSeries>,
}

/// What a chart series was drawn from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum SeriesResolution {
    /// The stored hourly buckets.
    #[serde(rename = "1h")]
    Hour,
    /// The stored daily buckets.
    #[serde(rename = "1d")]
    Day,
    /// The samples, read from the caller's result objects.
    #[serde(rename = "raw")]
    Raw,
}

impl From<Resolution> for SeriesResolution {
    fn from(r: Resolution) -> Self {
        match r {
            Resolution::Hour => SeriesResolution::Hour,
            Resolution::Day => SeriesResolution::Day,
        }
    }
}

/// One point's chart series: times and values, in time order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PointSeries {
    /// The point.
    #[schema(value_type = PointName)]
    pub point: String,
    /// Seconds after `t0`.
    pub t: Vec<u32>,
    /// Values (single precision: what a chart can draw).
    pub v: Vec<f32>,
    /// A text point's states as they change (from samples only: stored
    /// buckets keep no text); null when the point had no text sample.
    #[serde(default)]
    #[schema(required = true)]
    pub states: Option<States>,
}

/// A text point's state changes: each new state and when it began.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct States {
    /// Seconds after `t0`.
    pub t: Vec<u32>,
    /// The state from then on.
    pub v: Vec<String>,
}

/// `GET /v1/stats`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Stats {
    /// The caller's jobs by status.
    pub counts: StatusCounts,
    /// Age of the oldest queued job; null when none is queued.
    #[schema(required = true)]
    pub oldest_queued_age_ms: Option<i64>,
    /// The last hour's outcomes.
    pub last_hour: LastHour,
    /// Jobs dead-lettered in the last 24 hours.
    #[schema(minimum = 0)]
    pub dead_letters_last_24h: i64,
    /// Dead jobs whose alert the webhook refused (a 4xx): recorded, never retried.
    #[schema(minimum = 0)]
    pub alerts_refused: i64,
    /// Consumer invocations in the last 24 hours (all owners share the
    /// consumer): how many, and the most any one used of each platform limit.
    pub invocations_last_24h: InvocationMaxima,
    /// Today's usage against the quota.
    pub usage_today: UsageToday,
    /// Durations of the jobs finished in the last 24 hours.
    pub duration_ms_last_24h: Durations,
    /// The deployment's shared sample store (every owner's jobs use it).
    #[serde(default)]
    pub sample_store: SampleStore,
}

/// Jobs by status.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[allow(missing_docs)]
pub struct StatusCounts {
    #[schema(minimum = 0)]
    pub queued: i64,
    #[schema(minimum = 0)]
    pub processing: i64,
    #[schema(minimum = 0)]
    pub completed: i64,
    #[schema(minimum = 0)]
    pub failed: i64,
    #[schema(minimum = 0)]
    pub failed_permanent: i64,
    #[schema(minimum = 0)]
    pub cancelled: i64,
}

/// The last hour's outcomes.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LastHour {
    /// Jobs completed.
    #[schema(minimum = 0)]
    pub completed: i64,
    /// Jobs dead-lettered.
    #[schema(minimum = 0)]
    pub failed_permanent: i64,
    /// Samples in the completed jobs.
    #[schema(minimum = 0)]
    pub samples: i64,
    /// `failed_permanent / (completed + failed_permanent)`, 0 when none finished.
    #[schema(minimum = 0, maximum = 1)]
    pub failure_rate: f64,
}

/// The most one consumer invocation used of each limit.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[allow(missing_docs)]
pub struct InvocationMaxima {
    #[schema(minimum = 0)]
    pub invocations: i64,
    #[schema(minimum = 0)]
    pub max_d1_statements: i64,
    #[schema(minimum = 0)]
    pub max_subrequests: i64,
    #[schema(minimum = 0)]
    pub max_wasm_memory_bytes: i64,
    #[schema(minimum = 0)]
    pub max_wall_ms: i64,
    /// Invocations that logged a warning at 80 % of a limit.
    #[schema(minimum = 0)]
    pub limit_warnings: i64,
}

/// Today's usage.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UsageToday {
    /// Chunks this owner ordered today (UTC), force included.
    #[schema(minimum = 0)]
    pub chunks: i64,
    /// `DAILY_CHUNK_QUOTA`; null when there is none.
    #[schema(required = true)]
    pub quota: Option<u64>,
}

/// Job durations.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Durations {
    /// Jobs measured.
    #[schema(minimum = 0)]
    pub jobs: i64,
    /// Median, ms.
    #[schema(required = true)]
    pub p50: Option<i64>,
    /// 95th percentile, ms.
    #[schema(required = true)]
    pub p95: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_aggregate_row_decodes_from_d1_floats_and_sqlite_integers() {
        for raw in [
            r#"{"bucket_start":3600000.0,"count":2.0,"min":1.5,"max":2.5,"sum":4.0,"mean":2.0,"stddev":0.5,"first_ts":3600000.0,"first_value":1.5,"last_ts":3660000.0,"last_value":2.5,"non_numeric":0.0,"non_finite":0.0,"partial":1.0}"#,
            r#"{"bucket_start":3600000,"count":2,"min":1.5,"max":2.5,"sum":4.0,"mean":2.0,"stddev":0.5,"first_ts":3600000,"first_value":1.5,"last_ts":3660000,"last_value":2.5,"non_numeric":0,"non_finite":0,"partial":1}"#,
        ] {
            let row: AggregateRow = serde_json::from_str(raw).unwrap();
            assert_eq!(row.bucket_start, 3_600_000);
            assert_eq!(row.count, 2);
            assert!(row.partial);
            let back = serde_json::to_string(&row).unwrap();
            assert!(
                back.starts_with(r#"{"bucket_start":3600000,"count":2,"#),
                "{back}"
            );
        }
    }

    #[test]
    fn the_result_media_type_is_what_the_job_view_names() {
        let named = serde_json::to_value(ResultContentType::Columnar).unwrap();
        assert_eq!(named, RESULT_MEDIA_TYPE);
        assert_eq!(
            RESULT_GZIP_MEDIA_TYPE,
            "application/vnd.tsp.columnar+msgpack+gzip"
        );
    }

    #[test]
    fn a_flattened_view_keeps_the_job_fields_at_the_top() {
        let view = JobView {
            job_id: JobId::from_bytes([7; 16]),
            status: JobStatus::Queued,
            site: "s".into(),
            points: vec!["p".into()],
            start: "a".into(),
            end: "b".into(),
            attempts: 0,
            stalled_deliveries: 0,
            progress: Progress {
                chunks_done: 0,
                chunks_total: 1,
                samples: 0,
                percent: 0.0,
            },
            last_error: None,
            created_at: "c".into(),
            updated_at: "d".into(),
            started_at: None,
            finished_at: None,
            status_url: "/v1/jobs/x".into(),
            result: None,
            waiting: None,
            upstream: UpstreamUse {
                plan_requested: PlanChoice::Auto,
                plan: None,
                bytes: 0,
                requests: 0,
                samples: 0,
                windows: 0,
            },
            store: StoreUse::default(),
            points_without_data: None,
            callback: None,
        };
        let v = serde_json::to_value(SubmittedJob {
            job: view,
            note: None,
        })
        .unwrap();
        assert_eq!(v["status"], "queued");
        assert!(v["note"].is_null() && v["result"].is_null());
    }
}
