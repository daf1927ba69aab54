//! A connection's socket plus the two things every wait on it must also watch:
//! a deadline and the worker's shutdown phase.
//!
//! Each wait is one `poll_fn` that polls the socket first (glommio tries a
//! non-blocking syscall before falling back to io_uring readiness, so a ready
//! socket costs no timer at all), then the phase registry, then the
//! connection's single reusable [`Timer`], armed only when the socket is not
//! ready. One timer per connection, reset rather than re-created, keeps the
//! keep-alive path free of allocations.

use crate::shutdown::Phase;
use crate::shutdown::drain::WorkerDrain;
use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use glommio::timer::Timer;
use std::future::{Future, poll_fn};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

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

pub(crate) struct Io {
    stream: TcpStream,
    fd: RawFd,
    timer: Timer,
    drain: Rc<WorkerDrain>,
    key: usize,
}

impl Io {
    pub(crate) fn new(stream: TcpStream, drain: Rc<WorkerDrain>, key: usize) -> Io {
        let fd = stream.as_raw_fd();
        Io { stream, fd, timer: Timer::new(Duration::from_secs(3600)), drain, key }
    }

    pub(crate) fn drain(&self) -> &Rc<WorkerDrain> {
        &self.drain
    }

    /// One non-blocking attempt to read (glommio tries `recv` first, then
    /// arms readiness). The buffer is only used during this call, which is
    /// what lets an idle connection lend it back to the pool while pending.
    pub(crate) fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }

    /// Polls `watch` and the deadline; `Some` if either fired. Arms the timer
    /// on first use within a wait.
    pub(crate) fn poll_guards<T>(
        &mut self,
        cx: &mut Context<'_>,
        watch: Watch,
        deadline: Instant,
        armed: &mut bool,
    ) -> Option<Waited<T>> {
        match watch {
            Watch::Change(seen) => {
                if let Poll::Ready(p) = self.drain.poll_change(self.key, seen, cx) {
                    return Some(Waited::Phase(p));
                }
            }
            Watch::Forced => {
                if self.drain.poll_forced(self.key, cx) {
                    return Some(Waited::Phase(Phase::Forced));
                }
            }
        }
        if !*armed {
            self.timer.reset(deadline.saturating_duration_since(Instant::now()));
            *armed = true;
        }
        if Pin::new(&mut self.timer).poll(cx).is_ready() {
            return Some(Waited::Timeout);
        }
        None
    }

    /// Reads into `buf` (Ok(0) is EOF).
    pub(crate) async fn read(
        &mut self,
        buf: &mut [u8],
        deadline: Instant,
        watch: Watch,
    ) -> Waited<io::Result<usize>> {
        let mut armed = false;
        poll_fn(|cx| {
            if let Poll::Ready(r) = Pin::new(&mut self.stream).poll_read(cx, buf) {
                return Poll::Ready(Waited::Done(r));
            }
            match self.poll_guards(cx, watch, deadline, &mut armed) {
                Some(w) => Poll::Ready(w),
                None => Poll::Pending,
            }
        })
        .await
    }

    /// Writes all of `data`. Each write must make progress within `stall`, so
    /// a client that stops reading cannot hold the connection forever.
    pub(crate) async fn write_all(&mut self, mut data: &[u8], stall: Duration) -> Waited<io::Result<()>> {
        while !data.is_empty() {
            let deadline = Instant::now() + stall;
            let mut armed = false;
            let r = poll_fn(|cx| {
                if let Poll::Ready(r) = Pin::new(&mut self.stream).poll_write(cx, data) {
                    return Poll::Ready(Waited::Done(r));
                }
                match self.poll_guards(cx, Watch::Forced, deadline, &mut armed) {
                    Some(w) => Poll::Ready(w),
                    None => Poll::Pending,
                }
            })
            .await;
            match r {
                Waited::Done(Ok(0)) => {
                    return Waited::Done(Err(io::Error::new(io::ErrorKind::WriteZero, "peer closed")));
                }
                Waited::Done(Ok(n)) => data = &data[n..],
                Waited::Done(Err(e)) => return Waited::Done(Err(e)),
                Waited::Timeout => return Waited::Timeout,
                Waited::Phase(p) => return Waited::Phase(p),
            }
        }
        Waited::Done(Ok(()))
    }

    /// Awaits `fut` unless the deadline passes or the worker is forced first.
    pub(crate) async fn guard<F: Future>(&mut self, fut: F, deadline: Instant) -> Waited<F::Output> {
        let mut fut = std::pin::pin!(fut);
        let mut armed = false;
        poll_fn(|cx| {
            if let Poll::Ready(v) = fut.as_mut().poll(cx) {
                return Poll::Ready(Waited::Done(v));
            }
            match self.poll_guards(cx, Watch::Forced, deadline, &mut armed) {
                Some(w) => Poll::Ready(w),
                None => Poll::Pending,
            }
        })
        .await
    }

    /// `shutdown(2)` one or both directions; errors (already closed) ignored.
    pub(crate) fn shutdown(&self, how: std::net::Shutdown) {
        let how = match how {
            std::net::Shutdown::Read => libc::SHUT_RD,
            std::net::Shutdown::Write => libc::SHUT_WR,
            std::net::Shutdown::Both => libc::SHUT_RDWR,
        };
        // SAFETY: fd is owned by `self.stream`, still open.
        unsafe { libc::shutdown(self.fd, how) };
    }

    /// Closes the way that keeps the last response intact: send FIN, then
    /// read and discard what the client still sends until it closes too (or
    /// `linger` passes, or 64 KiB were discarded). Closing with unread data
    /// makes the kernel send a reset, which can destroy a response the client
    /// has not read yet. `scratch` receives the discarded bytes.
    pub(crate) async fn linger_close(&mut self, linger: Duration, scratch: &mut [u8]) {
        self.shutdown(std::net::Shutdown::Write);
        let deadline = Instant::now() + linger;
        let mut discarded = 0usize;
        while discarded < 64 * 1024 {
            match self.read(scratch, deadline, Watch::Forced).await {
                Waited::Done(Ok(n)) if n > 0 => discarded += n,
                _ => break,
            }
        }
        self.shutdown(std::net::Shutdown::Both);
    }
}
