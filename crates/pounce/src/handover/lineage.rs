//! This process's place in a chain of hot upgrades: the predecessor it took
//! over from, and the successor it handed over to, each over its end of the
//! [`link`](super::link).
//!
//! As a successor, it says READY once it listens, then waits for TAKEOVER.
//! Until then the predecessor serves the sockets, so this process must not
//! shut them down ([`Lineage::owns_sockets`]), names nobody in the pid file
//! and says nothing to systemd. With TAKEOVER (or the predecessor's EOF) it
//! takes over: pid file, sd_notify. When it is stopped in turn, it waits for a
//! predecessor still draining before it exits.
//!
//! As a predecessor, after TAKEOVER, it keeps the link open and logs the
//! successor's exit if it comes during its own drain.

use super::link::{self, Heard};
use super::pidfile;
use super::successor;
use super::watch::Link;
use crate::shutdown::notify;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::rc::Rc;

/// What the link said, delivered to the coordinator.
#[derive(Debug)]
pub(crate) enum LinkEvent {
    /// The predecessor's answer to READY.
    TakeOver(Heard),
    /// The predecessor has exited.
    PredecessorGone,
    /// The successor this process handed over to has exited.
    SuccessorGone,
}

struct Predecessor {
    pid: i32,
    /// It said TAKEOVER, or is gone: the sockets are this process's.
    owns: bool,
    /// It said TAKEOVER: it drains, and this process waits for its exit.
    handed_over: bool,
    gone: bool,
}

pub(crate) struct Lineage {
    pid_file: Option<PathBuf>,
    predecessor: Option<Predecessor>,
    /// The successor and our end of the link, held open until we exit.
    successor: Option<(i32, OwnedFd)>,
}

impl Lineage {
    pub(crate) fn new(pid_file: Option<PathBuf>) -> Lineage {
        Lineage { pid_file, predecessor: None, successor: None }
    }

    /// Every worker listens. As a successor (`link` given): says READY and
    /// listens for the answer; otherwise this process is the service now:
    /// the pid file names it (systemd hears READY=1 from the coordinator).
    pub(crate) fn ready(&mut self, link: Option<OwnedFd>, deliver: Rc<dyn Fn(LinkEvent)>) {
        let Some(fd) = link else {
            self.write_pid_file();
            return;
        };
        // SAFETY: getppid(2) cannot fail; the predecessor is our parent.
        let pid = unsafe { libc::getppid() };
        self.predecessor = Some(Predecessor { pid, owns: false, handed_over: false, gone: false });
        log::info!("Upgrade: ready; telling the previous process (pid {pid}) to hand over");
        if let Err(e) = link::say(&fd, link::READY) {
            log::warn!("Upgrade: cannot tell the previous process (pid {pid}) that this one is ready: {e}");
        }
        glommio::spawn_local(async move {
            let mut stream = link::stream(fd);
            let heard = link::hear(&mut stream, link::TAKEOVER).await;
            let gone = heard == Heard::Gone;
            deliver(LinkEvent::TakeOver(heard));
            if !gone {
                link::gone(&mut stream).await;
            }
            deliver(LinkEvent::PredecessorGone);
        })
        .detach();
    }

    pub(crate) fn on_event(&mut self, ev: LinkEvent) {
        match ev {
            LinkEvent::TakeOver(heard) => {
                let Some(p) = self.predecessor.as_mut() else { return };
                match heard {
                    Heard::Line => {
                        p.handed_over = true;
                        log::info!("Upgrade: took over from pid {}, which now drains", p.pid);
                    }
                    Heard::Gone => log::warn!(
                        "Upgrade: the previous process (pid {}) went away before handing over; this one serves on",
                        p.pid
                    ),
                    Heard::Garbage(said) => log::warn!(
                        "Upgrade: the previous process (pid {}) answered {said:?} instead of TAKEOVER; taking over",
                        p.pid
                    ),
                }
                p.owns = true;
                self.write_pid_file();
                notify::resume();
            }
            LinkEvent::PredecessorGone => {
                if let Some(p) = self.predecessor.as_mut() {
                    p.gone = true;
                    p.owns = true;
                }
            }
            LinkEvent::SuccessorGone => {
                if let Some((pid, _)) = &self.successor {
                    let pid = *pid;
                    let how = match successor::try_wait(pid) {
                        Ok(Some(ended)) => ended.to_string(),
                        _ => "has exited".into(),
                    };
                    log::warn!(
                        "Upgrade: successor pid {pid} {how} while this process is still draining; unless \
                         the service is being stopped, nothing will serve the port once this process exits"
                    );
                }
            }
        }
    }

    /// This process handed over to `pid` (TAKEOVER said): keeps the link
    /// open until exit, and watches the successor's end of it.
    pub(crate) fn handed_over(&mut self, pid: i32, link: Link, deliver: Rc<dyn Fn(LinkEvent)>) {
        let Link { writer, mut reader } = link;
        self.successor = Some((pid, writer));
        glommio::spawn_local(async move {
            link::gone(&mut reader).await;
            deliver(LinkEvent::SuccessorGone);
        })
        .detach();
    }

    /// This process's drain is over: tells the successor so (EOF on the
    /// link) now, not at exit, which a container's keeper never reaches
    /// before its successor exits, and which the successor would wait for.
    pub(crate) fn drain_over(&mut self) {
        if let Some((_, fd)) = &self.successor {
            // SAFETY: shutdown(2) on our end of the link (the socket itself,
            // whatever other descriptor of it a task still holds).
            unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_RDWR) };
        }
    }

    /// False while a predecessor still serves the sockets this process
    /// inherited: a drain must then leave them to it.
    pub(crate) fn owns_sockets(&self) -> bool {
        self.predecessor.as_ref().is_none_or(|p| p.owns)
    }

    /// A predecessor that handed over and still drains: this process waits
    /// for it before exiting (see the module documentation).
    pub(crate) fn predecessor_draining(&self) -> Option<i32> {
        self.predecessor.as_ref().filter(|p| p.handed_over && !p.gone).map(|p| p.pid)
    }

    fn write_pid_file(&self) {
        if let Some(path) = &self.pid_file
            && let Err(e) = pidfile::write(path, std::process::id())
        {
            log::error!("cannot write the pid file {}: {e}", path.display());
        }
    }
}
