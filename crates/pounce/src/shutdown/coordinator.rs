//! The coordinator: the one global timeline of a pounce process, run on the
//! main thread's executor.
//!
//! ```text
//! Starting ──all Ready──▶ Running ──signal──▶ LameDuck ──shutdown_delay──▶ Draining
//!                                                              │
//!                          all Stopped ◀───────────────────────┤
//!                          (exit 0)                            └─shutdown_timeout─▶ Forced (exit 3)
//! ```
//!
//! Workers drain on their own; the coordinator only broadcasts the phase
//! changes, holds the deadline, force-terminates the laggards and chooses the
//! exit code. A worker that dies (its channel closes without `Stopped`) makes
//! the exit code 1 and starts a shutdown of the others.

use super::{Command, Event, Phase, Shared, notify};
use crate::config::ServerConfig;
use crate::exit::ExitStatus;
use futures_lite::future;
use glommio::channels::local_channel::{self, LocalReceiver};
use glommio::channels::shared_channel::{ConnectedReceiver, ConnectedSender};
use glommio::timer::Timer;
use std::net::SocketAddr;
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
    pub local_addr: SocketAddr,
    pub commands: Vec<ConnectedSender<Command>>,
    pub events: Vec<ConnectedReceiver<Event>>,
    pub signals: ConnectedReceiver<i32>,
}

/// What woke the coordinator.
enum Wake {
    Worker(usize, Option<Event>),
    Signal,
    Timer,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum WorkerState {
    Starting,
    Serving,
    Stopped,
    Dead,
}

impl Coordinator {
    pub(crate) async fn run(self) -> ExitStatus {
        let Coordinator { config, shared, local_addr, commands, events, signals } = self;
        let n = commands.len();
        let events = merge(events);
        let mut state = vec![WorkerState::Starting; n];
        let mut status = ExitStatus::Clean;

        // Start-up: wait until every worker listens (or a signal/death).
        let mut signalled = false;
        while state.contains(&WorkerState::Starting) && !signalled {
            match next(&events, &signals, None).await {
                Wake::Worker(k, Some(Event::Ready)) => state[k] = WorkerState::Serving,
                Wake::Worker(k, ev) => {
                    dead_or_stopped(&mut state, k, ev, &mut status);
                    if status == ExitStatus::Fatal {
                        break;
                    }
                }
                Wake::Signal => signalled = true,
                Wake::Timer => {}
            }
        }
        if status == ExitStatus::Clean && !signalled {
            log::info!("Listening on http://{} with {} worker(s)", display_addr(&config, local_addr), n);
            notify::notify(&format!("READY=1\nSTATUS=Serving on {local_addr} with {n} worker(s)"));

            // Running: until a signal or a worker death.
            loop {
                match next(&events, &signals, None).await {
                    Wake::Signal => break,
                    Wake::Worker(k, ev) => {
                        dead_or_stopped(&mut state, k, ev, &mut status);
                        if status == ExitStatus::Fatal {
                            shared.advance(Phase::LameDuck);
                            break;
                        }
                    }
                    Wake::Timer => {}
                }
            }

            // Lame duck: keep serving, health already answers 503.
            let delay = config.shutdown_delay;
            if !delay.is_zero() && status == ExitStatus::Clean {
                log::info!(
                    "Waiting {:.1}s (shutdown_delay) before draining; health checks answer 503 meanwhile",
                    delay.as_secs_f64()
                );
                let until = Instant::now() + delay;
                while Instant::now() < until {
                    if let Wake::Worker(k, ev) = next(&events, &signals, Some(until)).await {
                        dead_or_stopped(&mut state, k, ev, &mut status);
                    }
                }
            }
        }

        // Drain.
        shared.advance(Phase::Draining);
        let live = state.iter().filter(|s| **s != WorkerState::Dead).count();
        log::info!("Shutting down {live} worker(s)...");
        let drain_started = Instant::now();
        for (k, tx) in commands.iter().enumerate() {
            if state[k] != WorkerState::Dead {
                let _ = tx.try_send(Command::Drain);
            }
        }
        let deadline = drain_started + config.shutdown_timeout;
        let mut next_status = drain_started;
        while state.iter().any(|s| matches!(s, WorkerState::Starting | WorkerState::Serving)) {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            if now >= next_status {
                let active = shared.total(|w| w.active.load(Ordering::Relaxed) as u64);
                notify::notify(&format!("STATUS=Draining {active} connection(s)"));
                next_status = now + STATUS_EVERY;
            }
            if let Wake::Worker(k, ev) = next(&events, &signals, Some(deadline.min(next_status))).await {
                dead_or_stopped(&mut state, k, ev, &mut status);
            }
        }

        let laggards: Vec<usize> =
            (0..n).filter(|&k| matches!(state[k], WorkerState::Starting | WorkerState::Serving)).collect();
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
            while state.iter().any(|s| matches!(s, WorkerState::Starting | WorkerState::Serving))
                && Instant::now() < until
            {
                if let Wake::Worker(k, ev) = next(&events, &signals, Some(until)).await {
                    dead_or_stopped(&mut state, k, ev, &mut status);
                }
            }
            for (k, s) in state.iter().enumerate() {
                if matches!(s, WorkerState::Starting | WorkerState::Serving) {
                    log::error!("Worker {} did not respond to force termination; exiting anyway", k + 1);
                }
            }
            if status != ExitStatus::Fatal {
                status = ExitStatus::Forced;
            }
        } else if status == ExitStatus::Clean {
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
            status.code()
        );
        status
    }
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

/// `127.0.0.1:8000`, `[::1]:8000`, or `localhost:8000` as the user wrote it.
fn display_addr(config: &ServerConfig, addr: SocketAddr) -> String {
    if config.host().eq_ignore_ascii_case("localhost") {
        format!("localhost:{}", addr.port())
    } else {
        addr.to_string()
    }
}

/// Fans the per-worker event channels into one local channel, tagging each
/// event with its worker index; `None` means the worker's channel closed.
fn merge(events: Vec<ConnectedReceiver<Event>>) -> LocalReceiver<(usize, Option<Event>)> {
    let (tx, rx) = local_channel::new_unbounded();
    let tx = std::rc::Rc::new(tx);
    for (k, ev) in events.into_iter().enumerate() {
        let tx = tx.clone();
        glommio::spawn_local(async move {
            loop {
                let e = ev.recv().await;
                let done = e.is_none() || matches!(e, Some(Event::Stopped { .. }));
                let _ = tx.send((k, e)).await;
                if done {
                    break;
                }
            }
        })
        .detach();
    }
    rx
}

async fn next(
    events: &LocalReceiver<(usize, Option<Event>)>,
    signals: &ConnectedReceiver<i32>,
    until: Option<Instant>,
) -> Wake {
    let ev = async {
        match events.recv().await {
            Some((k, e)) => Wake::Worker(k, e),
            None => future::pending().await,
        }
    };
    let sig = async {
        match signals.recv().await {
            Some(_) => Wake::Signal,
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
    future::or(ev, future::or(sig, timer)).await
}
