//! A container's init must outlive the handover: stay up as the successor's
//! keeper.
//!
//! In a container pounce is often PID 1, and when PID 1 exits the kernel
//! kills every other process of its PID namespace: an old pounce that exits
//! after handing over would take its successor, and the container, down with
//! it. Under a minimal init (`docker run --init`'s tini, dumb-init,
//! catatonit) the same happens one step later: the init exits as soon as its
//! one child, the old pounce, does. So in both cases a pounce that has handed
//! over does not exit after its drain. From the handover on it forwards every
//! signal it gets (SIGTERM from `docker stop`, SIGUSR2 for the next upgrade)
//! to the process that serves, reaps whatever is reparented to it (it is a
//! child subreaper when it is not PID 1), and exits only when the serving
//! process exits for good, with that process's status, so the container's
//! exit code is still pounce's.
//!
//! When the serving process hands over in turn and exits, its successor is
//! reparented to the keeper, which finds it among its children and follows
//! it.

use super::successor::Ended;
use crate::exit::ExitStatus;
use std::io;
use std::sync::atomic::{AtomicI32, Ordering};

/// The process signals are forwarded to; 0 while this process serves.
static FORWARD_TO: AtomicI32 = AtomicI32::new(0);

/// Minimal container inits that exit when their child does.
const CONTAINER_INITS: [&str; 5] = ["tini", "docker-init", "dumb-init", "catatonit", "podman-init"];

/// Set in a successor's environment when its predecessor is a keeper (or
/// passes signals on to one): see [`handed_over`].
pub(crate) const VAR_CHAIN: &str = "POUNCE_KEEPER_CHAIN";

/// Whether this process must outlive a handover: it is the process a
/// container runtime started — PID 1 of its namespace, or a process whose
/// parent is outside its PID namespace (getppid() is 0: Kubernetes with
/// `shareProcessNamespace`, where PID 1 is the pause process) — or the one
/// child of a minimal container init that would exit with it.
pub(crate) fn must_stay() -> bool {
    // SAFETY: getppid(2) cannot fail.
    let ppid = unsafe { libc::getppid() };
    if std::process::id() == 1 || ppid == 0 {
        return true;
    }
    ppid == 1 && std::fs::read_to_string("/proc/1/comm").is_ok_and(|c| CONTAINER_INITS.contains(&c.trim()))
}

/// Whether this process's predecessor is a keeper, or passes signals on to
/// one: then the keeper's signals reach this process, not the one serving
/// after it, and this process must pass them on after handing over.
pub(crate) fn chained() -> bool {
    std::env::var_os(VAR_CHAIN).is_some_and(|v| v == "1")
}

/// Whether a successor of this process gets [`VAR_CHAIN`].
pub(crate) fn chain_successor() -> bool {
    must_stay() || chained()
}

/// This process handed over to `pid`: a keeper (or a link of a chain under
/// one) passes every signal on to it from now on.
pub(crate) fn handed_over(pid: i32) {
    if must_stay() {
        // A successor's own successor is reparented here when its parent
        // exits. (PID 1 is the reaper already.)
        if std::process::id() != 1 {
            // SAFETY: prctl(2) with an integer argument.
            unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        }
        forward_to(pid);
    } else if chained() {
        forward_to(pid);
    }
}

/// From now on, signals go to `pid` (see [`forward`]).
fn forward_to(pid: i32) {
    FORWARD_TO.store(pid, Ordering::Release);
}

/// Forwards `sig` if a successor serves; false if this process handles it.
pub(crate) fn forward(sig: i32) -> bool {
    let pid = FORWARD_TO.load(Ordering::Acquire);
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill(2).
    if unsafe { libc::kill(pid, sig) } != 0
        && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
    {
        // It exited just now, and the keeper has not followed its successor
        // yet: find it.
        if let Some(next) = successor_child() {
            forward_to(next);
            // SAFETY: kill(2).
            unsafe { libc::kill(next, sig) };
        }
    }
    true
}

/// Runs until the serving process (first `successor`) exits for good;
/// returns its status.
pub(crate) fn run(successor: i32) -> ExitStatus {
    let mut current = successor;
    forward_to(current);
    let role =
        if std::process::id() == 1 { "Running as PID 1" } else { "Running as the container's main process" };
    log::info!(
        "{role}: staying up as init for pid {current} (signals are forwarded to it; \
         the container exits with its status)"
    );
    loop {
        let mut status = 0;
        // SAFETY: waitpid(2) on any child.
        let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
        if pid < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            log::error!("Keeper: no process left to wait for; exiting");
            return ExitStatus::Fatal;
        }
        if pid != current {
            continue; // an orphan, reaped
        }
        let ended = Ended::from_status(status);
        if let Some(next) = successor_child() {
            log::info!("Keeper: pid {current} {ended}; pid {next} serves now");
            current = next;
            forward_to(current);
            continue;
        }
        log::info!("Keeper: pid {current} {ended}; exiting with its status");
        return match ended {
            Ended::Exited(code) => ExitStatus::from_code(code),
            _ => ExitStatus::Fatal,
        };
    }
}

/// The newest child of this process that is a pounce successor (it was
/// started with the handover variables), not some other orphan reparented
/// here.
fn successor_child() -> Option<i32> {
    let me = std::process::id() as i32;
    let dir = std::fs::read_dir("/proc").ok()?;
    dir.filter_map(|e| {
        let pid: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name may hold spaces and parentheses: fields start
        // after the last ')'. Then: state, ppid, …, starttime (the 20th).
        let rest: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
        let ppid: i32 = rest.get(1)?.parse().ok()?;
        let started: u64 = rest.get(19)?.parse().ok()?;
        if ppid != me || rest.first() == Some(&"Z") {
            return None;
        }
        let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
        let is_successor = environ.split(|&b| b == 0).any(|kv| kv.starts_with(b"POUNCE_UPGRADE_FD="));
        is_successor.then_some((started, pid))
    })
    .max()
    .map(|(_, pid)| pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waits until `pid` runs `sleep` (it has exec'd: before that, its
    /// environ is still this process's, without the successor variable).
    fn wait_for_exec(pid: u32) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|c| c.trim() != "sleep")
            .unwrap_or(true)
        {
            assert!(std::time::Instant::now() < deadline, "pid {pid} did not exec sleep within 5 s");
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }

    #[test]
    fn other_children_are_not_taken_for_a_successor() {
        // The successor starts first, so the plain child is the newest one:
        // only the environment tells them apart.
        let mut successor =
            std::process::Command::new("sleep").arg("5").env("POUNCE_UPGRADE_FD", "4").spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut plain = std::process::Command::new("sleep").arg("5").spawn().unwrap();
        wait_for_exec(successor.id());
        wait_for_exec(plain.id());
        let found = successor_child();
        let _ = plain.kill();
        let _ = successor.kill();
        let _ = (plain.wait(), successor.wait());
        assert_eq!(found, Some(successor.id() as i32));
    }
}
