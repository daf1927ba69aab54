//! Request-head parsing and validation (RFC 9112), sans I/O.
//!
//! httparse does the tokenising in place; this module adds the rules that
//! decide where a request ends, strictly, because two parsers disagreeing on
//! that is how request smuggling happens: Content-Length and Transfer-Encoding
//! together, malformed or conflicting lengths, codings other than a final
//! `chunked`, bare LF line endings, missing or repeated Host. Every failure is
//! a [`HeadError`] that maps to one status; the connection always closes after
//! one, so nothing behind a bad request is ever parsed as a new request.

use super::{Span, Version, scan};
use memchr::memchr;
use std::mem::MaybeUninit;

/// Longest request-target accepted; longer gets 414 (nginx's default buffer).
pub(crate) const MAX_TARGET_LEN: usize = 8192;

/// Limits taken from the server config.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeadLimits {
    pub max_header_size: usize,
    pub max_headers: usize,
}

/// How the request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Framing {
    /// No body.
    #[default]
    Empty,
    Length(u64),
    Chunked,
}

/// A parsed request head, as spans into the read buffer. One per connection,
/// reused for every request so parsing allocates nothing once warm.
#[derive(Debug, Default)]
pub(crate) struct RequestHead {
    /// Bytes of the head, including the blank line.
    pub len: usize,
    pub method: Span,
    pub target: Span,
    pub path: Span,
    pub query: Option<Span>,
    pub version: Option<Version>,
    pub headers: Vec<(Span, Span)>,
    pub framing: Framing,
    /// The client asked to keep the connection open.
    pub keep_alive: bool,
    pub expect_continue: bool,
}

impl RequestHead {
    pub(crate) const EMPTY: RequestHead = RequestHead {
        len: 0,
        method: Span { start: 0, end: 0 },
        target: Span { start: 0, end: 0 },
        path: Span { start: 0, end: 0 },
        query: None,
        version: None,
        headers: Vec::new(),
        framing: Framing::Empty,
        keep_alive: false,
        expect_continue: false,
    };

    pub(crate) fn version(&self) -> Version {
        self.version.unwrap_or(Version::Http11)
    }

    pub(crate) fn is_head_method(&self, buf: &[u8]) -> bool {
        self.method.get(buf) == b"HEAD"
    }
}

/// Why a head was refused, and so which status answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeadError {
    /// 400: malformed or ambiguous; the reason goes to the debug log.
    Bad(&'static str),
    /// 414
    UriTooLong,
    /// 431: head larger than max_header_size or more than max_headers fields.
    TooLarge,
    /// 417: an `Expect` other than 100-continue.
    Expectation,
    /// 501: a transfer coding we do not decode.
    UnsupportedCoding,
    /// 505: a well-formed version other than 1.0/1.1.
    Version,
}

impl HeadError {
    pub(crate) fn status(self) -> u16 {
        match self {
            HeadError::Bad(_) => 400,
            HeadError::UriTooLong => 414,
            HeadError::TooLarge => 431,
            HeadError::Expectation => 417,
            HeadError::UnsupportedCoding => 501,
            HeadError::Version => 505,
        }
    }
}

/// Parses the head at the start of `buf` into `head`.
///
/// `Ok(true)`: complete, `head.len` bytes used. `Ok(false)`: incomplete and
/// still within limits; read more. `Err`: answer with `err.status()` and close.
pub(crate) fn parse_head(buf: &[u8], limits: HeadLimits, head: &mut RequestHead) -> Result<bool, HeadError> {
    const STACK_HEADERS: usize = 128;
    // Uninitialised storage: httparse writes only the fields it finds, so
    // the 4 KiB array is not zeroed for every request (and every partial
    // head) just to be overwritten.
    let mut stack = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK_HEADERS];
    let mut heap: Vec<MaybeUninit<httparse::Header<'_>>>;
    let storage = if limits.max_headers <= STACK_HEADERS {
        &mut stack[..limits.max_headers]
    } else {
        heap = std::iter::repeat_with(MaybeUninit::uninit).take(limits.max_headers).collect();
        &mut heap[..]
    };
    let mut req = httparse::Request::new(&mut []);
    let status = match req.parse_with_uninit_headers(buf, storage) {
        Ok(s) => s,
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(httparse::Error::Version) => return Err(version_error(buf)),
        Err(httparse::Error::Token) => return Err(HeadError::Bad("invalid method or target")),
        Err(httparse::Error::HeaderName) => return Err(HeadError::Bad("invalid header name")),
        Err(httparse::Error::HeaderValue) => return Err(HeadError::Bad("invalid header value")),
        Err(_) => return Err(HeadError::Bad("malformed request head")),
    };
    let len = match status {
        httparse::Status::Partial => {
            check_partial(buf, limits)?;
            return Ok(false);
        }
        httparse::Status::Complete(n) => n,
    };
    if len > limits.max_header_size {
        return Err(HeadError::TooLarge);
    }
    check_line_endings(&buf[..len])?;

    let method = req.method.ok_or(HeadError::Bad("missing method"))?;
    let target = req.path.ok_or(HeadError::Bad("missing target"))?;
    if target.len() > MAX_TARGET_LEN {
        return Err(HeadError::UriTooLong);
    }
    let version = match req.version {
        Some(0) => Version::Http10,
        Some(1) => Version::Http11,
        _ => return Err(HeadError::Version),
    };

    head.len = len;
    head.method = Span::of(buf, method.as_bytes());
    head.target = Span::of(buf, target.as_bytes());
    head.version = Some(version);
    let (path, query) = split_target(method, target)?;
    head.path = Span::of(buf, path.as_bytes());
    head.query = query.map(|q| Span::of(buf, q.as_bytes()));
    head.headers.clear();

    let mut content_length: Option<u64> = None;
    let mut chunked_seen = false;
    let mut te_present = false;
    let mut te_unsupported = false;
    let mut te_chunked_last = false;
    let mut hosts = 0usize;
    let mut conn_close = false;
    let mut conn_keep_alive = false;
    head.expect_continue = false;

    for h in req.headers.iter() {
        let name = h.name;
        let value = h.value;
        head.headers.push((Span::of(buf, name.as_bytes()), Span::of(buf, value)));
        if name.eq_ignore_ascii_case("content-length") {
            let n = parse_content_length(value)?;
            if content_length.is_some_and(|prev| prev != n) {
                return Err(HeadError::Bad("conflicting Content-Length"));
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            te_present = true;
            for coding in value.split(|&b| b == b',') {
                let coding = trim(coding);
                if coding.is_empty() {
                    return Err(HeadError::Bad("empty transfer coding"));
                }
                // Parameters (`;q=`) are not allowed on chunked; any other
                // coding is one we don't implement.
                if coding.eq_ignore_ascii_case(b"chunked") {
                    if chunked_seen {
                        return Err(HeadError::Bad("chunked applied twice"));
                    }
                    chunked_seen = true;
                    te_chunked_last = true;
                } else {
                    te_unsupported = true;
                    te_chunked_last = false;
                }
            }
        } else if name.eq_ignore_ascii_case("host") {
            hosts += 1;
            if !host_ok(value) {
                return Err(HeadError::Bad("invalid Host"));
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(|&b| b == b',') {
                let token = trim(token);
                if token.eq_ignore_ascii_case(b"close") {
                    conn_close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    conn_keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("expect") {
            if trim(value).eq_ignore_ascii_case(b"100-continue") {
                head.expect_continue = version == Version::Http11;
            } else {
                return Err(HeadError::Expectation);
            }
        }
    }

    if version == Version::Http11 && hosts == 0 {
        return Err(HeadError::Bad("missing Host"));
    }
    if hosts > 1 {
        return Err(HeadError::Bad("several Host fields"));
    }

    head.framing = if te_present {
        if content_length.is_some() {
            return Err(HeadError::Bad("both Content-Length and Transfer-Encoding"));
        }
        if version == Version::Http10 {
            return Err(HeadError::Bad("Transfer-Encoding in an HTTP/1.0 request"));
        }
        if !te_chunked_last {
            return Err(HeadError::Bad("chunked is not the final transfer coding"));
        }
        if te_unsupported {
            return Err(HeadError::UnsupportedCoding);
        }
        Framing::Chunked
    } else {
        match content_length {
            Some(0) | None => Framing::Empty,
            Some(n) => Framing::Length(n),
        }
    };
    if head.framing == Framing::Empty {
        head.expect_continue = false;
    }
    head.keep_alive = match version {
        Version::Http11 => !conn_close,
        Version::Http10 => conn_keep_alive && !conn_close,
    };
    Ok(true)
}

/// An incomplete head: refuse it as soon as it can no longer fit.
fn check_partial(buf: &[u8], limits: HeadLimits) -> Result<(), HeadError> {
    let line_end = memchr(b'\n', buf);
    if line_end.is_none() && buf.len() > MAX_TARGET_LEN + 64 {
        return Err(HeadError::UriTooLong);
    }
    if buf.len() >= limits.max_header_size {
        return Err(HeadError::TooLarge);
    }
    Ok(())
}

/// httparse accepts a bare LF as a line ending; RFC 9112 lets us refuse it,
/// and a proxy that reads it differently is a smuggling vector. Every LF must
/// follow a CR, and every CR must precede an LF.
fn check_line_endings(head: &[u8]) -> Result<(), HeadError> {
    // Only a head that fails the fast test is walked again, to say what is
    // wrong with it.
    if line_endings_ok(head) {
        return Ok(());
    }
    first_bad_line_ending(head).map_or(Ok(()), |why| Err(HeadError::Bad(why)))
}

/// The byte walk: what is wrong with the first bad line ending, if any.
fn first_bad_line_ending(head: &[u8]) -> Option<&'static str> {
    let mut prev = 0u8;
    for (i, &b) in head.iter().enumerate() {
        match b {
            b'\n' if prev != b'\r' => return Some("bare LF in request head"),
            b'\r' if head.get(i + 1) != Some(&b'\n') => return Some("bare CR in request head"),
            0 => return Some("NUL in request head"),
            _ => {}
        }
        prev = b;
    }
    None
}

/// The fast test, run on every request head: branch-free so that it
/// vectorises. A byte is an LF exactly when the byte before it is a CR, the
/// head neither starts with an LF nor ends with a CR, and there is no NUL.
fn line_endings_ok(head: &[u8]) -> bool {
    let (Some(&first), Some(&last)) = (head.first(), head.last()) else {
        return true;
    };
    let unpaired =
        head[1..].iter().zip(head).fold(false, |bad, (&b, &prev)| bad | ((b == b'\n') != (prev == b'\r')));
    let nul = head.iter().fold(false, |bad, &b| bad | (b == 0));
    !(unpaired || nul || first == b'\n' || last == b'\r')
}

/// A Host value has no whitespace, controls, DEL, `/` or `@` (userinfo
/// and paths do not belong there). Eight bytes at a time ([`scan`]): this
/// runs on every request.
fn host_ok(value: &[u8]) -> bool {
    let bad = |w| {
        scan::has_less(w, b' ' + 1)
            | scan::has_byte(w, 0x7f)
            | scan::has_byte(w, b'/')
            | scan::has_byte(w, b'@')
    };
    !scan::any_word(value, b'a', bad)
}

/// `HTTP/2.0` is a version we don't speak (505); `HTTX/1.1` is garbage (400).
fn version_error(buf: &[u8]) -> HeadError {
    let line_end = memchr(b'\n', buf).unwrap_or(buf.len());
    let line = trim(&buf[..line_end]);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let version = line.rsplit(|&b| b == b' ').next().unwrap_or(b"");
    let well_formed = version.len() == 8
        && version.starts_with(b"HTTP/")
        && version[5].is_ascii_digit()
        && version[6] == b'.'
        && version[7].is_ascii_digit();
    if well_formed { HeadError::Version } else { HeadError::Bad("malformed HTTP version") }
}

/// Splits the request-target into path and query. Origin-form (`/p?q`),
/// absolute-form (`http://host/p?q`) and `*` for OPTIONS are accepted. An
/// absolute-form target without a path yields an empty path (read as `/`);
/// every returned slice lies inside `target`, so it can become a [`Span`].
fn split_target<'a>(method: &str, target: &'a str) -> Result<(&'a str, Option<&'a str>), HeadError> {
    let path_and_query = if target.starts_with('/') {
        target
    } else if target == "*" {
        if method != "OPTIONS" {
            return Err(HeadError::Bad("asterisk-form target outside OPTIONS"));
        }
        return Ok((target, None));
    } else if let Some(rest) = strip_scheme(target) {
        match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => &rest[i..],
            Some(i) => {
                // `http://host?q`: no path, keep the query.
                return Ok((&rest[i..i], Some(&rest[i + 1..])));
            }
            None => &rest[rest.len()..],
        }
    } else {
        return Err(HeadError::Bad("unsupported request-target form"));
    };
    Ok(match memchr(b'?', path_and_query.as_bytes()) {
        Some(i) => (&path_and_query[..i], Some(&path_and_query[i + 1..])),
        None => (path_and_query, None),
    })
}

fn strip_scheme(target: &str) -> Option<&str> {
    let lower = target.get(..8).map(|s| s.to_ascii_lowercase());
    let lower = lower.as_deref().unwrap_or("");
    if lower.starts_with("http://") {
        Some(&target[7..])
    } else if lower.starts_with("https://") {
        Some(&target[8..])
    } else {
        None
    }
}

/// 1*DIGIT, nothing else: no sign, no hex, no list, no inner whitespace.
/// (httparse has already trimmed the surrounding OWS.)
fn parse_content_length(value: &[u8]) -> Result<u64, HeadError> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return Err(HeadError::Bad("invalid Content-Length"));
    }
    let mut n: u64 = 0;
    for &d in value {
        n = n * 10 + u64::from(d - b'0');
    }
    Ok(n)
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast test accepts exactly what the byte walk accepts: every head
    /// of up to 7 bytes over {a, CR, LF, NUL}.
    #[test]
    fn fast_line_ending_test_agrees_with_the_walk() {
        let alphabet = [b'a', b'\r', b'\n', 0];
        for len in 0..=7u32 {
            for mut n in 0..4usize.pow(len) {
                let head: Vec<u8> = (0..len)
                    .map(|_| {
                        let b = alphabet[n % 4];
                        n /= 4;
                        b
                    })
                    .collect();
                let walk_ok = first_bad_line_ending(&head).is_none();
                assert_eq!(line_endings_ok(&head), walk_ok, "{head:?}");
                assert_eq!(check_line_endings(&head).is_ok(), walk_ok, "{head:?}");
            }
        }
    }

    #[test]
    fn the_walk_names_the_first_bad_line_ending() {
        let bad = |h: &[u8]| first_bad_line_ending(h);
        assert_eq!(bad(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"), None);
        assert_eq!(bad(b"GET / HTTP/1.1\nHost: a\r\n\r\n"), Some("bare LF in request head"));
        assert_eq!(bad(b"GET / HTTP/1.1\rHost: a\r\n\r\n"), Some("bare CR in request head"));
        assert_eq!(bad(b"GET / HTTP/1.1\r\nHost: \0\r\n\r\n"), Some("NUL in request head"));
        assert!(matches!(
            check_line_endings(b"GET / HTTP/1.1\nHost: a\r\n\r\n"),
            Err(HeadError::Bad("bare LF in request head"))
        ));
    }

    const LIMITS: HeadLimits = HeadLimits { max_header_size: 8192, max_headers: 16 };

    fn parse(raw: &[u8]) -> Result<Option<RequestHead>, HeadError> {
        let mut head = RequestHead::default();
        parse_head(raw, LIMITS, &mut head).map(|done| done.then_some(head))
    }

    fn ok(raw: &[u8]) -> RequestHead {
        parse(raw).expect("valid").expect("complete")
    }

    fn status(raw: &[u8]) -> u16 {
        parse(raw).expect_err("should be refused").status()
    }

    #[test]
    fn simple_get() {
        let raw = b"GET /a/b?x=1&y HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\nrest";
        let h = ok(raw);
        assert_eq!(h.len, raw.len() - 4);
        assert_eq!(h.method.get(raw), b"GET");
        assert_eq!(h.target.get(raw), b"/a/b?x=1&y");
        assert_eq!(h.path.get(raw), b"/a/b");
        assert_eq!(h.query.unwrap().get(raw), b"x=1&y");
        assert_eq!(h.version(), Version::Http11);
        assert_eq!(h.headers.len(), 2);
        assert_eq!(h.headers[1].1.get(raw), b"*/*");
        assert_eq!(h.framing, Framing::Empty);
        assert!(h.keep_alive);
        assert!(!h.expect_continue);
    }

    #[test]
    fn partial_heads_ask_for_more() {
        assert!(parse(b"GET / HTTP/1.1\r\nHost: h\r\n").unwrap().is_none());
        assert!(parse(b"GE").unwrap().is_none());
        assert!(parse(b"").unwrap().is_none());
    }

    #[test]
    fn keep_alive_rules() {
        assert!(!ok(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(!ok(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, CLOSE\r\n\r\n").keep_alive);
        assert!(!ok(b"GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(ok(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
    }

    #[test]
    fn framing() {
        let h = ok(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 12\r\n\r\n");
        assert_eq!(h.framing, Framing::Length(12));
        let h = ok(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(h.framing, Framing::Empty);
        let h = ok(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n");
        assert_eq!(h.framing, Framing::Chunked);
        // Identical repeated Content-Length is allowed (RFC 9110 §8.6).
        let h = ok(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(h.framing, Framing::Length(5));
    }

    #[test]
    fn smuggling_shapes_are_refused() {
        let cases: &[&[u8]] = &[
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -5\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x10\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1 0\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked,\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n",
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n \r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n",
            b"GET / HTTP/1.1\nHost: h\n\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n",
        ];
        for raw in cases {
            assert_eq!(status(raw), 400, "{}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn unsupported_coding_is_501() {
        assert_eq!(status(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), 501);
    }

    #[test]
    fn host_rules() {
        assert_eq!(status(b"GET / HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), 400);
        ok(b"GET / HTTP/1.1\r\nHost:\r\n\r\n");
        ok(b"GET / HTTP/1.0\r\n\r\n");
    }

    #[test]
    fn versions() {
        assert_eq!(status(b"GET / HTTP/2.0\r\nHost: h\r\n\r\n"), 505);
        assert_eq!(status(b"GET / HTTP/1.2\r\nHost: h\r\n\r\n"), 505);
        assert_eq!(status(b"GET / HTTX/1.1\r\nHost: h\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1\r\nHost: h\r\n\r\n"), 400);
    }

    #[test]
    fn methods_and_targets() {
        assert_eq!(status(b"G(T / HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
        assert_eq!(status(b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
        assert_eq!(status(b"GET * HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
        assert_eq!(status(b"CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
        let raw = b"GET http://example.com/x?y HTTP/1.1\r\nHost: example.com\r\n\r\n";
        let h = ok(raw);
        assert_eq!(h.path.get(raw), b"/x");
        assert_eq!(h.query.unwrap().get(raw), b"y");
        let raw = b"GET HTTP://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n";
        assert_eq!(ok(raw).path.get(raw), b"", "empty path, served as /");
        let raw = b"GET http://example.com?a=b HTTP/1.1\r\nHost: example.com\r\n\r\n";
        let h = ok(raw);
        assert_eq!((h.path.get(raw), h.query.unwrap().get(raw)), (&b""[..], &b"a=b"[..]));
        let raw = b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n";
        assert_eq!(ok(raw).path.get(raw), b"*");
    }

    #[test]
    fn size_limits() {
        let mut raw = b"GET /".to_vec();
        raw.extend(std::iter::repeat_n(b'a', MAX_TARGET_LEN + 1));
        raw.extend_from_slice(b" HTTP/1.1\r\nHost: h\r\n\r\n");
        let big = HeadLimits { max_header_size: 64 << 10, max_headers: 16 };
        let mut head = RequestHead::default();
        assert_eq!(parse_head(&raw, big, &mut head), Err(HeadError::UriTooLong));
        // Still-incomplete request line that is already too long.
        let mut partial = b"GET /".to_vec();
        partial.extend(std::iter::repeat_n(b'a', MAX_TARGET_LEN + 100));
        assert_eq!(parse_head(&partial, big, &mut head), Err(HeadError::UriTooLong));

        let mut raw = b"GET / HTTP/1.1\r\nHost: h\r\n".to_vec();
        for i in 0..17 {
            raw.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        raw.extend_from_slice(b"\r\n");
        assert_eq!(status(&raw), 431);

        let mut raw = b"GET / HTTP/1.1\r\nHost: h\r\nX: ".to_vec();
        raw.extend(std::iter::repeat_n(b'v', 9000));
        assert_eq!(status(&raw), 431, "incomplete but already over max_header_size");
        raw.extend_from_slice(b"\r\n\r\n");
        assert_eq!(status(&raw), 431);
    }

    #[test]
    fn many_headers_beyond_the_stack_array() {
        let limits = HeadLimits { max_header_size: 1 << 20, max_headers: 300 };
        let mut raw = b"GET / HTTP/1.1\r\nHost: h\r\n".to_vec();
        for i in 0..250 {
            raw.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        raw.extend_from_slice(b"\r\n");
        let mut head = RequestHead::default();
        assert_eq!(parse_head(&raw, limits, &mut head), Ok(true));
        assert_eq!(head.headers.len(), 251);
    }

    #[test]
    fn expect() {
        let h = ok(b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n");
        assert!(h.expect_continue);
        let h = ok(b"GET / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n");
        assert!(!h.expect_continue, "no body, nothing to continue");
        assert_eq!(status(b"POST / HTTP/1.1\r\nHost: h\r\nExpect: tea\r\nContent-Length: 3\r\n\r\n"), 417);
    }

    #[test]
    fn leading_blank_line_is_ignored() {
        let raw = b"\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
        let h = ok(raw);
        assert_eq!(h.method.get(raw), b"GET");
        assert_eq!(h.len, raw.len());
    }
}
