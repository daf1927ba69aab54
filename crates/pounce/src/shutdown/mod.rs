//! Graceful shutdown, the reason pounce exists. Everything that decides *when*
//! the server stops lives here; the server layer only asks "which phase am I
//! in?" and reports its connection counts.
//!
//! - [`signal`]: a signal-hook thread turns SIGTERM/SIGINT into a message to
//!   the coordinator over a glommio cross-executor channel; a second signal
//!   exits at once with code 3.
//! - [`coordinator`]: on the main thread, owns the one global timeline
//!   (Running → LameDuck for shutdown_delay → Draining → Stopped, or Forced at
//!   shutdown_timeout), broadcasts each phase to the workers and picks the
//!   exit code.
//! - [`drain`]: each worker's own view: its phase, its live connections (to
//!   wake idle ones when draining starts and to shut sockets down when forced)
//!   and when its last connection is gone.
//! - [`notify`]: systemd `sd_notify` (READY/STOPPING/STATUS).

pub(crate) mod coordinator;
pub(crate) mod drain;
pub(crate) mod notify;
pub(crate) mod signal;

use crate::tls::HandshakeFailure;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

/// Where the server is in its life. Ordered: a phase only ever increases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub(crate) enum Phase {
    /// Serving normally.
    Running = 0,
    /// Signal received, shutdown_delay running: serve normally, health 503.
    LameDuck = 1,
    /// Finish in-flight work, close idle connections, 503 new ones.
    Draining = 2,
    /// shutdown_timeout passed: cancel handlers, shut sockets down.
    Forced = 3,
}

impl Phase {
    fn from_u8(v: u8) -> Phase {
        match v {
            0 => Phase::Running,
            1 => Phase::LameDuck,
            2 => Phase::Draining,
            _ => Phase::Forced,
        }
    }
}

/// What a draining worker does with its listening sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum ListenerAction {
    /// Keep accepting and answer each new connection 503; when the last
    /// connection is gone, answer what is still queued 503 and shut the
    /// sockets down (`--drain-new-connections 503`, the default).
    #[default]
    Respond503,
    /// Stop accepting at once, answer what is already queued 503 (closing a
    /// socket resets its queue), and shut the sockets down so that every
    /// later connect is refused (`--drain-new-connections refuse`).
    Refuse,
    /// Stop accepting at once and leave the sockets, queue included, to the
    /// process that holds them too: the successor of a hot upgrade, or the
    /// service manager that passed them (socket activation). Nothing is
    /// shut down or answered 503; what was already accepted is served.
    Release,
}

/// Commands from the coordinator to a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Command {
    Drain(ListenerAction),
    Force,
}

/// Reports from a worker to the coordinator. A worker whose channel closes
/// without `Stopped` has died.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// Listening and accepting.
    Ready,
    /// Its last connection is gone and its listener is closed.
    Stopped { forced: bool },
}

/// Per-worker counters, written only by that worker, read by the coordinator
/// for `STATUS=` lines and the final summary, and by a metrics scrape. Padded
/// so workers never share a cache line. (Requests by status code are the
/// metrics module's: `metrics::worker`.)
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct WorkerStats {
    pub active: AtomicUsize,
    /// Responses completed after draining began.
    pub drain_requests: AtomicU64,
    /// New connections answered 503 while draining.
    pub rejected: AtomicU64,
    /// Connections shut down by force.
    pub forced: AtomicU64,
    /// TLS handshakes completed, and failed by reason (indexed by
    /// `HandshakeFailure::index`, labelled by `HandshakeFailure::label`).
    pub tls_handshakes: AtomicU64,
    pub tls_failures: [AtomicU64; HandshakeFailure::COUNT],
}

/// State shared by every thread of the process. Only atomics: nothing on the
/// request path takes a lock.
#[derive(Debug)]
pub(crate) struct Shared {
    pub started: Instant,
    /// The furthest phase announced so far; the signal thread raises it to
    /// LameDuck synchronously, so health answers 503 from the signal on.
    phase: AtomicU8,
    /// This process drains because a successor took over (hot upgrade), not
    /// because of a signal: the service stays up, so health still says ok.
    handed_over: AtomicBool,
    /// Open connections in the whole process, for max_connections.
    pub connections: AtomicUsize,
    pub workers: Vec<WorkerStats>,
}

impl Shared {
    pub(crate) fn new(workers: usize) -> Shared {
        Shared {
            started: Instant::now(),
            phase: AtomicU8::new(Phase::Running as u8),
            handed_over: AtomicBool::new(false),
            connections: AtomicUsize::new(0),
            workers: (0..workers).map(|_| WorkerStats::default()).collect(),
        }
    }

    pub(crate) fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Acquire))
    }

    /// Raises the phase (never lowers it).
    pub(crate) fn advance(&self, to: Phase) {
        self.phase.fetch_max(to as u8, Ordering::AcqRel);
    }

    /// True from the first signal on: health answers 503. Not during the
    /// drain that follows a hot upgrade's handover (unless a signal came
    /// too): the port is served by the successor, so a load balancer must
    /// not take this backend out.
    pub(crate) fn shutting_down(&self) -> bool {
        match self.phase() {
            Phase::Running => false,
            Phase::LameDuck => true,
            Phase::Draining | Phase::Forced => !self.handed_over.load(Ordering::Acquire),
        }
    }

    /// Marks the coming drain as a handover to a successor.
    pub(crate) fn hand_over(&self) {
        self.handed_over.store(true, Ordering::Release);
    }

    /// A signal arrived after the handover: health says draining after all.
    pub(crate) fn signalled_after_handover(&self) {
        self.handed_over.store(false, Ordering::Release);
    }

    pub(crate) fn stats(&self, worker: usize) -> &WorkerStats {
        &self.workers[worker - 1]
    }

    pub(crate) fn total(&self, f: impl Fn(&WorkerStats) -> u64) -> u64 {
        self.workers.iter().map(f).sum()
    }
}

/// A signal's name for log lines.
pub(crate) fn signal_name(signo: i32) -> &'static str {
    match signo {
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGHUP => "SIGHUP",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL",
        _ => "signal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_only_moves_forward() {
        let s = Shared::new(2);
        assert_eq!(s.phase(), Phase::Running);
        assert!(!s.shutting_down());
        s.advance(Phase::LameDuck);
        assert!(s.shutting_down());
        s.advance(Phase::Draining);
        s.advance(Phase::LameDuck);
        assert_eq!(s.phase(), Phase::Draining);
        s.advance(Phase::Forced);
        assert_eq!(s.phase(), Phase::Forced);
    }

    #[test]
    fn a_handover_drain_keeps_health_ok_until_a_signal() {
        let s = Shared::new(1);
        s.hand_over();
        s.advance(Phase::Draining);
        assert!(!s.shutting_down());
        s.signalled_after_handover();
        assert!(s.shutting_down());
    }

    #[test]
    fn stats_are_per_worker_and_padded() {
        let s = Shared::new(3);
        s.stats(2).rejected.fetch_add(5, Ordering::Relaxed);
        s.stats(3).rejected.fetch_add(1, Ordering::Relaxed);
        assert_eq!(s.total(|w| w.rejected.load(Ordering::Relaxed)), 6);
        assert!(std::mem::align_of::<WorkerStats>() >= 128);
    }
}
