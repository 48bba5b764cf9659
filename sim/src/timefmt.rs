//! `%Y-%m-%dT%H:%M:%S` formatting (naive, `Z` or with a microsecond
//! fraction) without chrono's general formatter.
//!
//! It runs once per served sample (kind mode) or timestamp bucket (faithful
//! mode), so it writes straight into the output buffer using Howard
//! Hinnant's days-to-civil algorithm (exact for the proleptic Gregorian
//! calendar).

use crate::config::TimeFormat;

/// Civil date `(year, month, day)` of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn push_2(out: &mut String, v: u32) {
    out.push(char::from(b'0' + (v / 10 % 10) as u8));
    out.push(char::from(b'0' + (v % 10) as u8));
}

/// Appends `ms` (epoch milliseconds, truncated to the second) as
/// `YYYY-MM-DDTHH:MM:SSZ`.
pub(crate) fn push_time(out: &mut String, ms: i64) {
    push_naive(out, ms);
    out.push('Z');
}

/// Appends `micros` (`0..1_000_000`) as `.ffffff`.
pub(crate) fn push_micros(out: &mut String, micros: u32) {
    out.push('.');
    let mut div = 100_000;
    while div > 0 {
        out.push(char::from(b'0' + (micros / div % 10) as u8));
        div /= 10;
    }
}

/// Appends `ms` (epoch milliseconds, truncated to the second) as naive UTC,
/// `YYYY-MM-DDTHH:MM:SS`, the way ACE writes times.
pub(crate) fn push_naive(out: &mut String, ms: i64) {
    let secs = ms.div_euclid(1000);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400) as u32;
    if (0..=9999).contains(&y) {
        let y = y as u32;
        push_2(out, y / 100);
        push_2(out, y % 100);
    } else {
        // Outside four digits nobody parses it anyway; keep it unambiguous.
        out.push_str(&format!("{y:+}"));
    }
    out.push('-');
    push_2(out, mo);
    out.push('-');
    push_2(out, d);
    out.push('T');
    push_2(out, sod / 3600);
    out.push(':');
    push_2(out, sod / 60 % 60);
    out.push(':');
    push_2(out, sod % 60);
}

/// Formats epoch milliseconds the way the API does: `2025-10-16T00:05:00Z`.
pub fn format_time(ms: i64) -> String {
    let mut s = String::with_capacity(20);
    push_time(&mut s, ms);
    s
}

/// Formats epoch milliseconds as naive UTC: `2025-10-16T00:05:00`.
pub fn format_naive(ms: i64) -> String {
    let mut s = String::with_capacity(19);
    push_naive(&mut s, ms);
    s
}

/// The `time` string faithful mode serves for the sample of `point` at
/// `site` at `ms` (a multiple of the interval) in format `fmt`: naive
/// (`2025-10-16T00:05:00`), `Z`, or naive plus a fraction below 1 ms that
/// depends only on (site, point, ms), e.g. `2025-10-16T00:05:00.000417`.
pub fn format_sample_time(site: &str, point: &str, ms: i64, fmt: TimeFormat) -> String {
    let mut s = String::with_capacity(27);
    push_naive(&mut s, ms);
    match fmt {
        TimeFormat::Naive => {}
        TimeFormat::Z => s.push('Z'),
        TimeFormat::Micros => push_micros(&mut s, crate::data::micros_fraction(site, point, ms)),
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_chrono() {
        let mut ms: i64 = -86_400_000 * 366;
        while ms < 4_102_444_800_000 {
            let want = chrono::DateTime::from_timestamp_millis(ms)
                .unwrap()
                .format("%Y-%m-%dT%H:%M:%SZ")
                .to_string();
            assert_eq!(format_time(ms), want);
            ms += 86_400_000 * 7 + 3_723_456;
        }
        assert_eq!(format_time(1_760_573_100_000), "2025-10-16T00:05:00Z");
        assert_eq!(format_naive(1_760_573_100_000), "2025-10-16T00:05:00");
    }

    #[test]
    fn sample_time_forms() {
        let t = 1_760_573_100_000;
        assert_eq!(
            format_sample_time("s", "p", t, TimeFormat::Naive),
            "2025-10-16T00:05:00"
        );
        assert_eq!(
            format_sample_time("s", "p", t, TimeFormat::Z),
            "2025-10-16T00:05:00Z"
        );
        let mut fracs = std::collections::HashSet::new();
        for k in 0..200 {
            let m = format_sample_time("s", "p", t + k * 300_000, TimeFormat::Micros);
            let (head, frac) = m.split_once('.').unwrap();
            assert_eq!(head, format_naive(t + k * 300_000));
            assert_eq!(frac.len(), 6);
            assert!(frac.starts_with("000"), "{m}");
            let parsed = chrono::NaiveDateTime::parse_from_str(&m, "%Y-%m-%dT%H:%M:%S%.f").unwrap();
            assert_eq!(parsed.and_utc().timestamp_millis(), t + k * 300_000);
            fracs.insert(frac.to_owned());
        }
        assert!(fracs.len() > 100, "fractions vary: {}", fracs.len());
        let mut s = String::new();
        push_micros(&mut s, 7);
        assert_eq!(s, ".000007");
    }
}
