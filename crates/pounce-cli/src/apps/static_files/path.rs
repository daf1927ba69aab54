//! Request path → a path relative to the served root, as a pure function.
//!
//! This is the first of two fences around the root (the second is
//! `openat2(RESOLVE_BENEATH)` in [`super::fs`], which catches symlinks). The
//! path is percent-decoded exactly once, then its dot segments are resolved
//! the way RFC 3986 §5.2.4 does it for URLs; a `..` that would climb above
//! the root is refused rather than clamped, so `/../etc/passwd` is never
//! quietly turned into `/etc/passwd` under the root. Anything that would change
//! the segmentation after decoding (`%2f`, a backslash in any form) or that no
//! file name can hold (NUL) is refused outright, whichever way it was spelt.
//! Decoding once means `%252e%252e` names a file literally called `%2e%2e`.

use std::fmt::Write as _;

/// A request path, decoded and normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanPath {
    /// Segments joined with `/`, no leading or trailing slash; empty for the
    /// root. Bytes, not UTF-8: Linux file names are bytes.
    pub rel: Vec<u8>,
    /// The request named a directory: it ended in `/` (or in a dot segment),
    /// or it was the root.
    pub dir: bool,
    /// A segment starts with `.` (other than a leading `.well-known`, RFC 8615).
    pub hidden: bool,
}

/// Why a path is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// Broken percent-encoding, or not a path at all: `400`.
    Malformed,
    /// Would leave the root, or smuggles a separator or NUL: `403`.
    Forbidden,
}

/// Decodes and normalises `raw` (the request path, still percent-encoded).
pub fn clean(raw: &str) -> Result<CleanPath, PathError> {
    let raw = raw.as_bytes();
    if raw.first() != Some(&b'/') {
        return Err(PathError::Malformed);
    }
    let decoded = decode(raw)?;
    let mut segments: Vec<&[u8]> = Vec::new();
    let mut dir = decoded.ends_with(b"/");
    for seg in decoded.split(|&b| b == b'/') {
        dir = match seg {
            b"" => dir,
            b"." => true,
            b".." => {
                if segments.pop().is_none() {
                    return Err(PathError::Forbidden);
                }
                true
            }
            _ => {
                segments.push(seg);
                false
            }
        };
    }
    // Only the last segment decides; a trailing slash keeps `dir` set.
    let dir = dir || segments.is_empty() || decoded.ends_with(b"/");
    let hidden = segments
        .iter()
        .enumerate()
        .any(|(i, s)| s.first() == Some(&b'.') && !(i == 0 && *s == b".well-known"));
    Ok(CleanPath { rel: segments.join(&b'/'), dir, hidden })
}

/// Percent-decodes once, refusing encoded or raw separators and NUL.
fn decode(raw: &[u8]) -> Result<Vec<u8>, PathError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = match raw[i] {
            b'%' => {
                let hex = |k: usize| raw.get(k).and_then(|c| (*c as char).to_digit(16));
                let (Some(hi), Some(lo)) = (hex(i + 1), hex(i + 2)) else {
                    return Err(PathError::Malformed);
                };
                i += 3;
                let b = (hi * 16 + lo) as u8;
                if b == b'/' {
                    return Err(PathError::Forbidden);
                }
                b
            }
            b => {
                i += 1;
                b
            }
        };
        if b == b'\\' || b == 0 {
            return Err(PathError::Forbidden);
        }
        out.push(b);
    }
    Ok(out)
}

/// Percent-encodes a relative path for a `Location` header: `/` kept
/// between segments, everything outside RFC 3986's `pchar` encoded.
pub fn encode(rel: &[u8]) -> String {
    let mut out = String::with_capacity(rel.len() + 8);
    for &b in rel {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> (String, bool, bool) {
        let c = clean(raw).unwrap_or_else(|e| panic!("{raw}: {e:?}"));
        (String::from_utf8(c.rel).unwrap(), c.dir, c.hidden)
    }

    #[test]
    fn plain_paths() {
        assert_eq!(ok("/"), ("".into(), true, false));
        assert_eq!(ok("/a.txt"), ("a.txt".into(), false, false));
        assert_eq!(ok("/dir/"), ("dir".into(), true, false));
        assert_eq!(ok("/dir"), ("dir".into(), false, false));
        assert_eq!(ok("//a///b"), ("a/b".into(), false, false));
        assert_eq!(ok("/a/./b"), ("a/b".into(), false, false));
        assert_eq!(ok("/a/b/."), ("a/b".into(), true, false));
    }

    #[test]
    fn decodes_once() {
        assert_eq!(ok("/hello%20world.txt"), ("hello world.txt".into(), false, false));
        assert_eq!(ok("/%E2%82%AC"), ("€".into(), false, false));
        // %25 decodes to a literal '%', which is not decoded again.
        assert_eq!(ok("/%252e%252e/x"), ("%2e%2e/x".into(), false, false));
        assert_eq!(ok("/a%2Eb"), ("a.b".into(), false, false));
    }

    #[test]
    fn dot_dot_inside_the_root_is_resolved() {
        assert_eq!(ok("/a/../b"), ("b".into(), false, false));
        assert_eq!(ok("/a/b/.."), ("a".into(), true, false));
        assert_eq!(ok("/a/%2e%2e/b"), ("b".into(), false, false));
        assert_eq!(ok("/a/.."), ("".into(), true, false));
    }

    #[test]
    fn escapes_are_forbidden() {
        for raw in [
            "/..",
            "/../etc/passwd",
            "/a/../../etc/passwd",
            "/%2e%2e/etc/passwd",
            "/%2E%2E/%2e%2e/etc/passwd",
            "/.%2e/x",
            "/a/%2e%2e/%2e%2e/x",
            "/..%2fetc%2fpasswd",
            "/a%2Fb",
            "/..\\etc\\passwd",
            "/a%5c..%5c..%5cx",
            "/a%5C..",
            "/a%00.txt",
        ] {
            assert_eq!(clean(raw), Err(PathError::Forbidden), "{raw}");
        }
    }

    #[test]
    fn malformed() {
        for raw in ["", "*", "a/b", "/%", "/%2", "/%zz", "/%g0", "/abc%"] {
            assert_eq!(clean(raw), Err(PathError::Malformed), "{raw:?}");
        }
    }

    #[test]
    fn hidden_segments() {
        assert!(ok("/.env").2);
        assert!(ok("/.git/config").2);
        assert!(ok("/a/.secret/b").2);
        assert!(ok("/%2egit/HEAD").2);
        assert!(!ok("/.well-known/acme-challenge/tok").2);
        assert!(ok("/a/.well-known/x").2);
        assert!(!ok("/a.b/c..d").2);
    }

    #[test]
    fn encode_for_location() {
        assert_eq!(encode(b"dir/sub"), "dir/sub");
        assert_eq!(encode(b"a b/\xe2\x82\xac?#%"), "a%20b/%E2%82%AC%3F%23%25");
        // Round trip through clean.
        let rel = b"we?ird #name/x%y";
        let back = clean(&format!("/{}", encode(rel))).unwrap();
        assert_eq!(back.rel, rel.to_vec());
    }
}
