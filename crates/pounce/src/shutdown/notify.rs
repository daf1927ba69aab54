//! systemd's notify protocol (`Type=notify`): `READY=1` once every worker
//! listens, `STOPPING=1` at the first signal, `STATUS=...` while draining.
//!
//! One datagram to the socket named by `NOTIFY_SOCKET` (a path, or `@name`
//! for the abstract namespace). Without that variable every call is a no-op,
//! so pounce behaves the same with or without systemd.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::OnceLock;

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
    if let Some((sock, addr)) = socket() {
        if let Err(e) = sock.send_to_addr(state.as_bytes(), addr) {
            log::debug!("sd_notify({state:?}) failed: {e}");
        }
    }
}
