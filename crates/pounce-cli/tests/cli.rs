//! The command line and environment, against the real binary: every option's
//! flag and `POUNCE_*` spelling, the bare `SHUTDOWN_TIMEOUT`, precedence, and
//! the one-line errors with exit code 2 that come before anything binds.

mod common;

use common::{Pounce, command, get, output_within};
use std::time::Duration;

/// (flag, env var, option name in errors, bad values)
const OPTIONS: &[(&str, &str, &str, &[&str])] = &[
    ("--host", "POUNCE_HOST", "host", &["example.com", "1.2.3", "::g"]),
    ("--port", "POUNCE_PORT", "port", &["70000", "-1", "NaN", "8o"]),
    ("--workers", "POUNCE_WORKERS", "workers", &["0", "-2", "NaN", "1.5", "5000"]),
    ("--shutdown-timeout", "POUNCE_SHUTDOWN_TIMEOUT", "shutdown_timeout", &["0", "-5", "NaN", "inf", "soon"]),
    ("--shutdown-delay", "POUNCE_SHUTDOWN_DELAY", "shutdown_delay", &["-1", "NaN", "inf", "1e99"]),
    ("--request-timeout", "POUNCE_REQUEST_TIMEOUT", "request_timeout", &["0", "-1", "NaN"]),
    ("--header-timeout", "POUNCE_HEADER_TIMEOUT", "header_timeout", &["0", "-0.5", "NaN"]),
    ("--keep-alive-timeout", "POUNCE_KEEP_ALIVE_TIMEOUT", "keep_alive_timeout", &["0", "-1", "inf"]),
    ("--health-check-path", "POUNCE_HEALTH_CHECK_PATH", "health_check_path", &["health", "/a b"]),
    ("--max-header-size", "POUNCE_MAX_HEADER_SIZE", "max_header_size", &["0", "-1", "NaN", "1.5k"]),
    ("--max-headers", "POUNCE_MAX_HEADERS", "max_headers", &["0", "-3", "NaN"]),
    ("--max-body-size", "POUNCE_MAX_BODY_SIZE", "max_body_size", &["0", "-1", "lots"]),
    ("--max-connections", "POUNCE_MAX_CONNECTIONS", "max_connections", &["0", "-1", "1e3"]),
    ("--backlog", "POUNCE_BACKLOG", "backlog", &["0", "-1", "99999999999"]),
    ("--log-level", "POUNCE_LOG_LEVEL", "log_level", &["loud"]),
    ("--log-format", "POUNCE_LOG_FORMAT", "log_format", &["xml"]),
    ("--access-log", "POUNCE_ACCESS_LOG", "access_log", &["maybe"]),
    ("--sched-policy", "POUNCE_SCHED_POLICY", "sched_policy", &["fifo", "realtime", ""]),
    ("--pin-workers", "POUNCE_PIN_WORKERS", "pin_workers", &["sometimes", "2"]),
    (
        "--metrics-addr",
        "POUNCE_METRICS_ADDR",
        "metrics_addr",
        &["9090", "127.0.0.1", "host:9090", "1.2.3.4:65536", "::1:9090", "[::1]", ":http"],
    ),
];

fn assert_usage_error(out: &std::process::Output, name: &str, what: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{what}: stderr {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{what}: one line expected, got {err:?}");
    assert!(lines[0].starts_with(&format!("error: {name} ")), "{what}: {err:?}");
}

#[test]
fn every_invalid_flag_exits_2_naming_the_option() {
    for (flag, _, name, bad) in OPTIONS {
        for v in *bad {
            let arg = format!("{flag}={v}");
            let mut args = vec!["demo", &arg];
            if *flag != "--port" {
                args.extend(["--port", "0"]);
            }
            let out = output_within(command(&args), Duration::from_secs(10));
            assert_usage_error(&out, name, &arg);
        }
    }
}

#[test]
fn every_invalid_env_value_exits_2_naming_option_and_variable() {
    for (_, env, name, bad) in OPTIONS {
        for v in *bad {
            let mut cmd = command(if *env == "POUNCE_PORT" { &["demo"] } else { &["demo", "--port", "0"] });
            cmd.env(env, v);
            let out = output_within(cmd, Duration::from_secs(10));
            let what = format!("{env}={v}");
            assert_usage_error(&out, name, &what);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains(&format!("(from {env})")), "{what}: {err}");
        }
    }
}

#[test]
fn bare_shutdown_timeout_is_validated_too() {
    let out = output_within(
        {
            let mut c = command(&["demo", "--port", "0"]);
            c.env("SHUTDOWN_TIMEOUT", "0");
            c
        },
        Duration::from_secs(10),
    );
    assert_usage_error(&out, "shutdown_timeout", "SHUTDOWN_TIMEOUT=0");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("must be positive, got 0 (from SHUTDOWN_TIMEOUT)"), "{err}");
    // The seed's exact example.
    let out = command(&["demo", "--shutdown-timeout", "0"]).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "error: shutdown_timeout must be positive, got 0"
    );
}

#[test]
fn unknown_app_and_usage_errors_exit_2() {
    let out = command(&["wat", "--port", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("error: unknown app 'wat'"));
    let out = command(&["--port", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "APP is required");
    let out = command(&["demo", "--no-such-flag"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = command(&["--help"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for (flag, env, _, _) in OPTIONS {
        assert!(help.contains(flag) && help.contains(env), "help lacks {flag}/{env}");
    }
}

#[test]
fn invalid_values_fail_before_anything_binds() {
    // A bad value elsewhere on the line must not leave the port taken: the
    // error comes before the bind, so binding the same port right after works.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let out = command(&["demo", "--port", &port.to_string(), "--max-headers", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    std::net::TcpListener::bind(("127.0.0.1", port)).expect("port still free");
}

#[test]
fn env_values_are_honoured_and_flags_beat_them() {
    let p = Pounce::start_with(&["demo"], &[("POUNCE_WORKERS", "3")]);
    assert!(p.line_index("with 3 worker(s)").is_some(), "{}", p.log_text());
    let p = Pounce::start_with(&["demo", "--workers", "1"], &[("POUNCE_WORKERS", "3")]);
    assert!(p.line_index("with 1 worker(s)").is_some(), "{}", p.log_text());
    // POUNCE_HEALTH_CHECK_PATH and POUNCE_MAX_BODY_SIZE take effect.
    let p =
        Pounce::start_with(&["demo"], &[("POUNCE_HEALTH_CHECK_PATH", "/hz"), ("POUNCE_MAX_BODY_SIZE", "3")]);
    assert_eq!(get(p.addr, "/hz").status, 200);
    let out = common::raw(p.addr, b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nabcd");
    assert!(out.starts_with("HTTP/1.1 413 "), "{out}");
}

#[test]
fn shutdown_timeout_precedence_flag_then_pounce_env_then_bare_env() {
    // The force line shows which value won.
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        (
            &["--shutdown-timeout", "0.3"],
            &[("POUNCE_SHUTDOWN_TIMEOUT", "0.4"), ("SHUTDOWN_TIMEOUT", "0.5")],
            "(0.3s)",
        ),
        (&[], &[("POUNCE_SHUTDOWN_TIMEOUT", "0.4"), ("SHUTDOWN_TIMEOUT", "0.5")], "(0.4s)"),
        (&[], &[("SHUTDOWN_TIMEOUT", "0.5")], "(0.5s)"),
    ];
    for (flags, env, want) in cases {
        let mut args = vec!["demo", "--workers", "1"];
        args.extend_from_slice(flags);
        let mut p = Pounce::start_with(&args, env);
        let addr = p.addr;
        let t = std::thread::spawn(move || common::raw(addr, b"GET /sleep/5000 HTTP/1.1\r\nHost: t\r\n\r\n"));
        assert!(p.wait_log("", Duration::from_secs(1)).is_some());
        std::thread::sleep(Duration::from_millis(150));
        p.sigterm();
        assert_eq!(p.wait_exit(Duration::from_secs(5)), Some(3), "{}", p.log_text());
        let line = p.wait_log("did not stop within shutdown_timeout", Duration::from_secs(1)).unwrap();
        assert!(line.contains(want), "{want} expected in {line:?}");
        let _ = t.join();
    }
}

/// The scheduling policy (field 41 of `/proc/PID/task/TID/stat`) of each of
/// the process's threads, by thread name.
fn thread_policies(pid: i32) -> Vec<(String, i32)> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let (Ok(comm), Ok(stat)) =
            (std::fs::read_to_string(t.path().join("comm")), std::fs::read_to_string(t.path().join("stat")))
        else {
            continue;
        };
        // Fields after the `(comm)` one: state is field 3, policy field 41.
        let rest = stat.rsplit_once(')').unwrap().1;
        let policy: i32 = rest.split_whitespace().nth(38).unwrap().parse().unwrap();
        out.push((comm.trim().to_string(), policy));
    }
    out
}

#[test]
fn workers_run_under_sched_batch_unless_told_otherwise() {
    const OTHER: i32 = 0;
    const BATCH: i32 = 3;
    // SAFETY: queries the calling thread.
    let ours = unsafe { libc::sched_getscheduler(0) };
    if ours != OTHER {
        println!("SKIPPED: the test runs under policy {ours}, which pounce keeps by design");
        return;
    }
    let workers_and_others = |p: &Pounce| {
        let all = thread_policies(p.pid());
        let (w, o): (Vec<_>, Vec<_>) = all.into_iter().partition(|(name, _)| name.starts_with("pounce-w"));
        assert!(w.len() >= 2, "both workers' threads: {w:?}");
        (w, o)
    };
    // Default: every worker thread (and glommio's helpers they start) batch;
    // the main and signal threads untouched.
    let p = Pounce::start(&["demo", "--workers", "2"]);
    let (w, o) = workers_and_others(&p);
    assert!(w.iter().all(|(_, pol)| *pol == BATCH), "{w:?}");
    assert!(o.iter().all(|(_, pol)| *pol == OTHER), "{o:?}");
    assert_eq!(get(p.addr, "/").status, 200);
    // --sched-policy normal, and the environment variable, leave them alone.
    let p = Pounce::start(&["demo", "--workers", "2", "--sched-policy", "normal"]);
    let (w, _) = workers_and_others(&p);
    assert!(w.iter().all(|(_, pol)| *pol == OTHER), "{w:?}");
    let p = Pounce::start_with(&["demo", "--workers", "2"], &[("POUNCE_SCHED_POLICY", "normal")]);
    let (w, _) = workers_and_others(&p);
    assert!(w.iter().all(|(_, pol)| *pol == OTHER), "{w:?}");
}

/// The CPUs each worker thread may run on (`Cpus_allowed_list` of
/// `/proc/PID/task/TID/status`), by thread name.
fn worker_cpus(pid: i32) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let (Ok(comm), Ok(status)) = (
            std::fs::read_to_string(t.path().join("comm")),
            std::fs::read_to_string(t.path().join("status")),
        ) else {
            continue;
        };
        let comm = comm.trim().to_string();
        if !comm.starts_with("pounce-w") {
            continue;
        }
        let cpus =
            status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).unwrap().trim().to_string();
        out.push((comm, cpus));
    }
    out.sort();
    out
}

#[test]
fn workers_are_pinned_one_cpu_each_unless_told_otherwise() {
    let ours = std::fs::read_to_string("/proc/self/status").unwrap();
    let ours = ours.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).unwrap().trim().to_string();
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    if cpus < 2 {
        println!("SKIPPED: one CPU ({ours}): two workers cannot have one each");
        return;
    }
    let p = Pounce::start(&["demo", "--workers", "2"]);
    let w = worker_cpus(p.pid());
    assert!(w.len() >= 2, "both workers' threads: {w:?}");
    assert!(w.iter().all(|(_, c)| c.parse::<usize>().is_ok()), "each on one CPU: {w:?}");
    let distinct: std::collections::BTreeSet<_> = w.iter().map(|(_, c)| c).collect();
    assert!(distinct.len() >= 2, "on different CPUs: {w:?}");
    assert_eq!(get(p.addr, "/").status, 200);
    drop(p);
    // Unpinned, by flag or variable: every worker may run on every CPU this
    // process may (the test's own set, inherited).
    for p in [
        Pounce::start(&["demo", "--workers", "2", "--pin-workers", "false"]),
        Pounce::start_with(&["demo", "--workers", "2"], &[("POUNCE_PIN_WORKERS", "no")]),
    ] {
        let w = worker_cpus(p.pid());
        assert!(w.len() >= 2, "both workers' threads: {w:?}");
        assert!(w.iter().all(|(_, c)| *c == ours), "every worker on {ours}: {w:?}");
        assert_eq!(get(p.addr, "/").status, 200);
    }
}
