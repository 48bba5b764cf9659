//! `%Y-%m-%dT%H:%M:%SZ` formatting without chrono's general formatter.
//!
//! It runs once per served sample, so it writes straight into the output
//! buffer using Howard Hinnant's days-to-civil algorithm (exact for the
//! proleptic Gregorian calendar).

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
    out.push('Z');
}

/// Formats epoch milliseconds the way the API does: `2025-10-16T00:05:00Z`.
pub fn format_time(ms: i64) -> String {
    let mut s = String::with_capacity(20);
    push_time(&mut s, ms);
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
    }
}
