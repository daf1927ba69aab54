//! Listening sockets handed to this process when it was executed, by the
//! convention systemd's socket activation defines: `LISTEN_FDS=n` sockets at
//! descriptors 3, 4, …, 3+n−1, `LISTEN_PID` naming the process they are for,
//! and optionally `LISTEN_FDNAMES`, their names separated by colons.
//!
//! A pounce predecessor starting its successor during a hot upgrade uses the
//! same convention (one code path for both), plus two variables of its own:
//! - `POUNCE_UPGRADE_FD`: a socket on which the successor reports that it is
//!   ready, so the predecessor knows when to stop accepting;
//! - `POUNCE_LISTEN_HELD=1`: the service manager holds the sockets too (the
//!   predecessor was itself socket-activated), so they outlive this process.
//!
//! Everything is checked before the server uses it, and anything wrong is one
//! line naming the variable and the descriptor (exit 1): a descriptor that is
//! not open, not a socket, not a TCP stream socket, or not listening, and a
//! `LISTEN_PID` that names another process. The accepted descriptors get
//! close-on-exec, so nothing a handler starts inherits them.

use super::Origin;
use socket2::{Domain, SockRef, Socket, Type};
use std::net::SocketAddr;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// The first descriptor of the convention (`SD_LISTEN_FDS_START`).
pub(crate) const LISTEN_FDS_START: RawFd = 3;
/// More sockets than this is certainly a mistake.
const MAX_LISTEN_FDS: u32 = 1024;

pub(crate) const VAR_FDS: &str = "LISTEN_FDS";
pub(crate) const VAR_PID: &str = "LISTEN_PID";
pub(crate) const VAR_NAMES: &str = "LISTEN_FDNAMES";
pub(crate) const VAR_UPGRADE_FD: &str = "POUNCE_UPGRADE_FD";
pub(crate) const VAR_HELD: &str = "POUNCE_LISTEN_HELD";

/// The handover variables; a successor gets fresh ones, never these.
pub(crate) const ALL_VARS: [&str; 6] =
    [VAR_FDS, VAR_PID, VAR_NAMES, VAR_UPGRADE_FD, VAR_HELD, super::keeper::VAR_CHAIN];

/// What the environment says was passed in, before any descriptor is
/// looked at.
#[derive(Debug, PartialEq, Eq)]
struct Plan {
    count: u32,
    names: Vec<String>,
    ready_fd: Option<RawFd>,
    origin: Origin,
}

/// Sockets taken over from whoever started this process.
pub(crate) struct Inherited {
    pub sockets: Vec<Socket>,
    /// `LISTEN_FDNAMES`, one per socket (empty when not given).
    pub names: Vec<String>,
    pub origin: Origin,
    /// Where to report readiness to the predecessor, during a hot upgrade.
    pub ready: Option<OwnedFd>,
}

/// Reads the handover variables and takes over the sockets they describe;
/// `Ok(None)` when nothing was passed. The error is one line for the log.
pub(crate) fn from_env() -> Result<Option<Inherited>, String> {
    let var = |name: &str| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned());
    let Some(plan) = plan(&var, std::process::id())? else {
        return Ok(None);
    };
    let mut sockets = Vec::with_capacity(plan.count as usize);
    for i in 0..plan.count {
        let fd = LISTEN_FDS_START + i as RawFd;
        check_listener(fd).map_err(|why| format!("{VAR_FDS}={}: fd {fd} {why}", plan.count))?;
        set_cloexec(fd);
        // SAFETY: the descriptor is open, a listening socket, and passed to
        // this process to own (LISTEN_PID matched); nothing else owns it.
        sockets.push(unsafe { Socket::from_raw_fd(fd) });
    }
    let ready = match plan.ready_fd {
        Some(fd) => {
            check_link(fd).map_err(|why| format!("{VAR_UPGRADE_FD}={fd}: that descriptor {why}"))?;
            set_cloexec(fd);
            // SAFETY: open, and passed to this process to own.
            Some(unsafe { OwnedFd::from_raw_fd(fd) })
        }
        None => None,
    };
    Ok(Some(Inherited { sockets, names: plan.names, origin: plan.origin, ready }))
}

/// The rules on the variables themselves (no descriptor is touched).
fn plan(var: &dyn Fn(&str) -> Option<String>, my_pid: u32) -> Result<Option<Plan>, String> {
    let Some(fds) = var(VAR_FDS) else {
        if let Some(fd) = var(VAR_UPGRADE_FD) {
            return Err(format!(
                "{VAR_UPGRADE_FD}={fd} is set but {VAR_FDS} is not: no listening socket was passed"
            ));
        }
        return Ok(None);
    };
    let count: u32 = match fds.trim().parse() {
        Ok(n) if (1..=MAX_LISTEN_FDS).contains(&n) => n,
        _ => {
            return Err(format!(
                "{VAR_FDS} must be a number of sockets from 1 to {MAX_LISTEN_FDS}, got '{fds}'"
            ));
        }
    };
    let Some(pid) = var(VAR_PID) else {
        return Err(format!(
            "{VAR_FDS}={count} is set but {VAR_PID} is not: cannot tell whether the sockets are meant for this process"
        ));
    };
    match pid.trim().parse::<u32>() {
        Ok(p) if p == my_pid => {}
        Ok(p) => {
            return Err(format!(
                "{VAR_PID}={p} names another process (this is pid {my_pid}): the sockets in {VAR_FDS} were \
                 passed to that one; start pounce with exec so that it keeps the pid they were passed to"
            ));
        }
        Err(_) => return Err(format!("{VAR_PID} must be a process id, got '{pid}'")),
    }
    let mut names: Vec<String> = match var(VAR_NAMES) {
        Some(n) if !n.is_empty() => n.split(':').map(str::to_string).collect(),
        _ => Vec::new(),
    };
    names.resize(count as usize, String::new());
    let ready_fd = match var(VAR_UPGRADE_FD) {
        None => None,
        Some(v) => match v.trim().parse::<RawFd>() {
            Ok(fd) if fd >= LISTEN_FDS_START + count as RawFd => Some(fd),
            _ => {
                return Err(format!(
                    "{VAR_UPGRADE_FD} must be a descriptor after the {count} listening socket(s), got '{v}'"
                ));
            }
        },
    };
    let held = var(VAR_HELD).is_some_and(|v| v == "1");
    let origin = if ready_fd.is_some() { Origin::Predecessor { held } } else { Origin::Manager };
    Ok(Some(Plan { count, names, ready_fd, origin }))
}

/// Why `fd` cannot serve as a listening TCP socket, if it cannot.
fn check_listener(fd: RawFd) -> Result<SocketAddr, String> {
    // SAFETY: F_GETFD only reads the descriptor's flags.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err("is not open".into());
    }
    // SAFETY: open (checked above); borrowed only for these calls.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    let sock = SockRef::from(&fd);
    match sock.r#type() {
        Ok(t) if t == Type::STREAM => {}
        Ok(t) if t == Type::DGRAM => return Err("is a datagram socket, not a stream (TCP) socket".into()),
        Ok(_) => return Err("is not a stream (TCP) socket".into()),
        Err(e) if e.raw_os_error() == Some(libc::ENOTSOCK) => return Err("is not a socket".into()),
        Err(e) => return Err(format!("cannot be inspected: {e}")),
    }
    match sock.domain() {
        Ok(d) if d == Domain::IPV4 || d == Domain::IPV6 => {}
        Ok(d) if d == Domain::UNIX => {
            return Err("is a unix-domain socket; pounce serves TCP (IPv4 or IPv6) sockets".into());
        }
        _ => return Err("is not an IPv4 or IPv6 socket".into()),
    }
    if !sock.is_listener().map_err(|e| format!("cannot be inspected: {e}"))? {
        return Err("is not listening (listen(2) was never called on it)".into());
    }
    sock.local_addr().ok().and_then(|a| a.as_socket()).ok_or_else(|| "has no local address".to_string())
}

/// The link to a predecessor must be a unix stream socket (a socket pair).
fn check_link(fd: RawFd) -> Result<(), String> {
    // SAFETY: F_GETFD only reads the descriptor's flags.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err("is not open".into());
    }
    // SAFETY: open (checked above); borrowed only for these calls.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    let sock = SockRef::from(&fd);
    match (sock.domain(), sock.r#type()) {
        (Ok(d), Ok(t)) if d == Domain::UNIX && t == Type::STREAM => Ok(()),
        _ => Err("is not a unix stream socket (it is set by a pounce starting its successor)".into()),
    }
}

fn set_cloexec(fd: RawFd) {
    // SAFETY: plain fcntl on a descriptor we were given.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn run(vars: &[(&str, &str)], pid: u32) -> Result<Option<Plan>, String> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        plan(&|k| map.get(k).cloned(), pid)
    }

    #[test]
    fn nothing_passed() {
        assert_eq!(run(&[], 7), Ok(None));
        assert_eq!(run(&[("LISTEN_PID", "7")], 7), Ok(None));
    }

    #[test]
    fn systemd_sockets() {
        let p = run(&[("LISTEN_FDS", "2"), ("LISTEN_PID", "7"), ("LISTEN_FDNAMES", "web:alt")], 7)
            .unwrap()
            .unwrap();
        assert_eq!(p.count, 2);
        assert_eq!(p.names, ["web", "alt"]);
        assert_eq!(p.origin, Origin::Manager);
        assert_eq!(p.ready_fd, None);
        let p = run(&[("LISTEN_FDS", "2"), ("LISTEN_PID", "7")], 7).unwrap().unwrap();
        assert_eq!(p.names, ["", ""]);
    }

    #[test]
    fn predecessor_sockets() {
        let base = [("LISTEN_FDS", "2"), ("LISTEN_PID", "7"), ("POUNCE_UPGRADE_FD", "5")];
        let p = run(&base, 7).unwrap().unwrap();
        assert_eq!((p.origin, p.ready_fd), (Origin::Predecessor { held: false }, Some(5)));
        let mut held = base.to_vec();
        held.push(("POUNCE_LISTEN_HELD", "1"));
        assert_eq!(run(&held, 7).unwrap().unwrap().origin, Origin::Predecessor { held: true });
    }

    #[test]
    fn bad_variables_are_named() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("LISTEN_FDS", "abc"), ("LISTEN_PID", "7")], "LISTEN_FDS must be a number of sockets"),
            (&[("LISTEN_FDS", "0"), ("LISTEN_PID", "7")], "LISTEN_FDS must be a number of sockets from 1"),
            (&[("LISTEN_FDS", "1")], "LISTEN_FDS=1 is set but LISTEN_PID is not"),
            (
                &[("LISTEN_FDS", "1"), ("LISTEN_PID", "8")],
                "LISTEN_PID=8 names another process (this is pid 7)",
            ),
            (&[("LISTEN_FDS", "1"), ("LISTEN_PID", "x")], "LISTEN_PID must be a process id, got 'x'"),
            (&[("POUNCE_UPGRADE_FD", "4")], "POUNCE_UPGRADE_FD=4 is set but LISTEN_FDS is not"),
            (
                &[("LISTEN_FDS", "2"), ("LISTEN_PID", "7"), ("POUNCE_UPGRADE_FD", "4")],
                "POUNCE_UPGRADE_FD must be a descriptor after the 2 listening socket(s), got '4'",
            ),
        ];
        for (vars, want) in cases {
            let e = run(vars, 7).unwrap_err();
            assert!(e.starts_with(want), "{vars:?}: {e}");
        }
    }

    #[test]
    fn descriptors_are_checked() {
        use std::os::fd::AsRawFd;
        let listening = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listening.local_addr().unwrap();
        assert_eq!(check_listener(listening.as_raw_fd()), Ok(addr));
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(check_listener(udp.as_raw_fd()).unwrap_err().contains("datagram"));
        let unbound = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        assert!(check_listener(unbound.as_raw_fd()).unwrap_err().contains("is not listening"));
        let file = std::fs::File::open("/proc/self/stat").unwrap();
        assert_eq!(check_listener(file.as_raw_fd()).unwrap_err(), "is not a socket");
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert!(check_listener(a.as_raw_fd()).unwrap_err().contains("unix-domain"));
        assert_eq!(check_link(a.as_raw_fd()), Ok(()));
        assert!(check_link(file.as_raw_fd()).unwrap_err().starts_with("is not a unix stream socket"));
        assert_eq!(check_listener(1 << 20).unwrap_err(), "is not open");
    }
}
