//! How many CPUs this process may really use: the default worker count and
//! the set of CPUs workers are pinned to.
//!
//! `nproc` is not the answer in a container: the affinity mask may be narrower
//! than the machine, and a cgroup CPU quota (Kubernetes `limits.cpu: 500m`)
//! caps the time we get whatever the mask says. Running more executors than
//! the quota allows only adds throttling, so the default is the smaller of the
//! two, rounded up, at least one.

use std::fs;

/// The CPUs this process may run on, and how many workers that suggests.
#[derive(Debug, Clone, PartialEq)]
pub struct AvailableCpus {
    /// CPU ids in the affinity mask, ascending.
    pub cpus: Vec<usize>,
    /// CPUs' worth of time allowed by the cgroup quota, if one is set.
    pub quota: Option<f64>,
    /// Default worker count: min(affinity, ceil(quota)), at least 1.
    pub count: usize,
}

/// Reads the affinity mask and the cgroup (v2, then v1) CPU quota.
pub fn available_cpus() -> AvailableCpus {
    let cpus = affinity();
    let quota = cgroup_quota();
    AvailableCpus { count: worker_count(cpus.len(), quota), quota, cpus }
}

fn worker_count(affinity: usize, quota: Option<f64>) -> usize {
    let mut n = affinity.max(1);
    if let Some(q) = quota {
        n = n.min(q.ceil().max(1.0) as usize);
    }
    n
}

fn affinity() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity fills it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
            let ids: Vec<usize> =
                (0..libc::CPU_SETSIZE as usize).filter(|&i| libc::CPU_ISSET(i, &set)).collect();
            if !ids.is_empty() {
                return ids;
            }
        }
    }
    let n = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    (0..n).collect()
}

fn cgroup_quota() -> Option<f64> {
    // cgroup v2: the process's own cgroup, then the root of the namespace.
    let own = fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("0::").map(|p| p.trim().to_string())));
    let mut v2 = Vec::new();
    if let Some(p) = own {
        v2.push(format!("/sys/fs/cgroup{}/cpu.max", p.trim_end_matches('/')));
    }
    v2.push("/sys/fs/cgroup/cpu.max".to_string());
    for path in v2 {
        if let Ok(s) = fs::read_to_string(&path) {
            return parse_cpu_max(&s);
        }
    }
    let quota = fs::read_to_string("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").ok()?;
    let period = fs::read_to_string("/sys/fs/cgroup/cpu/cpu.cfs_period_us").ok()?;
    parse_v1(&quota, &period)
}

/// cgroup v2 `cpu.max`: `max 100000` (no quota) or `150000 100000`.
fn parse_cpu_max(s: &str) -> Option<f64> {
    let mut it = s.split_whitespace();
    let quota = it.next()?;
    let period: f64 = it.next()?.parse().ok()?;
    if quota == "max" || period <= 0.0 {
        return None;
    }
    let q: f64 = quota.parse().ok()?;
    (q > 0.0).then_some(q / period)
}

fn parse_v1(quota: &str, period: &str) -> Option<f64> {
    let q: f64 = quota.trim().parse().ok()?;
    let p: f64 = period.trim().parse().ok()?;
    (q > 0.0 && p > 0.0).then_some(q / p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_max_formats() {
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(parse_cpu_max("150000 100000\n"), Some(1.5));
        assert_eq!(parse_cpu_max("50000 100000"), Some(0.5));
        assert_eq!(parse_cpu_max("garbage"), None);
        assert_eq!(parse_v1("-1", "100000"), None);
        assert_eq!(parse_v1("200000\n", "100000\n"), Some(2.0));
    }

    #[test]
    fn quota_caps_affinity() {
        assert_eq!(worker_count(8, None), 8);
        assert_eq!(worker_count(8, Some(0.5)), 1);
        assert_eq!(worker_count(8, Some(1.5)), 2);
        assert_eq!(worker_count(2, Some(4.0)), 2);
        assert_eq!(worker_count(0, None), 1);
    }

    #[test]
    fn this_machine_has_at_least_one() {
        let a = available_cpus();
        assert!(a.count >= 1);
        assert!(!a.cpus.is_empty());
    }
}
