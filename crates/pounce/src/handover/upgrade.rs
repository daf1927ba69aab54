//! The coordinator's view of hot upgrades: at most one at a time, and every
//! successor it started accounted for until it serves or is reaped. The
//! coordinator decides *when* (signals, shutdown); this says *what happens* to
//! the successor.

use super::link;
use super::successor::{self, Ended, Exec};
use super::watch::{self, Link, Outcome};
use crate::server::listener::Listeners;
use crate::shutdown::{notify, signal_name};
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Hot upgrades as the coordinator drives them.
pub(crate) struct Upgrader {
    exec: Exec,
    listeners: Listeners,
    ready_timeout: Duration,
    /// How long a successor told to stop may take (its own drain).
    grace: Duration,
    state: State,
    /// The link to a successor being stopped, held open so that it does not
    /// take our EOF for "the predecessor is gone" and claim the sockets.
    stopping_link: Option<Link>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    /// Started, not ready yet: its watch task will report.
    Starting(i32),
    /// Started, then told to stop because this process is shutting down:
    /// its watch task will report once it is gone or ready.
    Aborted(i32),
    /// Ready, but told to stop (this process was shutting down): to be
    /// reaped before this process exits.
    Stopping(i32),
    /// Ready and serving: this process handed over to it.
    HandedOver(i32),
}

impl Upgrader {
    pub(crate) fn new(
        exec: Exec,
        listeners: Listeners,
        ready_timeout: Duration,
        grace: Duration,
    ) -> Upgrader {
        Upgrader { exec, listeners, ready_timeout, grace, state: State::Idle, stopping_link: None }
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
        let chain = super::keeper::chain_successor();
        match successor::spawn(&self.exec, &fds, &self.listeners.names, held, chain) {
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
                glommio::spawn_local(async move { deliver(watch::watch(child, timeout, grace).await) })
                    .detach();
            }
            Err(e) => self.failed(&format!("cannot start {}: {e}", self.exec.path.display())),
        }
    }

    /// A watch task's report. `shutting_down`: a signal to stop has already
    /// arrived, so a successor that is ready now must not be handed over to
    /// (its stop would be lost); it is told to stop instead. Returns the
    /// successor and the link to it when this process hands over: the
    /// successor has been told TAKEOVER.
    pub(crate) fn settle(
        &mut self,
        outcome: Outcome,
        shutting_down: bool,
        deliver: &Rc<dyn Fn(Outcome)>,
    ) -> Option<(i32, Link)> {
        match (self.state, outcome) {
            (State::Starting(_), Outcome::Ready { pid, link }) if !shutting_down => {
                if let Err(e) = link::say(&link.writer, link::TAKEOVER) {
                    // It died between READY and now: keep serving.
                    let why = format!("successor pid {pid} went away right after it was ready ({e})");
                    let grace = self.grace;
                    let deliver = deliver.clone();
                    glommio::spawn_local(async move { deliver(watch::stop(pid, grace, why).await) }).detach();
                    return None;
                }
                self.state = State::HandedOver(pid);
                Some((pid, link))
            }
            (State::Starting(_) | State::Aborted(_), Outcome::Ready { pid, link }) => {
                log::info!(
                    "Upgrade: successor pid {pid} is ready, but this process is shutting down: stopping it"
                );
                successor::kill(pid, libc::SIGTERM);
                self.state = State::Stopping(pid);
                self.stopping_link = Some(link);
                None
            }
            (State::Starting(_), Outcome::Failed { why, .. }) => {
                self.state = State::Idle;
                self.failed(&why);
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
            (State::Idle, Outcome::Failed { why, .. }) => {
                // A successor that died right after READY (see above).
                self.failed(&why);
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
    /// stop too (SIGTERM: it drains whatever it took, leaving the sockets
    /// alone since it never got TAKEOVER), so none outlives it.
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

    /// Ready while this process was shutting down: to wait for.
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
            self.stopping_link = None;
        }
    }

    /// The stopped successor has been reaped (see [`Self::stopping`]).
    pub(crate) fn reaped(&mut self, ended: Ended) {
        if let State::Stopping(pid) = self.state {
            log::info!("Upgrade: successor pid {pid} {ended}");
            self.state = State::Idle;
            self.stopping_link = None;
        }
    }
}
