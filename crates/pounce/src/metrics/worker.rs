//! The server's own per-request figures, one block per worker.
//!
//! Each worker owns a [`WorkerMetrics`]: responses by status code, the
//! request-duration histogram, accepted connections and request timeouts.
//! Only that worker writes it (plain single-writer cells, see
//! [`super::cells`]); a scrape reads every worker's block when asked. The
//! blocks are cache-line aligned and their size is a multiple of a line, so
//! two workers never write the same line. Nothing here allocates or locks
//! after start-up.
//!
//! Connections already counted elsewhere are not counted twice: open
//! connections, 503s while draining and force-closed connections are the
//! shutdown module's per-worker `WorkerStats`, which the exposition reads.
//!
//! With `--metrics-addr` unset there are no blocks at all, and every hook is a
//! test of a `None` ([`Meter`]).

use super::cells::Count;
use super::histogram::LatencyCells;
use std::time::Duration;

/// Status codes are counted in a fixed array indexed by `code - 100`:
/// every three-digit code has its cell, so counting needs no map and no
/// allocation, whatever code a handler returns.
const FIRST_CODE: u16 = 100;
const CODES: usize = 900;

/// Why a request timed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timeout {
    /// Request head not complete within header_timeout: 408.
    Header,
    /// Request body stalled past request_timeout: 408.
    Body,
    /// Handler (or a streamed body) past request_timeout: cancelled, 503
    /// (or the connection closed when the response had started).
    Handler,
}

impl Timeout {
    pub(crate) const ALL: [Timeout; 3] = [Timeout::Header, Timeout::Body, Timeout::Handler];

    /// The `kind` label value.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Timeout::Header => "header",
            Timeout::Body => "body",
            Timeout::Handler => "handler",
        }
    }
}

/// One worker's cells. See the module documentation.
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct WorkerMetrics {
    responses: [Count; CODES],
    latency: LatencyCells,
    accepted: Count,
    timeouts: [Count; 3],
}

impl Default for WorkerMetrics {
    fn default() -> Self {
        WorkerMetrics {
            responses: std::array::from_fn(|_| Count::default()),
            latency: LatencyCells::default(),
            accepted: Count::default(),
            timeouts: Default::default(),
        }
    }
}

impl WorkerMetrics {
    /// Responses sent with `code` so far.
    pub(crate) fn responses(&self, code: u16) -> u64 {
        code.checked_sub(FIRST_CODE).and_then(|i| self.responses.get(i as usize)).map_or(0, Count::get)
    }

    /// Every code this worker has answered at least once, ascending.
    pub(crate) fn codes_seen(&self) -> impl Iterator<Item = u16> + '_ {
        self.responses.iter().enumerate().filter(|(_, c)| c.get() > 0).map(|(i, _)| FIRST_CODE + i as u16)
    }

    pub(crate) fn latency(&self) -> &LatencyCells {
        &self.latency
    }

    pub(crate) fn accepted(&self) -> u64 {
        self.accepted.get()
    }

    pub(crate) fn timeouts(&self, kind: Timeout) -> u64 {
        self.timeouts[kind as usize].get()
    }
}

/// The workers' blocks, indexed by worker id (from 1).
#[derive(Debug)]
pub(crate) struct ServerMetrics {
    workers: Box<[WorkerMetrics]>,
}

impl ServerMetrics {
    pub(crate) fn new(workers: usize) -> ServerMetrics {
        ServerMetrics { workers: (0..workers).map(|_| WorkerMetrics::default()).collect() }
    }

    /// Worker `id`'s block (ids start at 1, as in the logs).
    pub(crate) fn worker(&self, id: usize) -> &WorkerMetrics {
        &self.workers[id - 1]
    }

    /// `(id, block)` for every worker.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (usize, &WorkerMetrics)> {
        self.workers.iter().enumerate().map(|(k, w)| (k + 1, w))
    }
}

/// The hooks the request path calls: each does nothing when metrics are off.
/// Only the owning worker's thread may hold one.
#[derive(Clone, Copy)]
pub(crate) struct Meter<'a>(pub(crate) Option<&'a WorkerMetrics>);

impl Meter<'_> {
    /// A response with status `code` left for a request that took `took`.
    /// (The caller passes a duration it measured anyway: the request path
    /// reads the clock for its own timeouts whether metrics are on or off,
    /// so turning them on adds no clock read.)
    #[inline]
    pub(crate) fn response(self, code: u16, took: Duration) {
        self.responses(&[code], took);
    }

    /// Responses with these codes left together, each for a request that
    /// took `took` (a run of pipelined requests: see `server::timing`).
    #[inline]
    pub(crate) fn responses(self, codes: &[u16], took: Duration) {
        if let Some(m) = self.0 {
            // (Every code sent is in range; the histogram counts exactly
            // what the codes count.)
            let mut n = 0;
            for &code in codes {
                if let Some(c) = code.checked_sub(FIRST_CODE).and_then(|i| m.responses.get(i as usize)) {
                    c.add(1);
                    n += 1;
                }
            }
            m.latency.observe_n(took, n);
        }
    }

    #[inline]
    pub(crate) fn accepted(self) {
        if let Some(m) = self.0 {
            m.accepted.add(1);
        }
    }

    #[inline]
    pub(crate) fn timeout(self, kind: Timeout) {
        if let Some(m) = self.0 {
            m.timeouts[kind as usize].add(1);
        }
    }
}

/// For tests: a duration-free response count.
#[cfg(test)]
impl WorkerMetrics {
    fn record(&self, code: u16, took: std::time::Duration) {
        Meter(Some(self)).response(code, took);
    }
}

#[cfg(test)]
mod tests {
    use super::super::cells::CACHE_LINE;
    use super::super::histogram::{LATENCY_BUCKETS, Snapshot};
    use super::*;
    use std::time::Duration;

    #[test]
    fn blocks_never_share_a_cache_line() {
        assert_eq!(std::mem::align_of::<WorkerMetrics>(), CACHE_LINE);
        assert_eq!(std::mem::size_of::<WorkerMetrics>() % CACHE_LINE, 0);
        let s = ServerMetrics::new(3);
        let a = s.worker(1) as *const _ as usize;
        let b = s.worker(2) as *const _ as usize;
        assert!(b - a >= std::mem::size_of::<WorkerMetrics>());
        assert_eq!(a % CACHE_LINE, 0);
    }

    #[test]
    fn codes_durations_and_timeouts_are_counted_per_worker() {
        let s = ServerMetrics::new(2);
        let w = s.worker(2);
        w.record(200, Duration::from_micros(30));
        w.record(200, Duration::from_millis(3));
        w.record(404, Duration::ZERO);
        w.record(999, Duration::ZERO);
        // Out-of-range codes are not counted as a code (none is sent).
        w.record(42, Duration::ZERO);
        Meter(Some(w)).accepted();
        Meter(Some(w)).timeout(Timeout::Body);
        Meter(None).timeout(Timeout::Body);
        assert_eq!(w.responses(200), 2);
        assert_eq!(w.responses(404), 1);
        assert_eq!(w.responses(999), 1);
        assert_eq!(w.codes_seen().collect::<Vec<_>>(), [200, 404, 999]);
        assert_eq!(s.worker(1).codes_seen().count(), 0);
        assert_eq!((w.accepted(), w.timeouts(Timeout::Body), w.timeouts(Timeout::Header)), (1, 1, 0));
        let mut snap = Snapshot::empty(&LATENCY_BUCKETS);
        w.latency().add_to(&mut snap);
        assert_eq!(snap.count(), 4, "every counted response is observed once");
        assert_eq!(s.iter().map(|(id, _)| id).collect::<Vec<_>>(), [1, 2]);
    }
}
