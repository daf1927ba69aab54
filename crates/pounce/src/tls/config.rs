//! Loading `--tls-cert` and `--tls-key` into the one rustls configuration
//! every worker shares, and every check that can fail on them: a file that
//! cannot be read, holds no PEM certificate or key, a key rustls cannot use
//! or one that does not match the certificate. Each is one line naming the
//! option, for exit code 2 before anything binds.
//!
//! What is fixed here, and why:
//! - TLS 1.3 and 1.2 only (rustls speaks nothing older);
//! - ALPN `http/1.1` only: a client that offers ALPN without it (an
//!   `h2`-only client) is refused with a `no_application_protocol` alert
//!   rather than answered in a protocol it did not ask for; a client that
//!   offers no ALPN at all is served;
//! - session resumption by stateless tickets (TLS 1.3 and 1.2), their key
//!   made at start and rotated by rustls, shared by the workers: a client
//!   resumes on whichever worker its next connection lands. No server-side
//!   session cache, so no lock shared by the workers on the handshake path
//!   other than the ticket key's. As with nginx's default, a restart (a hot
//!   upgrade included) makes a new ticket key: clients then do one full
//!   handshake again;
//! - the aws-lc-rs provider (bench/NOTES.md §12 has the measurements).

use super::validity::{Standing, Validity, format_time};
use crate::config::ConfigError;
use crate::time::unix_now;
use rustls::crypto::aws_lc_rs;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::NoServerSessionStorage;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The only application protocol spoken over TLS.
pub(crate) const ALPN_HTTP11: &[u8] = b"http/1.1";

/// `--tls-cert` and `--tls-key`, loaded and checked.
#[derive(Clone)]
pub struct TlsConfig {
    cert: PathBuf,
    key: PathBuf,
    pub(crate) server: Arc<rustls::ServerConfig>,
    /// The leaf certificate's validity, when it could be read.
    pub(crate) validity: Option<Validity>,
    /// Certificates in the chain (the leaf first).
    pub(crate) chain_len: usize,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig").field("cert", &self.cert).field("key", &self.key).finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// Reads and checks both files and builds the server configuration.
    pub(crate) fn load(cert: &Path, key: &Path) -> Result<TlsConfig, ConfigError> {
        let chain = read_chain(cert)?;
        let key_der = read_key(key)?;
        let validity = Validity::of(chain[0].as_ref());
        let chain_len = chain.len();
        let provider = Arc::new(aws_lc_rs::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| ConfigError::new("tls_cert", format!("cannot set up TLS: {e}")))?
            .with_no_client_auth();
        let mut server = builder.with_single_cert(chain, key_der).map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => ConfigError::new(
                "tls_key",
                format!(
                    "does not match the certificate: {} is not the key of the first certificate in {}",
                    key.display(),
                    cert.display()
                ),
            ),
            rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
                ConfigError::new(
                    "tls_cert",
                    format!("holds an unusable certificate ({e}): {}", cert.display()),
                )
            }
            other => ConfigError::new(
                "tls_key",
                format!("is not a private key pounce can use ({other}): {}", key.display()),
            ),
        })?;
        server.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
        server.session_storage = Arc::new(NoServerSessionStorage {});
        server.ticketer = aws_lc_rs::Ticketer::new()
            .map_err(|e| ConfigError::new("tls_cert", format!("cannot set up session tickets: {e}")))?;
        let server = Arc::new(server);
        // What every connection will do: fails only on a configuration
        // rustls cannot serve with, so that it never fails there.
        rustls::server::UnbufferedServerConnection::new(server.clone())
            .map_err(|e| ConfigError::new("tls_cert", format!("cannot set up TLS: {e}")))?;
        Ok(TlsConfig { cert: cert.to_path_buf(), key: key.to_path_buf(), server, validity, chain_len })
    }

    /// The start-up lines: what is served, and one warning if the
    /// certificate has expired or is not valid yet (served all the same).
    pub(crate) fn log_at_start(&self) {
        let cert = self.cert.display();
        let until = match self.validity {
            Some(v) => format!(", valid until {}", format_time(v.not_after)),
            None => String::new(),
        };
        log::info!(
            "TLS: serving {cert} ({} certificate(s){until}) with TLS 1.3 and 1.2, ALPN http/1.1",
            self.chain_len
        );
        let Some(v) = self.validity else { return };
        match v.standing(unix_now()) {
            Standing::Valid => {}
            Standing::Expired { since_days } => log::warn!(
                "TLS: the certificate in {cert} (tls_cert) expired on {} ({since_days} day(s) ago); \
                 serving it anyway, but clients will refuse it until it is renewed",
                format_time(v.not_after)
            ),
            Standing::NotYetValid => log::warn!(
                "TLS: the certificate in {cert} (tls_cert) is not valid before {}; \
                 serving it anyway, but clients will refuse it until then (check the clock)",
                format_time(v.not_before)
            ),
        }
    }

    /// The certificate chain file (`--tls-cert`).
    pub fn cert_path(&self) -> &Path {
        &self.cert
    }

    /// The private key file (`--tls-key`).
    pub fn key_path(&self) -> &Path {
        &self.key
    }
}

fn read(field: &'static str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    if path.is_dir() {
        return Err(ConfigError::new(field, format!("must be a file, got the directory {}", path.display())));
    }
    std::fs::read(path)
        .map_err(|e| ConfigError::new(field, format!("cannot be read: {}: {e}", path.display())))
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let pem_bytes = read("tls_cert", path)?;
    let chain = CertificateDer::pem_slice_iter(&pem_bytes)
        .collect::<Result<Vec<_>, pem::Error>>()
        .map_err(|e| ConfigError::new("tls_cert", format!("is not valid PEM ({e}): {}", path.display())))?;
    if chain.is_empty() {
        return Err(ConfigError::new(
            "tls_cert",
            format!("holds no PEM certificate (-----BEGIN CERTIFICATE-----): {}", path.display()),
        ));
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, ConfigError> {
    let pem_bytes = read("tls_key", path)?;
    PrivateKeyDer::from_pem_slice(&pem_bytes).map_err(|e| match e {
        pem::Error::NoItemsFound => ConfigError::new(
            "tls_key",
            format!("holds no PEM private key (PKCS#8, PKCS#1 or SEC1): {}", path.display()),
        ),
        e => ConfigError::new("tls_key", format!("is not valid PEM ({e}): {}", path.display())),
    })
}
