//! Hostile and broken input against the real binary: every limit and framing
//! rule answered with the right status and a close, request smuggling shapes
//! producing exactly one response, slow and silent clients cut off by their
//! deadlines, floods refused and recovered from — and the server still alive.

mod common;

use common::{Client, Pounce, get, raw};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

/// A valid request smuggled behind each hostile one: it must never be answered.
const FOLLOWER: &str = "GET /json HTTP/1.1\r\nHost: t\r\n\r\n";

/// Sends `bytes` plus a follower request; expects exactly one response with
/// `status` and `Connection: close`, then the close.
fn refused(p: &Pounce, bytes: &[u8], status: u16) {
    let mut all = bytes.to_vec();
    all.extend_from_slice(FOLLOWER.as_bytes());
    let out = raw(p.addr, &all);
    let what = String::from_utf8_lossy(bytes);
    assert!(out.starts_with(&format!("HTTP/1.1 {status} ")), "{what:?} → {out:?}");
    assert!(out.contains("\r\nConnection: close\r\n"), "{what:?} → {out:?}");
    assert_eq!(out.matches("HTTP/1.1 ").count(), 1, "exactly one response for {what:?}: {out:?}");
    assert!(!out.contains("Hello, World!"), "smuggled follower answered: {out:?}");
}

fn alive(p: &Pounce) {
    assert_eq!(get(p.addr, "/").status, 200, "server no longer serving; log:\n{}", p.log_text());
}

#[test]
fn limits() {
    let p =
        Pounce::start(&["demo", "--max-headers", "5", "--max-header-size", "2k", "--max-body-size", "16"]);
    // Field count.
    let mut many = b"GET / HTTP/1.1\r\nHost: t\r\n".to_vec();
    for i in 0..5 {
        many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    refused(&p, &many, 431);
    // Exactly the limit is fine.
    let mut ok = b"GET / HTTP/1.1\r\nHost: t\r\n".to_vec();
    for i in 0..4 {
        ok.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    ok.extend_from_slice(b"\r\n");
    assert!(
        raw(p.addr, &[&ok[..], b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"].concat())
            .starts_with("HTTP/1.1 200")
    );
    // Head size, complete and still arriving.
    let big = format!("GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n", "v".repeat(3000));
    refused(&p, big.as_bytes(), 431);
    let mut c = Client::connect(p.addr);
    c.send(format!("GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}", "v".repeat(2100)).as_bytes());
    let r = c.read_response(false).expect("431 before the head is even complete");
    assert_eq!(r.status, 431);
    // URI length.
    let long = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(9000));
    let p2 = Pounce::start(&["demo", "--max-header-size", "64k"]);
    refused(&p2, long.as_bytes(), 414);
    // Body size: decided from Content-Length, before any body byte.
    let mut c = Client::connect(p.addr);
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 17\r\n\r\n");
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 413);
    assert!(r.closes());
    refused(&p, b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999\r\n\r\n", 413);
    // A HEAD is answered without a body, even a refusal (then the close).
    let out = raw(p.addr, b"HEAD /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 17\r\n\r\n");
    assert!(out.starts_with("HTTP/1.1 413 ") && out.contains("\r\nConnection: close\r\n"), "{out}");
    assert!(out.ends_with("\r\n\r\n"), "no body after the head: {out:?}");
    // Enforced while decoding chunks.
    refused(&p, b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n1\r\nx\r\n0\r\n\r\n", 413);
    // Exactly the limit is fine.
    let out = raw(
        p.addr,
        b"POST /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 16\r\n\r\n0123456789abcdef",
    );
    assert!(out.starts_with("HTTP/1.1 200") && out.ends_with("0123456789abcdef"), "{out}");
    alive(&p);
}

#[test]
fn malformed_heads_get_400_and_a_close() {
    let p = Pounce::start(&["demo"]);
    let cases: &[&[u8]] = &[
        b"garbage\r\n\r\n",
        b"GET\r\n\r\n",
        b"G@T / HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET  / HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : t\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: t\r\nX-A : b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: t\r\nX: a\r\n folded\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: t\r\nX: a\0b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: t\r\nX: a\rb\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: t\r\nX: a\nY: b\r\n\r\n",
        b"GET / HTTP/1.1\nHost: t\n\n",
        b"GET / HTTX/1.1\r\nHost: t\r\n\r\n",
        b"CONNECT t:443 HTTP/1.1\r\nHost: t\r\n\r\n",
    ];
    for c in cases {
        refused(&p, c, 400);
    }
    alive(&p);
}

#[test]
fn framing_rules_against_smuggling() {
    let p = Pounce::start(&["demo"]);
    let cases: &[&[u8]] = &[
        // CL and TE together, both orders.
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
        // Differing and malformed Content-Length.
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: +4\r\n\r\nabcd",
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: -4\r\n\r\nabcd",
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 0x4\r\n\r\nabcd",
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4, 4\r\n\r\nabcd",
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4 4\r\n\r\nabcd",
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4a\r\n\r\nabcd",
        // chunked not last, twice, in HTTP/1.0, obfuscated.
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
        // Chunk syntax.
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n",
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n",
    ];
    for c in cases {
        refused(&p, c, 400);
    }
    let mut ext = b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1;".to_vec();
    ext.extend(std::iter::repeat_n(b'e', 5000));
    ext.extend_from_slice(b"\r\nx\r\n0\r\n\r\n");
    refused(&p, &ext, 400);
    // A coding we do not implement, with chunked last: 501.
    refused(&p, b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501);
    // A version we do not speak.
    refused(&p, b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505);
    refused(&p, b"GET / HTTP/1.2\r\nHost: t\r\n\r\n", 505);
    alive(&p);
}

#[test]
fn a_smuggled_request_in_the_body_gets_exactly_one_response() {
    let p = Pounce::start(&["demo"]);
    // Classic CL.TE: a front end using Content-Length would forward all of it;
    // one using chunked would see a second request. We answer once and close.
    let attack = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /json HTTP/1.1\r\nHost: t\r\n\r\n";
    let out = raw(p.addr, attack);
    assert_eq!(out.matches("HTTP/1.1 ").count(), 1, "{out}");
    assert!(out.starts_with("HTTP/1.1 400 "), "{out}");
    assert!(!out.contains("Hello, World!"));
    alive(&p);
}

#[test]
fn slowloris_gets_408_at_header_timeout_while_others_are_served() {
    let p = Pounce::start(&["demo", "--workers", "1", "--header-timeout", "1"]);
    let addr = p.addr;
    let slow = thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let t = Instant::now();
        for b in b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter() {
            if s.write_all(&[*b]).is_err() {
                break;
            }
            thread::sleep(Duration::from_millis(50));
            let mut probe = [0u8; 1];
            s.set_nonblocking(true).unwrap();
            let closed = s.read(&mut probe).is_ok();
            s.set_nonblocking(false).unwrap();
            if closed {
                // The server answered (or closed): stop trickling.
                let mut rest = probe[..1].to_vec();
                let _ = s.read_to_end(&mut rest);
                return (t.elapsed(), String::from_utf8_lossy(&rest).into_owned());
            }
        }
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        (t.elapsed(), out)
    });
    // Meanwhile, on the same worker, a normal client is served promptly.
    thread::sleep(Duration::from_millis(300));
    for _ in 0..5 {
        let t = Instant::now();
        assert_eq!(get(p.addr, "/").status, 200);
        assert!(t.elapsed() < Duration::from_millis(200), "{:?}", t.elapsed());
    }
    let (took, out) = slow.join().unwrap();
    assert!(out.starts_with("HTTP/1.1 408 "), "{out:?}");
    assert_took(took, 900, 2500);
    alive(&p);
}

#[test]
fn a_silent_connection_is_closed_at_header_timeout_without_a_response() {
    let p = Pounce::start(&["demo", "--header-timeout", "0.5"]);
    let mut s = TcpStream::connect(p.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let t = Instant::now();
    let mut buf = Vec::new();
    let n = s.read_to_end(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "silent close, no 408: {:?}", String::from_utf8_lossy(&buf));
    assert_took(t.elapsed(), 400, 2000);
}

#[test]
fn idle_keep_alive_is_closed_silently_at_keep_alive_timeout() {
    let p = Pounce::start(&["demo", "--keep-alive-timeout", "0.5", "--header-timeout", "10"]);
    let mut c = Client::connect(p.addr);
    assert_eq!(c.get("/").status, 200);
    let t = Instant::now();
    assert!(c.is_closed_within(Duration::from_secs(3)));
    assert_took(t.elapsed(), 400, 2000);
}

/// Each request moves the keep-alive deadline later. The timer behind it is
/// only re-armed when it comes due (io/mod.rs), so an early wake must not
/// close the connection at an earlier request's deadline, nor leave it open.
#[test]
fn keep_alive_timeout_counts_from_the_last_request() {
    let p = Pounce::start(&["demo", "--keep-alive-timeout", "0.6", "--header-timeout", "10"]);
    let mut c = Client::connect(p.addr);
    for _ in 0..3 {
        assert_eq!(c.get("/").status, 200);
        std::thread::sleep(Duration::from_millis(400));
    }
    // 1.2 s after the first request, 0.4 s after the last: past the first
    // two deadlines, not the third.
    assert_eq!(c.get("/").status, 200, "closed at an earlier request's deadline");
    let t = Instant::now();
    assert!(c.is_closed_within(Duration::from_secs(3)), "open past keep_alive_timeout");
    assert_took(t.elapsed(), 500, 2000);
}

/// request_timeout is the handler's (and body's) time: a head that takes
/// longer than request_timeout to arrive, within header_timeout, does not
/// use it up (the request starts when its head is complete).
#[test]
fn request_timeout_counts_from_the_complete_head_not_its_first_byte() {
    let p = Pounce::start(&["demo", "--request-timeout", "0.5", "--header-timeout", "10"]);
    let mut c = Client::connect(p.addr);
    c.send(b"GET /sleep/200 HTTP/1.1\r\n");
    std::thread::sleep(Duration::from_millis(800));
    c.send(b"Host: t\r\n\r\n");
    let r = c.read_response(false).expect("a response");
    assert_eq!(r.status, 200, "the slow head's time was counted against request_timeout: {}", r.head);
    // And the handler's own time still is.
    assert_eq!(c.get("/sleep/900").status, 503);
}

#[test]
fn a_client_that_never_reads_is_cut_off_by_the_write_deadline() {
    let p = Pounce::start(&[
        "demo",
        "--workers",
        "1",
        "--request-timeout",
        "1",
        "--max-body-size",
        "64M",
        "--health-check-path",
        "/health",
    ]);
    let baseline = common::settled_sockets(p.pid(), None);
    let mut s = TcpStream::connect(p.addr).unwrap();
    // Ask for a 32 MiB echo and never read it: far more than socket buffers hold.
    let body = vec![b'x'; 32 << 20];
    s.write_all(
        format!("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes(),
    )
    .unwrap();
    s.write_all(&body).unwrap();
    let t = Instant::now();
    // The server gives up on it: its connection count drops back to just the probe's.
    let mut dropped = false;
    while t.elapsed() < Duration::from_secs(6) {
        let h = get(p.addr, "/health").text();
        if h.contains("\"active_connections\":1,") {
            dropped = true;
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    assert!(dropped, "stalled writer still held after {:?}", t.elapsed());
    assert!(t.elapsed() >= Duration::from_millis(700), "{:?}", t.elapsed());
    // And the socket itself is closed, not just forgotten: the send stuck in
    // the ring (the client still reads nothing) is cancelled and the
    // descriptor closed.
    let now = common::settled_sockets(p.pid(), Some(baseline));
    assert_eq!(now, baseline, "the stalled connection's socket is still open in the server");
    // Reading now drains what was queued, then ends.
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut got = 0usize;
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("after {got} bytes the connection is still open: {e}"),
        }
    }
    assert!(got < (32 << 20), "the whole response arrived ({got} bytes): nothing was cut");
    alive(&p);
}

#[test]
fn max_connections_flood_gets_503_and_the_service_recovers() {
    let p = Pounce::start(&["demo", "--workers", "2", "--max-connections", "8"]);
    let mut held: Vec<Client> = (0..8).map(|_| Client::connect(p.addr)).collect();
    for c in held.iter_mut() {
        assert_eq!(c.get("/").status, 200);
    }
    // The flood: every extra connection is refused with 503 + Retry-After: 5.
    for _ in 0..20 {
        let out = raw(p.addr, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        assert!(out.starts_with("HTTP/1.1 503 "), "{out}");
        assert!(out.contains("\r\nRetry-After: 5\r\n") && out.contains("\r\nConnection: close\r\n"), "{out}");
    }
    // The held connections still work.
    assert_eq!(held[3].get("/json").status, 200);
    // Flood over: capacity comes back.
    held.truncate(2);
    thread::sleep(Duration::from_millis(200));
    for _ in 0..5 {
        alive(&p);
    }
}

#[test]
fn thousands_of_idle_and_trickling_connections_do_not_delay_a_normal_client() {
    let p =
        Pounce::start(&["demo", "--workers", "2", "--header-timeout", "30", "--keep-alive-timeout", "30"]);
    raise_nofile();
    let mut idle = Vec::new();
    for i in 0..2000 {
        match TcpStream::connect(p.addr) {
            Ok(s) => {
                if i % 4 == 0 {
                    // Some have started a request and stopped mid-head.
                    let _ = (&s).write_all(b"GET / HTTP/1.1\r\nHo");
                }
                idle.push(s);
            }
            Err(e) => panic!("connect {i}: {e}"),
        }
    }
    let mut trickle: Vec<TcpStream> = (0..200).map(|_| TcpStream::connect(p.addr).unwrap()).collect();
    let mut worst = Duration::ZERO;
    for round in 0..20 {
        for s in trickle.iter_mut() {
            let head = b"GET / HTTP/1.1\r\nX: ";
            let _ = s.write_all(&[head[round % head.len()]]);
        }
        let t = Instant::now();
        let r = get(p.addr, "/json");
        worst = worst.max(t.elapsed());
        assert_eq!(r.status, 200);
    }
    assert!(worst < Duration::from_millis(500), "worst latency {worst:?} with 2200 slow connections open");
    drop(idle);
    drop(trickle);
    alive(&p);
}

fn raise_nofile() {
    // SAFETY: getrlimit/setrlimit on a stack struct, for this test process.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        r.rlim_cur = r.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &r);
    }
}

#[test]
fn receive_buffer_starvation_recovers() {
    // Each worker lends 512 receive buffers to the kernel. 600 connections
    // whose handlers are busy while a pipelined request waits behind them
    // hold more than that: some receives stop for lack of buffers and must
    // resume once buffers come back. Every request is still answered.
    let p = Pounce::start(&["demo", "--workers", "1", "--log-level", "debug"]);
    raise_nofile();
    let mut clients: Vec<Client> = (0..600).map(|_| Client::connect(p.addr)).collect();
    for c in clients.iter_mut() {
        c.send(b"GET /sleep/300 HTTP/1.1\r\nHost: t\r\n\r\n");
    }
    // Once the slow requests are in, their followers arrive while the
    // handlers sleep.
    thread::sleep(Duration::from_millis(100));
    for c in clients.iter_mut() {
        c.send(b"GET /json HTTP/1.1\r\nHost: t\r\n\r\n");
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let a = c.read_response(false).unwrap_or_else(|| panic!("slow response {i}"));
        let b = c.read_response(false).unwrap_or_else(|| panic!("pipelined response {i}"));
        assert_eq!((a.status, b.status), (200, 200), "connection {i}");
        assert_eq!(b.text(), r#"{"message":"Hello, World!"}"#);
    }
    assert!(p.line_index("receive buffers exhausted").is_some(), "the test did not starve the buffer ring");
    alive(&p);
}

/// `took` is at least `min_ms` and under `max_ms` milliseconds.
fn assert_took(took: Duration, min_ms: u64, max_ms: u64) {
    assert!(took >= Duration::from_millis(min_ms) && took < Duration::from_millis(max_ms), "{took:?}");
}
