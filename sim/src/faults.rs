//! Seeded fault injection.
//!
//! Three independent, pure decisions:
//!
//! - [`decide`]: the per-request fault, a function of (seed, path and query,
//!   how many times that exact URL was asked before). One uniform draw is
//!   consumed in bands, in the order 500, 503, 429, truncated, garbage, drop,
//!   so the kinds are mutually exclusive and each rate is its own
//!   probability. A client that retries a failed page therefore draws a fresh
//!   number and may succeed, while two runs with the same seed and the same
//!   request sequence see identical faults. `drop` is the last band, so
//!   enabling it never changes which requests get the older kinds.
//! - [`slow`]: whether the request is delayed by `slow_ms`. This is a
//!   *second*, independent draw from the same inputs (with its own salt), so
//!   a slow request can also carry any of the faults above, and turning
//!   slowness on or off does not move any other decision.
//! - [`window_fault`]: whether a whole time window is faulty for a site, a
//!   function of (seed, site, window index) only. Every request for that
//!   site inside such a window gets the same answer (503, or 429 with
//!   `Retry-After`). The window index itself comes from [`window_index`].

use std::time::{Duration, SystemTime};

use crate::config::SimConfig;
use crate::data::{fnv1a, mix, unit};

/// Salt for the per-request fault draw (kept from the original design so
/// existing seeds replay the same faults).
const FAULT_SALT: u64 = 0xfa17;
/// Salt for the independent slow-response draw.
const SLOW_SALT: u64 = 0x0051_0e11;
/// Salt for the per-(site, window) draw.
const WINDOW_SALT: u64 = 0x0077_1d0e;

/// What to do to a timeseries request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    None,
    Status500,
    Status503,
    Status429,
    /// Serve a 200 whose body is cut in half.
    Truncated,
    /// Serve a 200 whose body is not JSON.
    Garbage,
    /// Serve a 200 with the full body's `Content-Length`, send half the body,
    /// then abort the connection.
    Drop,
}

/// How a faulty window answers every timeseries request for its site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WindowFault {
    /// `503 Service Unavailable`.
    Unavailable,
    /// `429 Too Many Requests` with `Retry-After: retry_after_secs`.
    TooManyRequests,
}

impl WindowFault {
    /// The HTTP status code this fault answers with.
    pub fn status(self) -> u16 {
        match self {
            Self::Unavailable => 503,
            Self::TooManyRequests => 429,
        }
    }
}

/// Decides the fault for the `attempt`-th (0-based) request of `url`.
pub(crate) fn decide(cfg: &SimConfig, url: &str, attempt: u64) -> Fault {
    let h = mix(fnv1a(url.as_bytes(), mix(cfg.seed)) ^ mix(attempt ^ FAULT_SALT));
    let u = unit(h);
    // One draw, consumed in bands, so the kinds are mutually exclusive and
    // each rate is its own probability.
    let bands = [
        (cfg.rate_500, Fault::Status500),
        (cfg.rate_503, Fault::Status503),
        (cfg.rate_429, Fault::Status429),
        (cfg.rate_truncated, Fault::Truncated),
        (cfg.rate_garbage, Fault::Garbage),
        (cfg.rate_drop, Fault::Drop),
    ];
    let mut acc = 0.0;
    for (rate, fault) in bands {
        acc += rate;
        if u < acc {
            return fault;
        }
    }
    Fault::None
}

/// The extra delay for the `attempt`-th (0-based) request of `url`: `slow_ms`
/// with probability `rate_slow`, from a draw independent of [`decide`].
pub(crate) fn slow(cfg: &SimConfig, url: &str, attempt: u64) -> Option<Duration> {
    if cfg.slow_ms == 0 || cfg.rate_slow <= 0.0 {
        return None;
    }
    let h = mix(fnv1a(url.as_bytes(), mix(cfg.seed ^ SLOW_SALT)) ^ mix(attempt ^ SLOW_SALT));
    (unit(h) < cfg.rate_slow).then(|| Duration::from_millis(cfg.slow_ms))
}

/// The delay of every timeseries request for a site whose name holds
/// `-slow<N>ms` (e.g. `cancel-slow1500ms`): `N` ms, at most a minute. A
/// slow site without a flag, for tests that need pages to take a while.
pub fn site_delay(site: &str) -> Option<Duration> {
    let (_, rest) = site.split_once("-slow")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    if !rest[digits.len()..].starts_with("ms") {
        return None;
    }
    let ms: u64 = digits.parse().ok()?;
    Some(Duration::from_millis(ms.min(60_000)))
}

/// Whether window `window` is faulty for `site`, and how.
///
/// A pure function of (`cfg.seed`, `site`, `window`, `cfg.window_fault_rate`):
/// the window is faulty with probability `window_fault_rate`, and a faulty
/// window answers 503 or 429 with equal probability (a second bit of the
/// same hash, so the kind does not depend on the rate). Raising the rate only
/// adds faulty windows; the ones already faulty keep their kind.
pub fn window_fault(cfg: &SimConfig, site: &str, window: u64) -> Option<WindowFault> {
    if cfg.window_fault_rate <= 0.0 {
        return None;
    }
    // 0xff never occurs in UTF-8, so it separates the site from the index.
    let h = mix(fnv1a(site.as_bytes(), mix(cfg.seed ^ WINDOW_SALT)) ^ 0xff ^ mix(window));
    if unit(h) >= cfg.window_fault_rate {
        return None;
    }
    Some(if mix(h ^ WINDOW_SALT) & 1 == 0 {
        WindowFault::Unavailable
    } else {
        WindowFault::TooManyRequests
    })
}

/// The index of the fault window containing `now`, counting from `start`
/// (window 0 is `[start, start + window_secs)`). A clock that reads earlier
/// than `start` counts as window 0; a zero `window_secs` counts as 1.
pub fn window_index(start: SystemTime, now: SystemTime, window_secs: u64) -> u64 {
    let elapsed = now.duration_since(start).unwrap_or(Duration::ZERO);
    elapsed.as_secs() / window_secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_respected() {
        let cfg = SimConfig {
            rate_503: 0.25,
            rate_429: 0.25,
            ..SimConfig::default()
        };
        let n = 20_000;
        let mut c503 = 0;
        let mut c429 = 0;
        for i in 0..n {
            match decide(&cfg, &format!("/x?i={i}"), 0) {
                Fault::Status503 => c503 += 1,
                Fault::Status429 => c429 += 1,
                Fault::None => {}
                other => panic!("{other:?}"),
            }
        }
        assert!((4_500..5_500).contains(&c503), "{c503}");
        assert!((4_500..5_500).contains(&c429), "{c429}");
        assert_eq!(decide(&SimConfig::default(), "/x", 0), Fault::None);
    }

    #[test]
    fn depends_on_seed_and_attempt() {
        let a = SimConfig {
            rate_500: 0.5,
            ..SimConfig::default()
        };
        let b = SimConfig {
            seed: 2,
            ..a.clone()
        };
        let seq = |c: &SimConfig| (0..64).map(|k| decide(c, "/u", k)).collect::<Vec<_>>();
        assert_eq!(seq(&a), seq(&a));
        assert_ne!(seq(&a), seq(&b));
    }

    #[test]
    fn drop_is_the_last_band_and_leaves_other_kinds_alone() {
        let base = SimConfig {
            rate_503: 0.2,
            rate_garbage: 0.1,
            ..SimConfig::default()
        };
        let with_drop = SimConfig {
            rate_drop: 0.3,
            ..base.clone()
        };
        let mut drops = 0;
        for i in 0..10_000 {
            let url = format!("/d?i={i}");
            let (old, new) = (decide(&base, &url, 0), decide(&with_drop, &url, 0));
            if old == Fault::None {
                assert!(matches!(new, Fault::None | Fault::Drop), "{new:?}");
                drops += usize::from(new == Fault::Drop);
            } else {
                assert_eq!(old, new);
            }
        }
        assert!((2_700..3_300).contains(&drops), "{drops}");
        let all = SimConfig {
            rate_drop: 1.0,
            ..SimConfig::default()
        };
        assert!((0..100).all(|k| decide(&all, "/z", k) == Fault::Drop));
    }

    #[test]
    fn a_site_named_slow_delays_its_every_request() {
        assert_eq!(
            site_delay("cancel-slow1500ms"),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(site_delay("a-slow20ms-b"), Some(Duration::from_millis(20)));
        assert_eq!(
            site_delay("a-slow99999999ms"),
            Some(Duration::from_secs(60))
        );
        for plain in ["slow", "a-slow", "a-slowms", "a-slow15", "a-slow15s"] {
            assert_eq!(site_delay(plain), None, "{plain}");
        }
    }

    #[test]
    fn slow_is_an_independent_seeded_draw() {
        let cfg = SimConfig {
            rate_slow: 0.5,
            slow_ms: 250,
            rate_503: 0.5,
            ..SimConfig::default()
        };
        let n = 10_000;
        let mut slow_count = 0;
        let mut slow_and_503 = 0;
        for i in 0..n {
            let url = format!("/s?i={i}");
            let s = slow(&cfg, &url, 0);
            assert_eq!(s, slow(&cfg, &url, 0), "pure");
            if let Some(d) = s {
                assert_eq!(d, Duration::from_millis(250));
                slow_count += 1;
                slow_and_503 += usize::from(decide(&cfg, &url, 0) == Fault::Status503);
            }
        }
        assert!((4_700..5_300).contains(&slow_count), "{slow_count}");
        // Independent of the fault draw: about half of the slow ones are 503s.
        assert!(
            (slow_count * 4 / 10..slow_count * 6 / 10).contains(&slow_and_503),
            "{slow_and_503} of {slow_count}"
        );
        // The attempt matters, and the seed does.
        let seq = |c: &SimConfig| (0..64).map(|k| slow(c, "/u", k)).collect::<Vec<_>>();
        assert_eq!(seq(&cfg), seq(&cfg));
        assert_ne!(
            seq(&cfg),
            seq(&SimConfig {
                seed: 9,
                ..cfg.clone()
            })
        );
        // Off unless both the rate and the delay are set.
        for off in [
            SimConfig::default(),
            SimConfig {
                rate_slow: 1.0,
                ..SimConfig::default()
            },
            SimConfig {
                slow_ms: 100,
                ..SimConfig::default()
            },
        ] {
            assert!((0..100).all(|k| slow(&off, "/u", k).is_none()));
        }
    }

    #[test]
    fn window_faults_follow_the_rate_and_split_the_kinds() {
        let cfg = SimConfig {
            window_fault_rate: 0.3,
            ..SimConfig::default()
        };
        let (mut c503, mut c429) = (0, 0);
        for w in 0..10_000 {
            match window_fault(&cfg, "FallsCity", w) {
                Some(WindowFault::Unavailable) => c503 += 1,
                Some(WindowFault::TooManyRequests) => c429 += 1,
                None => {}
            }
        }
        assert!((2_700..3_300).contains(&(c503 + c429)), "{c503} {c429}");
        assert!((1_300..1_700).contains(&c503), "{c503}");
        assert!((1_300..1_700).contains(&c429), "{c429}");
        assert_eq!(WindowFault::Unavailable.status(), 503);
        assert_eq!(WindowFault::TooManyRequests.status(), 429);

        // Off by default, always on at rate 1.
        assert!((0..1000).all(|w| window_fault(&SimConfig::default(), "x", w).is_none()));
        let all = SimConfig {
            window_fault_rate: 1.0,
            ..SimConfig::default()
        };
        assert!((0..1000).all(|w| window_fault(&all, "x", w).is_some()));
    }

    #[test]
    fn window_faults_are_pure_and_per_site() {
        let cfg = SimConfig {
            seed: 42,
            window_fault_rate: 0.5,
            ..SimConfig::default()
        };
        let seq = |c: &SimConfig, site: &str| {
            (0..128)
                .map(|w| window_fault(c, site, w))
                .collect::<Vec<_>>()
        };
        assert_eq!(seq(&cfg, "a"), seq(&cfg.clone(), "a"));
        assert_ne!(seq(&cfg, "a"), seq(&cfg, "b"));
        assert_ne!(
            seq(&cfg, "a"),
            seq(
                &SimConfig {
                    seed: 43,
                    ..cfg.clone()
                },
                "a"
            )
        );
        // Independent of everything else in the config.
        let noisy = SimConfig {
            rate_500: 0.3,
            rate_drop: 0.2,
            rate_slow: 1.0,
            slow_ms: 10,
            fault_window_secs: 60,
            ..cfg.clone()
        };
        assert_eq!(seq(&cfg, "a"), seq(&noisy, "a"));
        // Raising the rate only adds faulty windows, with unchanged kinds.
        let more = SimConfig {
            window_fault_rate: 0.8,
            ..cfg.clone()
        };
        for (lo, hi) in seq(&cfg, "a").into_iter().zip(seq(&more, "a")) {
            if lo.is_some() {
                assert_eq!(lo, hi);
            }
        }
    }

    #[test]
    fn window_index_counts_from_start() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let at = |ms: u64| start + Duration::from_millis(ms);
        assert_eq!(window_index(start, at(0), 5), 0);
        assert_eq!(window_index(start, at(4_999), 5), 0);
        assert_eq!(window_index(start, at(5_000), 5), 1);
        assert_eq!(window_index(start, at(12_345), 5), 2);
        assert_eq!(window_index(start, at(1_500), 1), 1);
        // Clock behind the start, and a zero window length.
        assert_eq!(window_index(start, start - Duration::from_secs(9), 5), 0);
        assert_eq!(window_index(start, at(3_000), 0), 3);
    }
}
