//! A connection's socket, as the connection loop sees it: reads and writes on
//! the worker's [`Driver`], each wait also watching a deadline and the
//! worker's shutdown phase.
//!
//! Each wait is one `poll_fn` that polls the socket first (received bytes
//! already queued cost no timer at all), then the phase registry, then the
//! deadline, which the worker's [`Deadlines`] keep: a keep-alive
//! connection's deadline moves later with every request, and saying so costs
//! no clock read and no timer operation.
//!
//! Writes are handed to the driver ([`Io::send`]) and complete in the
//! background; [`Io::sent`] waits for the one in flight. File bodies go out
//! by `sendfile(2)` instead ([`Io::send_file`], after the head by
//! [`Io::write_now`]): syscalls on the worker's thread, with the ring only
//! waiting for room when the socket is full. Dropping an `Io`
//! is how a connection ends: the driver cancels what is in flight on the
//! socket and then closes it.
//!
//! With TLS ([`tls`]), the same calls carry plaintext: reads decrypt what
//! the ring received, sends encrypt before handing ciphertext to the ring,
//! and file bodies are read and encrypted in chunks instead of
//! `sendfile(2)`. The connection loop does not know which it has, except
//! that it lets an `Io` say goodbye ([`Io::send_close`]) before a quiet
//! close.

mod tls;

use super::deadlines::{DeadlineKey, Deadlines};
use super::uring::{ConnId, Driver, SendBuf};
use crate::shutdown::Phase;
use crate::shutdown::drain::WorkerDrain;
use std::future::{Future, poll_fn};
use std::io::{self, ErrorKind};
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Most bytes one `sendfile(2)` call is asked for: a connection downloading
/// a large file yields to the worker's others between slices.
const SENDFILE_MAX: u64 = 1 << 20;

/// What ended a wait.
#[derive(Debug)]
pub(crate) enum Waited<T> {
    Done(T),
    /// The deadline passed first.
    Timeout,
    /// The worker's phase changed (only reported to waits that asked).
    Phase(Phase),
}

/// Which phase changes interrupt a wait.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Watch {
    /// Any change from this phase (an idle keep-alive wait: draining shortens it).
    Change(Phase),
    /// Only force termination (in-flight work runs through a drain).
    Forced,
}

pub(crate) struct Io<'d> {
    driver: &'d Driver,
    id: ConnId,
    deadlines: &'d Deadlines,
    drain: Rc<WorkerDrain>,
    /// TLS state; `None` for plaintext (or once a plain HTTP request on the
    /// TLS port is being answered).
    tls: Option<Box<tls::TlsIo>>,
    fd: RawFd,
    /// The slot in the drain registry (`u32::MAX`: none).
    key: u32,
    deadline: DeadlineKey,
}

impl<'d> Io<'d> {
    /// Takes over socket `fd`. `key` is its slot in the drain registry
    /// (`usize::MAX` for an unregistered connection). With `tls`, the
    /// connection speaks TLS: [`handshake`](Self::handshake) first.
    pub(crate) fn new(
        driver: &'d Driver,
        deadlines: &'d Deadlines,
        fd: RawFd,
        drain: Rc<WorkerDrain>,
        key: usize,
        tls: Option<&Arc<rustls::ServerConfig>>,
    ) -> Io<'d> {
        let id = driver.register(fd);
        let tls = tls.map(|config| Box::new(tls::TlsIo::new(config.clone())));
        let key = u32::try_from(key).unwrap_or(u32::MAX);
        let deadline = deadlines.register();
        Io { driver, id, deadlines, drain, tls, fd, key, deadline }
    }

    pub(crate) fn drain(&self) -> &Rc<WorkerDrain> {
        &self.drain
    }

    /// Copies received bytes into `buf`, without waiting (Ok(0) is EOF).
    /// The buffer is only used during this call, which is what lets an idle
    /// connection lend it back to the pool while pending.
    pub(crate) fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        match &mut self.tls {
            None => self.driver.poll_read(self.id, cx, buf),
            Some(t) => t.poll_read(self.driver, self.id, cx, buf),
        }
    }

    /// Polls `watch` and the deadline; `Some` if either fired. Otherwise
    /// makes sure the task is woken when the deadline passes (within the
    /// sweeper's resolution, see [`Deadlines`]).
    pub(crate) fn poll_guards<T>(
        &mut self,
        cx: &mut Context<'_>,
        watch: Watch,
        deadline: Instant,
    ) -> Option<Waited<T>> {
        let key = self.key as usize;
        match watch {
            Watch::Change(seen) => {
                if let Poll::Ready(p) = self.drain.poll_change(key, seen, cx) {
                    return Some(Waited::Phase(p));
                }
            }
            Watch::Forced => {
                if self.drain.poll_forced(key, cx) {
                    return Some(Waited::Phase(Phase::Forced));
                }
            }
        }
        match self.deadlines.poll(self.deadline, deadline, cx) {
            Poll::Ready(()) => Some(Waited::Timeout),
            Poll::Pending => None,
        }
    }

    /// The shape of every wait: `ready` is polled first, every time (what
    /// is already there costs no timer), then `watch` and the deadline.
    async fn wait_for<T>(
        &mut self,
        watch: Watch,
        deadline: Instant,
        mut ready: impl FnMut(&mut Self, &mut Context<'_>) -> Poll<T>,
    ) -> Waited<T> {
        poll_fn(|cx| {
            if let Poll::Ready(v) = ready(self, cx) {
                return Poll::Ready(Waited::Done(v));
            }
            match self.poll_guards(cx, watch, deadline) {
                Some(w) => Poll::Ready(w),
                None => Poll::Pending,
            }
        })
        .await
    }

    /// Reads into `buf` (Ok(0) is EOF).
    pub(crate) async fn read(
        &mut self,
        buf: &mut [u8],
        deadline: Instant,
        watch: Watch,
    ) -> Waited<io::Result<usize>> {
        self.wait_for(watch, deadline, |io, cx| io.poll_read(cx, buf)).await
    }

    /// True while a send is in flight.
    pub(crate) fn sending(&self) -> bool {
        self.driver.sending(self.id)
    }

    /// Hands `buf` to the driver to send; returns at once. Only one send is
    /// in flight per connection: call [`sent`](Self::sent) first.
    pub(crate) fn send(&mut self, buf: SendBuf) {
        match &mut self.tls {
            None => self.driver.start_send(self.id, buf),
            Some(_) => self.send_sealed(buf),
        }
    }

    /// Waits until the send in flight (if any) has completed. It must make
    /// progress within `stall`, so a client that stops reading cannot hold
    /// the connection forever.
    pub(crate) async fn sent(&mut self, stall: Duration) -> Waited<io::Result<()>> {
        let deadline = Instant::now() + stall;
        self.wait_for(Watch::Forced, deadline, |io, cx| io.driver.poll_sent(io.id, cx)).await
    }

    /// Sends `buf` and waits for it (and any send before it) to complete.
    pub(crate) async fn write_all(&mut self, buf: SendBuf, stall: Duration) -> Waited<io::Result<()>> {
        match self.sent(stall).await {
            Waited::Done(Ok(())) => {}
            other => return other,
        }
        self.send(buf);
        self.sent(stall).await
    }

    /// Waits until the socket can take more bytes, within `stall`.
    async fn writable(&mut self, stall: Duration) -> Waited<io::Result<()>> {
        let deadline = Instant::now() + stall;
        self.wait_for(Watch::Forced, deadline, |io, cx| io.driver.poll_writable(io.id, cx)).await
    }

    /// Writes all of `buf` now, outside the ring (waiting for room, each
    /// wait within `stall`), corked to the `sendfile` that follows. Only once
    /// no ring send is in flight ([`sent`](Self::sent)).
    pub(crate) async fn write_now(&mut self, buf: &[u8], stall: Duration) -> Waited<io::Result<()>> {
        if self.tls.is_some() {
            return self.queue_sealed(buf);
        }
        let mut off = 0;
        while off < buf.len() {
            match self.driver.send_now(self.id, &buf[off..]) {
                Ok(n) => off += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => match self.writable(stall).await {
                    Waited::Done(Ok(())) => {}
                    other => return other,
                },
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Waited::Done(Err(e)),
            }
        }
        Waited::Done(Ok(()))
    }

    /// Sends `len` bytes of `file` from `offset` with `sendfile(2)` (zero
    /// copy), waiting for room whenever the socket is full, each wait within
    /// `stall`. Only once no ring send is in flight. Returns the bytes sent
    /// when it stops early.
    pub(crate) async fn send_file(
        &mut self,
        file: RawFd,
        mut offset: u64,
        len: u64,
        stall: Duration,
    ) -> (u64, Waited<io::Result<()>>) {
        if self.tls.is_some() {
            return self.send_file_sealed(file, offset, len, stall).await;
        }
        let mut sent = 0u64;
        while sent < len {
            let want = (len - sent).min(SENDFILE_MAX) as usize;
            match self.driver.sendfile(self.id, file, &mut offset, want) {
                Ok(0) => {
                    let e = io::Error::new(io::ErrorKind::UnexpectedEof, "file shorter than its response");
                    return (sent, Waited::Done(Err(e)));
                }
                Ok(n) => {
                    sent += n as u64;
                    if sent < len && n == want {
                        // Room for more: let the worker's other connections
                        // run before the next slice.
                        futures_lite::future::yield_now().await;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => match self.writable(stall).await {
                    Waited::Done(Ok(())) => {}
                    other => return (sent, other),
                },
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return (sent, Waited::Done(Err(e))),
            }
        }
        (sent, Waited::Done(Ok(())))
    }

    /// Awaits `fut` unless the deadline passes or the worker is forced first.
    pub(crate) async fn guard<F: Future>(&mut self, fut: F, deadline: Instant) -> Waited<F::Output> {
        let mut fut = std::pin::pin!(fut);
        self.wait_for(Watch::Forced, deadline, |_, cx| fut.as_mut().poll(cx)).await
    }

    /// `shutdown(2)` one or both directions; errors (already closed) ignored.
    /// (Dropping the `Io` closes the socket; this is for half-closing.)
    pub(crate) fn shutdown(&self, how: std::net::Shutdown) {
        let how = match how {
            std::net::Shutdown::Read => libc::SHUT_RD,
            std::net::Shutdown::Write => libc::SHUT_WR,
            std::net::Shutdown::Both => libc::SHUT_RDWR,
        };
        // SAFETY: the driver closes the descriptor only after release().
        unsafe { libc::shutdown(self.fd, how) };
    }

    /// Closes the way that keeps the last response intact: let it be sent,
    /// send FIN, then read and discard what the client still sends until it
    /// closes too (or `linger` passes, or 64 KiB were discarded). Closing
    /// with unread data makes the kernel send a reset, which can destroy a
    /// response the client has not read yet. `scratch` receives the
    /// discarded bytes. The final close is the drop's.
    ///
    /// With TLS, a `close_notify` goes out before the FIN, and the client's
    /// own `close_notify` ends the wait as its FIN would.
    pub(crate) async fn linger_close(&mut self, linger: Duration, scratch: &mut [u8]) {
        if !matches!(self.sent(linger).await, Waited::Done(Ok(()))) {
            return;
        }
        if !self.send_close_notify(linger).await {
            return;
        }
        self.shutdown(std::net::Shutdown::Write);
        let deadline = Instant::now() + linger;
        let mut discarded = 0usize;
        while discarded < 64 * 1024 {
            match self.read(scratch, deadline, Watch::Forced).await {
                Waited::Done(Ok(n)) if n > 0 => discarded += n,
                _ => break,
            }
        }
    }
}

impl Drop for Io<'_> {
    fn drop(&mut self) {
        if let Some(t) = &mut self.tls {
            t.release(&self.driver.pool);
        }
        self.driver.release(self.id);
        self.deadlines.release(self.deadline);
    }
}

/// `pread(2)` of exactly `buf.len()` bytes at `offset`; a file that ends
/// first is an error (it shrank after the response's length was set).
pub(crate) fn pread_exact(fd: RawFd, buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let rest = &mut buf[done..];
        // SAFETY: `rest` is valid for writes of `rest.len()` bytes.
        let n = unsafe { libc::pread64(fd, rest.as_mut_ptr().cast(), rest.len(), offset as libc::off64_t) };
        match n {
            0 => return Err(std::io::Error::new(ErrorKind::UnexpectedEof, "file shorter than its response")),
            n if n > 0 => {
                done += n as usize;
                offset += n as u64;
            }
            _ => {
                let e = std::io::Error::last_os_error();
                if e.kind() != ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn pread_exact_reads_all_or_says_the_file_is_short() {
        let path = std::env::temp_dir().join(format!("pounce-pread-{}", std::process::id()));
        std::fs::write(&path, b"0123456789").unwrap();
        let f = std::fs::File::open(&path).unwrap();
        let mut buf = [0u8; 4];
        pread_exact(f.as_raw_fd(), &mut buf, 3).unwrap();
        assert_eq!(&buf, b"3456");
        let mut empty = [0u8; 0];
        pread_exact(f.as_raw_fd(), &mut empty, 100).unwrap();
        let e = pread_exact(f.as_raw_fd(), &mut buf, 8).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnexpectedEof);
        let e = pread_exact(-1, &mut buf, 0).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EBADF));
        std::fs::remove_file(&path).unwrap();
    }
}
