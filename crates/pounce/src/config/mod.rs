//! Server configuration: one validated value, [`ServerConfig`], that every
//! other layer reads and none mutates.
//!
//! The rules live here, in [`ServerConfigBuilder::build`], and nowhere else:
//! the CLI ([`cli`]) only turns strings into typed values and then goes through
//! the same builder, so a library user constructing a config in Rust and an
//! operator passing flags or environment variables get the same checks and the
//! same one-line errors (`shutdown_timeout must be positive, got 0`).

pub mod cli;
mod cpus;
mod parse;

pub use cpus::available_cpus;
pub(crate) use parse::parse_bool;
pub use parse::{parse_seconds, parse_size};

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::tls::TlsConfig;

/// Durations above this are refused: a year is longer than any sane timeout
/// and keeps `Instant` arithmetic far from overflow.
pub const MAX_DURATION_SECS: f64 = 31_536_000.0;

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// `[YYYY-MM-DD HH:MM:SS] message`
    #[default]
    Text,
    /// One JSON object per line: `{"ts":..,"level":..,"msg":..}`
    Json,
}

/// The Linux scheduling policy of the worker threads.
///
/// A worker is a thread pinned to its core that serves every connection of
/// that core in batches. Under `SCHED_BATCH` its wake-up does not preempt
/// whatever else is running on the core (the scheduler lets that task finish
/// its slice or block, then runs the worker), so a worker woken by one
/// request does not interrupt the task still producing the next ones: fewer
/// context switches, bigger batches. Measured with the load generator on the
/// same two cores (bench/NOTES.md §9): 1.2–1.8× the requests per second at
/// 0.6–0.8× the CPU per request and a lower p99; next to CPU hogs the same
/// latency at less CPU. On cores the workers have to themselves there is no
/// other task to preempt, so it should change nothing there (not measured:
/// the project's machines have no spare cores).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SchedPolicy {
    /// Workers running under `SCHED_OTHER` switch to `SCHED_BATCH` (an
    /// unprivileged call that keeps the nice value). A real-time or idle
    /// policy the process was started with (`chrt`) is kept.
    #[default]
    Batch,
    /// Workers keep the policy the process was started with.
    Normal,
}

/// What a connection that arrives while this process drains gets
/// (`--drain-new-connections`). Sockets another process keeps open (systemd
/// socket activation, or a hot upgrade's successor) are different: the drain
/// then stops accepting and leaves queued connections to the next process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DrainNewConnections {
    /// Keep accepting and answer each new connection `503` +
    /// `Retry-After: 1` + `Connection: close` once its request head is in:
    /// the client learns explicitly that this instance is going away.
    #[default]
    Respond503,
    /// Stop accepting at once. Connections already in the accept queue
    /// still get the `503` (closing the socket would reset them); every
    /// later connect is refused, which load balancers retry elsewhere by
    /// themselves (HAProxy `option redispatch`, nginx `proxy_next_upstream
    /// error`, Envoy connect-failure retries), unlike a `503`.
    Refuse,
}

/// A rejected configuration value: which option, and the rule it broke.
///
/// Displays as one line, e.g. `shutdown_timeout must be positive, got 0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    field: &'static str,
    message: String,
}

impl ConfigError {
    pub(crate) fn new(field: &'static str, message: impl Into<String>) -> Self {
        ConfigError { field, message: message.into() }
    }

    /// The option's name as written in SPEC and in errors (`shutdown_timeout`).
    pub fn field(&self) -> &'static str {
        self.field
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.field, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Everything a pounce server needs to know before it binds.
///
/// Build one with [`ServerConfig::builder`]; an invalid value is refused by
/// [`ServerConfigBuilder::build`] with a [`ConfigError`] naming the field.
/// Defaults are SPEC's table.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub(crate) host: String,
    pub(crate) ip: IpAddr,
    pub(crate) port: u16,
    pub(crate) workers: usize,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) shutdown_delay: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) header_timeout: Duration,
    pub(crate) keep_alive_timeout: Duration,
    pub(crate) health_check_path: Option<String>,
    pub(crate) max_header_size: usize,
    pub(crate) max_headers: usize,
    pub(crate) max_body_size: usize,
    pub(crate) max_connections: usize,
    pub(crate) backlog: u32,
    pub(crate) access_log: bool,
    pub(crate) log_level: Option<log::LevelFilter>,
    pub(crate) log_format: LogFormat,
    pub(crate) sched_policy: SchedPolicy,
    pub(crate) pin_workers: bool,
    pub(crate) drain_new_connections: DrainNewConnections,
    pub(crate) pid_file: Option<PathBuf>,
    pub(crate) upgrade_timeout: Duration,
    pub(crate) metrics_addr: Option<SocketAddr>,
    pub(crate) tls: Option<TlsConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig::builder().build().expect("the defaults are valid")
    }
}

impl ServerConfig {
    /// A builder holding SPEC's defaults.
    pub fn builder() -> ServerConfigBuilder {
        ServerConfigBuilder::default()
    }

    /// The host as given (`127.0.0.1`, `::`, `localhost`).
    pub fn host(&self) -> &str {
        &self.host
    }
    /// The address the listeners bind to.
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port)
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    pub fn workers(&self) -> usize {
        self.workers
    }
    pub fn shutdown_timeout(&self) -> Duration {
        self.shutdown_timeout
    }
    pub fn shutdown_delay(&self) -> Duration {
        self.shutdown_delay
    }
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }
    pub fn header_timeout(&self) -> Duration {
        self.header_timeout
    }
    pub fn keep_alive_timeout(&self) -> Duration {
        self.keep_alive_timeout
    }
    pub fn health_check_path(&self) -> Option<&str> {
        self.health_check_path.as_deref()
    }
    pub fn max_header_size(&self) -> usize {
        self.max_header_size
    }
    pub fn max_headers(&self) -> usize {
        self.max_headers
    }
    pub fn max_body_size(&self) -> usize {
        self.max_body_size
    }
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }
    pub fn backlog(&self) -> u32 {
        self.backlog
    }
    pub fn access_log(&self) -> bool {
        self.access_log
    }
    /// `None` means "not set": `RUST_LOG` applies, else `info`.
    pub fn log_level(&self) -> Option<log::LevelFilter> {
        self.log_level
    }
    pub fn log_format(&self) -> LogFormat {
        self.log_format
    }
    pub fn sched_policy(&self) -> SchedPolicy {
        self.sched_policy
    }
    /// Whether each worker is pinned to a CPU of its own (when there are
    /// enough CPUs for one each).
    pub fn pin_workers(&self) -> bool {
        self.pin_workers
    }
    pub fn drain_new_connections(&self) -> DrainNewConnections {
        self.drain_new_connections
    }
    /// The file that names the serving process's pid, if any.
    pub fn pid_file(&self) -> Option<&Path> {
        self.pid_file.as_deref()
    }
    /// How long a hot upgrade waits for its successor to be ready.
    pub fn upgrade_timeout(&self) -> Duration {
        self.upgrade_timeout
    }
    /// Where Prometheus metrics are served (`/metrics`), if anywhere.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// TLS: the certificate chain and key served, loaded and checked. `None`
    /// serves plaintext HTTP.
    pub fn tls(&self) -> Option<&TlsConfig> {
        self.tls.as_ref()
    }

    /// The rustls configuration each TLS connection is made from.
    pub(crate) fn tls_server(&self) -> Option<&std::sync::Arc<rustls::ServerConfig>> {
        self.tls.as_ref().map(|t| &t.server)
    }

    /// `https` with TLS, else `http`.
    pub(crate) fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// How long an idle keep-alive connection may stay open once draining has
    /// begun: 1 s, never more than keep_alive_timeout.
    pub(crate) fn drain_idle_grace(&self) -> Duration {
        self.keep_alive_timeout.min(Duration::from_secs(1))
    }
}

/// Collects options, then validates them all at once in [`build`](Self::build).
#[derive(Debug, Clone)]
pub struct ServerConfigBuilder {
    host: String,
    port: u16,
    workers: Option<usize>,
    shutdown_timeout: Duration,
    shutdown_delay: Duration,
    request_timeout: Duration,
    header_timeout: Duration,
    keep_alive_timeout: Duration,
    health_check_path: Option<String>,
    max_header_size: usize,
    max_headers: usize,
    max_body_size: usize,
    max_connections: usize,
    backlog: u32,
    access_log: bool,
    log_level: Option<log::LevelFilter>,
    log_format: LogFormat,
    sched_policy: SchedPolicy,
    pin_workers: bool,
    drain_new_connections: DrainNewConnections,
    pid_file: Option<PathBuf>,
    upgrade_timeout: Duration,
    metrics_addr: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
}

impl Default for ServerConfigBuilder {
    fn default() -> Self {
        ServerConfigBuilder {
            host: "127.0.0.1".into(),
            port: 8000,
            workers: None,
            shutdown_timeout: Duration::from_secs(10),
            shutdown_delay: Duration::ZERO,
            request_timeout: Duration::from_secs(30),
            header_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(5),
            health_check_path: None,
            max_header_size: 64 * 1024,
            max_headers: 100,
            max_body_size: 1024 * 1024,
            max_connections: 10_000,
            backlog: 2048,
            access_log: false,
            log_level: None,
            log_format: LogFormat::Text,
            sched_policy: SchedPolicy::Batch,
            pin_workers: true,
            drain_new_connections: DrainNewConnections::Respond503,
            pid_file: None,
            upgrade_timeout: Duration::from_secs(30),
            metrics_addr: None,
            tls_cert: None,
            tls_key: None,
        }
    }
}

macro_rules! setter {
    ($(#[$doc:meta])* $name:ident: $ty:ty) => {
        $(#[$doc])*
        pub fn $name(mut self, value: $ty) -> Self {
            self.$name = value;
            self
        }
    };
}

impl ServerConfigBuilder {
    /// IPv4 or IPv6 literal, or `localhost`.
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = host.into();
        self
    }
    setter!(
        /// 0 picks a free port (logged at start).
        port: u16
    );
    /// Number of executors; default: the CPUs this process may use.
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = Some(workers);
        self
    }
    setter!(
        /// Longest drain before stragglers are force-closed (must be > 0).
        shutdown_timeout: Duration
    );
    setter!(
        /// Lame-duck period after the signal, before draining (may be 0).
        shutdown_delay: Duration
    );
    setter!(request_timeout: Duration);
    setter!(header_timeout: Duration);
    setter!(keep_alive_timeout: Duration);
    /// Path answered by pounce itself with the health JSON (e.g. `/health`).
    pub fn health_check_path(mut self, path: impl Into<String>) -> Self {
        self.health_check_path = Some(path.into());
        self
    }
    setter!(max_header_size: usize);
    setter!(max_headers: usize);
    setter!(max_body_size: usize);
    setter!(max_connections: usize);
    setter!(backlog: u32);
    setter!(access_log: bool);
    /// Overrides `RUST_LOG` when set.
    pub fn log_level(mut self, level: log::LevelFilter) -> Self {
        self.log_level = Some(level);
        self
    }
    setter!(log_format: LogFormat);
    setter!(
        /// The worker threads' scheduling policy (default [`SchedPolicy::Batch`]).
        sched_policy: SchedPolicy
    );
    setter!(
        /// Pin each worker to a CPU of its own (default true). Off, the
        /// kernel places and moves the worker threads, as it does nginx's
        /// workers without `worker_cpu_affinity`.
        pin_workers: bool
    );
    setter!(
        /// What new connections get while draining (default `503`).
        drain_new_connections: DrainNewConnections
    );
    /// Written with this process's pid once it serves; a hot upgrade's
    /// successor replaces it atomically; removed at exit if it still names
    /// this process.
    pub fn pid_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.pid_file = Some(path.into());
        self
    }
    setter!(
        /// How long a hot upgrade (SIGUSR2/SIGHUP) waits for the successor to
        /// be ready before giving up on it (must be > 0).
        upgrade_timeout: Duration
    );
    /// Serve Prometheus metrics at `http://HOST:PORT/metrics` on a listener
    /// of their own (never the app's port), from start-up until the process
    /// exits. `HOST:PORT` as in `0.0.0.0:9090`, `[::1]:9090`,
    /// `localhost:9090`, or `:9090` for every IPv4 interface; port 0 picks a
    /// free one (logged). Off by default.
    pub fn metrics_addr(mut self, addr: impl Into<String>) -> Self {
        self.metrics_addr = Some(addr.into());
        self
    }

    /// Serve HTTPS with the PEM certificate chain in this file (the server's
    /// certificate first, then its intermediates). Needs
    /// [`tls_key`](Self::tls_key) too.
    pub fn tls_cert(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls_cert = Some(path.into());
        self
    }
    /// The PEM private key (PKCS#8, PKCS#1 or SEC1) of the certificate given
    /// with [`tls_cert`](Self::tls_cert).
    pub fn tls_key(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls_key = Some(path.into());
        self
    }

    /// Checks every rule and returns the config, or the first broken rule.
    /// With TLS, this reads both files: a file that cannot be read, holds
    /// no PEM certificate or key, or a key that does not match the
    /// certificate is an error naming `tls_cert` or `tls_key`.
    pub fn build(self) -> Result<ServerConfig, ConfigError> {
        let ip = parse_host(&self.host)?;
        let workers = match self.workers {
            Some(0) => return Err(ConfigError::new("workers", "must be at least 1, got 0")),
            Some(n) if n > 1024 => {
                return Err(ConfigError::new("workers", format!("must be at most 1024, got {n}")));
            }
            Some(n) => n,
            None => available_cpus().count,
        };
        positive("shutdown_timeout", self.shutdown_timeout)?;
        bounded("shutdown_delay", self.shutdown_delay)?;
        positive("request_timeout", self.request_timeout)?;
        positive("header_timeout", self.header_timeout)?;
        positive("keep_alive_timeout", self.keep_alive_timeout)?;
        positive("upgrade_timeout", self.upgrade_timeout)?;
        if let Some(path) = &self.pid_file {
            validate_pid_file(path)?;
        }
        if let Some(path) = &self.health_check_path {
            validate_path(path)?;
        }
        let metrics_addr = match &self.metrics_addr {
            Some(a) => Some(parse_metrics_addr(a, SocketAddr::new(ip, self.port))?),
            None => None,
        };
        at_least_one("max_header_size", self.max_header_size as u64)?;
        if self.max_header_size > 64 << 20 {
            return Err(ConfigError::new(
                "max_header_size",
                format!("must be at most 64 MiB, got {}", self.max_header_size),
            ));
        }
        at_least_one("max_headers", self.max_headers as u64)?;
        if self.max_headers > 10_000 {
            return Err(ConfigError::new(
                "max_headers",
                format!("must be at most 10000, got {}", self.max_headers),
            ));
        }
        at_least_one("max_body_size", self.max_body_size as u64)?;
        at_least_one("max_connections", self.max_connections as u64)?;
        at_least_one("backlog", self.backlog as u64)?;
        if self.backlog > i32::MAX as u32 {
            return Err(ConfigError::new(
                "backlog",
                format!("must be at most {}, got {}", i32::MAX, self.backlog),
            ));
        }
        let tls = match (&self.tls_cert, &self.tls_key) {
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError::new("tls_key", "must be given with tls_cert (HTTPS needs both)"));
            }
            (None, Some(_)) => {
                return Err(ConfigError::new("tls_cert", "must be given with tls_key (HTTPS needs both)"));
            }
            (Some(cert), Some(key)) => Some(TlsConfig::load(cert, key)?),
        };
        Ok(ServerConfig {
            tls,
            host: self.host,
            ip,
            port: self.port,
            workers,
            shutdown_timeout: self.shutdown_timeout,
            shutdown_delay: self.shutdown_delay,
            request_timeout: self.request_timeout,
            header_timeout: self.header_timeout,
            keep_alive_timeout: self.keep_alive_timeout,
            health_check_path: self.health_check_path,
            max_header_size: self.max_header_size,
            max_headers: self.max_headers,
            max_body_size: self.max_body_size,
            max_connections: self.max_connections,
            backlog: self.backlog,
            access_log: self.access_log,
            log_level: self.log_level,
            log_format: self.log_format,
            sched_policy: self.sched_policy,
            pin_workers: self.pin_workers,
            drain_new_connections: self.drain_new_connections,
            pid_file: self.pid_file,
            upgrade_timeout: self.upgrade_timeout,
            metrics_addr,
        })
    }
}

fn parse_host(host: &str) -> Result<IpAddr, ConfigError> {
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    bare.parse::<IpAddr>().map_err(|_| {
        ConfigError::new("host", format!("must be an IPv4 or IPv6 address or 'localhost', got '{host}'"))
    })
}

/// `HOST:PORT` for the metrics listener: an IPv4 literal, a bracketed IPv6
/// literal, `localhost`, or nothing (`:9090`, every IPv4 interface); a port
/// 0-65535. It must not be the app's own address.
fn parse_metrics_addr(raw: &str, app: SocketAddr) -> Result<SocketAddr, ConfigError> {
    let bad = || {
        ConfigError::new(
            "metrics_addr",
            format!(
                "must be HOST:PORT with an IPv4 address, a [bracketed] IPv6 address or localhost, \
                 and a port from 0 to 65535 (e.g. 0.0.0.0:9090), got '{raw}'"
            ),
        )
    };
    let s = raw.trim();
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let port: u16 = port.parse().map_err(|_| bad())?;
    let ip = if host.is_empty() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else if host.eq_ignore_ascii_case("localhost") {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?.into()
    } else {
        // An unbracketed IPv6 address would be ambiguous (`::1:9090`).
        host.parse::<Ipv4Addr>().map_err(|_| bad())?.into()
    };
    let addr = SocketAddr::new(ip, port);
    let overlaps = ip == app.ip() || ip.is_unspecified() || app.ip().is_unspecified();
    if port != 0 && port == app.port() && overlaps {
        return Err(ConfigError::new(
            "metrics_addr",
            format!(
                "must not be the app's own address ({app}): metrics get a listener of their own, got '{raw}'"
            ),
        ));
    }
    Ok(addr)
}

fn positive(field: &'static str, d: Duration) -> Result<(), ConfigError> {
    if d.is_zero() {
        return Err(ConfigError::new(field, "must be positive, got 0"));
    }
    bounded(field, d)
}

fn bounded(field: &'static str, d: Duration) -> Result<(), ConfigError> {
    if d.as_secs_f64() > MAX_DURATION_SECS {
        return Err(ConfigError::new(
            field,
            format!("must be at most {MAX_DURATION_SECS} seconds, got {}", d.as_secs_f64()),
        ));
    }
    Ok(())
}

fn at_least_one(field: &'static str, v: u64) -> Result<(), ConfigError> {
    if v == 0 {
        return Err(ConfigError::new(field, "must be positive, got 0"));
    }
    Ok(())
}

fn validate_path(path: &str) -> Result<(), ConfigError> {
    if !path.starts_with('/') {
        return Err(ConfigError::new("health_check_path", format!("must start with '/', got '{path}'")));
    }
    if path.bytes().any(|b| b <= b' ' || b == 0x7f || b == b'?' || b == b'#') {
        return Err(ConfigError::new(
            "health_check_path",
            format!("must be a plain path without spaces, controls, '?' or '#', got '{path}'"),
        ));
    }
    Ok(())
}

/// The pid file's path must name a file; whether its directory is writable
/// is checked at start (exit 1), like a port in use.
fn validate_pid_file(path: &Path) -> Result<(), ConfigError> {
    if path.as_os_str().is_empty() {
        return Err(ConfigError::new("pid_file", "must be a file path, got ''"));
    }
    if path.file_name().is_none() || path.as_os_str().as_encoded_bytes().ends_with(b"/") {
        return Err(ConfigError::new(
            "pid_file",
            format!("must name a file, not a directory, got '{}'", path.display()),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_spec() {
        let c = ServerConfig::builder().workers(2).build().unwrap();
        assert_eq!(c.socket_addr(), "127.0.0.1:8000".parse().unwrap());
        assert_eq!(c.shutdown_timeout(), Duration::from_secs(10));
        assert_eq!(c.shutdown_delay(), Duration::ZERO);
        assert_eq!(c.request_timeout(), Duration::from_secs(30));
        assert_eq!(c.header_timeout(), Duration::from_secs(10));
        assert_eq!(c.keep_alive_timeout(), Duration::from_secs(5));
        assert_eq!(c.health_check_path(), None);
        assert_eq!(c.max_header_size(), 65536);
        assert_eq!(c.max_headers(), 100);
        assert_eq!(c.max_body_size(), 1 << 20);
        assert_eq!(c.max_connections(), 10_000);
        assert_eq!(c.backlog(), 2048);
        assert!(!c.access_log());
        assert_eq!(c.log_format(), LogFormat::Text);
        assert_eq!(c.sched_policy(), SchedPolicy::Batch);
        assert_eq!(c.drain_new_connections(), DrainNewConnections::Respond503);
        assert_eq!(c.pid_file(), None);
        assert_eq!(c.upgrade_timeout(), Duration::from_secs(30));
        assert_eq!(c.metrics_addr(), None);
        assert!(ServerConfig::default().workers() >= 1);
    }

    #[test]
    fn zero_shutdown_timeout_names_the_field() {
        let e = ServerConfig::builder().shutdown_timeout(Duration::ZERO).build().unwrap_err();
        assert_eq!(e.field(), "shutdown_timeout");
        assert_eq!(e.to_string(), "shutdown_timeout must be positive, got 0");
    }

    #[test]
    fn each_rule_is_enforced() {
        let b = || ServerConfig::builder().workers(1);
        let cases: Vec<(ServerConfigBuilder, &str)> = vec![
            (b().host("example.com"), "host"),
            (b().host("300.1.1.1"), "host"),
            (ServerConfig::builder().workers(0), "workers"),
            (b().request_timeout(Duration::ZERO), "request_timeout"),
            (b().header_timeout(Duration::ZERO), "header_timeout"),
            (b().keep_alive_timeout(Duration::ZERO), "keep_alive_timeout"),
            (b().shutdown_delay(Duration::from_secs(40_000_000)), "shutdown_delay"),
            (b().health_check_path("health"), "health_check_path"),
            (b().health_check_path("/he alth"), "health_check_path"),
            (b().max_header_size(0), "max_header_size"),
            (b().max_headers(0), "max_headers"),
            (b().max_body_size(0), "max_body_size"),
            (b().max_connections(0), "max_connections"),
            (b().backlog(0), "backlog"),
            (b().upgrade_timeout(Duration::ZERO), "upgrade_timeout"),
            (b().pid_file(""), "pid_file"),
            (b().pid_file("/run/pounce/"), "pid_file"),
            (b().pid_file("/"), "pid_file"),
            (b().metrics_addr("9090"), "metrics_addr"),
            (b().metrics_addr("127.0.0.1:8000"), "metrics_addr"),
        ];
        for (builder, field) in cases {
            let e = builder.build().unwrap_err();
            assert_eq!(e.field(), field, "{e}");
            assert!(e.to_string().starts_with(field), "{e}");
        }
    }

    #[test]
    fn hosts() {
        let ok = |h: &str| ServerConfig::builder().workers(1).host(h).build().unwrap().socket_addr();
        assert_eq!(ok("localhost").ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(ok("::1").to_string(), "[::1]:8000");
        assert_eq!(ok("[::]").to_string(), "[::]:8000");
        assert_eq!(ok("0.0.0.0").to_string(), "0.0.0.0:8000");
    }

    #[test]
    fn metrics_addresses() {
        let ok =
            |a: &str| ServerConfig::builder().workers(1).metrics_addr(a).build().map(|c| c.metrics_addr());
        assert_eq!(ok("0.0.0.0:9090").unwrap(), Some("0.0.0.0:9090".parse().unwrap()));
        assert_eq!(ok(" :9090 ").unwrap(), Some("0.0.0.0:9090".parse().unwrap()));
        assert_eq!(ok("localhost:0").unwrap(), Some("127.0.0.1:0".parse().unwrap()));
        assert_eq!(ok("[::]:9090").unwrap(), Some("[::]:9090".parse().unwrap()));
        assert_eq!(ok("[::1]:65535").unwrap(), Some("[::1]:65535".parse().unwrap()));
        // Port 0 never collides; another port of the same host does not either.
        assert!(ok("127.0.0.1:0").is_ok() && ok("127.0.0.1:8001").is_ok());
        for bad in [
            "",
            "9090",
            ":",
            "host:80",
            "127.0.0.1",
            "127.0.0.1:",
            "1.2.3.4:65536",
            "1.2.3.4:-1",
            "::1:9090",
            "[::1]",
            "[nope]:1",
            "1.2.3.4:+1",
            "1.2.3.4:80x",
        ] {
            let e = ok(bad).unwrap_err();
            assert_eq!(e.field(), "metrics_addr", "{bad}");
            assert!(e.to_string().starts_with("metrics_addr must be HOST:PORT"), "{bad}: {e}");
        }
        // The app's own port: on the same host, or where either is a wildcard.
        for clash in ["127.0.0.1:8000", ":8000", "0.0.0.0:8000"] {
            let e = ok(clash).unwrap_err();
            assert!(
                e.to_string().starts_with("metrics_addr must not be the app's own address (127.0.0.1:8000)"),
                "{e}"
            );
        }
        let on_wildcard = ServerConfig::builder().workers(1).host("0.0.0.0").metrics_addr("127.0.0.1:8000");
        assert!(on_wildcard.build().is_err());
    }

    #[test]
    fn zero_delay_is_allowed_and_drain_grace_is_capped() {
        let c = ServerConfig::builder()
            .workers(1)
            .keep_alive_timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        assert_eq!(c.drain_idle_grace(), Duration::from_millis(300));
        assert_eq!(ServerConfig::default().drain_idle_grace(), Duration::from_secs(1));
    }
}
