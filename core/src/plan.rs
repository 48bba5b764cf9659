//! How a job's windows are fetched: a site walk or per-point requests,
//! and which costs less.
//!
//! ACE cannot filter its paginated endpoint by point, so:
//! - [`Plan::Site`] walks the site's pages once per window, time-major,
//!   and keeps the job's points: each upstream byte once per job, however
//!   many of the site's points the job asks for;
//! - [`Plan::Point`] asks `/points/{name}/timeseries` once per point and
//!   window: only the job's own bytes, one request each.
//!
//! [`choose`] compares the two on expected bytes plus a per-request cost
//! (its latency, `UPSTREAM_REQUEST_COST_BYTES`), from the site's size
//! (`configured_points`, cached in D1). Either plan fills the same windows
//! ([`crate::chunk`]), so the result does not depend on the choice.

use serde::Deserialize;

use crate::config::Config;

pub use crate::config::PAGE_SIZES;
pub use crate::domain::PlanChoice;
pub use tsp_api::Plan;

/// Bytes of one row besides its name: `{"name":"","value":"…","time":"…"},`
/// with a value of up to 20 characters and a time with microseconds.
const ROW_OVERHEAD_BYTES: u64 = 80;

/// What the upstream says about a site (`configured_points`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct SiteInfo {
    /// Configured points.
    #[serde(deserialize_with = "crate::job::de::uint")]
    pub points: u64,
    /// Of those, the ones collecting data.
    #[serde(deserialize_with = "crate::job::de::uint")]
    pub enabled: u64,
    /// The longest point name, in bytes.
    #[serde(deserialize_with = "crate::job::de::uint")]
    pub max_name_bytes: u64,
}

/// The job's side of the choice.
#[derive(Debug, Clone, Copy)]
pub struct JobShape {
    /// Points asked for.
    pub points: u64,
    /// Their longest name, in bytes.
    pub max_name_bytes: u64,
    /// Days in the range (rounded up).
    pub days: u64,
    /// Windows in the plan.
    pub windows: u64,
}

/// What a plan is expected to cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    /// Body bytes downloaded.
    pub bytes: u64,
    /// Requests made.
    pub requests: u64,
}

impl Estimate {
    fn cost(self, cfg: &Config) -> u64 {
        self.bytes.saturating_add(
            self.requests
                .saturating_mul(cfg.upstream_request_cost_bytes),
        )
    }
}

fn samples_per_day(cfg: &Config) -> u64 {
    (86_400 / cfg.upstream_sample_secs.max(1)).max(1)
}

/// Rows per page of a site walk: `UPSTREAM_PAGE_SIZE`, or the largest of
/// ACE's sizes whose page stays under a quarter of the byte cap.
pub fn page_size(cfg: &Config, site: &SiteInfo) -> u32 {
    if cfg.page_size != 0 {
        return cfg.page_size;
    }
    let row = ROW_OVERHEAD_BYTES + site.max_name_bytes;
    let cap = cfg.upstream_max_page_bytes / 4;
    PAGE_SIZES
        .iter()
        .rev()
        .copied()
        .find(|n| u64::from(*n) * row <= cap)
        .unwrap_or(PAGE_SIZES[0])
}

/// The site walk: every collecting point of the site, in pages.
pub fn estimate_site(cfg: &Config, site: &SiteInfo, job: &JobShape) -> Estimate {
    let rows = site.enabled.max(job.points) * samples_per_day(cfg) * job.days;
    let pages = rows.div_ceil(u64::from(page_size(cfg, site).max(1)));
    Estimate {
        bytes: rows * (ROW_OVERHEAD_BYTES + site.max_name_bytes),
        requests: pages + job.windows,
    }
}

/// Per-point requests: the job's own points, one request per window each.
pub fn estimate_point(cfg: &Config, job: &JobShape) -> Estimate {
    let rows = job.points * samples_per_day(cfg) * job.days;
    Estimate {
        bytes: rows * (ROW_OVERHEAD_BYTES + job.max_name_bytes),
        requests: job.points * job.windows,
    }
}

/// The plan for `requested`: as asked, or for `auto` the cheaper one (the
/// site walk on a tie: fewer requests).
pub fn choose(cfg: &Config, requested: PlanChoice, site: &SiteInfo, job: &JobShape) -> Plan {
    match requested {
        PlanChoice::Site => Plan::Site,
        PlanChoice::Point => Plan::Point,
        PlanChoice::Auto => {
            let site_cost = estimate_site(cfg, site, job).cost(cfg);
            if site_cost <= estimate_point(cfg, job).cost(cfg) {
                Plan::Site
            } else {
                Plan::Point
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(points: u64) -> SiteInfo {
        SiteInfo {
            points,
            enabled: points,
            max_name_bytes: 90,
        }
    }

    fn job(points: u64, days: u64, windows: u64) -> JobShape {
        JobShape {
            points,
            max_name_bytes: 90,
            days,
            windows,
        }
    }

    #[test]
    fn a_small_share_of_a_large_site_asks_per_point() {
        let cfg = Config::default();
        let j = job(10, 365, 13);
        assert_eq!(choose(&cfg, PlanChoice::Auto, &site(2000), &j), Plan::Point);
        assert_eq!(choose(&cfg, PlanChoice::Auto, &site(50), &j), Plan::Point);
        // Forced plans are kept whatever they cost.
        assert_eq!(choose(&cfg, PlanChoice::Site, &site(2000), &j), Plan::Site);
    }

    #[test]
    fn most_of_a_site_walks_it() {
        let cfg = Config::default();
        assert_eq!(
            choose(&cfg, PlanChoice::Auto, &site(200), &job(100, 365, 46)),
            Plan::Site
        );
        // A job of the whole site: a page holds more rows than a point's
        // month, so the walk takes fewer requests for the same bytes.
        assert_eq!(
            choose(&cfg, PlanChoice::Auto, &site(12), &job(12, 365, 13)),
            Plan::Site
        );
    }

    #[test]
    fn the_edge_is_where_the_costs_cross() {
        let cfg = Config::default();
        let s = site(200);
        // Find the smallest job (in points) that walks the site, and check
        // the estimates really cross there.
        let first = (1..=200)
            .find(|p| choose(&cfg, PlanChoice::Auto, &s, &job(*p, 365, 46)) == Plan::Site)
            .expect("some size walks the site");
        let cost = |p, plan| {
            let j = job(p, 365, 46);
            match plan {
                Plan::Site => estimate_site(&cfg, &s, &j).cost(&cfg),
                Plan::Point => estimate_point(&cfg, &j).cost(&cfg),
            }
        };
        assert!(cost(first, Plan::Site) <= cost(first, Plan::Point));
        assert!(cost(first - 1, Plan::Site) > cost(first - 1, Plan::Point));
    }

    #[test]
    fn page_size_is_one_of_aces_and_fits_the_cap() {
        let cfg = Config::default();
        let n = page_size(&cfg, &site(200));
        assert!(PAGE_SIZES.contains(&n));
        assert!(u64::from(n) * 170 <= cfg.upstream_max_page_bytes / 4);
        let fixed = Config {
            page_size: 10,
            ..Config::default()
        };
        assert_eq!(page_size(&fixed, &site(200)), 10);
    }

    #[test]
    fn choices_round_trip() {
        for c in [PlanChoice::Auto, PlanChoice::Site, PlanChoice::Point] {
            assert_eq!(c.as_str().parse::<PlanChoice>(), Ok(c));
        }
        assert!("both".parse::<PlanChoice>().is_err());
        assert_eq!("site".parse::<Plan>(), Ok(Plan::Site));
    }
}
