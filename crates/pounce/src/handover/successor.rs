//! Starting a successor for a hot upgrade, and collecting it if it dies.
//!
//! The successor is the binary at the path this process was started from,
//! resolved once at start (so a new binary renamed over it, or a symlink
//! switched to a new release, is what runs), with the arguments and the
//! environment this process was started with. It gets the listening sockets
//! at descriptors 3, 4, … with `LISTEN_FDS`/`LISTEN_PID`/`LISTEN_FDNAMES`,
//! exactly as systemd passes them (see [`super::inherit`]), and the other end
//! of a socket pair at the next descriptor (`POUNCE_UPGRADE_FD`) on which it
//! writes `READY` once every worker listens.
//!
//! `LISTEN_PID` must be the child's own pid, which is only known after
//! `fork(2)`; so this is a plain fork + execve: everything is prepared before
//! the fork, and the child only moves descriptors (dup2), writes its pid into
//! a buffer reserved for it and execs, all async-signal-safe calls, as
//! required in the child of a multi-threaded process. An exec failure comes
//! back to the parent as an errno over a close-on-exec pipe.

use super::inherit::{ALL_VARS, LISTEN_FDS_START, VAR_FDS, VAR_HELD, VAR_NAMES, VAR_PID, VAR_UPGRADE_FD};
use crate::shutdown::signal_name;
use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// How to start a successor: captured at start.
#[derive(Debug, Clone)]
pub(crate) struct Exec {
    pub path: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
}

impl Exec {
    /// This process's program, arguments and environment, as started.
    pub(crate) fn capture() -> Exec {
        let args: Vec<OsString> = std::env::args_os().collect();
        let path = args
            .first()
            .and_then(|a0| resolve(Path::new(a0)))
            .unwrap_or_else(|| std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe")));
        let env = std::env::vars_os().filter(|(k, _)| !ALL_VARS.iter().any(|v| k == OsStr::new(v))).collect();
        Exec { path, args, env }
    }

    /// The command line for log lines.
    pub(crate) fn display(&self) -> String {
        let mut s = self.path.display().to_string();
        for a in self.args.iter().skip(1) {
            s.push(' ');
            s.push_str(&a.to_string_lossy());
        }
        s
    }
}

/// `argv[0]` as the path the program was started from, made absolute but
/// with symlinks kept: a path with a slash is taken relative to the working
/// directory; a bare name is looked up in `PATH`, as the shell did.
fn resolve(arg0: &Path) -> Option<PathBuf> {
    if arg0.as_os_str().is_empty() {
        return None;
    }
    if arg0.as_os_str().as_bytes().contains(&b'/') {
        return Some(if arg0.is_absolute() {
            arg0.to_path_buf()
        } else {
            std::env::current_dir().ok()?.join(arg0)
        });
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(arg0))
        .find(|p| is_executable(p))
        .and_then(|p| if p.is_absolute() { Some(p) } else { std::env::current_dir().ok().map(|d| d.join(p)) })
}

fn is_executable(p: &Path) -> bool {
    let Ok(c) = CString::new(p.as_os_str().as_bytes()) else { return false };
    // SAFETY: access(2) on a NUL-terminated path.
    p.is_file() && unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0
}

/// A successor that has been exec'd; not yet known to be ready.
pub(crate) struct Child {
    pub pid: i32,
    /// Our end of the readiness socket pair.
    pub ready: OwnedFd,
}

/// Space reserved in `LISTEN_PID=` for the child's pid (any `pid_t`).
const PID_DIGITS: usize = 10;

/// Forks and execs a successor that inherits `sockets` (in this order) and
/// their `names`; `held` tells it that the service manager holds them too,
/// `chain` that signals reach it through a keeper (`super::keeper`).
pub(crate) fn spawn(
    exec: &Exec,
    sockets: &[RawFd],
    names: &[String],
    held: bool,
    chain: bool,
) -> io::Result<Child> {
    let n = sockets.len();
    let (ours, theirs) = socket_pair()?;
    let ready_fd = LISTEN_FDS_START + n as RawFd;

    let cstr = |b: &[u8]| CString::new(b).map_err(|_| io::Error::other("a NUL byte in an argument"));
    let path = cstr(exec.path.as_os_str().as_bytes())?;
    let argv: Vec<CString> = exec.args.iter().map(|a| cstr(a.as_bytes())).collect::<io::Result<_>>()?;
    let mut env: Vec<CString> = Vec::with_capacity(exec.env.len() + 5);
    for (k, v) in &exec.env {
        let mut kv = k.as_bytes().to_vec();
        kv.push(b'=');
        kv.extend_from_slice(v.as_bytes());
        env.push(cstr(&kv)?);
    }
    env.push(cstr(format!("{VAR_FDS}={n}").as_bytes())?);
    let fdnames: Vec<&str> = names.iter().map(|n| if n.is_empty() { "pounce" } else { n.as_str() }).collect();
    env.push(cstr(format!("{VAR_NAMES}={}", fdnames.join(":")).as_bytes())?);
    env.push(cstr(format!("{VAR_UPGRADE_FD}={ready_fd}").as_bytes())?);
    if held {
        env.push(cstr(format!("{VAR_HELD}=1").as_bytes())?);
    }
    if chain {
        env.push(cstr(format!("{}=1", super::keeper::VAR_CHAIN).as_bytes())?);
    }
    // `LISTEN_PID=` followed by room for the digits, filled in by the child.
    let mut pid_var = format!("{VAR_PID}=").into_bytes();
    let digits_at = pid_var.len();
    pid_var.resize(digits_at + PID_DIGITS + 1, 0);
    let argv_ptrs: Vec<*const libc::c_char> =
        argv.iter().map(|a| a.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    envp.push(pid_var.as_ptr().cast());
    envp.push(std::ptr::null());

    // Descriptors to place at 3.. in the child: the sockets, then the
    // readiness socket. `lifted` is filled in by the child (no allocation
    // there).
    let mut sources: Vec<RawFd> = sockets.to_vec();
    sources.push(theirs.as_raw_fd());
    let mut lifted: Vec<RawFd> = vec![-1; sources.len()];
    let (err_r, err_w) = cloexec_pipe()?;

    // SAFETY: fork(2). The child runs only `exec_child`, which makes
    // async-signal-safe calls on memory prepared above and never returns.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: in the child; see exec_child.
        unsafe {
            exec_child(ExecArgs {
                path: path.as_ptr(),
                argv: argv_ptrs.as_ptr(),
                envp: envp.as_ptr(),
                pid_digits: pid_var.as_mut_ptr().add(digits_at),
                sources: &sources,
                lifted: lifted.as_mut_ptr(),
                err_w: err_w.as_raw_fd(),
            })
        }
    }
    drop(err_w);
    drop(theirs);
    // Wait for the exec: EOF means it happened, four bytes are its errno.
    let mut errno = [0u8; 4];
    let got = read_full(err_r.as_raw_fd(), &mut errno);
    if got == 4 {
        let _ = wait_blocking(pid);
        return Err(io::Error::from_raw_os_error(i32::from_ne_bytes(errno)));
    }
    Ok(Child { pid, ready: ours })
}

struct ExecArgs<'a> {
    path: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    pid_digits: *mut u8,
    sources: &'a [RawFd],
    lifted: *mut RawFd,
    err_w: RawFd,
}

/// The child's side of [`spawn`]. Only async-signal-safe calls: no
/// allocation, no locks.
unsafe fn exec_child(a: ExecArgs<'_>) -> ! {
    // SAFETY (the whole function): every pointer was prepared by the parent
    // before fork and stays valid in the child's copy of its memory.
    unsafe {
        // A clean signal state: nothing blocked, SIGPIPE as a fresh process
        // has it (the successor decides for itself).
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);

        // Move every source above the target range first, so that placing
        // one never overwrites another not yet placed; the copies are
        // close-on-exec, the placed descriptors are not (dup2 clears it).
        let n = a.sources.len() as RawFd;
        let above = LISTEN_FDS_START + n;
        for (i, &src) in a.sources.iter().enumerate() {
            let fd = libc::fcntl(src, libc::F_DUPFD_CLOEXEC, above);
            if fd < 0 {
                fail(a.err_w);
            }
            *a.lifted.add(i) = fd;
        }
        for i in 0..a.sources.len() {
            if libc::dup2(*a.lifted.add(i), LISTEN_FDS_START + i as RawFd) < 0 {
                fail(a.err_w);
            }
        }
        // LISTEN_PID is this process's own pid.
        let mut pid = libc::getpid() as u32;
        let mut digits = [0u8; PID_DIGITS];
        let mut len = 0;
        loop {
            digits[len] = b'0' + (pid % 10) as u8;
            len += 1;
            pid /= 10;
            if pid == 0 {
                break;
            }
        }
        for i in 0..len {
            *a.pid_digits.add(i) = digits[len - 1 - i];
        }
        *a.pid_digits.add(len) = 0;
        libc::execve(a.path, a.argv, a.envp);
        fail(a.err_w)
    }
}

/// Reports errno to the parent and exits without running any destructor.
unsafe fn fail(err_w: RawFd) -> ! {
    // SAFETY: errno location, write(2) and _exit(2) are async-signal-safe.
    unsafe {
        let e = *libc::__errno_location();
        let bytes = e.to_ne_bytes();
        libc::write(err_w, bytes.as_ptr().cast(), bytes.len());
        libc::_exit(127)
    }
}

fn socket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: socketpair(2) writes two descriptors into `fds`.
    if unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) }
        < 0
    {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: just created, owned here.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn cloexec_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2(2) writes two descriptors into `fds`.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: just created, owned here.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Reads until `buf` is full or EOF; returns the bytes read.
fn read_full(fd: RawFd, buf: &mut [u8]) -> usize {
    let mut got = 0;
    while got < buf.len() {
        // SAFETY: read(2) into the unfilled part of `buf`.
        let r = unsafe { libc::read(fd, buf[got..].as_mut_ptr().cast(), buf.len() - got) };
        if r > 0 {
            got += r as usize;
        } else if r == 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            break;
        }
    }
    got
}

/// How a process ended, from a `waitpid` status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    Exited(i32),
    Killed(i32),
    /// Collected by someone else (or never ours): no status to tell.
    Unknown,
}

impl Ended {
    pub(crate) fn from_status(status: libc::c_int) -> Ended {
        if libc::WIFSIGNALED(status) {
            Ended::Killed(libc::WTERMSIG(status))
        } else {
            Ended::Exited(libc::WEXITSTATUS(status))
        }
    }
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Ended::Exited(code) => write!(f, "exited with status {code}"),
            Ended::Killed(sig) => write!(f, "was killed by signal {sig} ({})", signal_name(sig)),
            Ended::Unknown => write!(f, "has exited"),
        }
    }
}

/// `waitpid(pid, WNOHANG)`: how it ended, if it has; an error (ECHILD) if it
/// is not a child of this process.
pub(crate) fn try_wait(pid: i32) -> io::Result<Option<Ended>> {
    let mut status = 0;
    // SAFETY: waitpid(2) on our own child.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    match r {
        r if r == pid => Ok(Some(Ended::from_status(status))),
        0 => Ok(None),
        _ => Err(io::Error::last_os_error()),
    }
}

/// `waitpid(pid, 0)`, for a child that is known to be ending.
pub(crate) fn wait_blocking(pid: i32) -> Option<Ended> {
    let mut status = 0;
    loop {
        // SAFETY: waitpid(2) on our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            return Some(Ended::from_status(status));
        }
        if r < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        return None;
    }
}

/// Sends `sig` to `pid`.
pub(crate) fn kill(pid: i32, sig: i32) {
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(pid, sig) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arg0_is_resolved_to_an_absolute_path_with_symlinks_kept() {
        assert_eq!(resolve(Path::new("/usr/bin/env")), Some(PathBuf::from("/usr/bin/env")));
        let rel = resolve(Path::new("./target/pounce")).unwrap();
        assert!(rel.is_absolute() && rel.ends_with("target/pounce"), "{rel:?}");
        let sh = resolve(Path::new("sh")).unwrap();
        assert!(sh.is_absolute() && sh.file_name().unwrap() == "sh", "{sh:?}");
        assert_eq!(resolve(Path::new("no-such-program-anywhere")), None);
    }

    #[test]
    fn handover_variables_are_not_passed_on_as_captured() {
        let e = Exec::capture();
        assert!(e.env.iter().all(|(k, _)| !ALL_VARS.iter().any(|v| k == OsStr::new(v))));
        assert!(e.display().starts_with('/'));
    }

    #[test]
    fn a_missing_binary_is_an_exec_error() {
        let exec =
            Exec { path: PathBuf::from("/nonexistent/pounce"), args: vec!["pounce".into()], env: vec![] };
        let e = spawn(&exec, &[], &[], false, false).err().expect("exec must fail");
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn the_child_gets_the_sockets_and_its_own_pid() {
        // A shell stands in for the successor: it reports what it was given.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let exec = Exec {
            path: PathBuf::from("/bin/sh"),
            args: vec![
                "sh".into(),
                "-c".into(),
                r#"echo "$LISTEN_PID $$ $LISTEN_FDS $LISTEN_FDNAMES $POUNCE_UPGRADE_FD" >&4"#.into(),
            ],
            env: vec![],
        };
        let child = spawn(&exec, &[listener.as_raw_fd()], &["web".into()], false, false).unwrap();
        let mut out = [0u8; 128];
        let n = read_full(child.ready.as_raw_fd(), &mut out);
        let line = String::from_utf8_lossy(&out[..n]);
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(f[0], child.pid.to_string(), "{line}");
        assert_eq!(f[0], f[1], "LISTEN_PID is the child's own pid: {line}");
        assert_eq!(&f[2..], ["1", "web", "4"], "{line}");
        assert_eq!(wait_blocking(child.pid), Some(Ended::Exited(0)));
    }
}
