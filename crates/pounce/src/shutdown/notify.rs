//! systemd's notify protocol (`Type=notify`): `READY=1` once every worker
//! listens, `STOPPING=1` at the first signal, `STATUS=...` while draining.
//!
//! One datagram to the socket named by `NOTIFY_SOCKET` (a path, or `@name`
//! for the abstract namespace). Without that variable every call is a no-op,
//! so pounce behaves the same with or without systemd.
//!
//! A hot upgrade sends `RELOADING=1` when it starts and `READY=1` when it
//! ends; on success in one datagram with `MAINPID=` of the successor, which
//! becomes the unit's main process. After that this process says nothing
//! more ([`stop`]): it is no longer the service, and a `STOPPING=1` from it
//! would tell systemd the service is going away. The successor, likewise,
//! says nothing until it has reported ready to its predecessor ([`resume`]):
//! one stopped before that was never the service.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

static SILENT: AtomicBool = AtomicBool::new(false);

static SOCKET: OnceLock<Option<(UnixDatagram, SocketAddr)>> = OnceLock::new();

fn socket() -> Option<&'static (UnixDatagram, SocketAddr)> {
    SOCKET
        .get_or_init(|| {
            let path = std::env::var_os("NOTIFY_SOCKET")?;
            match connect(path.to_str()?) {
                Ok(s) => Some(s),
                Err(e) => {
                    log::warn!("NOTIFY_SOCKET is set but unusable: {e}");
                    None
                }
            }
        })
        .as_ref()
}

fn connect(path: &str) -> io::Result<(UnixDatagram, SocketAddr)> {
    let addr = if let Some(name) = path.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        SocketAddr::from_abstract_name(name.as_bytes())?
    } else {
        SocketAddr::from_pathname(path)?
    };
    Ok((UnixDatagram::unbound()?, addr))
}

/// Sends `state` (e.g. `READY=1`) if systemd is listening. Failures are
/// logged at debug level: notification is best-effort by design.
pub(crate) fn notify(state: &str) {
    if SILENT.load(Ordering::Acquire) {
        return;
    }
    if let Some((sock, addr)) = socket() {
        if let Err(e) = sock.send_to_addr(state.as_bytes(), addr) {
            log::debug!("sd_notify({state:?}) failed: {e}");
        }
    }
}

/// From now on nothing is sent: another process is the service (this one
/// handed over), or is until this one is ready (this one is a successor).
pub(crate) fn stop() {
    SILENT.store(true, Ordering::Release);
}

/// A successor that has reported ready is about to be the service.
pub(crate) fn resume() {
    SILENT.store(false, Ordering::Release);
}

/// `MONOTONIC_USEC=` for a `RELOADING=1` message (systemd 253+ wants it with
/// `Type=notify-reload`; older versions ignore it).
pub(crate) fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime(2) into a stack struct.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}
