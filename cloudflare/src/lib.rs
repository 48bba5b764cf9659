//! Cloudflare adapters for the core ports.
//!
//! # Layout
//! - [`D1Db`]: [`SqlDb`] over a D1 binding (integers bound as JS numbers).
//! - [`R2Blobs`]: [`BlobStore`] over an R2 bucket, multipart included.
//! - [`CfQueue`]: [`JobQueue`] over a Queues producer binding.
//! - [`FetchHttp`]: [`HttpClient`] over Fetch, with an `AbortSignal` timeout
//!   raced against a `Delay`.
//! - [`JsClock`]: `Date.now()`, `Delay` and `crypto.getRandomValues`.
//! - [`queue`]: raw queue messages (with their delivery `attempts`) and the
//!   one function that applies a [`Disposition`].
//! - [`Bindings`]: binding and variable names, and the timed adapters built
//!   from an `Env`.
//!
//! Everything that can fail returns an error: a panic would kill the isolate.

#![deny(missing_docs)]
#![allow(async_fn_in_trait)]

pub mod queue;

use std::collections::HashMap;
use std::time::Duration;

use js_sys::{Function, Reflect, Uint8Array};
use tsp_core::config::Config;
use tsp_core::domain::EpochMs;
use tsp_core::error::{Disposition, Error, StoreError, UpstreamError};
use tsp_core::ports::{
    BlobMeta, BlobStore, Clock, HttpClient, HttpRequest, HttpResponse, JobMessage, JobQueue, Ports,
    Row, SqlDb, SqlValue, Statement, UploadedPart,
};
use tsp_core::timeout::{within, TimedBlobs, TimedDb, TimedQueue};
use wasm_bindgen::{JsCast, JsValue};
use worker::{Env, Headers, HttpMetadata, Method, RequestInit};

/// Binding and variable names, shared with wrangler.toml.
pub mod names {
    /// The D1 database.
    pub const DB: &str = "DB";
    /// The R2 bucket for results, chunk parts and dead-letter archives.
    pub const BUCKET: &str = "RESULTS";
    /// The jobs queue producer binding.
    pub const JOBS_QUEUE: &str = "JOBS";
    /// The notify queue producer binding (the consumer Worker's only: it
    /// wakes the dead-letter Worker to send the notices it handed off).
    pub const NOTIFY_QUEUE: &str = "NOTIFY";
    /// Secret: `token=owner` pairs, comma separated.
    pub const API_TOKENS: &str = "API_TOKENS";
    /// Operators' tokens for the `/v1/admin/` routes (`token=operator,…`).
    pub const ADMIN_TOKENS: &str = "ADMIN_TOKENS";
    /// Origins whose pages may call the API (CORS), comma separated.
    pub const CORS_ALLOWED_ORIGINS: &str = "CORS_ALLOWED_ORIGINS";
}

/// Reads a var or secret as a string.
pub fn env_string(env: &Env, name: &str) -> Option<String> {
    env.secret(name)
        .map(|s| s.to_string())
        .or_else(|_| env.var(name).map(|v| v.to_string()))
        .ok()
}

/// Reads the configuration from vars and secrets.
/// Reads the configuration once per isolate: vars and secrets are fixed
/// for a deployed version, and an isolate runs one version, so every later
/// request and batch reuses it instead of crossing into JS for each key.
pub fn config(env: &Env) -> Result<Config, Error> {
    thread_local! {
        static CACHED: std::cell::OnceCell<Config> = const { std::cell::OnceCell::new() };
    }
    if let Some(cfg) = CACHED.with(|c| c.get().cloned()) {
        return Ok(cfg);
    }
    let cfg = read_config(env)?;
    CACHED.with(|c| {
        let _ = c.set(cfg.clone());
    });
    Ok(cfg)
}

fn read_config(env: &Env) -> Result<Config, Error> {
    let vals: HashMap<&str, String> = tsp_core::config::keys()
        .filter_map(|k| env_string(env, k).map(|v| (k, v)))
        .collect();
    // A bad var is the operator's problem: a clear log line, and a 500
    // with no detail for the client.
    Config::from_lookup(|k| vals.get(k).cloned()).map_err(|e| {
        worker::console_error!("configuration error: {e}");
        Error::Config(e.to_string())
    })
}

/// The Worker's platform: the timed adapters.
pub type WorkerPlatform = Ports<
    TimedDb<D1Db, JsClock>,
    TimedBlobs<R2Blobs, JsClock>,
    TimedQueue<CfQueue, JsClock>,
    FetchHttp,
    JsClock,
>;

/// The services' dependencies in the Worker.
pub type WorkerDeps<'a> = tsp_core::service::Deps<'a, WorkerPlatform>;

/// The adapters of one invocation, each storage call under a timeout.
pub struct Bindings {
    /// D1, timed.
    pub db: TimedDb<D1Db, JsClock>,
    /// R2, timed.
    pub blobs: TimedBlobs<R2Blobs, JsClock>,
    /// The raw bucket, for streaming reads.
    pub bucket: worker::Bucket,
    /// The jobs queue, timed.
    pub queue: TimedQueue<CfQueue, JsClock>,
    /// Outbound HTTP.
    pub http: FetchHttp,
    /// Clock.
    pub clock: JsClock,
    /// Settings.
    pub cfg: Config,
}

impl Bindings {
    /// Builds the adapters from the Worker's environment.
    pub fn from_env(env: &Env) -> Result<Self, Error> {
        let cfg = config(env)?;
        let missing = |what: &str, e: worker::Error| {
            worker::console_error!("configuration error: binding {what}: {e}");
            Error::Config(format!("binding {what}: {e}"))
        };
        let d1 = env.d1(names::DB).map_err(|e| missing(names::DB, e))?;
        let bucket = env
            .bucket(names::BUCKET)
            .map_err(|e| missing(names::BUCKET, e))?;
        let queue = env
            .queue(names::JOBS_QUEUE)
            .map_err(|e| missing(names::JOBS_QUEUE, e))?;
        let ms = cfg.storage_timeout_ms;
        Ok(Self {
            db: TimedDb::new(D1Db(d1, Default::default()), JsClock, ms),
            blobs: TimedBlobs::new(R2Blobs(bucket.clone()), JsClock, ms),
            bucket,
            queue: TimedQueue::new(
                CfQueue(queue, env.queue(names::NOTIFY_QUEUE).ok()),
                JsClock,
                ms,
            ),
            http: FetchHttp,
            clock: JsClock,
            cfg,
        })
    }

    /// These bindings in a Worker that holds no webhook URL and no signing
    /// key (the consumer): its notices are handed off to the dead-letter
    /// Worker.
    pub fn handing_off_notices(mut self) -> Self {
        self.cfg.notices = tsp_core::config::Notices::HandOff;
        self
    }

    /// The service dependencies, logging to `log`.
    pub fn deps<'a>(&'a self, log: &'a dyn Fn(&str)) -> WorkerDeps<'a> {
        tsp_core::service::Deps {
            db: &self.db,
            blobs: &self.blobs,
            queue: &self.queue,
            http: &self.http,
            clock: &self.clock,
            cfg: &self.cfg,
            log,
        }
    }
}

fn js_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// What the calls through one adapter cost: how many, and their time.
#[derive(Debug, Default)]
pub struct Meter {
    calls: std::cell::Cell<u64>,
    ms: std::cell::Cell<f64>,
}

impl Meter {
    /// Calls (for D1: statements, each statement of a batch counting).
    pub fn calls(&self) -> u64 {
        self.calls.get()
    }

    /// Milliseconds spent waiting on them.
    pub fn ms(&self) -> f64 {
        self.ms.get()
    }

    fn count(&self, n: usize) {
        self.calls.set(self.calls.get() + n as u64);
    }

    async fn time<T>(&self, fut: impl std::future::Future<Output = T>) -> T {
        let t0 = js_sys::Date::now();
        let out = fut.await;
        self.ms.set(self.ms.get() + (js_sys::Date::now() - t0));
        out
    }
}

/// D1 as a [`SqlDb`]. Counts the statements it runs (a batch counts each
/// of its statements) and their time, for the per-invocation log line and
/// the `Server-Timing` of API responses.
pub struct D1Db(pub worker::D1Database, pub Meter);

impl D1Db {
    /// Statements run through this binding so far.
    pub fn statements(&self) -> u64 {
        self.1.calls()
    }

    /// Milliseconds spent in D1 so far.
    pub fn ms(&self) -> f64 {
        self.1.ms()
    }

    fn count(&self, n: usize) {
        self.1.count(n);
    }

    fn prepare(&self, stmt: &Statement) -> Result<worker::D1PreparedStatement, StoreError> {
        let params: Vec<JsValue> = stmt
            .params
            .iter()
            .map(|p| match p {
                SqlValue::Null => JsValue::NULL,
                // JS numbers are f64: exact for epoch milliseconds and counts.
                SqlValue::Integer(i) => JsValue::from_f64(*i as f64),
                SqlValue::Real(f) => JsValue::from_f64(*f),
                SqlValue::Text(s) => JsValue::from_str(s),
            })
            .collect();
        self.0
            .prepare(stmt.sql.as_ref())
            .bind(&params)
            .map_err(js_err)
    }
}

/// The rows of a D1 `all()` result, read in one crossing: `JSON.stringify`
/// of its `results` array, parsed by serde_json. Converting the array value
/// by value (serde-wasm-bindgen, as `D1Result::results` does) costs several
/// JS calls and a string copy per column of every row, and was the largest
/// Rust-side cost of a one-row read. The values are the same either way:
/// D1 returns JSON-safe values (numbers, strings, null), and a number's JSON
/// text is its shortest round-trip form, which serde_json (with
/// `float_roundtrip`) reads back bit-exact. A non-object row is skipped, as
/// before.
fn rows_from_js(res: &JsValue) -> Result<Vec<Row>, StoreError> {
    let results =
        Reflect::get(res, &"results".into()).map_err(|e| js_err(worker::Error::from(e)))?;
    if results.is_undefined() || results.is_null() {
        return Ok(Vec::new());
    }
    let text: String = js_sys::JSON::stringify(&results)
        .map_err(|e| js_err(worker::Error::from(e)))?
        .into();
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(rows
        .into_iter()
        .filter_map(|v| match v {
            serde_json::Value::Object(m) => Some(m),
            _ => None,
        })
        .collect())
}

fn changes(r: &worker::D1Result) -> u64 {
    r.meta().ok().flatten().and_then(|m| m.changes).unwrap_or(0) as u64
}

impl SqlDb for D1Db {
    async fn query(&self, stmt: &Statement) -> Result<Vec<Row>, StoreError> {
        self.count(1);
        let prepared = self.prepare(stmt)?;
        let promise = prepared
            .inner()
            .all()
            .map_err(|e| js_err(worker::Error::from(e)))?;
        let res = self
            .1
            .time(wasm_bindgen_futures::JsFuture::from(promise))
            .await
            .map_err(|e| js_err(worker::Error::from(e)))?;
        rows_from_js(&res)
    }

    async fn execute(&self, stmt: &Statement) -> Result<u64, StoreError> {
        self.count(1);
        let res = self
            .1
            .time(self.prepare(stmt)?.run())
            .await
            .map_err(js_err)?;
        Ok(changes(&res))
    }

    async fn batch(&self, stmts: &[Statement]) -> Result<Vec<u64>, StoreError> {
        self.count(stmts.len());
        let prepared = stmts
            .iter()
            .map(|s| self.prepare(s))
            .collect::<Result<Vec<_>, _>>()?;
        let res = self.1.time(self.0.batch(prepared)).await.map_err(js_err)?;
        Ok(res.iter().map(changes).collect())
    }
}

/// R2 as a [`BlobStore`].
pub struct R2Blobs(pub worker::Bucket);

fn http_meta(meta: &BlobMeta) -> HttpMetadata {
    HttpMetadata {
        content_type: Some(meta.content_type.clone()),
        ..HttpMetadata::default()
    }
}

fn custom_meta(meta: &BlobMeta) -> HashMap<String, String> {
    meta.custom.iter().cloned().collect()
}

impl BlobStore for R2Blobs {
    async fn put(&self, key: &str, bytes: Vec<u8>, meta: &BlobMeta) -> Result<(), StoreError> {
        self.0
            .put(key, bytes)
            .http_metadata(http_meta(meta))
            .custom_metadata(custom_meta(meta))
            .execute()
            .await
            .map_err(js_err)?;
        Ok(())
    }

    /// One conditional PUT (`onlyIf: {etagDoesNotMatch: "*"}`): R2 writes
    /// only if no object has the key, atomically, and answers null otherwise.
    async fn put_if_absent(
        &self,
        key: &str,
        bytes: Vec<u8>,
        meta: &BlobMeta,
    ) -> Result<bool, StoreError> {
        let written = self
            .0
            .put(key, bytes)
            .http_metadata(http_meta(meta))
            .custom_metadata(custom_meta(meta))
            .only_if(worker::Conditional {
                etag_does_not_match: Some("*".to_owned()),
                ..worker::Conditional::default()
            })
            .execute()
            .await
            .map_err(js_err)?;
        Ok(written.is_some())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(obj) = self.0.get(key).execute().await.map_err(js_err)? else {
            return Ok(None);
        };
        match obj.body() {
            Some(body) => Ok(Some(body.bytes().await.map_err(js_err)?)),
            None => Ok(Some(Vec::new())),
        }
    }

    /// One ranged GET: R2 sends only those bytes.
    async fn get_range(
        &self,
        key: &str,
        offset: u64,
        len: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let range = worker::Range::OffsetWithLength {
            offset,
            length: len,
        };
        let get = self.0.get(key).range(range).execute();
        let Some(obj) = get.await.map_err(js_err)? else {
            return Ok(None);
        };
        match obj.body() {
            Some(body) => Ok(Some(body.bytes().await.map_err(js_err)?)),
            None => Ok(Some(Vec::new())),
        }
    }

    async fn head(&self, key: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.0.head(key).await.map_err(js_err)?.map(|o| o.size()))
    }

    async fn delete(&self, keys: &[String]) -> Result<(), StoreError> {
        // One bulk call (R2 takes up to 1,000 keys) instead of a subrequest
        // per key.
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        self.0.delete_multiple(keys).await.map_err(js_err)
    }

    async fn multipart_begin(&self, key: &str, meta: &BlobMeta) -> Result<String, StoreError> {
        let up = self
            .0
            .create_multipart_upload(key)
            .http_metadata(http_meta(meta))
            .custom_metadata(custom_meta(meta))
            .execute()
            .await
            .map_err(js_err)?;
        Ok(up.upload_id().await)
    }

    async fn multipart_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u16,
        bytes: Vec<u8>,
    ) -> Result<UploadedPart, StoreError> {
        let up = self
            .0
            .resume_multipart_upload(key, upload_id)
            .map_err(js_err)?;
        let part = up.upload_part(part_number, bytes).await.map_err(js_err)?;
        Ok(UploadedPart {
            part_number: part.part_number(),
            etag: part.etag(),
        })
    }

    async fn multipart_complete(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<UploadedPart>,
    ) -> Result<(), StoreError> {
        let up = self
            .0
            .resume_multipart_upload(key, upload_id)
            .map_err(js_err)?;
        let parts = parts
            .into_iter()
            .map(|p| worker::UploadedPart::new(p.part_number, p.etag));
        up.complete(parts).await.map_err(js_err)?;
        Ok(())
    }
}

/// The jobs queue as a [`JobQueue`], with the notify queue when this
/// Worker has it (the consumer).
pub struct CfQueue(pub worker::Queue, pub Option<worker::Queue>);

impl JobQueue for CfQueue {
    async fn nudge(&self) -> Result<(), Error> {
        let Some(q) = &self.1 else {
            return Ok(());
        };
        q.send(serde_json::json!({ "notices": true }))
            .await
            .map_err(|e| Error::Queue(e.to_string()))
    }

    async fn send(&self, msg: &JobMessage, delay_seconds: u32) -> Result<(), Error> {
        let m = worker::MessageBuilder::new(msg.clone())
            .delay_seconds(delay_seconds)
            .build();
        self.0
            .send(m)
            .await
            .map_err(|e| Error::Queue(e.to_string()))
    }
}

/// Fetch as an [`HttpClient`]. The timeout aborts the request through an
/// `AbortSignal`; a `Delay` raced against it makes sure the call returns
/// even if the runtime is slow to honour the abort.
pub struct FetchHttp;

impl FetchHttp {
    async fn send_inner(
        req: &HttpRequest,
        signal: &worker::AbortSignal,
    ) -> Result<HttpResponse, UpstreamError> {
        let headers = Headers::new();
        for (k, v) in &req.headers {
            headers
                .set(k, v)
                .map_err(|e| UpstreamError::Network(format!("header {k}: {e}")))?;
        }
        let mut init = RequestInit::new();
        init.with_method(if req.method == "POST" {
            Method::Post
        } else {
            Method::Get
        })
        .with_headers(headers);
        if let Some(b) = &req.body {
            init.with_body(Some(Uint8Array::from(b.as_slice()).into()));
        }
        let request = worker::Request::new_with_init(&req.url, &init)
            .map_err(|e| UpstreamError::Network(e.to_string()))?;
        let net = |e: worker::Error| {
            if signal.aborted() {
                UpstreamError::Timeout(req.timeout_ms)
            } else {
                UpstreamError::Network(e.to_string())
            }
        };
        let mut resp = worker::Fetch::Request(request)
            .send_with_signal(signal)
            .await
            .map_err(net)?;
        let status = resp.status_code();
        let retry_after = resp.headers().get("retry-after").ok().flatten();
        let body = read_capped(&mut resp, req.max_body_bytes, net).await?;
        Ok(HttpResponse {
            status,
            retry_after,
            body,
        })
    }
}

/// Reads a response body chunk by chunk, failing as soon as it passes
/// `max` bytes (a declared `Content-Length` over it fails before reading).
async fn read_capped(
    resp: &mut worker::Response,
    max: u64,
    net: impl Fn(worker::Error) -> UpstreamError,
) -> Result<Vec<u8>, UpstreamError> {
    use futures::StreamExt;
    let too_large = || UpstreamError::TooLarge(format!("response body over {max} bytes"));
    let declared = resp.headers().get("content-length").ok().flatten();
    if declared
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > max)
    {
        return Err(too_large());
    }
    let mut stream = resp.stream().map_err(&net)?;
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(&net)?;
        if (body.len() + chunk.len()) as u64 > max {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

impl HttpClient for FetchHttp {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, UpstreamError> {
        let ms = u32::try_from(req.timeout_ms).unwrap_or(u32::MAX);
        let signal = web_sys::AbortSignal::timeout_with_u32(ms);
        let signal = worker::AbortSignal::from(signal);
        // A little slack so the abort, not the race, normally decides.
        within(
            &JsClock,
            req.timeout_ms + 250,
            Self::send_inner(&req, &signal),
        )
        .await
        .unwrap_or(Err(UpstreamError::Timeout(req.timeout_ms)))
    }
}

/// Time and randomness from the JS runtime.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsClock;

impl Clock for JsClock {
    fn now_ms(&self) -> EpochMs {
        EpochMs(js_sys::Date::now() as i64)
    }

    async fn sleep(&self, ms: u64) {
        worker::Delay::from(Duration::from_millis(ms)).await;
    }

    fn random_bytes(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        let filled = (|| -> Result<(), JsValue> {
            let crypto = Reflect::get(&js_sys::global(), &"crypto".into())?;
            let f: Function = Reflect::get(&crypto, &"getRandomValues".into())?.dyn_into()?;
            let arr = Uint8Array::new_with_length(16);
            f.call1(&crypto, &arr)?;
            arr.copy_to(&mut out);
            Ok(())
        })();
        if filled.is_err() {
            // Never expected in workerd; ids stay unique enough for a retry.
            for (i, b) in out.iter_mut().enumerate() {
                *b = (js_sys::Math::random() * 256.0) as u8 ^ i as u8;
            }
        }
        out
    }
}

/// The Worker's wasm linear memory in bytes. It only grows, so at the end
/// of an invocation it is the isolate's high-water mark so far.
pub fn wasm_memory_bytes() -> u64 {
    #[cfg(target_arch = "wasm32")]
    {
        core::arch::wasm32::memory_size(0) as u64 * 65_536
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        0
    }
}

/// What a queue handler tells the runtime, for logs.
pub fn describe(d: Disposition) -> String {
    match d {
        Disposition::Ack => "ack".to_owned(),
        Disposition::Retry { delay_seconds } => format!("retry in {delay_seconds} s"),
        Disposition::DeadLetter => "dead-letter".to_owned(),
    }
}
