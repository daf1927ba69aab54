//! The HTTP/1.1 core against the real binary: demo routes, keep-alive,
//! pipelining, HEAD, 100-continue, HTTP/1.0, chunked bodies, streaming,
//! panics, the port-in-use check and the library example.

mod common;

use common::{Client, Pounce, get, raw};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

#[test]
fn demo_routes() {
    let p = Pounce::start(&["demo"]);
    let r = get(p.addr, "/");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "Hello, World!");
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.header("content-length"), Some("13"));
    assert_eq!(r.header("server"), Some("pounce"));
    let date = r.header("date").expect("Date header");
    assert!(date.ends_with(" GMT") && date.len() == 29, "{date}");

    let r = get(p.addr, "/json");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.text(), r#"{"message":"Hello, World!"}"#);

    let t = Instant::now();
    let r = get(p.addr, "/sleep/300");
    assert_eq!(r.status, 200);
    assert!(t.elapsed() >= Duration::from_millis(300), "{:?}", t.elapsed());
    assert_eq!(r.text(), "Slept 300 ms\n");

    let mut c = Client::connect(p.addr);
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: text/x-test\r\nContent-Length: 11\r\n\r\nhello there");
    let r = c.read_response(false).unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "hello there"));
    assert_eq!(r.header("content-type"), Some("text/x-test"));

    let r = get(p.addr, "/nope");
    assert_eq!(r.status, 404);
    let mut c = Client::connect(p.addr);
    c.send(b"DELETE / HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    assert_eq!(get(p.addr, "/sleep/abc").status, 400);
    assert_eq!(get(p.addr, "/stream/99999999").status, 400);
}

#[test]
fn streamed_response_is_chunked_and_paced() {
    let p = Pounce::start(&["demo"]);
    let mut c = Client::connect(p.addr);
    let t = Instant::now();
    c.send(b"GET /stream/4 HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.read_response(false).unwrap();
    let took = t.elapsed();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.header("content-length"), None);
    assert_eq!(r.text(), "chunk 0\nchunk 1\nchunk 2\nchunk 3\n");
    assert!(took >= Duration::from_millis(300), "3 gaps of 100 ms, took {took:?}");
    // The connection is still usable afterwards.
    assert_eq!(c.get("/").status, 200);

    // An HTTP/1.0 client cannot take chunked: the body ends at close.
    let out = raw(p.addr, b"GET /stream/2 HTTP/1.0\r\n\r\n");
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(!out.contains("Transfer-Encoding"), "{out}");
    assert!(out.contains("Connection: close"), "{out}");
    assert!(out.ends_with("\r\n\r\nchunk 0\nchunk 1\n"), "{out}");
}

#[test]
fn fifty_requests_on_one_keep_alive_connection() {
    let p = Pounce::start(&["demo"]);
    let mut c = Client::connect(p.addr);
    for i in 0..50 {
        let path = if i % 2 == 0 { "/" } else { "/json" };
        let r = c.get(path);
        assert_eq!(r.status, 200, "request {i}");
        assert!(!r.closes(), "request {i} closed the connection");
    }
}

#[test]
fn ten_pipelined_requests_in_one_write_are_answered_in_order() {
    let p = Pounce::start(&["demo"]);
    let mut c = Client::connect(p.addr);
    let mut batch = Vec::new();
    for i in 0..10 {
        let req = match i % 3 {
            0 => "GET / HTTP/1.1\r\nHost: t\r\n\r\n".to_string(),
            1 => "GET /json HTTP/1.1\r\nHost: t\r\n\r\n".to_string(),
            _ => format!("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n\r\necho-{i}"),
        };
        batch.extend_from_slice(req.as_bytes());
    }
    c.send(&batch);
    for i in 0..10 {
        let r = c.read_response(false).unwrap_or_else(|| panic!("response {i} missing"));
        assert_eq!(r.status, 200);
        let want = match i % 3 {
            0 => "Hello, World!".to_string(),
            1 => r#"{"message":"Hello, World!"}"#.to_string(),
            _ => format!("echo-{i}"),
        };
        assert_eq!(r.text(), want, "response {i} out of order");
    }
}

#[test]
fn head_has_headers_and_length_but_no_body() {
    let p = Pounce::start(&["demo"]);
    let mut c = Client::connect(p.addr);
    c.send(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.read_response(true).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("13"));
    // If a body had been sent, it would be read as the next response's start.
    let r = c.get("/json");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), r#"{"message":"Hello, World!"}"#);
    // HEAD of a streamed route: chunked head, no chunks.
    c.send(b"HEAD /stream/3 HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.read_response(true).unwrap();
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(c.get("/").text(), "Hello, World!");
}

#[test]
fn expect_100_continue() {
    let p = Pounce::start(&["demo"]);
    let mut s = TcpStream::connect(p.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"HTTP/1.1 100 Continue\r\n\r\n", "interim response before the body is sent");
    s.write_all(b"hello").unwrap();
    let mut c = Client::from_stream(s);
    let r = c.read_response(false).unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "hello"));

    // Too large: refused with 413 without asking for the body.
    let p = Pounce::start(&["demo", "--max-body-size", "4"]);
    let mut c = Client::connect(p.addr);
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 413);
    assert!(r.closes());
}

#[test]
fn http10_closes_unless_keep_alive_is_asked() {
    let p = Pounce::start(&["demo"]);
    let out = raw(p.addr, b"GET / HTTP/1.0\r\n\r\n");
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(out.contains("Connection: close\r\n"), "{out}");
    assert!(out.ends_with("Hello, World!"), "server closed after the body: {out}");

    let mut c = Client::connect(p.addr);
    c.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let r = c.read_response(false).unwrap();
    assert_eq!(r.header("connection"), Some("keep-alive"));
    c.send(b"GET /json HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(c.read_response(false).unwrap().status, 200);
}

#[test]
fn connection_close_from_the_client_is_honoured() {
    let p = Pounce::start(&["demo"]);
    let mut c = Client::connect(p.addr);
    c.send(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let r = c.read_response(false).unwrap();
    assert!(r.closes());
    assert!(c.is_closed_within(Duration::from_secs(3)));
}

#[test]
fn chunked_request_body() {
    let p = Pounce::start(&["demo"]);
    let mut c = Client::connect(p.addr);
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    c.send(b"5\r\nhello\r\n");
    std::thread::sleep(Duration::from_millis(50));
    c.send(b"7;ext=1\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n");
    let r = c.read_response(false).unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "hello, world"));
    // Pipelined request right behind a chunked body is parsed correctly.
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /json HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.read_response(false).unwrap().text(), "abc");
    assert_eq!(c.read_response(false).unwrap().text(), r#"{"message":"Hello, World!"}"#);
}

#[test]
fn large_content_length_body_arriving_in_pieces() {
    let p = Pounce::start(&["demo"]);
    let mut c = Client::connect(p.addr);
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    c.send(format!("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes());
    for part in body.chunks(70_000) {
        c.send(part);
        std::thread::sleep(Duration::from_millis(10));
    }
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body == body, "echoed body differs");
    assert_eq!(c.get("/").status, 200);
}

#[test]
fn a_panicking_handler_costs_one_500() {
    let p = Pounce::start(&["demo", "--workers", "1"]);
    let mut other = Client::connect(p.addr);
    assert_eq!(other.get("/").status, 200);
    let r = get(p.addr, "/panic");
    assert_eq!(r.status, 500);
    assert!(r.closes());
    assert!(
        p.wait_log("handler panicked on GET /panic", Duration::from_secs(5)).is_some(),
        "{}",
        p.log_text()
    );
    // Same worker, other connection, and a fresh one: all fine.
    assert_eq!(other.get("/json").status, 200);
    assert_eq!(get(p.addr, "/").status, 200);
}

#[test]
fn a_second_pounce_on_the_same_port_exits_1_and_the_first_keeps_serving() {
    let p = Pounce::start(&["demo"]);
    let port = p.addr.port().to_string();
    let out = common::command(&["demo", "--port", &port]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("error: 127.0.0.1:{port} is already in use")), "{err}");
    assert_eq!(get(p.addr, "/").status, 200);
}

#[test]
fn a_port_held_by_a_reuseport_stranger_is_refused() {
    // A stranger that, like glommio's own bind, sets SO_REUSEPORT.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    // SAFETY: plain socket calls on a socket we create and own.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
    assert!(fd >= 0);
    let one: libc::c_int = 1;
    unsafe {
        libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, &one as *const _ as *const _, 4);
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as u16,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes([127, 0, 0, 1]) },
            sin_zero: [0; 8],
        };
        assert_eq!(libc::bind(fd, &addr as *const _ as *const _, std::mem::size_of_val(&addr) as u32), 0);
        assert_eq!(libc::listen(fd, 8), 0);
    }
    let out = common::command(&["demo", "--port", &port.to_string()]).output().unwrap();
    // SAFETY: closing our own fd.
    unsafe { libc::close(fd) };
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is already in use"));
}

#[test]
fn access_log_writes_one_line_per_request() {
    let p = Pounce::start(&["demo", "--access-log"]);
    let mut c = Client::connect(p.addr);
    c.get("/");
    c.get("/json?x=1");
    let line = p.wait_log("\"GET /json?x=1 HTTP/1.1\" 200 27", Duration::from_secs(5));
    assert!(line.is_some(), "{}", p.log_text());
    assert!(p.line_index("\"GET / HTTP/1.1\" 200 13").is_some());
    // Off by default.
    let q = Pounce::start(&["demo"]);
    get(q.addr, "/");
    std::thread::sleep(Duration::from_millis(100));
    assert!(q.line_index("\"GET / HTTP/1.1\"").is_none());
}

#[test]
fn json_log_format() {
    let p = Pounce::start(&["demo", "--log-format", "json"]);
    let line = p.wait_log("Listening on", Duration::from_secs(1)).unwrap();
    assert!(line.starts_with("{\"ts\":\"") && line.ends_with("\"}"), "{line}");
    assert!(line.contains("\"level\":\"info\""), "{line}");
    assert!(line.contains("\"msg\":\"Listening on http://"), "{line}");
}

#[test]
fn port_zero_logs_the_port_it_got() {
    let p = Pounce::start(&["demo", "--port", "0"]);
    assert_ne!(p.addr.port(), 0);
    assert_eq!(get(p.addr, "/").status, 200);
}

#[test]
fn ipv6_loopback() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: no IPv6 loopback on this machine");
        return;
    }
    let p = Pounce::start(&["demo", "--host", "::1"]);
    assert!(p.addr.is_ipv6());
    assert_eq!(get(p.addr, "/").status, 200);
}

#[test]
fn the_library_example_builds_and_serves() {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/http-xxxx → target/<profile>/examples/hello
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let example = profile_dir.join("examples").join("hello");
    if !example.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let st = std::process::Command::new(cargo)
            .args(["build", "-p", "pounce", "--example", "hello"])
            .env("CARGO_TARGET_DIR", profile_dir.parent().unwrap())
            .status()
            .unwrap();
        assert!(st.success());
    }
    let mut cmd = std::process::Command::new(&example);
    cmd.args(["--port", "0", "--workers", "1"]);
    let mut p = Pounce::spawn(cmd);
    assert_eq!(get(p.addr, "/").text(), "Hello, World!");
    assert_eq!(get(p.addr, "/x").status, 404);
    // The embedding gets the same CLI checks and shutdown.
    let out = std::process::Command::new(&example).args(["--shutdown-timeout", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("shutdown_timeout must be positive"));
    p.sigterm();
    assert_eq!(p.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(p.line_index("All workers stopped").is_some());
}

#[test]
fn a_long_pipeline_is_answered_completely_and_in_order() {
    // 1500 requests in one write: their responses (~200 KiB) leave in several
    // writes while the rest of the batch is still being served.
    let p = Pounce::start(&["demo", "--workers", "1"]);
    let mut c = Client::connect(p.addr);
    let mut batch = Vec::new();
    for i in 0..1500 {
        let path = if i % 2 == 0 { "/" } else { "/json" };
        batch.extend_from_slice(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    }
    c.send(&batch);
    for i in 0..1500 {
        let r = c.read_response(false).unwrap_or_else(|| panic!("response {i} missing"));
        let want = if i % 2 == 0 { "Hello, World!" } else { r#"{"message":"Hello, World!"}"# };
        assert_eq!((r.status, r.text().as_str()), (200, want), "response {i}");
    }
}
