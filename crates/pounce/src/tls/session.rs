//! One connection's TLS, sans I/O: rustls's unbuffered server connection
//! driven over the connection's own buffers. Ciphertext goes in through
//! [`TlsSession::input`]; handshake replies, alerts and encrypted records
//! come out appended to a caller's `Vec`; decrypted bytes are copied straight
//! into the caller's read buffer. Nothing here touches a socket: the
//! connection's `Io` moves the bytes over the worker's ring, and the tests
//! below drive a session against an in-memory rustls client.
//!
//! Why the unbuffered API: the ciphertext buffer is ours, so it comes from
//! the worker's pool while bytes are in flight and goes back when the
//! connection is idle (an idle TLS connection then holds only rustls's small
//! state, no buffer), and records are decrypted in place in it rather than
//! copied into a buffer of rustls's own first. (rustls 0.23 still copies
//! each decrypted record into a `Vec` of its own, and each encrypted one
//! before it lands in ours: those two allocations per request are rustls's,
//! not avoidable from outside.)

use crate::server::pool::BufPool;
use crate::server::readbuf::ReadBuf;
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus};
use std::sync::Arc;

/// Largest ciphertext buffer: a full handshake message (rustls accepts up
/// to 64 KiB) plus one maximal record behind it.
const INPUT_CAP: usize = 0xffff + 16 * 1024 + 2048 + 5;
/// Bytes an encrypted record adds to its plaintext, at most (TLS 1.2
/// AES-GCM: 5 header + 8 explicit nonce + 16 tag; TLS 1.3: 5 + 1 + 16).
const RECORD_OVERHEAD: usize = 32;
/// Plaintext per record.
const RECORD_PLAIN: usize = 16 * 1024;

/// Room `plain` bytes need once encrypted.
pub(crate) fn sealed_len(plain: usize) -> usize {
    plain + (plain / RECORD_PLAIN + 1) * RECORD_OVERHEAD
}

/// Appends what `seal` writes to `out`: `guess` bytes of room first, more if
/// rustls says it needs them. On an error `out` is left as it was.
fn seal_into(
    out: &mut Vec<u8>,
    guess: usize,
    mut seal: impl FnMut(&mut [u8]) -> Result<usize, EncryptError>,
) -> Result<Option<Outcome>, rustls::Error> {
    let at = out.len();
    out.resize(at + guess, 0);
    loop {
        match seal(&mut out[at..]) {
            Ok(n) => {
                out.truncate(at + n);
                return Ok(Some(Outcome::Written));
            }
            Err(EncryptError::InsufficientSize(s)) => out.resize(at + s.required_size, 0),
            Err(e) => {
                out.truncate(at);
                return Err(rustls::Error::General(e.to_string()));
            }
        }
    }
}

/// What a [`TlsSession::read`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Read {
    /// Decrypted bytes copied into the caller's buffer (0 only when that
    /// buffer is empty).
    Data(usize),
    /// Everything received is processed: more ciphertext is needed (first
    /// send what was appended to `out`, if anything).
    NeedInput,
    /// The client sent `close_notify`: no more data will come.
    Closed,
}

enum Action<'a> {
    Read(&'a mut [u8]),
    Encrypt(&'a [u8]),
    CloseNotify,
}

enum Outcome {
    Read(Read),
    Written,
}

pub(crate) struct TlsSession {
    conn: UnbufferedServerConnection,
    /// Ciphertext received and not yet processed.
    input: ReadBuf,
    /// Decrypted bytes that did not fit the caller's buffer, from `taken`.
    plain: Vec<u8>,
    taken: usize,
    peer_closed: bool,
    sent_close: bool,
    /// rustls reported an error: the session is dead (its alert, if any,
    /// was appended to the caller's `out` then).
    failed: bool,
}

impl TlsSession {
    pub(crate) fn new(config: Arc<rustls::ServerConfig>) -> Result<TlsSession, rustls::Error> {
        Ok(TlsSession {
            conn: UnbufferedServerConnection::new(config)?,
            input: ReadBuf::new(INPUT_CAP),
            plain: Vec::new(),
            taken: 0,
            peer_closed: false,
            sent_close: false,
            failed: false,
        })
    }

    /// Free space for received ciphertext (taken from `pool` if none is
    /// held). Empty when the buffer is full: a handshake message or record
    /// larger than any rustls accepts.
    pub(crate) fn input(&mut self, pool: &BufPool) -> &mut [u8] {
        self.input.acquire(pool);
        self.input.spare()
    }

    /// Records that `n` bytes were written into [`input`](Self::input).
    pub(crate) fn received(&mut self, n: usize) {
        self.input.filled(n);
    }

    /// The first byte received, before anything is processed: tells a TLS
    /// client (a handshake record, 0x16) from plain HTTP or garbage.
    pub(crate) fn first_byte(&self) -> Option<u8> {
        self.input.data().first().copied()
    }

    /// The `legacy_version` of a ClientHello at the start of the input, if
    /// it is all there: 0x0303 from TLS 1.2 and 1.3 clients, lower from
    /// older ones.
    pub(crate) fn hello_version(&self) -> Option<u16> {
        match self.input.data() {
            // record header (5), handshake type 1 = ClientHello, length (3)
            [0x16, _, _, _, _, 0x01, _, _, _, hi, lo, ..] => Some(u16::from_be_bytes([*hi, *lo])),
            _ => None,
        }
    }

    /// Gives the input buffer back to the pool if it holds nothing.
    pub(crate) fn release(&mut self, pool: &BufPool) {
        self.input.release(pool);
    }

    /// Decrypted bytes are waiting to be read.
    pub(crate) fn has_plain(&self) -> bool {
        self.taken < self.plain.len()
    }

    /// Ciphertext is buffered that has not been processed yet.
    pub(crate) fn has_input(&self) -> bool {
        !self.input.is_empty()
    }

    /// `TLSv1_3`, `TLSv1_2` once negotiated.
    #[cfg(test)]
    pub(crate) fn version(&self) -> Option<rustls::ProtocolVersion> {
        self.conn.protocol_version()
    }

    /// Advances the handshake with what has been received; replies are
    /// appended to `out`. True once it is complete (the client's Finished
    /// was received). Application data that arrived with the Finished is
    /// kept for [`read`](Self::read).
    pub(crate) fn handshake(&mut self, out: &mut Vec<u8>) -> Result<bool, rustls::Error> {
        self.run(Action::Read(&mut []), out)?;
        Ok(!self.conn.is_handshaking())
    }

    /// Copies decrypted bytes into `dst`, processing received ciphertext as
    /// needed; anything rustls must send meanwhile (a key update, an alert
    /// on error) is appended to `out`.
    pub(crate) fn read(&mut self, dst: &mut [u8], out: &mut Vec<u8>) -> Result<Read, rustls::Error> {
        if self.has_plain() {
            let n = (self.plain.len() - self.taken).min(dst.len());
            dst[..n].copy_from_slice(&self.plain[self.taken..self.taken + n]);
            self.taken += n;
            if self.taken == self.plain.len() {
                // Rarely used: do not keep it.
                self.plain = Vec::new();
                self.taken = 0;
            }
            return Ok(Read::Data(n));
        }
        if self.peer_closed {
            return Ok(Read::Closed);
        }
        match self.run(Action::Read(dst), out)? {
            Outcome::Read(r) => Ok(r),
            Outcome::Written => unreachable!("a read writes nothing"),
        }
    }

    /// Encrypts `plain` into records appended to `out`.
    pub(crate) fn encrypt(&mut self, plain: &[u8], out: &mut Vec<u8>) -> Result<(), rustls::Error> {
        if plain.is_empty() {
            return Ok(());
        }
        match self.run(Action::Encrypt(plain), out)? {
            Outcome::Written => Ok(()),
            Outcome::Read(_) => Err(rustls::Error::HandshakeNotComplete),
        }
    }

    /// Appends a `close_notify` alert to `out`, once; false if there is
    /// nothing to close cleanly (no complete handshake, or an error).
    pub(crate) fn close_notify(&mut self, out: &mut Vec<u8>) -> bool {
        if self.sent_close || self.failed || self.conn.is_handshaking() {
            return false;
        }
        self.sent_close = true;
        matches!(self.run(Action::CloseNotify, out), Ok(Outcome::Written))
    }

    /// The one loop over rustls's states. Stops when `action` is done or
    /// nothing more can happen without input.
    fn run(&mut self, mut action: Action<'_>, out: &mut Vec<u8>) -> Result<Outcome, rustls::Error> {
        if self.failed {
            return Err(rustls::Error::General("the TLS session already failed".into()));
        }
        let mut filled = 0usize;
        loop {
            let TlsSession { conn, input, plain, peer_closed, .. } = self;
            let UnbufferedStatus { discard, state } = conn.process_tls_records(input.data_mut());
            let step: Result<Option<Outcome>, rustls::Error> = match state {
                Err(e) => Err(e),
                Ok(ConnectionState::ReadTraffic(mut records)) => {
                    while let Some(record) = records.next_record() {
                        let payload = record?.payload;
                        let dst: &mut [u8] = match &mut action {
                            Action::Read(dst) => dst,
                            _ => &mut [],
                        };
                        let n = payload.len().min(dst.len() - filled);
                        dst[filled..filled + n].copy_from_slice(&payload[..n]);
                        filled += n;
                        plain.extend_from_slice(&payload[n..]);
                    }
                    Ok(match &action {
                        Action::Read(dst) if filled > 0 || (!dst.is_empty() && !plain.is_empty()) => {
                            Some(Outcome::Read(Read::Data(filled)))
                        }
                        _ => None,
                    })
                }
                Ok(ConnectionState::ReadEarlyData(mut early)) => {
                    // Early data is not enabled (max_early_data_size is 0):
                    // nothing can arrive here; drop it if it does.
                    while early.next_record().is_some() {}
                    Ok(None)
                }
                Ok(ConnectionState::EncodeTlsData(mut encode)) => {
                    let at = out.len();
                    out.resize(at + 4096, 0);
                    loop {
                        match encode.encode(&mut out[at..]) {
                            Ok(n) => {
                                out.truncate(at + n);
                                break Ok(None);
                            }
                            Err(EncodeError::InsufficientSize(s)) => out.resize(at + s.required_size, 0),
                            Err(EncodeError::AlreadyEncoded) => {
                                out.truncate(at);
                                break Ok(None);
                            }
                        }
                    }
                }
                // Sending is the caller's, in order: what `out` holds goes
                // out before anything appended to it later.
                Ok(ConnectionState::TransmitTlsData(transmit)) => {
                    transmit.done();
                    Ok(None)
                }
                Ok(ConnectionState::PeerClosed) => {
                    *peer_closed = true;
                    Ok(match action {
                        Action::Read(_) if filled == 0 => Some(Outcome::Read(Read::Closed)),
                        _ => None,
                    })
                }
                Ok(ConnectionState::Closed) => {
                    *peer_closed = true;
                    Ok(Some(match action {
                        Action::Read(_) if filled > 0 => Outcome::Read(Read::Data(filled)),
                        Action::Read(_) => Outcome::Read(Read::Closed),
                        _ => Outcome::Written,
                    }))
                }
                Ok(ConnectionState::BlockedHandshake) => Ok(Some(Outcome::Read(Read::NeedInput))),
                Ok(ConnectionState::WriteTraffic(mut write)) => match &action {
                    Action::Read(_) if filled > 0 => Ok(Some(Outcome::Read(Read::Data(filled)))),
                    Action::Read(_) => Ok(Some(Outcome::Read(Read::NeedInput))),
                    Action::Encrypt(data) => {
                        seal_into(out, sealed_len(data.len()), |buf| write.encrypt(data, buf))
                    }
                    Action::CloseNotify => seal_into(out, 64, |buf| write.queue_close_notify(buf)),
                },
                Ok(other) => Err(rustls::Error::General(format!("unexpected TLS state {other:?}"))),
            };
            self.input.consume(discard);
            match step {
                Ok(None) => {}
                Ok(Some(outcome)) => return Ok(outcome),
                Err(e) => {
                    self.failed = true;
                    self.collect_alert(out);
                    return Err(e);
                }
            }
        }
    }

    /// After an error: appends the alert rustls queued, if any.
    fn collect_alert(&mut self, out: &mut Vec<u8>) {
        for _ in 0..4 {
            let UnbufferedStatus { discard, state } = self.conn.process_tls_records(self.input.data_mut());
            let more = match state {
                Ok(ConnectionState::EncodeTlsData(mut encode)) => {
                    let at = out.len();
                    out.resize(at + 256, 0);
                    match encode.encode(&mut out[at..]) {
                        Ok(n) => out.truncate(at + n),
                        Err(_) => out.truncate(at),
                    }
                    true
                }
                Ok(ConnectionState::TransmitTlsData(t)) => {
                    t.done();
                    true
                }
                _ => false,
            };
            self.input.consume(discard);
            if !more {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    use std::io::{Read as _, Write as _};

    // A throwaway CA and a leaf for `localhost` (ECDSA P-256), generated for
    // these tests with openssl; valid until 2126. Not a secret.
    const CA: &str = include_str!("testdata/ca.pem");
    const CHAIN: &str = include_str!("testdata/chain.pem");
    const KEY: &str = include_str!("testdata/key.pem");

    fn server_config() -> Arc<rustls::ServerConfig> {
        static CONFIG: std::sync::OnceLock<Arc<rustls::ServerConfig>> = std::sync::OnceLock::new();
        CONFIG
            .get_or_init(|| {
                let dir = std::env::temp_dir().join(format!("pounce-tls-session-{}", std::process::id()));
                std::fs::create_dir_all(&dir).unwrap();
                let (c, k) = (dir.join("chain.pem"), dir.join("key.pem"));
                std::fs::write(&c, CHAIN).unwrap();
                std::fs::write(&k, KEY).unwrap();
                let config = crate::tls::TlsConfig::load(&c, &k).unwrap().server;
                std::fs::remove_dir_all(&dir).unwrap();
                config
            })
            .clone()
    }

    fn client(
        versions: &[&'static rustls::SupportedProtocolVersion],
        alpn: &[&[u8]],
    ) -> rustls::ClientConnection {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_slice(CA.as_bytes()).unwrap()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        rustls::ClientConnection::new(Arc::new(cfg), ServerName::try_from("localhost").unwrap()).unwrap()
    }

    /// Moves the client's pending bytes into the session, `chunk` at a time.
    fn to_server(c: &mut rustls::ClientConnection, s: &mut TlsSession, pool: &BufPool, chunk: usize) {
        let mut wire = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut wire).unwrap();
        }
        for piece in wire.chunks(chunk.max(1)) {
            let room = s.input(pool);
            room[..piece.len()].copy_from_slice(piece);
            s.received(piece.len());
        }
    }

    fn to_client(out: &mut Vec<u8>, c: &mut rustls::ClientConnection) -> Result<(), rustls::Error> {
        to_client_reading(out, c, &mut Vec::new())
    }

    /// Like [`to_client`], collecting the plaintext as it is decrypted.
    fn to_client_reading(
        out: &mut Vec<u8>,
        c: &mut rustls::ClientConnection,
        plain: &mut Vec<u8>,
    ) -> Result<(), rustls::Error> {
        let mut r = &out[..];
        let mut result = Ok(());
        while !r.is_empty() && result.is_ok() {
            c.read_tls(&mut r).unwrap();
            result = c.process_new_packets().map(|_| ());
            let mut chunk = [0u8; 4096];
            while let Ok(n) = c.reader().read(&mut chunk) {
                if n == 0 {
                    break;
                }
                plain.extend_from_slice(&chunk[..n]);
            }
        }
        out.clear();
        result
    }

    fn handshake(c: &mut rustls::ClientConnection, s: &mut TlsSession, pool: &BufPool, chunk: usize) {
        let mut out = Vec::new();
        for _ in 0..10 {
            to_server(c, s, pool, chunk);
            let done = s.handshake(&mut out).unwrap();
            to_client(&mut out, c).unwrap();
            if done && !c.is_handshaking() {
                return;
            }
        }
        panic!("handshake did not complete");
    }

    #[test]
    fn requests_and_responses_over_both_versions() {
        let pool = BufPool::default();
        for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
            // A one-byte chunking makes every record and handshake message
            // arrive in pieces.
            for chunk in [1, 7, 100_000] {
                let mut s = TlsSession::new(server_config()).unwrap();
                let mut c = client(&[version], &[b"http/1.1"]);
                handshake(&mut c, &mut s, &pool, chunk);
                assert_eq!(s.version(), Some(version.version));
                assert_eq!(c.alpn_protocol(), Some(&b"http/1.1"[..]));

                // Two pipelined requests in one write, read through a small
                // buffer: the rest of a record waits in the session.
                c.writer().write_all(b"GET / HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n").unwrap();
                to_server(&mut c, &mut s, &pool, chunk);
                let mut got = Vec::new();
                let mut out = Vec::new();
                let mut small = [0u8; 5];
                loop {
                    match s.read(&mut small, &mut out).unwrap() {
                        Read::Data(n) => got.extend_from_slice(&small[..n]),
                        Read::NeedInput => break,
                        Read::Closed => panic!("closed"),
                    }
                }
                assert_eq!(got, b"GET / HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n");

                // A response larger than a record.
                let body = vec![b'x'; 40_000];
                s.encrypt(&body, &mut out).unwrap();
                assert!(out.len() <= sealed_len(body.len()));
                let mut back = Vec::new();
                to_client_reading(&mut out, &mut c, &mut back).unwrap();
                assert_eq!(back, body);

                // Our close_notify, then the client's.
                assert!(s.close_notify(&mut out));
                assert!(!s.close_notify(&mut out), "once");
                to_client(&mut out, &mut c).unwrap();
                assert!(matches!(c.reader().read(&mut [0u8; 1]), Ok(0)), "clean EOF for the client");
                c.send_close_notify();
                to_server(&mut c, &mut s, &pool, chunk);
                assert_eq!(s.read(&mut small, &mut out).unwrap(), Read::Closed);
            }
        }
    }

    #[test]
    fn h2_only_clients_are_refused_with_an_alert() {
        let pool = BufPool::default();
        let mut s = TlsSession::new(server_config()).unwrap();
        let mut c = client(&[&rustls::version::TLS13], &[b"h2"]);
        to_server(&mut c, &mut s, &pool, 1000);
        let mut out = Vec::new();
        let e = s.handshake(&mut out).unwrap_err();
        assert_eq!(crate::tls::HandshakeFailure::of(&e), crate::tls::HandshakeFailure::NoApplicationProtocol);
        assert!(!out.is_empty(), "the alert is sent");
        let client_err = to_client(&mut out, &mut c).unwrap_err();
        assert!(format!("{client_err:?}").contains("NoApplicationProtocol"), "{client_err:?}");
        assert!(s.handshake(&mut out).is_err(), "the session stays failed");
    }

    #[test]
    fn no_alpn_is_served_as_http_1_1() {
        let pool = BufPool::default();
        let mut s = TlsSession::new(server_config()).unwrap();
        let mut c = client(&[&rustls::version::TLS13], &[]);
        handshake(&mut c, &mut s, &pool, 1000);
        assert_eq!(c.alpn_protocol(), None);
    }

    #[test]
    fn the_hello_version_is_read_from_an_unprocessed_client_hello() {
        let pool = BufPool::default();
        let mut s = TlsSession::new(server_config()).unwrap();
        assert_eq!(s.hello_version(), None);
        // record header, ClientHello (1), length, legacy_version 0x0302 (TLS 1.1)
        let hello = [0x16, 0x03, 0x01, 0x00, 0x30, 0x01, 0x00, 0x00, 0x2c, 0x03, 0x02];
        s.input(&pool)[..5].copy_from_slice(&hello[..5]);
        s.received(5);
        assert_eq!(s.hello_version(), None, "not all there yet");
        s.input(&pool)[..6].copy_from_slice(&hello[5..]);
        s.received(6);
        assert_eq!(s.hello_version(), Some(0x0302));
        let mut c = client(&[&rustls::version::TLS13], &[b"http/1.1"]);
        let mut s = TlsSession::new(server_config()).unwrap();
        to_server(&mut c, &mut s, &pool, 100_000);
        assert_eq!(s.hello_version(), Some(0x0303), "what TLS 1.3 clients send");
    }

    #[test]
    fn garbage_is_an_error_and_the_input_buffer_goes_back_when_empty() {
        let pool = BufPool::default();
        let mut s = TlsSession::new(server_config()).unwrap();
        let junk = [0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5];
        s.input(&pool)[..junk.len()].copy_from_slice(&junk);
        s.received(junk.len());
        assert_eq!(s.first_byte(), Some(0x16));
        let mut out = Vec::new();
        let e = s.handshake(&mut out).unwrap_err();
        assert_eq!(crate::tls::HandshakeFailure::of(&e), crate::tls::HandshakeFailure::BadMessage, "{e:?}");

        let mut fresh = TlsSession::new(server_config()).unwrap();
        let _ = fresh.input(&pool);
        fresh.release(&pool);
        assert!(!fresh.has_input());
    }
}
