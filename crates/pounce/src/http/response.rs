//! Response-head encoding, sans I/O: status line, the server's own fields
//! (`Date`, `Server`, framing, `Connection`) and the handler's fields, written
//! into the connection's reused output buffer so a whole response (or a batch
//! of pipelined ones) leaves in one write.

use super::date;
use super::scan;
use super::status::reason;
use std::borrow::Cow;

/// How the body that follows the head is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutFraming {
    /// `Content-Length: n` (also used for HEAD, with no body following).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// HTTP/1.0 client, unknown length: the body ends when we close.
    UntilClose,
    /// 1xx/204/304: neither length nor body.
    NoBody,
}

/// What the `Connection` field says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnHeader {
    /// HTTP/1.1 keep-alive: nothing to say.
    None,
    /// HTTP/1.0 client that asked for keep-alive and gets it.
    KeepAlive,
    Close,
}

/// A header the handler set that cannot be sent (CR/LF/NUL, bad name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InvalidHeader;

pub(crate) struct Head<'a> {
    pub status: u16,
    pub content_type: Option<&'a str>,
    pub headers: &'a [(Cow<'static, str>, Cow<'static, str>)],
    /// Fields pounce adds itself (e.g. `Retry-After`).
    pub extra: &'a [(&'static str, &'a str)],
    pub framing: OutFraming,
    pub connection: ConnHeader,
}

/// The most a head's server-made fields take: status line (longest reason
/// ~35 bytes), Server, Date, Content-Length (20 digits) or
/// Transfer-Encoding, Connection, the blank line.
const HEAD_FIXED_MAX: usize = 256;

/// Appends the encoded head to `out`. On [`InvalidHeader`] nothing is
/// appended.
pub(crate) fn encode_head(out: &mut Vec<u8>, head: &Head<'_>) -> Result<(), InvalidHeader> {
    if let Some(ct) = head.content_type {
        check_value(ct)?;
    }
    for (n, v) in head.headers {
        check_name(n)?;
        check_value(v)?;
    }
    let status = if (100..1000).contains(&head.status) { head.status } else { 500 };
    // One capacity check for the whole head instead of one per piece.
    let fields: usize = head.headers.iter().map(|(n, v)| n.len() + v.len() + 4).sum::<usize>()
        + head.extra.iter().map(|(n, v)| n.len() + v.len() + 4).sum::<usize>();
    out.reserve(HEAD_FIXED_MAX + head.content_type.map_or(0, |ct| ct.len() + 16) + fields);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(itoa::Buffer::new().format(status).as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason(status).as_bytes());
    out.extend_from_slice(b"\r\nServer: pounce\r\nDate: ");
    date::append(out);
    out.extend_from_slice(b"\r\n");
    if let Some(ct) = head.content_type {
        field(out, "Content-Type", ct);
    }
    match head.framing {
        OutFraming::Length(n) => {
            out.extend_from_slice(b"Content-Length: ");
            out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        OutFraming::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        OutFraming::UntilClose | OutFraming::NoBody => {}
    }
    match head.connection {
        ConnHeader::None => {}
        ConnHeader::KeepAlive => out.extend_from_slice(b"Connection: keep-alive\r\n"),
        ConnHeader::Close => out.extend_from_slice(b"Connection: close\r\n"),
    }
    for (n, v) in head.extra {
        field(out, n, v);
    }
    for (n, v) in head.headers {
        let shadowed = head.content_type.is_some() && n.eq_ignore_ascii_case("content-type");
        if !is_reserved(n) && !shadowed {
            field(out, n, v);
        }
    }
    out.extend_from_slice(b"\r\n");
    Ok(())
}

fn field(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Fields whose value is the server's to decide.
fn is_reserved(name: &str) -> bool {
    ["content-length", "transfer-encoding", "connection", "date", "server", "keep-alive"]
        .iter()
        .any(|r| name.eq_ignore_ascii_case(r))
}

fn check_name(name: &str) -> Result<(), InvalidHeader> {
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(tchar) {
        return Err(InvalidHeader);
    }
    Ok(())
}

/// Eight bytes at a time ([`scan`]): it runs for the content type of every
/// response.
fn check_value(value: &str) -> Result<(), InvalidHeader> {
    let bad = |w| scan::has_byte(w, b'\r') | scan::has_byte(w, b'\n') | scan::has_byte(w, 0);
    if scan::any_word(value.as_bytes(), b' ', bad) {
        return Err(InvalidHeader);
    }
    Ok(())
}

/// Appends one chunk of a chunked body: `size-in-hex CRLF data CRLF`.
pub(crate) fn encode_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return; // an empty chunk would end the body
    }
    let mut hex = [0u8; 16];
    let mut n = data.len();
    let mut i = hex.len();
    while n > 0 {
        i -= 1;
        hex[i] = b"0123456789abcdef"[n & 15];
        n >>= 4;
    }
    out.extend_from_slice(&hex[i..]);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The last chunk and the end of the (trailer-less) chunked body.
pub(crate) const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(head: &Head<'_>) -> String {
        let mut out = Vec::new();
        encode_head(&mut out, head).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn base() -> Head<'static> {
        Head {
            status: 200,
            content_type: Some("text/plain"),
            headers: &[],
            extra: &[],
            framing: OutFraming::Length(13),
            connection: ConnHeader::None,
        }
    }

    #[test]
    fn ok_head() {
        let s = encode(&base());
        assert!(s.starts_with("HTTP/1.1 200 OK\r\nServer: pounce\r\nDate: "), "{s}");
        assert!(s.contains(" GMT\r\n"));
        assert!(s.ends_with("Content-Type: text/plain\r\nContent-Length: 13\r\n\r\n"), "{s}");
    }

    #[test]
    fn close_chunked_and_extras() {
        let headers = vec![
            (Cow::Borrowed("X-A"), Cow::Borrowed("1")),
            (Cow::Borrowed("content-length"), Cow::Borrowed("999")),
            (Cow::Borrowed("Connection"), Cow::Borrowed("keep-alive")),
        ];
        let s = encode(&Head {
            status: 503,
            headers: &headers,
            extra: &[("Retry-After", "1")],
            framing: OutFraming::Chunked,
            connection: ConnHeader::Close,
            ..base()
        });
        assert!(s.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(
            s.contains("Transfer-Encoding: chunked\r\nConnection: close\r\nRetry-After: 1\r\nX-A: 1\r\n\r\n"),
            "{s}"
        );
        assert!(!s.contains("999"), "handler framing is ignored");
        assert!(!s.contains("keep-alive"));
    }

    #[test]
    fn injection_is_refused() {
        for (n, v) in
            [("X", "a\r\nSet-Cookie: x"), ("X", "a\nb"), ("X Y", "a"), ("", "a"), ("X:", "a"), ("X", "a\0")]
        {
            let headers = vec![(Cow::Owned(n.to_string()), Cow::Owned(v.to_string()))];
            let mut out = Vec::new();
            assert_eq!(encode_head(&mut out, &Head { headers: &headers, ..base() }), Err(InvalidHeader));
            assert!(out.is_empty());
        }
        let mut out = Vec::new();
        let bad_ct = Head { content_type: Some("text/html\r\nX: y"), ..base() };
        assert_eq!(encode_head(&mut out, &bad_ct), Err(InvalidHeader));
    }

    #[test]
    fn odd_statuses() {
        assert!(encode(&Head { status: 42, ..base() }).starts_with("HTTP/1.1 500 "));
        assert!(encode(&Head { status: 599, ..base() }).starts_with("HTTP/1.1 599 \r\n"));
    }

    #[test]
    fn chunks() {
        let mut out = Vec::new();
        encode_chunk(&mut out, b"hello");
        encode_chunk(&mut out, &[b'x'; 26]);
        encode_chunk(&mut out, b"");
        out.extend_from_slice(LAST_CHUNK);
        let mut expect = b"5\r\nhello\r\n1a\r\n".to_vec();
        expect.extend_from_slice(&[b'x'; 26]);
        expect.extend_from_slice(b"\r\n0\r\n\r\n");
        assert_eq!(out, expect);
    }
}
