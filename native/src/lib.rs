//! Native adapters for the core ports, for tests, benchmarks and tools.
//!
//! # Layout
//! - [`SqliteDb`]: a real SQLite database (rusqlite, bundled) with every
//!   `schema/*.sql` migration applied in order — the same files wrangler
//!   applies to D1, so every statement the Worker runs is exercised here.
//! - [`MemBlobs`]: an in-memory object store with multipart uploads.
//! - [`MemQueue`]: an in-process queue that records messages and can be made to fail.
//! - [`ReqwestHttp`]: an HTTP client with a per-request timeout.
//! - [`TokioClock`]: real time, and a [`TokioClock::fixed`] variant for tests.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::types::{Value as SqlV, ValueRef};
use rusqlite::Connection;
use tsp_core::domain::EpochMs;
use tsp_core::error::{Error, StoreError, UpstreamError};
use tsp_core::ports::{
    BlobMeta, BlobStore, Clock, HttpClient, HttpRequest, HttpResponse, JobMessage, JobQueue, Row,
    SqlDb, SqlValue, Statement, UploadedPart, MAX_DELETE_KEYS,
};

/// The workspace's `schema/` directory.
pub fn schema_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../schema")
}

/// SQLite with the project's migrations applied.
pub struct SqliteDb {
    conn: Mutex<Connection>,
    /// Statements run so far (for query-count assertions).
    pub statements: Mutex<u64>,
}

impl SqliteDb {
    /// A fresh in-memory database with every migration in `schema/` applied,
    /// in file-name order, as `wrangler d1 migrations apply` does.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let conn = Connection::open_in_memory().map_err(backend)?;
        let mut files: Vec<PathBuf> = std::fs::read_dir(schema_dir())
            .map_err(|e| StoreError::Backend(e.to_string()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "sql"))
            .collect();
        files.sort();
        for f in files {
            let sql =
                std::fs::read_to_string(&f).map_err(|e| StoreError::Backend(e.to_string()))?;
            conn.execute_batch(&sql).map_err(backend)?;
        }
        Ok(Self {
            conn: Mutex::new(conn),
            statements: Mutex::new(0),
        })
    }

    fn count(&self, n: u64) {
        if let Ok(mut c) = self.statements.lock() {
            *c += n;
        }
    }

    /// Statements run so far.
    pub fn statement_count(&self) -> u64 {
        self.statements.lock().map(|c| *c).unwrap_or(0)
    }

    /// Runs a raw query (tests only).
    pub fn query_raw(&self, sql: &str) -> Result<Vec<Row>, StoreError> {
        let conn = self.conn.lock().map_err(|_| poisoned())?;
        run_query(&conn, sql, &[])
    }
}

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn poisoned() -> StoreError {
    StoreError::Backend("database lock poisoned".to_owned())
}

fn bind(params: &[SqlValue]) -> Vec<SqlV> {
    params
        .iter()
        .map(|p| match p {
            SqlValue::Null => SqlV::Null,
            SqlValue::Integer(i) => SqlV::Integer(*i),
            SqlValue::Real(f) => SqlV::Real(*f),
            SqlValue::Text(s) => SqlV::Text(s.clone()),
        })
        .collect()
}

fn run_query(conn: &Connection, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, StoreError> {
    let mut st = conn.prepare(sql).map_err(backend)?;
    let names: Vec<String> = st.column_names().iter().map(|s| s.to_string()).collect();
    let mut rows = st
        .query(rusqlite::params_from_iter(bind(params)))
        .map_err(backend)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(backend)? {
        let mut m = Row::new();
        for (i, n) in names.iter().enumerate() {
            let v = match r.get_ref(i).map_err(backend)? {
                ValueRef::Null => serde_json::Value::Null,
                ValueRef::Integer(i) => i.into(),
                ValueRef::Real(f) => serde_json::Number::from_f64(f)
                    .map_or(serde_json::Value::Null, serde_json::Value::Number),
                ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned().into(),
                ValueRef::Blob(b) => hex::encode(b).into(),
            };
            m.insert(n.clone(), v);
        }
        out.push(m);
    }
    Ok(out)
}

fn run_execute(conn: &Connection, stmt: &Statement) -> Result<u64, StoreError> {
    let mut st = conn.prepare(&stmt.sql).map_err(backend)?;
    // RETURNING statements must be stepped as queries.
    if st.column_count() > 0 {
        let mut rows = st
            .query(rusqlite::params_from_iter(bind(&stmt.params)))
            .map_err(backend)?;
        while rows.next().map_err(backend)?.is_some() {}
        return Ok(conn.changes());
    }
    let n = st
        .execute(rusqlite::params_from_iter(bind(&stmt.params)))
        .map_err(backend)?;
    Ok(n as u64)
}

impl SqlDb for SqliteDb {
    async fn query(&self, stmt: &Statement) -> Result<Vec<Row>, StoreError> {
        self.count(1);
        let conn = self.conn.lock().map_err(|_| poisoned())?;
        run_query(&conn, &stmt.sql, &stmt.params)
    }

    async fn execute(&self, stmt: &Statement) -> Result<u64, StoreError> {
        self.count(1);
        let conn = self.conn.lock().map_err(|_| poisoned())?;
        run_execute(&conn, stmt)
    }

    async fn batch(&self, stmts: &[Statement]) -> Result<Vec<u64>, StoreError> {
        self.count(stmts.len() as u64);
        let mut conn = self.conn.lock().map_err(|_| poisoned())?;
        let tx = conn.transaction().map_err(backend)?;
        let mut out = Vec::with_capacity(stmts.len());
        for s in stmts {
            out.push(run_execute(&tx, s)?);
        }
        tx.commit().map_err(backend)?;
        Ok(out)
    }
}

/// An open multipart upload: key, metadata, parts by number.
type Upload = (String, BlobMeta, BTreeMap<u16, Vec<u8>>);

/// An in-memory object store that enforces R2's multipart rules.
pub struct MemBlobs {
    objects: RefCell<BTreeMap<String, (Vec<u8>, BlobMeta)>>,
    uploads: RefCell<BTreeMap<String, Upload>>,
    next_upload: Cell<u64>,
    /// Multipart parts uploaded so far (for assertions).
    pub parts_uploaded: Cell<u64>,
    /// Smallest size of a part that is not the last: R2's 5 MiB, lowered
    /// by tests that want many parts from a small result.
    min_part_bytes: usize,
}

impl Default for MemBlobs {
    fn default() -> Self {
        Self::with_min_part_bytes(5 << 20)
    }
}

impl MemBlobs {
    /// A store whose multipart parts (but the last) must be at least
    /// `min_part_bytes`; everything else follows R2.
    pub fn with_min_part_bytes(min_part_bytes: usize) -> Self {
        Self {
            objects: RefCell::default(),
            uploads: RefCell::default(),
            next_upload: Cell::default(),
            parts_uploaded: Cell::default(),
            min_part_bytes,
        }
    }

    /// A stored object and its metadata.
    pub fn object(&self, key: &str) -> Option<(Vec<u8>, BlobMeta)> {
        self.objects.borrow().get(key).cloned()
    }

    /// Keys under a prefix.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        self.objects
            .borrow()
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect()
    }
}

impl BlobStore for MemBlobs {
    async fn put(&self, key: &str, bytes: Vec<u8>, meta: &BlobMeta) -> Result<(), StoreError> {
        self.objects
            .borrow_mut()
            .insert(key.to_owned(), (bytes, meta.clone()));
        Ok(())
    }
    async fn put_if_absent(
        &self,
        key: &str,
        bytes: Vec<u8>,
        meta: &BlobMeta,
    ) -> Result<bool, StoreError> {
        let mut o = self.objects.borrow_mut();
        if o.contains_key(key) {
            return Ok(false);
        }
        o.insert(key.to_owned(), (bytes, meta.clone()));
        Ok(true)
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.objects.borrow().get(key).map(|(b, _)| b.clone()))
    }
    async fn head(&self, key: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.objects.borrow().get(key).map(|(b, _)| b.len() as u64))
    }
    async fn delete(&self, keys: &[String]) -> Result<(), StoreError> {
        if keys.len() > MAX_DELETE_KEYS {
            return Err(StoreError::Backend(format!(
                "{} keys in one delete; R2 takes at most {MAX_DELETE_KEYS}",
                keys.len()
            )));
        }
        let mut objects = self.objects.borrow_mut();
        for k in keys {
            objects.remove(k);
        }
        Ok(())
    }
    async fn multipart_begin(&self, key: &str, meta: &BlobMeta) -> Result<String, StoreError> {
        let id = format!("upload-{}", self.next_upload.get());
        self.next_upload.set(self.next_upload.get() + 1);
        self.uploads
            .borrow_mut()
            .insert(id.clone(), (key.to_owned(), meta.clone(), BTreeMap::new()));
        Ok(id)
    }
    async fn multipart_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u16,
        bytes: Vec<u8>,
    ) -> Result<UploadedPart, StoreError> {
        let mut ups = self.uploads.borrow_mut();
        let (k, _, parts) = ups
            .get_mut(upload_id)
            .ok_or_else(|| StoreError::Backend(format!("no upload {upload_id}")))?;
        if k != key {
            return Err(StoreError::Backend("upload key mismatch".to_owned()));
        }
        self.parts_uploaded.set(self.parts_uploaded.get() + 1);
        parts.insert(part_number, bytes);
        Ok(UploadedPart {
            part_number,
            etag: format!("etag-{part_number}"),
        })
    }
    async fn multipart_complete(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<UploadedPart>,
    ) -> Result<(), StoreError> {
        let (k, meta, mut stored) = self
            .uploads
            .borrow_mut()
            .remove(upload_id)
            .ok_or_else(|| StoreError::Backend(format!("no upload {upload_id}")))?;
        if k != key {
            return Err(StoreError::Backend("upload key mismatch".to_owned()));
        }
        let last = parts.len();
        let mut body = Vec::new();
        let mut first_len = None;
        for (i, p) in parts.iter().enumerate() {
            let bytes = stored
                .remove(&p.part_number)
                .ok_or_else(|| StoreError::Backend(format!("part {} missing", p.part_number)))?;
            // R2's rules: every part but the last is at least 5 MiB, all of
            // them the same size, and the last is no larger than the others.
            if i + 1 < last && bytes.len() < self.min_part_bytes {
                return Err(StoreError::Backend(format!(
                    "part {} is {} bytes, under the {} minimum",
                    p.part_number,
                    bytes.len(),
                    self.min_part_bytes
                )));
            }
            let first = *first_len.get_or_insert(bytes.len());
            if (i + 1 < last && bytes.len() != first) || bytes.len() > first {
                return Err(StoreError::Backend(format!(
                    "part {} is {} bytes, part 1 is {first}: parts must be equal but the last, which is not larger",
                    p.part_number,
                    bytes.len()
                )));
            }
            body.extend(bytes);
        }
        self.objects
            .borrow_mut()
            .insert(key.to_owned(), (body, meta));
        Ok(())
    }
}

/// An in-process queue: records what was sent, and can be told to fail.
#[derive(Default)]
pub struct MemQueue {
    /// Messages sent, with their delay.
    pub sent: RefCell<Vec<(JobMessage, u32)>>,
    /// When set, `send` fails.
    pub fail: Cell<bool>,
    /// Nudges of the dead-letter Worker (notices handed off).
    pub nudges: Cell<u32>,
}

impl MemQueue {
    /// Takes the messages sent so far.
    pub fn drain(&self) -> Vec<(JobMessage, u32)> {
        std::mem::take(&mut self.sent.borrow_mut())
    }
}

impl JobQueue for MemQueue {
    async fn send(&self, msg: &JobMessage, delay_seconds: u32) -> Result<(), Error> {
        if self.fail.get() {
            return Err(Error::Queue("queue unavailable (test)".to_owned()));
        }
        self.sent.borrow_mut().push((msg.clone(), delay_seconds));
        Ok(())
    }

    async fn nudge(&self) -> Result<(), Error> {
        self.nudges.set(self.nudges.get() + 1);
        Ok(())
    }
}

/// An HTTP client over reqwest. Each request carries its own timeout.
#[derive(Clone, Default)]
pub struct ReqwestHttp {
    client: reqwest::Client,
}

impl HttpClient for ReqwestHttp {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, UpstreamError> {
        let method = if req.method == "POST" {
            reqwest::Method::POST
        } else {
            reqwest::Method::GET
        };
        let mut rb = self
            .client
            .request(method, &req.url)
            .timeout(Duration::from_millis(req.timeout_ms));
        for (k, v) in &req.headers {
            rb = rb.header(k, v);
        }
        if let Some(b) = req.body {
            rb = rb.body(b);
        }
        let map = |e: reqwest::Error| {
            if e.is_timeout() {
                UpstreamError::Timeout(req.timeout_ms)
            } else {
                UpstreamError::Network(e.to_string())
            }
        };
        let mut resp = rb.send().await.map_err(map)?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // Read with the cap, chunk by chunk, never past it.
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(map)? {
            if (body.len() + chunk.len()) as u64 > req.max_body_bytes {
                return Err(UpstreamError::TooLarge(format!(
                    "response body over {} bytes",
                    req.max_body_bytes
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(HttpResponse {
            status,
            retry_after,
            body,
        })
    }
}

/// Real time from tokio, or a fixed `now` for tests.
#[derive(Clone, Default)]
pub struct TokioClock {
    fixed_now: Cell<Option<i64>>,
    counter: Cell<u64>,
}

impl TokioClock {
    /// A clock whose `now_ms` is `now` until moved (sleeps still sleep).
    pub fn fixed(now: i64) -> Self {
        Self {
            fixed_now: Cell::new(Some(now)),
            counter: Cell::new(0),
        }
    }

    /// Moves a fixed clock to `now`.
    pub fn set_now(&self, now: i64) {
        self.fixed_now.set(Some(now));
    }
}

impl Clock for TokioClock {
    fn now_ms(&self) -> EpochMs {
        EpochMs(self.fixed_now.get().unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64)
        }))
    }
    async fn sleep(&self, ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    fn random_bytes(&self) -> [u8; 16] {
        // Unique per clock and process, which is all the tests need.
        let n = self.counter.get() + 1;
        self.counter.set(n);
        let seed = format!(
            "{}-{}-{:?}",
            n,
            std::process::id(),
            std::time::Instant::now()
        );
        let digest = <sha2::Sha256 as sha2::Digest>::digest(seed.as_bytes());
        let mut out = [0u8; 16];
        out.copy_from_slice(&digest[..16]);
        out
    }
}
