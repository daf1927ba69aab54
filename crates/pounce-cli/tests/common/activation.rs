//! Socket activation as systemd does it, played by a test: the test holds
//! the listening socket and starts pounce with it at descriptor 3,
//! `LISTEN_FDS`, and `LISTEN_PID` set to pounce's own pid, which is known
//! only once the process exists: `sh -c 'LISTEN_PID=$$ exec …'` (exec keeps
//! the pid).

use super::BIN;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

/// A listening socket on 127.0.0.1 (port of the OS's) with `backlog`.
pub fn held_socket(backlog: i32) -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    // SAFETY: listen(2) again on our own socket only changes its backlog.
    assert_eq!(unsafe { libc::listen(l.as_raw_fd(), backlog) }, 0);
    let addr = l.local_addr().unwrap();
    (l, addr)
}

/// `pounce <args>` with `fd` at descriptor 3, `LISTEN_FDS=<fds>`,
/// `LISTEN_FDNAMES=web` and `LISTEN_PID` its own pid; clean environment
/// otherwise.
pub fn activated(fd: RawFd, fds: &str, args: &[&str]) -> Command {
    let mut all = vec!["-c", "LISTEN_PID=$$ exec \"$0\" \"$@\"", BIN];
    all.extend_from_slice(args);
    let mut cmd = super::command_for("sh", &all);
    cmd.env("LISTEN_FDS", fds).env("LISTEN_FDNAMES", "web");
    place_at_3(&mut cmd, fd);
    cmd
}

/// Makes the child get `fd` at descriptor 3 (inheritable).
pub fn place_at_3(cmd: &mut Command, fd: RawFd) {
    // SAFETY: dup2/fcntl only, between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if fd == 3 {
                libc::fcntl(3, libc::F_SETFD, 0);
            } else if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
