//! One worker: a glommio executor pinned to a core, with its own listener,
//! its own connections and its own connection counter.
//!
//! The accept loop runs until the worker is draining (or forced) and its last
//! connection is gone. While draining it keeps accepting, but only to answer
//! each new connection `503` + `Retry-After: 1` once its request head is in —
//! closing the listener early would turn connections already queued in the
//! kernel into resets. When it stops, it answers what is left in the accept
//! queue the same way, shuts the listener down, and reports `Stopped`.

use super::connection::{Conn, LINGER, encode_error};
use super::io::{Io, Waited, Watch};
use super::{WorkerCtx, health};
use crate::handler::Handler;
use crate::http::date;
use crate::shutdown::drain::{ConnGuard, WorkerDrain};
use crate::shutdown::{Command, Event, Phase};
use futures_lite::future;
use glommio::channels::shared_channel::{SharedReceiver, SharedSender};
use glommio::net::{TcpListener, TcpStream};
use glommio::timer::Timer;
use std::cell::Cell;
use std::future::poll_fn;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Connections being refused (503) at once, per worker; beyond this a refused
/// connection is simply closed.
const MAX_REJECTING: usize = 1024;
/// Longest wait for the head of a connection that will be refused.
const REJECT_HEAD_WAIT: Duration = Duration::from_secs(1);

/// Everything a worker thread needs; moved into its executor.
pub(crate) struct WorkerInit<H> {
    /// Opens once the coordinator has registered its channel ends.
    pub go: Arc<Barrier>,
    pub ctx: WorkerCtx<H>,
    pub listener: socket2::Socket,
    pub commands: SharedReceiver<Command>,
    pub events: SharedSender<Event>,
}

/// The worker's main future: returns when it has stopped.
pub(crate) async fn run<H: Handler>(init: WorkerInit<H>) {
    let WorkerInit { go, ctx, listener, commands, events } = init;
    go.wait();
    let id = ctx.id;
    // Connecting is a rendezvous with the coordinator: do both at once.
    let (events, commands) = future::zip(events.connect(), commands.connect()).await;
    // glommio's TcpListener does not expose its fd; keep it for shutdown(2).
    let listener_fd = listener.as_raw_fd();
    // SAFETY: the fd is a bound, listening TCP socket we own.
    let listener = unsafe { TcpListener::from_raw_fd(listener.into_raw_fd()) };
    let drain = WorkerDrain::new(id, ctx.shared.clone());
    let ctx = Rc::new(ctx);

    glommio::spawn_local(tick_date()).detach();
    let d = drain.clone();
    let shared = ctx.shared.clone();
    glommio::spawn_local(async move {
        while let Some(cmd) = commands.recv().await {
            match cmd {
                Command::Drain => match d.begin_drain() {
                    0 => log::info!("Worker {id} shutting down (no active connections)"),
                    n => log::info!("Worker {id} draining {n} active connection(s)..."),
                },
                Command::Force => {
                    let n = d.force();
                    shared.stats(id).forced.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
        }
    })
    .detach();

    let _ = events.try_send(Event::Ready);
    let rejecting = Rc::new(Cell::new(0usize));
    accept_loop(&listener, &ctx, &drain, &rejecting).await;
    let forced = drain.phase() == Phase::Forced;
    close_listener(listener_fd, &ctx, &drain, &rejecting);
    drop(listener);
    // Let the last refusals finish their lingering close (each is bounded).
    let until = Instant::now() + REJECT_HEAD_WAIT + LINGER;
    while rejecting.get() > 0 && !forced && Instant::now() < until {
        Timer::new(Duration::from_millis(20)).await;
    }
    log::info!("Worker {id} stopped");
    let _ = events.send(Event::Stopped { forced }).await;
}

async fn accept_loop<H: Handler>(
    listener: &TcpListener,
    ctx: &Rc<WorkerCtx<H>>,
    drain: &Rc<WorkerDrain>,
    rejecting: &Rc<Cell<usize>>,
) {
    loop {
        let phase = drain.phase();
        if phase >= Phase::Draining && drain.active() == 0 {
            return;
        }
        let accept = async { Some(listener.accept().await) };
        let stop = async {
            poll_fn(|cx| {
                if phase < Phase::Draining {
                    drain.poll_phase_past(phase, cx).map(|_| ())
                } else {
                    drain.poll_stopped(cx)
                }
            })
            .await;
            None
        };
        match future::or(stop, accept).await {
            None => {}
            Some(Ok(stream)) => dispatch(stream, ctx, drain, rejecting),
            Some(Err(e)) => {
                // EMFILE/ENFILE/ENOBUFS: back off briefly rather than spin.
                log::warn!("Worker {}: accept failed: {e}", ctx.id);
                Timer::new(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Hands a new connection to the connection loop, or refuses it.
fn dispatch<H: Handler>(
    stream: TcpStream,
    ctx: &Rc<WorkerCtx<H>>,
    drain: &Rc<WorkerDrain>,
    rejecting: &Rc<Cell<usize>>,
) {
    match drain.phase() {
        Phase::Forced => {
            // SAFETY: the fd is owned by `stream`, which closes it right after.
            unsafe { libc::shutdown(stream.as_raw_fd(), libc::SHUT_RDWR) };
            return;
        }
        Phase::Draining => {
            ctx.shared.stats(ctx.id).rejected.fetch_add(1, Ordering::Relaxed);
            refuse(stream, ctx, drain, rejecting, Refusal::Draining);
            return;
        }
        // A worker's own phase goes Running → Draining; lame duck is global.
        Phase::Running | Phase::LameDuck => {}
    }
    let open = ctx.shared.connections.fetch_add(1, Ordering::AcqRel);
    if open >= ctx.config.max_connections {
        ctx.shared.connections.fetch_sub(1, Ordering::AcqRel);
        log::debug!("max_connections ({}) reached; 503", ctx.config.max_connections);
        refuse(stream, ctx, drain, rejecting, Refusal::Overloaded);
        return;
    }
    let peer = stream.peer_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let guard = drain.register(stream.as_raw_fd());
    glommio::spawn_local(serve(ctx.clone(), stream, peer, guard)).detach();
}

async fn serve<H: Handler>(ctx: Rc<WorkerCtx<H>>, stream: TcpStream, peer: SocketAddr, guard: ConnGuard) {
    let _ = stream.set_nodelay(true);
    let io = Io::new(stream, guard.drain().clone(), guard.key());
    let mut conn = Conn::new(&ctx, io, peer);
    conn.run().await;
    // Unregister before the socket is closed (see ConnGuard).
    drop(guard);
    drop(conn);
    ctx.shared.connections.fetch_sub(1, Ordering::AcqRel);
}

#[derive(Clone, Copy)]
enum Refusal {
    /// New connection while draining: 503 after its head, Retry-After: 1.
    Draining,
    /// Over max_connections: 503 at once, Retry-After: 5.
    Overloaded,
}

fn refuse<H: Handler>(
    stream: TcpStream,
    ctx: &Rc<WorkerCtx<H>>,
    drain: &Rc<WorkerDrain>,
    rejecting: &Rc<Cell<usize>>,
    why: Refusal,
) {
    if rejecting.get() >= MAX_REJECTING {
        // SAFETY: the fd is owned by `stream`, which closes it right after.
        unsafe { libc::shutdown(stream.as_raw_fd(), libc::SHUT_RDWR) };
        return;
    }
    rejecting.set(rejecting.get() + 1);
    let rejecting = rejecting.clone();
    let ctx = ctx.clone();
    // Not registered: refusals are bounded by their own deadlines.
    let mut io = Io::new(stream, drain.clone(), usize::MAX);
    glommio::spawn_local(async move {
        let (retry_after, wait_for_head) = match why {
            Refusal::Draining => ("1", true),
            Refusal::Overloaded => ("5", false),
        };
        let mut got_bytes = !wait_for_head;
        let mut request_line = Vec::new();
        let mut buf = [0u8; 4096];
        if wait_for_head {
            let deadline = Instant::now() + REJECT_HEAD_WAIT;
            let mut seen = 0usize;
            let mut tail = [0u8; 4];
            loop {
                match io.read(&mut buf[seen.min(2048)..], deadline, Watch::Forced).await {
                    Waited::Done(Ok(n)) if n > 0 => {
                        got_bytes = true;
                        let at = seen.min(2048);
                        seen += n;
                        if seen <= 2048 {
                            request_line.extend_from_slice(&buf[at..at + n]);
                        }
                        if ends_head(&mut tail, &buf[at..at + n]) || seen > 64 * 1024 {
                            break;
                        }
                    }
                    _ => break,
                }
            }
        }
        if got_bytes {
            let mut out = Vec::with_capacity(256);
            match &ctx.config.health_check_path {
                // A readiness probe on a fresh connection still gets the
                // health JSON ("draining"), not a bare 503.
                Some(path) if is_health_probe(&request_line, path) => {
                    health::encode_draining(&mut out, ctx.id, io.drain().active(), &ctx.shared);
                }
                _ => encode_error(&mut out, 503, &[("Retry-After", retry_after)]),
            }
            if let Waited::Done(Ok(())) = io.write_all(&out, LINGER).await {
                io.linger_close(LINGER, &mut buf).await;
            }
        }
        io.shutdown(Shutdown::Both);
        drop(io);
        rejecting.set(rejecting.get() - 1);
    })
    .detach();
}

/// `GET /health HTTP/1.1` or `HEAD /health?x HTTP/1.1` for `path` = /health.
fn is_health_probe(head: &[u8], path: &str) -> bool {
    let line = head.split(|&b| b == b'\r' || b == b'\n').next().unwrap_or(b"");
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else { return false };
    let target_path = target.split(|&b| b == b'?').next().unwrap_or(b"");
    (method == b"GET" || method == b"HEAD") && target_path == path.as_bytes()
}

/// Tracks the last four bytes across reads; true once `\r\n\r\n` is seen.
fn ends_head(tail: &mut [u8; 4], data: &[u8]) -> bool {
    for &b in data {
        tail.rotate_left(1);
        tail[3] = b;
        if tail == b"\r\n\r\n" {
            return true;
        }
    }
    false
}

/// Answers the connections still queued in the kernel (503), then shuts the
/// listener down so nothing more is queued.
fn close_listener<H: Handler>(
    fd: RawFd,
    ctx: &Rc<WorkerCtx<H>>,
    drain: &Rc<WorkerDrain>,
    rejecting: &Rc<Cell<usize>>,
) {
    if drain.phase() != Phase::Forced {
        while let Some(conn) = accept_pending(fd) {
            // SAFETY: accept4 just returned this fd; we own it.
            let stream = unsafe { TcpStream::from_raw_fd(conn) };
            ctx.shared.stats(ctx.id).rejected.fetch_add(1, Ordering::Relaxed);
            refuse(stream, ctx, drain, rejecting, Refusal::Draining);
        }
    }
    // SAFETY: fd is the listener's, still open. shutdown(2) on a listening
    // socket stops it listening and fails any accept still pending in io_uring.
    unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
}

/// A connection from the accept queue, without blocking.
fn accept_pending(fd: RawFd) -> Option<RawFd> {
    let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: plain syscalls on our own listening fd.
    unsafe {
        if libc::poll(&mut pfd, 1, 0) != 1 || pfd.revents & libc::POLLIN == 0 {
            return None;
        }
        let c = libc::accept4(fd, std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_CLOEXEC);
        (c >= 0).then_some(c)
    }
}

/// Refreshes this executor's cached `Date` value at each second boundary.
async fn tick_date() {
    loop {
        date::refresh();
        let into_second = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let wait = Duration::from_nanos(1_000_000_000 - u64::from(into_second)) + Duration::from_millis(1);
        Timer::new(wait).await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn health_probe_lines() {
        assert!(super::is_health_probe(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", "/health"));
        assert!(super::is_health_probe(b"HEAD /health?v=1 HTTP/1.1\r\n", "/health"));
        assert!(!super::is_health_probe(b"POST /health HTTP/1.1\r\n", "/health"));
        assert!(!super::is_health_probe(b"GET /healthz HTTP/1.1\r\n", "/health"));
        assert!(!super::is_health_probe(b"GET", "/health"));
    }

    #[test]
    fn ends_head_across_reads() {
        let mut tail = [0u8; 4];
        assert!(!super::ends_head(&mut tail, b"GET / HTTP/1.1\r\nHost: x\r"));
        assert!(!super::ends_head(&mut tail, b"\n"));
        assert!(super::ends_head(&mut tail, b"\r\nbody"));
    }
}
