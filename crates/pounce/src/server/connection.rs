//! The HTTP/1.1 connection loop: read a head, read its body, dispatch, write
//! the response, repeat — with keep-alive, pipelining and the drain rules.
//!
//! This is the only code that owns a client socket for its whole life. It
//! parses with [`crate::http`] (pure functions over the read buffer), waits
//! through [`Io`] (socket + deadline + shutdown phase in one poll), and asks
//! the worker's drain state exactly two questions: "has the phase changed?"
//! (while idle) and "am I being forced?" (while busy).
//!
//! Drain rules, from SPEC's shutdown sequence:
//! - a request in progress runs to completion, and so do requests already
//!   received behind it (pipelined); the last response of the batch carries
//!   `Connection: close`;
//! - an idle keep-alive connection gets at most the drain grace (1 s, never
//!   more than keep_alive_timeout) for a request already on its way, served
//!   with `Connection: close`, then it closes;
//! - when forced, the in-flight handler is dropped and the socket shut down.
//!
//! Memory: an idle connection is small. Its read and write buffers come from
//! the worker's pool when bytes arrive and go back when it is idle again, and
//! the large state of serving requests (body reading, the handler's future,
//! response streaming) lives in one box that exists only while a burst of
//! requests is being served. Within a burst nothing is allocated per request
//! by the loop itself; responses to pipelined requests accumulate in the
//! write buffer and leave in one write when the next read would block.

use super::io::{Io, Waited, Watch, pread_exact};
use super::pool::HeadSlot;
use super::readbuf::ReadBuf;
use super::timing::Run;
use super::uring::SendBuf;
use super::{WorkerCtx, health};
use crate::handler::{Body, ChunkData, Handler, Request, Response};
use crate::http::Version;
use crate::http::chunked::{ChunkError, ChunkedDecoder};
use crate::http::request::{Framing, HeadError, parse_head};
use crate::http::response::{ConnHeader, Head, LAST_CHUNK, OutFraming, encode_chunk, encode_head};
use crate::http::status::{forbids_body, reason};
use crate::metrics::worker::Timeout;
use crate::shutdown::Phase;
use futures_lite::{FutureExt, StreamExt};
use std::borrow::Cow;
use std::future::{Future, poll_fn};
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::ops::Range;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::{Duration, Instant};

/// Bodies up to this size are copied into the write buffer so head and body
/// leave in one write; larger ones are written straight from the handler's
/// buffer after the head.
const COALESCE_MAX: usize = 64 * 1024;
/// File bodies up to this size are copied in after the head instead of
/// sent by `sendfile(2)`: one batched send instead of two syscalls.
const FILE_COPY_MAX: u64 = 16 * 1024;
/// How long a closing connection waits for the client's FIN.
pub(crate) const LINGER: Duration = Duration::from_secs(1);

/// How the connection continues after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    KeepAlive,
    /// Last response sent with `Connection: close`: lingering close.
    Close,
    /// Cannot continue cleanly (forced, peer gone, broken stream): shut down.
    Abort,
}

/// Outcome of waiting for the next request head.
enum Next {
    /// A head is complete, since this instant: the request begins there.
    Head(Instant),
    /// Idle timeout, EOF or error: close without a response.
    Quiet,
    /// Refuse with this status, then close.
    Refuse(u16),
    Forced,
}

/// What [`Conn::encode_response`] did.
enum Encoded {
    /// The whole response is in the write buffer: flow, status, body bytes.
    Done(Flow, u16, u64),
    /// The head is; the body needs [`Conn::write_body`].
    Body(Flow, u16, OutFraming),
}

/// Where the request body is.
enum BodyAt {
    /// In the read buffer, right behind the head (no copy).
    Buf(Range<usize>),
    /// Copied or decoded into the body buffer.
    Owned,
}

pub(crate) struct Conn<'c, H> {
    ctx: &'c WorkerCtx<H>,
    io: Io<'c>,
    peer: SocketAddr,
    rbuf: ReadBuf,
    wbuf: Vec<u8>,
    body: Vec<u8>,
    /// The parsed head, held from the first byte of a request to idle.
    head: HeadSlot,
    /// When the connection was accepted until its first request is served
    /// (header_timeout counts from there), then when it last went idle.
    idle_since: Instant,
    /// When the current request began (for a refusal's duration in the
    /// metrics; answered requests are timed by their [`Run`]).
    started: Instant,
    served: bool,
    /// The request being handled is a HEAD (its error responses get no body).
    head_request: bool,
}

impl<'c, H: Handler> Conn<'c, H> {
    /// A connection accepted at `accepted` (header_timeout counts from
    /// there: a TLS handshake is part of it).
    pub(crate) fn new(ctx: &'c WorkerCtx<H>, io: Io<'c>, peer: SocketAddr, accepted: Instant) -> Self {
        Conn {
            ctx,
            io,
            peer,
            rbuf: ReadBuf::new(ctx.rbuf_cap),
            wbuf: Vec::new(),
            body: Vec::new(),
            head: HeadSlot::default(),
            idle_since: accepted,
            started: accepted,
            served: false,
            head_request: false,
        }
    }

    /// The connection's socket (for the TLS handshake before [`run`](Self::run)).
    pub(crate) fn io(&mut self) -> &mut Io<'c> {
        &mut self.io
    }

    pub(crate) fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// When the first request head (and a TLS handshake before it) must be
    /// in: accepted + header_timeout. (Only before the first request: then
    /// `idle_since` is still the accept time.)
    pub(crate) fn first_head_deadline(&self) -> Instant {
        debug_assert!(!self.served);
        self.idle_since + self.ctx.config.header_timeout
    }

    /// Serves requests until the connection ends. The socket is shut down
    /// and closed when the connection (its [`Io`]) is dropped.
    ///
    /// The future this returns is part of every idle connection's memory, so
    /// only the wait for the next head lives in it; serving a burst and
    /// closing are boxed (one allocation per burst, one per close).
    pub(crate) async fn run(&mut self) {
        loop {
            let started = match self.next_head().await {
                Next::Head(started) => started,
                Next::Quiet => return Box::pin(self.close_quietly()).await,
                Next::Refuse(status) => {
                    let flow = self.refuse(status);
                    return Box::pin(self.finish(flow)).await;
                }
                Next::Forced => return,
            };
            match Box::pin(self.burst(started)).await {
                Flow::KeepAlive => {}
                flow => return Box::pin(self.finish(flow)).await,
            }
        }
    }

    /// Ends a connection that has nothing more to answer: what is queued
    /// goes out, then the transport's goodbye (TLS close_notify).
    async fn close_quietly(&mut self) {
        if self.flush_all().await {
            self.io.send_close().await;
        }
    }

    /// Serves the request at the front of the buffer (begun at `started`)
    /// and every complete request already buffered behind it (pipelining),
    /// stopping when the next one still needs bytes from the socket.
    ///
    /// Each request starts where the one before it ended. Requests answered
    /// without waiting share one clock read ([`Run`]): their responses leave
    /// together when the burst ends.
    async fn burst(&mut self, started: Instant) -> Flow {
        let mut run = Run::new(started);
        let flow = loop {
            let flow = self.handle(&mut run).await;
            if flow != Flow::KeepAlive || self.rbuf.is_empty() {
                break flow;
            }
            // A long pipeline: send what has accumulated so far. (That may
            // wait for a slow reader: the run ends, later requests start
            // after the wait.)
            if self.wbuf.len() >= COALESCE_MAX {
                if !self.flush().await {
                    break Flow::Abort;
                }
                self.end_run(&mut run);
            }
            let head = self.head.get_mut(&self.ctx.driver.pool);
            match parse_head(self.rbuf.data(), self.ctx.limits, head) {
                Ok(true) => {}
                // Partial: next_head waits for the rest (under header_timeout).
                Ok(false) => break Flow::KeepAlive,
                Err(e) => {
                    log_refusal(self.peer, e);
                    self.started = run.start();
                    break self.refuse(e.status());
                }
            }
        };
        self.end_run(&mut run);
        flow
    }

    /// Records the run's pending answers (one clock read, which is also when
    /// the connection went idle); nothing if there are none.
    fn end_run(&mut self, run: &mut Run) {
        if run.pending() > 0 {
            self.idle_since = run.end(self.ctx.meter());
        }
    }

    /// Ends the connection: a lingering close after a `Connection: close`
    /// response; otherwise (abort) the drop of the [`Io`] shuts it down.
    async fn finish(&mut self, flow: Flow) {
        if flow == Flow::Close && self.flush().await {
            let pool = &self.ctx.driver.pool;
            let mut scratch = pool.take_read();
            self.io.linger_close(LINGER, &mut scratch).await;
            pool.put_read(scratch);
        }
    }

    /// The write buffer, taken from the pool if none is held.
    fn out(&mut self) -> &mut Vec<u8> {
        if self.wbuf.capacity() == 0 {
            self.wbuf = self.ctx.driver.pool.take_write();
        }
        &mut self.wbuf
    }

    /// Reads more bytes into the read buffer. While `idle`, the buffer is
    /// only borrowed from the pool for each read attempt, so a connection
    /// waiting for its next request holds no buffer.
    ///
    /// A plain function returning the `poll_fn`, not an `async fn`: an idle
    /// connection's memory includes this future, and an `async fn` would
    /// keep its arguments a second time beside the closure's copies.
    fn read_more(
        &mut self,
        deadline: Instant,
        watch: Watch,
        idle: bool,
    ) -> impl Future<Output = Waited<std::io::Result<usize>>> + use<'_, 'c, H> {
        let pool = &self.ctx.driver.pool;
        let (io, rbuf) = (&mut self.io, &mut self.rbuf);
        poll_fn(move |cx| {
            rbuf.acquire(pool);
            let spare = rbuf.spare();
            if spare.is_empty() {
                return Poll::Ready(Waited::Done(Err(std::io::ErrorKind::OutOfMemory.into())));
            }
            match io.poll_read(cx, spare) {
                Poll::Ready(Ok(n)) => {
                    rbuf.filled(n);
                    return Poll::Ready(Waited::Done(Ok(n)));
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Waited::Done(Err(e))),
                Poll::Pending if idle => rbuf.release(pool),
                Poll::Pending => {}
            }
            match io.poll_guards(cx, watch, deadline) {
                Some(w) => Poll::Ready(w),
                None => Poll::Pending,
            }
        })
    }

    /// Waits until a complete request head is at the front of the read buffer.
    async fn next_head(&mut self) -> Next {
        let cfg = &self.ctx.config;
        let mut request_started = (!self.rbuf.is_empty()).then(Instant::now);
        // Whether `request_started` is also when the bytes parsed next
        // arrived: a head that arrives in one read (nearly all) then needs
        // no second clock reading.
        let mut arrived = request_started.is_some();
        loop {
            if !self.rbuf.is_empty() {
                let head = self.head.get_mut(&self.ctx.driver.pool);
                match parse_head(self.rbuf.data(), self.ctx.limits, head) {
                    Ok(true) => {
                        return Next::Head(match request_started {
                            Some(t) if arrived => t,
                            _ => Instant::now(),
                        });
                    }
                    Ok(false) => {}
                    Err(e) => {
                        log_refusal(self.peer, e);
                        self.started = request_started.unwrap_or_else(Instant::now);
                        return Next::Refuse(e.status());
                    }
                }
            }
            // About to wait for bytes: first send what pipelining batched up.
            if !self.flush().await {
                return Next::Quiet;
            }
            let idle = self.rbuf.is_empty();
            if idle {
                self.release_buffers();
            }
            let (deadline, watch) = if idle {
                let drain = self.io.drain();
                let phase = drain.phase();
                let mut deadline = if self.served {
                    self.idle_since + cfg.keep_alive_timeout
                } else {
                    self.idle_since + cfg.header_timeout
                };
                if let (true, Some(t)) = (phase >= Phase::Draining, drain.drain_started()) {
                    deadline = deadline.min(t + cfg.drain_idle_grace());
                }
                (deadline, Watch::Change(phase))
            } else {
                let started = *request_started.get_or_insert_with(Instant::now);
                (started + cfg.header_timeout, Watch::Forced)
            };
            match self.read_more(deadline, watch, idle).await {
                // (A full buffer cannot happen: parse_head refuses heads over
                // max_header_size first.)
                Waited::Done(Ok(0)) | Waited::Done(Err(_)) => return Next::Quiet,
                Waited::Done(Ok(_)) => {
                    if idle {
                        request_started = Some(Instant::now());
                    }
                    arrived = idle;
                }
                Waited::Timeout if idle => return Next::Quiet,
                Waited::Timeout => {
                    log::debug!("{}: request head not complete within header_timeout; 408", self.peer);
                    self.ctx.meter().timeout(Timeout::Header);
                    self.started = request_started.unwrap_or_else(Instant::now);
                    return Next::Refuse(408);
                }
                Waited::Phase(Phase::Forced) => return Next::Forced,
                // Draining began while idle: recompute the deadline.
                Waited::Phase(_) => {}
            }
        }
    }

    /// Reads the body, runs the handler, writes the response. The request
    /// began at `run.start()`; it joins the run if it never waits.
    async fn handle(&mut self, run: &mut Run) -> Flow {
        let ctx = self.ctx;
        let cfg = &ctx.config;
        let version = self.head.version();
        let started = run.start();
        self.started = started;
        // Whether this request needs a clock reading of its own: it waited
        // (for a body, a handler, a large response) or is access-logged.
        let has_body = self.head.framing != Framing::Empty;
        let mut timed = cfg.access_log || has_body;
        // Known from here to the end of this request: refusals while reading
        // its body then answer a HEAD without a body too.
        self.head_request = self.head.is_head_method(self.rbuf.data());

        // Most requests have no body: no waiting, no state kept for it.
        let head_len = self.head.len;
        let (body_at, request_end) = if has_body {
            match self.read_body(started + cfg.request_timeout).await {
                Ok(v) => v,
                Err(flow) => return flow,
            }
        } else {
            (BodyAt::Buf(head_len..head_len), head_len)
        };

        let drain = self.io.drain().clone();
        let data = self.rbuf.data();
        let body: &[u8] = match &body_at {
            BodyAt::Buf(r) => &data[r.clone()],
            BodyAt::Owned => &self.body,
        };
        let req = Request { buf: data, head: &self.head, body, peer: self.peer, worker: ctx.id };
        let is_head = self.head_request;
        // The handler's time starts once the body is in: for a request
        // without one (most), that is now already.
        let body_done = if self.head.framing == Framing::Empty { started } else { Instant::now() };
        let deadline = body_done + cfg.request_timeout;

        // The health endpoint is answered here, without the app.
        let mut must_close = false;
        let response = if cfg.health_check_path.as_deref().is_some_and(|p| p == req.path()) {
            let (resp, close) = health::respond(req.method(), ctx.id, drain.active(), &ctx.shared);
            must_close = close;
            resp
        } else {
            // Pinned where it is made: the handler's future is as large as
            // the largest any route needs, and moving it into the guard
            // would copy all of it for every request.
            let mut call = std::pin::pin!(AssertUnwindSafe(ctx.handler.call(&req)).catch_unwind());
            // Most handlers answer on their first poll: then this request
            // did not wait (counted rather than polled once apart, so that
            // the handler's poll stays inlined in one place).
            let mut polls = 0u32;
            let counted = poll_fn(|cx| {
                polls += 1;
                call.as_mut().poll(cx)
            });
            let answer = self.io.guard(counted, deadline).await;
            timed |= polls > 1;
            match answer {
                Waited::Done(Ok(resp)) => resp,
                Waited::Done(Err(panic)) => {
                    log::error!(
                        "handler panicked on {} {}: {}; answered 500",
                        req.method(),
                        req.target(),
                        panic_message(&panic)
                    );
                    must_close = true;
                    Response::text(500, "Internal Server Error\n")
                }
                Waited::Timeout => {
                    ctx.meter().timeout(Timeout::Handler);
                    log::warn!(
                        "handler for {} {} exceeded request_timeout ({:.1}s); cancelled, answered 503",
                        req.method(),
                        req.target(),
                        cfg.request_timeout.as_secs_f64()
                    );
                    must_close = true;
                    Response::text(503, "Service Unavailable\n")
                }
                Waited::Phase(_) => return Flow::Abort,
            }
        };
        let method = self.head.method;
        let target = self.head.target;

        // Keep the connection? Not if either side said close; and while
        // draining, only if another request has already (partly) arrived.
        let pipelined = self.rbuf.len() > request_end;
        let keep_alive = self.head.keep_alive && !must_close && (pipelined || !drain.draining());
        // Most responses are encoded here without waiting: the response is
        // read in place, not moved into another future's state.
        let (mut flow, status, sent) = match self.encode_response(&response, is_head, version, keep_alive) {
            Encoded::Done(flow, status, sent) => (flow, status, sent),
            Encoded::Body(flow, status, framing) => {
                timed = true;
                Box::pin(self.write_body(response.body, status, flow, framing, deadline)).await
            }
        };
        // Draining began while the response was going out (a stream, a large
        // body): its head could no longer say so, but the connection still
        // ends here unless another request is already waiting.
        if flow == Flow::KeepAlive && drain.draining() && !pipelined {
            flow = Flow::Close;
        }

        // One clock read serves the metrics, the access log and the
        // keep-alive timer, for this request and those answered before it
        // without waiting; none if this one did not wait either.
        if let Some(done) = run.answered(status, timed, ctx.meter()) {
            self.idle_since = done;
        }
        if drain.draining() {
            ctx.shared.stats(ctx.id).drain_requests.fetch_add(1, Ordering::Relaxed);
        }
        if cfg.access_log {
            let data = self.rbuf.data();
            log::info!(
                target: "pounce::access",
                "{} \"{} {} {}\" {} {} {:.3}ms",
                self.peer.ip(),
                String::from_utf8_lossy(method.get(data)),
                String::from_utf8_lossy(target.get(data)),
                version.as_str(),
                status,
                sent,
                (self.idle_since - started).as_secs_f64() * 1e3
            );
        }

        // Done with this request's bytes. (The body buffer itself goes when
        // the connection is idle: release_buffers.)
        self.rbuf.consume(request_end);
        self.head_request = false;
        self.body.clear();
        self.served = true;
        flow
    }

    /// Reads the request body per its framing. Returns where it is and where
    /// the request ends in the read buffer; `Err` ends the connection (after
    /// a 408/413/400 where one is due).
    async fn read_body(&mut self, deadline: Instant) -> Result<(BodyAt, usize), Flow> {
        let head_len = self.head.len;
        let max = self.ctx.config.max_body_size;
        match self.head.framing {
            Framing::Empty => Ok((BodyAt::Buf(head_len..head_len), head_len)),
            Framing::Length(n) => {
                if n > max as u64 {
                    log::debug!("{}: Content-Length {n} over max_body_size; 413", self.peer);
                    return Err(self.refuse(413));
                }
                let n = n as usize;
                let have = self.rbuf.len() - head_len;
                if have >= n {
                    return Ok((BodyAt::Buf(head_len..head_len + n), head_len + n));
                }
                if have == 0 {
                    self.send_continue().await?;
                }
                // Move what arrived into the body buffer and read the rest
                // straight into it: exact-size reads never swallow a
                // pipelined request.
                self.body.clear();
                self.body.extend_from_slice(&self.rbuf.data()[head_len..]);
                self.rbuf.truncate(head_len);
                self.body.resize(n, 0);
                let mut filled = have;
                while filled < n {
                    match self.io.read(&mut self.body[filled..], deadline, Watch::Forced).await {
                        Waited::Done(Ok(0)) | Waited::Done(Err(_)) | Waited::Phase(_) => {
                            return Err(Flow::Abort);
                        }
                        Waited::Done(Ok(k)) => filled += k,
                        Waited::Timeout => return Err(self.body_timeout().await),
                    }
                }
                Ok((BodyAt::Owned, head_len))
            }
            Framing::Chunked => {
                if self.rbuf.len() == head_len {
                    self.send_continue().await?;
                }
                self.body.clear();
                let mut decoder = ChunkedDecoder::default();
                loop {
                    let input = &self.rbuf.data()[head_len..];
                    match decoder.decode(input, &mut self.body, max) {
                        Ok(used) if decoder.is_done() => return Ok((BodyAt::Owned, head_len + used)),
                        Ok(_) => self.rbuf.truncate(head_len),
                        Err(ChunkError::TooLarge) => {
                            log::debug!("{}: chunked body over max_body_size; 413", self.peer);
                            return Err(self.refuse(413));
                        }
                        Err(ChunkError::Bad(why)) => {
                            log::debug!("{}: bad chunked body ({why}); 400", self.peer);
                            return Err(self.refuse(400));
                        }
                    }
                    let spare = self.rbuf.spare();
                    match self.io.read(spare, deadline, Watch::Forced).await {
                        Waited::Done(Ok(0)) | Waited::Done(Err(_)) | Waited::Phase(_) => {
                            return Err(Flow::Abort);
                        }
                        Waited::Done(Ok(k)) => self.rbuf.filled(k),
                        Waited::Timeout => return Err(self.body_timeout().await),
                    }
                }
            }
        }
    }

    async fn body_timeout(&mut self) -> Flow {
        log::debug!("{}: request body not complete within request_timeout; 408", self.peer);
        self.ctx.meter().timeout(Timeout::Body);
        self.refuse(408)
    }

    /// `100 Continue` for a client waiting for permission to send its body.
    async fn send_continue(&mut self) -> Result<(), Flow> {
        if self.head.expect_continue {
            self.out().extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
            if !self.flush().await {
                return Err(Flow::Abort);
            }
        }
        Ok(())
    }

    /// Queues an error response with `Connection: close`; the connection ends.
    fn refuse(&mut self, status: u16) -> Flow {
        let with_body = !self.head_request;
        encode_error(self.out(), status, &[], with_body);
        self.ctx.meter().response(status, self.started.elapsed());
        Flow::Close
    }

    /// Encodes `resp`'s head, and its body when that takes no waiting (empty,
    /// small bytes, a small file read in behind the head), into the write
    /// buffer. Anything else is [`Encoded::Body`]: `write_body` sends it.
    fn encode_response(
        &mut self,
        resp: &Response,
        is_head: bool,
        version: Version,
        mut keep_alive: bool,
    ) -> Encoded {
        let Response { status, content_type, headers, body } = resp;
        let status = if (200..1000).contains(status) { *status } else { 500 };
        let framing = if forbids_body(status) {
            OutFraming::NoBody
        } else {
            match body.len() {
                Some(n) => OutFraming::Length(n),
                None if version == Version::Http11 => OutFraming::Chunked,
                None => {
                    keep_alive = false;
                    OutFraming::UntilClose
                }
            }
        };
        let connection = match (keep_alive, version) {
            (false, _) => ConnHeader::Close,
            (true, Version::Http10) => ConnHeader::KeepAlive,
            (true, Version::Http11) => ConnHeader::None,
        };
        let head =
            Head { status, content_type: content_type.as_deref(), headers, extra: &[], framing, connection };
        let head_at = self.out().len();
        if encode_head(self.out(), &head).is_err() {
            log::error!("handler returned a header with CR, LF, NUL or an invalid name; answered 500");
            encode_error(self.out(), 500, &[], !is_head);
            return Encoded::Done(Flow::Close, 500, 0);
        }
        let flow = if keep_alive { Flow::KeepAlive } else { Flow::Close };
        if is_head || framing == OutFraming::NoBody {
            return Encoded::Done(flow, status, 0);
        }
        match body {
            Body::Empty => Encoded::Done(flow, status, 0),
            Body::Bytes(b) if b.len() <= COALESCE_MAX => {
                self.out().extend_from_slice(b);
                Encoded::Done(flow, status, b.len() as u64)
            }
            Body::File { file, offset, len } if *len <= FILE_COPY_MAX => {
                // Small: copied in after the head (a page-cache read, like
                // sendfile's), so it leaves with the head and with the rest
                // of a pipelined burst in one batched send.
                let out = self.out();
                let at = out.len();
                out.resize(at + *len as usize, 0);
                match pread_exact(file.as_raw_fd(), &mut out[at..], *offset) {
                    Ok(()) => Encoded::Done(flow, status, *len),
                    Err(e) => {
                        // Nothing of this response has left yet: answer 500.
                        log::warn!("reading a file body failed ({e}); answered 500");
                        out.truncate(head_at);
                        encode_error(out, 500, &[], !is_head);
                        Encoded::Done(Flow::Close, 500, 0)
                    }
                }
            }
            _ => Encoded::Body(flow, status, framing),
        }
    }

    /// Sends a body [`encode_response`](Self::encode_response) left: large
    /// bytes, a large file (`sendfile(2)`), a stream. Returns the flow, the
    /// status sent and the body bytes sent.
    async fn write_body(
        &mut self,
        body: Body,
        status: u16,
        flow: Flow,
        framing: OutFraming,
        deadline: Instant,
    ) -> (Flow, u16, u64) {
        let stall = self.ctx.config.request_timeout;
        match body {
            // Handled by encode_response.
            Body::Empty => (flow, status, 0),
            Body::Bytes(b) => {
                if !self.flush().await {
                    return (Flow::Abort, status, 0);
                }
                // Handed over without copying: owned bytes move, 'static
                // bytes are referenced.
                let len = b.len() as u64;
                let buf = match b {
                    Cow::Owned(v) => SendBuf::Owned(v),
                    Cow::Borrowed(s) => SendBuf::Static(s),
                };
                let r = self.io.write_all(buf, stall).await;
                if self.written(r) { (flow, status, len) } else { (Flow::Abort, status, 0) }
            }
            Body::File { file, offset, len } => {
                // The file's bytes must follow everything queued before
                // them: let the ring send in flight finish (or report its
                // error), then write the rest (this head, earlier pipelined
                // responses) directly.
                let r = self.io.sent(stall).await;
                if !self.written(r) {
                    return (Flow::Abort, status, 0);
                }
                let r = self.io.write_now(&self.wbuf, stall).await;
                self.wbuf.clear();
                if !self.written(r) {
                    return (Flow::Abort, status, 0);
                }
                let (sent, r) = self.io.send_file(file.as_raw_fd(), offset, len, stall).await;
                if let Waited::Done(Err(e)) = &r
                    && !matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset)
                {
                    log::warn!("sending a file failed after the head was sent ({e}); connection closed");
                }
                if self.written(r) { (flow, status, sent) } else { (Flow::Abort, status, sent) }
            }
            Body::Stream { len, mut chunks } => {
                let chunked = framing == OutFraming::Chunked;
                let mut sent: u64 = 0;
                // request_timeout bounds the handler's time: producing the
                // head and then each chunk. Time spent waiting for a slow
                // client to take the bytes is not the handler's; each write
                // has its own stall limit instead.
                let mut budget = deadline.saturating_duration_since(Instant::now());
                loop {
                    if !self.flush().await {
                        return (Flow::Abort, status, sent);
                    }
                    let next = AssertUnwindSafe(chunks.next()).catch_unwind();
                    let asked = Instant::now();
                    let got = self.io.guard(next, asked + budget).await;
                    budget = budget.saturating_sub(asked.elapsed());
                    match got {
                        Waited::Done(Ok(Some(Ok(chunk)))) => {
                            let chunk: crate::handler::Chunk = chunk;
                            sent += chunk.len() as u64;
                            if len.is_some_and(|n| sent > n) {
                                log::error!(
                                    "streamed body longer than its declared length; connection closed"
                                );
                                return (Flow::Abort, status, sent);
                            }
                            if chunked {
                                encode_chunk(self.out(), chunk.as_bytes());
                            } else if self.wbuf.is_empty() && chunk.len() > COALESCE_MAX / 4 {
                                // Sized stream, big chunk: hand it over as it
                                // is instead of copying it (one send in
                                // flight at a time keeps memory bounded).
                                if self.io.sending() {
                                    let r = self.io.sent(self.ctx.config.request_timeout).await;
                                    if !self.written(r) {
                                        return (Flow::Abort, status, sent);
                                    }
                                }
                                self.io.send(match chunk.0 {
                                    ChunkData::Vec(v) => SendBuf::Owned(v),
                                    ChunkData::Static(s) => SendBuf::Static(s),
                                    ChunkData::Buffer(b) => SendBuf::Boxed(b),
                                });
                            } else {
                                self.out().extend_from_slice(chunk.as_bytes());
                            }
                        }
                        Waited::Done(Ok(None)) => break,
                        Waited::Done(Ok(Some(Err(e)))) => {
                            log::warn!(
                                "streamed body failed after the head was sent ({e}); connection closed"
                            );
                            return (Flow::Abort, status, sent);
                        }
                        Waited::Done(Err(panic)) => {
                            log::error!(
                                "streamed body panicked: {}; connection closed",
                                panic_message(&panic)
                            );
                            return (Flow::Abort, status, sent);
                        }
                        Waited::Timeout => {
                            self.ctx.meter().timeout(Timeout::Handler);
                            log::warn!(
                                "streamed response exceeded request_timeout ({:.1}s); connection closed",
                                self.ctx.config.request_timeout.as_secs_f64()
                            );
                            return (Flow::Abort, status, sent);
                        }
                        Waited::Phase(_) => return (Flow::Abort, status, sent),
                    }
                }
                if len.is_some_and(|n| sent != n) {
                    log::error!("streamed body shorter than its declared length; connection closed");
                    return (Flow::Abort, status, sent);
                }
                if chunked {
                    self.out().extend_from_slice(LAST_CHUNK);
                }
                (flow, status, sent)
            }
        }
    }

    /// Hands the write buffer to the driver, which sends it in the
    /// background (with whatever else this loop iteration produced). Waits
    /// only for this connection's previous send, which also throttles a
    /// stream to one chunk in flight. False if the peer is gone or too slow.
    ///
    /// Not an `async fn` on purpose: the common case (nothing in flight)
    /// completes without waiting, and the rare wait is boxed, so the idle
    /// connection's future (which contains this one) stays small.
    fn flush(&mut self) -> impl Future<Output = bool> + use<'_, 'c, H> {
        let wait = !self.wbuf.is_empty() && self.io.sending();
        let done = if wait { None } else { Some(self.hand_over()) };
        async move {
            match done {
                Some(ok) => ok,
                None => Box::pin(self.flush_after_send()).await,
            }
        }
    }

    async fn flush_after_send(&mut self) -> bool {
        let r = self.io.sent(self.ctx.config.request_timeout).await;
        self.written(r) && self.hand_over()
    }

    /// Gives the write buffer to the driver (nothing may be in flight).
    fn hand_over(&mut self) -> bool {
        if !self.wbuf.is_empty() {
            self.io.send(SendBuf::Owned(std::mem::take(&mut self.wbuf)));
        }
        true
    }

    /// Like [`flush`](Self::flush), then waits until everything is sent.
    async fn flush_all(&mut self) -> bool {
        self.flush().await && {
            let r = self.io.sent(self.ctx.config.request_timeout).await;
            self.written(r)
        }
    }

    /// True if a write completed; logs why not otherwise.
    fn written(&self, r: Waited<std::io::Result<()>>) -> bool {
        match r {
            Waited::Done(Ok(())) => true,
            Waited::Timeout => {
                log::debug!(
                    "{}: client accepted no response bytes for request_timeout ({:.1}s); connection closed",
                    self.peer,
                    self.ctx.config.request_timeout.as_secs_f64()
                );
                false
            }
            _ => false,
        }
    }
}

/// A connection that ends gives its buffers and parsed head back to the
/// pool, as an idle one does: under `Connection: close` churn that is one
/// allocation less per connection for each.
impl<H> Drop for Conn<'_, H> {
    fn drop(&mut self) {
        self.release_buffers();
    }
}

impl<H> Conn<'_, H> {
    /// Idle: give the buffers back to the pool.
    fn release_buffers(&mut self) {
        let pool = &self.ctx.driver.pool;
        self.rbuf.release(pool);
        self.head.release(pool);
        if self.wbuf.is_empty() && self.wbuf.capacity() > 0 {
            pool.put_write(std::mem::take(&mut self.wbuf));
        }
        if self.body.capacity() > 0 {
            self.body = Vec::new();
        }
    }
}

/// Appends a small text error response with `Connection: close`; its body
/// only when `with_body` (not for a HEAD request).
pub(crate) fn encode_error(out: &mut Vec<u8>, status: u16, extra: &[(&'static str, &str)], with_body: bool) {
    let body = reason(status);
    let head = Head {
        status,
        content_type: Some("text/plain; charset=utf-8"),
        headers: &[],
        extra,
        framing: OutFraming::Length(body.len() as u64 + 1),
        connection: ConnHeader::Close,
    };
    encode_head(out, &head).expect("server-made heads are valid");
    if with_body {
        out.extend_from_slice(body.as_bytes());
        out.push(b'\n');
    }
}

fn log_refusal(peer: SocketAddr, e: HeadError) {
    match e {
        HeadError::Bad(why) => log::debug!("{peer}: bad request ({why}); 400"),
        other => log::debug!("{peer}: request refused: {other:?}; {}", other.status()),
    }
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> Cow<'_, str> {
    if let Some(s) = p.downcast_ref::<&'static str>() {
        Cow::Borrowed(s)
    } else if let Some(s) = p.downcast_ref::<String>() {
        Cow::Borrowed(s.as_str())
    } else {
        Cow::Borrowed("(non-string panic payload)")
    }
}
