//! ACE's page cursor, and its repair.
//!
//! `next_cursor` is base64 of JSON `{"offset": N, "timestamp": "…"}`: the
//! next page starts at the first row with that timestamp, plus N rows.
//! ACE computes N as the rows its page took from its last timestamp
//! bucket, without the incoming offset. A page that begins and ends inside
//! one bucket (whenever the page size is below the site's points per
//! timestamp) therefore returns the cursor it was given, and following it
//! repeats that page for ever. [`next`] computes the cursor from the page
//! instead, so the walk neither repeats a page nor skips the rest.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::domain::EpochMs;
use crate::sample::{Page, TimeParser};

/// A decoded cursor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Rows to skip from the first row at `timestamp`.
    pub offset: u64,
    /// The bucket's time, as the upstream wrote it.
    pub timestamp: String,
}

impl Cursor {
    /// Decodes a cursor (standard or URL-safe base64, padded or not).
    pub fn decode(s: &str) -> Option<Self> {
        let t = s.trim().trim_end_matches('=');
        let bytes = STANDARD
            .decode(format!("{t}{}", "=".repeat((4 - t.len() % 4) % 4)))
            .or_else(|_| URL_SAFE_NO_PAD.decode(t))
            .ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Encodes it the way ACE does.
    pub fn encode(&self) -> String {
        STANDARD.encode(serde_json::to_vec(self).unwrap_or_default())
    }
}

/// Where the walk is: the cursor sent for the current page (none for the
/// first) and its bucket's time.
#[derive(Debug, Clone, Default)]
pub struct Position {
    /// The cursor as sent.
    pub cursor: Option<Cursor>,
    /// Its timestamp, parsed.
    pub at: Option<EpochMs>,
}

/// The cursor of the page after `page`, computed from the page itself:
/// the incoming offset carries over when the page stayed in the cursor's
/// bucket, and the rows taken from the last bucket are added. The
/// timestamp is the upstream's own (from its `next_cursor`) when that names
/// the page's last row, so the upstream reads back its own format.
pub fn next(pos: &Position, page: &Page, times: &mut TimeParser) -> Result<Position, String> {
    let Some(last) = page.last_ts else {
        return Err("a page with no rows says more follow".to_owned());
    };
    let same_bucket = pos.at == Some(last) && page.first_ts == Some(last);
    let offset = match (&pos.cursor, same_bucket) {
        (Some(c), true) => c.offset + page.rows,
        _ => page.last_run,
    };
    let theirs = page.next_cursor.as_deref().and_then(Cursor::decode);
    let timestamp = match theirs {
        Some(c) if times.parse(&c.timestamp) == Some(last) => c.timestamp,
        Some(c) => {
            return Err(format!(
                "next_cursor names {:?}, not the page's last row",
                c.timestamp
            ))
        }
        None => naive(last),
    };
    Ok(Position {
        cursor: Some(Cursor { offset, timestamp }),
        at: Some(last),
    })
}

/// `YYYY-MM-DDTHH:MM:SS[.mmm]`, naive UTC as ACE writes it.
fn naive(t: EpochMs) -> String {
    let ms = t.ms();
    let Some(t) = chrono::DateTime::from_timestamp_millis(ms) else {
        return String::new();
    };
    if ms % 1000 == 0 {
        t.format("%Y-%m-%dT%H:%M:%S").to_string()
    } else {
        t.format("%Y-%m-%dT%H:%M:%S%.3f").to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(rows: u64, first: EpochMs, last: EpochMs, run: u64, theirs: &Cursor) -> Page {
        Page {
            next_cursor: Some(theirs.encode()),
            has_more: true,
            rows,
            kept: 0,
            first_ts: Some(first),
            last_ts: Some(last),
            last_run: run,
        }
    }

    #[test]
    fn round_trip_in_both_alphabets() {
        let c = Cursor {
            offset: 7,
            timestamp: "2024-02-20T00:05:00".into(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c.clone()));
        let url = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap());
        assert_eq!(Cursor::decode(&url), Some(c));
        assert_eq!(Cursor::decode("not base64!"), None);
    }

    #[test]
    fn a_page_inside_one_bucket_carries_the_offset_aces_bug_drops() {
        let mut times = TimeParser::default();
        let t0 = times.parse("2024-02-20T00:00:00").unwrap();
        let given = Cursor {
            offset: 3,
            timestamp: "2024-02-20T00:00:00".into(),
        };
        let pos = Position {
            cursor: Some(given.clone()),
            at: Some(t0),
        };
        // ACE hands back the cursor it was given: 3 rows from the bucket.
        let p = page(3, t0, t0, 3, &given);
        let next = next(&pos, &p, &mut times).unwrap();
        assert_eq!(next.cursor.unwrap().offset, 6);
    }

    #[test]
    fn a_page_that_reaches_a_new_bucket_counts_only_that_bucket() {
        let mut times = TimeParser::default();
        let t0 = times.parse("2024-02-20T00:00:00").unwrap();
        let t1 = t0 + 300_000;
        let theirs = Cursor {
            offset: 2,
            timestamp: "2024-02-20T00:05:00".into(),
        };
        let pos = Position {
            cursor: Some(Cursor {
                offset: 9,
                timestamp: "2024-02-20T00:00:00".into(),
            }),
            at: Some(t0),
        };
        let next = next(&pos, &page(3, t0, t1, 2, &theirs), &mut times).unwrap();
        assert_eq!(next.cursor, Some(theirs));
        assert_eq!(next.at, Some(t1));
        // The first page (no cursor) too.
        let first = super::next(
            &Position::default(),
            &page(
                5,
                t0,
                t0,
                5,
                &Cursor {
                    offset: 5,
                    timestamp: "2024-02-20T00:00:00".into(),
                },
            ),
            &mut times,
        )
        .unwrap();
        assert_eq!(first.cursor.unwrap().offset, 5);
    }

    #[test]
    fn a_cursor_that_names_another_row_is_refused() {
        let mut times = TimeParser::default();
        let t0 = times.parse("2024-02-20T00:00:00").unwrap();
        let odd = Cursor {
            offset: 1,
            timestamp: "2030-01-01T00:00:00".into(),
        };
        assert!(next(&Position::default(), &page(1, t0, t0, 1, &odd), &mut times).is_err());
    }
}
