//! ACE FlightDeck, as it really answers (`../shared/PLATFORM.md` §4).
//!
//! - `GET /sites/{site}/timeseries/paginated`: every point of the site,
//!   time-major; `point_names` is ignored, so none is sent and the page
//!   parser keeps the job's points. The cursor is repaired ([`super::cursor`]),
//!   a page identical to the one before is an error, and a window's walk
//!   has a bound on pages.
//! - `GET /points/{name}/timeseries`: one point, unpaginated; the name is
//!   one percent-encoded path segment. A span whose answer passes the byte
//!   cap or times out is halved. A 404 (a point the upstream does not
//!   know) yields no samples, as the site walk would.
//! - `GET /sites/{site}/configured_points`: the site's size.
//! - A 403 on a site is [`UpstreamError::SiteRejected`]: that job fails,
//!   the circuit never hears of it. A 401 is a missing token, and ACE's
//!   500 for a wrong token is transient; both keep the body's start.

use serde::Deserialize;

use super::cursor::{self, Position};
use super::{escape, plain_status, send_with_retry, Source, Traffic, WindowQuery};
use crate::config::Config;
use crate::domain::{format_rfc3339, EpochMs, HOUR_MS};
use crate::error::{Error, UpstreamError};
use crate::plan::{Plan, SiteInfo};
use crate::ports::{Clock, HttpClient};
use crate::sample::{parse_page, PointSet, Samples, TimeParser};

/// `per_page` for `configured_points`: one of ACE's sizes, enough for a
/// large site in one request.
const CATALOGUE_PER_PAGE: u32 = 10_000;
/// Most catalogue pages read (a million points).
const CATALOGUE_MAX_PAGES: u32 = 100;
/// A per-point span is not halved below this.
const MIN_SPLIT_MS: i64 = HOUR_MS;
/// Bytes of a page's start and end kept to notice a repeated page.
const PAGE_EDGE_BYTES: usize = 256;

/// The ACE client: an HTTP port, a clock and the settings.
pub struct Ace<'a, H, C> {
    http: &'a H,
    clock: &'a C,
    cfg: &'a Config,
}

impl<'a, H: HttpClient, C: Clock> Ace<'a, H, C> {
    /// A client over these ports.
    pub fn new(http: &'a H, clock: &'a C, cfg: &'a Config) -> Self {
        Self { http, clock, cfg }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.cfg.upstream_url)
    }
}

/// A 403 on a site's endpoint: the site is unknown or not ours.
fn site_status(site: &str) -> impl Fn(u16, &[u8], Option<u64>) -> UpstreamError + '_ {
    move |status, body, hint| match status {
        403 => UpstreamError::SiteRejected(site.to_owned()),
        _ => plain_status(status, body, hint),
    }
}

#[derive(Deserialize)]
struct CatalogueItem {
    name: String,
    #[serde(default)]
    collect_enabled: Option<bool>,
}

#[derive(Deserialize)]
struct CataloguePage {
    items: Vec<CatalogueItem>,
    #[serde(default)]
    pages: u32,
}

impl<H: HttpClient, C: Clock> Source for Ace<'_, H, C> {
    async fn site_info(
        &self,
        site: &str,
        traffic: &mut Traffic,
    ) -> Result<(SiteInfo, Vec<String>), Error> {
        let mut names = Vec::new();
        let mut info = SiteInfo {
            points: 0,
            enabled: 0,
            max_name_bytes: 0,
        };
        let status = site_status(site);
        for page in 1..=CATALOGUE_MAX_PAGES {
            let url = self.url(&format!(
                "/sites/{}/configured_points?page={page}&per_page={CATALOGUE_PER_PAGE}",
                escape(site)
            ));
            let body: CataloguePage = send_with_retry(
                self.http,
                self.clock,
                self.cfg,
                (&url, false),
                traffic,
                &status,
                |b| serde_json::from_slice(b).map_err(|e| format!("configured_points: {e}")),
            )
            .await?;
            for item in &body.items {
                info.points += 1;
                info.enabled += u64::from(item.collect_enabled.unwrap_or(true));
                info.max_name_bytes = info.max_name_bytes.max(item.name.len() as u64);
                if item.collect_enabled.unwrap_or(true) {
                    names.push(item.name.clone());
                }
            }
            if body.items.is_empty() || page >= body.pages {
                break;
            }
        }
        Ok((info, names))
    }

    async fn fetch_window<F, Fut>(
        &self,
        q: &WindowQuery<'_>,
        outs: &mut [Samples],
        traffic: &mut Traffic,
        between: F,
    ) -> Result<(), Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(), Error>>,
    {
        match q.plan {
            Plan::Site => self.walk(q, outs, traffic, between).await,
            Plan::Point => self.per_point(q, outs, traffic, between).await,
        }
    }
}

/// Enough of a page to tell it from the next one: its length and edges.
#[derive(PartialEq, Eq)]
struct PageEdges(usize, Vec<u8>);

impl PageEdges {
    fn of(body: &[u8]) -> Self {
        let n = body.len();
        let mut edges = body[..n.min(PAGE_EDGE_BYTES)].to_vec();
        edges.extend_from_slice(&body[n.saturating_sub(PAGE_EDGE_BYTES)..]);
        Self(n, edges)
    }
}

/// Most pages a window's walk may take: what the window can hold
/// (`CHUNK_MAX_SAMPLES` of the job's points, scaled to the whole site),
/// in pages, and never more than one invocation may request.
pub fn page_bound(cfg: &Config, q: &WindowQuery<'_>) -> u64 {
    let job = q.names.len().max(1) as u64;
    let site_rows = cfg.chunk_max_samples.saturating_mul(q.site_points.max(job)) / job;
    (site_rows.div_ceil(u64::from(q.page_size.max(1))) + 2).min(cfg.subrequest_budget.max(3))
}

fn total(outs: &[Samples]) -> u64 {
    outs.iter().map(|s| s.len() as u64).sum()
}

impl<H: HttpClient, C: Clock> Ace<'_, H, C> {
    fn walk_url(&self, q: &WindowQuery<'_>, pos: &Position) -> String {
        let mut url = self.url(&format!(
            "/sites/{}/timeseries/paginated?start_time={}&end_time={}&page_size={}&raw_data=true",
            escape(q.site),
            escape(&format_rfc3339(q.start)),
            escape(&format_rfc3339(q.end)),
            q.page_size,
        ));
        if let Some(c) = &pos.cursor {
            url.push_str("&cursor=");
            url.push_str(&escape(&c.encode()));
        }
        url
    }

    /// One time-major walk of the site's pages over the window.
    async fn walk<F, Fut>(
        &self,
        q: &WindowQuery<'_>,
        outs: &mut [Samples],
        traffic: &mut Traffic,
        mut between: F,
    ) -> Result<(), Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(), Error>>,
    {
        let bound = page_bound(self.cfg, q);
        let status = site_status(q.site);
        let mut times = TimeParser::default();
        let (mut pos, mut prev, mut pages) = (Position::default(), None, 0u64);
        loop {
            if pages > 0 {
                between().await?;
            }
            if pages >= bound {
                return Err(walk_too_long(q, bound));
            }
            let url = self.walk_url(q, &pos);
            // The next cursor is part of reading the page: a page it cannot
            // be computed from (no rows yet more to come, a cursor naming
            // another row) is malformed, retried in place up to
            // MALFORMED_LIMIT, then permanent, and leaves `outs` as it was.
            let (next, edges): (Option<Position>, PageEdges) = send_with_retry(
                self.http,
                self.clock,
                self.cfg,
                (&url, false),
                traffic,
                &status,
                |b| read_walk_page(b, q, &pos, &mut times, outs),
            )
            .await?;
            pages += 1;
            if prev.as_ref() == Some(&edges) {
                return Err(malformed(
                    "the upstream sent the same page twice in a row",
                    true,
                ));
            }
            self.check_cap(q, outs)?;
            let Some(next) = next else {
                return Ok(());
            };
            pos = next;
            prev = Some(edges);
        }
    }

    fn check_cap(&self, q: &WindowQuery<'_>, outs: &[Samples]) -> Result<(), Error> {
        if total(outs) > self.cfg.chunk_max_samples {
            return Err(UpstreamError::TooLarge(format!(
                "the window of site {} from {} holds more than {} samples (CHUNK_MAX_SAMPLES)",
                q.site,
                format_rfc3339(q.start),
                self.cfg.chunk_max_samples
            ))
            .into());
        }
        Ok(())
    }

    /// One request per point, each span halved when its answer is too
    /// large or too slow.
    async fn per_point<F, Fut>(
        &self,
        q: &WindowQuery<'_>,
        outs: &mut [Samples],
        traffic: &mut Traffic,
        mut between: F,
    ) -> Result<(), Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(), Error>>,
    {
        for (name, out) in q.names.iter().zip(outs.iter_mut()) {
            let one = PointSet::new(std::slice::from_ref(name));
            let mut spans = vec![(q.start, q.end)];
            while let Some((s, e)) = spans.pop() {
                between().await?;
                match self
                    .point_span(name.as_str(), &one, s, e, out, traffic)
                    .await
                {
                    Ok(()) => {}
                    Err(Error::Upstream(
                        UpstreamError::TooLarge(_) | UpstreamError::Timeout(_),
                    )) if e - s > MIN_SPLIT_MS => {
                        let mid = s + (e - s) / 2;
                        spans.push((mid, e));
                        spans.push((s, mid));
                    }
                    Err(err) => return Err(err),
                }
            }
        }
        self.check_cap(q, outs)
    }

    /// `[s, e)` of one point. A span that could still be halved fails at
    /// its first timeout instead of retrying it in place.
    async fn point_span(
        &self,
        name: &str,
        one: &PointSet,
        s: EpochMs,
        e: EpochMs,
        out: &mut Samples,
        traffic: &mut Traffic,
    ) -> Result<(), Error> {
        let url = self.url(&format!(
            "/points/{}/timeseries?start_time={}&end_time={}",
            escape(name),
            escape(&format_rfc3339(s)),
            escape(&format_rfc3339(e)),
        ));
        let splittable = e - s > MIN_SPLIT_MS;
        let mut times = TimeParser::default();
        let outs = std::slice::from_mut(out);
        let target = (url.as_str(), splittable);
        let got = send_with_retry(
            self.http,
            self.clock,
            self.cfg,
            target,
            traffic,
            &plain_status,
            |b| parse_page(b, one, s, e, &mut times, outs).map(drop),
        )
        .await;
        match got {
            // A point the upstream does not know has no samples, as in a
            // site walk; the job view lists it with the others.
            Err(Error::Upstream(UpstreamError::Status { status: 404, .. })) => Ok(()),
            Err(Error::Upstream(UpstreamError::Status { status: 403, .. })) => {
                Err(UpstreamError::SiteRejected(name.to_owned()).into())
            }
            other => other,
        }
    }
}

fn malformed(detail: &str, permanent: bool) -> Error {
    UpstreamError::Malformed {
        detail: detail.to_owned(),
        permanent,
    }
    .into()
}

/// Reads one page of a site walk into `outs`, with the cursor of the
/// next (`None` on the last page). A page the next cursor cannot be
/// computed from leaves `outs` as it was.
fn read_walk_page(
    b: &[u8],
    q: &WindowQuery<'_>,
    pos: &Position,
    times: &mut TimeParser,
    outs: &mut [Samples],
) -> Result<(Option<Position>, PageEdges), String> {
    let marks: Vec<_> = outs.iter().map(Samples::mark).collect();
    let page = parse_page(b, q.points, q.start, q.end, times, outs)?;
    let next = match page.has_more {
        false => None,
        true => match cursor::next(pos, &page, times) {
            Ok(next) => Some(next),
            Err(e) => {
                for (out, m) in outs.iter_mut().zip(marks) {
                    out.rewind(m);
                }
                return Err(e);
            }
        },
    };
    Ok((next, PageEdges::of(b)))
}

/// A walk that passed its page bound without ending.
fn walk_too_long(q: &WindowQuery<'_>, bound: u64) -> Error {
    UpstreamError::TooLarge(format!(
        "the walk of site {} from {} passed {bound} pages of {} rows without ending \
         (the bound from CHUNK_MAX_SAMPLES and the site's {} points)",
        q.site,
        format_rfc3339(q.start),
        q.page_size,
        q.site_points
    ))
    .into()
}
