//! One worker: a glommio executor pinned to a core, with its own listeners,
//! its own connections and its own connection counter.
//!
//! The accept loop runs until the worker is draining (or forced) and its last
//! connection is gone. What draining does to the listeners is the
//! coordinator's call ([`ListenerAction`]):
//! - `Respond503` keeps accepting, but only to answer each new connection
//!   `503` + `Retry-After: 1` once its request head is in: closing the
//!   listener early would turn connections already queued in the kernel into
//!   resets. When the worker stops, it answers what is left in the accept
//!   queue the same way and shuts the listener down.
//! - `Refuse` does that last step at once: the queue gets its 503s, and every
//!   later connect is refused (load balancers retry those elsewhere).
//! - `Release` stops accepting and leaves the sockets alone: another process
//!   (a hot upgrade's successor, or systemd) holds them and takes what is
//!   queued. Connections this worker had already accepted are served.
//!
//! Either way the worker then reports `Stopped`.

use super::connection::{Conn, LINGER, encode_error};
use super::io::{Io, Waited, Watch};
use super::listener::WorkerListener;
use super::uring::{Driver, SendBuf};
use super::{WorkerBase, WorkerCtx, health};
use crate::handler::Handler;
use crate::http::date;
use crate::http::request::{RequestHead, parse_head};
use crate::shutdown::drain::{ConnGuard, WorkerDrain};
use crate::shutdown::{Command, Event, ListenerAction, Phase};
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

/// The longest a listener being closed keeps taking connections whose
/// handshake was already under way (new SYNs are dropped meanwhile, see
/// [`drop_new_syns`]; it stops as soon as none is left): at the start of a
/// `refuse` drain, with traffic still arriving, and at the end of a `503`
/// drain, when little should be left.
const REFUSE_SETTLE: Duration = Duration::from_millis(100);
const CLOSE_SETTLE: Duration = Duration::from_millis(50);

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
    /// This worker's own descriptors of the sockets it accepts on.
    pub listeners: Vec<WorkerListener>,
    pub commands: SharedReceiver<Command>,
    pub events: SharedSender<Event>,
}

/// The worker's main future: returns when it has stopped.
pub(crate) async fn run<H: Handler>(init: WorkerInit<H>, driver: Driver) {
    let WorkerInit { go, base, listeners, commands, events } = init;
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
    let c = ctx.clone();
    glommio::spawn_local(async move { c.deadlines.sweep().await }).detach();
    let d = drain.clone();
    let shared = ctx.shared.clone();
    glommio::spawn_local(async move {
        while let Some(cmd) = commands.recv().await {
            match cmd {
                Command::Drain(action) => match d.begin_drain(action) {
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

    let fds: Vec<RawFd> = listeners.iter().map(|l| l.socket.as_raw_fd()).collect();
    ctx.driver.listen(&fds);
    let _ = events.try_send(Event::Ready);
    let rejecting = Rc::new(Cell::new(0usize));
    accept_loop(&ctx, &drain, &rejecting, &listeners).await;
    let forced = drain.phase() == Phase::Forced;
    if drain.listener_action() == ListenerAction::Respond503 {
        close_listeners(&listeners, &ctx, &drain, &rejecting, CLOSE_SETTLE).await;
        finish_accepts(&ctx, &drain, &rejecting).await;
    }
    // Our own descriptors only: a socket another process holds stays open.
    drop(listeners);
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
    listeners: &[WorkerListener],
) {
    // Accepting has stopped and no accept is in flight any more.
    let mut accept_done = false;
    let mut stopped = false;
    let mut failed_accepts = 0u64;
    let mut last_warned: Option<Instant> = None;
    loop {
        let phase = drain.phase();
        // Draining ends when the last connection is gone, and, once the
        // accepts were cancelled, when the last one of those has reported
        // (it may still deliver a connection, which must be answered).
        let mut ends_when_idle = false;
        if phase >= Phase::Draining {
            let action = drain.listener_action();
            if !stopped && action != ListenerAction::Respond503 {
                stopped = true;
                stop_listening(listeners, action, ctx, drain, rejecting).await;
            }
            ends_when_idle = accept_done || action == ListenerAction::Respond503 || phase == Phase::Forced;
            if ends_when_idle && drain.active() == 0 {
                return;
            }
        }
        let accept = async {
            if accept_done {
                future::pending::<()>().await;
            }
            Some(poll_fn(|cx| ctx.driver.poll_accept(cx)).await)
        };
        let stop = async {
            poll_fn(|cx| {
                if ends_when_idle {
                    drain.poll_stopped(cx)
                } else {
                    drain.poll_phase_past(phase, cx).map(|_| ())
                }
            })
            .await;
            None
        };
        match future::or(stop, accept).await {
            None => {}
            Some(None) => accept_done = true,
            Some(Some(Ok(fd))) => dispatch(fd, ctx, drain, rejecting),
            Some(Some(Err(e))) => {
                // EMFILE/ENFILE/ENOBUFS: back off briefly rather than spin,
                // and say so once a second, not a hundred times.
                failed_accepts += 1;
                if last_warned.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                    log::warn!(
                        "Worker {}: accept failed: {e} ({failed_accepts} time(s) in the last second)",
                        ctx.id
                    );
                    last_warned = Some(Instant::now());
                    failed_accepts = 0;
                }
                Timer::new(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Draining with `Refuse` or `Release`: stop accepting now.
async fn stop_listening<H: Handler>(
    listeners: &[WorkerListener],
    action: ListenerAction,
    ctx: &Rc<WorkerCtx<H>>,
    drain: &Rc<WorkerDrain>,
    rejecting: &Rc<Cell<usize>>,
) {
    ctx.driver.stop_accepting();
    if action == ListenerAction::Refuse {
        close_listeners(listeners, ctx, drain, rejecting, REFUSE_SETTLE).await;
    }
    // Release: what the ring already accepted comes out of poll_accept and
    // is served; the kernel's queue is left to the other holder.
}

/// Hands a new connection (socket `fd`, now ours) to the connection loop,
/// or refuses it.
fn dispatch<H: Handler>(
    fd: RawFd,
    ctx: &Rc<WorkerCtx<H>>,
    drain: &Rc<WorkerDrain>,
    rejecting: &Rc<Cell<usize>>,
) {
    ctx.meter().accepted();
    match drain.phase() {
        Phase::Forced => {
            // SAFETY: a descriptor accept just gave us.
            unsafe { libc::close(fd) };
            return;
        }
        // Released listeners: this connection was accepted before the
        // successor (or the next instance) took over; serve it.
        Phase::Draining if drain.listener_action() == ListenerAction::Release => {}
        Phase::Draining => {
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
    let guard = drain.register(fd);
    glommio::spawn_local(serve(ctx.clone(), fd, guard)).detach();
}

async fn serve<H: Handler>(ctx: Rc<WorkerCtx<H>>, fd: RawFd, guard: ConnGuard) {
    // The arguments stay in this future for the connection's whole life
    // (part of every idle connection's memory, bench/NOTES.md §16, §20), so
    // they are few: the peer address is looked up here and stored once, in
    // the `Conn`, as are the socket and the accept time.
    let mut conn = {
        let accepted = Instant::now();
        let io = Io::new(
            &ctx.driver,
            &ctx.deadlines,
            fd,
            guard.drain().clone(),
            guard.key(),
            ctx.config.tls_server(),
        );
        Conn::new(&ctx, io, peer_of(fd), accepted)
    };
    // The handshake counts against header_timeout, as the request head
    // behind it does: both must be in by accepted + header_timeout. Boxed:
    // its state is large and only TLS connections have one.
    let ready = !conn.io().is_tls() || Box::pin(handshake(&ctx, &mut conn)).await;
    if ready {
        conn.run().await;
    }
    // Unregister before the socket is released (see ConnGuard).
    drop(guard);
    drop(conn);
    ctx.shared.connections.fetch_sub(1, Ordering::AcqRel);
}

/// A new connection's TLS handshake, due by accepted + header_timeout.
async fn handshake<H: Handler>(ctx: &WorkerCtx<H>, conn: &mut Conn<'_, H>) -> bool {
    let (peer, deadline) = (conn.peer(), conn.first_head_deadline());
    tls_handshake(ctx, conn.io(), peer, deadline, Some(ctx.config.drain_idle_grace())).await
}

/// With TLS, the handshake (see [`Io::handshake`]), counted per worker and,
/// when it fails, logged at debug level with the reason. True to go on.
async fn tls_handshake<H: Handler>(
    ctx: &WorkerCtx<H>,
    io: &mut Io<'_>,
    peer: SocketAddr,
    deadline: Instant,
    idle_grace: Option<Duration>,
) -> bool {
    if !io.is_tls() {
        return true;
    }
    let stats = ctx.shared.stats(ctx.id);
    match io.handshake(deadline, idle_grace).await {
        Ok(()) => {
            stats.tls_handshakes.fetch_add(1, Ordering::Relaxed);
            true
        }
        Err(e) => {
            stats.tls_failures[e.reason.index()].fetch_add(1, Ordering::Relaxed);
            log::debug!("{peer}: TLS handshake failed: {} ({}); connection closed", e.reason, e.detail);
            false
        }
    }
}

/// The peer's address, for log lines.
fn peer_of(fd: RawFd) -> SocketAddr {
    // SAFETY: fd is a connected socket we own; borrowed for one call.
    let sock = unsafe { BorrowedFd::borrow_raw(fd) };
    SockRef::from(&sock)
        .peer_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
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
        let since = Instant::now();
        // Not registered: refusals are bounded by their own deadlines.
        let mut io = Io::new(&ctx.driver, &ctx.deadlines, fd, drain, usize::MAX, ctx.config.tls_server());
        // With TLS, the 503 comes after the handshake, like any response.
        let deadline = Instant::now() + REJECT_HEAD_WAIT;
        if !tls_handshake(&ctx, &mut io, peer_of(fd), deadline, None).await {
            drop(io);
            rejecting.set(rejecting.get() - 1);
            return;
        }
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
            // Counted once the 503 is certain: a connection that sends
            // nothing is closed without one.
            ctx.meter().response(503, since.elapsed());
            if let Refusal::Draining = why {
                ctx.shared.stats(ctx.id).rejected.fetch_add(1, Ordering::Relaxed);
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

/// Stops accepting and shuts the listeners down, so that later connects are
/// refused, without resetting any connection: closing a listening socket
/// resets every connection in its queue, and every one whose handshake is
/// under way. So first new SYNs are dropped (the client retransmits in a
/// second, and is refused then), then every connection already accepted,
/// queued or completing its handshake is taken and answered `503` (by
/// [`dispatch`]) until no handshake is pending (at most `settle`), and only
/// then is the socket shut down. Only for
/// sockets no other process serves (never with `Release`): shutdown(2) acts on
/// the socket itself, not on this process's descriptor.
async fn close_listeners<H: Handler>(
    listeners: &[WorkerListener],
    ctx: &Rc<WorkerCtx<H>>,
    drain: &Rc<WorkerDrain>,
    rejecting: &Rc<Cell<usize>>,
    settle: Duration,
) {
    ctx.driver.stop_accepting();
    for conn in ctx.driver.take_accepted() {
        dispatch(conn, ctx, drain, rejecting);
    }
    // Sockets other workers still accept on are theirs to close.
    let mine: Vec<RawFd> = listeners.iter().filter(|l| l.leave()).map(|l| l.socket.as_raw_fd()).collect();
    if drain.phase() != Phase::Forced {
        for &fd in &mine {
            set_nonblocking(fd);
            if let Err(e) = drop_new_syns(fd) {
                log::debug!("Worker {}: cannot filter new connections while closing: {e}", ctx.id);
            }
        }
        let ports: Vec<u16> = listeners
            .iter()
            .filter(|l| mine.contains(&l.socket.as_raw_fd()))
            .filter_map(|l| super::listener::local_addr(&l.socket).ok().map(|a| a.port()))
            .collect();
        let until = Instant::now() + settle;
        while !mine.is_empty() {
            for &fd in &mine {
                while let Some(conn) = accept_pending(fd) {
                    dispatch(conn, ctx, drain, rejecting);
                }
            }
            // Done once no handshake is left to complete: every SYN dropped
            // meanwhile costs its client a second, so wait no longer.
            if !ports.iter().any(|&p| super::listener::handshakes_pending(p))
                || Instant::now() >= until
                || drain.phase() == Phase::Forced
            {
                break;
            }
            Timer::new(Duration::from_millis(2)).await;
        }
    }
    for &fd in &mine {
        // SAFETY: the listener's descriptor, still open. shutdown(2) on a
        // listening socket stops it listening and fails any accept still
        // pending in io_uring.
        unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
    }
}

/// Attaches a socket filter to a listening socket that drops new
/// connection requests (segments with SYN and without ACK) and lets the rest
/// through: the last ACK of a handshake already under way still completes
/// it. The filter runs on the TCP header (offset 13: the flags).
fn drop_new_syns(fd: RawFd) -> std::io::Result<()> {
    const SYN: u32 = 0x02;
    const ACK: u32 = 0x10;
    let code = [
        // A = the TCP flags byte
        libc::sock_filter { code: (libc::BPF_LD | libc::BPF_B | libc::BPF_ABS) as u16, jt: 0, jf: 0, k: 13 },
        libc::sock_filter {
            code: (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16,
            jt: 0,
            jf: 0,
            k: SYN | ACK,
        },
        // SYN without ACK: drop (return 0 bytes); anything else: keep all
        libc::sock_filter {
            code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
            jt: 1,
            jf: 0,
            k: SYN,
        },
        libc::sock_filter { code: (libc::BPF_RET | libc::BPF_K) as u16, jt: 0, jf: 0, k: u32::MAX },
        libc::sock_filter { code: (libc::BPF_RET | libc::BPF_K) as u16, jt: 0, jf: 0, k: 0 },
    ];
    let prog = libc::sock_fprog { len: code.len() as u16, filter: code.as_ptr() as *mut libc::sock_filter };
    // SAFETY: setsockopt(2) copies the program; `code` outlives the call.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&prog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if r == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

/// After [`close_listeners`]: answers (503) what cancelled accepts still
/// deliver, until none is in flight (bounded: the cancels complete at once).
async fn finish_accepts<H: Handler>(
    ctx: &Rc<WorkerCtx<H>>,
    drain: &Rc<WorkerDrain>,
    rejecting: &Rc<Cell<usize>>,
) {
    let until = Instant::now() + Duration::from_millis(500);
    loop {
        let next = async { poll_fn(|cx| ctx.driver.poll_accept(cx)).await };
        let timeout = async {
            Timer::new(until.saturating_duration_since(Instant::now())).await;
            None
        };
        match future::or(next, timeout).await {
            Some(Ok(fd)) => dispatch(fd, ctx, drain, rejecting),
            Some(Err(_)) => {}
            None => return,
        }
    }
}

/// A listening socket's accept(2) must not block the worker once the ring is
/// no longer the only one taking connections off it.
fn set_nonblocking(fd: RawFd) {
    // SAFETY: fcntl on our listener's descriptor.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
    }
}

/// A connection from the accept queue, without blocking.
fn accept_pending(fd: RawFd) -> Option<RawFd> {
    // SAFETY: accept4(2) on our own (non-blocking) listening fd.
    let c =
        unsafe { libc::accept4(fd, std::ptr::null_mut(), std::ptr::null_mut(), super::uring::ACCEPT_FLAGS) };
    (c >= 0).then_some(c)
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
