//! The signal thread: signals in, messages to the coordinator out.
//!
//! Signal handlers can do almost nothing safely, so signal-hook's iterator
//! does the async-signal-safe part and this dedicated thread does the rest in
//! ordinary code. It runs a tiny glommio executor only so it can hold the
//! sending end of a cross-executor channel to the coordinator; it then blocks
//! in `Signals::forever()`, which is fine because nothing else runs on it.
//!
//! SIGTERM/SIGINT: the first is logged, told to systemd (`STOPPING=1`),
//! published in [`Shared`] (so health checks answer 503 from this instant,
//! before any executor has even woken up) and sent to the coordinator. A
//! second one means "stop now": it is logged and the process exits with code
//! 3 from this thread, which works even if every worker is wedged.
//!
//! SIGUSR2/SIGHUP (hot upgrade) go to the coordinator, which decides what
//! they mean now. Once a PID-1 process has handed over to a successor, every
//! signal is forwarded to the successor instead (`handover::keeper`).

use super::{Phase, Shared, notify, signal_name};
use crate::handover::keeper;
use glommio::channels::shared_channel::SharedSender;
use glommio::{LocalExecutorBuilder, Placement};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR2};
use signal_hook::iterator::Signals;
use std::io;
use std::sync::mpsc;
use std::sync::{Arc, Barrier};

/// Exit code for a forced shutdown (second signal or timeout).
pub(crate) const EXIT_FORCED: i32 = 3;

/// Registers for SIGTERM, SIGINT, SIGUSR2 and SIGHUP. Call first thing, so a
/// signal that arrives during start-up is queued rather than killing the
/// process.
pub(crate) fn install() -> io::Result<Signals> {
    Signals::new([SIGTERM, SIGINT, SIGUSR2, SIGHUP])
}

/// The signals that ask for a hot upgrade.
pub(crate) fn is_upgrade(signo: i32) -> bool {
    signo == SIGUSR2 || signo == SIGHUP
}

/// Starts the signal thread; returns once its executor exists. It connects
/// its channel end only after `go` opens (see `server::Server::start`).
pub(crate) fn spawn(
    signals: Signals,
    tx: SharedSender<i32>,
    shared: Arc<Shared>,
    go: Arc<Barrier>,
) -> io::Result<()> {
    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
    std::thread::Builder::new().name("pounce-signal".into()).spawn(move || {
        let ex = LocalExecutorBuilder::new(Placement::Unbound)
            .name("pounce-signal")
            .io_memory(64 << 10)
            .ring_depth(8)
            .make();
        let ex = match ex {
            Ok(ex) => ex,
            Err(e) => {
                let _ = ready_tx.send(Err(e.to_string()));
                return;
            }
        };
        // Ready once the executor exists: connecting is a rendezvous that
        // completes only when the coordinator connects its end.
        let _ = ready_tx.send(Ok(()));
        go.wait();
        ex.run(async move {
            let tx = tx.connect().await;
            let mut signals = signals;
            let mut first = true;
            for signo in signals.forever() {
                let name = signal_name(signo);
                if keeper::forward(signo) {
                    log::info!("Received {name} — forwarded to the successor");
                    continue;
                }
                if is_upgrade(signo) {
                    // The coordinator logs what it makes of it. A full
                    // channel means it has plenty to act on already.
                    if tx.try_send(signo).is_err() {
                        log::warn!("Received {name} — ignored: the coordinator is busy or gone");
                    }
                } else if first {
                    first = false;
                    // Health answers 503 before anything says shutdown began.
                    shared.signalled_after_handover();
                    shared.advance(Phase::LameDuck);
                    log::info!("Received {name} — initiating shutdown");
                    notify::notify("STOPPING=1");
                    if tx.send(signo).await.is_err() {
                        // The coordinator is gone: nobody can drain, so stop.
                        log::error!("shutdown coordinator unreachable — exiting");
                        std::process::exit(EXIT_FORCED);
                    }
                } else {
                    log::warn!("Received {name} again — exiting immediately without finishing the drain");
                    std::process::exit(EXIT_FORCED);
                }
            }
        });
    })?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(io::Error::other(format!("signal thread could not start: {e}"))),
        Err(_) => Err(io::Error::other("signal thread died during start-up")),
    }
}
