//! HTTPS: the real binary with `--tls-cert`/`--tls-key`, certificates made
//! at test time, and real clients: curl (`--cacert`), Python's `ssl` module,
//! rustls. Versions, ALPN, plain HTTP on the TLS port, garbage and silent
//! clients, bad files, the drain over TLS, and a certificate rotation by hot
//! upgrade under load.

mod common;

use common::load::Load;
use common::procs::{self, Reaper};
use common::tls::{self, Pki};
use common::{Client, Pounce, Wire};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// pounce serving `leaf` over TLS, with `extra` options.
fn start(leaf: &tls::Leaf, extra: &[&str]) -> Pounce {
    let mut args =
        vec!["demo", "--tls-cert", leaf.cert.to_str().unwrap(), "--tls-key", leaf.key.to_str().unwrap()];
    args.extend_from_slice(extra);
    Pounce::start(&args)
}

/// `curl -v --cacert` on `url` with `flags`: (exit code, stdout, stderr).
fn curl(ca: &Path, url: &str, flags: &[&str]) -> (i32, String, String) {
    let out = Command::new("curl")
        .args(["-sS", "-v", "--max-time", "10", "--cacert"])
        .arg(ca)
        .args(flags)
        .arg(url)
        .output()
        .expect("curl is installed (.ci/run installs it)");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn curl_gets_200_over_tls13_and_tls12_with_alpn_http11() {
    let pki = Pki::new("curl");
    let leaf = pki.leaf("server", false);
    let p = start(&leaf, &[]);
    assert!(p.wait_log("Listening on https://", Duration::from_secs(1)).is_some(), "{}", p.log_text());
    let url = format!("https://localhost:{}/", p.addr.port());
    let resolve = format!("localhost:{}:127.0.0.1", p.addr.port());
    for (flags, version) in
        [(&["--tlsv1.3"][..], "TLSv1.3"), (&["--tlsv1.2", "--tls-max", "1.2"][..], "TLSv1.2")]
    {
        let mut all = vec!["--resolve", resolve.as_str()];
        all.extend_from_slice(flags);
        let (code, body, log) = curl(&pki.ca, &url, &all);
        assert_eq!(code, 0, "{version}: {log}");
        assert_eq!(body, "Hello, World!", "{version}");
        assert!(log.contains(&format!("SSL connection using {version}")), "{log}");
        assert!(log.contains("ALPN: server accepted http/1.1"), "{log}");
        assert!(log.contains("< HTTP/1.1 200 OK"), "{log}");
    }
    // A JSON body, then a large POST body both ways, on one kept-alive
    // rustls connection.
    let config = pki.client_config(&["http/1.1"]);
    let mut c = tls::connect(p.addr, &config).unwrap();
    assert_eq!(c.get("/json").text(), r#"{"message":"Hello, World!"}"#);
    let big = "y".repeat(200_000);
    c.send(
        format!("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{big}", big.len()).as_bytes(),
    );
    let r = c.read_response(false).unwrap();
    assert_eq!((r.status, r.body.len()), (200, big.len()), "{}", r.head);
    assert!(r.text() == big);
}

#[test]
fn python_ssl_gets_200_over_tls13_and_tls12_and_tls11_is_refused() {
    let pki = Pki::new("python");
    let leaf = pki.leaf("server", false);
    let p = start(&leaf, &["--log-level", "debug"]);
    for v in ["1.3", "1.2"] {
        let r = tls::python_get(p.addr, &pki.ca, &["--version", v, "--alpn", "http/1.1", "--path", "/json"]);
        assert!(r.ok(), "TLS {v}: {}", r.0);
        assert_eq!(r.str("version"), format!("TLSv{v}"));
        assert_eq!(r.str("alpn"), "http/1.1");
        assert_eq!(r.0["status"], 200, "{}", r.0);
        assert_eq!(r.str("body"), r#"{"message":"Hello, World!"}"#);
        assert_eq!(r.0["headers"]["connection"], "close");
        assert_eq!(r.0["close_notify"], true, "close_notify before the FIN: {}", r.0);
    }
    let r = tls::python_get(p.addr, &pki.ca, &["--version", "1.1"]);
    assert!(!r.ok(), "TLS 1.1 must be refused: {}", r.0);
    assert!(r.str("error").starts_with("SSLError"), "refused in the handshake: {}", r.0);
    p.wait_log("TLS handshake failed: protocol_version", Duration::from_secs(5))
        .unwrap_or_else(|| panic!("no debug line saying why:\n{}", p.log_text()));
    // The worker goes on.
    let r = tls::python_get(p.addr, &pki.ca, &[]);
    assert!(r.ok() && r.0["status"] == 200, "{}", r.0);
}

#[test]
fn an_h2_only_client_is_refused_and_no_alpn_is_served() {
    let pki = Pki::new("alpn");
    let leaf = pki.leaf("server", false);
    let p = start(&leaf, &["--log-level", "debug"]);
    let r = tls::python_get(p.addr, &pki.ca, &["--alpn", "h2"]);
    assert!(!r.ok(), "{}", r.0);
    assert!(r.str("error").contains("no application protocol"), "refused with the alert: {}", r.0);
    p.wait_log("TLS handshake failed: no_application_protocol", Duration::from_secs(5))
        .unwrap_or_else(|| panic!("{}", p.log_text()));
    // h2 and http/1.1 offered: http/1.1; nothing offered: served as HTTP/1.1.
    let r = tls::python_get(p.addr, &pki.ca, &["--alpn", "h2", "--alpn", "http/1.1"]);
    assert_eq!(r.str("alpn"), "http/1.1", "{}", r.0);
    let r = tls::python_get(p.addr, &pki.ca, &[]);
    assert!(r.ok() && r.0["status"] == 200 && r.0["alpn"].is_null(), "{}", r.0);
}

#[test]
fn plain_http_on_the_tls_port_gets_400_then_close() {
    let pki = Pki::new("plain");
    let leaf = pki.leaf("server", false);
    let p = start(&leaf, &["--log-level", "debug"]);
    let mut c = Client::connect(p.addr);
    let r = c.get("/");
    assert_eq!(r.status, 400, "{}", r.head);
    assert!(r.closes(), "{}", r.head);
    assert_eq!(r.text(), "This port expects HTTPS: the plain HTTP request was sent to an HTTPS port\n");
    assert!(c.is_closed_within(Duration::from_secs(3)), "closed after the 400");
    p.wait_log("TLS handshake failed: plain_http", Duration::from_secs(5))
        .unwrap_or_else(|| panic!("{}", p.log_text()));
    // And HTTPS still works.
    let config = pki.client_config(&["http/1.1"]);
    let mut c = tls::connect(p.addr, &config).unwrap();
    assert_eq!(c.get("/").status, 200);
}

#[test]
fn garbage_truncated_and_silent_clients_are_closed_within_header_timeout() {
    let pki = Pki::new("bad");
    let leaf = pki.leaf("server", false);
    let p = start(&leaf, &["--header-timeout", "1", "--log-level", "debug"]);
    let closed_in = |bytes: &[u8], fin: bool| -> Duration {
        let mut s = TcpStream::connect(p.addr).unwrap();
        s.write_all(bytes).unwrap();
        if fin {
            s.shutdown(std::net::Shutdown::Write).unwrap();
        }
        let t = Instant::now();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut sink = Vec::new();
        match s.read_to_end(&mut sink) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("not closed within 5 s: {e}"),
        }
        t.elapsed()
    };
    // Garbage: closed at once.
    assert!(closed_in(&[0x00, 0xff, 0x13, 0x37, 0x42], false) < Duration::from_millis(500));
    p.wait_log("TLS handshake failed: not_tls", Duration::from_secs(2))
        .unwrap_or_else(|| panic!("{}", p.log_text()));
    // A record header that claims a handshake but carries junk: an alert.
    assert!(
        closed_in(&[0x16, 0x03, 0x01, 0x00, 0x04, 0xde, 0xad, 0xbe, 0xef], false)
            < Duration::from_millis(500)
    );
    p.wait_log("TLS handshake failed: bad_message", Duration::from_secs(2))
        .unwrap_or_else(|| panic!("{}", p.log_text()));
    // Half a ClientHello, then silence: header_timeout (1 s).
    let half = [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03];
    let took = closed_in(&half, false);
    assert!(took > Duration::from_millis(700) && took < Duration::from_secs(3), "{took:?}");
    p.wait_log("TLS handshake failed: timeout (stalled mid-handshake)", Duration::from_secs(2))
        .unwrap_or_else(|| panic!("{}", p.log_text()));
    // Half a ClientHello, then FIN: closed at once.
    assert!(closed_in(&half, true) < Duration::from_millis(500));
    p.wait_log("TLS handshake failed: client_closed", Duration::from_secs(2))
        .unwrap_or_else(|| panic!("{}", p.log_text()));
    // Nothing at all: header_timeout.
    let took = closed_in(b"", false);
    assert!(took > Duration::from_millis(700) && took < Duration::from_secs(3), "{took:?}");
    p.wait_log("TLS handshake failed: timeout (sent nothing)", Duration::from_secs(2))
        .unwrap_or_else(|| panic!("{}", p.log_text()));
    // The workers go on.
    let config = pki.client_config(&["http/1.1"]);
    for _ in 0..4 {
        assert_eq!(tls::connect(p.addr, &config).unwrap().get("/").status, 200);
    }
}

#[test]
fn bad_tls_files_exit_2_with_one_line_naming_the_option() {
    let pki = Pki::new("files");
    let good = pki.leaf("good", false);
    let other = pki.leaf("other", false);
    let not_pem = pki.dir.join("not.pem");
    std::fs::write(&not_pem, "this is not PEM\n").unwrap();
    let missing = pki.dir.join("missing.pem");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    // (flags, environment, what the one line says)
    type Case = (Vec<String>, Vec<(&'static str, String)>, String);
    let cases: Vec<Case> = vec![
        (
            vec!["--tls-cert".into(), s(&missing), "--tls-key".into(), s(&good.key)],
            vec![],
            format!("error: tls_cert cannot be read: {}: No such file or directory", missing.display()),
        ),
        (
            vec!["--tls-cert".into(), s(&good.cert), "--tls-key".into(), s(&missing)],
            vec![],
            "error: tls_key cannot be read: ".into(),
        ),
        (
            vec!["--tls-cert".into(), s(&pki.dir), "--tls-key".into(), s(&good.key)],
            vec![],
            "error: tls_cert must be a file, got the directory".into(),
        ),
        (
            vec!["--tls-cert".into(), s(&not_pem), "--tls-key".into(), s(&good.key)],
            vec![],
            "error: tls_cert holds no PEM certificate".into(),
        ),
        (
            vec!["--tls-cert".into(), s(&good.cert), "--tls-key".into(), s(&not_pem)],
            vec![],
            "error: tls_key holds no PEM private key".into(),
        ),
        (
            vec!["--tls-cert".into(), s(&good.key), "--tls-key".into(), s(&good.key)],
            vec![],
            "error: tls_cert holds no PEM certificate".into(),
        ),
        (
            vec!["--tls-cert".into(), s(&good.cert), "--tls-key".into(), s(&other.key)],
            vec![],
            "error: tls_key does not match the certificate".into(),
        ),
        (
            vec!["--tls-cert".into(), s(&good.cert)],
            vec![],
            "error: tls_key must be given with tls_cert".into(),
        ),
        (vec!["--tls-key".into(), s(&good.key)], vec![], "error: tls_cert must be given with tls_key".into()),
        (
            vec![],
            vec![("POUNCE_TLS_CERT", s(&missing)), ("POUNCE_TLS_KEY", s(&good.key))],
            "(from POUNCE_TLS_CERT)".into(),
        ),
        (
            vec![],
            vec![("POUNCE_TLS_CERT", s(&good.cert)), ("POUNCE_TLS_KEY", s(&other.key))],
            "(from POUNCE_TLS_KEY)".into(),
        ),
    ];
    for (args, env, want) in cases {
        let mut all: Vec<&str> = vec!["demo", "--port", "0", "--workers", "1"];
        all.extend(args.iter().map(String::as_str));
        let mut cmd = common::command(&all);
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let out = common::output_within(cmd, Duration::from_secs(10));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.contains(&want), "{args:?} {env:?}: got {err:?}, want {want:?}");
    }
}

#[test]
fn an_expired_certificate_is_served_with_one_warning_at_start() {
    let pki = Pki::new("expired");
    let leaf = pki.leaf("old", true);
    let p = start(&leaf, &[]);
    let warnings: Vec<String> = p.lines().into_iter().filter(|l| l.contains("expired on")).collect();
    assert_eq!(warnings.len(), 1, "{}", p.log_text());
    assert!(
        warnings[0].contains("expired on 2001-01-01 00:00:00 UTC")
            && warnings[0].contains("serving it anyway"),
        "{}",
        warnings[0]
    );
    // Served: a client that checks the date refuses it; one that does not
    // (curl -k) gets its answer.
    let url = format!("https://127.0.0.1:{}/", p.addr.port());
    let (code, _, log) = curl(&pki.ca, &url, &[]);
    assert_ne!(code, 0, "{log}");
    assert!(log.contains("expired"), "{log}");
    let (code, body, log) = curl(&pki.ca, &url, &["-k"]);
    assert_eq!((code, body.as_str()), (0, "Hello, World!"), "{log}");
}

#[test]
fn static_files_over_tls_are_read_and_encrypted_in_chunks() {
    let pki = Pki::new("static");
    let leaf = pki.leaf("server", false);
    let root = pki.dir.join("www");
    std::fs::create_dir_all(&root).unwrap();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    std::fs::write(root.join("big.bin"), &big).unwrap();
    std::fs::write(root.join("small.txt"), "hello\n").unwrap();
    let app = format!("static:{}", root.display());
    let p = Pounce::start(&[
        &app,
        "--tls-cert",
        leaf.cert.to_str().unwrap(),
        "--tls-key",
        leaf.key.to_str().unwrap(),
    ]);
    let config = pki.client_config(&["http/1.1"]);
    let mut c = tls::connect(p.addr, &config).unwrap();
    let r = c.get("/big.bin");
    assert_eq!(r.status, 200, "{}", r.head);
    assert!(r.body == big, "the whole file, byte for byte ({} bytes)", r.body.len());
    c.send(b"GET /big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=1000000-2099999\r\n\r\nGET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 206, "{}", r.head);
    assert!(r.body == big[1_000_000..2_100_000], "the range");
    let r = c.read_response(false).unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "hello\n"), "pipelined behind it");
    // And with --sendfile=false (the io_uring read path) too.
    drop(p);
    let p = Pounce::start(&[
        &app,
        "--sendfile=false",
        "--tls-cert",
        leaf.cert.to_str().unwrap(),
        "--tls-key",
        leaf.key.to_str().unwrap(),
    ]);
    let r = tls::connect(p.addr, &config).unwrap().get("/big.bin");
    assert!(r.status == 200 && r.body == big);
}

/// A TLS read that must end in the server's close_notify (Ok(0)), not a
/// bare FIN (rustls: UnexpectedEof) or a reset.
fn assert_close_notify(c: &mut Client<tls::TlsStream>, what: &str) {
    c.stream.tcp().set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut b = [0u8; 64];
    match c.stream.read(&mut b) {
        Ok(0) => {}
        other => panic!("{what}: expected close_notify then EOF, got {other:?}"),
    }
}

#[test]
fn sigterm_drain_over_tls_completes_the_slow_request_with_connection_close_and_exits_0() {
    let pki = Pki::new("drain");
    let leaf = pki.leaf("server", false);
    let mut p = start(&leaf, &["--shutdown-timeout", "10"]);
    let config = pki.client_config(&["http/1.1"]);
    // In flight: a slow request. Idle: a kept-alive connection.
    let mut slow = tls::connect(p.addr, &config).unwrap();
    slow.send(b"GET /sleep/1500 HTTP/1.1\r\nHost: t\r\n\r\n");
    let mut idle = tls::connect(p.addr, &config).unwrap();
    assert_eq!(idle.get("/").status, 200);
    std::thread::sleep(Duration::from_millis(200));
    p.sigterm();
    p.wait_log("Worker", Duration::from_secs(5)).unwrap();
    std::thread::sleep(Duration::from_millis(100));

    // A new connection during the drain: the handshake, then the 503.
    let mut late = tls::connect(p.addr, &config).expect("handshake during the drain");
    let r = late.get("/");
    assert_eq!(r.status, 503, "{}", r.head);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(r.closes());
    assert_close_notify(&mut late, "the 503");

    // The idle one: closed within the 1 s grace, cleanly.
    let t = Instant::now();
    assert_close_notify(&mut idle, "the idle connection");
    assert!(t.elapsed() < Duration::from_millis(1500), "{:?}", t.elapsed());

    // The slow one completes, says Connection: close, then close_notify, then FIN.
    let r = slow.read_response(false).expect("the slow request completes");
    assert_eq!(r.status, 200, "{}", r.head);
    assert!(r.closes(), "{}", r.head);
    assert_close_notify(&mut slow, "after the last response");

    assert_eq!(p.wait_exit(Duration::from_secs(10)), Some(0), "{}", p.log_text());
    assert!(p.log_text().contains("1 request(s) completed during the drain"), "{}", p.log_text());
}

#[test]
fn the_forced_close_at_shutdown_timeout_still_sends_the_fin() {
    let pki = Pki::new("forced");
    let leaf = pki.leaf("server", false);
    let mut p = start(&leaf, &["--shutdown-timeout", "0.5"]);
    let config = pki.client_config(&["http/1.1"]);
    let mut slow = tls::connect(p.addr, &config).unwrap();
    slow.send(b"GET /sleep/10000 HTTP/1.1\r\nHost: t\r\n\r\n");
    std::thread::sleep(Duration::from_millis(200));
    p.sigterm();
    let t = Instant::now();
    let mut b = [0u8; 64];
    slow.stream.tcp().set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // A FIN (rustls: unexpected EOF, no close_notify) or a reset, at 0.5 s.
    match slow.stream.read(&mut b) {
        Err(e)
            if e.kind() == std::io::ErrorKind::UnexpectedEof
                || e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("expected the forced close, got {other:?}"),
    }
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(p.wait_exit(Duration::from_secs(5)), Some(3), "{}", p.log_text());
}

#[test]
fn sighup_rotates_the_certificate_under_tls_load_failing_no_request() {
    procs::become_subreaper();
    let pki = Pki::new("rotate");
    let old = pki.leaf("old", false);
    let new = pki.leaf("new", false);
    let (cert, key) = (pki.dir.join("live.crt"), pki.dir.join("live.key"));
    tls::install(&old, &cert, &key);
    let pid_file = pki.dir.join("pounce.pid");
    let mut first = Pounce::start(&[
        "demo",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
        "--pid-file",
        pid_file.to_str().unwrap(),
    ]);
    let mut reaper = Reaper::default();
    reaper.track(first.pid());
    let config = pki.client_config(&["http/1.1"]);
    assert_eq!(tls::peer_leaf(&tls::connect(first.addr, &config).unwrap()), old.der);

    let load = Load::start_with(tls::connector(first.addr, config.clone()), 6, 3);
    std::thread::sleep(Duration::from_millis(400));

    // A renewal that fails to load: the successor exits 2, the old process
    // goes on serving with the old certificate.
    std::fs::write(&key, "not a key\n").unwrap();
    first.signal(libc::SIGHUP);
    first
        .wait_log("Upgrade failed: successor pid", Duration::from_secs(10))
        .unwrap_or_else(|| panic!("{}", first.log_text()));
    assert!(first.log_text().contains("error: tls_key holds no PEM private key"), "{}", first.log_text());
    assert_eq!(tls::peer_leaf(&tls::connect(first.addr, &config).unwrap()), old.der);

    // The real renewal: the files are replaced, then SIGHUP.
    tls::install(&new, &cert, &key);
    first.signal(libc::SIGHUP);
    let next = procs::pid_file_changes(&pid_file, Some(first.pid()), Duration::from_secs(20))
        .unwrap_or_else(|| panic!("no successor took over; log:\n{}", first.log_text()));
    reaper.track(next);
    first
        .wait_log(&format!("Upgrade: successor pid {next} is ready and serving"), Duration::from_secs(5))
        .unwrap_or_else(|| panic!("{}", first.log_text()));
    std::thread::sleep(Duration::from_millis(600));
    let tally = load.finish();
    tally.assert_clean(50, &first.log_text());

    // New connections see the new certificate.
    for _ in 0..4 {
        let c = tls::connect(first.addr, &config).unwrap();
        assert_eq!(tls::peer_leaf(&c), new.der, "a new connection gets the new certificate");
    }
    assert_eq!(first.wait_exit(Duration::from_secs(10)), Some(0), "{}", first.log_text());
    // SAFETY: kill(2) on the successor this test caused.
    unsafe { libc::kill(next, libc::SIGTERM) };
    assert_eq!(procs::wait_exit(next, Duration::from_secs(10)), Some(0), "{}", first.log_text());
}

#[test]
fn over_max_connections_a_tls_client_gets_the_503_after_its_handshake() {
    let pki = Pki::new("overload");
    let leaf = pki.leaf("server", false);
    let p = start(&leaf, &["--max-connections", "1", "--workers", "1"]);
    let config = pki.client_config(&["http/1.1"]);
    let mut first = tls::connect(p.addr, &config).unwrap();
    assert_eq!(first.get("/").status, 200);
    // One too many: no request needed, the answer comes after the handshake.
    let mut second = tls::connect(p.addr, &config).expect("the handshake completes");
    let r = second.read_response(false).expect("a response, not a reset");
    assert_eq!(r.status, 503, "{}", r.head);
    assert_eq!(r.header("retry-after"), Some("5"));
    assert!(r.closes());
    assert_close_notify(&mut second, "the 503");
    assert_eq!(first.get("/").status, 200, "the first one is still served");
}

/// With metrics on, handshakes are counted, and failed ones by reason.
#[test]
fn handshakes_and_their_failures_by_reason_are_on_metrics() {
    let pki = Pki::new("metrics");
    let leaf = pki.leaf("server", false);
    let p = start(&leaf, &["--metrics-addr", "127.0.0.1:0"]);
    let maddr = p.metrics_addr.expect("metrics listener");
    let config = pki.client_config(&["http/1.1"]);
    for _ in 0..3 {
        let mut c = tls::connect(p.addr, &config).unwrap();
        assert_eq!(c.get("/").status, 200);
    }
    // Plain HTTP on the TLS port, then bytes that are no protocol at all.
    let plain = common::raw(p.addr, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(plain.starts_with("HTTP/1.1 400"), "{plain}");
    let mut junk = TcpStream::connect(p.addr).unwrap();
    junk.write_all(b"\x00\x01 no protocol at all\r\n\r\n").unwrap();
    junk.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut b = [0u8; 64];
    while matches!(junk.read(&mut b), Ok(n) if n > 0) {}
    let text = common::get(maddr, "/metrics").text();
    let sum = |prefix: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert_eq!(sum("pounce_tls_handshakes_total{"), 3.0, "{text}");
    assert_eq!(
        sum("pounce_tls_handshake_failures_total{worker=\"1\",reason=\"plain_http\"}")
            + sum("pounce_tls_handshake_failures_total{worker=\"2\",reason=\"plain_http\"}"),
        1.0,
        "{text}"
    );
    let not_tls = sum("pounce_tls_handshake_failures_total{worker=\"1\",reason=\"not_tls\"}")
        + sum("pounce_tls_handshake_failures_total{worker=\"2\",reason=\"not_tls\"}");
    assert_eq!(not_tls, 1.0, "{text}");
    assert_eq!(sum("pounce_tls_handshake_failures_total{"), 2.0, "nothing else failed: {text}");
}
