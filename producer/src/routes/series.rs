//! `/v1/series`: chart-ready series of several points, as JSON or
//! MessagePack, cached like the aggregates of complete buckets.

use crate::error::HttpError;
use tsp_core::api::{Series, SeriesResolution};
use tsp_core::domain::{PointName, Site};
use tsp_core::error::{Error, ValidationError};
use tsp_core::service::series::{series as build, SeriesQuery};
use worker::{Headers, Request, Response, ResponseBuilder};

use super::doc::{Forbidden, GatewayTimeout, InvalidRequest, ServiceUnavailable, Unauthorized};
use super::{cache, required, time, Cx};

/// MessagePack's media type (seed 003's binary transfer).
pub const MSGPACK: &str = "application/msgpack";
/// How long a series of complete buckets is served from the cache.
const SERIES_TTL_S: u32 = 60;

/// The parameters of a series query.
#[derive(Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SeriesParams {
    /// The site.
    #[param(value_type = Site, required = true, example = "demo-site")]
    site: Option<String>,
    /// Points, comma separated (up to 20). A name holding a comma goes in
    /// a `point` parameter of its own instead (repeatable).
    #[param(value_type = Option<String>, example = "a,b")]
    #[allow(dead_code)]
    points: Option<String>,
    /// One point's full name (repeatable).
    #[param(value_type = Option<PointName>)]
    #[allow(dead_code)]
    point: Option<String>,
    /// Range start (inclusive; floored to a bucket start).
    #[param(value_type = String, format = DateTime, required = true, example = "2025-01-01T00:00:00Z")]
    from: Option<String>,
    /// Range end (exclusive); after `from`, at most 366 days later.
    #[param(value_type = String, format = DateTime, required = true, example = "2026-01-01T00:00:00Z")]
    to: Option<String>,
    /// The chart's width in pixels, 1 to 10,000: at most 2·width values per point.
    #[param(value_type = i64, required = true, minimum = 1, maximum = 10000, example = 1000)]
    width: Option<String>,
    /// What to draw from: stored hourly (`1h`) or daily (`1d`) buckets, or
    /// the samples (`raw`, ranges of at most 31 days); by default the
    /// coarsest that gives every pixel bucket data.
    #[param(inline, value_type = Option<SeriesResolution>)]
    resolution: Option<String>,
}

/// The query's pairs: every `point`, the `points` list, the rest by name.
fn params(req: &Request) -> Result<(SeriesParams, Vec<String>), ValidationError> {
    let url = req
        .url()
        .map_err(|e| ValidationError::single("url", &e.to_string()))?;
    let mut p = SeriesParams::default();
    let mut names = Vec::new();
    for (k, v) in url.query_pairs() {
        let v = v.into_owned();
        match k.as_ref() {
            "site" => p.site = Some(v),
            "points" => names.extend(v.split(',').filter(|s| !s.is_empty()).map(str::to_owned)),
            "point" => names.push(v),
            "from" => p.from = Some(v),
            "to" => p.to = Some(v),
            "width" => p.width = Some(v),
            "resolution" => p.resolution = Some(v),
            _ => {}
        }
    }
    Ok((p, names))
}

fn parse(p: &SeriesParams, names: &[String]) -> Result<SeriesQuery, ValidationError> {
    let site =
        Site::parse(required(&p.site, "site")?).map_err(|m| ValidationError::single("site", m))?;
    let mut points = Vec::with_capacity(names.len());
    for n in names {
        points.push(PointName::parse(n).map_err(|m| ValidationError::single("points", m))?);
    }
    let width = required(&p.width, "width")?
        .parse::<u32>()
        .map_err(|_| ValidationError::single("width", "must be 1 to 10000"))?;
    let resolution = match p.resolution.as_deref() {
        None | Some("") => None,
        Some("1h") => Some(SeriesResolution::Hour),
        Some("1d") => Some(SeriesResolution::Day),
        Some("raw") => Some(SeriesResolution::Raw),
        Some(_) => {
            let msg = "must be 1h, 1d or raw";
            return Err(ValidationError::single("resolution", msg));
        }
    };
    SeriesQuery {
        site,
        points,
        from: time(&p.from, "from")?,
        to: time(&p.to, "to")?,
        width,
        resolution,
    }
    .check()
}

/// Chart-ready series of several points of a site, the caller's own.
///
/// Per point at most `2·width` values: the range is cut into `width / 2`
/// pixel buckets aligned to UTC bucket starts, and each keeps its first,
/// lowest, highest and last value (M4), from the coarsest source that
/// fills every pixel: daily or hourly stored buckets, or for a range of at
/// most 31 days with fewer hours than pixel buckets the samples
/// themselves (`resolution: raw`: block range reads of the caller's result
/// objects, with a text point's state changes in `states`). JSON, or
/// MessagePack with `Accept: application/msgpack`. Drawn from the caller's
/// own aggregates and results: a point no completed job of theirs covered
/// has an empty series.
#[utoipa::path(get, path = "/v1/series", operation_id = "getSeries", tag = "aggregates",
    params(SeriesParams),
    responses(
        (status = 200, description = "The series.",
            content((Series = "application/json"), (Series = "application/msgpack")),
            headers(("X-Cache" = String, description = "HIT when it came from the Workers Cache (series of complete buckets only, at most 60 s old), MISS otherwise."),
                ("Cache-Control" = String, description = "`private, max-age=60`."))),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 422, response = InvalidRequest),
        (status = 503, response = ServiceUnavailable), (status = 504, response = GatewayTimeout)))]
pub async fn get(req: &Request, cx: Cx<'_>) -> Result<Response, HttpError> {
    let (p, names) = params(req)?;
    let q = parse(&p, &names)?;
    cx.grant.check(q.site.as_str())?;
    let accept = req
        .headers()
        .get("accept")
        .ok()
        .flatten()
        .unwrap_or_default();
    let msgpack = accept.contains(MSGPACK);
    let key = cache_key(cx.owner, &q, msgpack);
    if let Some((body, media)) = cache::get(cx, &key).await {
        return Ok(answer(body, &media, "HIT"));
    }
    let (series, complete) = build(&cx.b.db, &cx.b.blobs, cx.owner, &q).await?;
    let (body, media) = encode(&series, msgpack)?;
    if complete {
        cache::put(cx, &key, &body, media, SERIES_TTL_S).await;
    }
    Ok(answer(body, media, "MISS"))
}

/// The series as JSON or MessagePack (named fields, so both read alike).
fn encode(s: &Series, msgpack: bool) -> Result<(Vec<u8>, &'static str), Error> {
    if msgpack {
        let body = rmp_serde::to_vec_named(s).map_err(|e| Error::Codec(e.to_string()))?;
        return Ok((body, MSGPACK));
    }
    let body = serde_json::to_vec(s).map_err(|e| Error::Codec(e.to_string()))?;
    Ok((body, "application/json"))
}

fn answer(body: Vec<u8>, media: &str, cache: &str) -> Response {
    let headers = Headers::new();
    let _ = headers.set("content-type", media);
    let _ = headers.set("x-cache", cache);
    let _ = headers.set("cache-control", &format!("private, max-age={SERIES_TTL_S}"));
    let _ = headers.set("vary", "Accept");
    ResponseBuilder::new()
        .with_status(200)
        .with_headers(headers)
        .fixed(body)
}

/// The owner (hashed), the parsed query and the form: two owners never
/// share an entry.
fn cache_key(owner: &str, q: &SeriesQuery, msgpack: bool) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in &q.points {
        h.update(p.as_str().as_bytes());
        h.update([0]);
    }
    let owner = hex::encode(&Sha256::digest(owner.as_bytes())[..16]);
    format!(
        "https://series.cache.invalid/{owner}?site={}&points={}&from={}&to={}&width={}&resolution={}&msgpack={msgpack}",
        tsp_core::upstream::escape(q.site.as_str()),
        hex::encode(h.finalize()),
        q.from,
        q.to,
        q.width,
        match q.resolution() {
            SeriesResolution::Hour => "1h",
            SeriesResolution::Day => "1d",
            SeriesResolution::Raw => "raw",
        },
    )
}
