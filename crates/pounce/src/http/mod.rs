//! HTTP/1.1 as pure functions over byte buffers, in the manner of hyper's
//! `proto/h1`: parsing a request head ([`request`]), decoding a chunked body
//! ([`chunked`]) and encoding a response head ([`response`]) know nothing of
//! sockets, timers or shutdown. The connection loop in `server::connection`
//! owns the I/O and the state machine and calls into these.

pub(crate) mod chunked;
pub(crate) mod date;
pub(crate) mod request;
pub(crate) mod response;
pub(crate) mod scan;
pub(crate) mod status;

/// The protocol version of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

impl Version {
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// A byte range inside a connection's read buffer. Parsed requests are kept
/// as spans rather than slices so the buffer can keep growing (a body arriving
/// behind the head) without invalidating them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub(crate) fn of(buf: &[u8], part: &[u8]) -> Span {
        let start = part.as_ptr() as usize - buf.as_ptr() as usize;
        debug_assert!(start + part.len() <= buf.len());
        Span { start: start as u32, end: (start + part.len()) as u32 }
    }

    pub(crate) fn get(self, buf: &[u8]) -> &[u8] {
        &buf[self.start as usize..self.end as usize]
    }
}
