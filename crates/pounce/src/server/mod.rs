//! The server: start-up, the executor pool, and the hand-off to the
//! coordinator.
//!
//! [`Server::run`] does, in order: check the listening sockets passed in
//! (`LISTEN_FDS`: systemd socket activation or a hot upgrade), register for
//! signals (so an early SIGTERM is queued, not fatal), raise RLIMIT_MEMLOCK,
//! serve the inherited sockets or else bind every worker's listener (failing
//! fast if the port is taken), build the main thread's executor (which doubles as the io_uring
//! availability probe), start the signal thread and one executor thread per
//! worker, wait until each has started, then run the [`Coordinator`] until
//! shutdown or handover is over. Any start-up failure is one log line and
//! exit status 1.

mod connection;
mod deadlines;
mod health;
mod io;
pub(crate) mod listener;
pub(crate) mod pool;
pub(crate) mod readbuf;
mod sched;
pub(crate) mod startup;
mod timing;
mod uring;
mod worker;

use crate::config::{ServerConfig, available_cpus};
use crate::exit::ExitStatus;
use crate::handler::Handler;
use crate::handover::upgrade::Upgrader;
use crate::handover::{Origin, inherit, keeper, pidfile, successor::Exec};
use crate::http::request::{HeadLimits, MAX_TARGET_LEN};
use crate::metrics::worker::{Meter, ServerMetrics};
use crate::metrics::{endpoint, exposition::Sources};
use crate::shutdown::coordinator::{Coordinator, Finish};
use crate::shutdown::{Shared, signal};
use glommio::channels::shared_channel;
use glommio::{LocalExecutor, LocalExecutorBuilder, Placement};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::time::Duration;

/// What each worker's connections share that can be built on the main
/// thread and moved to the worker's: read-only config, the handler, the
/// process-wide counters.
pub(crate) struct WorkerBase<H> {
    pub id: usize,
    pub config: Arc<ServerConfig>,
    pub handler: Arc<H>,
    pub shared: Arc<Shared>,
    pub limits: HeadLimits,
    /// Largest a connection's read buffer may grow.
    pub rbuf_cap: usize,
    /// Every worker's metrics cells, when `--metrics-addr` is set.
    pub metrics: Option<Arc<ServerMetrics>>,
}

impl<H> WorkerBase<H> {
    /// This worker's metrics hooks (no-ops when metrics are off).
    #[inline]
    pub(crate) fn meter(&self) -> Meter<'_> {
        Meter(self.metrics.as_deref().map(|m| m.worker(self.id)))
    }
}

/// A worker's shared state inside its thread: the [`WorkerBase`] plus the
/// socket I/O driver (which also holds the free connection buffers) and the
/// connections' deadlines.
pub(crate) struct WorkerCtx<H> {
    base: WorkerBase<H>,
    pub driver: uring::Driver,
    /// Every connection wait's deadline, kept by one sweeper task.
    pub deadlines: deadlines::Deadlines,
}

impl<H> WorkerCtx<H> {
    pub(crate) fn new(base: WorkerBase<H>, driver: uring::Driver) -> Self {
        WorkerCtx { base, driver, deadlines: deadlines::Deadlines::new() }
    }
}

impl<H> std::ops::Deref for WorkerCtx<H> {
    type Target = WorkerBase<H>;
    fn deref(&self) -> &WorkerBase<H> {
        &self.base
    }
}

/// A configured server, ready to run.
///
/// ```no_run
/// use pounce::{Handler, Request, Response, Server, ServerConfig};
///
/// struct App;
/// impl Handler for App {
///     async fn call(&self, _req: &Request<'_>) -> Response {
///         Response::text(200, "hi")
///     }
/// }
///
/// let config = ServerConfig::builder().port(8080).build().unwrap();
/// let status = Server::new(config, App).run();
/// std::process::exit(status.code().into());
/// ```
pub struct Server<H: Handler> {
    config: ServerConfig,
    handler: H,
}

impl<H: Handler> Server<H> {
    pub fn new(config: ServerConfig, handler: H) -> Self {
        Server { config, handler }
    }

    /// Serves until shut down by SIGTERM/SIGINT; returns how it ended.
    /// Expects a logger to be installed (see [`crate::logging::init`]).
    pub fn run(self) -> ExitStatus {
        install_panic_hook();
        let pid_file = self.config.pid_file.clone();
        let finish = match self.start() {
            Ok(finish) => finish,
            Err(msg) => {
                log::error!("{msg}");
                return ExitStatus::Fatal;
            }
        };
        // After a handover the file is the successor's, which may be renaming
        // its own pid into place right now: reading it and then removing it
        // could remove the successor's. So only a process that handed over to
        // nobody removes it (if it still names it).
        if let (Some(path), None) = (&pid_file, finish.successor) {
            pidfile::remove_if_ours(path, std::process::id());
        }
        match finish.successor {
            // A container's init must outlive the handover (handover::keeper).
            Some(pid) if keeper::must_stay() => keeper::run(pid),
            _ => finish.status,
        }
    }

    fn start(self) -> Result<Finish, String> {
        let Server { config, handler } = self;
        let n = config.workers;
        if let Some(tls) = config.tls() {
            tls.log_at_start();
        }
        // What a successor will be started as: captured before anything else
        // can change it.
        let exec = Exec::capture();
        // Before anything opens a descriptor: one that was not passed must
        // still be free to be found "not open", not taken by our own.
        let inherited = inherit::from_env()?;
        let signals = signal::install().map_err(|e| format!("cannot register signal handlers: {e}"))?;
        startup::ignore_sigpipe();
        startup::default_sigchld();
        let successor = inherited.as_ref().is_some_and(|i| matches!(i.origin, Origin::Predecessor { .. }));
        if let Some(path) = &config.pid_file {
            pidfile::check(path)?;
        }
        let memlock = startup::raise_memlock();
        startup::check_io_uring(memlock)?;
        startup::raise_nofile(config.max_connections);
        let (listeners, predecessor) = match inherited {
            Some(inh) => {
                if inh.ready.is_some() {
                    // A successor is not the service until it has taken over.
                    crate::shutdown::notify::stop();
                }
                let listeners =
                    listener::Listeners { sockets: inh.sockets, names: inh.names, origin: inh.origin };
                log_inherited(&listeners);
                (listeners, inh.ready)
            }
            None => {
                let sockets = listener::bind_group(config.socket_addr(), n, config.backlog)
                    .map_err(|e| e.to_string())?;
                (listener::Listeners::bound(sockets), None)
            }
        };
        // Bound now, like the app's port: one taken is an error at start.
        let metrics_listener =
            config.metrics_addr.map(|addr| endpoint::prepare(addr, successor)).transpose()?;
        let io_memory = startup::io_memory_per_executor(memlock, n + 2);

        // The main thread's executor runs the coordinator; building it first
        // also tells us early, with one clear line, if io_uring is unusable.
        let main_ex = LocalExecutorBuilder::new(Placement::Unbound)
            .name("pounce-main")
            .io_memory(64 << 10)
            .ring_depth(32)
            .make()
            .map_err(|e| startup::diagnose(&e, memlock))?;

        let config = Arc::new(config);
        let handler = Arc::new(handler);
        let shared = Arc::new(Shared::new(n));
        let metrics = metrics_listener.as_ref().map(|_| Arc::new(ServerMetrics::new(n)));
        // Serves until this function returns, after the drain (dropped then).
        let _endpoint = match (metrics_listener, &metrics) {
            (Some(l), Some(m)) => Some(
                endpoint::start(l, Sources { shared: shared.clone(), server: m.clone() })
                    .map_err(|e| format!("cannot start the metrics thread: {e}"))?,
            ),
            _ => None,
        };
        // glommio's channel connect() is a rendezvous that busy-polls until
        // the peer connects. So that no thread spins while the others are
        // still starting (on two cores, spinners starve them), every peer
        // waits at this barrier until the coordinator has registered its
        // ends; after that each connect completes at once.
        let go = Arc::new(Barrier::new(n + 2));
        let (sig_tx, sig_rx) = shared_channel::new_bounded(16);
        signal::spawn(signals, sig_tx, shared.clone(), go.clone()).map_err(|e| e.to_string())?;

        let cpus = available_cpus();
        let pin = config.pin_workers && n <= cpus.cpus.len();
        let limits = HeadLimits { max_header_size: config.max_header_size, max_headers: config.max_headers };
        let rbuf_cap = config.max_header_size.max(MAX_TARGET_LEN + 1024) + 16 * 1024;
        let (started_tx, started_rx) = mpsc::channel::<(usize, Result<(), String>)>();
        let mut commands = Vec::with_capacity(n);
        let mut events = Vec::with_capacity(n);
        let mut shares =
            listeners.shares(n).map_err(|e| format!("cannot share the listening sockets: {e}"))?.into_iter();
        for k in 0..n {
            let id = k + 1;
            let mine = shares.next().unwrap_or_default();
            let (cmd_tx, cmd_rx) = shared_channel::new_bounded(4);
            let (ev_tx, ev_rx) = shared_channel::new_bounded(8);
            commands.push(cmd_tx);
            events.push(ev_rx);
            let init = worker::WorkerInit {
                go: go.clone(),
                base: WorkerBase {
                    id,
                    config: config.clone(),
                    handler: handler.clone(),
                    shared: shared.clone(),
                    limits,
                    rbuf_cap,
                    metrics: metrics.clone(),
                },
                listeners: mine,
                commands: cmd_rx,
                events: ev_tx,
            };
            let cpu = pin.then(|| cpus.cpus[k]);
            let started = started_tx.clone();
            let policy = config.sched_policy;
            std::thread::Builder::new()
                .name(format!("pounce-w{id}"))
                .spawn(move || {
                    match sched::apply(policy) {
                        Ok(sched::Applied::Batch) => log::debug!("Worker {id} runs under SCHED_BATCH"),
                        Ok(sched::Applied::Kept(p)) => log::debug!("Worker {id} keeps {}", sched::name(p)),
                        Err(e) => log::warn!(
                            "Worker {id}: cannot switch to SCHED_BATCH ({e}); it keeps its scheduling policy"
                        ),
                    }
                    let ex = match build_worker_executor(id, cpu, io_memory) {
                        Ok(ex) => ex,
                        Err(e) => {
                            let _ = started.send((id, Err(startup::diagnose(&e, memlock))));
                            return;
                        }
                    };
                    let driver = match uring::Driver::new() {
                        Ok(d) => d,
                        Err(e) => {
                            let _ = started.send((id, Err(format!("cannot set up socket I/O: {e}"))));
                            return;
                        }
                    };
                    let _ = started.send((id, Ok(())));
                    ex.run(worker::run(init, driver));
                })
                .map_err(|e| format!("cannot start worker thread {id}: {e}"))?;
        }
        drop(started_tx);
        for _ in 0..n {
            match started_rx.recv_timeout(Duration::from_secs(30)) {
                Ok((_, Ok(()))) => {}
                Ok((id, Err(msg))) => return Err(format!("worker {id}: {msg}")),
                Err(_) => return Err("a worker thread did not start within 30s".into()),
            }
        }

        let status = main_ex.run(async move {
            // Each connect is a rendezvous with its peer executor: start
            // them all before awaiting any.
            let cmd: Vec<_> = commands.into_iter().map(|c| glommio::spawn_local(c.connect())).collect();
            let ev: Vec<_> = events.into_iter().map(|e| glommio::spawn_local(e.connect())).collect();
            let sig = glommio::spawn_local(sig_rx.connect());
            // Let those tasks register this side of each channel, then let
            // the peers connect.
            glommio::executor().yield_now().await;
            go.wait();
            let mut commands = Vec::with_capacity(n);
            for t in cmd {
                commands.push(t.await);
            }
            let mut events = Vec::with_capacity(n);
            for t in ev {
                events.push(t.await);
            }
            // A successor told to stop gets as long as its own drain.
            let grace = config.shutdown_timeout + Duration::from_secs(1);
            let upgrader = Upgrader::new(exec, listeners, config.upgrade_timeout, grace);
            Coordinator { config, shared, upgrader, predecessor, commands, events, signals: sig.await }
                .run()
                .await
        });
        Ok(status)
    }
}

/// One line saying which sockets were taken over, and from whom.
fn log_inherited(listeners: &listener::Listeners) {
    let list: Vec<String> = listeners
        .sockets
        .iter()
        .zip(&listeners.names)
        .map(|(s, name)| {
            let addr = listener::local_addr(s).map(|a| a.to_string()).unwrap_or_else(|_| "?".into());
            let fd = std::os::fd::AsRawFd::as_raw_fd(s);
            if name.is_empty() { format!("fd {fd} {addr}") } else { format!("fd {fd} {addr} ({name})") }
        })
        .collect();
    log::info!(
        "Serving {} listening socket(s) {}: {}",
        listeners.sockets.len(),
        listeners.origin.describe(),
        list.join(", ")
    );
}

/// A worker's executor, pinned to `cpu` when given. If pinning is refused
/// (a CPU hidden from glommio's topology view), run unpinned rather than fail.
fn build_worker_executor(
    id: usize,
    cpu: Option<usize>,
    io_memory: usize,
) -> Result<LocalExecutor, glommio::GlommioError<()>> {
    let build = |placement| {
        LocalExecutorBuilder::new(placement)
            .name(&format!("pounce-w{id}"))
            .io_memory(io_memory)
            .ring_depth(128)
            .make()
    };
    match cpu {
        Some(c) => build(Placement::Fixed(c)).or_else(|e| {
            log::debug!("worker {id}: cannot pin to CPU {c} ({e}); running unpinned");
            build(Placement::Unbound)
        }),
        None => build(Placement::Unbound),
    }
}

/// Panics are logged as one line like everything else; a handler panic is
/// then answered 500 by the connection loop, any other kills its worker.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let msg = if let Some(s) = info.payload().downcast_ref::<&str>() {
            (*s).to_string()
        } else if let Some(s) = info.payload().downcast_ref::<String>() {
            s.clone()
        } else {
            "(non-string payload)".to_string()
        };
        let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        let thread = std::thread::current().name().unwrap_or("?").to_string();
        log::error!("panic in {thread}{at}: {msg}");
    }));
}
