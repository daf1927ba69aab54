//! The coordinator: the one global timeline of a pounce process, run on the
//! main thread's executor.
//!
//! ```text
//! Starting ──all Ready──▶ Running ──signal──▶ LameDuck ──shutdown_delay──▶ Draining
//!                          │   ▲                                   │
//!              SIGUSR2/HUP │   │ successor failed                  │
//!                          ▼   │                                   │
//!                       Upgrading ──successor ready──▶ Draining     │
//!                                  (handover: listeners released)  │
//!                          all Stopped ◀───────────────────────────┤
//!                          (exit 0)                                └─shutdown_timeout─▶ Forced (exit 3)
//! ```
//!
//! Workers drain on their own; the coordinator only broadcasts the phase
//! changes, holds the deadline, force-terminates the laggards and chooses the
//! exit code. A worker that dies (its channel closes without `Stopped`) makes
//! the exit code 1 and starts a shutdown of the others. Hot upgrades are
//! started and watched by [`Upgrader`]; the coordinator decides what their
//! outcome means for the timeline.

use super::{Command, Event, ListenerAction, Phase, Shared, notify, signal::is_upgrade, signal_name};
use crate::config::{DrainNewConnections, ServerConfig};
use crate::exit::ExitStatus;
use crate::handover::lineage::{Lineage, LinkEvent};
use crate::handover::upgrade::Upgrader;
use crate::handover::watch::{self, Outcome};
use crate::handover::{Origin, keeper};
use futures_lite::future;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::channels::shared_channel::{ConnectedReceiver, ConnectedSender};
use glommio::timer::Timer;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How long forced workers get to confirm before the process exits anyway.
const FORCE_GRACE: Duration = Duration::from_millis(500);
/// How often `STATUS=` is refreshed while draining.
const STATUS_EVERY: Duration = Duration::from_millis(500);

pub(crate) struct Coordinator {
    pub config: Arc<ServerConfig>,
    pub shared: Arc<Shared>,
    pub upgrader: Upgrader,
    /// This process's end of the link to its predecessor, when it is a hot
    /// upgrade's successor.
    pub predecessor: Option<OwnedFd>,
    pub commands: Vec<ConnectedSender<Command>>,
    pub events: Vec<ConnectedReceiver<Event>>,
    pub signals: ConnectedReceiver<i32>,
}

/// How the process ended.
pub(crate) struct Finish {
    pub status: ExitStatus,
    /// The successor this process handed over to, which now serves.
    pub successor: Option<i32>,
}

/// What woke the coordinator.
enum Wake {
    Worker(usize, Option<Event>),
    Signal(i32),
    Upgrade(Outcome),
    Link(LinkEvent),
    Timer,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum WorkerState {
    Starting,
    Serving,
    Stopped,
    Dead,
}

/// The coordinator's state while it runs; the timeline is [`Coordinator::run`].
struct Run {
    state: Vec<WorkerState>,
    status: ExitStatus,
    upgrader: Upgrader,
    lineage: Lineage,
    /// The successor this process handed over to.
    successor: Option<i32>,
    deliver: Rc<dyn Fn(Outcome)>,
    deliver_link: Rc<dyn Fn(LinkEvent)>,
}

impl Run {
    fn live_workers(&self) -> bool {
        self.state.iter().any(|s| matches!(s, WorkerState::Starting | WorkerState::Serving))
    }

    /// Wakes after the serving phase: worker reports, signals that change
    /// nothing now, upgrade outcomes and link events.
    fn on_wake_while_stopping(&mut self, wake: Wake) {
        match wake {
            Wake::Worker(k, ev) => dead_or_stopped(&mut self.state, k, ev, &mut self.status),
            Wake::Signal(s) if is_upgrade(s) => match self.successor {
                Some(pid) => log::warn!(
                    "Received {} after handing over to pid {pid} — ignored (signal that process instead)",
                    signal_name(s)
                ),
                None => log::warn!("Received {} while shutting down — ignored", signal_name(s)),
            },
            Wake::Signal(s) => {
                if let Some(pid) = self.successor {
                    log::info!(
                        "{} changes nothing: already draining after handing over to pid {pid}",
                        signal_name(s)
                    );
                }
            }
            Wake::Upgrade(o) => {
                // Shutting down: a successor that is ready now is stopped.
                self.upgrader.settle(o, true, &self.deliver);
            }
            Wake::Link(ev) => self.lineage.on_event(ev),
            Wake::Timer => {}
        }
    }
}

impl Coordinator {
    pub(crate) async fn run(self) -> Finish {
        let Coordinator { config, shared, upgrader, predecessor, commands, events, signals } = self;
        let n = commands.len();
        let (wake_tx, wakes) = local_channel::new_unbounded();
        let wake_tx = Rc::new(wake_tx);
        merge(events, &wake_tx);
        let deliver: Rc<dyn Fn(Outcome)> = {
            let tx = wake_tx.clone();
            Rc::new(move |o| {
                let _ = tx.try_send(Wake::Upgrade(o));
            })
        };
        let deliver_link: Rc<dyn Fn(LinkEvent)> = {
            let tx = wake_tx.clone();
            Rc::new(move |e| {
                let _ = tx.try_send(Wake::Link(e));
            })
        };
        let mut run = Run {
            state: vec![WorkerState::Starting; n],
            status: ExitStatus::Clean,
            upgrader,
            lineage: Lineage::new(config.pid_file.clone()),
            successor: None,
            deliver,
            deliver_link,
        };

        // Start-up: wait until every worker listens (or a signal/death).
        let mut signalled = false;
        while run.state.contains(&WorkerState::Starting) && !signalled {
            match next(&wakes, &signals, None).await {
                Wake::Worker(k, ev) => {
                    dead_or_stopped(&mut run.state, k, ev, &mut run.status);
                    if run.status == ExitStatus::Fatal {
                        break;
                    }
                }
                Wake::Signal(s) if is_upgrade(s) => {
                    log::warn!("Received {} while starting — ignored (not serving yet)", signal_name(s));
                }
                Wake::Signal(_) => signalled = true,
                Wake::Upgrade(_) | Wake::Link(_) | Wake::Timer => {}
            }
        }
        if run.status == ExitStatus::Clean && !signalled {
            let listeners = run.upgrader.listeners();
            let addrs = listeners.addrs();
            let inherited = match listeners.origin {
                Origin::Bound => String::new(),
                _ => format!(" on {} inherited socket(s)", listeners.sockets.len()),
            };
            let successor_of = predecessor.is_some();
            if !successor_of {
                // The pid file first: by the time anyone acts on this
                // process's readiness (the log line, systemd), it names it.
                run.lineage.ready(None, run.deliver_link.clone());
            }
            log::info!("Listening on {} with {n} worker(s){inherited}", display_addrs(&config, &addrs));
            if successor_of {
                // The predecessor answers TAKEOVER and tells systemd the new
                // main pid: this process is not the service until then.
                run.lineage.ready(predecessor, run.deliver_link.clone());
            } else {
                let list: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
                notify::notify(&format!("READY=1\nSTATUS=Serving on {} with {n} worker(s)", list.join(", ")));
            }

            // Running: until a signal, a handover or a worker death.
            loop {
                match next(&wakes, &signals, None).await {
                    Wake::Signal(s) if is_upgrade(s) => run.upgrader.request(s, run.deliver.clone()),
                    Wake::Signal(_) => break,
                    Wake::Upgrade(o) => {
                        // A stop signal may already be on its way (the signal
                        // thread publishes it first): then no handover.
                        if let Some((pid, link)) =
                            run.upgrader.settle(o, shared.shutting_down(), &run.deliver)
                        {
                            hand_over(&shared, pid, &addrs);
                            run.lineage.handed_over(pid, link, run.deliver_link.clone());
                            run.successor = Some(pid);
                            break;
                        }
                    }
                    Wake::Link(ev) => run.lineage.on_event(ev),
                    Wake::Worker(k, ev) => {
                        dead_or_stopped(&mut run.state, k, ev, &mut run.status);
                        if run.status == ExitStatus::Fatal {
                            shared.advance(Phase::LameDuck);
                            break;
                        }
                    }
                    Wake::Timer => {}
                }
            }

            if run.successor.is_none() {
                run.upgrader.abort();
                // Lame duck: keep serving, health already answers 503.
                let delay = config.shutdown_delay;
                if !delay.is_zero() && run.status == ExitStatus::Clean {
                    log::info!(
                        "Waiting {:.1}s (shutdown_delay) before draining; health checks answer 503 meanwhile",
                        delay.as_secs_f64()
                    );
                    let until = Instant::now() + delay;
                    while Instant::now() < until {
                        let wake = next(&wakes, &signals, Some(until)).await;
                        run.on_wake_while_stopping(wake);
                    }
                }
            }
        } else {
            run.upgrader.abort();
        }

        // Drain. The sockets are left alone (Release) when another process
        // serves them: the successor this process handed over to, the
        // predecessor that has not handed over yet, or the service manager.
        shared.advance(Phase::Draining);
        let action = if run.successor.is_some()
            || !run.lineage.owns_sockets()
            || run.upgrader.listeners().origin.held_elsewhere()
        {
            ListenerAction::Release
        } else {
            match config.drain_new_connections {
                DrainNewConnections::Respond503 => ListenerAction::Respond503,
                DrainNewConnections::Refuse => ListenerAction::Refuse,
            }
        };
        let live = run.state.iter().filter(|s| **s != WorkerState::Dead).count();
        log::info!("Shutting down {live} worker(s)...");
        let drain_started = Instant::now();
        for (k, tx) in commands.iter().enumerate() {
            if run.state[k] != WorkerState::Dead {
                let _ = tx.try_send(Command::Drain(action));
            }
        }
        let deadline = drain_started + config.shutdown_timeout;
        let mut next_status = drain_started;
        while run.live_workers() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            if now >= next_status {
                let active = shared.total(|w| w.active.load(Ordering::Relaxed) as u64);
                notify::notify(&format!("STATUS=Draining {active} connection(s)"));
                next_status = now + STATUS_EVERY;
            }
            let wake = next(&wakes, &signals, Some(deadline.min(next_status))).await;
            run.on_wake_while_stopping(wake);
        }

        let laggards: Vec<usize> = (0..n)
            .filter(|&k| matches!(run.state[k], WorkerState::Starting | WorkerState::Serving))
            .collect();
        if !laggards.is_empty() {
            shared.advance(Phase::Forced);
            for &k in &laggards {
                log::warn!(
                    "Worker {} did not stop within shutdown_timeout ({:.1}s) — force terminating",
                    k + 1,
                    config.shutdown_timeout.as_secs_f64()
                );
                let _ = commands[k].try_send(Command::Force);
            }
            notify::notify("STATUS=Force terminating");
            let until = Instant::now() + FORCE_GRACE;
            while run.live_workers() && Instant::now() < until {
                let wake = next(&wakes, &signals, Some(until)).await;
                run.on_wake_while_stopping(wake);
            }
            for (k, s) in run.state.iter().enumerate() {
                if matches!(s, WorkerState::Starting | WorkerState::Serving) {
                    log::error!("Worker {} did not respond to force termination; exiting anyway", k + 1);
                }
            }
            if run.status != ExitStatus::Fatal {
                run.status = ExitStatus::Forced;
            }
        } else if run.status == ExitStatus::Clean {
            log::info!("All workers stopped");
        }

        let took = drain_started.elapsed();
        let completed = shared.total(|w| w.drain_requests.load(Ordering::Relaxed));
        let rejected = shared.total(|w| w.rejected.load(Ordering::Relaxed));
        let forced = shared.total(|w| w.forced.load(Ordering::Relaxed));
        log::info!(
            "Drain finished in {:.2}s: {completed} request(s) completed during the drain, \
             {rejected} connection(s) answered 503, {forced} connection(s) force-closed; exit code {}",
            took.as_secs_f64(),
            run.status.code()
        );

        // Before exiting: a successor this process started and stopped must
        // be gone (no orphan), and a predecessor still draining after handing
        // over to this one is waited for (under systemd's KillMode=mixed,
        // the main process's exit gets it SIGKILLed mid-drain).
        let until = Instant::now().max(deadline) + FORCE_GRACE;
        if let Some(pid) = run.lineage.predecessor_draining() {
            log::info!("Waiting for the previous process (pid {pid}) to finish its drain before exiting");
        }
        while (run.upgrader.pending() || run.lineage.predecessor_draining().is_some())
            && Instant::now() < until
        {
            if let Some(pid) = run.upgrader.stopping() {
                let ended = watch::reap(pid, until.saturating_duration_since(Instant::now())).await;
                run.upgrader.reaped(ended);
                continue;
            }
            let wake = next(&wakes, &signals, Some(until)).await;
            run.on_wake_while_stopping(wake);
        }
        run.upgrader.kill_remaining();
        run.lineage.drain_over();
        Finish { status: run.status, successor: run.successor }
    }
}

/// The successor serves: systemd follows it as the main process, health
/// keeps answering ok through this drain, and a container's init (and each
/// process of a chain of upgrades under one) passes its signals on to the
/// successor from now on (`handover::keeper`).
fn hand_over(shared: &Shared, pid: i32, addrs: &[SocketAddr]) {
    let list: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
    log::info!(
        "Upgrade: successor pid {pid} is ready and serving; this process (pid {}) stops accepting and drains",
        std::process::id()
    );
    shared.hand_over();
    notify::notify(&format!(
        "MAINPID={pid}\nREADY=1\nSTATUS=Serving on {} (hot upgrade from pid {})",
        list.join(", "),
        std::process::id()
    ));
    notify::stop();
    keeper::handed_over(pid);
}

fn dead_or_stopped(state: &mut [WorkerState], k: usize, ev: Option<Event>, status: &mut ExitStatus) {
    match ev {
        Some(Event::Ready) => state[k] = WorkerState::Serving,
        Some(Event::Stopped { .. }) => state[k] = WorkerState::Stopped,
        None => {
            if state[k] != WorkerState::Stopped {
                state[k] = WorkerState::Dead;
                log::error!("Worker {} died unexpectedly", k + 1);
                *status = ExitStatus::Fatal;
            }
        }
    }
}

/// `http://127.0.0.1:8000`, `http://[::1]:8000`, or `http://localhost:8000`
/// as the user wrote it; several (inherited sockets) separated by commas.
fn display_addrs(config: &ServerConfig, addrs: &[SocketAddr]) -> String {
    let scheme = config.scheme();
    let one = |a: &SocketAddr| {
        if config.host().eq_ignore_ascii_case("localhost") && a.ip().is_loopback() {
            format!("{scheme}://localhost:{}", a.port())
        } else {
            format!("{scheme}://{a}")
        }
    };
    addrs.iter().map(one).collect::<Vec<_>>().join(", ")
}

/// Fans the per-worker event channels into the coordinator's own channel,
/// tagging each event with its worker index; `None` means the worker's
/// channel closed.
fn merge(events: Vec<ConnectedReceiver<Event>>, tx: &Rc<LocalSender<Wake>>) {
    for (k, ev) in events.into_iter().enumerate() {
        let tx = tx.clone();
        glommio::spawn_local(async move {
            loop {
                let e = ev.recv().await;
                let done = e.is_none() || matches!(e, Some(Event::Stopped { .. }));
                let _ = tx.send(Wake::Worker(k, e)).await;
                if done {
                    break;
                }
            }
        })
        .detach();
    }
}

async fn next(wakes: &LocalReceiver<Wake>, signals: &ConnectedReceiver<i32>, until: Option<Instant>) -> Wake {
    let local = async {
        match wakes.recv().await {
            Some(w) => w,
            None => future::pending().await,
        }
    };
    let sig = async {
        match signals.recv().await {
            Some(s) => Wake::Signal(s),
            // The signal thread never hangs up while the process lives.
            None => future::pending().await,
        }
    };
    let timer = async {
        match until {
            Some(t) => {
                Timer::new(t.saturating_duration_since(Instant::now())).await;
                Wake::Timer
            }
            None => future::pending().await,
        }
    };
    future::or(local, future::or(sig, timer)).await
}
