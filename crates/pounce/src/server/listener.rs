//! The listening sockets: one per worker, bound with socket2 and handed to
//! each executor as a raw fd; or the sockets this process inherited
//! (systemd socket activation, a hot upgrade), shared out among the workers.
//!
//! glommio's own `TcpListener::bind` always sets SO_REUSEPORT, so a second
//! pounce (or anything else run by the same user with SO_REUSEPORT) would
//! silently share the port and steal a share of the traffic. Instead the first
//! socket is bound *without* SO_REUSEPORT — which fails with EADDRINUSE if
//! anyone at all holds the port — and only then gets SO_REUSEPORT set, so our
//! other workers can join its group. The check and the claim are one bind(2):
//! there is no window for another process to slip in between.

use crate::handover::Origin;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Every listening socket of this process and where they came from. The
/// coordinator keeps these (to pass them to a successor); each worker gets
/// duplicates of its share ([`Listeners::shares`]), so it can close its
/// own without touching anyone else's.
pub(crate) struct Listeners {
    pub sockets: Vec<Socket>,
    /// Names to pass on (`LISTEN_FDNAMES`), one per socket.
    pub names: Vec<String>,
    pub origin: Origin,
}

impl Listeners {
    pub(crate) fn bound(sockets: Vec<Socket>) -> Listeners {
        let names = vec![String::new(); sockets.len()];
        Listeners { sockets, names, origin: Origin::Bound }
    }

    /// The distinct addresses listened on, in socket order.
    pub(crate) fn addrs(&self) -> Vec<SocketAddr> {
        let mut all: Vec<SocketAddr> = Vec::new();
        for a in self.sockets.iter().filter_map(|s| local_addr(s).ok()) {
            if !all.contains(&a) {
                all.push(a);
            }
        }
        all
    }

    /// Each worker's share: duplicates of the sockets worker `w` (0-based)
    /// of `workers` accepts on, with a count of the workers sharing each.
    pub(crate) fn shares(&self, workers: usize) -> io::Result<Vec<Vec<WorkerListener>>> {
        let users: Vec<Arc<AtomicUsize>> =
            self.sockets.iter().map(|_| Arc::new(AtomicUsize::new(0))).collect();
        let mut all = Vec::with_capacity(workers);
        for w in 0..workers {
            let mut mine = Vec::new();
            for i in share(self.sockets.len(), workers, w) {
                users[i].fetch_add(1, Ordering::Relaxed);
                mine.push(WorkerListener { socket: self.sockets[i].try_clone()?, users: users[i].clone() });
            }
            all.push(mine);
        }
        Ok(all)
    }
}

/// A worker's own descriptor of a listening socket, which other workers may
/// share (more workers than sockets).
pub(crate) struct WorkerListener {
    pub socket: Socket,
    /// Workers that still accept on this socket.
    users: Arc<AtomicUsize>,
}

impl WorkerListener {
    /// This worker is done with the socket; true if it was the last one
    /// accepting on it, and so the one to close it: shutting a socket down
    /// under workers still serving it would stop them too.
    pub(crate) fn leave(&self) -> bool {
        self.users.fetch_sub(1, Ordering::AcqRel) == 1
    }
}

/// Which of `sockets` sockets worker `w` of `workers` accepts on, so that
/// every socket has at least one worker and every worker at least one
/// socket. One each when the counts match (bound sockets always do: one per
/// worker, so each core keeps its own accept queue); with more sockets than
/// workers (a successor running fewer workers) each worker takes every
/// `workers`-th socket; with fewer (systemd usually passes one), workers share
/// them round-robin: io_uring's accept waits exclusively, so a connection
/// wakes one worker, not all.
pub(crate) fn share(sockets: usize, workers: usize, w: usize) -> Vec<usize> {
    if sockets == 0 || workers == 0 {
        return Vec::new();
    }
    if sockets >= workers { (w..sockets).step_by(workers).collect() } else { vec![w % sockets] }
}

/// Why the listeners could not be created.
#[derive(Debug)]
pub(crate) enum BindError {
    InUse(SocketAddr),
    Other(SocketAddr, io::Error),
}

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BindError::InUse(a) => write!(f, "{a} is already in use"),
            BindError::Other(a, e) if e.kind() == io::ErrorKind::PermissionDenied => write!(
                f,
                "cannot bind {a}: permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
            ),
            BindError::Other(a, e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => {
                write!(f, "cannot bind {a}: no local interface has that address")
            }
            BindError::Other(a, e) => write!(f, "cannot bind {a}: {e}"),
        }
    }
}

/// Creates `n` listening sockets on `addr` sharing one SO_REUSEPORT group.
/// With port 0 the kernel picks the port for the first and the others join it.
pub(crate) fn bind_group(addr: SocketAddr, n: usize, backlog: u32) -> Result<Vec<Socket>, BindError> {
    let err = |a: SocketAddr, e: io::Error| {
        if e.kind() == io::ErrorKind::AddrInUse { BindError::InUse(a) } else { BindError::Other(a, e) }
    };
    let first = new_socket(addr).map_err(|e| err(addr, e))?;
    first.bind(&SockAddr::from(addr)).map_err(|e| err(addr, e))?;
    first.set_reuse_port(true).map_err(|e| err(addr, e))?;
    let bound = first
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .ok_or_else(|| BindError::Other(addr, io::Error::other("bound socket has no address")))?;
    let backlog = backlog.min(i32::MAX as u32) as i32;
    first.listen(backlog).map_err(|e| err(bound, e))?;
    let mut all = vec![first];
    for _ in 1..n {
        let s = new_socket(bound).map_err(|e| err(bound, e))?;
        s.set_reuse_port(true).map_err(|e| err(bound, e))?;
        s.bind(&SockAddr::from(bound)).map_err(|e| err(bound, e))?;
        s.listen(backlog).map_err(|e| err(bound, e))?;
        all.push(s);
    }
    Ok(all)
}

fn new_socket(addr: SocketAddr) -> io::Result<Socket> {
    let domain = if addr.is_ipv6() { Domain::IPV6 } else { Domain::IPV4 };
    let s = Socket::new(domain, Type::STREAM.cloexec(), Some(Protocol::TCP))?;
    // Lets a restarted pounce bind while old connections sit in TIME_WAIT; it
    // never allows two listeners (the kernel refuses that without REUSEPORT).
    s.set_reuse_address(true)?;
    // Left blocking: glommio's accept toggles O_NONBLOCK itself for its first
    // try and relies on a blocking socket for its io_uring accept.
    Ok(s)
}

/// Whether a TCP handshake to local `port` is under way: a connection
/// request answered with a SYN-ACK whose final ACK has not arrived (state
/// SYN_RECV in `/proc/net/tcp` and `tcp6`). Closing a listener now would drop
/// it, and its client, which considers itself connected, would be reset.
pub(crate) fn handshakes_pending(port: u16) -> bool {
    let want = format!(":{port:04X} ");
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|path| {
        std::fs::read_to_string(path).is_ok_and(|table| {
            table.lines().skip(1).any(|line| {
                let mut f = line.split_whitespace().skip(1);
                let (Some(local), Some(_remote), Some(state)) = (f.next(), f.next(), f.next()) else {
                    return false;
                };
                state == "03" && format!("{local} ").ends_with(&want)
            })
        })
    })
}

/// The address the group is bound to (the real port when 0 was asked for).
pub(crate) fn local_addr(s: &Socket) -> io::Result<SocketAddr> {
    s.local_addr()?.as_socket().ok_or_else(|| io::Error::other("not an inet socket"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_handshake_is_pending_on_an_idle_listener() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        // Established connections are not handshakes under way.
        let _c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        assert!(!handshakes_pending(port));
    }

    #[test]
    fn every_socket_is_served_and_every_worker_serves() {
        assert_eq!(share(2, 2, 0), [0]);
        assert_eq!(share(2, 2, 1), [1]);
        assert_eq!(share(4, 2, 0), [0, 2]);
        assert_eq!(share(4, 2, 1), [1, 3]);
        assert_eq!(share(5, 2, 0), [0, 2, 4]);
        assert_eq!(share(1, 3, 2), [0]);
        assert_eq!(share(2, 3, 2), [0]);
        for sockets in 1..6 {
            for workers in 1..6 {
                let mut served = vec![0; sockets];
                for w in 0..workers {
                    let mine = share(sockets, workers, w);
                    assert!(!mine.is_empty(), "{sockets} sockets, {workers} workers: worker {w} idle");
                    for i in mine {
                        served[i] += 1;
                    }
                }
                assert!(served.iter().all(|&n| n > 0), "{sockets}/{workers}: {served:?}");
            }
        }
    }

    #[test]
    fn port_zero_group_shares_one_port() {
        let group = bind_group("127.0.0.1:0".parse().unwrap(), 3, 16).unwrap();
        let ports: Vec<u16> = group.iter().map(|s| local_addr(s).unwrap().port()).collect();
        assert_ne!(ports[0], 0);
        assert!(ports.iter().all(|&p| p == ports[0]));
    }

    #[test]
    fn a_second_group_is_refused_even_with_reuseport() {
        let first = bind_group("127.0.0.1:0".parse().unwrap(), 2, 16).unwrap();
        let addr = local_addr(&first[0]).unwrap();
        match bind_group(addr, 2, 16) {
            Err(BindError::InUse(a)) => assert_eq!(a, addr),
            other => panic!("expected InUse, got {other:?}"),
        }
        // A stranger that sets SO_REUSEPORT first (glommio's bind does) would
        // join an ordinary reuseport group; ours still refuses it the other
        // way round: we cannot start on a port it holds.
        let stranger = new_socket("127.0.0.1:0".parse().unwrap()).unwrap();
        stranger.set_reuse_port(true).unwrap();
        stranger.bind(&SockAddr::from("127.0.0.1:0".parse::<SocketAddr>().unwrap())).unwrap();
        stranger.listen(8).unwrap();
        let taken = local_addr(&stranger).unwrap();
        assert!(matches!(bind_group(taken, 1, 16), Err(BindError::InUse(_))));
        assert_eq!(BindError::InUse(taken).to_string(), format!("{taken} is already in use"));
    }
}
