//! Client load for restart and upgrade tests: threads that keep requests
//! going the way users' clients do, and account for every one of them.
//!
//! - keep-alive clients loop over `GET /`, `POST /echo` (the body must come
//!   back) and `GET /sleep/30` on one connection, reconnecting after a
//!   response with `Connection: close`;
//! - fresh-connection clients open a connection per request (`GET /json`,
//!   `Connection: close`).
//!
//! A request that fails in any way is recorded with what happened: connect
//! refused or failed, reset or EOF before a complete response, a status
//! other than 200, a wrong body. A test asserts that there are none.

use super::{Client, Wire};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the clients saw.
#[derive(Debug, Default)]
pub struct Tally {
    pub ok: u64,
    pub failed: u64,
    /// The first failures, described.
    pub failures: Vec<String>,
    /// Slowest complete request.
    pub slowest: Duration,
}

impl Tally {
    /// Panics unless every request succeeded and at least `min_ok` did
    /// (so that "no failure" cannot mean "no traffic"); `context` is added
    /// to the message (a server log, say).
    pub fn assert_clean(&self, min_ok: u64, context: &str) {
        assert!(
            self.failed == 0 && self.ok >= min_ok,
            "{} ok (at least {min_ok} expected), {} failed: {:#?}\n{context}",
            self.ok,
            self.failed,
            self.failures
        );
    }

    fn fail(&mut self, what: String) {
        self.failed += 1;
        if self.failures.len() < 20 {
            self.failures.push(what);
        }
    }

    fn merge(&mut self, o: Tally) {
        self.ok += o.ok;
        self.failed += o.failed;
        self.slowest = self.slowest.max(o.slowest);
        for f in o.failures {
            if self.failures.len() < 20 {
                self.failures.push(f);
            }
        }
    }
}

/// Opens one client connection.
pub type Connector = Arc<dyn Fn() -> std::io::Result<Client<Box<dyn Wire + Send>>> + Send + Sync>;

pub struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Tally>>,
}

impl Load {
    /// Starts `keep_alive` keep-alive clients and `fresh` per-request-
    /// connection clients against `addr`.
    pub fn start(addr: SocketAddr, keep_alive: usize, fresh: usize) -> Load {
        Load::start_with(Arc::new(move || connect(addr)), keep_alive, fresh)
    }

    /// The same clients, making their connections with `connect` (TLS, say).
    pub fn start_with(connect: Connector, keep_alive: usize, fresh: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for i in 0..keep_alive {
            let (stop, connect) = (stop.clone(), connect.clone());
            threads.push(std::thread::spawn(move || keep_alive_client(&*connect, i, &stop)));
        }
        for _ in 0..fresh {
            let (stop, connect) = (stop.clone(), connect.clone());
            threads.push(std::thread::spawn(move || fresh_client(&*connect, &stop)));
        }
        Load { stop, threads }
    }

    /// Stops the clients (each finishes the request it is in) and adds up.
    pub fn finish(self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Tally::default();
        for t in self.threads {
            all.merge(t.join().expect("client thread"));
        }
        all
    }
}

fn connect(addr: SocketAddr) -> std::io::Result<Client<Box<dyn Wire + Send>>> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    let c = Client::over(Box::new(s) as Box<dyn Wire + Send>);
    c.stream.tcp().set_read_timeout(Some(Duration::from_secs(15))).ok();
    Ok(c)
}

type Connect = dyn Fn() -> std::io::Result<Client<Box<dyn Wire + Send>>> + Send + Sync;

fn keep_alive_client(connect: &Connect, seed: usize, stop: &AtomicBool) -> Tally {
    let mut t = Tally::default();
    let mut conn: Option<Client<Box<dyn Wire + Send>>> = None;
    let mut n = seed;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match connect() {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    t.fail(format!("connect: {e}"));
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
            },
        };
        let body = format!("echo-{n}-{}", "x".repeat(100));
        let (req, want): (String, Option<&str>) = match n % 3 {
            0 => ("GET / HTTP/1.1\r\nHost: t\r\n\r\n".into(), Some("Hello, World!")),
            1 => (
                format!("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}", body.len()),
                Some(body.as_str()),
            ),
            _ => ("GET /sleep/30 HTTP/1.1\r\nHost: t\r\n\r\n".into(), None),
        };
        let started = Instant::now();
        if let Err(e) = std::io::Write::write_all(&mut c.stream, req.as_bytes()) {
            t.fail(format!("write on a kept-alive connection: {e}"));
            conn = None;
            continue;
        }
        match c.read_response(false) {
            None => {
                t.fail(format!("no complete response to {:?} (reset or EOF)", req.lines().next().unwrap()));
                conn = None;
            }
            Some(r) => {
                if r.status != 200 {
                    t.fail(format!("{} for {:?}", r.status_line, req.lines().next().unwrap()));
                } else if want.is_some_and(|w| r.text() != w) {
                    t.fail(format!("wrong body {:?}", r.text()));
                } else {
                    t.ok += 1;
                    t.slowest = t.slowest.max(started.elapsed());
                }
                if r.closes() {
                    conn = None;
                }
            }
        }
    }
    t
}

fn fresh_client(connect: &Connect, stop: &AtomicBool) -> Tally {
    let mut t = Tally::default();
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let mut c = match connect() {
            Ok(c) => c,
            Err(e) => {
                t.fail(format!("connect: {e}"));
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        c.send(b"GET /json HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        match c.read_response(false) {
            Some(r) if r.status == 200 && r.text() == r#"{"message":"Hello, World!"}"# => {
                t.ok += 1;
                t.slowest = t.slowest.max(started.elapsed());
            }
            Some(r) => t.fail(format!("{} {:?} on a fresh connection", r.status_line, r.text())),
            None => t.fail("no complete response on a fresh connection (reset or EOF)".into()),
        }
    }
    t
}
