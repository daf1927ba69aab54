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
use super::uring::{Driver, SendBuf};
use super::{WorkerBase, WorkerCtx, health};
use crate::handler::Handler;
use crate::http::date;
use crate::http::request::{RequestHead, parse_head};
use crate::shutdown::drain::{ConnGuard, WorkerDrain};
use crate::shutdown::{Command, Event, Phase};
use futures_lite::future;
use glommio::channels::shared_channel::{SharedReceiver, SharedSender};
use glommio::io::BufferedFile;
use glommio::timer::Timer;
use socket2::SockRef;
use std::cell::Cell;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Connections being refused (503) at once, per worker; beyond this a refused
/// connection is simply closed.
const MAX_REJECTING: usize = 1024;
/// Longest wait for the head of a connection that will be refused.
const REJECT_HEAD_WAIT: Duration = Duration::from_secs(1);

/// Everything a worker thread needs; moved into its thread. The parts that
/// cannot cross threads (the I/O driver) are built there.
pub(crate) struct WorkerInit<H> {
    /// Opens once the coordinator has registered its channel ends.
    pub go: Arc<Barrier>,
    pub base: WorkerBase<H>,
    pub listener: socket2::Socket,
    pub commands: SharedReceiver<Command>,
    pub events: SharedSender<Event>,
}

/// The worker's main future: returns when it has stopped.
pub(crate) async fn run<H: Handler>(init: WorkerInit<H>, driver: Driver) {
    let WorkerInit { go, base, listener, commands, events } = init;
    go.wait();
    // Connecting is a rendezvous with the coordinator: do both at once.
    let (events, commands) = future::zip(events.connect(), commands.connect()).await;
    let id = base.id;
    let drain = WorkerDrain::new(id, base.shared.clone());
    let ctx = Rc::new(WorkerCtx::new(base, driver));

    if let Err(e) = spawn_driver_tasks(&ctx) {
        log::error!("Worker {id}: cannot wait for io_uring completions: {e}");
        return;
    }
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

    ctx.driver.listen(listener.as_raw_fd());
    let _ = events.try_send(Event::Ready);
    let rejecting = Rc::new(Cell::new(0usize));
    accept_loop(&ctx, &drain, &rejecting).await;
    let forced = drain.phase() == Phase::Forced;
    close_listener(listener.as_raw_fd(), &ctx, &drain, &rejecting);
    drop(listener);
    // Let the last refusals finish their lingering close (each is bounded).
    let until = Instant::now() + REJECT_HEAD_WAIT + LINGER;
    while rejecting.get() > 0 && !forced && Instant::now() < until {
        Timer::new(Duration::from_millis(20)).await;
    }
    log::info!("Worker {id} stopped");
    let _ = events.send(Event::Stopped { forced }).await;
}

/// The driver's two tasks: one waits on the ring's completion eventfd (an
/// io_uring read in glommio's own ring) and dispatches completions; the
/// other submits queued entries once per round of woken tasks.
fn spawn_driver_tasks<H: Handler>(ctx: &Rc<WorkerCtx<H>>) -> std::io::Result<()> {
    let efd = ctx.driver.eventfd()?;
    let c = ctx.clone();
    glommio::spawn_local(async move {
        // SAFETY: a descriptor we own (a dup of the driver's eventfd).
        let file = unsafe { BufferedFile::from_raw_fd(efd.into_raw_fd()) };
        loop {
            if let Err(e) = file.read_at(0, 8).await {
                log::error!("Worker {}: reading the completion eventfd failed: {e}", c.id);
                Timer::new(Duration::from_millis(1)).await;
            }
            c.driver.process();
        }
    })
    .detach();
    let c = ctx.clone();
    glommio::spawn_local(async move {
        loop {
            poll_fn(|cx| c.driver.poll_kicked(cx)).await;
            c.driver.submit();
        }
    })
    .detach();
    Ok(())
}

async fn accept_loop<H: Handler>(
    ctx: &Rc<WorkerCtx<H>>,
    drain: &Rc<WorkerDrain>,
    rejecting: &Rc<Cell<usize>>,
) {
    loop {
        let phase = drain.phase();
        if phase >= Phase::Draining && drain.active() == 0 {
            return;
        }
        let accept = async { Some(poll_fn(|cx| ctx.driver.poll_accept(cx)).await) };
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
            Some(Ok(fd)) => dispatch(fd, ctx, drain, rejecting),
            Some(Err(e)) => {
                // EMFILE/ENFILE/ENOBUFS: back off briefly rather than spin.
                log::warn!("Worker {}: accept failed: {e}", ctx.id);
                Timer::new(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Hands a new connection (socket `fd`, now ours) to the connection loop,
/// or refuses it.
fn dispatch<H: Handler>(
    fd: RawFd,
    ctx: &Rc<WorkerCtx<H>>,
    drain: &Rc<WorkerDrain>,
    rejecting: &Rc<Cell<usize>>,
) {
    match drain.phase() {
        Phase::Forced => {
            // SAFETY: a descriptor accept just gave us.
            unsafe { libc::close(fd) };
            return;
        }
        Phase::Draining => {
            ctx.shared.stats(ctx.id).rejected.fetch_add(1, Ordering::Relaxed);
            refuse(fd, ctx, drain, rejecting, Refusal::Draining);
            return;
        }
        // A worker's own phase goes Running → Draining; lame duck is global.
        Phase::Running | Phase::LameDuck => {}
    }
    let open = ctx.shared.connections.fetch_add(1, Ordering::AcqRel);
    if open >= ctx.config.max_connections {
        ctx.shared.connections.fetch_sub(1, Ordering::AcqRel);
        log::debug!("max_connections ({}) reached; 503", ctx.config.max_connections);
        refuse(fd, ctx, drain, rejecting, Refusal::Overloaded);
        return;
    }
    // SAFETY: fd is a connected TCP socket we own; borrowed for two calls.
    let sock = unsafe { BorrowedFd::borrow_raw(fd) };
    let sock = SockRef::from(&sock);
    let _ = sock.set_tcp_nodelay(true);
    let peer = sock
        .peer_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    let guard = drain.register(fd);
    glommio::spawn_local(serve(ctx.clone(), fd, peer, guard)).detach();
}

async fn serve<H: Handler>(ctx: Rc<WorkerCtx<H>>, fd: RawFd, peer: SocketAddr, guard: ConnGuard) {
    let io = Io::new(&ctx.driver, fd, guard.drain().clone(), guard.key());
    let mut conn = Conn::new(&ctx, io, peer);
    conn.run().await;
    // Unregister before the socket is released (see ConnGuard).
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
    fd: RawFd,
    ctx: &Rc<WorkerCtx<H>>,
    drain: &Rc<WorkerDrain>,
    rejecting: &Rc<Cell<usize>>,
    why: Refusal,
) {
    if rejecting.get() >= MAX_REJECTING {
        // SAFETY: a descriptor accept just gave us, not yet shared.
        unsafe { libc::close(fd) };
        return;
    }
    rejecting.set(rejecting.get() + 1);
    let rejecting = rejecting.clone();
    let ctx = ctx.clone();
    let drain = drain.clone();
    glommio::spawn_local(async move {
        // Not registered: refusals are bounded by their own deadlines.
        let mut io = Io::new(&ctx.driver, fd, drain, usize::MAX);
        let (retry_after, wait_for_head) = match why {
            Refusal::Draining => ("1", true),
            Refusal::Overloaded => ("5", false),
        };
        // The head is read with the connection loop's own parser; a head
        // larger than the buffer, or malformed, still gets the 503.
        let mut buf = [0u8; 4096];
        let mut seen = 0usize;
        let mut head = RequestHead::default();
        let mut parsed = false;
        if wait_for_head {
            let deadline = Instant::now() + REJECT_HEAD_WAIT;
            while seen < buf.len() {
                match io.read(&mut buf[seen..], deadline, Watch::Forced).await {
                    Waited::Done(Ok(n)) if n > 0 => seen += n,
                    _ => break,
                }
                match parse_head(&buf[..seen], ctx.limits, &mut head) {
                    Ok(false) => {}
                    Ok(true) => {
                        parsed = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
        if seen > 0 || !wait_for_head {
            let mut out = Vec::with_capacity(512);
            let data = &buf[..seen];
            let method = head.method.get(data);
            match &ctx.config.health_check_path {
                // A readiness probe on a fresh connection still gets the
                // health JSON ("draining"), not a bare 503.
                Some(path)
                    if parsed
                        && (method == b"GET" || method == b"HEAD")
                        && head.path.get(data) == path.as_bytes() =>
                {
                    health::encode_draining(&mut out, ctx.id, io.drain().active(), &ctx.shared);
                }
                _ => encode_error(&mut out, 503, &[("Retry-After", retry_after)], true),
            }
            if parsed && method == b"HEAD" {
                // The same head (Content-Length included), no body.
                let head_end = out.windows(4).position(|w| w == b"\r\n\r\n").map_or(out.len(), |i| i + 4);
                out.truncate(head_end);
            }
            if let Waited::Done(Ok(())) = io.write_all(SendBuf::Owned(out), LINGER).await {
                io.linger_close(LINGER, &mut buf).await;
            }
        }
        // Dropping the Io closes the socket.
        drop(io);
        rejecting.set(rejecting.get() - 1);
    })
    .detach();
}

/// Stops accepting, answers the connections already accepted or still
/// queued in the kernel (503), then shuts the listener down so nothing more
/// is queued.
fn close_listener<H: Handler>(
    fd: RawFd,
    ctx: &Rc<WorkerCtx<H>>,
    drain: &Rc<WorkerDrain>,
    rejecting: &Rc<Cell<usize>>,
) {
    let forced = drain.phase() == Phase::Forced;
    let mut pending = ctx.driver.stop_accepting();
    if !forced {
        while let Some(conn) = accept_pending(fd) {
            pending.push(conn);
        }
    }
    for conn in pending {
        if forced {
            // SAFETY: accepted, never shared.
            unsafe { libc::close(conn) };
        } else {
            ctx.shared.stats(ctx.id).rejected.fetch_add(1, Ordering::Relaxed);
            refuse(conn, ctx, drain, rejecting, Refusal::Draining);
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
        let c = libc::accept4(fd, std::ptr::null_mut(), std::ptr::null_mut(), super::uring::ACCEPT_FLAGS);
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
