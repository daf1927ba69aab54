//! A hot upgrade attempt, from the old process's side: start the successor,
//! wait for it to say it is ready, and collect it if it never does.
//!
//! Runs as a task on the coordinator's executor and ends in one [`Outcome`]:
//! - `Ready`: the successor wrote `READY` on its readiness socket. It serves
//!   the same sockets from now on; the coordinator drains this process.
//! - `Failed`: it exited or crashed first, wrote something else, or was not
//!   ready within upgrade_timeout. In the last case it is stopped (SIGTERM,
//!   so connections it may already have taken are finished, then SIGKILL
//!   after a grace). Either way it has been reaped before `Failed` is
//!   reported: an upgrade never leaves a zombie or an orphan behind, and the
//!   old process keeps serving throughout.

use super::successor::{self, Child, Ended, Exec};
use crate::server::listener::Listeners;
use crate::shutdown::{notify, signal_name};
use futures_lite::future;
use futures_lite::io::AsyncReadExt;
use glommio::timer::Timer;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, RawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// The line a successor writes once every worker listens.
pub(crate) const READY_LINE: &[u8] = b"READY\n";

/// How an attempt ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    Ready(i32),
    /// The successor (already reaped) and why it failed.
    Failed {
        pid: i32,
        why: String,
    },
}

enum Report {
    Ready,
    Gone,
    Garbage(String),
    Timeout,
}

/// Watches a started successor until it is ready or gone. `grace` is how long
/// a successor told to stop may take before it is killed.
pub(crate) async fn watch(child: Child, ready_timeout: Duration, grace: Duration) -> Outcome {
    let pid = child.pid;
    // SAFETY: our end of the readiness socket pair, owned from here on.
    let mut stream = unsafe { glommio::net::UnixStream::from_raw_fd(child.ready.into_raw_fd()) };
    let read = async {
        let mut line = Vec::new();
        let mut chunk = [0u8; 64];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return Report::Gone,
                Ok(n) => line.extend_from_slice(&chunk[..n]),
            }
            if line.contains(&b'\n') || line.len() > 256 {
                return if line == READY_LINE {
                    Report::Ready
                } else {
                    Report::Garbage(String::from_utf8_lossy(&line).trim().chars().take(80).collect())
                };
            }
        }
    };
    let timeout = async {
        Timer::new(ready_timeout).await;
        Report::Timeout
    };
    match future::or(read, timeout).await {
        Report::Ready => Outcome::Ready(pid),
        Report::Gone => {
            let ended = reap(pid, grace).await;
            Outcome::Failed { pid, why: format!("successor pid {pid} {ended} before it was ready") }
        }
        Report::Garbage(said) => {
            successor::kill(pid, libc::SIGTERM);
            let ended = reap(pid, grace).await;
            Outcome::Failed {
                pid,
                why: format!(
                    "successor pid {pid} answered {said:?} instead of READY (is it a pounce binary?); stopped it: it {ended}"
                ),
            }
        }
        Report::Timeout => {
            log::warn!(
                "Upgrade: successor pid {pid} is not ready after {:.1}s (upgrade_timeout); stopping it",
                ready_timeout.as_secs_f64()
            );
            successor::kill(pid, libc::SIGTERM);
            let ended = reap(pid, grace).await;
            Outcome::Failed {
                pid,
                why: format!(
                    "successor pid {pid} was not ready within {:.1}s (upgrade_timeout); stopped it: it {ended}",
                    ready_timeout.as_secs_f64()
                ),
            }
        }
    }
}

/// Waits for child `pid` to exit and collects it; past `grace`, kills it
/// (SIGKILL) first.
pub(crate) async fn reap(pid: i32, grace: Duration) -> Ended {
    let until = Instant::now() + grace;
    loop {
        if let Some(ended) = successor::try_wait(pid) {
            return ended;
        }
        if Instant::now() >= until {
            log::warn!(
                "Upgrade: successor pid {pid} did not exit within {:.1}s; killing it",
                grace.as_secs_f64()
            );
            successor::kill(pid, libc::SIGKILL);
            return successor::wait_blocking(pid).unwrap_or(Ended::Killed(libc::SIGKILL));
        }
        Timer::new(Duration::from_millis(10)).await;
    }
}

/// The coordinator's view of hot upgrades: at most one at a time, and
/// every successor it started accounted for until it serves or is reaped.
pub(crate) struct Upgrader {
    exec: Exec,
    listeners: Listeners,
    ready_timeout: Duration,
    /// How long a successor told to stop may take (its own drain).
    grace: Duration,
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    /// Started, not ready yet: its watch task will report.
    Starting(i32),
    /// Started, then told to stop because this process is shutting down:
    /// its watch task will report once it is gone.
    Aborted(i32),
    /// Ready, but this process was shutting down: told to stop, to be
    /// reaped before this process exits.
    Stopping(i32),
    /// Ready and serving: this process hands over to it.
    HandedOver(i32),
}

impl Upgrader {
    pub(crate) fn new(
        exec: Exec,
        listeners: Listeners,
        ready_timeout: Duration,
        grace: Duration,
    ) -> Upgrader {
        Upgrader { exec, listeners, ready_timeout, grace, state: State::Idle }
    }

    pub(crate) fn listeners(&self) -> &Listeners {
        &self.listeners
    }

    /// SIGUSR2/SIGHUP while serving: starts a successor whose outcome is
    /// handed to `deliver`, unless one is already on its way.
    pub(crate) fn request(&mut self, signo: i32, deliver: Rc<dyn Fn(Outcome)>) {
        let name = signal_name(signo);
        match self.state {
            State::Starting(pid) | State::Aborted(pid) | State::Stopping(pid) => {
                log::warn!(
                    "Received {name} during the upgrade already under way (successor pid {pid}) — ignored"
                );
                return;
            }
            State::HandedOver(pid) => {
                log::warn!(
                    "Received {name} after handing over to pid {pid} — ignored (signal that process instead)"
                );
                return;
            }
            State::Idle => {}
        }
        log::info!("Received {name} — starting a hot upgrade: {}", self.exec.display());
        notify::notify(&format!(
            "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=Hot upgrade: starting a successor",
            notify::monotonic_usec()
        ));
        let fds: Vec<RawFd> = self.listeners.sockets.iter().map(|s| s.as_raw_fd()).collect();
        let held = self.listeners.origin.held_elsewhere();
        let t = Instant::now();
        match successor::spawn(&self.exec, &fds, &self.listeners.names, held) {
            Ok(child) => {
                let pid = child.pid;
                log::debug!("Upgrade: fork and exec of pid {pid} took {:?}", t.elapsed());
                log::info!(
                    "Upgrade: started successor pid {pid} with {} listening socket(s); waiting up to {:.1}s for it to be ready",
                    fds.len(),
                    self.ready_timeout.as_secs_f64()
                );
                self.state = State::Starting(pid);
                let (timeout, grace) = (self.ready_timeout, self.grace);
                glommio::spawn_local(async move { deliver(watch(child, timeout, grace).await) }).detach();
            }
            Err(e) => self.failed(&format!("cannot start {}: {e}", self.exec.path.display())),
        }
    }

    /// A watch task's report. Returns the successor's pid when it is ready
    /// and this process should hand over to it.
    pub(crate) fn settle(&mut self, outcome: Outcome) -> Option<i32> {
        match (self.state, outcome) {
            (State::Starting(_), Outcome::Ready(pid)) => {
                self.state = State::HandedOver(pid);
                Some(pid)
            }
            (State::Starting(_), Outcome::Failed { why, .. }) => {
                self.state = State::Idle;
                self.failed(&why);
                None
            }
            (State::Aborted(_), Outcome::Ready(pid)) => {
                // It got ready just as it was told to stop: it is draining.
                self.state = State::Stopping(pid);
                None
            }
            (State::Aborted(_), Outcome::Failed { pid, why }) => {
                log::info!(
                    "Upgrade: successor pid {pid} is gone ({})",
                    why.replace(&format!("successor pid {pid} "), "")
                );
                self.state = State::Idle;
                None
            }
            (state, outcome) => {
                log::debug!("upgrade outcome {outcome:?} in state {state:?}");
                None
            }
        }
    }

    fn failed(&self, why: &str) {
        log::error!(
            "Upgrade failed: {why}; still serving. Check the binary at {} and its configuration \
             (the successor's own log lines, if any, are above)",
            self.exec.path.display()
        );
        notify::notify(&format!("READY=1\nSTATUS=Upgrade failed: {why}; still serving"));
    }

    /// This process is shutting down: a successor still starting is told to
    /// stop too (SIGTERM: it drains whatever it took), so none outlives it.
    pub(crate) fn abort(&mut self) {
        if let State::Starting(pid) = self.state {
            log::info!(
                "Upgrade: stopping successor pid {pid}, which is not ready yet: this process is shutting down"
            );
            successor::kill(pid, libc::SIGTERM);
            self.state = State::Aborted(pid);
        }
    }

    /// A successor still to be waited for before this process exits.
    pub(crate) fn pending(&self) -> bool {
        matches!(self.state, State::Starting(_) | State::Aborted(_) | State::Stopping(_))
    }

    /// Ready while this process was shutting down: waits for it to exit.
    pub(crate) fn stopping(&self) -> Option<i32> {
        match self.state {
            State::Stopping(pid) => Some(pid),
            _ => None,
        }
    }

    /// Last resort before exiting: a successor still there is killed and
    /// reaped, so no orphan is left behind.
    pub(crate) fn kill_remaining(&mut self) {
        if let State::Starting(pid) | State::Aborted(pid) | State::Stopping(pid) = self.state {
            log::warn!("Upgrade: successor pid {pid} is still running as this process exits; killing it");
            successor::kill(pid, libc::SIGKILL);
            let _ = successor::wait_blocking(pid);
            self.state = State::Idle;
        }
    }

    /// The stopped successor has been reaped (see [`Self::stopping`]).
    pub(crate) fn reaped(&mut self, ended: Ended) {
        if let State::Stopping(pid) = self.state {
            log::info!("Upgrade: successor pid {pid} {ended}");
            self.state = State::Idle;
        }
    }
}
