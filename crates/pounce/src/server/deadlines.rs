//! The deadlines of one worker's connection waits, kept by one sweeper task
//! instead of one glommio timer per connection.
//!
//! Every wait of a connection (for its next request head, a body, a handler,
//! a slow reader) has a deadline, and nearly every wait ends long before it:
//! a keep-alive connection asks for a new, later deadline with every
//! request. A glommio `Timer` per connection cost each idle connection
//! ~170 bytes (its `Rc`, an entry in the reactor's id map and one in its
//! timer tree) and each wait a clock read to decide whether the deadline had
//! passed (bench/NOTES.md §16, §20).
//!
//! Here a connection's deadline is a slot: the deadline it currently wants,
//! and the time at which the sweeper will next look at it (`queued`, an
//! entry in a min-heap). Asking for a later deadline only writes `want`: no
//! clock read, no heap operation. Asking for an earlier one queues it. When
//! the sweeper reaches a queued entry it compares the slot's current `want`
//! with the clock: still in the future, it queues the slot again for then;
//! passed, it marks the slot fired and wakes the connection's task, which
//! then reads the clock itself to confirm (the wait it is in now may have a
//! different deadline than the one that fired). Deadlines therefore never
//! fire early; they fire up to one [`GRAIN`] late (plus the time the worker
//! takes to get to the sweeper), which is what lets the sweeper serve the
//! connections whose deadlines fall in the same millisecond with one
//! wake-up. A deadline that has already passed when a wait first asks for
//! it is reported at once.
//!
//! Heap entries are never removed in place: an entry `(t, slot)` only means
//! "look at this slot at `t`", and looking early is harmless. Entries that no
//! longer match their slot (the slot was queued earlier since, or the
//! connection is gone) are dropped when they surface, or all at once when
//! they outnumber the live ones ([`Deadlines::compact`]).
//!
//! Single-threaded (one per worker, `RefCell`), like everything a worker owns.

use glommio::timer::Timer;
use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// The sweeper's resolution: its timer is set to the next multiple of this
/// after the earliest queued entry, so deadlines a few hundred microseconds
/// apart cost one wake-up, and none fires more than this late.
const GRAIN: u64 = 1_000_000;

/// `queued` of a slot whose deadline has passed and whose task was woken.
const FIRED: u64 = u64::MAX;

/// The origin of the nanosecond counts kept here (an `Instant` takes 16
/// bytes, and the heap is ordered on plain integers).
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// `t` in nanoseconds since [`EPOCH`], at least 1 (0 means "none"). An
/// instant before the epoch is in the past, which 1 also is.
fn ticks(t: Instant) -> u64 {
    (t.saturating_duration_since(*EPOCH).as_nanos() as u64).max(1)
}

/// A connection's slot (see [`Deadlines::register`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DeadlineKey(u32);

#[derive(Default)]
struct Slot {
    /// The deadline of the connection's current wait (ticks); 0: none yet.
    want: u64,
    /// When the sweeper looks at this slot next (ticks; a heap entry with
    /// this time exists); 0: not queued; [`FIRED`]: `want` passed and the
    /// task was woken.
    queued: u64,
    waker: Option<Waker>,
}

#[derive(Default)]
struct Inner {
    slots: Vec<Slot>,
    free: Vec<u32>,
    live: usize,
    heap: BinaryHeap<Reverse<(u64, u32)>>,
    /// When the sweeper is due to run next (ticks); `u64::MAX`: not before
    /// something is queued.
    sweep_at: u64,
    sweeper: Option<Waker>,
}

/// One worker's connection deadlines (see the module doc). Its memory
/// (slots, heap) stays at its peak, like the driver's connection table.
pub(crate) struct Deadlines {
    inner: RefCell<Inner>,
}

impl Deadlines {
    pub(crate) fn new() -> Deadlines {
        LazyLock::force(&EPOCH);
        Deadlines { inner: RefCell::new(Inner { sweep_at: u64::MAX, ..Inner::default() }) }
    }

    /// A slot for a new connection; give it back with [`release`](Self::release).
    pub(crate) fn register(&self) -> DeadlineKey {
        let mut inner = self.inner.borrow_mut();
        inner.live += 1;
        match inner.free.pop() {
            Some(k) => DeadlineKey(k),
            None => {
                inner.slots.push(Slot::default());
                DeadlineKey(inner.slots.len() as u32 - 1)
            }
        }
    }

    /// The connection is gone. Its heap entries stay until they surface.
    pub(crate) fn release(&self, key: DeadlineKey) {
        let old = {
            let mut inner = self.inner.borrow_mut();
            inner.free.push(key.0);
            inner.live -= 1;
            std::mem::take(&mut inner.slots[key.0 as usize])
        };
        // Its waker is dropped outside the borrow.
        drop(old);
    }

    /// Ready once `deadline` has passed; otherwise makes sure the task is
    /// woken when it does. The common case, a deadline no earlier than the
    /// one already queued, reads no clock. Otherwise (a first wait, a wait
    /// after a deadline fired, an earlier deadline) the clock is read, so a
    /// deadline that has already passed is reported at once; a later one is
    /// reported by the sweeper, within a [`GRAIN`] plus the time the worker
    /// takes to run it.
    pub(crate) fn poll(&self, key: DeadlineKey, deadline: Instant, cx: &mut Context<'_>) -> Poll<()> {
        self.poll_at(key, ticks(deadline), cx, || ticks(Instant::now()))
    }

    fn poll_at(&self, key: DeadlineKey, d: u64, cx: &mut Context<'_>, now: impl FnOnce() -> u64) -> Poll<()> {
        let sweeper = {
            let mut inner = self.inner.borrow_mut();
            let slot = &mut inner.slots[key.0 as usize];
            let common = slot.queued != 0 && slot.queued != FIRED && slot.queued <= d;
            if !common && now() >= d {
                if slot.queued == FIRED {
                    slot.queued = 0;
                }
                return Poll::Ready(());
            }
            slot.want = d;
            match &slot.waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => slot.waker = Some(cx.waker().clone()),
            }
            if common {
                // The sweeper looks at this slot no later than `d` anyway.
                return Poll::Pending;
            }
            // (A slot may now have two entries that match it, if its
            // deadline moved earlier and then back: the second is dropped
            // when it surfaces.)
            slot.queued = d;
            inner.heap.push(Reverse((d, key.0)));
            if inner.heap.len() > 2 * inner.live + 64 {
                inner.compact();
            }
            let at = d.div_ceil(GRAIN) * GRAIN;
            if at < inner.sweep_at {
                inner.sweep_at = at;
                inner.sweeper.take()
            } else {
                None
            }
        };
        if let Some(w) = sweeper {
            w.wake();
        }
        Poll::Pending
    }

    /// Wakes every connection whose deadline has passed at `now` and queues
    /// again those whose deadline moved later. Returns when the sweeper
    /// must run next (rounded up to [`GRAIN`]), if anything is queued.
    fn expire(&self, now: u64) -> Option<u64> {
        let mut due = Vec::new();
        let next = {
            let mut inner = self.inner.borrow_mut();
            let inner = &mut *inner;
            while let Some(&Reverse((t, k))) = inner.heap.peek() {
                if t > now {
                    break;
                }
                inner.heap.pop();
                let slot = &mut inner.slots[k as usize];
                if slot.queued != t {
                    continue; // stale: re-queued earlier, fired, or released
                }
                if slot.want > now {
                    slot.queued = slot.want;
                    inner.heap.push(Reverse((slot.want, k)));
                } else {
                    slot.queued = FIRED;
                    due.extend(slot.waker.take());
                }
            }
            let next = inner.heap.peek().map(|&Reverse((t, _))| t.div_ceil(GRAIN) * GRAIN);
            inner.sweep_at = next.unwrap_or(u64::MAX);
            next
        };
        for w in due {
            w.wake();
        }
        next
    }

    /// The sweeper: the worker runs this as a task of its own, for its whole
    /// life. One glommio timer, set to the earliest queued entry.
    pub(crate) async fn sweep(&self) {
        let mut timer = Timer::new(Duration::from_secs(3600));
        // What `timer` is set to (ticks), 0: not set.
        let mut timer_at = 0u64;
        poll_fn(|cx| {
            loop {
                let now = ticks(Instant::now());
                let next = self.expire(now);
                {
                    let mut inner = self.inner.borrow_mut();
                    match &inner.sweeper {
                        Some(w) if w.will_wake(cx.waker()) => {}
                        _ => inner.sweeper = Some(cx.waker().clone()),
                    }
                }
                let Some(at) = next else {
                    // Nothing queued: the next deadline queued wakes us. (A
                    // timer left set only means one early, harmless sweep.)
                    return Poll::Pending;
                };
                if timer_at != at {
                    // From a fresh reading: waking the due tasks took time.
                    let now = ticks(Instant::now());
                    timer.reset(Duration::from_nanos(at.saturating_sub(now)));
                    timer_at = at;
                }
                if Pin::new(&mut timer).poll(cx).is_pending() {
                    return Poll::Pending;
                }
                timer_at = 0;
            }
        })
        .await
    }
}

impl Inner {
    /// Drops the heap entries that no longer match their slot.
    fn compact(&mut self) {
        let slots = &self.slots;
        self.heap.retain(|&Reverse((t, k))| slots[k as usize].queued == t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn waker() -> (Arc<Count>, Waker) {
        let c = Arc::new(Count(AtomicUsize::new(0)));
        (c.clone(), Waker::from(c))
    }

    fn no_clock() -> u64 {
        panic!("read the clock on the common path")
    }

    #[test]
    fn a_later_deadline_reads_no_clock_and_queues_nothing() {
        let d = Deadlines::new();
        let k = d.register();
        let (_, w) = waker();
        let mut cx = Context::from_waker(&w);
        assert!(d.poll_at(k, 5_000, &mut cx, || 0).is_pending(), "a first wait reads the clock once");
        for t in [5_000, 6_000, 9_000] {
            assert!(d.poll_at(k, t, &mut cx, no_clock).is_pending());
        }
        assert_eq!(d.inner.borrow().heap.len(), 1);
        assert_eq!(d.inner.borrow().sweep_at, GRAIN, "rounded up to the grain");
    }

    #[test]
    fn a_deadline_already_passed_is_reported_at_once() {
        let d = Deadlines::new();
        let k = d.register();
        let (count, w) = waker();
        let mut cx = Context::from_waker(&w);
        assert!(d.poll_at(k, 100, &mut cx, || 100).is_ready());
        assert!(d.inner.borrow().heap.is_empty(), "nothing queued for it");
        // An earlier deadline than the one queued, already passed: the same.
        assert!(d.poll_at(k, 50 * GRAIN, &mut cx, || 200).is_pending());
        assert!(d.poll_at(k, 300, &mut cx, || 400).is_ready());
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn the_sweeper_requeues_a_moved_deadline_and_fires_a_passed_one() {
        let d = Deadlines::new();
        let k = d.register();
        let (count, w) = waker();
        let mut cx = Context::from_waker(&w);
        assert!(d.poll_at(k, 5 * GRAIN, &mut cx, || 0).is_pending());
        assert!(d.poll_at(k, 9 * GRAIN + 1, &mut cx, no_clock).is_pending());
        // At the queued time the slot wants later: queued again, nobody woken;
        // the sweeper's next run is rounded up to the grain.
        assert_eq!(d.expire(5 * GRAIN), Some(10 * GRAIN));
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
        // Not early: just before the deadline nothing fires.
        assert_eq!(d.expire(9 * GRAIN), Some(10 * GRAIN));
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
        assert_eq!(d.expire(10 * GRAIN), None);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        // The task confirms with the clock: this wait's deadline has passed.
        assert!(d.poll_at(k, 9 * GRAIN + 1, &mut cx, || 10 * GRAIN).is_ready());
    }

    #[test]
    fn a_fired_slot_whose_task_now_waits_for_a_later_deadline_is_queued_again() {
        let d = Deadlines::new();
        let k = d.register();
        let (count, w) = waker();
        let mut cx = Context::from_waker(&w);
        assert!(d.poll_at(k, 100, &mut cx, || 0).is_pending());
        assert_eq!(d.expire(100), None);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        // Meanwhile the wait ended otherwise; the next one has its own deadline.
        assert!(d.poll_at(k, 50 * GRAIN, &mut cx, || 200).is_pending());
        assert_eq!(d.expire(200), Some(50 * GRAIN));
        assert_eq!(d.expire(50 * GRAIN), None);
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn an_earlier_deadline_wakes_the_sweeper_and_fires_first() {
        let d = Deadlines::new();
        let (a, b) = (d.register(), d.register());
        let (ca, wa) = waker();
        let (cb, wb) = waker();
        let (cs, ws) = waker();
        d.inner.borrow_mut().sweeper = Some(ws);
        assert!(d.poll_at(a, 30 * GRAIN, &mut Context::from_waker(&wa), || 0).is_pending());
        assert_eq!(cs.0.load(Ordering::SeqCst), 1, "a first deadline wakes the sweeper");
        d.inner.borrow_mut().sweeper = Some(Waker::from(cs.clone()));
        assert!(d.poll_at(b, 40 * GRAIN, &mut Context::from_waker(&wb), || 0).is_pending());
        assert_eq!(cs.0.load(Ordering::SeqCst), 1, "a later one does not");
        assert!(d.poll_at(b, 20 * GRAIN, &mut Context::from_waker(&wb), || 0).is_pending());
        assert_eq!(cs.0.load(Ordering::SeqCst), 2, "an earlier one does");
        assert_eq!(d.expire(20 * GRAIN), Some(30 * GRAIN));
        assert_eq!((ca.0.load(Ordering::SeqCst), cb.0.load(Ordering::SeqCst)), (0, 1));
        // b's stale entry at 40 surfaces later and is dropped.
        assert_eq!(d.expire(30 * GRAIN), Some(40 * GRAIN));
        assert_eq!(ca.0.load(Ordering::SeqCst), 1);
        assert_eq!(d.expire(40 * GRAIN), None);
        assert_eq!((ca.0.load(Ordering::SeqCst), cb.0.load(Ordering::SeqCst)), (1, 1));
    }

    #[test]
    fn a_released_slot_is_not_fired_and_its_reuse_starts_clean() {
        let d = Deadlines::new();
        let k = d.register();
        let (count, w) = waker();
        let mut cx = Context::from_waker(&w);
        assert!(d.poll_at(k, 10 * GRAIN, &mut cx, || 0).is_pending());
        d.release(k);
        let k2 = d.register();
        assert_eq!(k2, k, "slots are reused");
        assert!(d.poll_at(k2, 60 * GRAIN, &mut cx, || 0).is_pending());
        assert_eq!(d.expire(10 * GRAIN), Some(60 * GRAIN));
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn stale_entries_are_compacted_when_they_outnumber_live_ones() {
        let d = Deadlines::new();
        let (_, w) = waker();
        let mut cx = Context::from_waker(&w);
        for i in 0..1000u64 {
            let k = d.register();
            assert!(d.poll_at(k, 1_000_000 + i, &mut cx, || 0).is_pending());
            d.release(k);
        }
        let k = d.register();
        assert!(d.poll_at(k, 2_000_000, &mut cx, || 0).is_pending());
        // One live slot: compaction keeps the heap within 2 × 1 + 64 (+ the
        // push that triggers it), not the 1 001 entries pushed.
        let len = d.inner.borrow().heap.len();
        assert!(len <= 67, "{len}");
    }
}
