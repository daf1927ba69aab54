//! Server-side CPU (this thread's CPU clock) per full TLS handshake, for TLS 1.3 and 1.2, with
//! the provider chosen by feature. The certificate is an ECDSA P-256 leaf and its CA (made with
//! openssl in a temporary directory); the client offers X25519 only (as OpenSSL 3.0 clients
//! do) and never resumes. Usage: tls-provider [HANDSHAKES] (default 1000).

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    #[cfg(feature = "aws")]
    return Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    #[cfg(all(feature = "ring", not(feature = "aws")))]
    return Arc::new(rustls::crypto::ring::default_provider());
}

fn thread_cpu() -> Duration {
    let mut t = libc_timespec { s: 0, ns: 0 };
    // SAFETY: clock_gettime(CLOCK_THREAD_CPUTIME_ID) fills the struct.
    unsafe { clock_gettime(3, &mut t) };
    Duration::new(t.s as u64, t.ns as u32)
}
#[repr(C)]
struct libc_timespec {
    s: i64,
    ns: i64,
}
extern "C" {
    fn clock_gettime(clock: i32, t: *mut libc_timespec) -> i32;
}

fn make_certs(dir: &std::path::Path) {
    let sh = format!(
        "cd {} && openssl ecparam -name prime256v1 -genkey -noout -out ca.key && \
         openssl req -new -x509 -key ca.key -out ca.pem -days 2 -subj /CN=ca && \
         openssl ecparam -name prime256v1 -genkey -noout -out leaf.key && \
         openssl req -new -key leaf.key -out leaf.csr -subj /CN=localhost && \
         printf 'subjectAltName=DNS:localhost\\nbasicConstraints=CA:FALSE\\n' > ext.cnf && \
         openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out leaf.pem -days 2 -extfile ext.cnf && \
         cat leaf.pem ca.pem > chain.pem && openssl pkcs8 -topk8 -nocrypt -in leaf.key -out key.pem",
        dir.display()
    );
    let ok = Command::new("sh").arg("-c").arg(sh).output().expect("sh").status.success();
    assert!(ok, "openssl failed");
}

fn main() {
    let n: usize = std::env::args().nth(1).map(|s| s.parse().expect("a count")).unwrap_or(1000);
    let dir = std::env::temp_dir().join(format!("tls-provider-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    make_certs(&dir);
    let chain: Vec<CertificateDer> =
        CertificateDer::pem_file_iter(dir.join("chain.pem")).unwrap().map(|c| c.unwrap()).collect();
    let key = PrivateKeyDer::from_pem_file(dir.join("key.pem")).unwrap();
    let p = provider();
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let server = Arc::new(
            ServerConfig::builder_with_provider(p.clone())
                .with_protocol_versions(&[version])
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(chain.clone(), key.clone_key())
                .unwrap(),
        );
        let mut roots = RootCertStore::empty();
        roots.add(chain[1].clone()).unwrap();
        let mut x25519_only = (*p).clone();
        x25519_only.kx_groups.retain(|g| g.name() == rustls::NamedGroup::X25519);
        let mut client = ClientConfig::builder_with_provider(Arc::new(x25519_only))
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        client.resumption = rustls::client::Resumption::disabled();
        let client = Arc::new(client);
        let mut server_cpu = Duration::ZERO;
        let wall = Instant::now();
        let mut wire = Vec::with_capacity(16384);
        for _ in 0..n {
            let mut c =
                ClientConnection::new(client.clone(), ServerName::try_from("localhost").unwrap()).unwrap();
            let t = thread_cpu();
            let mut s = ServerConnection::new(server.clone()).unwrap();
            server_cpu += thread_cpu() - t;
            loop {
                wire.clear();
                while c.wants_write() {
                    c.write_tls(&mut wire).unwrap();
                }
                let t = thread_cpu();
                let mut r = &wire[..];
                while !r.is_empty() {
                    s.read_tls(&mut r).unwrap();
                }
                s.process_new_packets().unwrap();
                wire.clear();
                while s.wants_write() {
                    s.write_tls(&mut wire).unwrap();
                }
                server_cpu += thread_cpu() - t;
                let mut r = &wire[..];
                while !r.is_empty() {
                    c.read_tls(&mut r).unwrap();
                    c.process_new_packets().unwrap();
                }
                if !c.is_handshaking() && !s.is_handshaking() && !c.wants_write() {
                    break;
                }
            }
        }
        println!(
            "{:?}: {n} full handshakes, server side {:.1} µs CPU each (client and server together {:.1} µs wall)",
            version.version,
            server_cpu.as_secs_f64() * 1e6 / n as f64,
            wall.elapsed().as_secs_f64() * 1e6 / n as f64
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
