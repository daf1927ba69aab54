//! The signal thread: SIGTERM/SIGINT in, one message to the coordinator out.
//!
//! Signal handlers can do almost nothing safely, so signal-hook's iterator
//! does the async-signal-safe part and this dedicated thread does the rest in
//! ordinary code. It runs a tiny glommio executor only so it can hold the
//! sending end of a cross-executor channel to the coordinator; it then blocks
//! in `Signals::forever()`, which is fine because nothing else runs on it.
//!
//! The first signal is logged, told to systemd (`STOPPING=1`), published in
//! [`Shared`] (so health checks answer 503 from this instant, before any
//! executor has even woken up) and sent to the coordinator. A second signal
//! means "stop now": it is logged and the process exits with code 3 from this
//! thread, which works even if every worker is wedged.

use super::{Phase, Shared, notify, signal_name};
use glommio::channels::shared_channel::SharedSender;
use glommio::{LocalExecutorBuilder, Placement};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use std::io;
use std::sync::mpsc;
use std::sync::{Arc, Barrier};

/// Exit code for a forced shutdown (second signal or timeout).
pub(crate) const EXIT_FORCED: i32 = 3;

/// Registers for SIGTERM and SIGINT. Call first thing, so a signal that
/// arrives during start-up is queued rather than killing the process.
pub(crate) fn install() -> io::Result<Signals> {
    Signals::new([SIGTERM, SIGINT])
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
                if first {
                    first = false;
                    // Health answers 503 before anything says shutdown began.
                    shared.advance(Phase::LameDuck);
                    log::info!("Received {name} — initiating shutdown");
                    notify::notify("STOPPING=1");
                    if tx.try_send(signo).is_err() {
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
