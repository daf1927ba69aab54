//! `pounce static:<DIR>`: serves a directory the way nginx would, reading
//! files through io_uring, with the server's graceful shutdown (a download
//! in progress at SIGTERM is a request in progress: it completes within
//! shutdown_timeout or is force-closed after it).
//!
//! One request, in order:
//! 1. GET and HEAD only (else `405`, `Allow: GET, HEAD`);
//! 2. the path is decoded once and normalised ([`path`]); escapes are `403`,
//!    dotfiles `404` unless `--static-hidden`;
//! 3. the file is found through the per-worker cache ([`cache`]), opened
//!    confined to the root ([`fs`]); a directory without the trailing slash
//!    is redirected (`301`, query kept), with it its `index.html` is served,
//!    and there are no listings;
//! 4. a precompressed sibling (`.br`, `.gz`) is chosen by `Accept-Encoding`
//!    ([`encoding`]);
//! 5. preconditions ([`conditional`]) → `304`/`412`; then `Range` ([`range`])
//!    → `206`/`416`;
//! 6. the body: by default a [`Body::file`], which the server sends with
//!    `sendfile(2)` from the page cache (zero-copy, as nginx does) or, up to
//!    16 KiB, copies in behind the head; with `--sendfile=false`, up to 64 KiB read whole
//!    through io_uring and sent in one write with the head, larger ones
//!    streamed in bounded chunks of io_uring reads ([`body`]).
//!
//! HEAD gets exactly GET's head: the server sends it and never polls the
//! body stream, so no bytes are read.

mod body;
mod cache;
pub mod conditional;
pub mod encoding;
pub mod fs;
pub mod mime;
pub mod options;
pub mod path;
pub mod range;

use cache::{Lookup, Opened};
use conditional::{Conditions, Verdict};
use encoding::Coding;
use fs::{Failure, Root};
use pounce::{Body, Handler, Request, Response};
use range::RangeAnswer;
use std::borrow::Cow;

pub use options::Options;

/// Bodies up to this size are read whole before answering; the server
/// copies bodies up to 64 KiB into its write buffer, so head and body leave
/// in one write.
const SMALL_BODY: u64 = 64 * 1024;

/// The static-file app.
#[derive(Debug)]
pub struct StaticFiles {
    root: Root,
    hidden: bool,
    sendfile: bool,
    cache_control: Option<&'static str>,
    index_cache_control: Option<&'static str>,
}

impl StaticFiles {
    /// Opens `dir` (the error names it: exit code 2 before anything binds).
    pub fn new(dir: &str, opts: &Options) -> Result<StaticFiles, String> {
        let root = Root::open(dir)?;
        // Lives as long as the process; leaked once so every response can
        // borrow it instead of copying.
        let leak = |v: &Option<String>| v.clone().map(|s| &*Box::leak(s.into_boxed_str()));
        Ok(StaticFiles {
            root,
            hidden: opts.hidden,
            sendfile: opts.sendfile,
            cache_control: leak(&opts.cache_control),
            index_cache_control: leak(&opts.index_cache_control),
        })
    }

    /// Once per process, at the first request (logging starts after the
    /// app is built): say if the kernel cannot confine opens itself.
    fn warn_once(&self) {
        static ONCE: std::sync::Once = std::sync::Once::new();
        if self.root.confinement() == fs::Confinement::Realpath {
            ONCE.call_once(|| {
                log::warn!(
                    "static: openat2 is not available (seccomp profile?); confining requests to {} \
                     with realpath checks instead",
                    self.root.path().display()
                )
            });
        }
    }
}

impl Handler for StaticFiles {
    async fn call(&self, req: &Request<'_>) -> Response {
        self.warn_once();
        let method = req.method();
        let is_get = method == "GET";
        if !is_get && method != "HEAD" {
            return Response::text(405, "Method Not Allowed\n").with_header("Allow", "GET, HEAD");
        }
        let clean = match path::clean(req.path()) {
            Ok(c) => c,
            Err(path::PathError::Malformed) => return Response::text(400, "Bad Request\n"),
            Err(path::PathError::Forbidden) => {
                log::debug!("static: refused {:?}: leaves the root", req.path());
                return failure(Failure::Forbidden);
            }
        };
        if clean.hidden && !self.hidden {
            return failure(Failure::NotFound);
        }
        let mut rel = clean.rel;
        if clean.dir {
            if !rel.is_empty() {
                rel.push(b'/');
            }
            rel.extend_from_slice(b"index.html");
        }
        let target = match cache::lookup(&self.root, &rel) {
            Lookup::File(f) => f,
            Lookup::Dir if !clean.dir => return self.redirect_to_dir(&rel, req.query()),
            Lookup::Dir => return failure(Failure::NotFound),
            Lookup::Failed(f) => return failure(f),
        };
        let is_index = rel == b"index.html" || rel.ends_with(b"/index.html");

        // A precompressed sibling, if the client takes one (each one served
        // is revalidated like any file; which exist is remembered briefly).
        let accepted = encoding::preferred(req.header_str("accept-encoding"));
        let present = cache::siblings(&self.root, &rel, std::time::Instant::now());
        let exists = |c: Coding| present & c.bit() != 0;
        let mut chosen: Option<(Coding, Opened)> = None;
        for &coding in accepted.iter().filter(|&&c| exists(c)) {
            let mut sibling = rel.clone();
            sibling.extend_from_slice(coding.suffix());
            if let Lookup::File(f) = cache::lookup(&self.root, &sibling) {
                chosen = Some((coding, f));
                break;
            }
        }
        // Vary whenever the response could have been another variant.
        let vary = chosen.is_some() || encoding::ALL.iter().any(|&c| exists(c) && !accepted.contains(&c));
        let (repr, coding) = match chosen {
            Some((c, f)) => (f, Some(c)),
            None => (target, None),
        };

        let v = repr.validators.clone();
        let cache_control = if is_index { self.index_cache_control } else { self.cache_control };
        let with_validators = |r: Response| {
            let mut r = r
                .with_header("ETag", v.etag.clone())
                .with_header("Last-Modified", v.last_modified_http.clone());
            if let Some(cc) = cache_control {
                r = r.with_header("Cache-Control", cc);
            }
            if vary {
                r = r.with_header("Vary", "Accept-Encoding");
            }
            r
        };
        let conditions = Conditions {
            if_match: req.header_str("if-match"),
            if_none_match: req.header_str("if-none-match"),
            if_modified_since: req.header_str("if-modified-since"),
            if_unmodified_since: req.header_str("if-unmodified-since"),
        };
        match conditional::evaluate(&conditions, &v) {
            Verdict::Proceed => {}
            Verdict::NotModified => return with_validators(Response::new(304)),
            Verdict::Failed => return Response::text(412, "Precondition Failed\n"),
        }

        let size = repr.meta.size;
        // Range is defined for GET only (RFC 9110 §14.2); HEAD gets the 200 head.
        let range = match req.header_str("range") {
            Some(h) if is_get && conditional::if_range_holds(req.header_str("if-range"), &v) => {
                range::answer(h, size)
            }
            _ => RangeAnswer::Full,
        };
        let (status, start, len) = match range {
            RangeAnswer::Full => (200, 0, size),
            RangeAnswer::Partial(r) => (206, r.start, r.len()),
            RangeAnswer::Unsatisfiable => {
                return Response::text(416, "Range Not Satisfiable\n")
                    .with_header("Content-Range", format!("bytes */{size}"))
                    .with_header("Accept-Ranges", "bytes");
            }
        };
        let mut resp = with_validators(Response::new(status))
            .with_content_type(mime::content_type(&rel))
            .with_header("Accept-Ranges", "bytes");
        if let Some(c) = coding {
            resp = resp.with_header("Content-Encoding", c.token());
        }
        if status == 206 {
            resp = resp.with_header("Content-Range", format!("bytes {}-{}/{size}", start, start + len - 1));
        }
        match body_of(repr, start, len, !is_get, self.sendfile).await {
            Ok(b) => resp.with_body(b),
            Err(e) => {
                log::warn!("static: reading '{}' failed: {e}", String::from_utf8_lossy(&rel));
                failure(Failure::Internal)
            }
        }
    }
}

impl StaticFiles {
    /// `301` to `rel/`, keeping the query; only for directories inside the
    /// root. The `Location` is rebuilt from the normalised path, so it
    /// always starts with a single `/` (never `//host`, an open redirect).
    fn redirect_to_dir(&self, rel: &[u8], query: Option<&str>) -> Response {
        if self.root.check_dir(rel).is_err() {
            return failure(Failure::NotFound);
        }
        let mut loc = format!("/{}/", path::encode(rel));
        if let Some(q) = query {
            loc.push('?');
            loc.push_str(q);
        }
        Response::text(301, "Moved Permanently\n").with_header("Location", loc)
    }
}

/// The body for `len` bytes of `repr` from `start`. With sendfile, the
/// server sends them from the page cache itself. Without, up to
/// [`SMALL_BODY`] are read now (so they leave in one write with the head),
/// larger ones are streamed in chunks read through io_uring. For HEAD
/// nothing is read: the body is never sent.
async fn body_of(repr: Opened, start: u64, len: u64, head: bool, sendfile: bool) -> std::io::Result<Body> {
    if sendfile {
        return Ok(Body::file(repr.file, start, len));
    }
    if !head && len <= SMALL_BODY {
        return Ok(Body::Bytes(Cow::Owned(body::read_exact_at(&repr.file, start, len as usize).await?)));
    }
    Ok(Body::sized_stream(len, body::chunks(repr.file, start, len)))
}

fn failure(f: Failure) -> Response {
    match f {
        Failure::NotFound => Response::text(404, "Not Found\n"),
        Failure::Forbidden => Response::text(403, "Forbidden\n"),
        Failure::Internal => Response::text(500, "Internal Server Error\n"),
    }
}
