//! Entry points for the fuzz targets in `fuzz/` and for the corpus replay
//! test: each runs one parser on arbitrary bytes and checks the properties
//! that make framing trustworthy, panicking if one fails.
//!
//! Not part of the public API: hidden, and free to change.

use crate::http::chunked::{ChunkError, ChunkedDecoder};
use crate::http::request::{Framing, HeadLimits, RequestHead, parse_head};

/// Request-head parser properties:
/// - never panics, whatever the bytes and limits;
/// - a complete head lies inside the input, and every span inside the head;
/// - the same head parses identically from just its own bytes (what follows
///   it cannot change where it ends);
/// - no strict prefix of a complete head is itself complete (a request
///   cannot end early when its bytes arrive in pieces);
/// - `chunked` framing never coexists with a Content-Length.
pub fn request_head(data: &[u8]) {
    let (limits_byte, data) = match data.split_first() {
        Some((b, rest)) => (*b, rest),
        None => return,
    };
    let limits = HeadLimits {
        max_header_size: 64 + usize::from(limits_byte) * 64,
        max_headers: 1 + usize::from(limits_byte % 32),
    };
    let mut head = RequestHead::default();
    let Ok(true) = parse_head(data, limits, &mut head) else { return };
    let len = head.len;
    assert!(len <= data.len() && len <= limits.max_header_size, "head length {len} out of bounds");
    let mut spans = vec![head.method, head.target, head.path];
    spans.extend(head.query);
    for (n, v) in &head.headers {
        spans.push(*n);
        spans.push(*v);
    }
    for s in &spans {
        assert!(s.start <= s.end && s.end as usize <= len, "span {s:?} outside the head (len {len})");
    }
    let mut again = RequestHead::default();
    assert_eq!(parse_head(&data[..len], limits, &mut again), Ok(true), "head not stable without its tail");
    assert_eq!((again.len, again.framing, again.keep_alive), (len, head.framing, head.keep_alive));
    for cut in [len / 2, len.saturating_sub(1)] {
        if cut < len {
            let mut part = RequestHead::default();
            assert_ne!(
                parse_head(&data[..cut], limits, &mut part),
                Ok(true),
                "a {cut}-byte prefix of a {len}-byte head is complete"
            );
        }
    }
    if head.framing == Framing::Chunked {
        let has_cl = head.headers.iter().any(|(n, _)| n.get(data).eq_ignore_ascii_case(b"content-length"));
        assert!(!has_cl, "chunked framing with a Content-Length");
    }
}

/// Chunked-decoder properties:
/// - never panics; never consumes more than it was given;
/// - never produces more than the body limit;
/// - decoding all at once and decoding byte by byte agree exactly (same
///   data, same end, same error), so where a body ends cannot depend on how
///   the bytes were split across reads.
pub fn chunked(data: &[u8]) {
    let (limit_byte, data) = match data.split_first() {
        Some((b, rest)) => (*b, rest),
        None => return,
    };
    let max = usize::from(limit_byte) * 16;
    let whole = run_chunked(data, max, usize::MAX);
    let bytewise = run_chunked(data, max, 1);
    assert_eq!(whole, bytewise, "split reads changed the result");
    if let Ok((out, used, _)) = &whole {
        assert!(*used <= data.len());
        assert!(out.len() <= max);
    }
}

type ChunkRun = Result<(Vec<u8>, usize, bool), ChunkError>;

fn run_chunked(data: &[u8], max: usize, step: usize) -> ChunkRun {
    let mut d = ChunkedDecoder::default();
    let mut out = Vec::new();
    let mut used = 0;
    while used < data.len() && !d.is_done() {
        let end = data.len().min(used.saturating_add(step));
        let n = d.decode(&data[used..end], &mut out, max)?;
        assert!(n <= end - used, "consumed more than given");
        assert!(d.is_done() || n == end - used, "left input unconsumed without finishing");
        used += n;
    }
    Ok((out, used, d.is_done()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn smoke() {
        super::request_head(b"\x10GET /a?b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc");
        super::request_head(b"");
        super::chunked(b"\xff5\r\nhello\r\n0\r\n\r\nrest");
        super::chunked(b"\x00");
    }
}
