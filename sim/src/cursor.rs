//! Page cursors.
//!
//! - Kind mode: URL-safe base64 of `{"o":offset}`. The offset indexes the
//!   flattened (point, time) sequence of the query, so a cursor is only
//!   meaningful with the query that produced it. URL-safe alphabet without
//!   padding so clients that forget to percent-encode it still round-trip.
//! - Faithful mode ([`encode_ace`], [`decode_ace`]): standard base64 of
//!   `{"offset": N, "timestamp": "2026-08-07T16:25:00"}`, as ACE sends it:
//!   the next page starts N rows after the first row whose time is
//!   `timestamp`.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::timefmt::push_naive;

/// The decoded form of ACE's cursor.
#[derive(Deserialize)]
struct AceCursor {
    offset: u64,
    timestamp: String,
}

/// Encodes ACE's cursor: `offset` rows after the first row at `ts_ms`.
/// The JSON is spelled the way Python's `json.dumps` writes it.
pub(crate) fn encode_ace(offset: u64, ts_ms: i64) -> String {
    let mut json = String::with_capacity(64);
    json.push_str("{\"offset\": ");
    json.push_str(&offset.to_string());
    json.push_str(", \"timestamp\": \"");
    push_naive(&mut json, ts_ms);
    json.push_str("\"}");
    STANDARD.encode(json)
}

/// Decodes ACE's cursor into `(offset, timestamp in epoch ms)`; `None` if it
/// is not one. Padding is optional, and either base64 alphabet is accepted
/// (a `+` turned into a space by form decoding is put back); the timestamp
/// may be in any form `time_ms` accepts.
pub(crate) fn decode_ace(s: &str, time_ms: impl Fn(&str) -> Option<i64>) -> Option<(u64, i64)> {
    let cleaned: String = s
        .trim()
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            ' ' => '+',
            c => c,
        })
        .collect();
    let bytes = STANDARD_NO_PAD.decode(cleaned).ok()?;
    let c: AceCursor = serde_json::from_slice(&bytes).ok()?;
    Some((c.offset, time_ms(&c.timestamp)?))
}

#[derive(Serialize, Deserialize)]
struct Cursor {
    o: u64,
}

/// Encodes a position.
pub(crate) fn encode(offset: u64) -> String {
    // Serialising a one-field struct of u64 cannot fail; fall back to the
    // literal form rather than unwrap.
    let json = serde_json::to_vec(&Cursor { o: offset })
        .unwrap_or_else(|_| format!("{{\"o\":{offset}}}").into_bytes());
    URL_SAFE_NO_PAD.encode(json)
}

/// Decodes a cursor from a previous page; `None` if it is not one of ours.
pub(crate) fn decode(s: &str) -> Option<u64> {
    // Tolerate padding and the standard alphabet too.
    let trimmed = s.trim_end_matches('=').replace('+', "-").replace('/', "_");
    let bytes = URL_SAFE_NO_PAD.decode(trimmed).ok()?;
    serde_json::from_slice::<Cursor>(&bytes).ok().map(|c| c.o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for o in [0, 1, 9_999, u64::MAX] {
            assert_eq!(decode(&encode(o)), Some(o));
        }
        assert_eq!(decode("not a cursor"), None);
        assert_eq!(decode(""), None);
    }

    fn naive_ms(s: &str) -> Option<i64> {
        chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
            .ok()
            .map(|t| t.and_utc().timestamp_millis())
    }

    #[test]
    fn ace_round_trip_and_tolerance() {
        let ts = 1_786_119_900_000; // 2026-08-07T16:25:00
        let c = encode_ace(3, ts);
        let json = STANDARD.decode(&c).unwrap();
        assert_eq!(
            String::from_utf8(json).unwrap(),
            r#"{"offset": 3, "timestamp": "2026-08-07T16:25:00"}"#
        );
        assert_eq!(decode_ace(&c, naive_ms), Some((3, ts)));
        let unpadded = c.trim_end_matches('=');
        assert_eq!(decode_ace(unpadded, naive_ms), Some((3, ts)));
        let url_safe = URL_SAFE_NO_PAD.encode(r#"{"offset":7,"timestamp":"2026-08-07T16:25:00"}"#);
        assert_eq!(decode_ace(&url_safe, naive_ms), Some((7, ts)));
        // A '+' that form decoding turned into a space.
        for o in 0..200 {
            let c = encode_ace(o, ts + i64::try_from(o).unwrap() * 300_000);
            assert_eq!(
                decode_ace(&c.replace('+', " "), naive_ms).map(|d| d.0),
                Some(o)
            );
        }
        assert_eq!(decode_ace("garbage!", naive_ms), None);
        assert_eq!(
            decode_ace(
                &STANDARD.encode(r#"{"offset": -1, "timestamp": "2026-08-07T16:25:00"}"#),
                naive_ms
            ),
            None
        );
        assert_eq!(
            decode_ace(
                &STANDARD.encode(r#"{"offset": 1, "timestamp": "soon"}"#),
                naive_ms
            ),
            None
        );
        assert_eq!(decode_ace(&encode(5), naive_ms), None);
    }
}
