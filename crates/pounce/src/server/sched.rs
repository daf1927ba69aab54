//! The worker threads' Linux scheduling policy ([`SchedPolicy`]).
//!
//! Why a policy at all: a worker serves its core's connections in batches,
//! and what costs most when its core is shared (with the load generator,
//! a sidecar, anything) is not the HTTP work but context switches. Under
//! `SCHED_OTHER` a worker woken by the first request of a burst preempts the
//! task on its core, often the very one still sending the rest of the
//! burst; under `SCHED_BATCH` the scheduler does not preempt on such a
//! wake-up, so the worker runs when that task blocks or its slice ends, and
//! finds the whole burst waiting. Nothing else changes: the nice value, the
//! CPU share and the pinning stay as they were.
//!
//! Applied by each worker thread to itself before its executor is built, so
//! any helper thread glommio starts from it inherits the policy.

use crate::config::SchedPolicy;
use std::io;

/// What [`apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    /// The thread now runs under `SCHED_BATCH`.
    Batch,
    /// The thread keeps the policy it had (`libc::SCHED_*`): asked to, or an
    /// operator's choice (real-time, idle, already batch) that is kept.
    Kept(i32),
}

/// Sets the calling thread's policy as `policy` says.
pub(crate) fn apply(policy: SchedPolicy) -> io::Result<Applied> {
    // SAFETY: sched_getscheduler(0) queries the calling thread.
    let current = unsafe { libc::sched_getscheduler(0) };
    if current < 0 {
        return Err(io::Error::last_os_error());
    }
    if policy == SchedPolicy::Normal || current != libc::SCHED_OTHER {
        return Ok(Applied::Kept(current));
    }
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sets the calling thread's policy; `param` outlives the call.
    // Switching between SCHED_OTHER and SCHED_BATCH needs no privilege and
    // keeps the nice value.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Applied::Batch)
}

/// A policy's name as `chrt` prints it.
pub(crate) fn name(policy: i32) -> &'static str {
    match policy {
        libc::SCHED_OTHER => "SCHED_OTHER",
        libc::SCHED_BATCH => "SCHED_BATCH",
        libc::SCHED_IDLE => "SCHED_IDLE",
        libc::SCHED_FIFO => "SCHED_FIFO",
        libc::SCHED_RR => "SCHED_RR",
        _ => "another policy",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on_fresh_thread(policy: SchedPolicy) -> (io::Result<Applied>, i32) {
        std::thread::spawn(move || {
            let r = apply(policy);
            // SAFETY: queries the calling thread.
            (r, unsafe { libc::sched_getscheduler(0) })
        })
        .join()
        .unwrap()
    }

    #[test]
    fn batch_switches_a_normal_thread_and_normal_leaves_it() {
        // SAFETY: queries the calling thread.
        let start = unsafe { libc::sched_getscheduler(0) };
        let (r, now) = on_fresh_thread(SchedPolicy::Batch);
        if start == libc::SCHED_OTHER {
            assert_eq!(r.unwrap(), Applied::Batch);
            assert_eq!(now, libc::SCHED_BATCH);
        } else {
            // The test itself runs under chrt: an operator's policy is kept.
            assert_eq!(r.unwrap(), Applied::Kept(start));
            assert_eq!(now, start);
        }
        let (r, now) = on_fresh_thread(SchedPolicy::Normal);
        assert_eq!(r.unwrap(), Applied::Kept(start));
        assert_eq!(now, start);
    }

    #[test]
    fn names() {
        assert_eq!(name(libc::SCHED_BATCH), "SCHED_BATCH");
        assert_eq!(name(libc::SCHED_FIFO), "SCHED_FIFO");
        assert_eq!(name(99), "another policy");
    }
}
