//! One function per route.

use futures::StreamExt;
use tsp_cloudflare::Bindings;
use tsp_core::aggregate::Resolution;
use tsp_core::domain::{format_rfc3339, parse_rfc3339, JobId, DAY_MS};
use tsp_core::error::{Error, StoreError, ValidationError};
use tsp_core::export::{Exporter, Format};
use tsp_core::job::JobStatus;
use tsp_core::ports::{BlobStore, SqlDb};
use tsp_core::service::dead_letter::archive_key;
use tsp_core::service::manage;
use tsp_core::service::submit::{submit, Submitted};
use tsp_core::service::view::job_view;
use tsp_core::store;
use tsp_core::timeout::within;
use worker::{Headers, Method, Request, Response, ResponseBuilder};

use crate::{json, MAX_BODY_BYTES};

/// Largest aggregate page.
const MAX_AGG_LIMIT: i64 = 1_000;

/// Dispatches an authenticated request.
pub async fn route(mut req: Request, b: &Bindings, owner: &str) -> Result<Response, Error> {
    let path = req.path();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = match req.method() {
        Method::Head => Method::Get,
        // workers-rs reads any method it does not know (QUERY, …) as GET.
        Method::Get if req.inner().method() != "GET" => Method::Options,
        m => m,
    };
    match (method, segs.as_slice()) {
        (Method::Post, ["v1", "jobs"]) => post_job(&mut req, b, owner).await,
        (Method::Get, ["v1", "jobs"]) => list_jobs(&req, b, owner).await,
        (Method::Get, ["v1", "jobs", id]) => get_job(b, owner, id).await,
        (Method::Get, ["v1", "jobs", id, "result"]) => get_result(&req, b, owner, id).await,
        (Method::Get, ["v1", "jobs", id, "archive"]) => get_archive(b, owner, id).await,
        (Method::Delete, ["v1", "jobs", id]) => delete_job(b, owner, id).await,
        (Method::Post, ["v1", "jobs", id, "retry"]) => retry_job(b, owner, id).await,
        (Method::Get, ["v1", "dead-letters"]) => dead_letters(&req, b, owner).await,
        (Method::Get, ["v1", "stats"]) => stats(b, owner).await,
        (Method::Get, ["v1", "metrics"]) => metrics(b, owner).await,
        (Method::Get, ["v1", "aggregates"]) => get_aggregates(&req, b, owner).await,
        (Method::Get, ["openapi.json"]) => Ok(openapi()),
        (_, segs) => Err(allowed(segs).map_or(Error::NotFound, Error::MethodNotAllowed)),
    }
}

/// The methods a known route takes (its `Allow` header), or `None` for an
/// unknown path.
fn allowed(segs: &[&str]) -> Option<&'static str> {
    Some(match segs {
        ["v1", "jobs"] => "GET, HEAD, POST",
        ["v1", "jobs", _] => "GET, HEAD, DELETE",
        ["v1", "jobs", _, "result" | "archive"] => "GET, HEAD",
        ["v1", "jobs", _, "retry"] => "POST",
        ["v1", "dead-letters" | "stats" | "metrics" | "aggregates"] | ["openapi.json"] => {
            "GET, HEAD"
        }
        _ => return None,
    })
}

/// The OpenAPI 3.1 document of this API (`producer/openapi.json`).
const OPENAPI: &str = include_str!("../openapi.json");

fn openapi() -> Response {
    let headers = Headers::new();
    let _ = headers.set("content-type", "application/json");
    ResponseBuilder::new()
        .with_status(200)
        .with_headers(headers)
        .fixed(OPENAPI.as_bytes().to_vec())
}

async fn post_job(req: &mut Request, b: &Bindings, owner: &str) -> Result<Response, Error> {
    let ct = req
        .headers()
        .get("content-type")
        .ok()
        .flatten()
        .unwrap_or_default();
    if !ct.to_ascii_lowercase().starts_with("application/json") {
        return Err(Error::UnsupportedMediaType);
    }
    let declared = req
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(Error::PayloadTooLarge(MAX_BODY_BYTES));
    }
    let body = read_body(req).await?;
    let out = submit(&b.deps(), owner, &body).await?;
    let (status, job, note) = match &out {
        Submitted::Created { job, enqueued } => {
            let note = (!enqueued).then_some("queue send failed; the reaper will send it");
            worker::console_log!(
                "{}",
                tsp_core::service::transition_log(job.id.as_str(), "new", "queued", note)
            );
            (202, job, note)
        }
        Submitted::Existing(job) => (200, job, Some("an identical job exists; returning it")),
    };
    let mut view = job_view(job);
    view["note"] = note.into();
    let mut resp = json(status, &view);
    let _ = resp
        .headers_mut()
        .set("location", &format!("/v1/jobs/{}", job.id));
    Ok(resp)
}

/// Reads the body chunk by chunk and stops past [`MAX_BODY_BYTES`], so a
/// body without `Content-Length` is never buffered whole.
async fn read_body(req: &mut Request) -> Result<Vec<u8>, Error> {
    let unreadable = |e: worker::Error| {
        Error::from(ValidationError::single(
            "body",
            &format!("could not read body: {e}"),
        ))
    };
    let mut stream = match req.stream() {
        Ok(s) => s,
        // No body at all.
        Err(_) => return Ok(Vec::new()),
    };
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(unreadable)?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(Error::PayloadTooLarge(MAX_BODY_BYTES));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn query_map(req: &Request) -> Result<std::collections::HashMap<String, String>, Error> {
    let url = req
        .url()
        .map_err(|e| ValidationError::single("url", &e.to_string()))?;
    Ok(url.query_pairs().into_owned().collect())
}

/// Largest page of `GET /v1/jobs` and `GET /v1/dead-letters`.
const MAX_LIST_LIMIT: i64 = 100;

/// `limit` (default 50) and `cursor` (`created_at.id` of the last job of
/// the previous page, from `next_cursor`).
fn page_params(
    q: &std::collections::HashMap<String, String>,
) -> Result<(i64, (i64, String)), Error> {
    let limit = match q.get("limit") {
        None => 50,
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_LIST_LIMIT).contains(n))
            .ok_or_else(|| ValidationError::single("limit", "must be 1 to 100"))?,
    };
    let bad = || ValidationError::single("cursor", "must come from next_cursor");
    let before = match q.get("cursor") {
        None => (i64::MAX, String::new()),
        Some(c) => {
            let (at, id) = c.split_once('.').unwrap_or((c, ""));
            let at = at.parse::<i64>().map_err(|_| bad())?;
            // A bare time continues before that millisecond.
            let id = if id.is_empty() {
                String::new()
            } else {
                JobId::parse(id).map_err(|_| bad())?.to_string()
            };
            (at, id)
        }
    };
    Ok((limit, before))
}

/// The cursor of the page after `jobs`, if it was full.
fn next_cursor(jobs: &[tsp_core::job::Job], limit: i64) -> Option<String> {
    (jobs.len() as i64 == limit)
        .then(|| jobs.last().map(|j| format!("{}.{}", j.created_at, j.id)))
        .flatten()
}

async fn list_jobs(req: &Request, b: &Bindings, owner: &str) -> Result<Response, Error> {
    let q = query_map(req)?;
    let status = match q.get("status") {
        None => None,
        Some(s) => Some(
            s.parse::<JobStatus>()
                .map_err(|m| ValidationError::single("status", &m))?,
        ),
    };
    let (limit, before) = page_params(&q)?;
    let rows =
        b.db.query(&store::select_owner_jobs(
            owner,
            status,
            (before.0, &before.1),
            limit,
        ))
        .await?;
    let jobs: Vec<tsp_core::job::Job> = store::decode(rows)?;
    let next = next_cursor(&jobs, limit);
    Ok(json(
        200,
        &serde_json::json!({
            "jobs": jobs.iter().map(job_view).collect::<Vec<_>>(),
            "next_cursor": next,
        }),
    ))
}

fn parse_id(id: &str) -> Result<JobId, Error> {
    // An id that cannot exist is simply not found.
    JobId::parse(id).map_err(|_| Error::NotFound)
}

async fn owned_job(b: &Bindings, owner: &str, id: &str) -> Result<tsp_core::job::Job, Error> {
    let id = parse_id(id)?;
    store::get_job(&b.db, store::select_owned_job(&id, owner))
        .await?
        .ok_or(Error::NotFound)
}

fn log_line(line: &str) {
    worker::console_log!("{line}");
}

async fn delete_job(b: &Bindings, owner: &str, id: &str) -> Result<Response, Error> {
    let job = manage::cancel(&b.db, &b.clock, owner, &parse_id(id)?, &log_line).await?;
    Ok(json(200, &job_view(&job)))
}

async fn retry_job(b: &Bindings, owner: &str, id: &str) -> Result<Response, Error> {
    let (job, sent) =
        manage::retry(&b.db, &b.queue, &b.clock, owner, &parse_id(id)?, &log_line).await?;
    let mut view = job_view(&job);
    view["note"] = (!sent)
        .then_some("queue send failed; the reaper will send it")
        .into();
    Ok(json(202, &view))
}

async fn dead_letters(req: &Request, b: &Bindings, owner: &str) -> Result<Response, Error> {
    let q = query_map(req)?;
    let (limit, before) = page_params(&q)?;
    let rows =
        b.db.query(&store::select_owner_jobs(
            owner,
            Some(JobStatus::FailedPermanent),
            (before.0, &before.1),
            limit,
        ))
        .await?;
    let jobs: Vec<tsp_core::job::Job> = store::decode(rows)?;
    let next = next_cursor(&jobs, limit);
    let entries: Vec<serde_json::Value> = jobs
        .iter()
        .map(|j| {
            let mut v = job_view(j);
            v["archive_key"] = j
                .finished_at
                .map(|at| archive_key(j.id.as_str(), at))
                .into();
            v["archive_url"] = format!("/v1/jobs/{}/archive", j.id).into();
            v["retry_url"] = format!("/v1/jobs/{}/retry", j.id).into();
            v
        })
        .collect();
    Ok(json(
        200,
        &serde_json::json!({"dead_letters": entries, "next_cursor": next}),
    ))
}

async fn stats(b: &Bindings, owner: &str) -> Result<Response, Error> {
    Ok(json(
        200,
        &manage::stats(&b.db, &b.clock, owner, b.cfg.daily_chunk_quota).await?,
    ))
}

/// `GET /v1/metrics`: OpenMetrics text for a scraper, authenticated like
/// every route.
async fn metrics(b: &Bindings, owner: &str) -> Result<Response, Error> {
    use tsp_core::service::metrics;
    let body = metrics::render(&b.db, &b.clock, owner, b.cfg.daily_chunk_quota).await?;
    let headers = Headers::new();
    let _ = headers.set("content-type", metrics::CONTENT_TYPE);
    Ok(ResponseBuilder::new()
        .with_status(200)
        .with_headers(headers)
        .fixed(body.into_bytes()))
}

async fn get_job(b: &Bindings, owner: &str, id: &str) -> Result<Response, Error> {
    let job = owned_job(b, owner, id).await?;
    let mut resp = json(200, &job_view(&job));
    if !job.status.is_terminal() {
        let _ = resp.headers_mut().set("retry-after", "2");
    }
    Ok(resp)
}

async fn get_result(req: &Request, b: &Bindings, owner: &str, id: &str) -> Result<Response, Error> {
    let job = owned_job(b, owner, id).await?;
    let key = match (&job.status, &job.result_key) {
        (JobStatus::Completed, Some(k)) => k.clone(),
        _ => {
            return Err(Error::Conflict(format!(
                "job is {}; the result exists once it is completed",
                job.status
            )))
        }
    };
    // The streaming read bypasses `TimedBlobs`, so it gets the same timeout
    // here (for the object's head; the body then streams to the client).
    let get = b.bucket.get(&key).execute();
    let obj = within(&b.clock, b.cfg.storage_timeout_ms, get)
        .await
        .ok_or(StoreError::Timeout("result object get"))?
        .map_err(|e| StoreError::Backend(e.to_string()))?
        .ok_or_else(|| {
            Error::Gone(
                "the result object no longer exists; submit the job again with \"force\": true"
                    .to_owned(),
            )
        })?;
    let headers = Headers::new();
    // A completed result never changes (its key is the request's hash and
    // it is written once), so clients and caches may keep it.
    let _ = headers.set("cache-control", "private, max-age=86400, immutable");
    let query = query_map(req)?;
    let accept = req.headers().get("accept").ok().flatten();
    if let Some(format) =
        Format::negotiate(query.get("format").map(String::as_str), accept.as_deref())
    {
        // The converted text has no stored ETag of its own, so no 304 either.
        return export(obj, format, headers, &job.id);
    }
    let etag = obj.http_etag();
    let _ = headers.set("etag", &etag);
    let inm = req.headers().get("if-none-match").ok().flatten();
    if inm.is_some_and(|v| etag_matches(&v, &etag)) {
        return Ok(ResponseBuilder::new()
            .with_status(304)
            .with_headers(headers)
            .empty());
    }
    let _ = headers.set("content-type", "application/vnd.tsp.columnar+msgpack+gzip");
    let _ = headers.set(
        "content-disposition",
        &format!("attachment; filename=\"{}.msgpack.gz\"", job.id),
    );
    let _ = headers.set("content-length", &obj.size().to_string());
    if let Some(sha) = &job.result_sha256 {
        let _ = headers.set("x-content-sha256", sha);
    }
    let body = obj
        .body()
        .ok_or_else(|| StoreError::Backend("result object has no body".to_owned()))?
        .response_body()
        .map_err(|e| StoreError::Backend(e.to_string()))?;
    Ok(ResponseBuilder::new()
        .with_status(200)
        .with_headers(headers)
        .body(body))
}

/// `If-None-Match` (RFC 9110 13.1.2): `*`, or a list of entity tags compared
/// weakly (`W/` ignored).
fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    fn opaque(tag: &str) -> &str {
        tag.trim().trim_start_matches("W/")
    }
    if_none_match.trim() == "*" || if_none_match.split(',').any(|t| opaque(t) == opaque(etag))
}

/// Streams the object converted to CSV or JSON Lines: R2 bytes flow through
/// an [`Exporter`] chunk by chunk, so memory stays at about one block.
fn export(
    obj: worker::Object,
    format: Format,
    headers: Headers,
    id: &JobId,
) -> Result<Response, Error> {
    let bytes = obj
        .body()
        .ok_or_else(|| StoreError::Backend("result object has no body".to_owned()))?
        .stream()
        .map_err(|e| StoreError::Backend(e.to_string()))?;
    let _ = headers.set("content-type", format.content_type());
    let ext = match format {
        Format::Csv => "csv",
        Format::JsonLines => "jsonl",
    };
    let _ = headers.set(
        "content-disposition",
        &format!("attachment; filename=\"{id}.{ext}\""),
    );
    let state = (bytes, Some(Exporter::new(format)));
    let stream = futures::stream::unfold(state, |(mut bytes, exporter)| async move {
        let mut exporter = exporter?;
        loop {
            let next = match bytes.next().await {
                Some(Ok(chunk)) => exporter.push(&chunk),
                Some(Err(e)) => Err(tsp_core::codec::CodecError::Invalid(e.to_string())),
                None => {
                    let tail = exporter
                        .finish()
                        .map_err(|e| worker::Error::RustError(e.to_string()));
                    return Some((tail, (bytes, None)));
                }
            };
            match next {
                Ok(text) if text.is_empty() => continue,
                Ok(text) => return Some((Ok(text), (bytes, Some(exporter)))),
                Err(e) => {
                    return Some((Err(worker::Error::RustError(e.to_string())), (bytes, None)))
                }
            }
        }
    });
    let resp = Response::from_stream(stream).map_err(|e| StoreError::Backend(e.to_string()))?;
    Ok(resp.with_status(200).with_headers(headers))
}

async fn get_archive(b: &Bindings, owner: &str, id: &str) -> Result<Response, Error> {
    let job = owned_job(b, owner, id).await?;
    let (JobStatus::FailedPermanent, Some(at)) = (job.status, job.finished_at) else {
        return Err(Error::Conflict(format!(
            "job is {}; only dead jobs have an archive",
            job.status
        )));
    };
    let key = archive_key(job.id.as_str(), at);
    let bytes = b.blobs.get(&key).await?.ok_or(Error::NotFound)?;
    let doc: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(json(200, &serde_json::json!({"key": key, "archive": doc})))
}

async fn get_aggregates(req: &Request, b: &Bindings, owner: &str) -> Result<Response, Error> {
    let q = query_map(req)?;
    let need = |k: &str| {
        q.get(k)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ValidationError::single(k, "is required"))
    };
    let site = tsp_core::domain::Site::parse(need("site")?)
        .map_err(|m| ValidationError::single("site", m))?;
    let point = tsp_core::domain::PointName::parse(need("point")?)
        .map_err(|m| ValidationError::single("point", m))?;
    let res = Resolution::parse(q.get("resolution").map_or("1d", String::as_str))
        .ok_or_else(|| ValidationError::single("resolution", "must be 1h or 1d"))?;
    let time = |k: &str| -> Result<i64, ValidationError> {
        parse_rfc3339(need(k)?).ok_or_else(|| ValidationError::single(k, "must be RFC 3339"))
    };
    let (from, to) = (time("from")?, time("to")?);
    if to <= from || to - from > 366 * DAY_MS {
        return Err(ValidationError::single("to", "must be after from, at most 366 days").into());
    }
    let limit = match q.get("limit") {
        None => MAX_AGG_LIMIT,
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_AGG_LIMIT).contains(n))
            .ok_or_else(|| ValidationError::single("limit", "must be 1 to 1000"))?,
    };
    let key = aggregates_cache_key(
        owner,
        &[site.as_str(), point.as_str(), res.as_str()],
        (from, to, limit),
    );
    if let Some(hit) = cache_get(b, &key).await {
        return Ok(hit);
    }
    let mut rows =
        b.db.query(&store::select_aggregates(
            owner,
            site.as_str(),
            point.as_str(),
            res.as_str(),
            from,
            to,
            limit,
        ))
        .await?;
    // `partial` is stored as 0/1; clients get a boolean.
    for r in &mut rows {
        let partial = r.get("partial").and_then(|v| v.as_i64()).unwrap_or(0) != 0;
        r.insert("partial".to_owned(), partial.into());
    }
    // The next page starts just after the last bucket returned.
    let next = (rows.len() as i64 == limit)
        .then(|| {
            rows.last()
                .and_then(|r| r.get("bucket_start"))
                .and_then(|v| v.as_f64())
        })
        .flatten()
        .map(|last| format_rfc3339(last as i64 + 1_000));
    let complete = !rows.is_empty() && rows.iter().all(|r| r["partial"] == false);
    let body = serde_json::json!({
        "site": site.as_str(),
        "point": point.as_str(),
        "resolution": res.as_str(),
        "rows": rows,
        "next_from": next,
    })
    .to_string();
    if complete {
        cache_put(b, &key, &body).await;
    }
    Ok(cached_json(body, "MISS"))
}

/// How long a page of complete aggregate buckets is served from the cache.
const AGGREGATES_TTL_S: u32 = 60;

/// The cache key of an aggregates query: the owner (hashed) and the parsed
/// query, so two owners never share an entry and equivalent spellings of
/// one query do.
fn aggregates_cache_key(owner: &str, what: &[&str], (from, to, limit): (i64, i64, i64)) -> String {
    use sha2::{Digest, Sha256};
    let owner = hex::encode(&Sha256::digest(owner.as_bytes())[..16]);
    let enc = tsp_core::upstream::escape;
    format!(
        "https://aggregates.cache.invalid/{owner}?site={}&point={}&resolution={}&from={from}&to={to}&limit={limit}",
        enc(what[0]),
        enc(what[1]),
        what[2]
    )
}

fn cached_json(body: String, cache: &str) -> Response {
    let headers = Headers::new();
    let _ = headers.set("content-type", "application/json");
    let _ = headers.set("x-cache", cache);
    let _ = headers.set(
        "cache-control",
        &format!("private, max-age={AGGREGATES_TTL_S}"),
    );
    ResponseBuilder::new()
        .with_status(200)
        .with_headers(headers)
        .fixed(body.into_bytes())
}

/// A cached page, if the Workers Cache holds one (bounded by the storage
/// timeout; a cache failure is a miss, never an error).
async fn cache_get(b: &Bindings, key: &str) -> Option<Response> {
    let cache = worker::Cache::default();
    let got = within(&b.clock, b.cfg.storage_timeout_ms, cache.get(key, false)).await;
    let mut resp = got?.ok()??;
    let body = resp.text().await.ok()?;
    Some(cached_json(body, "HIT"))
}

/// Stores a page of complete buckets for [`AGGREGATES_TTL_S`].
async fn cache_put(b: &Bindings, key: &str, body: &str) {
    let headers = Headers::new();
    let _ = headers.set("content-type", "application/json");
    let _ = headers.set("cache-control", &format!("max-age={AGGREGATES_TTL_S}"));
    let Ok(resp) = ResponseBuilder::new()
        .with_status(200)
        .with_headers(headers)
        .ok(body.to_owned())
    else {
        return;
    };
    let cache = worker::Cache::default();
    let put = within(&b.clock, b.cfg.storage_timeout_ms, cache.put(key, resp)).await;
    if !matches!(put, Some(Ok(()))) {
        worker::console_warn!("aggregates cache put failed for {key}");
    }
}
