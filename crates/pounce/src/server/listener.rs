//! The listening sockets: one per worker, bound with socket2 and handed to
//! each executor as a raw fd.
//!
//! glommio's own `TcpListener::bind` always sets SO_REUSEPORT, so a second
//! pounce (or anything else run by the same user with SO_REUSEPORT) would
//! silently share the port and steal a share of the traffic. Instead the first
//! socket is bound *without* SO_REUSEPORT — which fails with EADDRINUSE if
//! anyone at all holds the port — and only then gets SO_REUSEPORT set, so our
//! other workers can join its group. The check and the claim are one bind(2):
//! there is no window for another process to slip in between.

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io;
use std::net::SocketAddr;

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

/// The address the group is bound to (the real port when 0 was asked for).
pub(crate) fn local_addr(s: &Socket) -> io::Result<SocketAddr> {
    s.local_addr()?.as_socket().ok_or_else(|| io::Error::other("not an inet socket"))
}

#[cfg(test)]
mod tests {
    use super::*;

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
