//! Processes a test did not start itself but must account for: a hot
//! upgrade's successors. The test process becomes a child subreaper, so an
//! orphaned successor is reparented to it (not to init): it can then collect
//! each one's exit code and make sure none is left running.

use std::time::{Duration, Instant};

/// Makes this (test) process the reaper of its orphaned descendants. Each
/// test runs in its own process under nextest, so this affects one test.
pub fn become_subreaper() {
    // SAFETY: prctl(2) with an integer argument.
    let r = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    assert_eq!(r, 0, "PR_SET_CHILD_SUBREAPER: {}", std::io::Error::last_os_error());
}

/// Whether `pid` exists at all, zombie or not: a child that exited and was
/// never collected still does.
pub fn exists(pid: i32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Whether `pid` exists (and is not a zombie).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rfind(')').and_then(|i| stat[i + 1..].split_whitespace().next()) != Some("Z"),
        Err(_) => false,
    }
}

/// Waits for `pid` (a child, or an orphan reparented to this process) to
/// exit and returns its exit code (128 + signal if killed); None on timeout.
pub fn wait_exit(pid: i32, timeout: Duration) -> Option<i32> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut status = 0;
        // SAFETY: waitpid(2) with WNOHANG.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            return Some(if libc::WIFSIGNALED(status) {
                128 + libc::WTERMSIG(status)
            } else {
                libc::WEXITSTATUS(status)
            });
        }
        // ECHILD: not (yet) ours; it may still be reparented to us.
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Every child of this process, zombies (exited, never collected) included.
pub fn all_children() -> Vec<i32> {
    children_where(|_| true)
}

/// The live (non-zombie) children of this process.
pub fn children() -> Vec<i32> {
    children_where(|state| state != "Z")
}

fn children_where(keep: impl Fn(&str) -> bool) -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| {
        let pid: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let mut rest = stat[stat.rfind(')')? + 1..].split_whitespace();
        let state = rest.next()?;
        let ppid: i32 = rest.next()?.parse().ok()?;
        (ppid == me && keep(state)).then_some(pid)
    })
    .collect()
}

fn children_of(parent: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| {
        let pid: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        (parent_of(pid) == Some(parent)).then_some(pid)
    })
    .collect()
}

fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..].split_whitespace().nth(1)?.parse().ok()
}

/// Kills (SIGKILL) and collects, when dropped, every tracked pid still
/// alive, their children, and every child of this test process (orphans of
/// a failed test end up here, the test being a subreaper).
#[derive(Default)]
pub struct Reaper(pub Vec<i32>);

impl Reaper {
    pub fn track(&mut self, pid: i32) {
        if !self.0.contains(&pid) {
            self.0.push(pid);
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        let me = std::process::id() as i32;
        // Also whatever a failed test did not get to track: a successor
        // started by a tracked pounce (its child), or one reparented here.
        let mut all = self.0.clone();
        let mut i = 0;
        while i < all.len() {
            for kid in children_of(all[i]) {
                if !all.contains(&kid) {
                    all.push(kid);
                }
            }
            i += 1;
        }
        for kid in children() {
            if !all.contains(&kid) {
                all.push(kid);
            }
        }
        self.0 = all;
        for &pid in &self.0 {
            // Only a process still in this test's family: a pid that was
            // collected may have been reused by anyone since. (A pounce
            // this test started, or one it started, reparented here.)
            let ours = parent_of(pid).is_some_and(|pp| pp == me || self.0.contains(&pp));
            if ours && alive(pid) {
                // SAFETY: kill(2) on a process of this test (see above).
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            // Collect it if it is ours (a zombie until then); one that is
            // not (already reaped by its parent) has nothing to collect.
            let deadline = Instant::now() + Duration::from_secs(2);
            while std::path::Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
                // SAFETY: waitpid(2) with WNOHANG.
                if unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) } == pid {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// The pid a pid file names, once it names something other than `not`.
pub fn pid_file_changes(path: &std::path::Path, not: Option<i32>, timeout: Duration) -> Option<i32> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(pid) = std::fs::read_to_string(path).ok().and_then(|s| s.trim().parse::<i32>().ok())
            && Some(pid) != not
        {
            return Some(pid);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
