//! HTTP byte ranges (RFC 9110 §14) for stored objects: one range of
//! `bytes`, as DuckDB's httpfs and browsers ask for them.

/// What a `Range` header asks of an object of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ranged {
    /// No usable range: the whole object (a missing, malformed, multi-range
    /// or non-`bytes` header is ignored, as RFC 9110 §14.2 allows).
    Whole,
    /// Bytes `first..=last` (206).
    Part {
        /// First byte.
        first: u64,
        /// Last byte, inclusive.
        last: u64,
    },
    /// No byte of the object is in the range (416).
    Unsatisfiable,
}

impl Ranged {
    /// Reads a `Range` header against an object of `size` bytes.
    pub fn of(header: Option<&str>, size: u64) -> Ranged {
        let Some(spec) = header
            .map(str::trim)
            .and_then(|h| h.strip_prefix("bytes="))
            .filter(|s| !s.contains(','))
        else {
            return Ranged::Whole;
        };
        let Some((a, b)) = spec.trim().split_once('-') else {
            return Ranged::Whole;
        };
        let num = |s: &str| -> Option<u64> {
            let s = s.trim();
            (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
                .then(|| s.parse().ok())
                .flatten()
        };
        match (a.trim().is_empty(), num(a), num(b)) {
            // `-N`: the last N bytes.
            (true, _, Some(n)) if n == 0 || size == 0 => Ranged::Unsatisfiable,
            (true, _, Some(n)) => Ranged::Part {
                first: size.saturating_sub(n),
                last: size - 1,
            },
            (false, Some(first), None) if b.trim().is_empty() => {
                Self::from(first, size.saturating_sub(1), size)
            }
            (false, Some(first), Some(last)) if first <= last => {
                Self::from(first, last.min(size.saturating_sub(1)), size)
            }
            _ => Ranged::Whole,
        }
    }

    fn from(first: u64, last: u64, size: u64) -> Ranged {
        if size == 0 || first >= size {
            Ranged::Unsatisfiable
        } else {
            Ranged::Part { first, last }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_as_rfc_9110_reads_them() {
        let part = |first, last| Ranged::Part { first, last };
        assert_eq!(Ranged::of(Some("bytes=0-99"), 1000), part(0, 99));
        assert_eq!(Ranged::of(Some("bytes=990-2000"), 1000), part(990, 999));
        assert_eq!(Ranged::of(Some("bytes=500-"), 1000), part(500, 999));
        assert_eq!(Ranged::of(Some("bytes=-8"), 1000), part(992, 999));
        assert_eq!(Ranged::of(Some("bytes=-5000"), 1000), part(0, 999));
        assert_eq!(Ranged::of(Some("bytes=1000-"), 1000), Ranged::Unsatisfiable);
        assert_eq!(
            Ranged::of(Some("bytes=1000-1001"), 1000),
            Ranged::Unsatisfiable
        );
        assert_eq!(Ranged::of(Some("bytes=-0"), 1000), Ranged::Unsatisfiable);
        assert_eq!(Ranged::of(Some("bytes=0-0"), 0), Ranged::Unsatisfiable);
        // Ignored: no header, other units, several ranges, nonsense.
        for h in [
            None,
            Some("items=0-1"),
            Some("bytes=0-1,5-6"),
            Some("bytes=5-1"),
            Some("bytes=x-"),
            Some("bytes=-"),
            Some("bytes=1"),
            Some("bytes=+1-2"),
        ] {
            assert_eq!(Ranged::of(h, 1000), Ranged::Whole, "{h:?}");
        }
    }
}
