//! Hot upgrade (SIGUSR2 / SIGHUP): a successor started from the binary at the
//! start-up path takes over the listening sockets, the old process drains and
//! exits 0, and clients never notice. Real processes, signals and sockets; the
//! test process is a child subreaper, so it collects every generation's exit
//! code and can tell that exactly one pounce is left.

mod common;

use common::load::Load;
use common::procs::{self, Reaper};
use common::{BIN, Client, Pounce};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pounce-upgrade-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) on a pounce this test started.
    unsafe { libc::kill(pid, sig) };
}

/// Puts `target` at `path` atomically (rename over it), as a deploy does.
fn install_link(path: &Path, target: &Path) {
    let tmp = path.with_extension("new");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Puts a (bash) script at `path` atomically.
fn install_script(path: &Path, body: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, format!("#!/bin/bash\n{body}\n")).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A script standing in for a new binary that takes `secs` to start, then
/// runs the real one (exec keeps the pid, so LISTEN_PID still matches). It
/// stops promptly, leaving nothing behind, when told to stop meanwhile.
fn slow_start_script(secs: f64) -> String {
    format!("trap 'kill $!; exit 143' TERM\nsleep {secs} &\nwait $!\nexec {BIN} \"$@\"")
}

/// A pounce started from `dir/pounce` (a symlink to the real binary that a
/// test can swap), with a pid file; returns it and the pid file's path.
fn start_from_link(dir: &Path, extra: &[&str]) -> (Pounce, PathBuf) {
    let link = dir.join("pounce");
    install_link(&link, Path::new(BIN));
    let pid_file = dir.join("pounce.pid");
    let mut args = vec!["demo", "--pid-file", pid_file.to_str().unwrap(), "--port", "0", "--workers", "2"];
    args.extend_from_slice(extra);
    let p = Pounce::spawn(common::command_for(&link, &args));
    (p, pid_file)
}

fn pid_in(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The pid in `Upgrade: started successor pid N` (the `nth` such line).
fn started_successor(p: &Pounce, nth: usize) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found: Vec<i32> = p
            .lines()
            .iter()
            .filter_map(|l| l.split("Upgrade: started successor pid ").nth(1))
            .filter_map(|r| r.split_whitespace().next()?.parse().ok())
            .collect();
        if let Some(&pid) = found.get(nth) {
            return pid;
        }
        assert!(Instant::now() < deadline, "no successor started; log:\n{}", p.log_text());
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn three_upgrades_under_load_fail_no_request_and_leave_one_pounce() {
    procs::become_subreaper();
    let dir = tmpdir("load");
    let pid_file = dir.join("pounce.pid");
    let mut first = Pounce::start(&["demo", "--pid-file", pid_file.to_str().unwrap()]);
    let mut reaper = Reaper::default();
    reaper.track(first.pid());
    let addr = first.addr;
    assert_eq!(pid_in(&pid_file), Some(first.pid()), "the pid file names the serving process");

    let load = Load::start(addr, 8, 4);
    std::thread::sleep(Duration::from_millis(400));
    // A slow request in flight on the first process across its handover.
    let mut slow = Client::connect(addr);
    slow.send(b"GET /sleep/1500 HTTP/1.1\r\nHost: t\r\n\r\n");
    std::thread::sleep(Duration::from_millis(200));

    let mut serving = first.pid();
    let mut replaced = Vec::new();
    for _ in 0..3 {
        signal(serving, libc::SIGUSR2);
        let next = procs::pid_file_changes(&pid_file, Some(serving), Duration::from_secs(20))
            .unwrap_or_else(|| panic!("no successor took over from {serving}; log:\n{}", first.log_text()));
        reaper.track(next);
        assert!(
            first
                .wait_log(
                    &format!(
                        "Upgrade: successor pid {next} is ready and serving; this process (pid {serving})"
                    ),
                    Duration::from_secs(5)
                )
                .is_some(),
            "{}",
            first.log_text()
        );
        replaced.push(serving);
        serving = next;
        std::thread::sleep(Duration::from_millis(800));
    }
    let tally = load.finish();

    let r = slow.read_response(false).expect("the slow request completes on the old process");
    assert_eq!(r.status, 200, "{}", r.head);
    assert!(r.closes(), "the old process's last response closes the connection: {}", r.head);

    // Every replaced process drained and exited 0.
    assert_eq!(first.wait_exit(Duration::from_secs(10)), Some(0), "{}", first.log_text());
    for &pid in &replaced[1..] {
        assert_eq!(
            procs::wait_exit(pid, Duration::from_secs(10)),
            Some(0),
            "pid {pid}; {}",
            first.log_text()
        );
    }
    // Exactly one pounce is left: the last successor, named by the pid file.
    assert_eq!(procs::children(), vec![serving], "{}", first.log_text());
    assert_eq!(pid_in(&pid_file), Some(serving));
    tally.assert_clean(300, &first.log_text());

    signal(serving, libc::SIGTERM);
    assert_eq!(procs::wait_exit(serving, Duration::from_secs(15)), Some(0));
    assert!(!pid_file.exists(), "the last process removes the pid file that names it");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sighup_runs_the_binary_now_at_the_start_up_path() {
    procs::become_subreaper();
    let dir = tmpdir("newbin");
    let (mut p, pid_file) = start_from_link(&dir, &[]);
    let mut reaper = Reaper::default();
    reaper.track(p.pid());
    // The deploy: a new "binary" renamed over the path pounce started from.
    let marker = dir.join("new-binary-ran");
    install_script(&dir.join("pounce"), &format!("echo $$ > {}\nexec {BIN} \"$@\"", marker.display()));
    p.signal(libc::SIGHUP);
    let next = procs::pid_file_changes(&pid_file, Some(p.pid()), Duration::from_secs(20))
        .unwrap_or_else(|| panic!("no takeover; log:\n{}", p.log_text()));
    reaper.track(next);
    let ran = std::fs::read_to_string(&marker).expect("the new binary ran");
    assert_eq!(ran.trim(), next.to_string(), "the successor is the new binary's process");
    assert!(p.log_text().contains("Received SIGHUP — starting a hot upgrade"), "{}", p.log_text());
    assert_eq!(common::get(p.addr, "/").status, 200);
    assert_eq!(p.wait_exit(Duration::from_secs(10)), Some(0), "{}", p.log_text());
    signal(next, libc::SIGTERM);
    assert_eq!(procs::wait_exit(next, Duration::from_secs(15)), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_failed_upgrade_leaves_the_old_process_serving() {
    procs::become_subreaper();
    let dir = tmpdir("fail");
    let (mut p, pid_file) = start_from_link(&dir, &[]);
    let mut reaper = Reaper::default();
    reaper.track(p.pid());
    let load = Load::start(p.addr, 4, 2);
    std::thread::sleep(Duration::from_millis(300));

    // 1. The new binary exits at once.
    install_script(&dir.join("pounce"), "echo 'successor: bad configuration' >&2\nexit 1");
    p.signal(libc::SIGUSR2);
    let line =
        p.wait_log("Upgrade failed:", Duration::from_secs(10)).unwrap_or_else(|| panic!("{}", p.log_text()));
    let pid = started_successor(&p, 0);
    assert!(
        line.contains(&format!("successor pid {pid} exited with status 1 before it was ready")),
        "{line}"
    );
    assert!(line.contains("still serving") && line.contains("Check the binary at"), "{line}");
    assert!(!procs::exists(pid), "the failed successor was collected, not left a zombie");

    // 2. No binary at the path at all.
    std::fs::remove_file(dir.join("pounce")).unwrap();
    let before = p.lines().len();
    p.signal(libc::SIGUSR2);
    let line = p.wait_log_after(before, "Upgrade failed:", Duration::from_secs(10)).unwrap();
    assert!(line.contains("cannot start") && line.contains("No such file or directory"), "{line}");

    std::thread::sleep(Duration::from_millis(300));
    let tally = load.finish();
    tally.assert_clean(50, &p.log_text());
    assert_eq!(pid_in(&pid_file), Some(p.pid()), "the pid file still names the serving process");
    assert_eq!(procs::children(), vec![p.pid()]);

    // 3. Once the binary is back, the next upgrade works.
    install_link(&dir.join("pounce"), Path::new(BIN));
    p.signal(libc::SIGUSR2);
    let next = procs::pid_file_changes(&pid_file, Some(p.pid()), Duration::from_secs(20))
        .unwrap_or_else(|| panic!("{}", p.log_text()));
    reaper.track(next);
    assert_eq!(p.wait_exit(Duration::from_secs(10)), Some(0), "{}", p.log_text());
    signal(next, libc::SIGTERM);
    assert_eq!(procs::wait_exit(next, Duration::from_secs(15)), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_successor_not_ready_in_time_is_stopped_and_the_old_one_serves_on() {
    procs::become_subreaper();
    let dir = tmpdir("hung");
    let (mut p, pid_file) = start_from_link(&dir, &["--upgrade-timeout", "1"]);
    let mut reaper = Reaper::default();
    reaper.track(p.pid());
    install_script(&dir.join("pounce"), "exec sleep 30");
    let t = Instant::now();
    p.signal(libc::SIGUSR2);
    let pid = started_successor(&p, 0);
    reaper.track(pid);
    let line =
        p.wait_log("Upgrade failed:", Duration::from_secs(10)).unwrap_or_else(|| panic!("{}", p.log_text()));
    assert!(t.elapsed() >= Duration::from_secs(1), "waited upgrade_timeout first");
    assert!(
        line.contains(&format!(
            "successor pid {pid} was not ready within 1.0s (upgrade_timeout); stopped it"
        )),
        "{line}"
    );
    assert!(!procs::exists(pid), "the hung successor is gone, and collected");
    assert_eq!(common::get(p.addr, "/").status, 200);
    assert_eq!(pid_in(&pid_file), Some(p.pid()));
    p.sigterm();
    assert_eq!(p.wait_exit(Duration::from_secs(10)), Some(0), "{}", p.log_text());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_second_sigusr2_during_an_upgrade_is_ignored() {
    procs::become_subreaper();
    let dir = tmpdir("twice");
    let (mut p, pid_file) = start_from_link(&dir, &[]);
    let mut reaper = Reaper::default();
    reaper.track(p.pid());
    install_script(&dir.join("pounce"), &slow_start_script(1.0));
    p.signal(libc::SIGUSR2);
    let pid = started_successor(&p, 0);
    reaper.track(pid);
    p.signal(libc::SIGUSR2);
    let line = p
        .wait_log("during the upgrade already under way", Duration::from_secs(5))
        .unwrap_or_else(|| panic!("{}", p.log_text()));
    assert!(
        line.contains(&format!(
            "Received SIGUSR2 during the upgrade already under way (successor pid {pid}) — ignored"
        )),
        "{line}"
    );
    let next = procs::pid_file_changes(&pid_file, Some(p.pid()), Duration::from_secs(20)).unwrap();
    assert_eq!(next, pid);
    assert_eq!(p.wait_exit(Duration::from_secs(10)), Some(0), "{}", p.log_text());
    assert_eq!(procs::children(), vec![pid], "one successor, not two");
    signal(pid, libc::SIGTERM);
    assert_eq!(procs::wait_exit(pid, Duration::from_secs(15)), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sigterm_during_an_upgrade_shuts_down_cleanly_and_leaves_no_orphan() {
    procs::become_subreaper();
    let dir = tmpdir("term");
    let (mut p, pid_file) = start_from_link(&dir, &[]);
    let mut reaper = Reaper::default();
    reaper.track(p.pid());
    install_script(&dir.join("pounce"), &slow_start_script(3.0));
    p.signal(libc::SIGUSR2);
    let pid = started_successor(&p, 0);
    reaper.track(pid);
    p.sigterm();
    assert_eq!(p.wait_exit(Duration::from_secs(10)), Some(0), "{}", p.log_text());
    let log = p.log_text();
    assert!(
        log.contains(&format!(
            "Upgrade: stopping successor pid {pid}, which is not ready yet: this process is shutting down"
        )),
        "{log}"
    );
    assert!(log.contains(&format!("Upgrade: successor pid {pid} is gone")), "{log}");
    assert!(
        !procs::exists(pid),
        "no orphan: the successor is gone, and collected, before the old process exits"
    );
    // (The stand-in's own `sleep` is killed by its trap; a zombie of it may
    // be reparented here, but nothing may be left running.)
    assert!(procs::children().is_empty(), "{:?}", procs::children());
    assert!(!procs::all_children().contains(&pid), "the successor was left to this test to collect");
    assert!(!pid_file.exists(), "the pid file named the process that exited: removed");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn systemd_follows_the_successor_as_main_pid() {
    use std::os::unix::net::UnixDatagram;
    procs::become_subreaper();
    let dir = tmpdir("notify");
    let sock_path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut p = Pounce::start_with(&["demo"], &[("NOTIFY_SOCKET", sock_path.to_str().unwrap())]);
    let mut reaper = Reaper::default();
    reaper.track(p.pid());
    let mut got: Vec<String> = Vec::new();
    let mut recv_until = |pred: &dyn Fn(&str) -> bool, within: Duration| -> Option<String> {
        let deadline = Instant::now() + within;
        let mut buf = [0u8; 1024];
        while Instant::now() < deadline {
            if let Ok(n) = sock.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                got.push(msg.clone());
                if pred(&msg) {
                    return Some(msg);
                }
            }
        }
        None
    };
    recv_until(&|m| m.lines().any(|l| l == "READY=1"), Duration::from_secs(10)).expect("READY=1");
    p.signal(libc::SIGUSR2);
    let reloading = recv_until(&|m| m.contains("RELOADING=1"), Duration::from_secs(10)).expect("RELOADING=1");
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    let msg = recv_until(&|m| m.contains("MAINPID="), Duration::from_secs(20)).expect("MAINPID=");
    let main: i32 = msg.lines().find_map(|l| l.strip_prefix("MAINPID=")).unwrap().parse().unwrap();
    reaper.track(main);
    assert!(msg.lines().any(|l| l == "READY=1"), "MAINPID and READY=1 in one message: {msg:?}");
    assert_ne!(main, p.pid());
    assert_eq!(started_successor(&p, 0), main);
    // The old process drains silently: no STOPPING=1 or STATUS from it.
    assert_eq!(p.wait_exit(Duration::from_secs(10)), Some(0), "{}", p.log_text());
    let after = recv_until(&|_| true, Duration::from_millis(600));
    assert_eq!(after, None, "the replaced process must not notify after MAINPID: {got:?}");
    // The successor is the service now: its shutdown is told.
    signal(main, libc::SIGTERM);
    recv_until(&|m| m.lines().any(|l| l == "STOPPING=1"), Duration::from_secs(10))
        .unwrap_or_else(|| panic!("STOPPING=1 from the successor: {got:?}"));
    assert_eq!(procs::wait_exit(main, Duration::from_secs(15)), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The first child of `pid`.
fn child_of(pid: i32) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let kids = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        if let Some(k) = kids.split_whitespace().next() {
            return k.parse().unwrap();
        }
        assert!(Instant::now() < deadline, "{pid} has no child");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// pounce in a new PID namespace, as in a container: PID 1 itself, or the
/// child of `init` (tini, as `docker run --init` runs it). Hot upgrade under
/// load, then `docker stop`'s SIGTERM to PID 1.
fn upgrade_in_a_container(init: &[&str], stays: &str) {
    let probe = std::process::Command::new("unshare").args(["-pf", "--mount-proc", "true"]).output();
    match probe {
        Ok(o) if o.status.success() => {}
        other => panic!("this test needs `unshare -pf` (util-linux, as root): {other:?}"),
    }
    // --kill-child: if the test fails and kills unshare, the namespace's
    // PID 1 (and with it everything in the namespace) is killed too.
    let mut args = vec!["-pf", "--mount-proc", "--kill-child"];
    args.extend_from_slice(init);
    args.extend([BIN, "demo", "--port", "0", "--workers", "2"]);
    let mut p = Pounce::spawn(common::command_for("unshare", &args));
    // unshare's child is PID 1 inside; pounce is it, or its child.
    let pid1 = child_of(p.pid());
    let pounce = if init.is_empty() { pid1 } else { child_of(pid1) };
    let load = Load::start(p.addr, 4, 2);
    std::thread::sleep(Duration::from_millis(300));
    signal(pounce, libc::SIGUSR2);
    p.wait_log(&format!("{stays}: staying up as init for pid"), Duration::from_secs(20))
        .unwrap_or_else(|| panic!("{}", p.log_text()));
    std::thread::sleep(Duration::from_millis(500));
    let tally = load.finish();
    tally.assert_clean(50, &p.log_text());
    assert!(
        procs::alive(pounce) && procs::alive(pid1),
        "the container must not stop while the successor serves"
    );
    assert_eq!(common::get(p.addr, "/").status, 200);
    // `docker stop`: SIGTERM to PID 1, passed on to the serving process,
    // whose clean exit becomes the container's.
    signal(pid1, libc::SIGTERM);
    assert_eq!(p.wait_exit(Duration::from_secs(20)), Some(0), "{}", p.log_text());
    let log = p.log_text();
    assert!(log.contains("Received SIGTERM — forwarded to the successor"), "{log}");
    assert!(log.contains("exited with status 0; exiting with its status"), "{log}");
    // The keeper's drain was long over: the successor must not wait for it
    // (it would, until its own deadline, if the keeper kept the link open).
    assert!(!log.contains("Waiting for the previous process"), "{log}");
}

#[test]
fn as_pid_1_the_old_process_stays_up_as_init_and_exits_with_the_successor() {
    upgrade_in_a_container(&[], "Running as PID 1");
}

#[test]
fn under_tini_the_old_process_stays_up_so_the_container_does_not_stop() {
    assert!(
        std::path::Path::new("/usr/bin/tini").exists(),
        "this test needs tini (apt-get install tini), the init `docker run --init` uses"
    );
    upgrade_in_a_container(&["/usr/bin/tini", "--"], "Running as the container's main process");
}

#[test]
fn a_successor_with_another_worker_count_serves_every_inherited_socket() {
    procs::become_subreaper();
    let dir = tmpdir("workers");
    let link = dir.join("pounce");
    install_link(&link, Path::new(BIN));
    let pid_file = dir.join("pounce.pid");
    // Two workers: two sockets in the reuseport group, each with its own
    // accept queue, and connections hashed across both.
    let mut cmd =
        common::command_for(&link, &["demo", "--port", "0", "--pid-file", pid_file.to_str().unwrap()]);
    cmd.env("POUNCE_WORKERS", "2");
    let mut p = Pounce::spawn(cmd);
    let mut reaper = Reaper::default();
    reaper.track(p.pid());
    let mut serving = p.pid();
    for workers in ["1", "3"] {
        // Keeps argv[0], so that the next upgrade runs this path again.
        install_script(&link, &format!("export POUNCE_WORKERS={workers}\nexec -a \"$0\" {BIN} \"$@\""));
        let before = p.lines().len();
        signal(serving, libc::SIGUSR2);
        let next = procs::pid_file_changes(&pid_file, Some(serving), Duration::from_secs(20))
            .unwrap_or_else(|| panic!("{}", p.log_text()));
        reaper.track(next);
        let line = p.wait_log_after(before, "on 2 inherited socket(s)", Duration::from_secs(5)).unwrap();
        assert!(line.contains(&format!("with {workers} worker(s) on 2 inherited socket(s)")), "{line}");
        if serving == p.pid() {
            assert_eq!(p.wait_exit(Duration::from_secs(10)), Some(0));
        } else {
            assert_eq!(procs::wait_exit(serving, Duration::from_secs(10)), Some(0));
        }
        serving = next;
        // Fresh connections land on both sockets: every one is answered.
        for i in 0..40 {
            let mut c = Client::connect(p.addr);
            c.stream.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            c.send(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
            let r = c
                .read_response(false)
                .unwrap_or_else(|| panic!("connection {i} unanswered with {workers} worker(s)"));
            assert_eq!(r.status, 200);
        }
    }
    signal(serving, libc::SIGTERM);
    assert_eq!(procs::wait_exit(serving, Duration::from_secs(15)), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn health_stays_ok_while_the_old_process_drains_after_handing_over() {
    procs::become_subreaper();
    let mut p = Pounce::start(&["demo", "--health-check-path", "/health"]);
    let mut reaper = Reaper::default();
    reaper.track(p.pid());
    let mut c = Client::connect(p.addr);
    assert_eq!(c.get("/health").status, 200);
    p.signal(libc::SIGUSR2);
    let next = started_successor(&p, 0);
    reaper.track(next);
    p.wait_log("is ready and serving", Duration::from_secs(20)).unwrap_or_else(|| panic!("{}", p.log_text()));
    // Both of the old process's workers have begun their drain.
    for k in 1..=2 {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !p.lines().iter().any(|l| {
            l.contains(&format!("Worker {k} draining")) || l.contains(&format!("Worker {k} shutting down"))
        }) {
            assert!(Instant::now() < deadline, "{}", p.log_text());
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    // A probe on a connection the old process still holds: the service is up
    // (the successor serves the port), so not 503; the connection closes.
    let r = c.get("/health");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().starts_with(r#"{"status":"ok""#), "{}", r.text());
    assert!(r.closes());
    assert_eq!(p.wait_exit(Duration::from_secs(10)), Some(0));
    signal(next, libc::SIGTERM);
    assert_eq!(procs::wait_exit(next, Duration::from_secs(15)), Some(0));
}

#[test]
fn a_pid_file_that_cannot_be_written_is_a_clear_error_before_binding() {
    let out = common::output_within(
        common::command(&["demo", "--port", "0", "--pid-file", "/nonexistent-dir/pounce.pid"]),
        Duration::from_secs(10),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot write the pid file /nonexistent-dir/pounce.pid: its directory does not exist"),
        "{err}"
    );
    assert!(!err.contains("Listening"), "{err}");
}

/// Under systemd's `KillMode=mixed`, the main process's exit gets every
/// other process of the unit SIGKILLed: a successor stopped while its
/// predecessor still drains must outlive it.
#[test]
fn a_successor_stopped_while_its_predecessor_drains_exits_after_it() {
    procs::become_subreaper();
    let mut p = Pounce::start(&["demo"]);
    let mut reaper = Reaper::default();
    reaper.track(p.pid());
    let mut slow = Client::connect(p.addr);
    slow.send(b"GET /sleep/2000 HTTP/1.1\r\nHost: t\r\n\r\n");
    std::thread::sleep(Duration::from_millis(100));
    p.signal(libc::SIGUSR2);
    let next = started_successor(&p, 0);
    reaper.track(next);
    p.wait_log(&format!("Upgrade: took over from pid {}", p.pid()), Duration::from_secs(20))
        .unwrap_or_else(|| panic!("{}", p.log_text()));
    // `systemctl stop`: SIGTERM to the main process, the successor.
    signal(next, libc::SIGTERM);
    p.wait_log(
        &format!("Waiting for the previous process (pid {}) to finish its drain", p.pid()),
        Duration::from_secs(5),
    )
    .unwrap_or_else(|| panic!("{}", p.log_text()));
    // Who exits first: the predecessor must. (The successor is the
    // predecessor's child until then: its exit shows as a zombie.)
    let (mut old_exit, mut new_exit) = (None, None);
    let deadline = Instant::now() + Duration::from_secs(10);
    while (old_exit.is_none() || new_exit.is_none()) && Instant::now() < deadline {
        if old_exit.is_none() {
            old_exit = p.wait_exit(Duration::ZERO).map(|code| (Instant::now(), code));
        }
        if new_exit.is_none() && !procs::alive(next) {
            new_exit = Some(Instant::now());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let r = slow.read_response(false).expect("the predecessor's slow request completes");
    assert_eq!((r.status, r.closes()), (200, true));
    let ((old_at, old_code), new_at) = (old_exit.unwrap(), new_exit.unwrap());
    assert_eq!(old_code, 0, "{}", p.log_text());
    // (The predecessor's end of the link closes a moment before the kernel
    // lets its parent collect it: allow for that moment, not for seconds.)
    assert!(
        new_at + Duration::from_millis(100) >= old_at,
        "the successor exited {:?} before its predecessor",
        old_at - new_at
    );
    assert_eq!(procs::wait_exit(next, Duration::from_secs(5)), Some(0), "{}", p.log_text());
}

/// A successor that is stopped before it was told TAKEOVER (here: its READY
/// never reaches the old process, which gives up at upgrade_timeout) must
/// leave the sockets alone: the old process serves on, on the same sockets.
#[test]
fn a_successor_stopped_before_the_handover_leaves_the_sockets_serving() {
    procs::become_subreaper();
    let dir = tmpdir("lost-ready");
    let (mut p, pid_file) = start_from_link(&dir, &["--upgrade-timeout", "1.5"]);
    let mut reaper = Reaper::default();
    reaper.track(p.pid());
    // The "new binary": execs the real one, but with a link whose other end
    // a holder keeps, silent; the real link is held open too, so the old
    // process hears neither READY nor EOF.
    let wrapper = format!(
        r#"#!/usr/bin/env python3
import os, socket, sys, time
n = int(os.environ["POUNCE_UPGRADE_FD"])
real = os.dup(n)
mine, void = socket.socketpair()
os.dup2(mine.fileno(), n)
if os.fork() == 0:
    time.sleep(30)
    os._exit(0)
os.set_inheritable(real, False)
os.execv("{BIN}", sys.argv)
"#
    );
    let path = dir.join("pounce");
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, wrapper).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    let load = Load::start(p.addr, 4, 2);
    std::thread::sleep(Duration::from_millis(200));
    p.signal(libc::SIGUSR2);
    let next = started_successor(&p, 0);
    reaper.track(next);
    let line =
        p.wait_log("Upgrade failed:", Duration::from_secs(10)).unwrap_or_else(|| panic!("{}", p.log_text()));
    assert!(line.contains("was not ready within 1.5s"), "{line}");
    std::thread::sleep(Duration::from_millis(500));
    let tally = load.finish();
    tally.assert_clean(50, &p.log_text());
    // Still listening, and still the one named in the pid file.
    for _ in 0..20 {
        assert_eq!(common::get(p.addr, "/").status, 200);
    }
    assert_eq!(pid_in(&pid_file), Some(p.pid()));
    assert!(!p.log_text().contains("accept failed"), "{}", p.log_text());
    for pid in procs::children() {
        reaper.track(pid);
    }
    p.sigterm();
    assert_eq!(p.wait_exit(Duration::from_secs(10)), Some(0), "{}", p.log_text());
    let _ = std::fs::remove_dir_all(&dir);
}

/// More workers than sockets: workers share them. In a 503 drain, the first
/// worker to finish must not shut a shared socket down under the others,
/// which still answer new connections 503 (they would be refused instead).
#[test]
fn a_socket_shared_by_workers_is_closed_by_the_last_one() {
    procs::become_subreaper();
    let dir = tmpdir("shared");
    let link = dir.join("pounce");
    install_link(&link, Path::new(BIN));
    let pid_file = dir.join("pounce.pid");
    let mut cmd =
        common::command_for(&link, &["demo", "--port", "0", "--pid-file", pid_file.to_str().unwrap()]);
    cmd.env("POUNCE_WORKERS", "1");
    let mut p = Pounce::spawn(cmd);
    let mut reaper = Reaper::default();
    reaper.track(p.pid());
    // One socket, then a successor with four workers sharing it.
    install_script(&link, &format!("export POUNCE_WORKERS=4\nexec -a \"$0\" {BIN} \"$@\""));
    p.signal(libc::SIGUSR2);
    let next = procs::pid_file_changes(&pid_file, Some(p.pid()), Duration::from_secs(20)).unwrap();
    reaper.track(next);
    assert_eq!(p.wait_exit(Duration::from_secs(10)), Some(0), "{}", p.log_text());
    // Slow requests keep some workers busy; others have nothing to drain.
    let slow: Vec<Client> = (0..2)
        .map(|_| {
            let mut c = Client::connect(p.addr);
            c.send(b"GET /sleep/1500 HTTP/1.1\r\nHost: t\r\n\r\n");
            c
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let before = p.lines().len();
    signal(next, libc::SIGTERM);
    p.wait_log_after(before, "Shutting down 4 worker(s)", Duration::from_secs(5)).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // While any worker drains, a new connection gets the 503, not a refusal.
    for i in 0..10 {
        let mut c = Client::connect(p.addr);
        c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        let r =
            c.read_response(false).unwrap_or_else(|| panic!("connection {i}: no answer\n{}", p.log_text()));
        assert_eq!(r.status, 503, "connection {i}");
    }
    for mut c in slow {
        assert_eq!(c.read_response(false).expect("slow request").status, 200);
    }
    assert_eq!(procs::wait_exit(next, Duration::from_secs(10)), Some(0), "{}", p.log_text());
    assert!(!p.log_text().contains("accept failed"), "{}", p.log_text());
    let _ = std::fs::remove_dir_all(&dir);
}
