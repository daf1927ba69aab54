//! The TLS side of a connection's [`Io`]: a [`TlsSession`] (sans I/O, in
//! crate::tls) moved over the worker's ring.
//!
//! - The handshake ([`Io::handshake`]) runs before the connection loop
//!   starts, bounded by header_timeout from the accept. Its first byte
//!   decides: a TLS handshake record goes on; an HTTP method (plain HTTP on
//!   the TLS port) is answered `400` in plaintext, as nginx does, with a
//!   lingering close; anything else is closed. Garbage, a truncated
//!   handshake or an unsupported version closes the connection after the
//!   alert rustls chose; the caller logs the reason.
//! - Reads decrypt in place in the session's ciphertext buffer, which comes
//!   from the worker's pool and goes back whenever it is empty.
//! - Sends encrypt the connection loop's buffer into a pooled one, which the
//!   ring sends; the plaintext buffer goes straight back to the pool. Bytes
//!   rustls produces on its own (session tickets, a key update, an alert)
//!   wait in `tx` and leave in front of the next send, so a response still
//!   leaves in one submission.
//! - File bodies cannot use `sendfile(2)` under user-space TLS: they are
//!   read with `pread(2)` into a pooled buffer, [`FILE_CHUNK`] at a time,
//!   and each chunk is encrypted while the one before it is being sent. Two
//!   chunks per download are in memory whatever the file size.
//! - Closing: `close_notify` before the FIN on every orderly close (after a
//!   `Connection: close` response, an idle timeout, the drain); the forced
//!   close at shutdown_timeout sends only the FIN.

use super::{Io, Waited, Watch, pread_exact};
use crate::http::response::{ConnHeader, Head, OutFraming, encode_head};
use crate::server::connection::LINGER;
use crate::server::pool::BufPool;
use crate::server::uring::{ConnId, Driver, SendBuf};
use crate::shutdown::Phase;
use crate::tls::HandshakeFailure;
use crate::tls::session::{Read, TlsSession};
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Plaintext per chunk of a file body: four records, so that a sealed chunk
/// still fits a buffer the pool keeps.
const FILE_CHUNK: usize = 60 * 1024;
/// Longest wait for a `close_notify` or an alert to leave on a quiet close.
const GOODBYE_STALL: Duration = Duration::from_secs(1);
/// The body of the `400` for plain HTTP on the TLS port.
const PLAIN_HTTP_BODY: &[u8] = b"This port expects HTTPS: the plain HTTP request was sent to an HTTPS port\n";

/// A handshake that did not complete: why, and what rustls (or the socket)
/// said, for the debug log line.
#[derive(Debug)]
pub(crate) struct HandshakeError {
    pub reason: HandshakeFailure,
    pub detail: String,
}

impl HandshakeError {
    fn new(reason: HandshakeFailure, detail: impl Into<String>) -> HandshakeError {
        HandshakeError { reason, detail: detail.into() }
    }
}

/// A handshake flight's send, as the handshake's result.
fn sent_or_failed(w: Waited<io::Result<()>>) -> Result<(), HandshakeError> {
    match w {
        Waited::Done(Ok(())) => Ok(()),
        Waited::Done(Err(e)) => Err(HandshakeError::new(HandshakeFailure::ClientClosed, e.to_string())),
        Waited::Timeout => {
            Err(HandshakeError::new(HandshakeFailure::Timeout, "the client took nothing we sent"))
        }
        Waited::Phase(_) => Err(HandshakeError::new(HandshakeFailure::Shutdown, "forced")),
    }
}

pub(super) struct TlsIo {
    session: TlsSession,
    /// Ciphertext rustls produced on its own, sent in front of the next
    /// send (or by itself before waiting for the client).
    tx: Vec<u8>,
    /// The socket reached end of stream.
    eof: bool,
}

impl TlsIo {
    pub(super) fn new(config: Arc<rustls::ServerConfig>) -> TlsIo {
        // TlsConfig::load made a session from this same configuration: the
        // only way this can fail (a bad max_fragment_size) is ruled out.
        let session = TlsSession::new(config).expect("checked when the TLS configuration was loaded");
        TlsIo { session, tx: Vec::new(), eof: false }
    }

    pub(super) fn release(&mut self, pool: &BufPool) {
        self.session.release(pool);
    }

    /// Decrypted bytes into `buf` (Ok(0) is the end of the stream: the
    /// client's `close_notify`, or its FIN without one).
    pub(super) fn poll_read(
        &mut self,
        driver: &Driver,
        id: ConnId,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            match self.session.read(buf, &mut self.tx) {
                Ok(Read::Data(n)) => return Poll::Ready(Ok(n)),
                Ok(Read::Closed) => return Poll::Ready(Ok(0)),
                Ok(Read::NeedInput) => {}
                Err(e) => return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e))),
            }
            match self.poll_input(driver, id, cx) {
                Poll::Ready(Ok(true)) => {}
                Poll::Ready(Ok(false)) => return Poll::Ready(Ok(0)),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// Moves received ciphertext into the session: Ready(Ok(true)) if some
    /// arrived, Ready(Ok(false)) at end of stream. While nothing has
    /// arrived, the session's buffer is back in the pool.
    fn poll_input(&mut self, driver: &Driver, id: ConnId, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        if self.eof {
            return Poll::Ready(Ok(false));
        }
        let room = self.session.input(&driver.pool);
        if room.is_empty() {
            let e = io::Error::new(io::ErrorKind::InvalidData, "TLS message larger than any rustls accepts");
            return Poll::Ready(Err(e));
        }
        match driver.poll_read(id, cx, room) {
            Poll::Ready(Ok(0)) => {
                self.eof = true;
                self.session.release(&driver.pool);
                Poll::Ready(Ok(false))
            }
            Poll::Ready(Ok(n)) => {
                self.session.received(n);
                Poll::Ready(Ok(true))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                self.session.release(&driver.pool);
                Poll::Pending
            }
        }
    }

    /// `tx` (or a pooled buffer) with `plain` sealed onto its end.
    fn seal(&mut self, pool: &BufPool, plain: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        let mut out = std::mem::take(&mut self.tx);
        if out.capacity() == 0 {
            out = pool.take_write();
        }
        match self.session.encrypt(plain, &mut out) {
            Ok(()) => Ok(out),
            Err(e) => {
                pool.put_write(out);
                Err(e)
            }
        }
    }
}

impl Io<'_> {
    /// True when this connection speaks TLS.
    pub(crate) fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The TLS handshake (a no-op for plaintext). It must complete by
    /// `deadline`. With `idle_grace`, a client that has sent nothing yet is
    /// an idle connection: once the worker drains, it gets that long from
    /// the start of the drain, like an idle keep-alive connection.
    /// Otherwise only a forced stop interrupts it. On error the connection
    /// has been answered (`400` for plain HTTP) or is to be closed.
    pub(crate) async fn handshake(
        &mut self,
        deadline: Instant,
        idle_grace: Option<Duration>,
    ) -> Result<(), HandshakeError> {
        if self.tls.is_none() {
            return Ok(());
        }
        let mut sniffed = false;
        // The ClientHello's legacy version field (0x0303 in every TLS 1.2
        // and 1.3 hello, lower from older clients).
        let mut hello_version = None;
        loop {
            let t = self.tls.as_mut().expect("TLS");
            if t.session.has_input() {
                // (Read while the hello is still unprocessed input.)
                hello_version = hello_version.or_else(|| t.session.hello_version());
                if !sniffed {
                    sniffed = true;
                    match t.session.first_byte() {
                        // A TLS handshake record.
                        Some(0x16) => {}
                        Some(b) if b.is_ascii_uppercase() => return Err(self.answer_plain_http().await),
                        Some(b) => {
                            return Err(HandshakeError::new(
                                HandshakeFailure::NotTls,
                                format!("first byte 0x{b:02x} is not a TLS handshake record"),
                            ));
                        }
                        None => unreachable!("has input"),
                    }
                }
                match t.session.handshake(&mut t.tx) {
                    Ok(true) if t.session.has_plain() => {
                        // The request came with the client's Finished: what
                        // rustls still has to say (TLS 1.3 session tickets)
                        // leaves in front of the response.
                        return Ok(());
                    }
                    Ok(true) => {
                        // The client may be waiting for our last flight (TLS
                        // 1.2: our Finished) before it sends its request.
                        let stall = deadline.saturating_duration_since(Instant::now());
                        return sent_or_failed(self.flush_tx(stall).await);
                    }
                    Ok(false) => {}
                    Err(e) => {
                        // The alert rustls chose, best effort.
                        self.flush_tx(GOODBYE_STALL).await;
                        let mut reason = HandshakeFailure::of(&e);
                        // A TLS 1.1 client offers neither TLS 1.2 suites nor
                        // signature_algorithms, which rustls finds first: say
                        // what is really wrong.
                        if reason == HandshakeFailure::NoCommonParameters && hello_version < Some(0x0303) {
                            reason = HandshakeFailure::ProtocolVersion;
                        }
                        let detail = match hello_version {
                            Some(0x0302) => format!("{e}; the client offers TLS 1.1"),
                            Some(0x0301) => format!("{e}; the client offers TLS 1.0"),
                            Some(v) if v < 0x0301 => format!("{e}; the client offers SSL 3.0 or older"),
                            _ => e.to_string(),
                        };
                        return Err(HandshakeError::new(reason, detail));
                    }
                }
            }
            // Our flight (if any) goes out before we wait for the client's.
            let stall = deadline.saturating_duration_since(Instant::now());
            sent_or_failed(self.flush_tx(stall).await)?;
            let got_nothing = !sniffed;
            let (until, watch) = match idle_grace {
                Some(grace) if got_nothing => {
                    let phase = self.drain.phase();
                    let mut until = deadline;
                    if let (true, Some(t)) = (phase >= Phase::Draining, self.drain.drain_started()) {
                        until = until.min(t + grace);
                    }
                    (until, Watch::Change(phase))
                }
                _ => (deadline, Watch::Forced),
            };
            let read = self
                .wait_for(watch, until, |io, cx| {
                    let t = io.tls.as_mut().expect("TLS");
                    t.poll_input(io.driver, io.id, cx)
                })
                .await;
            match read {
                Waited::Done(Ok(true)) => {}
                Waited::Done(Ok(false)) => {
                    let what =
                        if sniffed { "closed mid-handshake" } else { "closed before sending anything" };
                    return Err(HandshakeError::new(HandshakeFailure::ClientClosed, what));
                }
                Waited::Done(Err(e)) => {
                    return Err(HandshakeError::new(HandshakeFailure::ClientClosed, e.to_string()));
                }
                Waited::Timeout => {
                    let what = if sniffed { "stalled mid-handshake" } else { "sent nothing" };
                    return Err(HandshakeError::new(HandshakeFailure::Timeout, what));
                }
                Waited::Phase(Phase::Forced) => {
                    return Err(HandshakeError::new(HandshakeFailure::Shutdown, "forced"));
                }
                // Draining began while the client had sent nothing: the
                // deadline shrinks to the idle grace.
                Waited::Phase(_) => {}
            }
        }
    }

    /// Plain HTTP on the TLS port: `400` in plaintext, `Connection: close`,
    /// then the lingering close that keeps it from being destroyed by a
    /// reset (the request is read and discarded, not parsed).
    async fn answer_plain_http(&mut self) -> HandshakeError {
        let first = self.tls.as_ref().and_then(|t| t.session.first_byte()).unwrap_or(b'?');
        if let Some(mut t) = self.tls.take() {
            t.release(&self.driver.pool);
        }
        let mut out = self.driver.pool.take_write();
        let head = Head {
            status: 400,
            content_type: Some("text/plain; charset=utf-8"),
            headers: &[],
            extra: &[],
            framing: OutFraming::Length(PLAIN_HTTP_BODY.len() as u64),
            connection: ConnHeader::Close,
        };
        encode_head(&mut out, &head).expect("server-made heads are valid");
        out.extend_from_slice(PLAIN_HTTP_BODY);
        if let Waited::Done(Ok(())) = self.write_all(SendBuf::Owned(out), LINGER).await {
            let mut scratch = self.driver.pool.take_read();
            self.linger_close(LINGER, &mut scratch).await;
            self.driver.pool.put_read(scratch);
        }
        HandshakeError::new(
            HandshakeFailure::PlainHttp,
            format!("plain HTTP on the TLS port (first byte {:?}); answered 400", first as char),
        )
    }

    /// Sends what rustls produced on its own and waits for it.
    async fn flush_tx(&mut self, stall: Duration) -> Waited<io::Result<()>> {
        let Some(t) = self.tls.as_mut() else { return Waited::Done(Ok(())) };
        if t.tx.is_empty() {
            return Waited::Done(Ok(()));
        }
        let tx = std::mem::take(&mut t.tx);
        match self.sent(stall).await {
            Waited::Done(Ok(())) => {}
            other => return other,
        }
        self.driver.start_send(self.id, SendBuf::Owned(tx));
        self.sent(stall).await
    }

    /// [`Io::send`] with TLS: seals `buf` behind what is waiting in `tx`.
    pub(super) fn send_sealed(&mut self, buf: SendBuf) {
        let t = self.tls.as_mut().expect("TLS");
        let sealed = t.seal(&self.driver.pool, buf.bytes());
        if let SendBuf::Owned(v) = buf {
            self.driver.pool.put_write(v);
        }
        match sealed {
            Ok(out) => self.driver.start_send(self.id, SendBuf::Owned(out)),
            Err(e) => {
                // Cannot happen once the handshake is done (rustls refuses
                // only past 2^64 records): make every later wait fail.
                log::warn!("TLS: cannot encrypt a response ({e}); connection closed");
                self.shutdown(std::net::Shutdown::Both);
            }
        }
    }

    /// [`Io::write_now`] with TLS: seals `buf` into `tx`, where it waits
    /// for the body that follows (one send for head and first chunk).
    pub(super) fn queue_sealed(&mut self, buf: &[u8]) -> Waited<io::Result<()>> {
        let t = self.tls.as_mut().expect("TLS");
        match t.seal(&self.driver.pool, buf) {
            Ok(out) => {
                t.tx = out;
                Waited::Done(Ok(()))
            }
            Err(e) => Waited::Done(Err(io::Error::other(e))),
        }
    }

    /// [`Io::send_file`] with TLS: `pread(2)` a chunk, seal it, send it,
    /// with the next chunk read and sealed while this one is in flight.
    pub(super) async fn send_file_sealed(
        &mut self,
        file: RawFd,
        mut offset: u64,
        len: u64,
        stall: Duration,
    ) -> (u64, Waited<io::Result<()>>) {
        let pool = &self.driver.pool;
        let mut plain = pool.take_write();
        plain.resize(FILE_CHUNK.min(len as usize), 0);
        let mut sent = 0u64;
        let result = loop {
            if sent == len {
                break self.sent(stall).await;
            }
            let want = (len - sent).min(FILE_CHUNK as u64) as usize;
            if let Err(e) = pread_exact(file, &mut plain[..want], offset) {
                break Waited::Done(Err(e));
            }
            let t = self.tls.as_mut().expect("TLS");
            let out = match t.seal(&self.driver.pool, &plain[..want]) {
                Ok(out) => out,
                Err(e) => break Waited::Done(Err(io::Error::other(e))),
            };
            // The chunk before this one must be out first.
            match self.sent(stall).await {
                Waited::Done(Ok(())) => {}
                other => {
                    self.driver.pool.put_write(out);
                    break other;
                }
            }
            self.driver.start_send(self.id, SendBuf::Owned(out));
            sent += want as u64;
            offset += want as u64;
            if sent < len {
                // Let the worker's other connections run between chunks.
                futures_lite::future::yield_now().await;
            }
        };
        self.driver.pool.put_write(plain);
        (sent, result)
    }

    /// Before a lingering close: `close_notify` (TLS only), sent and waited
    /// for within `stall`. False if it could not be sent.
    pub(super) async fn send_close_notify(&mut self, stall: Duration) -> bool {
        let Some(t) = self.tls.as_mut() else { return true };
        t.session.close_notify(&mut t.tx);
        matches!(self.flush_tx(stall).await, Waited::Done(Ok(())))
    }

    /// Before a quiet close (idle timeout, the client's end of stream, a
    /// read error, the drain's idle grace): with TLS, `close_notify`, or the
    /// alert an error left waiting, so the client sees an orderly end rather
    /// than a truncation. Plaintext: nothing. The FIN is the drop's.
    pub(crate) async fn send_close(&mut self) {
        if self.tls.is_some() {
            self.send_close_notify(GOODBYE_STALL).await;
        }
    }
}
