//! `/v1/aggregates`: stored buckets of one point, the caller's own, with
//! pages of complete buckets served from the Workers Cache.

use crate::error::HttpError;
use tsp_core::aggregate::Resolution;
use tsp_core::api::{AggregateRow, Aggregates, MAX_AGG_LIMIT};
use tsp_core::domain::{format_rfc3339, EpochMs, PointName, Site, DAY_MS};
use tsp_core::error::{Error, ValidationError};
use tsp_core::ports::SqlDb;
use tsp_core::store;
use worker::{Headers, Request, Response, ResponseBuilder};

use super::doc::{Forbidden, GatewayTimeout, InvalidRequest, ServiceUnavailable, Unauthorized};
use super::{cache, limit, query, required, time, Cx};

/// How long a page of complete aggregate buckets is served from the cache.
pub const AGGREGATES_TTL_S: u32 = 60;

/// A parsed aggregates query.
#[derive(Debug)]
struct AggregatesQuery {
    site: Site,
    point: PointName,
    resolution: Resolution,
    from: EpochMs,
    to: EpochMs,
    limit: i64,
}

/// The parameters of an aggregates query.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AggregatesParams {
    /// The site.
    #[param(value_type = Site, required = true, example = "demo-site")]
    site: Option<String>,
    /// The point.
    #[param(value_type = PointName, required = true, example = "ses/ses_demo-site/zone1/temp")]
    point: Option<String>,
    /// First bucket start (inclusive).
    #[param(value_type = String, format = DateTime, required = true, example = "2025-01-01T00:00:00Z")]
    from: Option<String>,
    /// End (exclusive); after `from`, at most 366 days later.
    #[param(value_type = String, format = DateTime, required = true, example = "2025-02-01T00:00:00Z")]
    to: Option<String>,
    /// Bucket width.
    #[param(inline, value_type = Option<tsp_core::api::ResolutionSchema>, default = "1d")]
    resolution: Option<String>,
    /// Buckets per page.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000, default = 1000)]
    limit: Option<String>,
}

impl AggregatesQuery {
    fn parse(p: &AggregatesParams) -> Result<Self, ValidationError> {
        let site = Site::parse(required(&p.site, "site")?)
            .map_err(|m| ValidationError::single("site", m))?;
        let point = PointName::parse(required(&p.point, "point")?)
            .map_err(|m| ValidationError::single("point", m))?;
        let resolution = Resolution::parse(p.resolution.as_deref().unwrap_or("1d"))
            .ok_or_else(|| ValidationError::single("resolution", "must be 1h or 1d"))?;
        let (from, to) = (time(&p.from, "from")?, time(&p.to, "to")?);
        if to <= from || to - from > 366 * DAY_MS {
            return Err(ValidationError::single(
                "to",
                "must be after from, at most 366 days",
            ));
        }
        let limit = limit(&p.limit, MAX_AGG_LIMIT, MAX_AGG_LIMIT)?;
        Ok(Self {
            site,
            point,
            resolution,
            from,
            to,
            limit,
        })
    }

    /// The cache key: the owner (hashed) and the parsed query, so two owners
    /// never share an entry and equivalent spellings of one query do.
    fn cache_key(&self, owner: &str) -> String {
        use sha2::{Digest, Sha256};
        let owner = hex::encode(&Sha256::digest(owner.as_bytes())[..16]);
        let enc = tsp_core::upstream::escape;
        format!(
            "https://aggregates.cache.invalid/{owner}?site={}&point={}&resolution={}&from={}&to={}&limit={}",
            enc(self.site.as_str()),
            enc(self.point.as_str()),
            self.resolution.as_str(),
            self.from,
            self.to,
            self.limit
        )
    }
}

/// Stored hourly or daily buckets of one point, the caller's own.
///
/// Aggregates belong to the owner whose jobs wrote them: another token sees
/// none of them.
#[utoipa::path(get, path = "/v1/aggregates", operation_id = "getAggregates", tag = "aggregates",
    params(AggregatesParams),
    responses(
        (status = 200, description = "A page of buckets; `next_from` starts the next page.", body = Aggregates,
            headers(("X-Cache" = String, description = "HIT when the page came from the Workers Cache (pages of complete buckets only, at most 60 s old), MISS otherwise."),
                ("Cache-Control" = String, description = "`private, max-age=60`."))),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 422, response = InvalidRequest),
        (status = 503, response = ServiceUnavailable), (status = 504, response = GatewayTimeout)))]
pub async fn get(req: &Request, cx: Cx<'_>) -> Result<Response, HttpError> {
    let aq = AggregatesQuery::parse(&query(req)?)?;
    cx.grant.check(aq.site.as_str())?;
    let key = aq.cache_key(cx.owner);
    if let Some((body, _)) = cache::get(cx, &key).await {
        return Ok(cached_json(
            String::from_utf8_lossy(&body).into_owned(),
            "HIT",
        ));
    }
    let rows =
        cx.b.db
            .query(&store::select_aggregates(
                cx.owner,
                aq.site.as_str(),
                aq.point.as_str(),
                aq.resolution.as_str(),
                aq.from,
                aq.to,
                aq.limit,
            ))
            .await?;
    let rows: Vec<AggregateRow> = store::decode(rows)?;
    // The next page starts just after the last bucket returned.
    let next_from = (rows.len() as i64 == aq.limit)
        .then(|| rows.last().map(|r| format_rfc3339(r.bucket_start + 1_000)))
        .flatten();
    let complete = !rows.is_empty() && rows.iter().all(|r| !r.partial);
    let page = Aggregates {
        site: aq.site.as_str().to_owned(),
        point: aq.point.as_str().to_owned(),
        resolution: aq.resolution,
        rows,
        next_from,
    };
    let body = serde_json::to_string(&page).map_err(|e| Error::Codec(e.to_string()))?;
    if complete {
        cache::put(
            cx,
            &key,
            body.as_bytes(),
            "application/json",
            AGGREGATES_TTL_S,
        )
        .await;
    }
    Ok(cached_json(body, "MISS"))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> AggregatesParams {
        let map: serde_json::Map<String, serde_json::Value> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string().into()))
            .collect();
        serde_json::from_value(map.into()).unwrap()
    }

    const OK: [(&str, &str); 4] = [
        ("site", "s"),
        ("point", "p"),
        ("from", "2025-01-01T00:00:00Z"),
        ("to", "2025-02-01T00:00:00Z"),
    ];

    #[test]
    fn a_query_parses_once_with_defaults() {
        let q = AggregatesQuery::parse(&params(&OK)).unwrap();
        assert_eq!(q.resolution, Resolution::Day);
        assert_eq!(q.limit, MAX_AGG_LIMIT);
        assert_eq!(q.to - q.from, 31 * DAY_MS);
    }

    #[test]
    fn each_bad_parameter_is_named() {
        let cases: [(&str, &str, &str); 6] = [
            ("site", "", "site"),
            ("point", "", "point"),
            ("from", "yesterday", "from"),
            ("to", "2024-01-01T00:00:00Z", "to"),
            ("resolution", "1w", "resolution"),
            ("limit", "1001", "limit"),
        ];
        for (k, v, field) in cases {
            let mut pairs: Vec<(&str, &str)> =
                OK.iter().filter(|(n, _)| *n != k).copied().collect();
            pairs.push((k, v));
            let e = AggregatesQuery::parse(&params(&pairs)).err().unwrap();
            assert_eq!(e.errors[0].field, field, "{k}={v}");
        }
    }

    #[test]
    fn two_owners_never_share_a_cache_entry_and_spellings_of_one_query_do() {
        let q = AggregatesQuery::parse(&params(&OK)).unwrap();
        assert_ne!(q.cache_key("alice"), q.cache_key("bob"));
        let mut other = OK.to_vec();
        other.push(("resolution", "1d"));
        other.push(("limit", "1000"));
        let same = AggregatesQuery::parse(&params(&other)).unwrap();
        assert_eq!(q.cache_key("alice"), same.cache_key("alice"));
    }
}
