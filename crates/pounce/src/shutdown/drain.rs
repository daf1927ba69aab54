//! One worker's side of shutdown: its phase, the registry of its live
//! connections, and the moment its last connection is gone.
//!
//! Connections register on accept and get a [`ConnGuard`]. They never poll a
//! flag in a loop: a connection waiting on a socket or a handler also waits on
//! [`WorkerDrain::poll_change`], which stores its waker in the registry, so a
//! phase change wakes exactly the connections that must react (idle ones when
//! draining begins, all of them when forced). Forcing also `shutdown(2)`s each
//! socket: a plain close with an io_uring receive in flight sends no FIN.
//!
//! Everything here is per worker and single-threaded (`Cell`/`RefCell`); the
//! only cross-thread traffic is the counters in [`super::WorkerStats`].

use super::{ListenerAction, Phase, Shared};
use std::cell::{Cell, RefCell};
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

struct Slot {
    fd: RawFd,
    waker: Option<Waker>,
}

pub(crate) struct WorkerDrain {
    pub id: usize,
    shared: Arc<Shared>,
    phase: Cell<Phase>,
    /// What the accept loop does with the listeners once draining.
    action: Cell<ListenerAction>,
    drain_started: Cell<Option<Instant>>,
    slots: RefCell<Vec<Option<Slot>>>,
    free: RefCell<Vec<usize>>,
    active: Cell<usize>,
    /// The accept loop, waiting for the last connection to go.
    stop_waker: RefCell<Option<Waker>>,
}

impl WorkerDrain {
    pub(crate) fn new(id: usize, shared: Arc<Shared>) -> Rc<WorkerDrain> {
        Rc::new(WorkerDrain {
            id,
            shared,
            phase: Cell::new(Phase::Running),
            action: Cell::new(ListenerAction::Respond503),
            drain_started: Cell::new(None),
            slots: RefCell::new(Vec::new()),
            free: RefCell::new(Vec::new()),
            active: Cell::new(0),
            stop_waker: RefCell::new(None),
        })
    }

    pub(crate) fn phase(&self) -> Phase {
        self.phase.get()
    }

    /// Whether new keep-alive requests should be refused (`Connection: close`
    /// on the last response) and new connections answered 503.
    pub(crate) fn draining(&self) -> bool {
        self.phase.get() >= Phase::Draining
    }

    pub(crate) fn listener_action(&self) -> ListenerAction {
        self.action.get()
    }

    pub(crate) fn drain_started(&self) -> Option<Instant> {
        self.drain_started.get()
    }

    pub(crate) fn active(&self) -> usize {
        self.active.get()
    }

    /// Registers a live connection on socket `fd`.
    pub(crate) fn register(self: &Rc<Self>, fd: RawFd) -> ConnGuard {
        let slot = Some(Slot { fd, waker: None });
        let key = match self.free.borrow_mut().pop() {
            Some(k) => {
                self.slots.borrow_mut()[k] = slot;
                k
            }
            None => {
                let mut slots = self.slots.borrow_mut();
                slots.push(slot);
                slots.len() - 1
            }
        };
        self.active.set(self.active.get() + 1);
        self.shared.stats(self.id).active.store(self.active.get(), Ordering::Relaxed);
        ConnGuard { drain: self.clone(), key }
    }

    /// Ready with the new phase once it differs from `seen`; otherwise
    /// remembers the connection's waker.
    pub(crate) fn poll_change(&self, key: usize, seen: Phase, cx: &mut Context<'_>) -> Poll<Phase> {
        let now = self.phase.get();
        if now != seen {
            return Poll::Ready(now);
        }
        if let Some(Some(slot)) = self.slots.borrow_mut().get_mut(key) {
            match &slot.waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => slot.waker = Some(cx.waker().clone()),
            }
        }
        Poll::Pending
    }

    /// True once forced; otherwise registers the waker for the next change.
    pub(crate) fn poll_forced(&self, key: usize, cx: &mut Context<'_>) -> bool {
        let now = self.phase.get();
        if now == Phase::Forced {
            return true;
        }
        let _ = self.poll_change(key, now, cx);
        false
    }

    /// Enters Draining, with `action` for the listeners, and wakes every
    /// connection so idle ones start their grace period. Returns the number
    /// of connections that were open.
    pub(crate) fn begin_drain(&self, action: ListenerAction) -> usize {
        if self.phase.get() < Phase::Draining {
            self.action.set(action);
            self.phase.set(Phase::Draining);
            self.drain_started.set(Some(Instant::now()));
            self.wake_all(false);
            self.wake_stop();
        }
        self.active.get()
    }

    /// Enters Forced: shuts every socket down and wakes every connection so
    /// it drops its handler. Returns how many connections were forced.
    pub(crate) fn force(&self) -> usize {
        if self.drain_started.get().is_none() {
            self.drain_started.set(Some(Instant::now()));
        }
        self.phase.set(Phase::Forced);
        let n = self.active.get();
        self.wake_all(true);
        self.wake_stop();
        n
    }

    fn wake_all(&self, shut_down_sockets: bool) {
        // Collect first: waking must not hold the borrow (a woken task is only
        // polled later, but keep the invariant simple).
        let wakers: Vec<Waker> = self
            .slots
            .borrow_mut()
            .iter_mut()
            .flatten()
            .filter_map(|slot| {
                if shut_down_sockets {
                    // SAFETY: the fd belongs to a registered, still-open
                    // connection of this worker (unregistered before close).
                    unsafe { libc::shutdown(slot.fd, libc::SHUT_RDWR) };
                }
                slot.waker.take()
            })
            .collect();
        for w in wakers {
            w.wake();
        }
    }

    /// Ready once draining (or forced) and no connection is left.
    pub(crate) fn poll_stopped(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.phase.get() >= Phase::Draining && self.active.get() == 0 {
            return Poll::Ready(());
        }
        *self.stop_waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Ready when the phase moves past `seen` (used by the accept loop).
    pub(crate) fn poll_phase_past(&self, seen: Phase, cx: &mut Context<'_>) -> Poll<Phase> {
        let now = self.phase.get();
        if now > seen {
            return Poll::Ready(now);
        }
        *self.stop_waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }

    fn wake_stop(&self) {
        if let Some(w) = self.stop_waker.borrow_mut().take() {
            w.wake();
        }
    }

    fn unregister(&self, key: usize) {
        self.slots.borrow_mut()[key] = None;
        self.free.borrow_mut().push(key);
        let n = self.active.get() - 1;
        self.active.set(n);
        self.shared.stats(self.id).active.store(n, Ordering::Relaxed);
        if n == 0 && self.phase.get() >= Phase::Draining {
            self.wake_stop();
        }
    }
}

/// A registered connection; dropping it unregisters. Must be dropped before
/// the connection's socket is closed (see [`WorkerDrain::force`]).
pub(crate) struct ConnGuard {
    drain: Rc<WorkerDrain>,
    key: usize,
}

impl ConnGuard {
    pub(crate) fn key(&self) -> usize {
        self.key
    }
    pub(crate) fn drain(&self) -> &Rc<WorkerDrain> {
        &self.drain
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.drain.unregister(self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn drain_wakes_registered_connections_and_stops_when_empty() {
        let d = WorkerDrain::new(1, Arc::new(Shared::new(1)));
        let counter = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);

        let a = d.register(-1);
        let b = d.register(-1);
        assert_eq!(d.active(), 2);
        assert_eq!(d.shared.stats(1).active.load(Ordering::Relaxed), 2);
        assert!(d.poll_change(a.key(), Phase::Running, &mut cx).is_pending());
        assert!(d.poll_change(b.key(), Phase::Running, &mut cx).is_pending());
        assert!(d.poll_stopped(&mut cx).is_pending());

        assert_eq!(d.begin_drain(ListenerAction::Release), 2);
        assert_eq!(d.listener_action(), ListenerAction::Release);
        // Two connections and the stop waiter were woken.
        assert_eq!(counter.0.load(Ordering::SeqCst), 3);
        assert_eq!(d.poll_change(a.key(), Phase::Running, &mut cx), Poll::Ready(Phase::Draining));
        assert!(d.poll_stopped(&mut cx).is_pending());
        drop(a);
        assert!(d.poll_stopped(&mut cx).is_pending());
        drop(b);
        assert_eq!(d.poll_stopped(&mut cx), Poll::Ready(()));
        assert_eq!(d.shared.stats(1).active.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn slots_are_reused() {
        let d = WorkerDrain::new(1, Arc::new(Shared::new(1)));
        let a = d.register(-1);
        let k = a.key();
        drop(a);
        let b = d.register(-1);
        assert_eq!(b.key(), k);
        assert_eq!(d.slots.borrow().len(), 1);
    }
}
