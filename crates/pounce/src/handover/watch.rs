//! Watching a successor that was just started, from the old process's side:
//! wait for it to say it is ready, and collect it if it never does.
//!
//! Runs as a task on the coordinator's executor and ends in one [`Outcome`]:
//! - `Ready`: the successor wrote `READY` on the link ([`super::link`]). It
//!   serves the same sockets; the coordinator decides whether to hand over.
//! - `Failed`: it exited or crashed first, wrote something else, or was not
//!   ready within upgrade_timeout. In the last case it is stopped (SIGTERM,
//!   so connections it may already have taken are finished, then SIGKILL
//!   after a grace). Either way it has been reaped before `Failed` is
//!   reported: an upgrade never leaves a zombie or an orphan behind, and the
//!   old process keeps serving throughout.

use super::link::{self, Heard};
use super::successor::{self, Child, Ended};
use futures_lite::future;
use glommio::net::UnixStream;
use glommio::timer::Timer;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

/// How an attempt ended.
pub(crate) enum Outcome {
    /// Ready: the link to it, to confirm the handover and to notice its exit.
    Ready { pid: i32, link: Link },
    /// The successor (already reaped) and why it failed.
    Failed { pid: i32, why: String },
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Ready { pid, .. } => write!(f, "Ready({pid})"),
            Outcome::Failed { pid, why } => write!(f, "Failed({pid}: {why})"),
        }
    }
}

/// The old process's end of the link to a ready successor.
pub(crate) struct Link {
    /// For writing TAKEOVER.
    pub writer: OwnedFd,
    /// For reading its EOF.
    pub reader: UnixStream,
}

enum Report {
    Heard(Heard),
    Timeout,
}

/// Watches a started successor until it is ready or gone. `grace` is how long
/// a successor told to stop may take before it is killed.
pub(crate) async fn watch(child: Child, ready_timeout: Duration, grace: Duration) -> Outcome {
    let pid = child.pid;
    let writer = match child.ready.try_clone() {
        Ok(w) => w,
        Err(e) => return stop(pid, grace, format!("cannot watch successor pid {pid}: {e}")).await,
    };
    let mut reader = link::stream(child.ready);
    let read = async { Report::Heard(link::hear(&mut reader, link::READY).await) };
    let timeout = async {
        Timer::new(ready_timeout).await;
        Report::Timeout
    };
    match future::or(read, timeout).await {
        Report::Heard(Heard::Line) => Outcome::Ready { pid, link: Link { writer, reader } },
        Report::Heard(Heard::Gone) => {
            let ended = reap(pid, grace).await;
            Outcome::Failed { pid, why: format!("successor pid {pid} {ended} before it was ready") }
        }
        Report::Heard(Heard::Garbage(said)) => {
            let why =
                format!("successor pid {pid} answered {said:?} instead of READY (is it a pounce binary?)");
            stop(pid, grace, why).await
        }
        Report::Timeout => {
            log::warn!(
                "Upgrade: successor pid {pid} is not ready after {:.1}s (upgrade_timeout); stopping it",
                ready_timeout.as_secs_f64()
            );
            let why = format!(
                "successor pid {pid} was not ready within {:.1}s (upgrade_timeout)",
                ready_timeout.as_secs_f64()
            );
            stop(pid, grace, why).await
        }
    }
}

/// Stops (SIGTERM, SIGKILL after `grace`) and reaps a successor that will
/// not serve; `Failed` with `why` and how it ended.
pub(crate) async fn stop(pid: i32, grace: Duration, why: String) -> Outcome {
    successor::kill(pid, libc::SIGTERM);
    let ended = reap(pid, grace).await;
    Outcome::Failed { pid, why: format!("{why}; stopped it: it {ended}") }
}

/// Waits for child `pid` to exit and collects it; past `grace`, kills it
/// (SIGKILL) first.
pub(crate) async fn reap(pid: i32, grace: Duration) -> Ended {
    let until = Instant::now() + grace;
    loop {
        match successor::try_wait(pid) {
            Ok(Some(ended)) => return ended,
            Ok(None) => {}
            // Not our child (any more): nothing to collect or to kill.
            Err(_) => return Ended::Unknown,
        }
        if Instant::now() >= until {
            log::warn!(
                "Upgrade: successor pid {pid} did not exit within {:.1}s; killing it",
                grace.as_secs_f64()
            );
            successor::kill(pid, libc::SIGKILL);
            return successor::wait_blocking(pid).unwrap_or(Ended::Unknown);
        }
        Timer::new(Duration::from_millis(10)).await;
    }
}
