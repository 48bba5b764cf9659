//! Deterministic building data.
//!
//! Every value is a pure function of `(site, point, t)`: there is no state
//! and no random-walk, so any time range can be generated on its own (the
//! server generates only the slice a page needs) and a test can recompute
//! exactly what was served. Smoothness comes from sinusoids and interpolated
//! hashed knots rather than from accumulating steps.

use std::f64::consts::TAU;
use std::fmt::Write as _;

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

/// FNV-1a offset basis; FNV is used because it is tiny, stable across Rust
/// versions and platforms (unlike `RandomState`), and good enough to seed.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

pub(crate) fn fnv1a(bytes: &[u8], mut h: u64) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// The splitmix64 finaliser: turns structured inputs (seeds xor timestamps)
/// into well-spread bits.
pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Uniform in `[0, 1)` from the top 53 bits.
pub(crate) fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// Uniform in `[-1, 1)`.
fn signed(h: u64) -> f64 {
    unit(h) * 2.0 - 1.0
}

/// The per-point seed. The separator byte keeps `("ab","c")` and `("a","bc")`
/// apart (0xff never occurs in UTF-8).
fn point_seed(site: &str, point: &str) -> u64 {
    mix(fnv1a(
        point.as_bytes(),
        fnv1a(&[0xff], fnv1a(site.as_bytes(), FNV_OFFSET)),
    ))
}

/// Whether `point` at `site` yields `"active"`/`"inactive"` rather than numbers.
///
/// Names mentioning `Status` or `State` always do; of the rest, about one in
/// eight, chosen by the point hash.
pub fn is_state_point(site: &str, point: &str) -> bool {
    point.contains("Status") || point.contains("State") || point_seed(site, point).is_multiple_of(8)
}

/// A sensor family: plausible centre, swings and physical limits.
#[derive(Clone, Copy)]
struct Profile {
    base: f64,
    daily_amp: f64,
    slow_amp: f64,
    noise_amp: f64,
    min: f64,
    max: f64,
    /// `None`: chosen per point by hash.
    decimals: Option<usize>,
}

const fn profile(
    base: f64,
    daily_amp: f64,
    slow_amp: f64,
    noise_amp: f64,
    min: f64,
    max: f64,
    decimals: Option<usize>,
) -> Profile {
    Profile {
        base,
        daily_amp,
        slow_amp,
        noise_amp,
        min,
        max,
        decimals,
    }
}

const ZONE_TEMP: Profile = profile(21.5, 1.2, 0.6, 0.4, 15.0, 30.0, None);
const SUPPLY_TEMP: Profile = profile(14.0, 1.5, 1.0, 0.6, 8.0, 30.0, None);
const OUTDOOR_TEMP: Profile = profile(12.0, 6.0, 5.0, 1.5, -30.0, 45.0, None);
const HUMIDITY: Profile = profile(45.0, 7.0, 4.0, 2.0, 30.0, 60.0, None);
const DAMPER: Profile = profile(50.0, 25.0, 10.0, 8.0, 0.0, 100.0, None);
const FLOW: Profile = profile(1200.0, 300.0, 100.0, 50.0, 0.0, 3000.0, None);
const PRESSURE: Profile = profile(1.0, 0.2, 0.1, 0.05, 0.0, 2.5, Some(2));
const CO2: Profile = profile(650.0, 200.0, 50.0, 40.0, 400.0, 1500.0, None);
const POWER: Profile = profile(40.0, 15.0, 5.0, 3.0, 0.0, 120.0, None);
const SPEED: Profile = profile(45.0, 10.0, 3.0, 2.0, 0.0, 60.0, None);
const SETPOINT: Profile = profile(22.0, 0.3, 0.2, 0.05, 18.0, 26.0, None);

/// Picks a profile from the words of the last name segment (the part after
/// the final `/` or `.`), so a site or device name containing "temp" does not
/// decide it, and whole words keep "_Speed" from reading as a setpoint "sp";
/// unrecognised names get a hashed profile.
fn profile_for(point: &str, seed: u64) -> Profile {
    let leaf = point
        .rsplit(['/', '.'])
        .next()
        .unwrap_or(point)
        .to_ascii_lowercase();
    let words: Vec<&str> = leaf
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    // A word equal to, or starting with, one of `stems`.
    let has = |stems: &[&str]| words.iter().any(|w| stems.iter().any(|s| w.starts_with(s)));
    if has(&["setpoint", "stpt", "sp"]) && !has(&["speed"]) {
        SETPOINT
    } else if has(&["temp", "sat", "rat", "mat", "oat", "dat"]) {
        if has(&["outside", "outdoor", "oat", "ambient"]) {
            OUTDOOR_TEMP
        } else if has(&["supply", "discharge", "sat", "dat", "mixed", "mat"]) {
            SUPPLY_TEMP
        } else {
            ZONE_TEMP
        }
    } else if has(&["humid", "rh"]) {
        HUMIDITY
    } else if has(&["damper", "valve", "pos", "cmd"]) {
        DAMPER
    } else if has(&["flow", "cfm"]) {
        FLOW
    } else if has(&["co2"]) {
        CO2
    } else if has(&["power", "kw", "energy", "demand"]) {
        POWER
    } else if has(&["speed", "freq", "hz", "vfd"]) {
        SPEED
    } else if has(&["press", "static", "dp"]) {
        PRESSURE
    } else {
        const ALL: [Profile; 9] = [
            ZONE_TEMP,
            SUPPLY_TEMP,
            HUMIDITY,
            DAMPER,
            FLOW,
            PRESSURE,
            CO2,
            POWER,
            SPEED,
        ];
        ALL[(mix(seed ^ 0x5052_4f46) % ALL.len() as u64) as usize]
    }
}

/// A numeric sensor's fixed parameters, derived once per point.
#[derive(Clone)]
pub(crate) struct Analog {
    seed: u64,
    base: f64,
    daily_amp: f64,
    daily_phase: f64,
    slow_amp: f64,
    slow_period_ms: f64,
    slow_phase: f64,
    noise_amp: f64,
    /// Spacing of the smooth-noise knots; samples between knots interpolate.
    knot_ms: i64,
    jitter_amp: f64,
    min: f64,
    max: f64,
    decimals: usize,
}

impl Analog {
    fn new(point: &str, seed: u64) -> Self {
        let p = profile_for(point, seed);
        let r = |salt: u64| unit(mix(seed ^ salt));
        // Each point gets its own offset from the family centre so a list of
        // zone temperatures does not look identical.
        let spread = (p.max - p.min) * 0.05;
        Self {
            seed,
            base: p.base + spread * (r(1) * 2.0 - 1.0),
            daily_amp: p.daily_amp * (0.7 + 0.6 * r(2)),
            // Peak around mid-afternoon, give or take a few hours.
            daily_phase: TAU * (r(3) * 0.25 - 0.125) - TAU * 0.375,
            slow_amp: p.slow_amp * (0.5 + r(4)),
            slow_period_ms: (3.0 + 6.0 * r(5)) * DAY_MS as f64,
            slow_phase: TAU * r(6),
            noise_amp: p.noise_amp,
            knot_ms: HOUR_MS / 2 + (r(7) * HOUR_MS as f64) as i64,
            jitter_amp: p.noise_amp * 0.05,
            min: p.min,
            max: p.max,
            decimals: p.decimals.unwrap_or(if r(8) < 0.5 { 1 } else { 2 }),
        }
    }

    /// Value noise: hashed knots joined by smoothstep, so it is continuous
    /// and any instant can be evaluated alone.
    fn smooth_noise(&self, t: i64) -> f64 {
        let k = t.div_euclid(self.knot_ms);
        let f = (t - k * self.knot_ms) as f64 / self.knot_ms as f64;
        let a = signed(mix(self.seed
            ^ 0xa11c
            ^ (k as u64).wrapping_mul(0x2545_f491)));
        let b = signed(mix(self.seed
            ^ 0xa11c
            ^ (k.wrapping_add(1) as u64).wrapping_mul(0x2545_f491)));
        let s = f * f * (3.0 - 2.0 * f);
        a + (b - a) * s
    }

    /// Appends the value at `t` to `out`.
    fn push_value(&self, t: i64, out: &mut String) {
        let th = mix(self.seed ^ mix(t as u64));
        // Rare non-finite readings exercise the consumer's NaN handling.
        if th.is_multiple_of(5000) {
            out.push_str("NaN");
            return;
        }
        let x = t as f64;
        let v = self.base
            + self.daily_amp * (TAU * (x / DAY_MS as f64) + self.daily_phase).sin()
            + self.slow_amp * (TAU * (x / self.slow_period_ms) + self.slow_phase).sin()
            + self.noise_amp * self.smooth_noise(t)
            + self.jitter_amp * signed(mix(th));
        let v = v.clamp(self.min, self.max);
        // Avoid "-0.0": it parses, but no real controller reports it.
        let half_ulp = 0.5 * 10f64.powi(-(self.decimals as i32));
        let v = if v.abs() < half_ulp { 0.0 } else { v };
        // Writing to a String cannot fail.
        let _ = write!(out, "{v:.prec$}", prec = self.decimals);
    }
}

/// An on/off point: occupancy-biased states over slots of a few hours.
#[derive(Clone)]
pub(crate) struct Binary {
    seed: u64,
    slot_ms: i64,
}

impl Binary {
    fn new(seed: u64) -> Self {
        // 2 to 4 hour slots: a few switches a day, as fans and pumps do.
        let slot_ms = 2 * HOUR_MS + (mix(seed ^ 0x510f) % 3) as i64 * HOUR_MS;
        Self { seed, slot_ms }
    }

    fn value(&self, t: i64) -> &'static str {
        let slot = t.div_euclid(self.slot_ms);
        let hour = (slot * self.slot_ms).rem_euclid(DAY_MS) / HOUR_MS;
        let p_active = if (6..19).contains(&hour) { 0.85 } else { 0.15 };
        let on = unit(mix(self.seed ^ 0xb1 ^ (slot as u64).wrapping_mul(0x9e37))) < p_active;
        if on {
            "active"
        } else {
            "inactive"
        }
    }
}

/// One point's value function, derived once from (site, point) and then
/// evaluated at any instant.
#[derive(Clone)]
pub(crate) enum Generator {
    Analog(Analog),
    Binary(Binary),
}

impl Generator {
    pub(crate) fn new(site: &str, point: &str) -> Self {
        let seed = point_seed(site, point);
        if is_state_point(site, point) {
            Self::Binary(Binary::new(seed))
        } else {
            Self::Analog(Analog::new(point, seed))
        }
    }

    /// Appends the value at `t` to `out`: never needs JSON escaping (digits,
    /// `.`, `-`, `NaN`, `active`, `inactive`).
    pub(crate) fn push_value(&self, t: i64, out: &mut String) {
        match self {
            Self::Analog(a) => a.push_value(t, out),
            Self::Binary(b) => out.push_str(b.value(t)),
        }
    }

    fn value(&self, t: i64) -> String {
        let mut s = String::with_capacity(8);
        self.push_value(t, &mut s);
        s
    }
}

/// The microseconds (`0..1000`, so always below 1 ms) that `--time-format
/// micros` adds to the sample of `point` at `site` at `t`.
pub(crate) fn micros_fraction(site: &str, point: &str, t: i64) -> u32 {
    micros_from_seed(point_seed(site, point), t)
}

/// [`micros_fraction`] from a precomputed point seed.
pub(crate) fn micros_from_seed(seed: u64, t: i64) -> u32 {
    (mix(seed ^ 0x00f7_ac71 ^ mix(t as u64)) % 1000) as u32
}

/// The per-point seed, for callers that cache it.
pub(crate) fn seed_of(site: &str, point: &str) -> u64 {
    point_seed(site, point)
}

/// Iterator over one point's samples; see [`sample_iter`].
#[derive(Clone)]
pub struct SampleIter {
    generator: Generator,
    next_t: i64,
    end_ms: i64,
    interval_ms: i64,
}

impl Iterator for SampleIter {
    type Item = (i64, String);

    fn next(&mut self) -> Option<Self::Item> {
        if self.next_t >= self.end_ms {
            return None;
        }
        let t = self.next_t;
        // Saturating so a range ending near i64::MAX terminates instead of wrapping.
        self.next_t = t.saturating_add(self.interval_ms);
        if self.next_t == t {
            self.end_ms = t;
        }
        Some((t, self.generator.value(t)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = if self.next_t >= self.end_ms {
            0
        } else {
            usize::try_from((self.end_ms - 1 - self.next_t) / self.interval_ms + 1)
                .unwrap_or(usize::MAX)
        };
        (n, Some(n))
    }
}

/// The first multiple of `interval_ms` (since the epoch) at or after `ms`.
pub(crate) fn align_up(ms: i64, interval_ms: i64) -> i64 {
    let floor = ms.div_euclid(interval_ms).saturating_mul(interval_ms);
    if floor < ms {
        floor.saturating_add(interval_ms)
    } else {
        floor
    }
}

/// Lazily yields `(t, value)` for every `t` in `[start_ms, end_ms)` that is a
/// multiple of `interval_ms`, in time order. This is the one code path the
/// server uses to produce values. A non-positive interval yields nothing.
pub fn sample_iter(
    site: &str,
    point: &str,
    start_ms: i64,
    end_ms: i64,
    interval_ms: i64,
) -> SampleIter {
    // A non-positive interval would never advance: yield an empty range.
    let (next_t, end_ms, interval_ms) = if interval_ms <= 0 {
        (0, 0, 1)
    } else {
        (align_up(start_ms, interval_ms), end_ms, interval_ms)
    };
    SampleIter {
        generator: Generator::new(site, point),
        next_t,
        end_ms,
        interval_ms,
    }
}

/// Every sample of `point` at `site` in `[start_ms, end_ms)` at epoch-aligned
/// multiples of `interval_ms`: exactly what the server serves for that range.
pub fn samples(
    site: &str,
    point: &str,
    start_ms: i64,
    end_ms: i64,
    interval_ms: i64,
) -> Vec<(i64, String)> {
    sample_iter(site, point, start_ms, end_ms, interval_ms).collect()
}

/// Names the points of one site; [`default_points`] and [`default_point`]
/// share it so a single name can be rebuilt without the whole list.
struct Namer<'a> {
    site: &'a str,
    h: u64,
    building: &'static str,
}

/// (equipment, point) pairs; the equipment numbering makes names unique.
const LEAVES: [(&str, &str); 12] = [
    ("AHU", "Supply_Air_Temp"),
    ("AHU", "Return_Air_Humidity"),
    ("VAV", "Zone_Temp"),
    ("AHU", "Supply_Fan_Status"),
    ("VAV", "Damper_Position"),
    ("VAV", "Air_Flow_CFM"),
    ("AHU", "Duct_Static_Pressure"),
    ("RTU", "Outside_Air_Temp"),
    ("FCU", "Zone_CO2"),
    ("CHLR", "Compressor_Power_kW"),
    ("AHU", "Supply_Fan_VFD_Speed"),
    ("VAV", "Zone_Cooling_Setpoint"),
];

impl<'a> Namer<'a> {
    fn new(site: &'a str) -> Self {
        const BUILDINGS: [&str; 4] = [
            "FallsCity_CMC",
            "Riverside_HQ",
            "Northgate_Lab",
            "Elm_St_Annex",
        ];
        let h = point_seed(site, "");
        Self {
            site,
            h,
            building: BUILDINGS[(h % BUILDINGS.len() as u64) as usize],
        }
    }

    fn name(&self, k: usize) -> String {
        const NETWORKS: [&str; 3] = ["LonNetwork1", "BacnetNetwork", "ModbusAsyncNetwork"];
        let (equip, leaf) = LEAVES[k % LEAVES.len()];
        let network = NETWORKS[((self.h >> 8).wrapping_add(k as u64 / 4) % 3) as usize];
        let octet = 3 + (k / LEAVES.len()) % 200;
        format!(
            "ses/ses_{site}/192.168.96.{octet}/n4/{building}/C.Drivers.{network}.{equip}{num}.points.{leaf}",
            site = self.site,
            building = self.building,
            num = k + 1
        )
    }
}

/// `n` realistic hierarchical point names for `site` (about 100 characters,
/// in the shape ACE uses for Niagara stations). Deterministic per site; the
/// fourth name (and every twelfth after) is a fan `Status` point. The second
/// path segment is `ses_{site}`, which is how the point endpoint finds the site.
pub fn default_points(site: &str, n: usize) -> Vec<String> {
    let namer = Namer::new(site);
    (0..n).map(|k| namer.name(k)).collect()
}

/// The `k`-th (0-based) name of [`default_points`] for `site`, alone.
pub fn default_point(site: &str, k: usize) -> String {
    Namer::new(site).name(k)
}

/// Reads a [`default_points`] name back: `(site, k)` such that
/// `default_point(site, k) == name`, or `None` if `name` is not one.
pub fn parse_default_point(name: &str) -> Option<(&str, usize)> {
    let site = name.strip_prefix("ses/ses_")?.split('/').next()?;
    let head = &name[..name.rfind(".points.")?];
    let digits = head.len() - head.bytes().rev().take_while(u8::is_ascii_digit).count();
    let num: usize = head[digits..].parse().ok()?;
    let k = num.checked_sub(1)?;
    (default_point(site, k) == name).then_some((site, k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_and_bounds() {
        let v = samples("s", "p", 1, 900_001, 300_000);
        let ts: Vec<i64> = v.iter().map(|(t, _)| *t).collect();
        assert_eq!(ts, vec![300_000, 600_000, 900_000]);
        assert!(samples("s", "p", 0, 0, 300_000).is_empty());
        assert_eq!(samples("s", "p", -600_000, 1, 300_000).len(), 3);
        assert!(samples("s", "p", 0, 10, 0).is_empty());
    }

    #[test]
    fn size_hint_is_exact() {
        let it = sample_iter("s", "p", 7, 86_400_000, 300_000);
        let (lo, hi) = it.size_hint();
        assert_eq!(Some(lo), hi);
        assert_eq!(it.count(), lo);
    }

    #[test]
    fn values_depend_only_on_site_point_time() {
        let a = samples("s", "p", 0, DAY_MS, 300_000);
        let b = samples("s", "p", DAY_MS / 2, DAY_MS, 300_000);
        assert_eq!(&a[a.len() - b.len()..], &b[..]);
        assert_ne!(a, samples("s2", "p", 0, DAY_MS, 300_000));
    }

    #[test]
    fn numeric_values_are_smooth() {
        let pts = default_points("demo", 12);
        for p in pts.iter().filter(|p| !is_state_point("demo", p)) {
            let prof = profile_for(p, point_seed("demo", p));
            let vals: Vec<f64> = samples("demo", p, 0, 7 * DAY_MS, 300_000)
                .into_iter()
                .filter_map(|(_, v)| v.parse::<f64>().ok().filter(|x| x.is_finite()))
                .collect();
            let range = prof.max - prof.min;
            for w in vals.windows(2) {
                assert!(
                    (w[1] - w[0]).abs() < range * 0.05,
                    "{p}: {} -> {}",
                    w[0],
                    w[1]
                );
            }
        }
    }

    #[test]
    fn state_points_switch_a_few_times_a_day() {
        let p = &default_points("demo", 4)[3];
        assert!(is_state_point("demo", p));
        let v = samples("demo", p, 0, 30 * DAY_MS, 300_000);
        let switches = v.windows(2).filter(|w| w[0].1 != w[1].1).count();
        assert!((30..=200).contains(&switches), "{switches}");
    }

    #[test]
    fn profiles_follow_leaf_words() {
        let kind = |p: &str| profile_for(p, 0).base;
        assert_eq!(kind("a.points.Supply_Fan_VFD_Speed"), SPEED.base);
        assert_eq!(kind("a.points.Compressor_Power_kW"), POWER.base);
        assert_eq!(kind("a.points.Zone_Cooling_Setpoint"), SETPOINT.base);
        assert_eq!(kind("a.points.Duct_Static_Pressure"), PRESSURE.base);
        assert_eq!(
            kind("ses_temp/x.points.Outside_Air_Temp"),
            OUTDOOR_TEMP.base
        );
    }

    #[test]
    fn default_points_shape() {
        let pts = default_points("FallsCity", 10);
        assert_eq!(pts.len(), 10);
        let unique: std::collections::HashSet<_> = pts.iter().collect();
        assert_eq!(unique.len(), 10);
        assert!(pts.iter().any(|p| p.contains("Status")));
        assert!(pts.iter().all(|p| (80..130).contains(&p.len())), "{pts:?}");
    }

    #[test]
    fn single_names_match_the_list_and_parse_back() {
        let site = "Bldg 7, East-30pts";
        let pts = default_points(site, 30);
        for (k, p) in pts.iter().enumerate() {
            assert_eq!(&default_point(site, k), p);
            assert_eq!(parse_default_point(p), Some((site, k)));
        }
        assert_eq!(parse_default_point("x"), None);
        assert_eq!(parse_default_point("ses/ses_a/b.points.c"), None);
        let forged = pts[3].replace("AHU4", "AHU5");
        assert_eq!(parse_default_point(&forged), None);
        let other = pts[0].replace("ses_Bldg", "ses_Bldx");
        assert_eq!(parse_default_point(&other), None);
    }

    /// FNV-1a of the samples in [`values_are_stable`].
    const STABLE_DIGEST: u64 = 0x8073_d926_1968_a1a9;

    /// Guards "values identical to before": the string form of a few
    /// samples, recorded before `push_value` replaced `format!`.
    #[test]
    fn values_are_stable() {
        let pts = default_points("FallsCity", 12);
        let got: Vec<String> = pts
            .iter()
            .map(|p| {
                samples(
                    "FallsCity",
                    p,
                    1_760_572_800_000,
                    1_760_573_400_000,
                    300_000,
                )
                .into_iter()
                .map(|(_, v)| v)
                .collect::<Vec<_>>()
                .join(",")
            })
            .collect();
        let digest = fnv1a(got.join(";").as_bytes(), FNV_OFFSET);
        assert_eq!(digest, STABLE_DIGEST, "{got:?}");
    }
}
