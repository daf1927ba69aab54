//! The metrics listener (`--metrics-addr`): a socket of its own, never the
//! app's port, served by a thread of its own from start-up until the process
//! exits, so that a scrape during a drain shows the drain.
//!
//! It depends on nothing the drain stops: not the workers (which stop), not
//! the coordinator's executor. It is plain blocking I/O on one accept thread,
//! with a short-lived thread per scrape (at most [`MAX_CONNS`] at once;
//! beyond that a connection is closed at once), bounded reads and timeouts.
//! Scrapes come every few seconds, so none of this is worth io_uring.
//!
//! HTTP, minimally and strictly: `GET` or `HEAD` `/metrics` (any query) gets
//! the exposition; another method on it 405, another path 404, a malformed
//! head 400, one over [`MAX_HEAD`] bytes 431, a head not complete within
//! [`HEAD_TIMEOUT`] 408 (or a silent close if nothing came). Every answer
//! closes the connection (Prometheus reconnects per scrape), after a lingering
//! close so the answer is not lost to a reset.
//!
//! The socket is bound like the app's ([`crate::server::listener`]): with
//! socket2, close-on-exec, and without `SO_REUSEPORT`, so a port anyone
//! holds is refused. One exception: a hot upgrade's successor starts while
//! its predecessor still serves the metrics (counters are per process), so it
//! takes the port over once the predecessor exits instead of failing.

use super::exposition::Sources;
use super::text::CONTENT_TYPE;
use crate::server::listener::BindError;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Scrapes served at once.
pub(crate) const MAX_CONNS: usize = 8;
/// Largest request head read.
pub(crate) const MAX_HEAD: usize = 8 * 1024;
/// Longest wait for a request head.
pub(crate) const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a write may stall.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a closing connection waits for the client's FIN.
const LINGER: Duration = Duration::from_secs(1);
/// How often a successor retries a port its predecessor holds.
const RETRY_EVERY: Duration = Duration::from_millis(100);

/// The metrics socket, or the address to bind once it is free.
pub(crate) enum Listener {
    Bound(Socket, SocketAddr),
    /// Held by the previous process of a hot upgrade.
    Later(SocketAddr),
}

/// Binds `addr` at start-up. A port in use is an error, except for a hot
/// upgrade's `successor`, which binds it once its predecessor has exited.
pub(crate) fn prepare(addr: SocketAddr, successor: bool) -> Result<Listener, String> {
    match bind(addr) {
        Ok(s) => {
            let bound = s.local_addr().ok().and_then(|a| a.as_socket()).unwrap_or(addr);
            Ok(Listener::Bound(s, bound))
        }
        Err(BindError::InUse(_)) if successor => Ok(Listener::Later(addr)),
        Err(e) => Err(format!("metrics_addr: {e}")),
    }
}

fn bind(addr: SocketAddr) -> Result<Socket, BindError> {
    let err = |e: io::Error| {
        if e.kind() == io::ErrorKind::AddrInUse { BindError::InUse(addr) } else { BindError::Other(addr, e) }
    };
    let domain = if addr.is_ipv6() { Domain::IPV6 } else { Domain::IPV4 };
    let s = Socket::new(domain, Type::STREAM.cloexec(), Some(Protocol::TCP)).map_err(err)?;
    // TIME_WAIT leftovers only; never a second listener (no SO_REUSEPORT).
    s.set_reuse_address(true).map_err(err)?;
    s.bind(&SockAddr::from(addr)).map_err(err)?;
    s.listen(64).map_err(err)?;
    Ok(s)
}

/// The running endpoint. Dropping it stops accepting and joins the thread
/// (scrapes in progress finish on their own, within their timeouts).
pub(crate) struct Endpoint {
    stop: Arc<Stop>,
    thread: Option<JoinHandle<()>>,
}

/// How the owner stops the accept thread: the flag, and the socket to shut
/// down to wake an `accept` (published by the thread once bound).
#[derive(Default)]
struct Stop {
    state: Mutex<(bool, Option<RawFd>)>,
}

impl Stop {
    fn stopped(&self) -> bool {
        self.state.lock().map(|s| s.0).unwrap_or(true)
    }

    /// Publishes the bound socket; false if stopping already.
    fn publish(&self, fd: RawFd) -> bool {
        match self.state.lock() {
            Ok(mut s) if !s.0 => {
                s.1 = Some(fd);
                true
            }
            _ => false,
        }
    }
}

/// Starts the accept thread on `listener`; scrapes render `sources`. A bound
/// listener's address is logged before this returns (tests and scripts read
/// the port from `Metrics on http://ADDR/metrics`).
pub(crate) fn start(listener: Listener, sources: Sources) -> io::Result<Endpoint> {
    let stop = Arc::new(Stop::default());
    if let Listener::Bound(sock, addr) = &listener {
        stop.publish(sock.as_raw_fd());
        log::info!("Metrics on http://{addr}/metrics");
    }
    let s = stop.clone();
    let sources = Arc::new(sources);
    let thread = std::thread::Builder::new().name("pounce-metrics".into()).spawn(move || {
        let sock = match listener {
            Listener::Bound(sock, _) => sock,
            Listener::Later(addr) => match bind_when_free(addr, &s) {
                Some(sock) if s.publish(sock.as_raw_fd()) => {
                    log::info!("Metrics on http://{addr}/metrics");
                    sock
                }
                _ => return,
            },
        };
        accept_loop(&sock, &s, &sources);
    })?;
    Ok(Endpoint { stop, thread: Some(thread) })
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        if let Ok(mut s) = self.stop.state.lock() {
            s.0 = true;
            if let Some(fd) = s.1 {
                // SAFETY: the listening socket, still open: the accept thread
                // owns it until it has returned. shutdown(2) wakes its accept.
                unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
            }
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A successor's wait for the port its predecessor serves until it exits.
fn bind_when_free(addr: SocketAddr, stop: &Stop) -> Option<Socket> {
    log::info!("Metrics: {addr} is still served by the previous process; taking it over when that one exits");
    loop {
        if stop.stopped() {
            return None;
        }
        match bind(addr) {
            Ok(sock) => return Some(sock),
            Err(BindError::InUse(_)) => std::thread::sleep(RETRY_EVERY),
            Err(e) => {
                log::error!("metrics_addr: {e}; no metrics from this process");
                return None;
            }
        }
    }
}

fn accept_loop(sock: &Socket, stop: &Stop, sources: &Arc<Sources>) {
    let active = Arc::new(AtomicUsize::new(0));
    loop {
        let conn = match sock.accept() {
            Ok((conn, _)) => conn,
            Err(e) => {
                if stop.stopped() {
                    return;
                }
                if e.kind() != io::ErrorKind::Interrupted {
                    // EMFILE and the like: back off rather than spin.
                    log::warn!("Metrics: accept failed: {e}");
                    std::thread::sleep(Duration::from_millis(50));
                }
                continue;
            }
        };
        if active.fetch_add(1, Ordering::AcqRel) >= MAX_CONNS {
            active.fetch_sub(1, Ordering::AcqRel);
            continue; // dropped: closed
        }
        let busy = Busy(active.clone());
        let sources = sources.clone();
        let spawned = std::thread::Builder::new().name("pounce-metrics".into()).stack_size(128 << 10).spawn(
            move || {
                let _busy = busy;
                serve(TcpStream::from(conn), &sources);
            },
        );
        if let Err(e) = spawned {
            log::warn!("Metrics: cannot start a thread for a scrape: {e}");
        }
    }
}

/// Counts a scrape in progress until dropped (also if its thread panics).
struct Busy(Arc<AtomicUsize>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One connection: read a head, answer, close.
fn serve(mut stream: TcpStream, sources: &Sources) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let deadline = Instant::now() + HEAD_TIMEOUT;
    let mut buf = vec![0u8; MAX_HEAD];
    let mut n = 0;
    let answer = loop {
        match route(&buf[..n]) {
            Some(Route::Metrics { head_only }) => {
                let body = sources.render();
                break response(200, "OK", CONTENT_TYPE, &[], body.as_bytes(), head_only);
            }
            Some(Route::Error(status, reason, extra)) => {
                let body = format!("{reason}\n");
                break response(status, reason, "text/plain; charset=utf-8", extra, body.as_bytes(), false);
            }
            None if n == buf.len() => {
                break response(431, "Request Header Fields Too Large", "text/plain", &[], b"", false);
            }
            None => {}
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            if n == 0 {
                return;
            }
            break response(408, "Request Timeout", "text/plain", &[], b"", false);
        }
        let _ = stream.set_read_timeout(Some(left));
        match stream.read(&mut buf[n..]) {
            Ok(0) => return,
            Ok(k) => n += k,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    };
    if stream.write_all(&answer).is_err() {
        return;
    }
    // Lingering close: read what the client still sends until its FIN, so
    // unread bytes do not turn our close into a reset that eats the answer.
    let _ = stream.shutdown(Shutdown::Write);
    let until = Instant::now() + LINGER;
    let _ = stream.set_read_timeout(Some(LINGER));
    while Instant::now() < until {
        match stream.read(&mut buf) {
            Ok(k) if k > 0 => {}
            _ => break,
        }
    }
}

enum Route {
    Metrics { head_only: bool },
    Error(u16, &'static str, &'static [(&'static str, &'static str)]),
}

/// What a (possibly partial) request head asks for; None while incomplete.
fn route(head: &[u8]) -> Option<Route> {
    if head.is_empty() {
        return None;
    }
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Partial) => None,
        Err(httparse::Error::TooManyHeaders) => {
            Some(Route::Error(431, "Request Header Fields Too Large", &[]))
        }
        Err(_) => Some(Route::Error(400, "Bad Request", &[])),
        Ok(httparse::Status::Complete(_)) => {
            let path = req.path.unwrap_or("");
            let path = path.split_once('?').map_or(path, |(p, _)| p);
            let method = req.method.unwrap_or("");
            Some(match (path, method) {
                ("/metrics", "GET") => Route::Metrics { head_only: false },
                ("/metrics", "HEAD") => Route::Metrics { head_only: true },
                ("/metrics", _) => Route::Error(405, "Method Not Allowed", &[("Allow", "GET, HEAD")]),
                _ => Route::Error(404, "Not Found", &[]),
            })
        }
    }
}

fn response(
    status: u16,
    reason: &str,
    content_type: &str,
    extra: &[(&str, &str)],
    body: &[u8],
    head_only: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 256);
    let _ = write!(
        out,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in extra {
        let _ = write!(out, "{k}: {v}\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(head: &[u8]) -> Option<u16> {
        route(head).map(|r| match r {
            Route::Metrics { .. } => 200,
            Route::Error(s, _, _) => s,
        })
    }

    #[test]
    fn only_get_and_head_on_metrics() {
        assert_eq!(status(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), Some(200));
        assert_eq!(status(b"GET /metrics?name[]=x HTTP/1.0\r\n\r\n"), Some(200));
        assert!(matches!(route(b"HEAD /metrics HTTP/1.1\r\n\r\n"), Some(Route::Metrics { head_only: true })));
        assert_eq!(status(b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n"), Some(405));
        assert_eq!(status(b"GET / HTTP/1.1\r\n\r\n"), Some(404));
        assert_eq!(status(b"GET /metricsx HTTP/1.1\r\n\r\n"), Some(404));
        assert_eq!(status(b"GET /metrics HTTP/1.1\r\nHo"), None);
        assert_eq!(status(b""), None);
        assert_eq!(status(b"\x16\x03\x01garbage\r\n\r\n"), Some(400));
        let many: String = (0..40).map(|i| format!("h{i}: v\r\n")).collect();
        assert_eq!(status(format!("GET /metrics HTTP/1.1\r\n{many}\r\n").as_bytes()), Some(431));
    }

    #[test]
    fn answers_close_and_head_has_no_body() {
        let r = response(405, "Method Not Allowed", "text/plain", &[("Allow", "GET, HEAD")], b"no\n", false);
        let text = String::from_utf8(r).unwrap();
        assert!(text.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"), "{text}");
        assert!(text.contains("\r\nContent-Length: 3\r\n") && text.contains("\r\nConnection: close\r\n"));
        assert!(text.ends_with("\r\nAllow: GET, HEAD\r\n\r\nno\n"), "{text}");
        let r = response(200, "OK", CONTENT_TYPE, &[], b"abc", true);
        assert!(
            String::from_utf8(r)
                .unwrap()
                .ends_with("Content-Length: 3\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n")
        );
    }

    #[test]
    fn a_port_in_use_is_refused_unless_a_successor_waits_for_it() {
        let first = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = first.local_addr().unwrap().as_socket().unwrap();
        let e = prepare(addr, false).err().unwrap();
        assert_eq!(e, format!("metrics_addr: {addr} is already in use"));
        assert!(matches!(prepare(addr, true), Ok(Listener::Later(a)) if a == addr));
        // Even a holder with SO_REUSEPORT (glommio's bind sets it) is seen.
        drop(first);
        let stranger = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        stranger.set_reuse_port(true).unwrap();
        stranger.bind(&SockAddr::from("127.0.0.1:0".parse::<SocketAddr>().unwrap())).unwrap();
        stranger.listen(1).unwrap();
        let taken = stranger.local_addr().unwrap().as_socket().unwrap();
        assert!(prepare(taken, false).is_err());
        match prepare("127.0.0.1:0".parse().unwrap(), false) {
            Ok(Listener::Bound(_, a)) => assert_ne!(a.port(), 0, "the real port, for the log line"),
            _ => panic!("port 0 binds"),
        }
    }
}
