//! `pounce healthcheck`: one GET against a running pounce, exit 0 on 2xx and
//! 1 otherwise, with one line on stderr saying why. It exists for Docker's
//! `HEALTHCHECK` and ECS health checks in images that have no curl
//! (distroless), and reads the same `POUNCE_*` variables as the server, so in
//! a container it needs no arguments: with `POUNCE_TLS_CERT` set, as in a
//! server's environment that serves HTTPS, it speaks HTTPS too. It does not
//! check the certificate (it checks health, on this host, not the
//! certificate: an expired one must not restart a healthy container).

use crate::config::parse_bool;
use crate::config::parse_seconds;
use crate::exit::ExitStatus;
use clap::{Arg, ArgMatches, Command};
use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// The `healthcheck` subcommand's arguments.
pub fn command() -> Command {
    Command::new("healthcheck")
        .about("GET the health endpoint of a running pounce: exit 0 on 2xx, 1 otherwise")
        .arg(
            Arg::new("host")
                .long("host")
                .env("POUNCE_HOST")
                .value_name("ADDR")
                .help("Server address; 0.0.0.0 and :: mean this host [default: 127.0.0.1]"),
        )
        .arg(Arg::new("port").long("port").env("POUNCE_PORT").value_name("PORT").help("[default: 8000]"))
        .arg(
            Arg::new("path")
                .long("path")
                .env("POUNCE_HEALTH_CHECK_PATH")
                .value_name("PATH")
                .help("Path to GET [default: /health]"),
        )
        .arg(
            Arg::new("tls")
                .long("tls")
                .value_name("BOOL")
                .num_args(0..=1)
                .require_equals(true)
                .default_missing_value("true")
                .help(
                    "Speak HTTPS, without checking the certificate [default: when POUNCE_TLS_CERT is set, \
                     as in the environment of a server that serves HTTPS]",
                ),
        )
        .arg(
            Arg::new("timeout")
                .long("timeout")
                .env("POUNCE_HEALTHCHECK_TIMEOUT")
                .value_name("SECONDS")
                .help("Give up after this long [default: 3]"),
        )
}

/// Parses `args` (starting with the subcommand name) and runs the check.
pub fn main_from<I: IntoIterator<Item = OsString>>(args: I) -> ExitStatus {
    match command().try_get_matches_from(args) {
        Ok(m) => run(&m),
        Err(e) => {
            let usage = e.use_stderr();
            let _ = e.print();
            if usage { ExitStatus::Usage } else { ExitStatus::Clean }
        }
    }
}

/// Runs the check described by `m`; prints one line to stderr.
pub fn run(m: &ArgMatches) -> ExitStatus {
    match check(m) {
        Ok(line) => {
            eprintln!("healthy: {line}");
            ExitStatus::Clean
        }
        Err(Failure::Usage(msg)) => {
            eprintln!("error: {msg}");
            ExitStatus::Usage
        }
        Err(Failure::Unhealthy(msg)) => {
            eprintln!("unhealthy: {msg}");
            ExitStatus::Fatal
        }
    }
}

enum Failure {
    Usage(String),
    Unhealthy(String),
}

fn check(m: &ArgMatches) -> Result<String, Failure> {
    let get = |k: &str| m.get_one::<String>(k).map(|s| s.trim().to_string());
    let host = get("host").unwrap_or_else(|| "127.0.0.1".into());
    let port: u16 = match get("port") {
        Some(p) => p
            .parse()
            .map_err(|_| Failure::Usage(format!("port must be an integer from 0 to 65535, got '{p}'")))?,
        None => 8000,
    };
    let path = get("path").unwrap_or_else(|| "/health".into());
    if !path.starts_with('/') || path.bytes().any(|b| b <= b' ') {
        return Err(Failure::Usage(format!("path must start with '/' and contain no spaces, got '{path}'")));
    }
    let timeout = match get("timeout") {
        Some(t) => parse_seconds("timeout", &t).map_err(|e| Failure::Usage(e.to_string()))?,
        None => Duration::from_secs(3),
    };
    if timeout.is_zero() {
        return Err(Failure::Usage("timeout must be positive, got 0".into()));
    }
    let tls = match get("tls") {
        Some(v) => parse_bool("tls", &v).map_err(|e| Failure::Usage(e.to_string()))?,
        None => std::env::var_os("POUNCE_TLS_CERT").is_some_and(|v| !v.is_empty()),
    };
    let addr = resolve(&host, port)
        .ok_or_else(|| Failure::Usage(format!("host must be an address, got '{host}'")))?;
    let deadline = Instant::now() + timeout;
    let url = format!("{}://{addr}{path}", if tls { "https" } else { "http" });
    let unhealthy = |what: String| Failure::Unhealthy(format!("{url}: {what}"));

    let tcp =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| unhealthy(format!("cannot connect ({e})")))?;
    let left = |d: Instant| d.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
    tcp.set_write_timeout(Some(left(deadline))).ok();
    let timeouts = tcp.try_clone().map_err(|e| unhealthy(format!("cannot connect ({e})")))?;
    let mut s: Box<dyn ReadWrite> = if tls {
        tcp.set_read_timeout(Some(left(deadline))).ok();
        Box::new(tls_client(addr, tcp).map_err(|e| unhealthy(format!("TLS: {e}")))?)
    } else {
        Box::new(tcp)
    };
    let host_header = match addr {
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
        a => a.to_string(),
    };
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: pounce-healthcheck\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).map_err(|e| unhealthy(format!("cannot send request ({e})")))?;
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    let line_end = loop {
        if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
            break i;
        }
        if Instant::now() >= deadline {
            return Err(unhealthy(format!("no response within {:.1}s", timeout.as_secs_f64())));
        }
        timeouts.set_read_timeout(Some(left(deadline))).ok();
        match s.read(&mut chunk) {
            Ok(0) => return Err(unhealthy("connection closed before a response".into())),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return Err(unhealthy(format!("no response within {:.1}s", timeout.as_secs_f64())));
            }
            Err(e) => return Err(unhealthy(format!("read failed ({e})"))),
        }
        if buf.len() > 8192 {
            return Err(unhealthy("status line too long".into()));
        }
    };
    let line = String::from_utf8_lossy(&buf[..line_end]).to_string();
    let code: u16 = line
        .strip_prefix("HTTP/1.")
        .and_then(|r| r.get(2..5))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| unhealthy(format!("not an HTTP response: {line:?}")))?;
    if (200..300).contains(&code) { Ok(format!("{url}: {line}")) } else { Err(unhealthy(line)) }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// A TLS client on `tcp`, handshake done, that accepts whatever certificate
/// the server presents (the signature over the handshake is still checked).
fn tls_client(
    addr: SocketAddr,
    mut tcp: TcpStream,
) -> Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>, String> {
    use rustls::pki_types::ServerName;
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = std::sync::Arc::new(AnyCertificate(provider.clone()));
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = ServerName::IpAddress(addr.ip().into());
    let mut conn =
        rustls::ClientConnection::new(std::sync::Arc::new(config), name).map_err(|e| e.to_string())?;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).map_err(|e| e.to_string())?;
    }
    Ok(rustls::StreamOwned::new(conn, tcp))
}

/// Trusts any certificate: the probe checks health, not the certificate.
#[derive(Debug)]
struct AnyCertificate(std::sync::Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `0.0.0.0`/`::` (what a server binds in a container) mean this host.
fn resolve(host: &str, port: u16) -> Option<SocketAddr> {
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    let ip = match bare.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        Ok(IpAddr::V6(v6)) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        Ok(ip) => ip,
        Err(_) => return (bare, port).to_socket_addrs().ok()?.next(),
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_means_loopback() {
        assert_eq!(resolve("0.0.0.0", 80).unwrap().to_string(), "127.0.0.1:80");
        assert_eq!(resolve("::", 80).unwrap().to_string(), "[::1]:80");
        assert_eq!(resolve("[::1]", 80).unwrap().to_string(), "[::1]:80");
        assert_eq!(resolve("localhost", 80).unwrap().port(), 80);
    }
}
