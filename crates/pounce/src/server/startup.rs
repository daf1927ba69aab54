//! Start-up checks that turn glommio's low-level failures into one actionable
//! line: RLIMIT_MEMLOCK too low, io_uring blocked by seccomp (Docker's default
//! profile) or disabled by sysctl, or a kernel without io_uring.
//!
//! Before any executor is built, the memlock soft limit is raised to the hard
//! limit (allowed without privileges) and each executor's `io_memory` (the
//! registered buffer arena glommio pins) is sized to fit what the limit
//! allows, so a default container starts instead of failing.

use std::io;

/// glommio refuses to build a reactor below this RLIMIT_MEMLOCK.
pub(crate) const MIN_MEMLOCK: u64 = 512 * 1024;
/// glommio's default registered-buffer arena per executor.
const DEFAULT_IO_MEMORY: u64 = 10 << 20;
/// The smallest arena glommio accepts.
const MIN_IO_MEMORY: u64 = 64 << 10;

/// The memlock limit in force after raising the soft one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Memlock {
    pub soft: u64,
}

/// Raises RLIMIT_MEMLOCK's soft limit to its hard limit.
/// `sendfile(2)` (file bodies) has no `MSG_NOSIGNAL`: a client that goes
/// away mid-download must cost an `EPIPE`, not the process. Rust's `main`
/// usually ignores SIGPIPE already; a host that does not (another runtime,
/// `-Zon-broken-pipe=kill`) gets it ignored here, unless it installed a
/// handler of its own.
pub(crate) fn ignore_sigpipe() {
    // SAFETY: querying and then setting a signal disposition; no handler
    // code of ours runs.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut old) == 0
            && old.sa_sigaction == libc::SIG_DFL
        {
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        }
    }
}

/// A hot upgrade waits for its successor with `waitpid(2)`, and so does a
/// container's keeper: an ignored SIGCHLD, which a parent can leave behind
/// across exec, would make the kernel reap children on its own and every
/// wait fail. Back to the default (no handler: nothing else changes).
pub(crate) fn default_sigchld() {
    // SAFETY: querying and then setting a signal disposition; no handler
    // code of ours runs.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGCHLD, std::ptr::null(), &mut old) == 0
            && (old.sa_sigaction == libc::SIG_IGN || old.sa_flags & libc::SA_NOCLDWAIT != 0)
        {
            libc::signal(libc::SIGCHLD, libc::SIG_DFL);
        }
    }
}

pub(crate) fn raise_memlock() -> Memlock {
    // SAFETY: getrlimit/setrlimit on a stack struct.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut r) != 0 {
            return Memlock { soft: u64::MAX };
        }
        if r.rlim_cur < r.rlim_max {
            let raised = libc::rlimit { rlim_cur: r.rlim_max, rlim_max: r.rlim_max };
            if libc::setrlimit(libc::RLIMIT_MEMLOCK, &raised) == 0 {
                log::debug!("raised RLIMIT_MEMLOCK soft limit from {} to {}", r.rlim_cur, r.rlim_max);
                r.rlim_cur = r.rlim_max;
            }
        }
        Memlock { soft: r.rlim_cur }
    }
}

/// Raises RLIMIT_NOFILE's soft limit to its hard limit (each connection is a
/// descriptor; the usual soft default of 1024 is far below max_connections)
/// and warns when even the hard limit cannot hold `max_connections`.
pub(crate) fn raise_nofile(max_connections: usize) {
    // SAFETY: getrlimit/setrlimit on a stack struct.
    let soft = unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return;
        }
        if r.rlim_cur < r.rlim_max {
            let raised = libc::rlimit { rlim_cur: r.rlim_max, rlim_max: r.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                r.rlim_cur = r.rlim_max;
            }
        }
        r.rlim_cur
    };
    // Listeners, rings, eventfds and the like need some descriptors too.
    let needed = max_connections as u64 + 64;
    if soft != libc::RLIM_INFINITY && soft < needed {
        log::warn!(
            "open-file limit is {soft}, below max_connections ({max_connections}) plus overhead; \
             connections beyond it will fail to be accepted (raise it: `ulimit -n`, LimitNOFILE=, --ulimit nofile=)"
        );
    }
}

/// Creates and closes a one-entry io_uring before glommio builds anything.
/// glommio 0.9 panics ("Failed to register a probe ... kernel should be at
/// least 5.8", exit 101) when `io_uring_setup` fails, whatever the reason, so
/// without this check a seccomp filter or `kernel.io_uring_disabled` would
/// never reach [`diagnose_io`]'s message.
pub(crate) fn check_io_uring(limit: Memlock) -> Result<(), String> {
    // struct io_uring_params: 120 bytes, all zero is a valid request.
    let mut params = [0u64; 15];
    // SAFETY: io_uring_setup(2) writes at most 120 bytes into `params` and
    // returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1u32, params.as_mut_ptr()) };
    if fd < 0 {
        return Err(diagnose_io(&io::Error::last_os_error(), limit));
    }
    // SAFETY: closing the descriptor just created, owned by nobody else.
    unsafe { libc::close(fd as libc::c_int) };
    Ok(())
}

/// The registered-buffer arena for each of `executors` executors: glommio's
/// default when the limit allows, else an equal share of half the limit (the
/// rings themselves may be charged to memlock on older kernels).
pub(crate) fn io_memory_per_executor(limit: Memlock, executors: usize) -> usize {
    if limit.soft == libc::RLIM_INFINITY {
        return DEFAULT_IO_MEMORY as usize;
    }
    let share = limit.soft / 2 / executors.max(1) as u64;
    share.clamp(MIN_IO_MEMORY, DEFAULT_IO_MEMORY) as usize
}

/// One line saying why an executor could not start and what to do about it.
pub(crate) fn diagnose(err: &glommio::GlommioError<()>, limit: Memlock) -> String {
    use glommio::{GlommioError, ReactorErrorKind};
    match err {
        GlommioError::ReactorError(ReactorErrorKind::MemLockLimit(have, need)) => {
            memlock_message(*have, *need)
        }
        GlommioError::IoError(e) | GlommioError::EnhancedIoError { source: e, .. } => diagnose_io(e, limit),
        other => format!("cannot start an io_uring executor: {other}"),
    }
}

fn memlock_message(have: u64, need: u64) -> String {
    format!(
        "RLIMIT_MEMLOCK is too low for io_uring: {have} bytes locked-memory limit even after raising the soft limit \
         to the hard limit, at least {need} needed. Raise it: `ulimit -l unlimited` (shell), \
         `docker run --ulimit memlock=-1` (Docker), `LimitMEMLOCK=infinity` (systemd)"
    )
}

fn diagnose_io(e: &io::Error, limit: Memlock) -> String {
    if let Some((have, need)) = memlock_limit_error(e) {
        return memlock_message(have, need);
    }
    let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(0);
    let seccomp = seccomp_mode();
    match e.raw_os_error() {
        Some(libc::EPERM | libc::EACCES) if disabled > 0 => format!(
            "io_uring is disabled on this host (sysctl kernel.io_uring_disabled={disabled}); \
             set it to 0 (`sysctl -w kernel.io_uring_disabled=0`) to run pounce"
        ),
        Some(libc::EPERM | libc::EACCES | libc::ENOSYS) if seccomp == Some(2) => {
            "io_uring is blocked by a seccomp filter (Docker's and containerd's default profiles block \
             io_uring_setup); run with the profile shipped in deploy/: \
             `docker run --security-opt seccomp=deploy/seccomp-io-uring.json ...` \
             (Kubernetes: a Localhost seccompProfile, see deploy/kubernetes.yaml)"
                .to_string()
        }
        Some(libc::ENOSYS) => {
            "this kernel has no io_uring (Linux 5.19 or newer with CONFIG_IO_URING is needed)".to_string()
        }
        Some(libc::ENOMEM) if limit.soft < 64 << 20 => memlock_message(limit.soft, MIN_MEMLOCK),
        Some(libc::EPERM) => format!(
            "io_uring is not permitted here ({e}); a seccomp profile, an LSM policy or \
             kernel.io_uring_disabled may be blocking it"
        ),
        _ => format!("cannot start an io_uring executor: {e}"),
    }
}

/// glommio 0.9 hands its reactor's `MemLockLimit(have, need)` error back
/// from `LocalExecutorBuilder::make` as an `io::Error` whose message is
/// `MemLockLimit(have/need)` (not as `ReactorError`): recover the numbers.
fn memlock_limit_error(e: &io::Error) -> Option<(u64, u64)> {
    if e.raw_os_error().is_some() {
        return None;
    }
    let msg = e.to_string();
    let (have, need) = msg.strip_prefix("MemLockLimit(")?.strip_suffix(')')?.split_once('/')?;
    Some((have.trim().parse().ok()?, need.trim().parse().ok()?))
}

/// `Seccomp:` from /proc/self/status: 0 off, 1 strict, 2 filter.
fn seccomp_mode() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|l| l.strip_prefix("Seccomp:").and_then(|v| v.trim().parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_memory_fits_the_limit() {
        let m = |soft| Memlock { soft };
        assert_eq!(io_memory_per_executor(m(libc::RLIM_INFINITY), 4), 10 << 20);
        assert_eq!(io_memory_per_executor(m(8 << 20), 4), 1 << 20);
        assert_eq!(io_memory_per_executor(m(512 << 10), 4), 64 << 10);
        assert_eq!(io_memory_per_executor(m(1 << 30), 2), 10 << 20);
    }

    #[test]
    fn messages_name_the_cause_and_the_fix() {
        let msg = memlock_message(65536, MIN_MEMLOCK);
        assert!(msg.contains("RLIMIT_MEMLOCK") && msg.contains("--ulimit memlock=-1"));
        let limit = Memlock { soft: 1 << 30 };
        let m = diagnose_io(&io::Error::from_raw_os_error(libc::EIO), limit);
        assert!(m.starts_with("cannot start an io_uring executor"));
        // What glommio 0.9 actually returns when the limit is below 512 KiB.
        let m = diagnose_io(&io::Error::other("MemLockLimit(65536/524288)"), limit);
        assert!(m.starts_with("RLIMIT_MEMLOCK is too low") && m.contains("65536 bytes"), "{m}");
    }
}
