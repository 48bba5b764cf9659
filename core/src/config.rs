//! Configuration, read from the Worker's vars and secrets (or a map in tests).

pub use secrecy::{ExposeSecret, SecretString};

use crate::error::ValidationError;

/// The page sizes ACE accepts on `/timeseries/paginated`; any other is a
/// 400 there. `UPSTREAM_PAGE_SIZE` must be one of them (or 0), and
/// [`crate::plan::page_size`] picks among them.
pub const PAGE_SIZES: [u32; 12] = [
    3, 10, 50, 100, 500, 1_000, 5_000, 10_000, 50_000, 100_000, 300_000, 500_000,
];

/// One setting: its var or secret name, its default as written in
/// `wrangler.toml` and the README, whether it is a secret, and what it does.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// The var or secret name.
    pub key: &'static str,
    /// The default, as a var would spell it (empty: none).
    pub default: &'static str,
    /// A secret (`wrangler secret put`), never a `[vars]` entry or a log line.
    pub secret: bool,
    /// What it does (the README's configuration table is generated from it).
    pub doc: &'static str,
}

const fn var(key: &'static str, default: &'static str, doc: &'static str) -> Setting {
    Setting {
        key,
        default,
        secret: false,
        doc,
    }
}

const fn secret(key: &'static str, doc: &'static str) -> Setting {
    Setting {
        key,
        default: "",
        secret: true,
        doc,
    }
}

/// Every setting, in one place: [`Config::from_lookup`] reads exactly
/// these, the adapters fetch exactly these, and a test holds the README's
/// table and `wrangler.toml` to them.
pub const SETTINGS: &[Setting] = &[
    var("ACE_API_URL", "", "upstream base URL"),
    secret("ACE_API_TOKEN", "upstream bearer token"),
    var("UPSTREAM_PAGE_SIZE", "0", "rows per page of a site walk, one of ACE's sizes (3, 10, 50, 100, 500, 1000, 5000, 10000, 50000, 100000, 300000, 500000); 0 picks the largest that keeps a page under `UPSTREAM_MAX_PAGE_BYTES` / 4"),
    var("UPSTREAM_PLAN", "auto", "how a job fetches: `site` (one time-major walk of the site's pages per window, keeping the job's points), `point` (one request per point and window), or `auto` (whichever the site's size says costs less; a request's `plan` overrides it)"),
    var("UPSTREAM_SAMPLE_SECS", "300", "the upstream's sample interval assumed when sizing windows and choosing a plan (ACE returns 5-minute data from both endpoints)"),
    var("WINDOW_MAX_SAMPLES", "250000", "samples one window of a job should hold at most (all its points together), at `UPSTREAM_SAMPLE_SECS`; windows are whole UTC days inside a month, so a job of few points gets month windows"),
    var("SITE_INFO_TTL_MS", "86400000", "how long a site's point count from `configured_points` is cached in D1"),
    var("UPSTREAM_REQUEST_COST_BYTES", "2097152", "what `auto` counts one upstream request as, in bytes downloaded: its latency times the bandwidth (2 MiB: 200 ms at 10 MB/s)"),
    var("UPSTREAM_TIMEOUT_MS", "30000", "timeout per upstream request (AbortSignal)"),
    var("UPSTREAM_CONCURRENCY", "6", "chunks fetched at once (capped at 6)"),
    var("RETRY_JITTER", "0.5", "the share of each retry's backoff wait that is random (0 to 1): up to that share is taken off, so jobs that fail together do not retry together"),
    var("PAGE_RETRY_MS", "15000", "how long one page's transient failures are retried in place, honouring `Retry-After`; past it (or for a longer `Retry-After`) the job is rescheduled with a delayed message"),
    var("MALFORMED_LIMIT", "3", "malformed bodies of one page before the failure is permanent"),
    var("MAX_STALLED_DELIVERIES", "5", "deliveries in a row without progress (no chunk checkpointed) after which a job dies of transient errors other than the upstream's (storage, the queue); progress resets the count. The upstream's are bounded by time instead (`MAX_UPSTREAM_WAIT_MS`)"),
    var("MAX_UPSTREAM_WAIT_MS", "86400000", "how long a job waits out transient upstream failures (5xx, 429, timeouts, dropped connections, an open circuit) since its last progress before it dies (24 h): until then it waits in delayed messages with capped exponential backoff and jitter, and its view shows `waiting`"),
    var("CIRCUIT_THRESHOLD", "3", "messages in a row ending with the upstream failing that open the upstream circuit, once spread over `CIRCUIT_SPREAD_MS`, from one site or many; a page from any site ends the run (a rejected credential opens it at once)"),
    var("CIRCUIT_SPREAD_MS", "20000", "how long a run of upstream failures must span before it opens the circuit, so a burst of one moment does not, and a single-site outage does"),
    var("CIRCUIT_COOLDOWN_MS", "30000", "how long an open circuit holds every job back before one probe tests the upstream"),
    var("UPSTREAM_MAX_PAGE_BYTES", "33554432", "largest upstream page body (32 MiB), enforced while it is read; past it the job fails permanently"),
    var("CHUNK_MAX_SAMPLES", "1000000", "most samples one window may hold (all its points); past it the job fails permanently, so memory stays bounded. It also bounds a site walk's pages"),
    var("STORAGE_TIMEOUT_MS", "20000", "timeout per D1 and R2 call and per queue send"),
    var("INVOCATION_BUDGET_MS", "120000", "wall time per consumer invocation, shared by its messages, before it continues in a new message"),
    var("LEASE_MS", "300000", "a claim's lease, renewed by a fenced heartbeat at most every 10 s while the holder works"),
    var("CHUNKS_PER_INVOCATION", "0", "cap on chunks started per invocation (0: none)"),
    var("SUBREQUEST_BUDGET", "9000", "subrequests (upstream pages, R2 calls, queue sends) one consumer invocation makes at most, across all its messages; under the 10,000 of current paid plans. An account on the older 1,000 limit sets it to 900; finalize then needs one read per chunk in one invocation, so a 100-point, 13-month job (1,300 chunks) cannot finish there"),
    var("MAX_POINTS", "100", "points per job"),
    var("MAX_ACTIVE_JOBS", "1000", "queued, processing or failed jobs one owner may have at once; a submit beyond it gets `429` with `Retry-After: 30` and writes nothing (0: no limit). The count and the insert are one statement, so concurrent submits cannot overshoot"),
    var("DAILY_CHUNK_QUOTA", "50000", "chunks one owner may order per UTC day, counted as a point over a UTC month the range touches (the unit predates windows, so a job costs what it did), `force` included; past it a submit gets `429` with `Retry-After` until midnight UTC and a problem+json naming the quota (0: none)"),
    var("RETRIES_PER_MINUTE", "10", "dead jobs one owner may retry per minute; past it a retry gets `429` with `Retry-After: 60` (0: no limit). A retry also counts against `MAX_ACTIVE_JOBS` and `DAILY_CHUNK_QUOTA` as a new job would"),
    var("SETTLE_MS", "259200000", "how long after a window ends its data counts as settled (3 days): settled spans are kept in the shared sample store and read from it by later jobs; later spans are always fetched. A request's `force` bypasses and refreshes the store"),
    var("STORE_MAX_BYTES", "10737418240", "the sample store's size cap (10 GiB): past it the reaper evicts the least recently used entries (0: no store)"),
    var("FRESHNESS_MS", "3600000", "how long a completed job is reused for an identical request"),
    var("MAX_RETRIES", "4", "mirror of the queue's `max_retries` (the queue now only retries invocations that crash; the consumer reschedules failures itself)"),
    var("SINGLE_PUT_MAX_BYTES", "16777216", "results up to this size (16 MiB) are written with one PUT; larger ones with a multipart upload"),
    var("MULTIPART_PART_BYTES", "8388608", "multipart part size (8 MiB; at least 5 MiB; every part but the last is exactly this size, as R2 requires, raised if the result would need over 10,000 parts)"),
    var("PARQUET_RESULTS", "1", "1: each window also writes its rows as a Parquet part and finalize splices the parts into `result.parquet` beside the object (zstd, one row group per point and window, statistics and page indexes); 0: the object only"),
    var("CALLBACK_ALLOWED_ORIGINS", "", "origins (comma separated, `https://host[:port]`) a job's `callback_url` may point at; empty: callbacks are off and a `callback_url` gets 422. An `http://` origin is allowed only when listed as such (local testing)"),
    var("CALLBACK_TIMEOUT_MS", "5000", "timeout per callback attempt"),
    secret("CALLBACK_SIGNING_KEY", "the key of each callback's `X-Signature: sha256=<hex HMAC-SHA256 of the body>`; a callback due without it fails (recorded in the job view)"),
    secret("ALERT_WEBHOOK_URL", "Slack-style incoming webhook for dead-letter and circuit alerts; unset means the alert is only logged. A 4xx from it is a permanent alert failure, counted in stats"),
    var("ALERT_TIMEOUT_MS", "5000", "timeout per alert attempt"),
    var("PUBLIC_BASE_URL", "", "prefix of the status link in alerts"),
    var("CORS_ALLOWED_ORIGINS", "", "origins (comma separated, `*` for any) whose browser pages may call the API with a token and read `Content-Range`, `Accept-Ranges`, `ETag` and the other headers range reads need; preflights from them are answered; empty: no CORS"),
    var("JOB_RETENTION_MS", "7776000000", "terminal jobs (completed, cancelled, dead once alerted) are deleted from D1 with their events and checkpoints this long (90 days) after they finished, up to 50 per reaper run; 0 keeps them forever. R2 objects are left to the bucket's lifecycle rules (see Deploy)"),
];

/// The names [`Config::from_lookup`] reads.
pub fn keys() -> impl Iterator<Item = &'static str> {
    SETTINGS.iter().map(|s| s.key)
}

/// The README's configuration table, generated from [`SETTINGS`].
pub fn readme_table() -> String {
    let mut out = String::from("| var | default | meaning |\n|---|---|---|\n");
    for s in SETTINGS.iter().filter(|s| !s.secret) {
        out.push_str(&format!("| `{}` | {} | {} |\n", s.key, s.default, s.doc));
    }
    out
}

/// Every knob, with its default. Secrets are [`SecretString`]s: a `Debug`
/// print or a log line shows `[REDACTED]`, never the value.
#[derive(Debug, Clone)]
pub struct Config {
    /// `ACE_API_URL`: upstream base URL, without a trailing slash.
    pub upstream_url: String,
    /// `ACE_API_TOKEN` (secret): upstream bearer token.
    pub upstream_token: SecretString,
    /// `UPSTREAM_PAGE_SIZE`: rows per page of a site walk (0: the largest
    /// of ACE's sizes under a quarter of the page byte cap).
    pub page_size: u32,
    /// `UPSTREAM_PLAN`: the plan of a job whose request names none.
    pub upstream_plan: crate::domain::PlanChoice,
    /// `UPSTREAM_SAMPLE_SECS`: the upstream's sample interval, for sizing.
    pub upstream_sample_secs: u64,
    /// `WINDOW_MAX_SAMPLES`: samples one window should hold (sizing).
    pub window_max_samples: u64,
    /// `SITE_INFO_TTL_MS`: how long a site's `configured_points` is cached.
    pub site_info_ttl_ms: i64,
    /// `UPSTREAM_REQUEST_COST_BYTES`: one request, in bytes, for `auto`.
    pub upstream_request_cost_bytes: u64,
    /// `UPSTREAM_TIMEOUT_MS`: timeout of each upstream request.
    pub upstream_timeout_ms: u64,
    /// `UPSTREAM_CONCURRENCY`: chunks fetched at once (at most 6).
    pub upstream_concurrency: usize,
    /// `PAGE_RETRY_MS`: how long one page's transient failures are retried
    /// in place (honouring `Retry-After`) before the job is rescheduled
    /// with a delayed message.
    pub page_retry_ms: u64,
    /// `RETRY_JITTER`: the random share of each backoff wait (0 to 1).
    pub retry_jitter: f64,
    /// `MAX_STALLED_DELIVERIES`: deliveries in a row without progress after
    /// which a job dies of transient errors.
    pub max_stalled_deliveries: u32,
    /// `CIRCUIT_THRESHOLD`: messages in a row that end with the upstream
    /// failing before its circuit opens.
    pub circuit_threshold: u32,
    /// `CIRCUIT_SPREAD_MS`: how long a run of failures must span to open it.
    pub circuit_spread_ms: i64,
    /// `MAX_UPSTREAM_WAIT_MS`: how long transient upstream failures may
    /// hold a job without progress before it dies.
    pub max_upstream_wait_ms: i64,
    /// `CIRCUIT_COOLDOWN_MS`: how long an open circuit holds every job back
    /// before one probe tests the upstream.
    pub circuit_cooldown_ms: i64,
    /// `UPSTREAM_MAX_PAGE_BYTES`: largest upstream page body read; past it
    /// the job fails permanently.
    pub upstream_max_page_bytes: u64,
    /// `CHUNK_MAX_SAMPLES`: most samples one window (all its points) may
    /// hold; past it the job fails permanently, so memory stays bounded.
    pub chunk_max_samples: u64,
    /// `MALFORMED_LIMIT`: malformed bodies of one page tolerated before the
    /// failure counts as permanent.
    pub malformed_limit: u32,
    /// `STORAGE_TIMEOUT_MS`: timeout of each D1 and R2 call.
    pub storage_timeout_ms: u64,
    /// `INVOCATION_BUDGET_MS`: wall time one queue invocation spends before
    /// it checkpoints and continues in a new message.
    pub invocation_budget_ms: u64,
    /// `CHUNKS_PER_INVOCATION`: chunks one invocation starts at most (0: no
    /// cap beyond the time and statement budgets).
    pub chunks_per_invocation: u32,
    /// `SUBREQUEST_BUDGET`: subrequests (upstream pages, R2 calls, queue
    /// sends) one invocation makes at most, across all its messages. The
    /// default stays under the 10,000 of current paid plans.
    pub subrequest_budget: u64,
    /// `LEASE_MS`: how long a claim holds a job without progress.
    pub lease_ms: i64,
    /// `MAX_POINTS`: points per job.
    pub max_points: usize,
    /// `MAX_ACTIVE_JOBS`: queued, processing or failed jobs one owner may
    /// have at once; a submit beyond it is refused with 429 (0: no limit).
    pub max_active_jobs: u64,
    /// `DAILY_CHUNK_QUOTA`: chunks (a point over a UTC month) one owner may
    /// order per UTC day, `force` included (0: no quota).
    pub daily_chunk_quota: u64,
    /// `RETRIES_PER_MINUTE`: dead jobs one owner may retry per minute (0: no limit).
    pub retries_per_minute: u64,
    /// `SETTLE_MS`: how long after a window ends its data is settled.
    pub settle_ms: i64,
    /// `STORE_MAX_BYTES`: the sample store's size cap (0: no store).
    pub store_max_bytes: u64,
    /// `FRESHNESS_MS`: how long a completed job is reused for an identical request.
    pub freshness_ms: i64,
    /// `MAX_RETRIES`: queue deliveries before the dead-letter queue (mirror
    /// of wrangler.toml's `max_retries`, for the `Retry-After` of the API).
    pub max_retries: u32,
    /// `SINGLE_PUT_MAX_BYTES`: results up to this size are written with one
    /// PUT; larger ones with a multipart upload.
    pub single_put_max_bytes: u64,
    /// `MULTIPART_PART_BYTES`: multipart part size (at least 5 MiB).
    pub multipart_part_bytes: u64,
    /// `PARQUET_RESULTS`: whether results are written as Parquet too.
    pub parquet_results: bool,
    /// `CALLBACK_ALLOWED_ORIGINS`: where callbacks may go (empty: off).
    pub callback_allowed_origins: String,
    /// `CALLBACK_TIMEOUT_MS`: timeout of each callback attempt.
    pub callback_timeout_ms: u64,
    /// `CALLBACK_SIGNING_KEY` (secret): signs each callback's body.
    pub callback_signing_key: Option<SecretString>,
    /// `ALERT_WEBHOOK_URL` (secret): dead-letter alerts go here; unset means log only.
    pub alert_webhook_url: Option<SecretString>,
    /// `ALERT_TIMEOUT_MS`: timeout of each alert attempt.
    pub alert_timeout_ms: u64,
    /// `PUBLIC_BASE_URL`: prefix for links in alerts.
    pub public_base_url: String,
    /// `CORS_ALLOWED_ORIGINS`: origins whose pages may call the API (the
    /// producer reads it on each request, before any binding).
    pub cors_allowed_origins: String,
    /// `JOB_RETENTION_MS`: terminal jobs (completed, cancelled, and dead
    /// ones once alerted) are purged from D1, with their events and
    /// checkpoints, this long after they finished; 0 keeps them forever.
    pub job_retention_ms: i64,
    /// Who sends this Worker's notices (alerts, callbacks): not a var but
    /// its role. The consumer Worker holds no webhook URL and no signing
    /// key, so it hands them off to the dead-letter Worker.
    pub notices: Notices,
}

/// How a Worker's notices (operator alerts, job callbacks) go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Notices {
    /// Sent from here (the dead-letter Worker; the native harness).
    #[default]
    Send,
    /// Written to D1's `notices` outbox (callbacks are due in the job
    /// row already) and the dead-letter Worker nudged to send them.
    HandOff,
}

/// A number setting: `default` when unset or blank.
fn num<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: T,
) -> Result<T, ValidationError> {
    match get(name).filter(|s| !s.trim().is_empty()) {
        None => Ok(default),
        Some(s) => s
            .trim()
            .parse()
            .map_err(|_| ValidationError::single(name, "must be a number")),
    }
}

impl Config {
    /// Reads the configuration through `get` (a var or secret by name).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ValidationError> {
        let cfg = Self::rest(&get, Self::upstream(&get)?)?;
        if cfg.page_size != 0 && !PAGE_SIZES.contains(&cfg.page_size) {
            return Err(ValidationError::single(
                "UPSTREAM_PAGE_SIZE",
                "must be 0 or one of ACE's page sizes (3, 10, 50, 100, 500, 1000, 5000, 10000, 50000, 100000, 300000, 500000)",
            ));
        }
        Ok(cfg)
    }

    /// The upstream's settings, over the defaults.
    fn upstream(get: &impl Fn(&str) -> Option<String>) -> Result<Self, ValidationError> {
        let d = Config::default();
        Ok(Config {
            upstream_url: get("ACE_API_URL")
                .unwrap_or_default()
                .trim_end_matches('/')
                .to_owned(),
            upstream_token: get("ACE_API_TOKEN").unwrap_or_default().into(),
            page_size: num(get, "UPSTREAM_PAGE_SIZE", d.page_size)?,
            upstream_plan: match get("UPSTREAM_PLAN").filter(|s| !s.trim().is_empty()) {
                None => d.upstream_plan,
                Some(s) => s
                    .trim()
                    .parse()
                    .map_err(|e: String| ValidationError::single("UPSTREAM_PLAN", &e))?,
            },
            upstream_sample_secs: num(get, "UPSTREAM_SAMPLE_SECS", d.upstream_sample_secs)?.max(1),
            window_max_samples: num(get, "WINDOW_MAX_SAMPLES", d.window_max_samples)?.max(1),
            site_info_ttl_ms: num(get, "SITE_INFO_TTL_MS", d.site_info_ttl_ms)?,
            upstream_request_cost_bytes: num(
                &get,
                "UPSTREAM_REQUEST_COST_BYTES",
                d.upstream_request_cost_bytes,
            )?,
            upstream_timeout_ms: num(get, "UPSTREAM_TIMEOUT_MS", d.upstream_timeout_ms)?,
            upstream_concurrency: num(get, "UPSTREAM_CONCURRENCY", d.upstream_concurrency)?
                .clamp(1, 6),
            page_retry_ms: num(get, "PAGE_RETRY_MS", d.page_retry_ms)?,
            retry_jitter: num(get, "RETRY_JITTER", d.retry_jitter)?.clamp(0.0, 1.0),
            ..d
        })
    }

    /// The storage, job, quota and alert settings, over `d`.
    fn rest(get: &impl Fn(&str) -> Option<String>, d: Config) -> Result<Self, ValidationError> {
        Ok(Config {
            max_stalled_deliveries: num(get, "MAX_STALLED_DELIVERIES", d.max_stalled_deliveries)?,
            circuit_threshold: num(get, "CIRCUIT_THRESHOLD", d.circuit_threshold)?,
            circuit_spread_ms: num(get, "CIRCUIT_SPREAD_MS", d.circuit_spread_ms)?,
            max_upstream_wait_ms: num(get, "MAX_UPSTREAM_WAIT_MS", d.max_upstream_wait_ms)?,
            circuit_cooldown_ms: num(get, "CIRCUIT_COOLDOWN_MS", d.circuit_cooldown_ms)?,
            upstream_max_page_bytes: num(
                &get,
                "UPSTREAM_MAX_PAGE_BYTES",
                d.upstream_max_page_bytes,
            )?,
            chunk_max_samples: num(get, "CHUNK_MAX_SAMPLES", d.chunk_max_samples)?,
            malformed_limit: num(get, "MALFORMED_LIMIT", d.malformed_limit)?,
            storage_timeout_ms: num(get, "STORAGE_TIMEOUT_MS", d.storage_timeout_ms)?,
            invocation_budget_ms: num(get, "INVOCATION_BUDGET_MS", d.invocation_budget_ms)?,
            chunks_per_invocation: num(get, "CHUNKS_PER_INVOCATION", d.chunks_per_invocation)?,
            subrequest_budget: num(get, "SUBREQUEST_BUDGET", d.subrequest_budget)?,
            lease_ms: num(get, "LEASE_MS", d.lease_ms)?,
            max_points: num(get, "MAX_POINTS", d.max_points)?,
            max_active_jobs: num(get, "MAX_ACTIVE_JOBS", d.max_active_jobs)?,
            daily_chunk_quota: num(get, "DAILY_CHUNK_QUOTA", d.daily_chunk_quota)?,
            retries_per_minute: num(get, "RETRIES_PER_MINUTE", d.retries_per_minute)?,
            settle_ms: num(get, "SETTLE_MS", d.settle_ms)?,
            store_max_bytes: num(get, "STORE_MAX_BYTES", d.store_max_bytes)?,
            freshness_ms: num(get, "FRESHNESS_MS", d.freshness_ms)?,
            max_retries: num(get, "MAX_RETRIES", d.max_retries)?,
            single_put_max_bytes: num(get, "SINGLE_PUT_MAX_BYTES", d.single_put_max_bytes)?,
            multipart_part_bytes: num(get, "MULTIPART_PART_BYTES", d.multipart_part_bytes)?
                .max(5 << 20),
            parquet_results: num::<u8>(get, "PARQUET_RESULTS", 1)? != 0,
            callback_allowed_origins: get("CALLBACK_ALLOWED_ORIGINS").unwrap_or_default(),
            callback_timeout_ms: num(get, "CALLBACK_TIMEOUT_MS", d.callback_timeout_ms)?,
            callback_signing_key: get("CALLBACK_SIGNING_KEY")
                .filter(|s| !s.is_empty())
                .map(SecretString::from),
            alert_webhook_url: get("ALERT_WEBHOOK_URL")
                .filter(|s| !s.is_empty())
                .map(SecretString::from),
            alert_timeout_ms: num(get, "ALERT_TIMEOUT_MS", d.alert_timeout_ms)?,
            public_base_url: get("PUBLIC_BASE_URL")
                .unwrap_or_default()
                .trim_end_matches('/')
                .to_owned(),
            cors_allowed_origins: get("CORS_ALLOWED_ORIGINS").unwrap_or_default(),
            job_retention_ms: num(get, "JOB_RETENTION_MS", d.job_retention_ms)?.max(0),
            ..d
        })
    }

    /// Defaults, with the upstream at `url`.
    pub fn for_upstream(url: &str, token: &str) -> Self {
        Config {
            upstream_url: url.trim_end_matches('/').to_owned(),
            upstream_token: token.into(),
            ..Config::default()
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            upstream_url: String::new(),
            upstream_token: SecretString::default(),
            page_size: 0,
            upstream_plan: crate::domain::PlanChoice::Auto,
            upstream_sample_secs: crate::chunk::DEFAULT_SAMPLE_SECS,
            window_max_samples: crate::chunk::DEFAULT_WINDOW_MAX_SAMPLES,
            site_info_ttl_ms: 86_400_000,
            upstream_request_cost_bytes: 2 << 20,
            upstream_timeout_ms: 30_000,
            upstream_concurrency: 6,
            page_retry_ms: 15_000,
            retry_jitter: 0.5,
            max_stalled_deliveries: 5,
            circuit_threshold: 3,
            circuit_spread_ms: 20_000,
            max_upstream_wait_ms: 86_400_000,
            circuit_cooldown_ms: 30_000,
            upstream_max_page_bytes: 32 << 20,
            chunk_max_samples: 1_000_000,
            malformed_limit: 3,
            storage_timeout_ms: 20_000,
            invocation_budget_ms: 120_000,
            chunks_per_invocation: 0,
            subrequest_budget: 9_000,
            lease_ms: 300_000,
            max_points: 100,
            max_active_jobs: 1_000,
            daily_chunk_quota: 50_000,
            retries_per_minute: 10,
            settle_ms: 3 * 86_400_000,
            store_max_bytes: 10 << 30,
            freshness_ms: 3_600_000,
            max_retries: 4,
            single_put_max_bytes: 16 << 20,
            multipart_part_bytes: 8 << 20,
            parquet_results: true,
            callback_allowed_origins: String::new(),
            callback_timeout_ms: 5_000,
            callback_signing_key: None,
            alert_webhook_url: None,
            alert_timeout_ms: 5_000,
            public_base_url: String::new(),
            cors_allowed_origins: String::new(),
            job_retention_ms: 90 * 86_400_000,
            notices: Notices::Send,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn keys_are_exactly_what_from_lookup_reads() {
        let asked = RefCell::new(BTreeSet::new());
        Config::from_lookup(|k| {
            asked.borrow_mut().insert(k.to_owned());
            None
        })
        .expect("defaults");
        let keys: BTreeSet<String> = keys().map(str::to_owned).collect();
        assert_eq!(asked.into_inner(), keys);
    }

    #[test]
    fn the_settings_table_holds_the_defaults_the_code_uses() {
        let from_table = Config::from_lookup(|k| {
            SETTINGS
                .iter()
                .find(|s| s.key == k)
                .map(|s| s.default.to_owned())
        })
        .expect("defaults parse");
        // Debug shows every field (secrets redacted), so this compares all.
        assert_eq!(
            format!("{from_table:?}"),
            format!("{:?}", Config::default())
        );
    }

    #[test]
    fn a_value_overrides_its_default_and_a_bad_one_is_named() {
        let cfg = Config::from_lookup(|k| (k == "JOB_RETENTION_MS").then(|| "20000".to_owned()))
            .expect("valid");
        assert_eq!(cfg.job_retention_ms, 20_000);
        let err = Config::from_lookup(|k| (k == "LEASE_MS").then(|| "soon".to_owned()))
            .expect_err("not a number");
        assert!(err.to_string().contains("LEASE_MS"), "{err}");
    }
}
