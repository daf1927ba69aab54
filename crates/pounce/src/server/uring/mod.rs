//! Socket I/O on an io_uring of our own, one per worker.
//!
//! glommio's `TcpStream` is readiness-based: a non-blocking `recv`/`send`
//! syscall per request plus a one-shot poll re-armed in its ring every time a
//! read would block. Measured on the same box against nginx that costs more
//! CPU per request than nginx's epoll loop (bench/NOTES.md). This driver keeps
//! glommio for what it is good at (executors, pinning, timers, channels, file
//! I/O) and drives sockets itself:
//!
//! - one **multishot receive** per connection, into a **provided-buffer ring**
//!   ([`bufring`]): no syscall and no re-arm per request, and no buffer posted
//!   for a connection that is idle;
//! - **sends as submission entries**, handed off without waiting and
//!   submitted together: one `io_uring_enter` carries every response a loop
//!   iteration produced (and the client is woken once per batch, not once per
//!   response);
//! - **multishot accept** on the worker's listener;
//! - a one-shot **`POLLOUT` poll** when a `sendfile(2)` (file bodies, sent
//!   by the connection itself, outside the ring) finds the socket full.
//!
//! Completions signal an eventfd registered with the ring; a glommio task
//! waits on that eventfd (an io_uring read in glommio's own ring), drains the
//! completion queue and wakes the connection tasks concerned. A second task
//! submits queued entries once per round of woken tasks. (glommio 0.9 could
//! park with that task woken but not yet run, stalling the worker until its
//! next timer; the vendored glommio fixes it, see vendor/glommio/PATCHED.md.)
//!
//! The ring uses `COOP_TASKRUN` but not `DEFER_TASKRUN`: the latter works
//! (the eventfd is signalled when deferred work is queued, so the muting
//! below must then also check the ring's TASKRUN flag) but measured no
//! better: 7.01 vs 6.80 µs of CPU per request (bench/NOTES.md §4).
//!
//! Buffer lifetimes: receive buffers belong to the ring and are lent to a
//! connection only until it copies their bytes out; a send takes ownership of
//! its buffer (or a `'static` slice) until its completion arrives, so a
//! connection task can be dropped at any time without the kernel ever reading
//! freed memory. A released connection's operations are cancelled, and its
//! descriptor is closed (sending the FIN) only once none is in flight.

mod bufring;

use super::pool::BufPool;
use bufring::BufRing;
use io_uring::{IoUring, cqueue, opcode, squeue, types};
use std::cell::{Cell, RefCell, RefMut};
use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::task::{Context, Poll, Waker};

/// Submission queue entries.
const SQ_ENTRIES: u32 = 1024;
/// Completion queue entries. A larger burst is not lost: the kernel keeps
/// the overflow until the queue drains.
const CQ_ENTRIES: u32 = 8192;
/// Receive buffers in the provided ring, and their size. The kernel cycles
/// through all of them, so all of them end up resident: 1 MiB per worker. A
/// request head larger than one buffer simply spans several.
const RECV_BUFS: u16 = 512;
const RECV_BUF_SIZE: usize = 2048;
const BGID: u16 = 0;
/// Accepted sockets are non-blocking: the ring's operations do not care
/// (they carry their own don't-wait logic), and `sendfile(2)`, which has no
/// per-call flag, must never block the worker on a full socket.
pub(crate) const ACCEPT_FLAGS: i32 = libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
enum Kind {
    Recv = 1,
    Send = 2,
    Accept = 3,
    Cancel = 4,
    /// Waiting for a socket to take more bytes (before another `sendfile`).
    Writable = 5,
}

fn user_data(kind: Kind, slot: u32, generation: u32) -> u64 {
    (kind as u64) << 56 | (u64::from(generation) & 0xff_ffff) << 32 | u64::from(slot)
}

fn decode(ud: u64) -> (u8, u32, u32) {
    ((ud >> 56) as u8, ((ud >> 32) & 0xff_ffff) as u32, ud as u32)
}

/// A connection registered with the driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConnId {
    slot: u32,
    generation: u32,
}

/// Bytes to send, owned by the driver until the kernel is done with them.
pub(crate) enum SendBuf {
    Owned(Vec<u8>),
    Static(&'static [u8]),
    /// Any other owned buffer (a handler's stream chunk).
    Boxed(Box<dyn AsRef<[u8]>>),
}

impl SendBuf {
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            SendBuf::Owned(v) => v,
            SendBuf::Static(s) => s,
            SendBuf::Boxed(b) => (**b).as_ref(),
        }
    }
}

/// Part of a receive buffer not yet copied out by its connection.
struct Chunk {
    bid: u16,
    len: u32,
    off: u32,
}

/// Received chunks not yet copied out, oldest first. Nearly always none or
/// one, so the first is kept inline: a connection's inbox allocates only
/// when chunks pile up behind it (a large request, a busy task), and gives a
/// large backlog's memory back once it has drained, instead of every
/// connection keeping an allocation for its whole life.
#[derive(Default)]
struct Inbox {
    /// `None` only when the inbox is empty (`more` is then empty too).
    first: Option<Chunk>,
    more: VecDeque<Chunk>,
}

impl Inbox {
    fn is_empty(&self) -> bool {
        self.first.is_none()
    }
    fn push_back(&mut self, c: Chunk) {
        match self.first {
            None => self.first = Some(c),
            Some(_) => self.more.push_back(c),
        }
    }
    fn front_mut(&mut self) -> Option<&mut Chunk> {
        self.first.as_mut()
    }
    fn pop_front(&mut self) {
        self.first = self.more.pop_front();
        if self.more.is_empty() && self.more.capacity() > INBOX_KEEP {
            self.more = VecDeque::new();
        }
    }
    /// Empties the inbox; the buffer ids of what was in it.
    fn take_bids(&mut self) -> Vec<u16> {
        let bids = self.first.take().into_iter().chain(self.more.drain(..)).map(|c| c.bid).collect();
        self.more = VecDeque::new();
        bids
    }
}

/// Overflow capacity an inbox keeps once its backlog has drained.
const INBOX_KEEP: usize = 8;

struct ConnIo {
    fd: RawFd,
    generation: u32,
    inbox: Inbox,
    /// A receive is in flight.
    recv_armed: bool,
    /// Receiving stopped for lack of buffers; re-arm when some return.
    recv_starved: bool,
    eof: bool,
    read_error: Option<i32>,
    /// The connection's task (only ever one), when it waits for received
    /// bytes (`want_read`), a send or writability (`want_write`), or both.
    waker: Option<Waker>,
    want_read: bool,
    want_write: bool,
    /// In flight while `Some`.
    send: Option<SendBuf>,
    send_off: usize,
    send_error: Option<i32>,
    /// A writability poll is in flight.
    polling: bool,
    /// The last writability poll completed and was not consumed yet.
    writable: bool,
    /// The connection's task is gone: close once nothing is in flight.
    released: bool,
}

impl ConnIo {
    /// A connection just registered: its receive is armed at once.
    fn new(fd: RawFd, generation: u32) -> ConnIo {
        ConnIo {
            fd,
            generation,
            inbox: Inbox::default(),
            recv_armed: true,
            recv_starved: false,
            eof: false,
            read_error: None,
            waker: None,
            want_read: false,
            want_write: false,
            send: None,
            send_off: 0,
            send_error: None,
            polling: false,
            writable: false,
            released: false,
        }
    }

    fn idle(&self) -> bool {
        !self.recv_armed && self.send.is_none() && !self.polling
    }

    /// Remembers the task's waker for a read (`read`) or a write wait.
    fn wait(&mut self, cx: &Context<'_>, read: bool) {
        match &self.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => self.waker = Some(cx.waker().clone()),
        }
        if read {
            self.want_read = true;
        } else {
            self.want_write = true;
        }
    }

    /// The waker to wake for a read (`read`) or write event, if the task
    /// waits for one; kept if it also waits for the other kind.
    fn woken(&mut self, read: bool) -> Option<Waker> {
        let (this, other) =
            if read { (self.want_read, self.want_write) } else { (self.want_write, self.want_read) };
        if !this {
            return None;
        }
        if read {
            self.want_read = false;
        } else {
            self.want_write = false;
        }
        if other { self.waker.clone() } else { self.waker.take() }
    }
}

/// One listening socket the worker accepts on.
struct Listening {
    fd: RawFd,
    /// An accept is in flight on it.
    armed: bool,
    /// It was shut down under us (EINVAL): never armed again.
    dead: bool,
}

#[derive(Default)]
struct AcceptState {
    listeners: Vec<Listening>,
    stopped: bool,
    /// An accept has succeeded: multishot accept works on this kernel.
    accepted_any: bool,
    queue: VecDeque<RawFd>,
    error: Option<i32>,
    waker: Option<Waker>,
}

pub(crate) struct Driver {
    // Field order is drop order: the ring goes first, so the kernel has let
    // go of the buffers below before they are freed.
    ring: RefCell<IoUring>,
    bufs: RefCell<BufRing>,
    bufs_returned: Cell<bool>,
    conns: RefCell<Vec<Option<ConnIo>>>,
    free: RefCell<Vec<u32>>,
    next_generation: Cell<u32>,
    accept: RefCell<AcceptState>,
    starved: RefCell<Vec<ConnId>>,
    multishot_recv: Cell<bool>,
    multishot_accept: Cell<bool>,
    kicked: Cell<bool>,
    submit_waker: RefCell<Option<Waker>>,
    cqes: RefCell<Vec<(u64, i32, u32)>>,
    eventfd: OwnedFd,
    /// Connection buffers, shared by the connections and the driver (which
    /// returns send buffers here once the kernel is done with them).
    pub pool: BufPool,
}

impl Driver {
    /// Sets up the ring, the receive buffers and the completion eventfd.
    /// Fails on kernels without provided-buffer rings (Linux < 5.19).
    pub(crate) fn new() -> io::Result<Driver> {
        // COOP_TASKRUN (5.19): completion work for a *running* worker waits
        // for its next kernel entry instead of interrupting it with an IPI
        // per event (IPIs are VM exits in a virtual machine; measured: 35%
        // more requests per second). A sleeping worker is still woken.
        let ring = match IoUring::builder()
            .setup_cqsize(CQ_ENTRIES)
            .setup_clamp()
            .setup_coop_taskrun()
            .build(SQ_ENTRIES)
        {
            Ok(r) => r,
            Err(_) => IoUring::builder().setup_cqsize(CQ_ENTRIES).setup_clamp().build(SQ_ENTRIES)?,
        };
        let bufs = BufRing::new(RECV_BUFS, RECV_BUF_SIZE)?;
        // SAFETY: the ring memory stays valid until the io_uring is dropped
        // (BufRing is dropped after it, see field order).
        unsafe { ring.submitter().register_buf_ring_with_flags(bufs.ring_addr(), bufs.entries(), BGID, 0) }
            .map_err(|e| {
            io::Error::new(e.kind(), format!("registering receive buffers (needs Linux 5.19+): {e}"))
        })?;
        // SAFETY: eventfd(2) returns a new descriptor or -1.
        let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if efd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: just created, owned here.
        let eventfd = unsafe { OwnedFd::from_raw_fd(efd) };
        ring.submitter().register_eventfd(eventfd.as_raw_fd())?;
        Ok(Driver {
            ring: RefCell::new(ring),
            bufs: RefCell::new(bufs),
            bufs_returned: Cell::new(false),
            conns: RefCell::new(Vec::new()),
            free: RefCell::new(Vec::new()),
            next_generation: Cell::new(1),
            accept: RefCell::new(AcceptState::default()),
            starved: RefCell::new(Vec::new()),
            multishot_recv: Cell::new(true),
            multishot_accept: Cell::new(true),
            kicked: Cell::new(false),
            submit_waker: RefCell::new(None),
            cqes: RefCell::new(Vec::with_capacity(1024)),
            eventfd,
            pool: BufPool::default(),
        })
    }

    /// A duplicate of the completion eventfd, for the task that waits on it.
    pub(crate) fn eventfd(&self) -> io::Result<OwnedFd> {
        self.eventfd.try_clone()
    }

    // ---- submission -------------------------------------------------------

    fn push(&self, entry: squeue::Entry) {
        let mut ring = self.ring.borrow_mut();
        // SAFETY (for every entry pushed here): buffers and descriptors it
        // names stay valid until its completion is processed (see module doc).
        while unsafe { ring.submission().push(&entry) }.is_err() {
            if let Err(e) = ring.submit() {
                log::error!("io_uring submit failed: {e}");
                break;
            }
        }
        drop(ring);
        self.kick();
    }

    /// Asks the submitter task to submit soon.
    fn kick(&self) {
        if !self.kicked.replace(true)
            && let Some(w) = self.submit_waker.borrow_mut().take()
        {
            w.wake();
        }
    }

    /// The submitter task's wait: ready when entries were queued.
    pub(crate) fn poll_kicked(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.kicked.replace(false) {
            return Poll::Ready(());
        }
        *self.submit_waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Submits everything queued (one `io_uring_enter`), then handles the
    /// completions already available. Sends usually complete inside the
    /// enter; their completions are handled right here, so the eventfd is
    /// muted meanwhile rather than waking the eventfd task for nothing.
    pub(crate) fn submit(&self) {
        self.ring.borrow_mut().completion().disable_eventfd();
        if let Err(e) = self.ring.borrow().submit()
            && e.kind() != io::ErrorKind::Interrupted
        {
            log::error!("io_uring submit failed: {e}");
        }
        self.process();
        self.ring.borrow_mut().completion().enable_eventfd();
        // Completions that arrived while muted signalled nothing.
        if !self.ring.borrow_mut().completion().is_empty() {
            self.process();
        }
    }

    // ---- completions ------------------------------------------------------

    /// Drains the completion queue and dispatches each completion.
    pub(crate) fn process(&self) {
        let mut cqes = self.cqes.borrow_mut();
        cqes.clear();
        {
            let mut ring = self.ring.borrow_mut();
            cqes.extend(ring.completion().map(|c| (c.user_data(), c.result(), c.flags())));
            // Completions that did not fit the queue wait in the kernel
            // until the ring is entered: enter and drain again.
            while ring.submission().cq_overflow() {
                if ring.submit().is_err() {
                    break;
                }
                let before = cqes.len();
                cqes.extend(ring.completion().map(|c| (c.user_data(), c.result(), c.flags())));
                if cqes.len() == before {
                    break;
                }
            }
        }
        for &(ud, res, flags) in cqes.iter() {
            let (kind, generation, slot) = decode(ud);
            match kind {
                k if k == Kind::Recv as u8 => self.on_recv(slot, generation, res, flags),
                k if k == Kind::Send as u8 => self.on_send(slot, generation, res),
                k if k == Kind::Accept as u8 => self.on_accept(slot, res, flags),
                k if k == Kind::Writable as u8 => self.on_writable(slot, generation, res),
                _ => {}
            }
        }
        drop(cqes);
        self.return_buffers();
    }

    fn on_recv(&self, slot: u32, generation: u32, res: i32, flags: u32) {
        let more = cqueue::more(flags);
        let bid = cqueue::buffer_select(flags);
        let mut conns = self.conns.borrow_mut();
        let Some(Some(c)) = conns.get_mut(slot as usize) else { return self.recycle_opt(bid) };
        if c.generation != generation {
            return self.recycle_opt(bid);
        }
        let mut rearm = false;
        if res > 0 {
            match bid {
                Some(bid) if !c.released => c.inbox.push_back(Chunk { bid, len: res as u32, off: 0 }),
                other => self.recycle_opt(other),
            }
            rearm = !more;
        } else if res == 0 {
            c.eof = true;
        } else {
            match -res {
                libc::ENOBUFS => {
                    log::debug!("receive buffers exhausted; a connection waits for one to come back");
                    c.recv_starved = true;
                    self.starved.borrow_mut().push(ConnId { slot, generation });
                }
                libc::EINVAL if self.multishot_recv.get() => {
                    // Multishot receive needs Linux 6.0: fall back to re-arming.
                    log::debug!("multishot receive unsupported; using one-shot receives");
                    self.multishot_recv.set(false);
                    rearm = true;
                }
                libc::ECANCELED => {}
                e => c.read_error = Some(e),
            }
        }
        if !more {
            c.recv_armed = false;
            if rearm && !c.released && !c.eof && c.read_error.is_none() {
                c.recv_armed = true;
                let fd = c.fd;
                drop(conns);
                self.arm_recv(fd, slot, generation);
                conns = self.conns.borrow_mut();
            }
        }
        let Some(Some(c)) = conns.get_mut(slot as usize) else { return };
        let waker = c.woken(true);
        self.settle(conns, slot, waker);
    }

    fn on_send(&self, slot: u32, generation: u32, res: i32) {
        let mut conns = self.conns.borrow_mut();
        let Some(Some(c)) = conns.get_mut(slot as usize) else { return };
        if c.generation != generation || c.send.is_none() {
            return;
        }
        if res > 0 {
            c.send_off += res as usize;
            let len = c.send.as_ref().map_or(0, |b| b.bytes().len());
            if c.send_off < len && !c.released {
                // Short send: the rest goes out next.
                let (ptr, rest) = {
                    let b = c.send.as_ref().unwrap().bytes();
                    (b[c.send_off..].as_ptr(), (len - c.send_off) as u32)
                };
                let fd = c.fd;
                drop(conns);
                let e = opcode::Send::new(types::Fd(fd), ptr, rest)
                    .flags(libc::MSG_NOSIGNAL)
                    .build()
                    .user_data(user_data(Kind::Send, slot, generation));
                self.push(e);
                return;
            }
        } else {
            c.send_error = Some(if res == 0 { libc::EPIPE } else { -res });
        }
        if let Some(SendBuf::Owned(v)) = c.send.take() {
            self.pool.put_write(v);
        }
        c.send_off = 0;
        let waker = c.woken(false);
        self.settle(conns, slot, waker);
    }

    fn on_writable(&self, slot: u32, generation: u32, res: i32) {
        let mut conns = self.conns.borrow_mut();
        let Some(Some(c)) = conns.get_mut(slot as usize) else { return };
        if c.generation != generation || !c.polling {
            return;
        }
        c.polling = false;
        c.writable = true;
        if res < 0 {
            // The poll itself failed: the wait reports it rather than
            // letting the writer retry forever.
            c.send_error = Some(-res);
        }
        let waker = c.woken(false);
        self.settle(conns, slot, waker);
    }

    /// The end of every connection completion: wake the task waiting for it,
    /// or, if the task is gone and nothing is in flight any more, close.
    fn settle(&self, conns: RefMut<'_, Vec<Option<ConnIo>>>, slot: u32, waker: Option<Waker>) {
        let close = matches!(conns.get(slot as usize), Some(Some(c)) if c.released && c.idle());
        drop(conns);
        if let Some(w) = waker {
            w.wake();
        }
        if close {
            self.close_slot(slot);
        }
    }

    fn on_accept(&self, listener: u32, res: i32, flags: u32) {
        let more = cqueue::more(flags);
        let mut a = self.accept.borrow_mut();
        if res >= 0 {
            // Even once stopped: an accept that completed while its cancel was
            // on its way took a real connection off the kernel's queue, and
            // the worker must answer it rather than drop it.
            a.queue.push_back(res);
        } else {
            match -res {
                libc::ECANCELED => {}
                libc::EINVAL if self.multishot_accept.get() && !a.accepted_any => {
                    log::debug!("multishot accept unsupported; using one-shot accepts");
                    self.multishot_accept.set(false);
                }
                libc::EINVAL => {
                    // The socket stopped listening: shut down by whoever
                    // else holds it. Nothing more will come from it.
                    if let Some(l) = a.listeners.get_mut(listener as usize) {
                        l.dead = true;
                        log::debug!("listening socket fd {} was shut down; no longer accepting on it", l.fd);
                    }
                }
                e => a.error = Some(e),
            }
        }
        if res >= 0 {
            a.accepted_any = true;
        }
        if !more && let Some(l) = a.listeners.get_mut(listener as usize) {
            l.armed = false;
        }
        if let Some(w) = a.waker.take() {
            w.wake();
        }
    }

    fn recycle_opt(&self, bid: Option<u16>) {
        if let Some(bid) = bid {
            self.bufs.borrow_mut().push(bid);
            self.bufs_returned.set(true);
        }
    }

    /// Publishes returned receive buffers and re-arms connections that ran
    /// out of them.
    fn return_buffers(&self) {
        if !self.bufs_returned.replace(false) {
            return;
        }
        self.bufs.borrow().publish();
        let starved: Vec<ConnId> = std::mem::take(&mut *self.starved.borrow_mut());
        for id in starved {
            let fd = {
                let mut conns = self.conns.borrow_mut();
                match conns.get_mut(id.slot as usize) {
                    Some(Some(c)) if c.generation == id.generation && c.recv_starved && !c.recv_armed => {
                        c.recv_starved = false;
                        if c.released || c.eof || c.read_error.is_some() {
                            continue;
                        }
                        c.recv_armed = true;
                        c.fd
                    }
                    _ => continue,
                }
            };
            self.arm_recv(fd, id.slot, id.generation);
        }
    }

    // ---- connections ------------------------------------------------------

    fn arm_recv(&self, fd: RawFd, slot: u32, generation: u32) {
        let ud = user_data(Kind::Recv, slot, generation);
        let e = if self.multishot_recv.get() {
            opcode::RecvMulti::new(types::Fd(fd), BGID).build()
        } else {
            opcode::Recv::new(types::Fd(fd), std::ptr::null_mut(), RECV_BUF_SIZE as u32)
                .buf_group(BGID)
                .build()
                .flags(squeue::Flags::BUFFER_SELECT)
        };
        self.push(e.user_data(ud));
    }

    /// Takes over socket `fd` (closed when its [`ConnId`] is released and
    /// nothing is in flight) and starts receiving on it.
    pub(crate) fn register(&self, fd: RawFd) -> ConnId {
        let generation = self.next_generation.get();
        self.next_generation.set((generation + 1) & 0xff_ffff);
        let c = ConnIo::new(fd, generation);
        let slot = match self.free.borrow_mut().pop() {
            Some(s) => {
                self.conns.borrow_mut()[s as usize] = Some(c);
                s
            }
            None => {
                let mut conns = self.conns.borrow_mut();
                conns.push(Some(c));
                (conns.len() - 1) as u32
            }
        };
        self.arm_recv(fd, slot, generation);
        ConnId { slot, generation }
    }

    /// Copies received bytes into `dst`. Ok(0) is end of stream.
    pub(crate) fn poll_read(
        &self,
        id: ConnId,
        cx: &mut Context<'_>,
        dst: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut conns = self.conns.borrow_mut();
        let Some(Some(c)) = conns.get_mut(id.slot as usize) else {
            return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
        };
        let mut n = 0;
        if !c.inbox.is_empty() {
            let bufs = self.bufs.borrow();
            while n < dst.len() {
                let Some(chunk) = c.inbox.front_mut() else { break };
                let src = &bufs.get(chunk.bid, chunk.len as usize)[chunk.off as usize..];
                let take = src.len().min(dst.len() - n);
                dst[n..n + take].copy_from_slice(&src[..take]);
                n += take;
                chunk.off += take as u32;
                if chunk.off == chunk.len {
                    let bid = chunk.bid;
                    c.inbox.pop_front();
                    drop(bufs);
                    self.recycle_opt(Some(bid));
                    return self.finish_read(conns, id, cx, dst, n);
                }
            }
        }
        if n > 0 {
            return Poll::Ready(Ok(n));
        }
        if let Some(e) = c.read_error {
            return Poll::Ready(Err(io::Error::from_raw_os_error(e)));
        }
        if c.eof {
            return Poll::Ready(Ok(0));
        }
        c.wait(cx, true);
        Poll::Pending
    }

    /// Continues a read after a receive buffer was used up: more chunks may
    /// fit, and returned buffers must reach the kernel.
    fn finish_read(
        &self,
        conns: std::cell::RefMut<'_, Vec<Option<ConnIo>>>,
        id: ConnId,
        cx: &mut Context<'_>,
        dst: &mut [u8],
        n: usize,
    ) -> Poll<io::Result<usize>> {
        drop(conns);
        if n < dst.len()
            && let Poll::Ready(Ok(more)) = self.poll_read(id, cx, &mut dst[n..])
        {
            self.return_buffers();
            return Poll::Ready(Ok(n + more));
        }
        self.return_buffers();
        Poll::Ready(Ok(n))
    }

    /// True while a send on `id` is in flight.
    pub(crate) fn sending(&self, id: ConnId) -> bool {
        matches!(self.conns.borrow().get(id.slot as usize), Some(Some(c)) if c.send.is_some())
    }

    /// Starts sending `buf`. The caller waits for a previous send first.
    pub(crate) fn start_send(&self, id: ConnId, buf: SendBuf) {
        let mut conns = self.conns.borrow_mut();
        let Some(Some(c)) = conns.get_mut(id.slot as usize) else { return };
        debug_assert!(c.send.is_none(), "one send in flight per connection");
        let (ptr, len) = (buf.bytes().as_ptr(), buf.bytes().len() as u32);
        if len == 0 {
            return;
        }
        c.send = Some(buf);
        c.send_off = 0;
        let fd = c.fd;
        drop(conns);
        let e = opcode::Send::new(types::Fd(fd), ptr, len)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(user_data(Kind::Send, id.slot, id.generation));
        self.push(e);
    }

    /// Ready once no send is in flight: Ok, or the error the last one hit.
    pub(crate) fn poll_sent(&self, id: ConnId, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut conns = self.conns.borrow_mut();
        let Some(Some(c)) = conns.get_mut(id.slot as usize) else {
            return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
        };
        if c.send.is_some() {
            c.wait(cx, false);
            return Poll::Pending;
        }
        match c.send_error.take() {
            Some(e) => Poll::Ready(Err(io::Error::from_raw_os_error(e))),
            None => Poll::Ready(Ok(())),
        }
    }

    // ---- writing outside the ring (head + sendfile) -----------------------

    /// `send(2)` right now, without waiting, corked (`MSG_MORE`) to the bytes
    /// that follow: for the head before a `sendfile`, which must not
    /// overtake it. Only while no ring send is in flight on `id`.
    pub(crate) fn send_now(&self, id: ConnId, buf: &[u8]) -> io::Result<usize> {
        let fd = self.live_fd(id)?;
        debug_assert!(!self.sending(id), "a ring send would be overtaken");
        let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL | libc::MSG_MORE;
        // SAFETY: `buf` is valid for `buf.len()` bytes; the descriptor is open.
        let n = unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), flags) };
        if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
    }

    /// `sendfile(2)` of up to `count` bytes of `file` from `*offset` (which
    /// it advances), without waiting: WouldBlock when the socket is full.
    /// Only while no ring send is in flight on `id`.
    pub(crate) fn sendfile(
        &self,
        id: ConnId,
        file: RawFd,
        offset: &mut u64,
        count: usize,
    ) -> io::Result<usize> {
        let fd = self.live_fd(id)?;
        debug_assert!(!self.sending(id), "a ring send would be overtaken");
        let mut off = *offset as libc::off64_t;
        // SAFETY: both descriptors are open; `off` is a valid in/out offset.
        let n = unsafe { libc::sendfile64(fd, file, &mut off, count) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        *offset = off as u64;
        Ok(n as usize)
    }

    /// Ready once the socket can take more bytes (after a WouldBlock from
    /// [`send_now`](Self::send_now) or [`sendfile`](Self::sendfile)): a
    /// one-shot `POLLOUT` poll in the ring. Also ready when the socket is
    /// closed or in error; the next write reports that.
    pub(crate) fn poll_writable(&self, id: ConnId, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut conns = self.conns.borrow_mut();
        let Some(Some(c)) = conns.get_mut(id.slot as usize) else {
            return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
        };
        if c.generation != id.generation || c.released {
            return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
        }
        if std::mem::take(&mut c.writable) {
            return Poll::Ready(match c.send_error.take() {
                Some(e) => Err(io::Error::from_raw_os_error(e)),
                None => Ok(()),
            });
        }
        c.wait(cx, false);
        if !c.polling {
            c.polling = true;
            let fd = c.fd;
            drop(conns);
            self.push(
                opcode::PollAdd::new(types::Fd(fd), libc::POLLOUT as u32).build().user_data(user_data(
                    Kind::Writable,
                    id.slot,
                    id.generation,
                )),
            );
        }
        Poll::Pending
    }

    fn live_fd(&self, id: ConnId) -> io::Result<RawFd> {
        match self.conns.borrow().get(id.slot as usize) {
            Some(Some(c)) if c.generation == id.generation && !c.released => Ok(c.fd),
            _ => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// The connection's task is done with it: cancel whatever is in flight on
    /// the socket, then close it, which sends the FIN.
    ///
    /// Cancelling rather than `shutdown(2)`: a shutdown wakes the pending
    /// receive through the socket's wait queue and leaves a second state
    /// change for the close, and measured on 10 000 idle connections closed
    /// at once it cost a third more CPU (bench/NOTES.md §10). The receive, a
    /// send stuck on a full socket and a writability poll are each cancelled
    /// by an entry of their own.
    pub(crate) fn release(&self, id: ConnId) {
        let mut conns = self.conns.borrow_mut();
        let Some(Some(c)) = conns.get_mut(id.slot as usize) else { return };
        if c.generation != id.generation {
            return;
        }
        c.released = true;
        c.waker = None;
        let chunks = c.inbox.take_bids();
        let idle = c.idle();
        let in_flight =
            [(Kind::Recv, c.recv_armed), (Kind::Send, c.send.is_some()), (Kind::Writable, c.polling)];
        drop(conns);
        for bid in chunks {
            self.recycle_opt(Some(bid));
        }
        if idle {
            self.close_slot(id.slot);
        }
        for (kind, _) in in_flight.into_iter().filter(|(_, busy)| *busy) {
            // By user_data: a hash lookup in the kernel (cancelling by
            // descriptor scans every pending poll, quadratic when
            // thousands of connections close at once).
            self.push(
                opcode::AsyncCancel::new(user_data(kind, id.slot, id.generation))
                    .build()
                    .user_data(user_data(Kind::Cancel, id.slot, id.generation)),
            );
        }
        self.return_buffers();
    }

    fn close_slot(&self, slot: u32) {
        let taken = self.conns.borrow_mut()[slot as usize].take();
        if let Some(mut c) = taken {
            for bid in c.inbox.take_bids() {
                self.recycle_opt(Some(bid));
            }
            // SAFETY: nothing is in flight on this descriptor any more.
            unsafe { libc::close(c.fd) };
            self.free.borrow_mut().push(slot);
        }
    }

    // ---- accepting ----------------------------------------------------

    /// Starts accepting on each of `listeners` (multishot).
    pub(crate) fn listen(&self, listeners: &[RawFd]) {
        self.accept.borrow_mut().listeners =
            listeners.iter().map(|&fd| Listening { fd, armed: false, dead: false }).collect();
        for i in 0..listeners.len() {
            self.arm_accept(i);
        }
    }

    fn arm_accept(&self, i: usize) {
        let fd = {
            let mut a = self.accept.borrow_mut();
            let stopped = a.stopped;
            match a.listeners.get_mut(i) {
                Some(l) if !l.armed && !l.dead && !stopped => {
                    l.armed = true;
                    l.fd
                }
                _ => return,
            }
        };
        let e = if self.multishot_accept.get() {
            opcode::AcceptMulti::new(types::Fd(fd)).flags(ACCEPT_FLAGS).build()
        } else {
            opcode::Accept::new(types::Fd(fd), std::ptr::null_mut(), std::ptr::null_mut())
                .flags(ACCEPT_FLAGS)
                .build()
        };
        self.push(e.user_data(user_data(Kind::Accept, i as u32, 0)));
    }

    /// The next accepted socket, or the error accepting hit; `None` once
    /// accepting has stopped and no accept is in flight any more (nothing
    /// more can arrive).
    pub(crate) fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<Option<io::Result<RawFd>>> {
        let mut a = self.accept.borrow_mut();
        if let Some(fd) = a.queue.pop_front() {
            return Poll::Ready(Some(Ok(fd)));
        }
        if let Some(e) = a.error.take() {
            return Poll::Ready(Some(Err(io::Error::from_raw_os_error(e))));
        }
        if a.stopped && a.listeners.iter().all(|l| !l.armed) {
            return Poll::Ready(None);
        }
        a.waker = Some(cx.waker().clone());
        let rearm = !a.stopped && a.listeners.iter().any(|l| !l.armed && !l.dead);
        let n = a.listeners.len();
        drop(a);
        if rearm {
            // (arm_accept skips the armed and the dead.)
            for i in 0..n {
                self.arm_accept(i);
            }
        }
        Poll::Pending
    }

    /// Stops accepting: cancels the accepts in flight. Sockets they still
    /// deliver, and those accepted but not yet handed out, come from
    /// [`poll_accept`](Self::poll_accept) until it returns `None`.
    pub(crate) fn stop_accepting(&self) {
        let mut a = self.accept.borrow_mut();
        if a.stopped {
            return;
        }
        a.stopped = true;
        let armed: Vec<usize> =
            a.listeners.iter().enumerate().filter(|(_, l)| l.armed).map(|(i, _)| i).collect();
        drop(a);
        for i in &armed {
            let target = user_data(Kind::Accept, *i as u32, 0);
            self.push(opcode::AsyncCancel::new(target).build().user_data(user_data(Kind::Cancel, 0, 0)));
        }
        if !armed.is_empty() {
            self.submit();
        }
    }

    /// Sockets accepted but not yet handed out, without waiting.
    pub(crate) fn take_accepted(&self) -> Vec<RawFd> {
        self.accept.borrow_mut().queue.drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_round_trips() {
        let ud = user_data(Kind::Send, 123_456, 0xab_cdef);
        assert_eq!(decode(ud), (Kind::Send as u8, 0xab_cdef, 123_456));
        let ud = user_data(Kind::Recv, u32::MAX, 0x1ff_ffff);
        assert_eq!(decode(ud), (Kind::Recv as u8, 0xff_ffff, u32::MAX));
    }

    fn chunk(bid: u16) -> Chunk {
        Chunk { bid, len: 10, off: 0 }
    }

    #[test]
    fn inbox_keeps_order_and_allocates_only_for_a_backlog() {
        let mut inbox = Inbox::default();
        assert!(inbox.is_empty() && inbox.front_mut().is_none());
        inbox.push_back(chunk(1));
        assert_eq!(inbox.more.capacity(), 0, "one chunk lives inline");
        inbox.push_back(chunk(2));
        inbox.push_back(chunk(3));
        inbox.front_mut().unwrap().off = 4;
        assert_eq!(inbox.front_mut().map(|c| (c.bid, c.off)), Some((1, 4)));
        inbox.pop_front();
        assert_eq!(inbox.front_mut().map(|c| c.bid), Some(2));
        inbox.pop_front();
        inbox.pop_front();
        assert!(inbox.is_empty());
        inbox.push_back(chunk(4));
        inbox.push_back(chunk(5));
        assert_eq!(inbox.take_bids(), vec![4, 5]);
        assert!(inbox.is_empty() && inbox.more.capacity() == 0, "emptied and freed");
        // A large backlog's memory goes once it has drained; a small one's stays.
        for bid in 0..40 {
            inbox.push_back(chunk(bid));
        }
        for bid in 0..40 {
            assert_eq!(inbox.front_mut().map(|c| c.bid), Some(bid));
            inbox.pop_front();
        }
        assert!(inbox.is_empty() && inbox.more.capacity() == 0, "a drained backlog is freed");
        inbox.push_back(chunk(1));
        inbox.push_back(chunk(2));
        inbox.pop_front();
        inbox.pop_front();
        assert!(inbox.more.capacity() > 0 && inbox.more.capacity() <= INBOX_KEEP);
    }

    struct Count(std::sync::atomic::AtomicUsize);
    impl std::task::Wake for Count {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn one_waker_serves_read_and_write_waits_without_cross_wakes() {
        let mut c = ConnIo::new(-1, 0);
        let count = std::sync::Arc::new(Count(Default::default()));
        let waker = Waker::from(count.clone());
        let cx = Context::from_waker(&waker);
        // Waiting to read: a send completing does not wake the task.
        c.wait(&cx, true);
        assert!(c.woken(false).is_none());
        assert!(c.woken(true).is_some());
        assert!(c.woken(true).is_none(), "woken once per wait");
        // Waiting for both: either event wakes, the other keeps the waker.
        c.wait(&cx, true);
        c.wait(&cx, false);
        assert!(c.woken(true).is_some());
        assert!(c.waker.is_some());
        assert!(c.woken(false).is_some());
        assert!(c.waker.is_none());
    }
}
