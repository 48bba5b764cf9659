//! One backoff policy for every retry: the wait doubles from a first delay
//! up to a cap, a random share of it is taken off (jitter, so that jobs
//! failing together do not retry together), and it never undercuts the
//! failing side's `Retry-After`.
//!
//! Four retries use it: a queue message's redelivery
//! ([`Backoff::REDELIVERY`], through [`crate::error::Disposition`]), an
//! upstream request retried in place ([`Backoff::UPSTREAM`]), the alert
//! webhook ([`Backoff::ALERT`]) and a job's callback ([`Backoff::CALLBACK`]).

/// Capped exponential backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    first_ms: u64,
    cap_ms: u64,
}

impl Backoff {
    /// A queue message's redelivery: 2 s, 4 s, 8 s, … capped at 5 min.
    pub const REDELIVERY: Backoff = Backoff::new(2_000, 300_000);
    /// An upstream request retried in place: 400 ms, 800 ms, … 12.8 s.
    pub const UPSTREAM: Backoff = Backoff::new(400, 12_800);
    /// The alert webhook: 500 ms, 1 s, … 4 s.
    pub const ALERT: Backoff = Backoff::new(500, 4_000);
    /// A job's callback: 30 s, 1 min, … capped at 1 h.
    pub const CALLBACK: Backoff = Backoff::new(30_000, 3_600_000);

    /// A policy that waits `first_ms` before the first retry.
    pub const fn new(first_ms: u64, cap_ms: u64) -> Self {
        Self { first_ms, cap_ms }
    }

    /// The longest wait before retry `n` (1 is the first retry).
    pub fn ceiling_ms(self, n: u32) -> u64 {
        let doublings = n.max(1) - 1;
        self.first_ms
            .saturating_mul(1u64 << doublings.min(40))
            .min(self.cap_ms)
    }

    /// The wait before retry `n`: the ceiling less the jitter's share of
    /// it, and never under `hint_ms` (the failing side's `Retry-After`).
    pub fn delay_ms(self, n: u32, jitter: Jitter, hint_ms: Option<u64>) -> u64 {
        let ceiling = self.ceiling_ms(n);
        (ceiling - jitter.cut(ceiling)).max(hint_ms.unwrap_or(0))
    }
}

/// How much of a wait is random: up to `spread` (0 to 1) of it is taken
/// off, by a uniform draw. `RETRY_JITTER` sets the spread.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Jitter {
    spread: f64,
    draw: f64,
}

impl Jitter {
    /// No jitter: every wait is its ceiling.
    pub const NONE: Jitter = Jitter {
        spread: 0.0,
        draw: 0.0,
    };

    /// A jitter of `spread`, drawn from 16 random bytes (a clock's
    /// `random_bytes`).
    pub fn draw(spread: f64, bytes: [u8; 16]) -> Self {
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[..8]);
        // 53 random bits: a uniform float in [0, 1).
        let draw = (u64::from_le_bytes(word) >> 11) as f64 / (1u64 << 53) as f64;
        Self::fixed(spread, draw)
    }

    /// A jitter of `spread` with a given draw in [0, 1) (tests).
    pub fn fixed(spread: f64, draw: f64) -> Self {
        let unit = |x: f64| {
            if x.is_finite() {
                x.clamp(0.0, 1.0)
            } else {
                0.0
            }
        };
        Self {
            spread: unit(spread),
            draw: unit(draw),
        }
    }

    fn cut(self, ceiling: u64) -> u64 {
        ((ceiling as f64) * self.spread * self.draw) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_from_the_first_up_to_the_cap() {
        let b = Backoff::REDELIVERY;
        let got: Vec<u64> = (1..=10).map(|n| b.ceiling_ms(n)).collect();
        assert_eq!(
            got,
            [2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000, 300_000, 300_000]
        );
        assert_eq!(b.ceiling_ms(0), 2_000);
        assert_eq!(b.ceiling_ms(u32::MAX), 300_000);
    }

    #[test]
    fn jitter_takes_at_most_its_spread_off_and_never_goes_under_the_hint() {
        let b = Backoff::UPSTREAM;
        assert_eq!(b.delay_ms(3, Jitter::NONE, None), 1_600);
        assert_eq!(b.delay_ms(3, Jitter::fixed(0.5, 0.999_999), None), 801);
        assert_eq!(b.delay_ms(3, Jitter::fixed(0.5, 0.0), None), 1_600);
        assert_eq!(b.delay_ms(3, Jitter::fixed(0.5, 0.5), Some(1_500)), 1_500);
        assert_eq!(b.delay_ms(3, Jitter::fixed(f64::NAN, 0.5), None), 1_600);
        assert_eq!(b.delay_ms(3, Jitter::fixed(7.0, 0.5), None), 800);
    }

    #[test]
    fn drawn_jitter_spreads_the_waits_of_jobs_that_fail_together() {
        use crate::ports::Clock;
        struct Counter(std::cell::Cell<u8>);
        impl Clock for Counter {
            fn now_ms(&self) -> crate::domain::EpochMs {
                crate::domain::EpochMs(0)
            }
            async fn sleep(&self, _ms: u64) {}
            fn random_bytes(&self) -> [u8; 16] {
                self.0.set(self.0.get().wrapping_add(37));
                [self.0.get(); 16]
            }
        }
        let clock = Counter(std::cell::Cell::new(0));
        let waits: std::collections::BTreeSet<u64> = (0..20)
            .map(|_| Backoff::REDELIVERY.delay_ms(4, Jitter::draw(0.5, clock.random_bytes()), None))
            .collect();
        assert!(waits.len() > 10, "{waits:?}");
        assert!(
            waits.iter().all(|w| (8_000..=16_000).contains(w)),
            "{waits:?}"
        );
    }
}
