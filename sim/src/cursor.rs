//! The opaque page cursor: URL-safe base64 of `{"o":offset}`.
//!
//! The offset indexes the flattened (point, time) sequence of the query, so
//! a cursor is only meaningful with the query that produced it, just like the
//! real API's. URL-safe alphabet without padding so clients that forget to
//! percent-encode it still round-trip.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

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
}
