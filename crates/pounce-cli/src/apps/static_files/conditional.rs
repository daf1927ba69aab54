//! Validators and conditional requests (RFC 9110 §8.8 and §13), as pure
//! functions.
//!
//! A representation's validators are a strong `ETag` made of its inode,
//! modification time (to the nanosecond) and size, and `Last-Modified` (to
//! the second). The preconditions are evaluated in the RFC's order
//! (§13.2.2): `If-Match`, else `If-Unmodified-Since` → `412`; then
//! `If-None-Match` (weak comparison), else `If-Modified-Since` → `304`; and
//! `If-Range` (strong comparison, or an exact date) decides whether a `Range`
//! is honoured at all.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The validators of one representation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validators {
    /// Quoted, strong: `"…"`.
    pub etag: String,
    /// Seconds since the epoch (HTTP dates have no finer resolution).
    pub last_modified: u64,
    /// The same as an IMF-fixdate, for the `Last-Modified` field.
    pub last_modified_http: String,
}

impl Validators {
    pub fn new(ino: u64, mtime_sec: i64, mtime_nsec: u32, size: u64) -> Validators {
        let last_modified = mtime_sec.max(0) as u64;
        Validators {
            etag: format!("\"{ino:x}-{:x}.{mtime_nsec:x}-{size:x}\"", mtime_sec.max(0)),
            last_modified,
            last_modified_http: httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(last_modified)),
        }
    }
}

/// The conditional header fields of a request (absent ones `None`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Conditions<'a> {
    pub if_match: Option<&'a str>,
    pub if_none_match: Option<&'a str>,
    pub if_modified_since: Option<&'a str>,
    pub if_unmodified_since: Option<&'a str>,
}

/// What the preconditions say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send the representation (or the range).
    Proceed,
    /// `304 Not Modified`.
    NotModified,
    /// `412 Precondition Failed`.
    Failed,
}

/// Evaluates the preconditions for a GET or HEAD of a representation that
/// exists (`v`), in RFC 9110 §13.2.2's order.
pub fn evaluate(c: &Conditions<'_>, v: &Validators) -> Verdict {
    if let Some(h) = c.if_match {
        if !matches_list(h, &v.etag, Compare::Strong) {
            return Verdict::Failed;
        }
    } else if let Some(date) = c.if_unmodified_since.and_then(parse_date) {
        if v.last_modified > date {
            return Verdict::Failed;
        }
    }
    if let Some(h) = c.if_none_match {
        if matches_list(h, &v.etag, Compare::Weak) {
            return Verdict::NotModified;
        }
    } else if let Some(date) = c.if_modified_since.and_then(parse_date) {
        if v.last_modified <= date {
            return Verdict::NotModified;
        }
    }
    Verdict::Proceed
}

/// True if a `Range` may be honoured given `If-Range` (absent: yes). An
/// entity-tag must match strongly (a weak one never does); a date must equal
/// `Last-Modified` exactly.
pub fn if_range_holds(if_range: Option<&str>, v: &Validators) -> bool {
    let Some(h) = if_range.map(str::trim) else {
        return true;
    };
    if h.starts_with('"') || h.starts_with("W/") {
        return !h.starts_with("W/") && h == v.etag;
    }
    parse_date(h) == Some(v.last_modified)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compare {
    Strong,
    Weak,
}

/// Does the `#entity-tag` list (or `*`) in `header` match our strong `etag`?
/// A malformed list matches nothing from the bad element on.
fn matches_list(header: &str, etag: &str, cmp: Compare) -> bool {
    let mut rest = header.trim_start();
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return false;
        }
        if rest.starts_with('*') {
            // `*` matches any current representation, and ours exists.
            return true;
        }
        let weak = rest.starts_with("W/");
        let tag_start = if weak { &rest[2..] } else { rest };
        let Some(body) = tag_start.strip_prefix('"') else {
            return false;
        };
        let Some(close) = body.find('"') else {
            return false;
        };
        let tag = &tag_start[..close + 2];
        if tag == etag && (cmp == Compare::Weak || !weak) {
            return true;
        }
        rest = &tag_start[close + 2..];
    }
}

/// An HTTP-date (IMF-fixdate, or the obsolete RFC 850 and asctime forms) as
/// seconds since the epoch; `None` if invalid (the header is then ignored).
pub fn parse_date(s: &str) -> Option<u64> {
    let t = httpdate::parse_http_date(s.trim()).ok()?;
    Some(t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2015-10-21 07:28:00 UTC
    const T: u64 = 1_445_412_480;
    const DATE: &str = "Wed, 21 Oct 2015 07:28:00 GMT";
    const BEFORE: &str = "Wed, 21 Oct 2015 07:27:59 GMT";
    const AFTER: &str = "Wed, 21 Oct 2015 07:28:01 GMT";

    fn v() -> Validators {
        Validators { etag: "\"abc\"".into(), last_modified: T, last_modified_http: DATE.into() }
    }

    fn inm(h: &str) -> Verdict {
        evaluate(&Conditions { if_none_match: Some(h), ..Default::default() }, &v())
    }

    #[test]
    fn validators() {
        let v = Validators::new(0x1234, T as i64, 5, 1024);
        assert_eq!(v.etag, "\"1234-56273e80.5-400\"");
        assert_eq!(v.last_modified_http, DATE);
        // Any change of inode, mtime or size changes the tag.
        assert_ne!(Validators::new(0x1235, T as i64, 5, 1024).etag, v.etag);
        assert_ne!(Validators::new(0x1234, T as i64, 6, 1024).etag, v.etag);
        assert_ne!(Validators::new(0x1234, T as i64, 5, 1025).etag, v.etag);
        assert_eq!(Validators::new(1, -5, 0, 0).last_modified, 0);
    }

    #[test]
    fn if_none_match() {
        assert_eq!(inm("\"abc\""), Verdict::NotModified);
        assert_eq!(inm("W/\"abc\""), Verdict::NotModified, "weak comparison");
        assert_eq!(inm("\"x\", \"abc\""), Verdict::NotModified);
        assert_eq!(inm("\"x\",W/\"abc\""), Verdict::NotModified);
        assert_eq!(inm("*"), Verdict::NotModified);
        assert_eq!(inm("\"x\""), Verdict::Proceed);
        assert_eq!(inm("\"abcd\", \"ab\""), Verdict::Proceed);
        assert_eq!(inm("abc"), Verdict::Proceed, "unquoted is malformed");
        assert_eq!(inm("\"abc"), Verdict::Proceed);
        assert_eq!(inm(""), Verdict::Proceed);
        assert_eq!(inm("\"a,b\", \"abc\""), Verdict::NotModified, "commas inside tags");
    }

    #[test]
    fn if_none_match_beats_if_modified_since() {
        let c =
            Conditions { if_none_match: Some("\"x\""), if_modified_since: Some(AFTER), ..Default::default() };
        assert_eq!(evaluate(&c, &v()), Verdict::Proceed);
        let c = Conditions {
            if_none_match: Some("\"abc\""),
            if_modified_since: Some(BEFORE),
            ..Default::default()
        };
        assert_eq!(evaluate(&c, &v()), Verdict::NotModified);
    }

    #[test]
    fn if_modified_since() {
        let ims = |d: &str| evaluate(&Conditions { if_modified_since: Some(d), ..Default::default() }, &v());
        assert_eq!(ims(DATE), Verdict::NotModified);
        assert_eq!(ims(AFTER), Verdict::NotModified);
        assert_eq!(ims(BEFORE), Verdict::Proceed);
        assert_eq!(ims("Wednesday, 21-Oct-15 07:28:00 GMT"), Verdict::NotModified, "RFC 850 form");
        assert_eq!(ims("Wed Oct 21 07:28:00 2015"), Verdict::NotModified, "asctime form");
        assert_eq!(ims("yesterday"), Verdict::Proceed, "invalid dates are ignored");
    }

    #[test]
    fn if_match_and_if_unmodified_since() {
        let c = |m: Option<&'static str>, ius: Option<&'static str>| Conditions {
            if_match: m,
            if_unmodified_since: ius,
            ..Default::default()
        };
        assert_eq!(evaluate(&c(Some("\"abc\""), None), &v()), Verdict::Proceed);
        assert_eq!(evaluate(&c(Some("*"), None), &v()), Verdict::Proceed);
        assert_eq!(evaluate(&c(Some("W/\"abc\""), None), &v()), Verdict::Failed, "strong comparison");
        assert_eq!(evaluate(&c(Some("\"x\""), None), &v()), Verdict::Failed);
        assert_eq!(evaluate(&c(None, Some(DATE)), &v()), Verdict::Proceed);
        assert_eq!(evaluate(&c(None, Some(BEFORE)), &v()), Verdict::Failed);
        // If-Match present: If-Unmodified-Since is not evaluated.
        assert_eq!(evaluate(&c(Some("\"abc\""), Some(BEFORE)), &v()), Verdict::Proceed);
        // 412 wins over 304.
        let both =
            Conditions { if_match: Some("\"x\""), if_none_match: Some("\"abc\""), ..Default::default() };
        assert_eq!(evaluate(&both, &v()), Verdict::Failed);
    }

    #[test]
    fn if_range() {
        assert!(if_range_holds(None, &v()));
        assert!(if_range_holds(Some("\"abc\""), &v()));
        assert!(!if_range_holds(Some("W/\"abc\""), &v()));
        assert!(!if_range_holds(Some("\"x\""), &v()));
        assert!(if_range_holds(Some(DATE), &v()));
        assert!(!if_range_holds(Some(AFTER), &v()));
        assert!(!if_range_holds(Some(BEFORE), &v()));
        assert!(!if_range_holds(Some("garbage"), &v()));
    }
}
