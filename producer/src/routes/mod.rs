//! The routes, one module per resource, and the extractors they share.
//!
//! Everything a route needs from the request is parsed here, once, at the
//! edge: the query, into a route's parameter set ([`query`]; each set is
//! also its OpenAPI parameters), a page of a list ([`Page`]), the job id
//! ([`owned_job`]) and the body ([`read_body`]). A route receives typed
//! values and answers a typed body (`tsp_core::api`).

pub mod admin;
pub mod aggregates;
mod cache;
pub mod dead_letters;
pub mod doc;
pub mod jobs;
pub mod meta;
pub mod results;
pub mod series;
pub mod stats;

use crate::error::HttpError;
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use tsp_cloudflare::Bindings;
use tsp_core::api::MAX_LIST_LIMIT;
use tsp_core::auth::Grant;
use tsp_core::domain::{parse_rfc3339, EpochMs, JobId};
use tsp_core::error::{Error, ValidationError};
use tsp_core::job::{Job, JobStatus};
use tsp_core::ports::SqlDb;
use tsp_core::store;
use utoipa::IntoParams;
use worker::{Request, Response};

use crate::MAX_BODY_BYTES;

/// The route table: every route once, by path, with who may call it,
/// its methods (the first GET also answers HEAD), its OpenAPI operation
/// and its handler. Dispatch ([`dispatch`]), the `Allow` header of a 405
/// ([`find`]) and the document's path list ([`openapi_paths`]) all come
/// from it. A path is `open` (no token, no bindings), `token` (an
/// `API_TOKENS` token) or `admin` (an `ADMIN_TOKENS` token).
macro_rules! route_table {
    (|$req:ident, $cx:ident, $p:ident| {
        $($path:literal ($access:ident) {
            $($method:ident $([$doc:path])? => $call:expr,)+
        })*
    }) => {
        /// Every path, its access, methods and `Allow` header.
        pub const PATHS: &[PathRoutes] = &[$(PathRoutes {
            pattern: $path,
            access: route_table!(@access $access),
            methods: &[$(stringify!($method)),+],
            allow: route_table!(@allow $($method)+),
        }),*];

        /// Runs the route `found` names. A `token` route runs only with
        /// the caller's context.
        pub async fn dispatch(
            found: &Found<'_>,
            $req: &mut Request,
            cx: Option<Cx<'_>>,
        ) -> Result<Response, HttpError> {
            let $p = &found.params;
            match (found.pattern, found.method) {
                $($(($path, stringify!($method)) => route_table!(@call $access, cx, $cx, $call),)+)*
                _ => Err(Error::NotFound.into()),
            }
        }

        /// The documented operations, for the OpenAPI document.
        #[allow(dead_code)]
        pub fn openapi_paths() -> utoipa::openapi::Paths {
            utoipa::openapi::path::PathsBuilder::new()
                $($($(.path_from::<Documented<$doc>>())?)+)*
                .build()
        }
    };
    (@access open) => { Access::Open };
    (@access token) => { Access::Token };
    (@access admin) => { Access::Admin };
    (@call open, $opt:ident, $cx:ident, $call:expr) => { $call };
    (@call token, $opt:ident, $cx:ident, $call:expr) => {
        match $opt {
            // A token route need not read its context (`/openapi.json`).
            #[allow(unused_variables)]
            Some($cx) => $call,
            None => Err(Error::NotFound.into()),
        }
    };
    (@call admin, $opt:ident, $cx:ident, $call:expr) => {
        match $opt {
            // A token route need not read its context (`/openapi.json`).
            #[allow(unused_variables)]
            Some($cx) => $call,
            None => Err(Error::NotFound.into()),
        }
    };
    (@allow $first:ident $($rest:ident)*) => {
        concat!(route_table!(@name $first) $(, ", ", route_table!(@name $rest))*)
    };
    (@name GET) => { "GET, HEAD" };
    (@name POST) => { "POST" };
    (@name DELETE) => { "DELETE" };
}

route_table! {
    |req, cx, p| {
        "/" (open) {
            GET => Ok(meta::page()),
        }
        "/healthz" (open) {
            GET [meta::__path_healthz] => Ok(meta::healthz()),
        }
        "/openapi.json" (token) {
            GET [meta::__path_openapi_json] => Ok(meta::openapi_json()),
        }
        "/v1/jobs" (token) {
            GET [jobs::__path_list] => jobs::list(req, cx).await,
            POST [jobs::__path_submit] => jobs::submit(req, cx).await,
        }
        "/v1/jobs/{id}" (token) {
            GET [jobs::__path_get] => jobs::get(cx, p.get("id")).await,
            DELETE [jobs::__path_cancel] => jobs::cancel(cx, p.get("id")).await,
        }
        "/v1/jobs/{id}/result" (token) {
            GET [results::__path_get] => results::get(req, cx, p.get("id")).await,
        }
        "/v1/jobs/{id}/result.parquet" (token) {
            GET [results::__path_parquet] => results::parquet(req, cx, p.get("id")).await,
        }
        "/v1/jobs/{id}/archive" (token) {
            GET [dead_letters::__path_archive] => dead_letters::archive(cx, p.get("id")).await,
        }
        "/v1/jobs/{id}/retry" (token) {
            POST [dead_letters::__path_retry] => dead_letters::retry(cx, p.get("id")).await,
        }
        "/v1/dead-letters" (token) {
            GET [dead_letters::__path_list] => dead_letters::list(req, cx).await,
        }
        "/v1/stats" (token) {
            GET [stats::__path_stats] => stats::stats(cx).await,
        }
        "/v1/metrics" (token) {
            GET [stats::__path_metrics] => stats::metrics(cx).await,
        }
        "/v1/aggregates" (token) {
            GET [aggregates::__path_get] => aggregates::get(req, cx).await,
        }
        "/v1/series" (token) {
            GET [series::__path_get] => series::get(req, cx).await,
        }
        "/v1/admin/sites/{site}/refresh" (admin) {
            POST [admin::__path_refresh] => admin::refresh(req, cx, p.get("site")).await,
        }
        "/v1/admin/sites/{site}/pause" (admin) {
            POST [admin::__path_pause] => admin::pause(req, cx, p.get("site")).await,
            DELETE [admin::__path_resume] => admin::resume(cx, p.get("site")).await,
        }
        "/v1/admin/pauses" (admin) {
            GET [admin::__path_pauses] => admin::pauses(cx).await,
        }
        "/v1/admin/dead-letters/retry" (admin) {
            POST [admin::__path_retry_dead] => admin::retry_dead(req, cx).await,
        }
    }
}

/// A route's `#[utoipa::path]` operation with its tags, as the `OpenApi`
/// derive adds one from its `paths(...)` list.
#[allow(dead_code)]
struct Documented<P>(std::marker::PhantomData<P>);

impl<P: utoipa::Path + utoipa::__dev::Tags<'static>> utoipa::__dev::PathConfig for Documented<P> {
    fn path() -> String {
        P::path()
    }
    fn methods() -> Vec<utoipa::openapi::path::HttpMethod> {
        P::methods()
    }
    fn tags_and_operation() -> (Vec<&'static str>, utoipa::openapi::path::Operation) {
        (P::tags(), P::operation())
    }
}

/// Who may call a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone: no token, and no bindings are read.
    Open,
    /// A caller with a bearer token.
    Token,
    /// An operator with a token from `ADMIN_TOKENS`.
    Admin,
}

/// One path of the table.
#[derive(Debug)]
pub struct PathRoutes {
    /// The path, `{name}` standing for one segment.
    pub pattern: &'static str,
    /// Who may call it.
    pub access: Access,
    /// Its methods, as on the wire (HEAD is implied by GET).
    pub methods: &'static [&'static str],
    /// Its `Allow` header.
    pub allow: &'static str,
}

/// The values of a route's `{name}` segments.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Params<'a>(Vec<(&'static str, &'a str)>);

impl Params<'_> {
    /// The segment named `name` (empty if the pattern has none).
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("", |(_, v)| v)
    }
}

/// A route found for a request.
#[derive(Debug)]
pub struct Found<'a> {
    /// The path's pattern.
    pub pattern: &'static str,
    /// The method of the route (GET for a HEAD).
    pub method: &'static str,
    /// Who may call it.
    pub access: Access,
    /// The values of its `{name}` segments.
    pub params: Params<'a>,
}

/// What the table says about a request.
#[derive(Debug)]
pub enum Match<'a> {
    /// A route.
    Route(Found<'a>),
    /// A known path, another method: 405 with this `Allow`.
    NotAllowed {
        /// The path's `Allow` header.
        allow: &'static str,
        /// Who may call the path.
        access: Access,
    },
    /// No such path: 404.
    NotFound,
}

/// Looks a request up in the table. `method` is the request's method as
/// sent (workers-rs reads methods it does not know as GET, so the raw one
/// is needed); HEAD finds the GET route (RFC 9110 §9.3.2). Slashes at the
/// ends of the path are ignored.
pub fn find<'a>(method: &str, path: &'a str) -> Match<'a> {
    let wanted = if method == "HEAD" { "GET" } else { method };
    for entry in PATHS {
        let Some(params) = matches(entry.pattern, path) else {
            continue;
        };
        return match entry.methods.iter().find(|m| **m == wanted) {
            Some(method) => Match::Route(Found {
                pattern: entry.pattern,
                method,
                access: entry.access,
                params,
            }),
            None => Match::NotAllowed {
                allow: entry.allow,
                access: entry.access,
            },
        };
    }
    Match::NotFound
}

/// The `{name}` values when `path` fits `pattern`, segment by segment.
fn matches<'a>(pattern: &'static str, path: &'a str) -> Option<Params<'a>> {
    let mut want = pattern.trim_matches('/').split('/');
    let mut got = path.trim_matches('/').split('/');
    let mut params = Params::default();
    loop {
        match (want.next(), got.next()) {
            (None, None) => return Some(params),
            (Some(w), Some(g)) => match w.strip_prefix('{').and_then(|w| w.strip_suffix('}')) {
                Some(name) => params.0.push((name, g)),
                None if w == g => {}
                None => return None,
            },
            _ => return None,
        }
    }
}

/// What every route gets: the bindings and the caller.
#[derive(Clone, Copy)]
pub struct Cx<'a> {
    /// Storage, queue, clock and config.
    pub b: &'a Bindings,
    /// The authenticated owner.
    pub owner: &'a str,
    /// The sites the caller's token may use.
    pub grant: &'a Grant,
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

/// A present RFC 3339 time parameter, or a 422 naming it.
pub fn time(v: &Option<String>, name: &str) -> Result<EpochMs, ValidationError> {
    parse_rfc3339(required(v, name)?)
        .ok_or_else(|| ValidationError::single(name, "must be RFC 3339"))
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
    pub before: (EpochMs, String),
}

impl Page {
    /// Validates `limit` and `cursor`.
    pub fn parse(p: &PageParams) -> Result<Self, ValidationError> {
        let limit = limit(&p.limit, 50, MAX_LIST_LIMIT)?;
        let bad = || ValidationError::single("cursor", "must come from next_cursor");
        let before = match p.cursor.as_deref() {
            None => (EpochMs::MAX, String::new()),
            Some(c) => {
                let (at, id) = c.split_once('.').unwrap_or((c, ""));
                let at = EpochMs(at.parse::<i64>().map_err(|_| bad())?);
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
        let sites = cx.grant.sites();
        let stmt = store::select_owner_jobs(cx.owner, status, before, self.limit, sites);
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
/// owner's job, is simply not found; a job of a site outside the token's
/// grant is forbidden (its view, result, archive and retry alike).
pub async fn owned_job(cx: Cx<'_>, id: &str) -> Result<Job, Error> {
    let id = job_id(id)?;
    let job = store::get_job(&cx.b.db, store::select_owned_job(&id, cx.owner))
        .await?
        .ok_or(Error::NotFound)?;
    cx.grant.check(job.site.as_str())?;
    Ok(job)
}

/// A job id from the path (404 when it cannot be one).
pub fn job_id(id: &str) -> Result<JobId, Error> {
    JobId::parse(id).map_err(|_| Error::NotFound)
}

/// Reads the body chunk by chunk and stops past [`MAX_BODY_BYTES`], so a
/// body without `Content-Length` is never buffered whole.
pub async fn read_body(req: &mut Request) -> Result<Vec<u8>, HttpError> {
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
            return Err(HttpError::PayloadTooLarge(MAX_BODY_BYTES));
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
        assert_eq!((p.limit, p.before), (50, (EpochMs::MAX, String::new())));
        assert_eq!(page(Some("100"), None).unwrap().limit, 100);
        for bad in ["0", "101", "x", ""] {
            let e = page(Some(bad), None).err().unwrap();
            assert_eq!(e.errors[0].field, "limit", "{bad}");
        }
        let id = "0123456789abcdef0123456789abcdef";
        let p = page(None, Some(&format!("1700.{id}"))).unwrap();
        assert_eq!(p.before, (EpochMs(1700), id.to_owned()));
        assert_eq!(
            page(None, Some("-5")).unwrap().before,
            (EpochMs(-5), String::new())
        );
        for bad in ["x.y", "12.notanid", ".abc"] {
            let e = page(None, Some(bad)).err().unwrap();
            assert_eq!(e.errors[0].field, "cursor", "{bad}");
        }
    }

    /// Every GET route in the table, with a path that fits it.
    fn get_routes() -> Vec<String> {
        PATHS
            .iter()
            .filter(|e| e.methods.contains(&"GET"))
            .map(|e| {
                e.pattern
                    .replace("{id}", "0123456789abcdef0123456789abcdef")
            })
            .collect()
    }

    #[test]
    fn head_finds_the_get_route_of_every_get_path_with_the_same_params() {
        let paths = get_routes();
        assert!(
            paths.contains(&"/".to_owned()) && paths.len() == 14,
            "{paths:?}"
        );
        for path in &paths {
            let (Match::Route(get), Match::Route(head)) = (find("GET", path), find("HEAD", path))
            else {
                panic!("GET and HEAD {path} must both find a route");
            };
            assert_eq!((head.pattern, head.method), (get.pattern, "GET"), "{path}");
            assert_eq!(
                (head.access, &head.params),
                (get.access, &get.params),
                "{path}"
            );
        }
        // HEAD / is the page, open like GET / (it answered 401/404 before).
        let Match::Route(page) = find("HEAD", "/") else {
            panic!("HEAD / must be the page")
        };
        assert_eq!((page.pattern, page.access), ("/", Access::Open));
    }

    #[test]
    fn any_other_method_on_a_known_path_is_405_with_its_allow() {
        let allow = |method: &str, path: &str| match find(method, path) {
            Match::NotAllowed { allow, access } => Some((allow, access)),
            _ => None,
        };
        for path in ["/", "/healthz"] {
            for method in [
                "TRACE", "POST", "PUT", "DELETE", "OPTIONS", "PURGE", "QUERY", "BREW", "get",
            ] {
                assert_eq!(
                    allow(method, path),
                    Some(("GET, HEAD", Access::Open)),
                    "{method} {path}"
                );
            }
        }
        let id = "/v1/jobs/0123456789abcdef0123456789abcdef";
        let cases = [
            ("PUT", "/v1/jobs", "GET, HEAD, POST"),
            ("PATCH", id, "GET, HEAD, DELETE"),
            ("DELETE", &*format!("{id}/result"), "GET, HEAD"),
            ("POST", &*format!("{id}/archive"), "GET, HEAD"),
            ("GET", &*format!("{id}/retry"), "POST"),
            ("HEAD", &*format!("{id}/retry"), "POST"),
            ("POST", "/v1/dead-letters", "GET, HEAD"),
            ("TRACE", "/v1/stats", "GET, HEAD"),
            ("QUERY", "/v1/metrics", "GET, HEAD"),
            ("DELETE", "/v1/aggregates", "GET, HEAD"),
            ("POST", "/openapi.json", "GET, HEAD"),
        ];
        for (method, path, want) in cases {
            assert_eq!(
                allow(method, path),
                Some((want, Access::Token)),
                "{method} {path}"
            );
        }
    }

    #[test]
    fn paths_match_segment_by_segment_and_unknown_ones_are_not_found() {
        let Match::Route(r) = find("POST", "/v1/jobs/abc/retry") else {
            panic!("retry")
        };
        assert_eq!(
            (r.pattern, r.method, r.params.get("id")),
            ("/v1/jobs/{id}/retry", "POST", "abc")
        );
        // Slashes at the ends are ignored, as before the table.
        assert!(matches!(
            find("GET", "/v1/jobs/"),
            Match::Route(Found {
                pattern: "/v1/jobs",
                ..
            })
        ));
        for path in [
            "/v1",
            "/v1/jobs/a/b",
            "/v1/jobs/a/result/x",
            "/nope",
            "/v1/stats/x",
            "/healthz/x",
        ] {
            assert!(matches!(find("GET", path), Match::NotFound), "{path}");
        }
    }

    #[test]
    fn every_route_but_the_page_is_in_the_openapi_document_and_nothing_else() {
        let paths = openapi_paths();
        let mut documented: Vec<(String, String)> = paths
            .paths
            .iter()
            .flat_map(|(path, item)| {
                let methods = serde_json::to_value(item).unwrap();
                let methods: Vec<String> = methods.as_object().unwrap().keys().cloned().collect();
                methods
                    .into_iter()
                    .map(move |m| (path.clone(), m.to_uppercase()))
            })
            .collect();
        let mut table: Vec<(String, String)> = PATHS
            .iter()
            .filter(|e| e.pattern != "/")
            .flat_map(|e| {
                e.methods
                    .iter()
                    .map(|m| (e.pattern.to_owned(), (*m).to_owned()))
            })
            .collect();
        documented.sort();
        table.sort();
        assert_eq!(documented, table);
    }

    #[test]
    fn a_required_parameter_must_be_present_and_non_empty() {
        assert_eq!(required(&Some("a".into()), "site").unwrap(), "a");
        for v in [None, Some(String::new())] {
            assert_eq!(required(&v, "site").unwrap_err().errors[0].field, "site");
        }
    }
}
