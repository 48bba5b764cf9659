//! A site's fixed catalogue of points (faithful mode).
//!
//! A site has `site_size` configured points, named by
//! [`default_points`]. The last
//! `floor(size * silent_share)` of them (catalogue order) never report; the
//! rest report at every multiple of the interval. The paginated endpoint
//! serves the reporting points sorted by name, so `SiteCatalogue` keeps
//! them in that order with their value generators and escaped names, built
//! once per site and shared by every page.

use crate::config::{SimConfig, MAX_SITE_POINTS};
use crate::data::{default_points, seed_of, Generator};

/// How many points `site` has: `N` if its name ends in `-<N>pts` with
/// `N` in `1..=100000` (e.g. `bldg-200pts`), else `cfg.site_points`.
pub fn site_size(site: &str, cfg: &SimConfig) -> usize {
    site.strip_suffix("pts")
        .and_then(|head| head.rsplit_once('-'))
        .map(|(_, n)| n)
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|n| (1..=MAX_SITE_POINTS).contains(n))
        .unwrap_or(cfg.site_points)
}

/// How many points of a `size`-point catalogue report: all but the last
/// `floor(size * silent_share)`.
pub(crate) fn reporting_count(size: usize, cfg: &SimConfig) -> usize {
    let share = if cfg.silent_share.is_finite() {
        cfg.silent_share.clamp(0.0, 1.0)
    } else {
        0.0
    };
    // The float product is exact for the sizes and shares in use; `min`
    // guards against a share a hair above what the CLI allows.
    let silent = ((size as f64 * share).floor() as usize).min(size);
    size - silent
}

/// Every configured point of `site`, reporting or not:
/// `default_points(site, site_size(site, cfg))`.
pub fn catalogue(site: &str, cfg: &SimConfig) -> Vec<String> {
    default_points(site, site_size(site, cfg))
}

/// The points of `site` that report data, in catalogue order: the first
/// `size - floor(size * silent_share)` of [`catalogue`]. So
/// `default_points(site, n)` for any `n` up to that count reports.
pub fn reporting_points(site: &str, cfg: &SimConfig) -> Vec<String> {
    let size = site_size(site, cfg);
    default_points(site, reporting_count(size, cfg))
}

/// The points of `site` that never report: the tail of [`catalogue`].
pub fn silent_points(site: &str, cfg: &SimConfig) -> Vec<String> {
    let mut all = catalogue(site, cfg);
    let reporting = reporting_count(all.len(), cfg);
    all.split_off(reporting)
}

/// One reporting point as a page row needs it.
pub(crate) struct RowPoint {
    /// The name as a JSON string literal, quotes included.
    pub name_json: String,
    pub generator: Generator,
    /// The point seed, for `--time-format micros`.
    pub seed: u64,
}

/// A site's reporting points sorted by name (byte order), ready to render.
pub(crate) struct SiteCatalogue {
    pub rows: Vec<RowPoint>,
}

impl SiteCatalogue {
    pub(crate) fn new(site: &str, cfg: &SimConfig) -> Self {
        let mut names = reporting_points(site, cfg);
        names.sort_unstable();
        let rows = names
            .into_iter()
            .map(|name| {
                let mut name_json = String::with_capacity(name.len() + 2);
                push_json_str(&mut name_json, &name);
                RowPoint {
                    name_json,
                    generator: Generator::new(site, &name),
                    seed: seed_of(site, &name),
                }
            })
            .collect();
        Self { rows }
    }
}

/// Appends `s` as a JSON string. Values and most names need no escaping, so
/// the common case is a plain copy; anything else goes through serde_json.
pub(crate) fn push_json_str(out: &mut String, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        match serde_json::to_string(s) {
            Ok(j) => out.push_str(&j),
            // Cannot happen for a &str; emit an empty string rather than panic.
            Err(_) => out.push_str("\"\""),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_from_names() {
        let cfg = SimConfig::default();
        assert_eq!(site_size("bldg-200pts", &cfg), 200);
        assert_eq!(site_size("x-2000pts", &cfg), 2000);
        assert_eq!(site_size("a-b-7pts", &cfg), 7);
        assert_eq!(site_size("x-100000pts", &cfg), 100_000);
        for plain in [
            "demo",
            "x-0pts",
            "x-100001pts",
            "x-pts",
            "x200pts",
            "x-+5pts",
            "x-5 pts",
        ] {
            assert_eq!(site_size(plain, &cfg), 50, "{plain}");
        }
        let cfg = SimConfig {
            site_points: 9,
            ..SimConfig::default()
        };
        assert_eq!(site_size("demo", &cfg), 9);
    }

    #[test]
    fn silent_tail() {
        let cfg = SimConfig::default();
        let all = catalogue("s-10pts", &cfg);
        let rep = reporting_points("s-10pts", &cfg);
        let silent = silent_points("s-10pts", &cfg);
        assert_eq!((all.len(), rep.len(), silent.len()), (10, 8, 2));
        assert_eq!([rep.clone(), silent].concat(), all);
        assert_eq!(rep, default_points("s-10pts", 8));
        let none = SimConfig {
            silent_share: 0.0,
            ..cfg.clone()
        };
        assert_eq!(reporting_points("s-10pts", &none).len(), 10);
        let all_silent = SimConfig {
            silent_share: 1.0,
            ..cfg
        };
        assert!(reporting_points("s-10pts", &all_silent).is_empty());
        assert_eq!(reporting_count(200, &SimConfig::default()), 150);
        assert_eq!(reporting_count(7, &SimConfig::default()), 6);
    }

    #[test]
    fn catalogue_rows_are_sorted() {
        let cat = SiteCatalogue::new("s-30pts", &SimConfig::default());
        assert_eq!(cat.rows.len(), 23);
        assert!(cat.rows.windows(2).all(|w| w[0].name_json < w[1].name_json));
    }
}
