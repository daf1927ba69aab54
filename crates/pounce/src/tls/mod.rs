//! TLS termination with rustls, as a transport layer under the HTTP/1.1
//! connection loop: the loop keeps reading and writing plain bytes, and the
//! connection's `Io` (server/io) runs them through a [`TlsSession`] on the
//! way to and from the worker's io_uring.
//!
//! What lives where:
//! - [`config`]: `--tls-cert`/`--tls-key` loaded and checked (exit 2 with one
//!   line on a bad file or a mismatched key), and the one rustls
//!   configuration every worker shares;
//! - [`validity`]: the certificate's dates, for the start-up warning about
//!   an expired one;
//! - [`session`]: one connection's handshake and record layer, sans I/O, on
//!   the connection's own buffers;
//! - [`failure`]: why a handshake failed, as a closed set of reasons shaped
//!   for per-worker counters.
//!
//! The I/O side (the handshake bounded by header_timeout, the `400` for
//! plain HTTP, file bodies read and encrypted in chunks instead of
//! `sendfile(2)`, `close_notify` before the FIN) is server/io/tls.rs.

pub(crate) mod config;
pub(crate) mod failure;
pub(crate) mod session;
pub(crate) mod validity;

pub use config::TlsConfig;
pub(crate) use failure::HandshakeFailure;
