//! `Range: bytes=…` (RFC 9110 §14.2) as a pure function of the header and
//! the representation's size.
//!
//! One satisfiable range (after merging overlapping or adjacent ones) is
//! answered with `206`; several disjoint ones with the whole representation
//! (`200`), which the RFC allows and which spares us multipart bodies; none
//! satisfiable with `416`. A header we cannot parse, or in another unit, is
//! ignored, as the RFC requires.

/// An inclusive byte range within a representation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    /// Inclusive, `< size`.
    pub end: u64,
}

impl ByteRange {
    pub fn len(self) -> u64 {
        self.end - self.start + 1
    }
}

/// What to send for a `Range` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAnswer {
    /// The whole representation (`200`).
    Full,
    /// This part (`206` with `Content-Range: bytes start-end/size`).
    Partial(ByteRange),
    /// `416` with `Content-Range: bytes */size`.
    Unsatisfiable,
}

/// More ranges than this in one header are not worth parsing: `200`.
const MAX_RANGES: usize = 64;

/// Decides what to send for `header` against a representation of `size` bytes.
pub fn answer(header: &str, size: u64) -> RangeAnswer {
    let Some((unit, set)) = header.split_once('=') else {
        return RangeAnswer::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return RangeAnswer::Full;
    }
    let mut specs = 0usize;
    let mut ranges: Vec<ByteRange> = Vec::new();
    for spec in set.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        specs += 1;
        if specs > MAX_RANGES {
            return RangeAnswer::Full;
        }
        let Some(spec) = parse_spec(spec) else {
            return RangeAnswer::Full;
        };
        if let Some(r) = resolve(spec, size) {
            ranges.push(r);
        }
    }
    if specs == 0 {
        return RangeAnswer::Full;
    }
    ranges.sort_by_key(|r| r.start);
    let mut merged: Option<ByteRange> = None;
    for r in ranges {
        merged = match merged {
            None => Some(r),
            Some(m) if r.start <= m.end.saturating_add(1) => {
                Some(ByteRange { start: m.start, end: m.end.max(r.end) })
            }
            Some(_) => return RangeAnswer::Full,
        };
    }
    match merged {
        Some(r) => RangeAnswer::Partial(r),
        None => RangeAnswer::Unsatisfiable,
    }
}

/// One `range-spec`, before it meets the size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spec {
    /// `first-` or `first-last`.
    From { first: u64, last: Option<u64> },
    /// `-n`: the last n bytes.
    Suffix(u64),
}

fn parse_spec(spec: &str) -> Option<Spec> {
    let (first, last) = spec.split_once('-')?;
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // All digits: only overflow can fail, and a huge number is just huge.
        Some(s.parse().unwrap_or(u64::MAX))
    };
    if first.is_empty() {
        return num(last).map(Spec::Suffix);
    }
    let first = num(first)?;
    let last = if last.is_empty() { None } else { Some(num(last)?) };
    if last.is_some_and(|l| l < first) {
        return None;
    }
    Some(Spec::From { first, last })
}

fn resolve(spec: Spec, size: u64) -> Option<ByteRange> {
    match spec {
        Spec::From { first, last } => {
            (first < size).then(|| ByteRange { start: first, end: last.unwrap_or(u64::MAX).min(size - 1) })
        }
        Spec::Suffix(n) => {
            (n > 0 && size > 0).then(|| ByteRange { start: size - n.min(size), end: size - 1 })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RangeAnswer::*;
    use super::*;

    fn part(start: u64, end: u64) -> RangeAnswer {
        Partial(ByteRange { start, end })
    }

    #[test]
    fn single_ranges() {
        assert_eq!(answer("bytes=0-0", 100), part(0, 0));
        assert_eq!(answer("bytes=0-99", 100), part(0, 99));
        assert_eq!(answer("bytes=10-19", 100), part(10, 19));
        assert_eq!(answer("bytes=90-200", 100), part(90, 99));
        assert_eq!(answer("bytes=50-", 100), part(50, 99));
        assert_eq!(answer("bytes=99-", 100), part(99, 99));
        assert_eq!(answer("bytes=-10", 100), part(90, 99));
        assert_eq!(answer("bytes=-100", 100), part(0, 99));
        assert_eq!(answer("bytes=-1000", 100), part(0, 99));
        assert_eq!(answer("Bytes = 1-2", 100), part(1, 2));
        assert_eq!(answer("bytes=0-99999999999999999999999", 100), part(0, 99));
        assert_eq!(part(10, 19), Partial(ByteRange { start: 10, end: 19 }));
        assert_eq!(ByteRange { start: 10, end: 19 }.len(), 10);
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(answer("bytes=100-", 100), Unsatisfiable);
        assert_eq!(answer("bytes=100-200", 100), Unsatisfiable);
        assert_eq!(answer("bytes=-0", 100), Unsatisfiable);
        assert_eq!(answer("bytes=0-", 0), Unsatisfiable);
        assert_eq!(answer("bytes=-5", 0), Unsatisfiable);
        assert_eq!(answer("bytes=200-300, 400-", 100), Unsatisfiable);
        assert_eq!(answer("bytes=99999999999999999999999-", 100), Unsatisfiable);
    }

    #[test]
    fn ignored_headers_mean_full() {
        for h in [
            "",
            "bytes",
            "bytes=",
            "bytes=,",
            "items=0-1",
            "bytes=a-b",
            "bytes=5-1",
            "bytes=1",
            "bytes=--1",
            "bytes=0-1-2",
            "bytes=+1-2",
            "bytes= 0 - 1",
            "bytes=0x10-",
        ] {
            assert_eq!(answer(h, 100), Full, "{h:?}");
        }
    }

    #[test]
    fn several_ranges() {
        // Disjoint: the whole representation.
        assert_eq!(answer("bytes=0-0,-1", 100), Full);
        assert_eq!(answer("bytes=0-9, 20-29", 100), Full);
        // Overlapping or adjacent ranges merge into one.
        assert_eq!(answer("bytes=0-9, 5-19", 100), part(0, 19));
        assert_eq!(answer("bytes=10-19,0-9", 100), part(0, 19));
        // Only one satisfiable: that one.
        assert_eq!(answer("bytes=0-9, 500-", 100), part(0, 9));
        // Empty list elements are allowed.
        assert_eq!(answer("bytes=, 0-9 ,", 100), part(0, 9));
        let many = format!("bytes={}", vec!["0-0"; 65].join(","));
        assert_eq!(answer(&many, 100), Full);
    }
}
