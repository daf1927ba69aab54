//! When a request started and ended, with as few clock reads as the answers
//! need: one per run of pipelined requests answered without waiting, not one
//! per request.
//!
//! A clock read is a `clock_gettime` (an `rdtsc` in the vDSO); on this
//! project's VMs it was ~11 % of the user time of a pipelined request. The
//! connection loop needs the time for three things: a request's duration
//! (metrics, access log), the keep-alive timer's start, and the start of the
//! next request (its request_timeout counts from there). Requests that the
//! loop answers without ever waiting — no body to read, a handler that is
//! ready on its first poll, a response encoded straight into the write
//! buffer — do not need a time of their own: their responses sit in the
//! write buffer and leave together at its next flush, so each one's true
//! duration, as its client sees it, is the run's. A [`Run`] collects their
//! status codes and records them with one clock read when the run ends, or
//! when a request in it does wait (whose own end is then read anyway).
//!
//! With the access log on, every request is timed on its own.
//!
//! The price: a request's request_timeout counts from the start of its run,
//! so it includes the time of at most [`RUN_MAX`] answers before it that
//! never waited — handlers ready on their first poll, and at most a 16 KiB
//! file read each (a page-cache miss makes that a disk read). A flush that
//! may wait (a long pipeline to a slow reader) ends the run.

use crate::metrics::worker::Meter;
use std::time::Instant;

/// Most responses one clock read covers; a longer run is cut (and read) here.
pub(crate) const RUN_MAX: usize = 32;

/// Requests answered since `start`, not yet recorded.
pub(crate) struct Run {
    /// When the current request began: the run's start.
    start: Instant,
    codes: [u16; RUN_MAX],
    len: usize,
}

impl Run {
    pub(crate) fn new(start: Instant) -> Run {
        Run { start, codes: [0; RUN_MAX], len: 0 }
    }

    /// When the request being served began.
    pub(crate) fn start(&self) -> Instant {
        self.start
    }

    /// Requests answered but not yet recorded.
    pub(crate) fn pending(&self) -> usize {
        self.len
    }

    /// A request answered with `code`. Returns the time it ended if this
    /// closed the run (`timed`: the caller needs its own duration, or the
    /// run is full), `None` if it joined the run: the next request starts
    /// at the same instant and both are recorded when the run ends.
    pub(crate) fn answered(&mut self, code: u16, timed: bool, meter: Meter<'_>) -> Option<Instant> {
        self.codes[self.len] = code;
        self.len += 1;
        (timed || self.len == RUN_MAX).then(|| self.end(meter))
    }

    /// Ends the run now: records its requests with the duration from its
    /// start to now, and starts the next run. Returns now.
    pub(crate) fn end(&mut self, meter: Meter<'_>) -> Instant {
        let now = Instant::now();
        meter.responses(&self.codes[..self.len], now - self.start);
        self.len = 0;
        self.start = now;
        now
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::histogram::{LATENCY_BUCKETS, Snapshot};
    use crate::metrics::worker::WorkerMetrics;
    use std::time::Duration;

    fn count(m: &WorkerMetrics) -> u64 {
        let mut s = Snapshot::empty(&LATENCY_BUCKETS);
        m.latency().add_to(&mut s);
        s.count()
    }

    #[test]
    fn untimed_answers_share_one_reading() {
        let m = WorkerMetrics::default();
        let begun = Instant::now() - Duration::from_millis(3);
        let mut run = Run::new(begun);
        assert_eq!(run.answered(200, false, Meter(Some(&m))), None);
        assert_eq!(run.answered(404, false, Meter(Some(&m))), None);
        // Not recorded yet, and the next request starts where the run did.
        assert_eq!(m.responses(200), 0);
        assert_eq!(run.start(), begun);
        assert_eq!(run.pending(), 2);
        let end = run.answered(200, true, Meter(Some(&m))).expect("a timed answer ends the run");
        assert!(end - begun >= Duration::from_millis(3));
        assert_eq!((m.responses(200), m.responses(404), count(&m)), (2, 1, 3));
        let mut s = Snapshot::empty(&LATENCY_BUCKETS);
        m.latency().add_to(&mut s);
        // Three requests, each as long as the run (≥ 3 ms): sum ≥ 9 ms.
        assert!(s.sum >= 0.009, "{}", s.sum);
        assert_eq!(run.start(), end);
        assert_eq!(run.pending(), 0);
    }

    #[test]
    fn a_full_run_is_cut() {
        let m = WorkerMetrics::default();
        let mut run = Run::new(Instant::now());
        for _ in 0..RUN_MAX - 1 {
            assert_eq!(run.answered(200, false, Meter(Some(&m))), None);
        }
        assert!(run.answered(200, false, Meter(Some(&m))).is_some());
        assert_eq!(m.responses(200), RUN_MAX as u64);
        assert_eq!(run.pending(), 0);
    }

    #[test]
    fn metrics_off_still_keeps_time() {
        let begun = Instant::now();
        let mut run = Run::new(begun);
        assert_eq!(run.answered(200, false, Meter(None)), None);
        let end = run.end(Meter(None));
        assert!(end >= begun);
        assert_eq!(run.start(), end);
    }
}
