//! The routes, one module per resource, and the extractors they share.
//!
//! Everything a route needs from the request is parsed here, once, at the
//! edge: the query, into a route's parameter set ([`query`]; each set is
//! also its OpenAPI parameters), a page of a list ([`Page`]), the job id
//! ([`owned_job`]) and the body ([`read_body`]). A route receives typed
//! values and answers a typed body (`tsp_core::api`).

pub mod aggregates;
pub mod dead_letters;
pub mod doc;
pub mod jobs;
pub mod meta;
pub mod results;
pub mod stats;

use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use tsp_cloudflare::Bindings;
use tsp_core::api::MAX_LIST_LIMIT;
use tsp_core::domain::JobId;
use tsp_core::error::{Error, ValidationError};
use tsp_core::job::{Job, JobStatus};
use tsp_core::ports::SqlDb;
use tsp_core::store;
use utoipa::IntoParams;
use worker::{Method, Request, Response};

use crate::MAX_BODY_BYTES;

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
    let cx = Cx { b, owner };
    match (method, segs.as_slice()) {
        (Method::Post, ["v1", "jobs"]) => jobs::submit(&mut req, cx).await,
        (Method::Get, ["v1", "jobs"]) => jobs::list(&req, cx).await,
        (Method::Get, ["v1", "jobs", id]) => jobs::get(cx, id).await,
        (Method::Delete, ["v1", "jobs", id]) => jobs::cancel(cx, id).await,
        (Method::Get, ["v1", "jobs", id, "result"]) => results::get(&req, cx, id).await,
        (Method::Get, ["v1", "jobs", id, "archive"]) => dead_letters::archive(cx, id).await,
        (Method::Post, ["v1", "jobs", id, "retry"]) => dead_letters::retry(cx, id).await,
        (Method::Get, ["v1", "dead-letters"]) => dead_letters::list(&req, cx).await,
        (Method::Get, ["v1", "stats"]) => stats::stats(cx).await,
        (Method::Get, ["v1", "metrics"]) => stats::metrics(cx).await,
        (Method::Get, ["v1", "aggregates"]) => aggregates::get(&req, cx).await,
        (Method::Get, ["openapi.json"]) => Ok(meta::openapi_json()),
        (_, segs) => Err(allowed(segs).map_or(Error::NotFound, Error::MethodNotAllowed)),
    }
}

/// What every route gets: the bindings and the caller.
#[derive(Clone, Copy)]
pub struct Cx<'a> {
    /// Storage, queue, clock and config.
    pub b: &'a Bindings,
    /// The authenticated owner.
    pub owner: &'a str,
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

/// The query string as `T`, decoded once. Every field of a parameter set
/// is a string (or absent), so decoding cannot fail; each set's own `parse`
/// then validates the values and names the first field that is wrong.
pub fn query<T: DeserializeOwned>(req: &Request) -> Result<T, Error> {
    let url = req
        .url()
        .map_err(|e| ValidationError::single("url", &e.to_string()))?;
    // The last of a repeated name wins.
    let pairs: serde_json::Map<String, serde_json::Value> = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned().into()))
        .collect();
    serde_json::from_value(pairs.into())
        .map_err(|e| ValidationError::single("query", &e.to_string()).into())
}

/// A present, non-empty parameter, or a 422 naming it.
pub fn required<'a>(v: &'a Option<String>, name: &str) -> Result<&'a str, ValidationError> {
    v.as_deref()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ValidationError::single(name, "is required"))
}

/// `limit` within `1..=max`, `default` when absent.
pub fn limit(v: &Option<String>, default: i64, max: i64) -> Result<i64, ValidationError> {
    match v {
        None => Ok(default),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| ValidationError::single("limit", &format!("must be 1 to {max}"))),
    }
}

/// The job id in a path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct JobIdParam {
    /// A job id; anything that is not 32 lowercase hex characters answers 404.
    id: JobId,
}

/// The parameters of a page of a job list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Jobs per page.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100, default = 50)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^-?[0-9]{1,19}(\\.[0-9a-f]{32})?$")]
    pub cursor: Option<String>,
}

/// A page of a job list: `limit` (default 50, at most
/// [`MAX_LIST_LIMIT`]) and `cursor` (`created_at.id` of the last job of
/// the previous page, from `next_cursor`).
pub struct Page {
    /// Jobs per page.
    pub limit: i64,
    /// Jobs strictly before this `(created_at, id)`.
    pub before: (i64, String),
}

impl Page {
    /// Validates `limit` and `cursor`.
    pub fn parse(p: &PageParams) -> Result<Self, ValidationError> {
        let limit = limit(&p.limit, 50, MAX_LIST_LIMIT)?;
        let bad = || ValidationError::single("cursor", "must come from next_cursor");
        let before = match p.cursor.as_deref() {
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
        Ok(Self { limit, before })
    }

    /// This page of the owner's jobs, optionally of one status.
    pub async fn jobs(&self, cx: Cx<'_>, status: Option<JobStatus>) -> Result<Vec<Job>, Error> {
        let before = (self.before.0, self.before.1.as_str());
        let stmt = store::select_owner_jobs(cx.owner, status, before, self.limit);
        Ok(store::decode(cx.b.db.query(&stmt).await?)?)
    }

    /// The cursor of the page after `jobs`, if it was full.
    pub fn next(&self, jobs: &[Job]) -> Option<String> {
        (jobs.len() as i64 == self.limit)
            .then(|| jobs.last().map(|j| format!("{}.{}", j.created_at, j.id)))
            .flatten()
    }
}

/// The caller's job with this id: an id that cannot exist, or another
/// owner's job, is simply not found.
pub async fn owned_job(cx: Cx<'_>, id: &str) -> Result<Job, Error> {
    let id = job_id(id)?;
    store::get_job(&cx.b.db, store::select_owned_job(&id, cx.owner))
        .await?
        .ok_or(Error::NotFound)
}

/// A job id from the path (404 when it cannot be one).
pub fn job_id(id: &str) -> Result<JobId, Error> {
    JobId::parse(id).map_err(|_| Error::NotFound)
}

/// Reads the body chunk by chunk and stops past [`MAX_BODY_BYTES`], so a
/// body without `Content-Length` is never buffered whole.
pub async fn read_body(req: &mut Request) -> Result<Vec<u8>, Error> {
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

/// The log sink of owner actions.
pub fn log_line(line: &str) {
    worker::console_log!("{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(limit: Option<&str>, cursor: Option<&str>) -> Result<Page, ValidationError> {
        Page::parse(&PageParams {
            limit: limit.map(str::to_owned),
            cursor: cursor.map(str::to_owned),
        })
    }

    #[test]
    fn a_page_takes_limit_1_to_100_and_a_cursor_from_next_cursor() {
        let p = page(None, None).unwrap();
        assert_eq!((p.limit, p.before), (50, (i64::MAX, String::new())));
        assert_eq!(page(Some("100"), None).unwrap().limit, 100);
        for bad in ["0", "101", "x", ""] {
            let e = page(Some(bad), None).err().unwrap();
            assert_eq!(e.errors[0].field, "limit", "{bad}");
        }
        let id = "0123456789abcdef0123456789abcdef";
        let p = page(None, Some(&format!("1700.{id}"))).unwrap();
        assert_eq!(p.before, (1700, id.to_owned()));
        assert_eq!(page(None, Some("-5")).unwrap().before, (-5, String::new()));
        for bad in ["x.y", "12.notanid", ".abc"] {
            let e = page(None, Some(bad)).err().unwrap();
            assert_eq!(e.errors[0].field, "cursor", "{bad}");
        }
    }

    #[test]
    fn a_required_parameter_must_be_present_and_non_empty() {
        assert_eq!(required(&Some("a".into()), "site").unwrap(), "a");
        for v in [None, Some(String::new())] {
            assert_eq!(required(&v, "site").unwrap_err().errors[0].field, "site");
        }
    }
}
