//! Test harness: start the real `pounce` binary on a port the OS picks, read
//! its log lines as they come, talk to it over real loopback sockets, send it
//! real signals, and always kill it (by pid) when the test ends.
#![allow(dead_code)]

pub mod activation;
pub mod load;
pub mod procs;
pub mod tls;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_pounce");

/// Environment variables a test must not inherit from the developer's shell.
const SCRUB: &[&str] = &[
    "POUNCE_HOST",
    "POUNCE_PORT",
    "POUNCE_WORKERS",
    "POUNCE_SHUTDOWN_TIMEOUT",
    "SHUTDOWN_TIMEOUT",
    "POUNCE_SHUTDOWN_DELAY",
    "POUNCE_REQUEST_TIMEOUT",
    "POUNCE_HEADER_TIMEOUT",
    "POUNCE_KEEP_ALIVE_TIMEOUT",
    "POUNCE_HEALTH_CHECK_PATH",
    "POUNCE_MAX_HEADER_SIZE",
    "POUNCE_MAX_HEADERS",
    "POUNCE_MAX_BODY_SIZE",
    "POUNCE_MAX_CONNECTIONS",
    "POUNCE_BACKLOG",
    "POUNCE_ACCESS_LOG",
    "POUNCE_LOG_LEVEL",
    "POUNCE_LOG_FORMAT",
    "POUNCE_SCHED_POLICY",
    "POUNCE_DRAIN_NEW_CONNECTIONS",
    "POUNCE_PID_FILE",
    "POUNCE_UPGRADE_TIMEOUT",
    "POUNCE_METRICS_ADDR",
    "POUNCE_TLS_CERT",
    "POUNCE_TLS_KEY",
    "RUST_LOG",
    "NOTIFY_SOCKET",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "POUNCE_UPGRADE_FD",
    "POUNCE_LISTEN_HELD",
];

/// A `pounce` command with a clean environment.
pub fn command(args: &[&str]) -> Command {
    command_for(BIN, args)
}

/// `program` (pounce under another path) with a clean environment.
pub fn command_for(program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Command {
    let mut c = Command::new(program);
    c.args(args);
    for v in SCRUB {
        c.env_remove(v);
    }
    c
}

/// Runs `cmd` to completion, killing it if it takes longer than `timeout`
/// (a command expected to fail fast must not hang a test if it starts).
pub fn output_within(mut cmd: Command, timeout: Duration) -> std::process::Output {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().expect("spawn");
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(out) => out.expect("wait"),
        Err(_) => {
            // SAFETY: kill(2) on the child we spawned.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let out = rx.recv().expect("wait").expect("wait");
            panic!(
                "command still running after {timeout:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

#[derive(Default)]
struct Log {
    lines: Vec<String>,
    closed: bool,
}

/// A running pounce. Killed (SIGKILL, by pid) on drop if still running.
pub struct Pounce {
    child: Child,
    pub addr: SocketAddr,
    /// The metrics listener's address, from its `Metrics on` line (if any).
    pub metrics_addr: Option<SocketAddr>,
    log: Arc<(Mutex<Log>, Condvar)>,
    status: Option<i32>,
}

impl Pounce {
    /// `pounce <args> --port 0` (2 workers unless `--workers` is given),
    /// waiting for its `Listening on` line.
    pub fn start(args: &[&str]) -> Pounce {
        Self::start_with(args, &[])
    }

    pub fn start_with(args: &[&str], env: &[(&str, &str)]) -> Pounce {
        let mut all: Vec<&str> = args.to_vec();
        if !args.contains(&"--port") {
            all.extend(["--port", "0"]);
        }
        if !args.contains(&"--workers") && !env.iter().any(|(k, _)| *k == "POUNCE_WORKERS") {
            all.extend(["--workers", "2"]);
        }
        let mut cmd = command(&all);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Self::spawn(cmd)
    }

    pub fn spawn(mut cmd: Command) -> Pounce {
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn pounce");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new((Mutex::new(Log::default()), Condvar::new()));
        let l2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if std::env::var_os("POUNCE_TEST_ECHO").is_some() {
                    eprintln!("pounce| {line}");
                }
                let (m, cv) = &*l2;
                m.lock().unwrap().lines.push(line);
                cv.notify_all();
            }
            let (m, cv) = &*l2;
            m.lock().unwrap().closed = true;
            cv.notify_all();
        });
        let mut p =
            Pounce { child, addr: "127.0.0.1:0".parse().unwrap(), metrics_addr: None, log, status: None };
        let line = p
            .wait_log("Listening on http", Duration::from_secs(15))
            .unwrap_or_else(|| panic!("pounce did not start; log:\n{}", p.log_text()));
        let addr = line.split("://").nth(1).unwrap().split_whitespace().next().unwrap().trim_end_matches(',');
        let addr = addr.replace("localhost", "127.0.0.1");
        p.addr = addr.parse().unwrap_or_else(|_| panic!("bad address in {line:?}"));
        // Logged before `Listening on` when it is bound at start.
        if let Some(line) = p.wait_log("Metrics on http://", Duration::ZERO) {
            let addr = line.split("http://").nth(1).unwrap().split("/metrics").next().unwrap();
            p.metrics_addr = Some(addr.parse().unwrap_or_else(|_| panic!("bad address in {line:?}")));
        }
        p
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// All log lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.log.0.lock().unwrap().lines.clone()
    }

    pub fn log_text(&self) -> String {
        self.lines().join("\n")
    }

    /// Waits for a log line containing `needle`; returns it.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> Option<String> {
        self.wait_log_after(0, needle, timeout)
    }

    /// Like [`wait_log`], ignoring the first `skip` lines.
    pub fn wait_log_after(&self, skip: usize, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &*self.log;
        let mut g = m.lock().unwrap();
        loop {
            if let Some(l) = g.lines.iter().skip(skip).find(|l| l.contains(needle)) {
                return Some(l.clone());
            }
            let now = Instant::now();
            if g.closed || now >= deadline {
                return None;
            }
            g = cv.wait_timeout(g, deadline - now).unwrap().0;
        }
    }

    /// Index of the first line containing `needle`, if any.
    pub fn line_index(&self, needle: &str) -> Option<usize> {
        self.lines().iter().position(|l| l.contains(needle))
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.pid(), sig) };
    }

    pub fn sigterm(&self) {
        self.signal(libc::SIGTERM);
    }

    /// Waits for the process to exit; its exit code, or None on timeout.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        if let Some(s) = self.status {
            return Some(s);
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                let code = st.code().unwrap_or(-1);
                self.status = Some(code);
                // Let the reader thread collect the last lines.
                let (m, cv) = &*self.log;
                let g = m.lock().unwrap();
                let _ = cv.wait_timeout_while(g, Duration::from_secs(2), |l| !l.closed).unwrap();
                return Some(code);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

impl Drop for Pounce {
    fn drop(&mut self) {
        if self.status.is_none() && self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub status_line: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The raw head as received.
    pub head: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn closes(&self) -> bool {
        self.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// What a [`Client`] talks over: a TCP stream, or TLS on one.
pub trait Wire: Read + Write {
    fn tcp(&self) -> &TcpStream;
}

impl Wire for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl Wire for Box<dyn Wire + Send> {
    fn tcp(&self) -> &TcpStream {
        (**self).tcp()
    }
}

/// A client connection that reads responses one at a time, with a deadline.
pub struct Client<S: Wire = TcpStream> {
    pub stream: S,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
        Client::from_stream(stream)
    }

    pub fn from_stream(stream: TcpStream) -> Client {
        Client::over(stream)
    }
}

impl<S: Wire> Client<S> {
    /// A client over `stream` (TCP_NODELAY, 10 s read timeout).
    pub fn over(stream: S) -> Client<S> {
        stream.tcp().set_nodelay(true).ok();
        stream.tcp().set_read_timeout(Some(Duration::from_secs(10))).ok();
        Client { stream, buf: Vec::new() }
    }

    pub fn send(&mut self, bytes: &[u8]) -> &mut Self {
        self.stream.write_all(bytes).expect("write");
        self
    }

    /// `GET path HTTP/1.1` with Host.
    pub fn get(&mut self, path: &str) -> Resp {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        self.read_response(false).expect("response")
    }

    fn fill(&mut self) -> std::io::Result<usize> {
        let mut chunk = [0u8; 16384];
        let n = self.stream.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Reads one response; `head_only` for responses to HEAD. None on EOF
    /// before a complete response.
    pub fn read_response(&mut self, head_only: bool) -> Option<Resp> {
        loop {
            let end = loop {
                if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                    break i + 4;
                }
                if self.fill().ok()? == 0 {
                    return None;
                }
            };
            let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
            let mut lines = head.split("\r\n");
            let status_line = lines.next().unwrap().to_string();
            let status: u16 = status_line.get(9..12).and_then(|s| s.parse().ok())?;
            let headers: Vec<(String, String)> = lines
                .filter(|l| !l.is_empty())
                .filter_map(|l| l.split_once(':').map(|(n, v)| (n.trim().to_string(), v.trim().to_string())))
                .collect();
            self.buf.drain(..end);
            if (100..200).contains(&status) {
                continue; // 100 Continue: the real response follows
            }
            let mut resp = Resp { status, status_line, headers, body: Vec::new(), head };
            if head_only || status == 204 || status == 304 {
                return Some(resp);
            }
            if resp.header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
                loop {
                    let line_end = loop {
                        if let Some(i) = find(&self.buf, b"\r\n") {
                            break i;
                        }
                        if self.fill().ok()? == 0 {
                            return None;
                        }
                    };
                    let size =
                        usize::from_str_radix(std::str::from_utf8(&self.buf[..line_end]).ok()?.trim(), 16)
                            .ok()?;
                    self.buf.drain(..line_end + 2);
                    while self.buf.len() < size + 2 {
                        if self.fill().ok()? == 0 {
                            return None;
                        }
                    }
                    resp.body.extend_from_slice(&self.buf[..size]);
                    self.buf.drain(..size + 2);
                    if size == 0 {
                        return Some(resp);
                    }
                }
            } else if let Some(len) = resp.header("content-length").and_then(|v| v.parse::<usize>().ok()) {
                while self.buf.len() < len {
                    if self.fill().ok()? == 0 {
                        return None;
                    }
                }
                resp.body = self.buf.drain(..len).collect();
                return Some(resp);
            } else {
                while self.fill().ok()? > 0 {}
                resp.body = std::mem::take(&mut self.buf);
                return Some(resp);
            }
        }
    }

    /// True if the server closed the connection (EOF or reset) within `timeout`.
    pub fn is_closed_within(&mut self, timeout: Duration) -> bool {
        self.stream.tcp().set_read_timeout(Some(timeout)).ok();
        let mut b = [0u8; 256];
        let closed = match self.stream.read(&mut b) {
            Ok(0) => true,
            Ok(n) => {
                self.buf.extend_from_slice(&b[..n]);
                false
            }
            Err(e) => !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
        };
        self.stream.tcp().set_read_timeout(Some(Duration::from_secs(10))).ok();
        closed
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// One request on a fresh connection.
pub fn get(addr: SocketAddr, path: &str) -> Resp {
    Client::connect(addr).get(path)
}

/// Sends raw bytes on a fresh connection, returns everything received until
/// the server closes (or 10 s pass).
pub fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut c = Client::connect(addr);
    c.send(bytes);
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut chunk = [0u8; 16384];
    while Instant::now() < deadline {
        match c.stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The server's open sockets, once their count has stopped changing (or,
/// with `want`, has reached it) within 3 s: probes' connections take a moment
/// to be closed on the server's side.
pub fn settled_sockets(pid: i32, want: Option<usize>) -> usize {
    let count = || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|l| l.to_string_lossy().starts_with("socket:"))
            .count()
    };
    let t = Instant::now();
    let mut last = count();
    while t.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(100));
        let n = count();
        if want.map_or(n == last, |w| n == w) {
            return n;
        }
        last = n;
    }
    last
}
