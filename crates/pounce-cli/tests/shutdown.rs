//! Graceful shutdown, step by step, against the real binary with real
//! signals: what each kind of connection gets, the log lines in order,
//! timings (with generous margins) and exit codes.

mod common;

use common::{Client, Pounce, get};
use std::io::Read;
use std::os::unix::net::UnixDatagram;
use std::thread;
use std::time::{Duration, Instant};

const EXIT: Duration = Duration::from_secs(10);

/// Sends `req` on a fresh connection from a thread; returns the response.
fn spawn_request(addr: std::net::SocketAddr, req: &'static str) -> thread::JoinHandle<Option<common::Resp>> {
    thread::spawn(move || {
        let mut c = Client::connect(addr);
        c.send(req.as_bytes());
        c.read_response(false)
    })
}

/// Asserts the lines containing `needles` appear in this order.
fn assert_order(p: &Pounce, needles: &[&str]) {
    let lines = p.lines();
    let mut at = 0;
    for n in needles {
        match lines.iter().skip(at).position(|l| l.contains(n)) {
            Some(i) => at += i + 1,
            None => panic!("{n:?} missing or out of order in:\n{}", lines.join("\n")),
        }
    }
}

#[test]
fn in_flight_request_completes_and_the_log_tells_the_story() {
    let mut p = Pounce::start(&["demo", "--workers", "2"]);
    let slow = spawn_request(p.addr, "GET /sleep/1000 HTTP/1.1\r\nHost: t\r\n\r\n");
    thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    p.sigterm();
    let r = slow.join().unwrap().expect("the in-flight request gets its response");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "Slept 1000 ms\n");
    assert!(r.closes(), "the last response while draining carries Connection: close");
    assert_eq!(p.wait_exit(EXIT), Some(0), "{}", p.log_text());
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert_order(
        &p,
        &[
            "Received SIGTERM — initiating shutdown",
            "Shutting down 2 worker(s)...",
            "All workers stopped",
            "Drain finished",
        ],
    );
    // One worker held the request, the other had nothing.
    let draining = p.line_index("draining 1 active connection(s)...").expect("draining line");
    let idle = p.line_index("shutting down (no active connections)").expect("idle worker line");
    let shutting = p.line_index("Shutting down 2 worker(s)...").unwrap();
    assert!(draining > shutting && idle > shutting);
    let busy = p.lines()[draining].split_whitespace().nth(3).unwrap().to_string(); // "[date time] Worker K ..."
    let stopped = p.line_index(&format!("Worker {busy} stopped")).expect("busy worker stopped");
    assert!(stopped > draining);
    let summary = p.wait_log("Drain finished", Duration::ZERO).unwrap();
    assert!(summary.contains("1 request(s) completed during the drain"), "{summary}");
    assert!(summary.contains("0 connection(s) force-closed"), "{summary}");
    assert!(summary.ends_with("exit code 0"), "{summary}");
    // Timestamps have the seed's shape.
    let first = &p.lines()[0];
    assert!(
        first.starts_with('[') && first.as_bytes()[20] == b']' && first.as_bytes()[11] == b' ',
        "{first}"
    );
}

#[test]
fn new_connections_get_503_after_their_head_while_draining() {
    let mut p = Pounce::start(&["demo", "--workers", "1"]);
    let slow = spawn_request(p.addr, "GET /sleep/1500 HTTP/1.1\r\nHost: t\r\n\r\n");
    thread::sleep(Duration::from_millis(200));
    p.sigterm();
    p.wait_log("draining 1 active connection(s)", Duration::from_secs(2)).expect("draining");
    let mut c = Client::connect(p.addr);
    // Head sent in two parts: the 503 must wait for the whole head.
    c.send(b"GET / HTTP/1.1\r\nHo");
    thread::sleep(Duration::from_millis(100));
    c.send(b"st: t\r\n\r\n");
    let r = c.read_response(false).expect("a 503, not a reset");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(r.closes());
    assert_eq!(r.text(), "Service Unavailable\n");
    assert!(c.is_closed_within(Duration::from_secs(2)));
    assert_eq!(slow.join().unwrap().unwrap().status, 200);
    assert_eq!(p.wait_exit(EXIT), Some(0));
    let summary = p.wait_log("Drain finished", Duration::ZERO).unwrap();
    assert!(summary.contains("1 connection(s) answered 503"), "{summary}");
}

#[test]
fn drain_new_connections_refuse_refuses_new_connects_and_answers_the_queue() {
    let mut p = Pounce::start(&["demo", "--workers", "1", "--drain-new-connections", "refuse"]);
    // Keeps the drain going while the test looks.
    let slow = spawn_request(p.addr, "GET /sleep/2000 HTTP/1.1\r\nHost: t\r\n\r\n");
    thread::sleep(Duration::from_millis(200));
    // Connections that reach the kernel before the signal while nothing can
    // accept them: the process is stopped.
    p.signal(libc::SIGSTOP);
    let mut queued: Vec<Client> = (0..3)
        .map(|_| {
            let mut c = Client::connect(p.addr);
            c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
            c
        })
        .collect();
    p.sigterm();
    p.signal(libc::SIGCONT);
    p.wait_log("Worker 1 draining", Duration::from_secs(5)).unwrap_or_else(|| panic!("{}", p.log_text()));
    // From the drain on, a connect is refused: a balancer retries it
    // elsewhere. (One that races the closing of the listener is accepted and
    // answered, or has its SYN dropped and is refused on the retransmit a
    // second later; never reset.)
    let deadline = Instant::now() + Duration::from_secs(2);
    let refused = loop {
        match std::net::TcpStream::connect_timeout(&p.addr, Duration::from_secs(3)) {
            Err(e) => break e,
            Ok(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            Ok(_) => panic!("still accepting connections during the drain"),
        }
    };
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused, "{refused}");
    // The queued ones got an answer, not a reset: the 503 if the drain found
    // them in the kernel's queue, a 200 if the worker took them first (on
    // resuming, the worker's pending accepts usually run before the signal
    // is handled).
    let mut answered_503 = 0;
    for c in &mut queued {
        let r = c.read_response(false).expect("answered, not reset");
        match r.status {
            503 => {
                answered_503 += 1;
                assert_eq!(r.header("retry-after"), Some("1"));
                assert!(r.closes());
            }
            200 => {}
            s => panic!("unexpected {s}"),
        }
    }
    let r = slow.join().unwrap().expect("the in-flight request completes");
    assert_eq!((r.status, r.closes()), (200, true));
    assert_eq!(p.wait_exit(EXIT), Some(0));
    // A probe that connected before the listener closed sent nothing, so it
    // was closed without a 503: the summary counts the 503s written.
    let summary = p.wait_log("Drain finished", Duration::ZERO).unwrap();
    assert!(summary.contains(&format!("{answered_503} connection(s) answered 503")), "{summary}");
}

#[test]
fn drain_new_connections_refuse_resets_nobody_under_a_connect_storm() {
    let mut p = Pounce::start(&["demo", "--drain-new-connections", "refuse"]);
    let addr = p.addr;
    // Clients opening a connection per request, before, during and after the
    // listeners close: each gets a complete answer or a refused connect.
    let clients: Vec<_> = (0..8)
        .map(|_| {
            thread::spawn(move || {
                let (mut answered, mut got_503, mut broken) = (0u32, 0u32, Vec::new());
                let deadline = Instant::now() + Duration::from_secs(8);
                while Instant::now() < deadline {
                    let s = match std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3)) {
                        Ok(s) => s,
                        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                            return (answered, got_503, broken);
                        }
                        Err(e) => {
                            broken.push(format!("connect: {e}"));
                            continue;
                        }
                    };
                    let mut c = Client::from_stream(s);
                    c.send(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
                    match c.read_response(false) {
                        Some(r) if r.status == 503 => {
                            answered += 1;
                            got_503 += 1;
                        }
                        Some(r) if r.status == 200 => answered += 1,
                        Some(r) => broken.push(r.status_line),
                        None => broken.push("reset or EOF before a response".into()),
                    }
                }
                broken.push("never refused".into());
                (answered, got_503, broken)
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(300));
    p.sigterm();
    let (mut answered, mut answered_503) = (0, 0);
    for c in clients {
        let (n, n503, broken) = c.join().unwrap();
        assert!(broken.is_empty(), "{broken:?}\n{}", p.log_text());
        answered += n;
        answered_503 += n503;
    }
    println!("{answered} answered, {answered_503} of them 503");
    assert!(answered > 50, "{answered}");
    assert_eq!(p.wait_exit(EXIT), Some(0));
}

#[test]
fn health_goes_from_200_to_503_and_shutdown_delay_keeps_serving() {
    let mut p = Pounce::start(&["demo", "--health-check-path", "/health", "--shutdown-delay", "1.5"]);
    let r = get(p.addr, "/health");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let body = r.text();
    assert!(
        body.starts_with(r#"{"status":"ok","worker":"#) && body.contains(r#""active_connections":1"#),
        "{body}"
    );
    assert!(body.contains(r#""uptime_seconds":"#), "{body}");
    // HEAD works; other methods are refused.
    let mut c = Client::connect(p.addr);
    c.send(b"HEAD /health HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.read_response(true).unwrap().status, 200);
    c.send(b"POST /health HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));

    let t = Instant::now();
    p.sigterm();
    p.wait_log("Received SIGTERM", Duration::from_secs(2)).unwrap();
    let r = get(p.addr, "/health");
    assert_eq!(r.status, 503, "health answers 503 from the signal on");
    assert!(r.text().starts_with(r#"{"status":"draining","#), "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(r.closes());
    // Lame duck: the app itself still serves new connections normally.
    let r = get(p.addr, "/");
    assert_eq!((r.status, r.closes()), (200, false));
    assert!(t.elapsed() < Duration::from_millis(1400), "still inside the delay");
    // (Logged by the coordinator right after "Received SIGTERM"; the log
    // reader may not have it yet, hence a short wait; the order is checked
    // at the end.)
    assert!(p.wait_log("Waiting 1.5s (shutdown_delay) before draining", Duration::from_secs(1)).is_some());
    let drain = p.wait_log("Shutting down", Duration::from_secs(5)).unwrap();
    assert!(t.elapsed() >= Duration::from_millis(1400), "drain began after the delay: {:?}", t.elapsed());
    assert!(drain.contains("worker(s)..."));
    assert_eq!(p.wait_exit(EXIT), Some(0));
    assert_order(&p, &["Received SIGTERM", "Waiting 1.5s", "Shutting down", "All workers stopped"]);
}

#[test]
fn idle_keep_alive_connection_closes_after_the_one_second_grace() {
    let mut p = Pounce::start(&["demo", "--workers", "1"]);
    let mut idle = Client::connect(p.addr);
    assert_eq!(idle.get("/").status, 200);
    let t = Instant::now();
    p.sigterm();
    assert!(idle.is_closed_within(Duration::from_secs(3)), "idle connection not closed");
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_millis(1800),
        "closed after {took:?}"
    );
    assert_eq!(p.wait_exit(EXIT), Some(0));
    assert!(p.line_index("Worker 1 draining 1 active connection(s)...").is_some(), "{}", p.log_text());
}

#[test]
fn a_request_arriving_on_an_idle_connection_during_the_grace_is_served_with_close() {
    let mut p = Pounce::start(&["demo", "--workers", "1"]);
    let mut c = Client::connect(p.addr);
    assert_eq!(c.get("/").status, 200);
    p.sigterm();
    p.wait_log("draining 1 active connection(s)", Duration::from_secs(2)).unwrap();
    thread::sleep(Duration::from_millis(100));
    let r = c.get("/json");
    assert_eq!(r.status, 200);
    assert!(r.closes(), "served with Connection: close");
    assert!(c.is_closed_within(Duration::from_secs(2)));
    assert_eq!(p.wait_exit(EXIT), Some(0));
}

#[test]
fn the_grace_never_exceeds_keep_alive_timeout() {
    let mut p = Pounce::start(&["demo", "--workers", "1", "--keep-alive-timeout", "0.3"]);
    let mut c = Client::connect(p.addr);
    assert_eq!(c.get("/").status, 200);
    let t = Instant::now();
    p.sigterm();
    assert!(c.is_closed_within(Duration::from_secs(2)));
    assert!(t.elapsed() < Duration::from_millis(700), "{:?}", t.elapsed());
    assert_eq!(p.wait_exit(EXIT), Some(0));
}

#[test]
fn pipelined_requests_already_received_complete_and_the_last_closes() {
    let mut p = Pounce::start(&["demo", "--workers", "1"]);
    let mut c = Client::connect(p.addr);
    c.send(b"GET /sleep/600 HTTP/1.1\r\nHost: t\r\n\r\nGET /json HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n");
    thread::sleep(Duration::from_millis(150));
    p.sigterm();
    let a = c.read_response(false).unwrap();
    let b = c.read_response(false).unwrap();
    let z = c.read_response(false).unwrap();
    assert_eq!((a.status, a.closes()), (200, false));
    assert_eq!((b.status, b.closes()), (200, false));
    assert_eq!((z.status, z.text().as_str(), z.closes()), (200, "Hello, World!", true));
    assert!(c.is_closed_within(Duration::from_secs(2)));
    assert_eq!(p.wait_exit(EXIT), Some(0));
}

#[test]
fn a_streamed_response_in_progress_completes_then_the_connection_closes() {
    let mut p = Pounce::start(&["demo", "--workers", "1"]);
    let mut c = Client::connect(p.addr);
    c.send(b"GET /stream/8 HTTP/1.1\r\nHost: t\r\n\r\n");
    thread::sleep(Duration::from_millis(150));
    let t = Instant::now();
    p.sigterm();
    let r = c.read_response(false).expect("complete stream");
    let want: String = (0..8).map(|i| format!("chunk {i}\n")).collect();
    assert_eq!(r.text(), want);
    // Its head went out before the drain began, so it could not carry
    // `Connection: close`; the server closes right after the last chunk.
    assert!(!r.closes());
    assert!(c.is_closed_within(Duration::from_secs(2)));
    assert!(t.elapsed() < Duration::from_millis(1000), "closed at the end of the stream: {:?}", t.elapsed());
    assert_eq!(p.wait_exit(EXIT), Some(0));
}

#[test]
fn stragglers_are_force_closed_at_shutdown_timeout_and_exit_is_3() {
    let mut p = Pounce::start(&["demo", "--workers", "2", "--shutdown-timeout", "1"]);
    let mut c = Client::connect(p.addr);
    c.send(b"GET /sleep/20000 HTTP/1.1\r\nHost: t\r\n\r\n");
    thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    p.sigterm();
    // The client sees the connection end (FIN or RST) right at the deadline.
    c.stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 64];
    let n = c.stream.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "no response for a cancelled request, just the close");
    let closed_after = t.elapsed();
    assert!(
        closed_after >= Duration::from_millis(900) && closed_after < Duration::from_millis(2500),
        "{closed_after:?}"
    );
    assert_eq!(p.wait_exit(EXIT), Some(3), "{}", p.log_text());
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let force = p.wait_log("did not stop within shutdown_timeout", Duration::ZERO).unwrap();
    assert!(force.contains("(1.0s) — force terminating"), "{force}");
    assert!(force.contains("warning: Worker "), "{force}");
    assert!(p.line_index("All workers stopped").is_none());
    let summary = p.wait_log("Drain finished", Duration::ZERO).unwrap();
    assert!(
        summary.contains("1 connection(s) force-closed") && summary.ends_with("exit code 3"),
        "{summary}"
    );
}

#[test]
fn a_second_signal_exits_3_at_once() {
    let mut p = Pounce::start(&["demo", "--shutdown-timeout", "30"]);
    let _slow = spawn_request(p.addr, "GET /sleep/20000 HTTP/1.1\r\nHost: t\r\n\r\n");
    thread::sleep(Duration::from_millis(200));
    p.sigterm();
    p.wait_log("draining", Duration::from_secs(2)).unwrap();
    let t = Instant::now();
    p.signal(libc::SIGINT);
    assert_eq!(p.wait_exit(EXIT), Some(3));
    assert!(t.elapsed() < Duration::from_millis(500), "{:?}", t.elapsed());
    assert!(p.line_index("Received SIGINT again — exiting immediately").is_some(), "{}", p.log_text());
}

#[test]
fn sigint_behaves_like_sigterm() {
    let mut p = Pounce::start(&["demo"]);
    let slow = spawn_request(p.addr, "GET /sleep/500 HTTP/1.1\r\nHost: t\r\n\r\n");
    thread::sleep(Duration::from_millis(150));
    p.signal(libc::SIGINT);
    assert_eq!(slow.join().unwrap().unwrap().status, 200);
    assert_eq!(p.wait_exit(EXIT), Some(0));
    assert_order(&p, &["Received SIGINT — initiating shutdown", "Shutting down", "All workers stopped"]);
}

#[test]
fn no_connections_means_a_fast_clean_exit() {
    let mut p = Pounce::start(&["demo", "--workers", "2"]);
    let t = Instant::now();
    p.sigterm();
    assert_eq!(p.wait_exit(EXIT), Some(0));
    assert!(t.elapsed() < Duration::from_millis(800), "{:?}", t.elapsed());
    assert!(p.line_index("Worker 1 shutting down (no active connections)").is_some());
    assert!(p.line_index("Worker 2 shutting down (no active connections)").is_some());
}

#[test]
fn request_timeout_cancels_the_handler_with_503() {
    let p = Pounce::start(&["demo", "--request-timeout", "0.5"]);
    let t = Instant::now();
    let r = get(p.addr, "/sleep/3000");
    assert_eq!(r.status, 503);
    assert!(r.closes());
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(450) && took < Duration::from_millis(2000), "{took:?}");
    assert!(p.wait_log("exceeded request_timeout (0.5s)", Duration::from_secs(2)).is_some());
    // A stream that outlives request_timeout is cut: its head was already sent.
    let mut c = Client::connect(p.addr);
    c.send(b"GET /stream/20 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(c.read_response(false).is_none(), "stream cut before its last chunk");
}

#[test]
fn a_stalled_request_body_gets_408() {
    let p = Pounce::start(&["demo", "--request-timeout", "0.5"]);
    let mut c = Client::connect(p.addr);
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc");
    let t = Instant::now();
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 408);
    assert!(r.closes());
    assert!(t.elapsed() >= Duration::from_millis(400), "{:?}", t.elapsed());
}

fn recv_all(sock: &UnixDatagram, until: &str, timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            let done = msg.contains(until);
            got.push(msg);
            if done {
                break;
            }
        }
    }
    got
}

fn check_notify(notify_socket: &str, sock: &UnixDatagram) {
    let mut p = Pounce::start_with(&["demo", "--workers", "1"], &[("NOTIFY_SOCKET", notify_socket)]);
    let ready = recv_all(sock, "READY=1", Duration::from_secs(3));
    assert!(ready.iter().any(|m| m.contains("READY=1") && m.contains("STATUS=Serving")), "{ready:?}");
    let mut c = Client::connect(p.addr);
    assert_eq!(c.get("/").status, 200);
    p.sigterm();
    let msgs = recv_all(sock, "STATUS=Draining", Duration::from_secs(3));
    let stopping = msgs.iter().position(|m| m == "STOPPING=1").expect("STOPPING=1");
    let draining =
        msgs.iter().position(|m| m.starts_with("STATUS=Draining 1 connection(s)")).expect("STATUS line");
    assert!(stopping < draining, "{msgs:?}");
    assert_eq!(p.wait_exit(EXIT), Some(0));
}

#[test]
fn sd_notify_ready_stopping_and_status() {
    let dir = std::env::temp_dir().join(format!("pounce-notify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("notify.sock");
    let _ = std::fs::remove_file(&path);
    let sock = UnixDatagram::bind(&path).unwrap();
    check_notify(path.to_str().unwrap(), &sock);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn sd_notify_abstract_namespace() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("pounce-test-notify-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let sock = UnixDatagram::bind_addr(&addr).unwrap();
    check_notify(&format!("@{name}"), &sock);
}

#[test]
fn without_notify_socket_it_still_works() {
    // NOTIFY_SOCKET scrubbed by the harness: start and stop cleanly.
    let mut p = Pounce::start(&["demo"]);
    p.sigterm();
    assert_eq!(p.wait_exit(EXIT), Some(0));
    assert!(p.line_index("NOTIFY_SOCKET").is_none());
}

#[test]
fn a_health_probe_on_a_new_connection_while_draining_gets_the_health_json() {
    let mut p = Pounce::start(&["demo", "--workers", "1", "--health-check-path", "/health"]);
    let slow = spawn_request(p.addr, "GET /sleep/1500 HTTP/1.1\r\nHost: t\r\n\r\n");
    thread::sleep(Duration::from_millis(200));
    p.sigterm();
    p.wait_log("draining 1 active connection(s)", Duration::from_secs(2)).expect("draining");
    let r = get(p.addr, "/health?probe=1");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.text().starts_with(r#"{"status":"draining","worker":1,"#), "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("1"));
    // Anything else on a new connection gets the plain 503.
    let r = get(p.addr, "/");
    assert_eq!((r.status, r.text().as_str()), (503, "Service Unavailable\n"));
    // HEAD: the same head, and nothing after it before the close.
    let out = common::raw(p.addr, b"HEAD /health HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(
        out.starts_with("HTTP/1.1 503 ") && out.contains("\r\nContent-Type: application/json\r\n"),
        "{out}"
    );
    assert!(out.ends_with("\r\n\r\n"), "no body after a HEAD response: {out:?}");
    assert_eq!(get(p.addr, "/healthz").text(), "Service Unavailable\n", "only the exact path");
    let mut c = Client::connect(p.addr);
    c.send(b"POST /health HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(c.read_response(false).unwrap().text(), "Service Unavailable\n");
    assert_eq!(slow.join().unwrap().unwrap().status, 200);
    assert_eq!(p.wait_exit(EXIT), Some(0));
}
