//! Socket activation: pounce serves the listening sockets passed to it in
//! `LISTEN_FDS`/`LISTEN_PID` (as systemd passes them) and binds nothing. The
//! socket outlives each process, so a restart drops nothing: a draining
//! pounce stops accepting and leaves queued connections to the next one.
//!
//! The tests hold the listening socket themselves, the way systemd does, and
//! start successive instances on it through `sh -c 'LISTEN_PID=$$ exec …'`
//! (the pid is known only once the process exists; exec keeps it). One test
//! uses the real `systemd-socket-activate`.

mod common;

use common::activation::{activated, held_socket, place_at_3};
use common::load::Load;
use common::{BIN, Client, Pounce};
use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

fn start_on(l: &TcpListener) -> Pounce {
    Pounce::spawn(activated(l.as_raw_fd(), "1", &["demo", "--workers", "2"]))
}

#[test]
fn the_inherited_socket_is_served_and_nothing_is_bound() {
    let (l, addr) = held_socket(1024);
    let mut p = start_on(&l);
    assert_eq!(p.addr, addr, "serves the inherited socket, not --port");
    let line = p.wait_log("Serving 1 listening socket(s)", Duration::from_secs(1)).unwrap();
    assert!(
        line.contains(&format!("inherited from the service manager (socket activation): fd 3 {addr} (web)")),
        "{line}"
    );
    assert!(p.log_text().contains("with 2 worker(s) on 1 inherited socket(s)"), "{}", p.log_text());
    // Both workers accept on the one socket.
    let got: Vec<u16> = (0..20).map(|_| common::get(addr, "/").status).collect();
    assert!(got.iter().all(|&s| s == 200), "{got:?}");
    p.sigterm();
    assert_eq!(p.wait_exit(Duration::from_secs(10)), Some(0));
}

#[test]
fn three_restarts_under_load_on_a_held_socket_fail_no_request() {
    let (l, addr) = held_socket(1024);
    let mut p = start_on(&l);
    let load = Load::start(addr, 8, 4);
    std::thread::sleep(Duration::from_millis(400));
    for _ in 0..3 {
        p.sigterm();
        assert_eq!(p.wait_exit(Duration::from_secs(15)), Some(0), "{}", p.log_text());
        let summary = p.wait_log("Drain finished", Duration::from_secs(1)).unwrap();
        assert!(summary.contains("0 connection(s) answered 503"), "no 503 with a held socket: {summary}");
        // The next instance, as `systemctl restart` starts it.
        p = start_on(&l);
        std::thread::sleep(Duration::from_millis(600));
    }
    let tally = load.finish();
    tally.assert_clean(300, "");
    p.sigterm();
    assert_eq!(p.wait_exit(Duration::from_secs(15)), Some(0));
}

#[test]
fn a_connection_arriving_during_the_drain_waits_for_the_next_instance() {
    let (l, addr) = held_socket(1024);
    let mut first = start_on(&l);
    let mut slow = Client::connect(addr);
    slow.send(b"GET /sleep/1500 HTTP/1.1\r\nHost: t\r\n\r\n");
    std::thread::sleep(Duration::from_millis(200));
    first.sigterm();
    first.wait_log("Shutting down", Duration::from_secs(5)).unwrap();
    std::thread::sleep(Duration::from_millis(100));

    // Accepted by the kernel, queued on the held socket: not answered (no
    // 503) and not reset by the draining process.
    let mut late = Client::connect(addr);
    late.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    late.stream.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let mut b = [0u8; 64];
    match late.stream.read(&mut b) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("the draining process must leave it queued, got {other:?}"),
    }
    let r = slow.read_response(false).unwrap();
    assert_eq!((r.status, r.closes()), (200, true));
    assert_eq!(first.wait_exit(Duration::from_secs(10)), Some(0), "{}", first.log_text());
    assert!(first.log_text().contains("0 connection(s) answered 503"), "{}", first.log_text());

    let mut second = start_on(&l);
    late.stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let r = late.read_response(false).expect("the next instance answers the queued connection");
    assert_eq!((r.status, r.text().as_str()), (200, "Hello, World!"));
    second.sigterm();
    assert_eq!(second.wait_exit(Duration::from_secs(10)), Some(0));
}

#[test]
fn systemd_socket_activate_starts_pounce_on_its_socket() {
    // The real tool binds the port itself: reserve one, then let it listen
    // there (another test may take the port in between: try again then).
    for attempt in 1..=3 {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let listen = format!("127.0.0.1:{port}");
        let mut tool = common::command_for(
            "systemd-socket-activate",
            &["-l", &listen, "--fdname=web", BIN, "demo", "--workers", "2", "--port", "1"],
        );
        tool.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null());
        // The tool execs pounce on the first connection.
        let first = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(s) = std::net::TcpStream::connect(addr) {
                    return Some(Client::from_stream(s).get("/"));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            None
        });
        let p = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Pounce::spawn(tool)));
        let r = first.join().unwrap();
        let mut p = match (p, r) {
            (Ok(p), Some(r)) => {
                assert_eq!((r.status, r.text().as_str()), (200, "Hello, World!"));
                p
            }
            (p, _) if attempt < 3 => {
                drop(p);
                continue;
            }
            (Err(e), _) => std::panic::resume_unwind(e),
            (Ok(p), None) => panic!("systemd-socket-activate never listened:\n{}", p.log_text()),
        };
        assert_eq!(p.addr, addr, "--port 1 is ignored: the socket was passed");
        let line = p.wait_log("Serving 1 listening socket(s)", Duration::from_secs(1)).unwrap();
        assert!(line.contains(&format!("fd 3 {addr} (web)")), "{line}");
        p.sigterm();
        assert_eq!(p.wait_exit(Duration::from_secs(10)), Some(0), "{}", p.log_text());
        return;
    }
}

/// pounce with `what` at descriptor 3 (or nothing) must exit 1 with one
/// line naming the problem.
fn refused(cmd: Command, want: &str) {
    let what = format!("{cmd:?}");
    let out = common::output_within(cmd, Duration::from_secs(10));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{what}: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    assert!(lines[0].contains(want), "{what}: want {want:?} in {err}");
}

#[test]
fn bad_listen_fds_input_exits_1_naming_the_problem() {
    let file = std::fs::File::open("/proc/self/stat").unwrap();
    refused(activated(file.as_raw_fd(), "1", &["demo"]), "LISTEN_FDS=1: fd 3 is not a socket");

    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    refused(
        activated(udp.as_raw_fd(), "1", &["demo"]),
        "fd 3 is a datagram socket, not a stream (TCP) socket",
    );

    // SAFETY: a fresh socket, bound but never listening.
    let idle = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    refused(activated(idle, "1", &["demo"]), "fd 3 is not listening (listen(2) was never called on it)");
    // SAFETY: ours.
    unsafe { libc::close(idle) };

    let unix_dir = std::env::temp_dir().join(format!("pounce-sa-{}", std::process::id()));
    std::fs::create_dir_all(&unix_dir).unwrap();
    let unix = std::os::unix::net::UnixListener::bind(unix_dir.join("s")).unwrap();
    refused(activated(unix.as_raw_fd(), "1", &["demo"]), "fd 3 is a unix-domain socket");
    let _ = std::fs::remove_dir_all(&unix_dir);

    let (l, _) = held_socket(1024);
    let mut two = activated(l.as_raw_fd(), "2", &["demo"]);
    // SAFETY: close(2) between fork and exec: fd 4 must be free whatever the
    // test runner left open.
    unsafe {
        two.pre_exec(|| {
            libc::close(4);
            Ok(())
        });
    }
    refused(two, "LISTEN_FDS=2: fd 4 is not open");
    refused(
        activated(l.as_raw_fd(), "lots", &["demo"]),
        "LISTEN_FDS must be a number of sockets from 1 to 1024, got 'lots'",
    );

    // Sockets meant for another process.
    let mut cmd = common::command(&["demo"]);
    cmd.env("LISTEN_FDS", "1").env("LISTEN_PID", "1");
    place_at_3(&mut cmd, l.as_raw_fd());
    refused(cmd, "LISTEN_PID=1 names another process");
}
