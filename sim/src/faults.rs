//! Seeded fault injection.
//!
//! The decision for a request is a pure function of (seed, path and query,
//! how many times that exact URL was asked before). A client that retries a
//! failed page therefore draws a fresh number and may succeed, while two runs
//! with the same seed and the same request sequence see identical faults.

use crate::config::SimConfig;
use crate::data::{fnv1a, mix, unit};

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
}

/// Decides the fault for the `attempt`-th (0-based) request of `url`.
pub(crate) fn decide(cfg: &SimConfig, url: &str, attempt: u64) -> Fault {
    let h = mix(fnv1a(url.as_bytes(), mix(cfg.seed)) ^ mix(attempt ^ 0xfa17));
    let u = unit(h);
    // One draw, consumed in bands, so the kinds are mutually exclusive and
    // each rate is its own probability.
    let bands = [
        (cfg.rate_500, Fault::Status500),
        (cfg.rate_503, Fault::Status503),
        (cfg.rate_429, Fault::Status429),
        (cfg.rate_truncated, Fault::Truncated),
        (cfg.rate_garbage, Fault::Garbage),
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
}
