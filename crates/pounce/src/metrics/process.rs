//! The standard `process_*` metrics every Prometheus client library exports,
//! read from `/proc` at scrape time: CPU time, resident and virtual memory,
//! open and maximum file descriptors, start time.
//!
//! Same names, units and sources as the Go and Python clients, so existing
//! dashboards and alerts work unchanged. A figure that cannot be read (no
//! `/proc`, a locked-down sandbox) is left out rather than reported as 0.

use super::text::{Exposition, Kind};

/// What could be read this time.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct ProcessStats {
    pub cpu_seconds: Option<f64>,
    pub resident_bytes: Option<u64>,
    pub virtual_bytes: Option<u64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<f64>,
    pub start_time_seconds: Option<f64>,
}

impl ProcessStats {
    /// Reads this process's figures now.
    pub(crate) fn read() -> ProcessStats {
        // SAFETY: sysconf has no preconditions.
        let (tck, page) = unsafe { (libc::sysconf(libc::_SC_CLK_TCK), libc::sysconf(libc::_SC_PAGESIZE)) };
        let stat = std::fs::read_to_string("/proc/self/stat").ok();
        let btime = std::fs::read_to_string("/proc/stat").ok().and_then(|s| boot_time(&s));
        let mut p = stat
            .as_deref()
            .and_then(|s| from_stat(s, tck as f64, page.max(0) as u64, btime))
            .unwrap_or_default();
        p.open_fds = std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count() as u64);
        p.max_fds = max_fds();
        p
    }

    /// Appends the figures that were read.
    pub(crate) fn write(&self, e: &mut Exposition) {
        let mut gauge = |name: &str, help: &str, kind: Kind, v: Option<f64>| {
            if let Some(v) = v {
                e.header(name, help, kind);
                e.sample(name, &[], v);
            }
        };
        gauge(
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
            Kind::Counter,
            self.cpu_seconds,
        );
        gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            Kind::Gauge,
            self.resident_bytes.map(|v| v as f64),
        );
        gauge(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            Kind::Gauge,
            self.virtual_bytes.map(|v| v as f64),
        );
        gauge(
            "process_open_fds",
            "Number of open file descriptors.",
            Kind::Gauge,
            self.open_fds.map(|v| v as f64),
        );
        gauge("process_max_fds", "Maximum number of open file descriptors.", Kind::Gauge, self.max_fds);
        gauge(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            Kind::Gauge,
            self.start_time_seconds,
        );
    }
}

/// CPU, memory and start time from `/proc/self/stat`. The command name
/// (field 2) may hold spaces and parentheses: fields are counted from the
/// last `)`.
fn from_stat(stat: &str, clk_tck: f64, page: u64, btime: Option<u64>) -> Option<ProcessStats> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): field N is f[N - 3].
    let num = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    if clk_tck <= 0.0 {
        return None;
    }
    let ticks = |n| num(n).map(|t| t as f64 / clk_tck);
    Some(ProcessStats {
        cpu_seconds: ticks(14).zip(ticks(15)).map(|(u, s)| u + s),
        virtual_bytes: num(23),
        resident_bytes: num(24).map(|pages| pages * page),
        start_time_seconds: ticks(22).zip(btime).map(|(since_boot, boot)| boot as f64 + since_boot),
        ..ProcessStats::default()
    })
}

/// `btime` (boot time, seconds since the epoch) from `/proc/stat`.
fn boot_time(proc_stat: &str) -> Option<u64> {
    proc_stat.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|v| v.trim().parse().ok())
}

/// The soft RLIMIT_NOFILE (`+Inf` when unlimited).
fn max_fds() -> Option<f64> {
    // SAFETY: getrlimit on a stack struct.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return None;
        }
        Some(if r.rlim_cur == libc::RLIM_INFINITY { f64::INFINITY } else { r.rlim_cur as f64 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_paren() {
        // pid (comm) state ppid ... : utime=250 stime=50 starttime=1000
        // vsize=4096000 rss=300 — with a command name full of traps.
        let mut fields = vec!["S"; 50];
        fields[14 - 3] = "250";
        fields[15 - 3] = "50";
        fields[22 - 3] = "1000";
        fields[23 - 3] = "4096000";
        fields[24 - 3] = "300";
        let stat = format!("42 (we ird) 1 2 (x) {}", fields.join(" "));
        let p = from_stat(&stat, 100.0, 4096, Some(1_700_000_000)).unwrap();
        assert_eq!(p.cpu_seconds, Some(3.0));
        assert_eq!(p.resident_bytes, Some(300 * 4096));
        assert_eq!(p.virtual_bytes, Some(4_096_000));
        assert_eq!(p.start_time_seconds, Some(1_700_000_010.0));
        assert_eq!(from_stat("no paren", 100.0, 4096, None), None);
        assert_eq!(boot_time("cpu 1 2\nbtime 1700000000\nprocesses 5\n"), Some(1_700_000_000));
    }

    #[test]
    fn this_process_reads_sensibly() {
        let p = ProcessStats::read();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
        let started = p.start_time_seconds.unwrap();
        assert!(started <= now + 1.0 && started > now - 3600.0, "{started} vs {now}");
        assert!(p.resident_bytes.unwrap() > 0);
        assert!(p.open_fds.unwrap() >= 3);
        assert!(p.max_fds.unwrap() >= p.open_fds.unwrap() as f64);
        assert!(p.cpu_seconds.unwrap() >= 0.0);
        let mut e = Exposition::default();
        p.write(&mut e);
        let text = e.into_string();
        for name in ["process_cpu_seconds_total", "process_open_fds", "process_start_time_seconds"] {
            assert!(text.contains(&format!("# TYPE {name} ")), "{text}");
        }
    }
}
