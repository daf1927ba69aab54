//! The process handover: restarts and upgrades on one host that drop nothing.
//!
//! A listening socket can outlive the process serving it, as long as some
//! process holds it open. That is all zero-downtime restarts need, and this
//! module is where pounce uses it:
//! - [`inherit`]: serve on sockets passed in at exec (systemd socket
//!   activation, or a predecessor's hot upgrade: the same `LISTEN_FDS`
//!   convention) instead of binding;
//! - [`successor`], [`watch`] and [`upgrade`]: on SIGUSR2 or SIGHUP, start the
//!   binary at the start-up path with the same arguments and environment,
//!   pass it the listening sockets, and wait until it says it is ready; the
//!   coordinator then drains this process, which stops accepting without
//!   closing any socket the successor serves (closing the last descriptor of
//!   a socket resets the connections queued on it);
//! - [`link`]: the two processes' conversation (READY, TAKEOVER, EOF), which
//!   decides which of them owns the sockets at each moment;
//! - [`pidfile`]: `--pid-file` always names the serving process;
//! - [`lineage`]: this process's predecessor and successor, over the link;
//! - [`keeper`]: a container's main process stays up after handing over,
//!   since its exit would stop the container.
//!
//! The coordinator decides *when* (it owns the timeline); this module only
//! knows *how*.

pub(crate) mod inherit;
pub(crate) mod keeper;
pub(crate) mod lineage;
pub(crate) mod link;
pub(crate) mod pidfile;
pub(crate) mod successor;
pub(crate) mod upgrade;
pub(crate) mod watch;

/// Where this process's listening sockets came from, which decides what a
/// drain may do with them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Bound by this process: when it goes, they go.
    Bound,
    /// Passed in by the service manager (systemd socket activation), which
    /// keeps them open for the next instance.
    Manager,
    /// Passed in by a pounce predecessor (hot upgrade); `held` when the
    /// service manager holds them too.
    Predecessor { held: bool },
}

impl Origin {
    /// True when the service manager keeps the sockets open after this
    /// process (and any successor) exits, so that connections queued on them
    /// are served by the next instance: a drain must then leave them queued
    /// (no 503, no shutdown that would reset them). Whether a *predecessor*
    /// still serves them is a matter of the moment, not of origin: see
    /// [`link`].
    pub(crate) fn held_elsewhere(self) -> bool {
        matches!(self, Origin::Manager | Origin::Predecessor { held: true })
    }

    /// For log lines: who passed the sockets.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Origin::Bound => "bound by this process",
            Origin::Manager => "inherited from the service manager (socket activation)",
            Origin::Predecessor { .. } => "inherited from the previous pounce (hot upgrade)",
        }
    }
}
