//! The link between a pounce and the successor it started: one socket pair,
//! one end each (`POUNCE_UPGRADE_FD` in the successor).
//!
//! ```text
//! successor   ──READY──▶     predecessor   every worker of the successor listens
//! successor   ◀─TAKEOVER──   predecessor   it hands over: it stops accepting now
//!             ...each holds its end until it exits; EOF says "gone"...
//! ```
//!
//! Why two steps and not one: until the predecessor has said TAKEOVER, it is
//! the one serving the sockets, and the successor may still be stopped (not
//! ready in time, told to stop by an operator, a worker died). A successor
//! stopped then must leave the sockets exactly as they are: shutting one down
//! would stop the predecessor's listening too (it is the same socket) and
//! reset its queue. Only once it has read TAKEOVER (or EOF: the predecessor
//! is gone) does the successor own them, write the pid file and speak to
//! systemd.
//!
//! Holding the ends open to the end lets each side see the other exit: the
//! successor, when it is stopped in turn, waits for a predecessor still
//! draining before it exits itself (under systemd's `KillMode=mixed`, the main
//! process's exit gets every other process of the unit SIGKILLed), and the
//! predecessor logs a successor that dies during its drain.

use futures_lite::io::AsyncReadExt;
use glommio::net::UnixStream;
use std::io::{self, Write};
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};

pub(crate) const READY: &[u8] = b"READY\n";
pub(crate) const TAKEOVER: &[u8] = b"TAKEOVER\n";

/// What the other end said.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Heard {
    /// The expected line.
    Line,
    /// The other process closed its end: it exited (or crashed).
    Gone,
    /// Something else (not a pounce of this protocol?), at most 80 chars.
    Garbage(String),
}

/// Reads one line and compares it with `want`.
pub(crate) async fn hear(stream: &mut UnixStream, want: &[u8]) -> Heard {
    let mut line = Vec::new();
    let mut chunk = [0u8; 64];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return Heard::Gone,
            Ok(n) => line.extend_from_slice(&chunk[..n]),
        }
        if line.contains(&b'\n') || line.len() > 256 {
            return if line == want {
                Heard::Line
            } else {
                Heard::Garbage(String::from_utf8_lossy(&line).trim().chars().take(80).collect())
            };
        }
    }
}

/// Waits until the other end is closed.
pub(crate) async fn gone(stream: &mut UnixStream) {
    let mut chunk = [0u8; 64];
    while let Ok(n) = stream.read(&mut chunk).await {
        if n == 0 {
            return;
        }
    }
}

/// Writes `line` with a plain blocking write: a few bytes into an empty
/// socket buffer, which never blocks.
pub(crate) fn say(fd: &OwnedFd, line: &[u8]) -> io::Result<()> {
    let mut s = std::os::unix::net::UnixStream::from(fd.try_clone()?);
    s.write_all(line)
}

/// The end as a glommio stream (inside an executor).
pub(crate) fn stream(fd: OwnedFd) -> UnixStream {
    // SAFETY: the descriptor is ours (moved in) and a stream socket.
    unsafe { UnixStream::from_raw_fd(fd.into_raw_fd()) }
}
