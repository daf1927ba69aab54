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

/// Whether this process must outlive a handover: it is PID 1 of its
/// namespace (a container's init), or the one child of a minimal container
/// init that would exit with it.
pub(crate) fn must_stay() -> bool {
    if std::process::id() == 1 {
        return true;
    }
    // SAFETY: getppid(2) cannot fail.
    let parent_is_init = unsafe { libc::getppid() } == 1;
    parent_is_init
        && std::fs::read_to_string("/proc/1/comm").is_ok_and(|c| CONTAINER_INITS.contains(&c.trim()))
}

/// Makes this process the reaper of its orphaned descendants, so that a
/// successor's own successor is reparented here. (PID 1 already is.)
pub(crate) fn become_subreaper() {
    if std::process::id() != 1 {
        // SAFETY: prctl(2) with an integer argument.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    }
}

/// From now on, signals go to `pid` (see [`forward`]).
pub(crate) fn forward_to(pid: i32) {
    FORWARD_TO.store(pid, Ordering::Release);
}

/// Forwards `sig` if a successor serves; false if this process handles it.
pub(crate) fn forward(sig: i32) -> bool {
    let pid = FORWARD_TO.load(Ordering::Acquire);
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill(2).
    unsafe { libc::kill(pid, sig) };
    true
}

/// Runs until the serving process (first `successor`) exits for good;
/// returns its status.
pub(crate) fn run(successor: i32) -> ExitStatus {
    let mut current = successor;
    forward_to(current);
    let role = if std::process::id() == 1 { "Running as PID 1" } else { "Running under a container init" };
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
        if let Some(next) = children().into_iter().max() {
            log::info!("Keeper: pid {current} {ended}; pid {next} serves now");
            current = next;
            forward_to(current);
            continue;
        }
        log::info!("Keeper: pid {current} {ended}; exiting with its status");
        return match ended {
            Ended::Exited(0) => ExitStatus::Clean,
            Ended::Exited(2) => ExitStatus::Usage,
            Ended::Exited(3) => ExitStatus::Forced,
            _ => ExitStatus::Fatal,
        };
    }
}

/// This process's children, from `/proc/*/stat` (field 4 is the parent).
fn children() -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| {
        let pid: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name may hold spaces and parentheses: fields start
        // after the last ')'.
        let rest = &stat[stat.rfind(')')? + 1..];
        let ppid: i32 = rest.split_whitespace().nth(1)?.parse().ok()?;
        (ppid == me).then_some(pid)
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_its_children() {
        let mut child = std::process::Command::new("sleep").arg("5").spawn().unwrap();
        let found = children();
        let _ = child.kill();
        let _ = child.wait();
        assert!(found.contains(&(child.id() as i32)), "{found:?}");
    }
}
