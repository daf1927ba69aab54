//! Process exit codes: what an orchestrator or a shell script learns about how
//! pounce stopped.

/// How a pounce process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// 0: every connection drained before shutdown_timeout.
    Clean,
    /// 1: could not start (port taken, io_uring unavailable, …) or a worker died.
    Fatal,
    /// 2: invalid command line or configuration.
    Usage,
    /// 3: forced: shutdown_timeout expired or a second signal arrived.
    Forced,
}

impl ExitStatus {
    /// The status a process's exit code stands for (an unknown code is a
    /// fatal error).
    pub fn from_code(code: i32) -> ExitStatus {
        match code {
            0 => ExitStatus::Clean,
            2 => ExitStatus::Usage,
            3 => ExitStatus::Forced,
            _ => ExitStatus::Fatal,
        }
    }

    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Clean => 0,
            ExitStatus::Fatal => 1,
            ExitStatus::Usage => 2,
            ExitStatus::Forced => 3,
        }
    }
}

impl From<ExitStatus> for std::process::ExitCode {
    fn from(s: ExitStatus) -> Self {
        std::process::ExitCode::from(s.code())
    }
}
