//! The application's side of the contract: a [`Handler`] turns each
//! [`Request`] into a [`Response`], whose [`Body`] may be streamed.
//!
//! Handlers run on the worker that accepted the connection (thread-per-core):
//! the trait needs `Send + Sync` only because one handler value is shared by
//! every worker; the futures it returns are never moved between threads and
//! need not be `Send`. A request is parsed in place: [`Request`] borrows the
//! connection's buffers, which is why it is only lent to the handler.

use crate::http::Version;
use crate::http::request::RequestHead;
use futures_lite::{Stream, StreamExt};
use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::rc::Rc;

/// An HTTP application.
///
/// ```
/// use pounce::{Handler, Request, Response};
///
/// struct Hello;
///
/// impl Handler for Hello {
///     async fn call(&self, req: &Request<'_>) -> Response {
///         match req.path() {
///             "/" => Response::text(200, "Hello, World!"),
///             _ => Response::text(404, "Not Found"),
///         }
///     }
/// }
/// ```
///
/// A panic inside `call` (or while producing a streamed body) costs that one
/// request a `500`; the worker and its other connections carry on.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request. Cancelled (dropped) if it outlives
    /// request_timeout or the shutdown deadline.
    fn call(&self, req: &Request<'_>) -> impl Future<Output = Response>;
}

/// A request whose head (and whole body, at most max_body_size) has arrived.
pub struct Request<'a> {
    pub(crate) buf: &'a [u8],
    pub(crate) head: &'a RequestHead,
    pub(crate) body: &'a [u8],
    pub(crate) peer: SocketAddr,
    pub(crate) worker: usize,
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or("")
}

impl<'a> Request<'a> {
    /// `GET`, `POST`, … as sent (methods are case-sensitive).
    pub fn method(&self) -> &'a str {
        text(self.head.method.get(self.buf))
    }
    /// The request-target as sent: `/path?query`.
    pub fn target(&self) -> &'a str {
        text(self.head.target.get(self.buf))
    }
    /// The path, without the query, still percent-encoded (`/` for an
    /// absolute-form target without one).
    pub fn path(&self) -> &'a str {
        match text(self.head.path.get(self.buf)) {
            "" => "/",
            p => p,
        }
    }
    /// The query string after `?`, if any.
    pub fn query(&self) -> Option<&'a str> {
        self.head.query.map(|q| text(q.get(self.buf)))
    }
    pub fn version(&self) -> Version {
        self.head.version()
    }
    /// The first header field named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v)
    }
    /// [`header`](Self::header) as text, if it is valid UTF-8.
    pub fn header_str(&self, name: &str) -> Option<&'a str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }
    /// All header fields in order, names as sent.
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        let buf = self.buf;
        self.head.headers.iter().map(move |(n, v)| (text(n.get(buf)), v.get(buf)))
    }
    /// The whole request body (empty if none). Chunked bodies arrive decoded.
    pub fn body(&self) -> &'a [u8] {
        self.body
    }
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }
    /// The worker (1-based) serving this request.
    pub fn worker(&self) -> usize {
        self.worker
    }
}

impl fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method())
            .field("target", &self.target())
            .field("version", &self.version())
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// One piece of a streamed body: a `Vec`, a `'static` slice, or any owned
/// buffer (a file read's buffer, say), sent as it is — large chunks go to the
/// socket without being copied.
pub struct Chunk(pub(crate) ChunkData);

pub(crate) enum ChunkData {
    Vec(Vec<u8>),
    Static(&'static [u8]),
    Buffer(Box<dyn AsRef<[u8]>>),
}

impl Chunk {
    /// Wraps any owned buffer; it is dropped once its bytes are sent.
    pub fn from_buffer(buf: impl AsRef<[u8]> + 'static) -> Chunk {
        Chunk(ChunkData::Buffer(Box::new(buf)))
    }

    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            ChunkData::Vec(v) => v,
            ChunkData::Static(s) => s,
            ChunkData::Buffer(b) => (**b).as_ref(),
        }
    }

    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<Vec<u8>> for Chunk {
    fn from(v: Vec<u8>) -> Chunk {
        Chunk(ChunkData::Vec(v))
    }
}

impl From<&'static [u8]> for Chunk {
    fn from(s: &'static [u8]) -> Chunk {
        Chunk(ChunkData::Static(s))
    }
}

impl From<&'static str> for Chunk {
    fn from(s: &'static str) -> Chunk {
        Chunk(ChunkData::Static(s.as_bytes()))
    }
}

impl From<String> for Chunk {
    fn from(s: String) -> Chunk {
        Chunk(ChunkData::Vec(s.into_bytes()))
    }
}

/// A stream of body chunks, produced after the head is sent. An `Err` item
/// aborts the response (the connection is closed, since the client cannot be
/// told otherwise once the head is out).
pub type ChunkStream = Pin<Box<dyn Stream<Item = io::Result<Chunk>>>>;

/// A response body. New kinds may be added: match with a wildcard arm.
#[non_exhaustive]
pub enum Body {
    Empty,
    /// The whole body, known up front: sent with `Content-Length`.
    Bytes(Cow<'static, [u8]>),
    /// Produced chunk by chunk. With a known `len` it is sent with
    /// `Content-Length` (and must produce exactly that many bytes); without,
    /// with `Transfer-Encoding: chunked` (HTTP/1.1) or by closing the
    /// connection at the end (HTTP/1.0).
    Stream {
        len: Option<u64>,
        chunks: ChunkStream,
    },
    /// `len` bytes of an open file from `offset`, sent with `Content-Length`
    /// by `sendfile(2)`: the bytes go from the page cache to the socket
    /// without passing through user space (what nginx's `sendfile on` does).
    /// Up to 16 KiB are instead read in behind the head (`pread`), so a small
    /// file leaves in one write with it. The file must stay at least
    /// `offset + len` bytes long while it is sent; if it shrinks, a small
    /// body is answered `500` and a large one's connection is closed. As
    /// with nginx, bytes not in the page cache are read from disk on the
    /// worker's thread. Under TLS there is no zero-copy path: the bytes are
    /// read (`pread`) 60 KiB at a time and encrypted, never whole.
    File {
        file: Rc<dyn AsRawFd>,
        offset: u64,
        len: u64,
    },
}

impl Body {
    /// A streamed body of unknown length. Items are anything that converts
    /// into a [`Chunk`] (`Vec<u8>`, `String`, `&'static [u8]`, a `Chunk`).
    pub fn stream<C: Into<Chunk>>(chunks: impl Stream<Item = io::Result<C>> + 'static) -> Body {
        Body::Stream { len: None, chunks: Box::pin(chunks.map(|c| c.map(Into::into))) }
    }
    /// A streamed body of exactly `len` bytes.
    pub fn sized_stream<C: Into<Chunk>>(
        len: u64,
        chunks: impl Stream<Item = io::Result<C>> + 'static,
    ) -> Body {
        Body::Stream { len: Some(len), chunks: Box::pin(chunks.map(|c| c.map(Into::into))) }
    }
    /// `len` bytes of `file` from `offset`, sent zero-copy (see [`Body::File`]).
    pub fn file(file: Rc<dyn AsRawFd>, offset: u64, len: u64) -> Body {
        Body::File { file, offset, len }
    }
    /// Length if known without running a stream.
    pub fn len(&self) -> Option<u64> {
        match self {
            Body::Empty => Some(0),
            Body::Bytes(b) => Some(b.len() as u64),
            Body::Stream { len, .. } => *len,
            Body::File { len, .. } => Some(*len),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Body::Empty => f.write_str("Body::Empty"),
            Body::Bytes(b) => write!(f, "Body::Bytes({} bytes)", b.len()),
            Body::Stream { len, .. } => write!(f, "Body::Stream(len: {len:?})"),
            Body::File { file, offset, len } => {
                write!(f, "Body::File(fd {}, {len} bytes from {offset})", file.as_raw_fd())
            }
        }
    }
}

impl From<&'static str> for Body {
    fn from(s: &'static str) -> Body {
        Body::Bytes(Cow::Borrowed(s.as_bytes()))
    }
}
impl From<String> for Body {
    fn from(s: String) -> Body {
        Body::Bytes(Cow::Owned(s.into_bytes()))
    }
}
impl From<&'static [u8]> for Body {
    fn from(b: &'static [u8]) -> Body {
        Body::Bytes(Cow::Borrowed(b))
    }
}
impl From<Vec<u8>> for Body {
    fn from(b: Vec<u8>) -> Body {
        Body::Bytes(Cow::Owned(b))
    }
}

/// A response: status, headers and body.
///
/// pounce writes `Date`, `Server`, `Content-Length`/`Transfer-Encoding` and
/// `Connection` itself; those set here are ignored, since framing must be the
/// server's. Header names and values must not contain CR, LF or NUL: a
/// response that does is replaced by a `500`.
#[derive(Debug)]
pub struct Response {
    pub(crate) status: u16,
    pub(crate) content_type: Option<Cow<'static, str>>,
    pub(crate) headers: Vec<(Cow<'static, str>, Cow<'static, str>)>,
    pub(crate) body: Body,
}

impl Response {
    /// An empty response with `status` (100–999; others become 500).
    pub fn new(status: u16) -> Response {
        Response { status, content_type: None, headers: Vec::new(), body: Body::Empty }
    }
    /// `text/plain; charset=utf-8`.
    pub fn text(status: u16, body: impl Into<Body>) -> Response {
        Response::with_type(status, "text/plain; charset=utf-8", body.into())
    }
    /// `application/json`.
    pub fn json(status: u16, body: impl Into<Body>) -> Response {
        Response::with_type(status, "application/json", body.into())
    }
    /// Built in one go rather than through the builder methods: each of
    /// those moves the whole value, and this runs for most responses.
    fn with_type(status: u16, content_type: &'static str, body: Body) -> Response {
        Response { status, content_type: Some(Cow::Borrowed(content_type)), headers: Vec::new(), body }
    }
    pub fn with_status(mut self, status: u16) -> Response {
        self.status = status;
        self
    }
    pub fn with_content_type(mut self, ct: impl Into<Cow<'static, str>>) -> Response {
        self.content_type = Some(ct.into());
        self
    }
    /// Adds a header field (repeatable).
    pub fn with_header(
        mut self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<Cow<'static, str>>,
    ) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }
    pub fn with_body(mut self, body: impl Into<Body>) -> Response {
        self.body = body.into();
        self
    }
    pub fn status(&self) -> u16 {
        self.status
    }
    pub fn content_type(&self) -> Option<&str> {
        self.content_type.as_deref()
    }
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers.iter().map(|(n, v)| (n.as_ref(), v.as_ref()))
    }
    pub fn body(&self) -> &Body {
        &self.body
    }
}
