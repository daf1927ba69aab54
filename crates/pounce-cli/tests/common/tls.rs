//! TLS for the tests: certificates made at test time with rcgen (a CA and
//! ECDSA P-256 leaves it signs for `localhost` and 127.0.0.1, an expired
//! one, a key that matches nothing), a rustls client that trusts the CA, and
//! the Python `ssl` client script beside the tests.

use super::load::Connector;
use super::{Client, Wire};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The Python client (`tls_client.py`): one GET, one JSON line out.
pub const PY_CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tls_client.py");

/// A CA in a directory of its own, removed on drop.
pub struct Pki {
    pub dir: PathBuf,
    /// The CA certificate (PEM), what clients trust.
    pub ca: PathBuf,
    ca_params: CertificateParams,
    ca_key: KeyPair,
}

/// A certificate chain and key on disk.
pub struct Leaf {
    /// Leaf then CA, PEM: what `--tls-cert` takes.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The leaf's DER, to recognise it on the wire.
    pub der: Vec<u8>,
}

impl Pki {
    pub fn new(tag: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("pounce-tls-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, format!("pounce test CA {tag}"));
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, ca_cert.pem()).unwrap();
        Pki { dir, ca, ca_params, ca_key }
    }

    /// A leaf for `localhost` and 127.0.0.1 named `name` (files `name.crt`,
    /// `name.key`), valid now, or expired in 2001 with `expired`.
    pub fn leaf(&self, name: &str, expired: bool) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        p.subject_alt_names.push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        p.distinguished_name.push(DnType::CommonName, name);
        if expired {
            p.not_before = rcgen::date_time_ymd(2000, 1, 1);
            p.not_after = rcgen::date_time_ymd(2001, 1, 1);
        }
        let issuer = Issuer::from_params(&self.ca_params, &self.ca_key);
        let cert = p.signed_by(&key, &issuer).unwrap();
        let ca_pem = std::fs::read_to_string(&self.ca).unwrap();
        let leaf = Leaf {
            cert: self.dir.join(format!("{name}.crt")),
            key: self.dir.join(format!("{name}.key")),
            der: cert.der().to_vec(),
        };
        std::fs::write(&leaf.cert, format!("{}{ca_pem}", cert.pem())).unwrap();
        std::fs::write(&leaf.key, key.serialize_pem()).unwrap();
        leaf
    }

    /// A rustls client configuration trusting this CA, offering `alpn`.
    pub fn client_config(&self, alpn: &[&str]) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(&self.ca).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        Arc::new(cfg)
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Copies `leaf` over the files at `cert` and `key`, each by an atomic
/// rename (as certbot's and cert-manager's updates are).
pub fn install(leaf: &Leaf, cert: &Path, key: &Path) {
    for (from, to) in [(&leaf.cert, cert), (&leaf.key, key)] {
        let tmp = to.with_extension("new");
        std::fs::copy(from, &tmp).unwrap();
        std::fs::rename(&tmp, to).unwrap();
    }
}

pub type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

impl Wire for TlsStream {
    fn tcp(&self) -> &TcpStream {
        &self.sock
    }
}

/// A TLS connection to `addr` with the handshake done (for `localhost`).
pub fn connect(addr: SocketAddr, config: &Arc<rustls::ClientConfig>) -> std::io::Result<Client<TlsStream>> {
    let mut sock = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    sock.set_read_timeout(Some(Duration::from_secs(15)))?;
    let name = ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(config.clone(), name).map_err(std::io::Error::other)?;
    while conn.is_handshaking() {
        conn.complete_io(&mut sock)?;
    }
    Ok(Client::over(rustls::StreamOwned::new(conn, sock)))
}

/// The server's certificate (DER) on this connection.
pub fn peer_leaf(c: &Client<TlsStream>) -> Vec<u8> {
    c.stream.conn.peer_certificates().and_then(|certs| certs.first()).map(|c| c.to_vec()).unwrap_or_default()
}

/// The load clients of [`super::load`], over TLS.
pub fn connector(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> Connector {
    Arc::new(move || {
        let c = connect(addr, &config)?;
        let Client { stream, .. } = c;
        Ok(Client::over(Box::new(stream) as Box<dyn Wire + Send>))
    })
}

/// What the Python client reported.
pub struct PyResult(pub serde_json::Value);

impl PyResult {
    pub fn ok(&self) -> bool {
        self.0["ok"] == true
    }
    pub fn str(&self, k: &str) -> &str {
        self.0[k].as_str().unwrap_or("")
    }
}

/// Runs the Python `ssl` client: `GET path` on a fresh connection.
pub fn python_get(addr: SocketAddr, ca: &Path, args: &[&str]) -> PyResult {
    let out = std::process::Command::new("python3")
        .arg(PY_CLIENT)
        .args(["--port", &addr.port().to_string(), "--ca"])
        .arg(ca)
        .args(args)
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("{e}: {text} {}", String::from_utf8_lossy(&out.stderr)));
    PyResult(v)
}
