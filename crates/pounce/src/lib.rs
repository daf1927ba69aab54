//! pounce: a thread-per-core HTTP/1.1 server for Linux on io_uring (glommio),
//! built around one promise: on SIGTERM it stops taking new work, finishes
//! what it took, force-closes stragglers at `shutdown_timeout`, and exits with
//! a status that says which happened.
//!
//! Embed it with a [`Handler`] and get the same command line, environment
//! variables, logging and shutdown behaviour as the stock `pounce` binary:
//!
//! ```
//! use pounce::{Handler, Request, Response, ServerConfig};
//! use std::time::Duration;
//!
//! struct Hello;
//!
//! impl Handler for Hello {
//!     async fn call(&self, req: &Request<'_>) -> Response {
//!         match (req.method(), req.path()) {
//!             ("GET", "/") => Response::text(200, "Hello, World!"),
//!             ("POST", "/echo") => Response::new(200).with_body(req.body().to_vec()),
//!             _ => Response::text(404, "Not Found\n"),
//!         }
//!     }
//! }
//!
//! // Configuration is validated when built, naming the bad field:
//! let err = ServerConfig::builder().shutdown_timeout(Duration::ZERO).build().unwrap_err();
//! assert_eq!(err.to_string(), "shutdown_timeout must be positive, got 0");
//!
//! let config = ServerConfig::builder()
//!     .host("0.0.0.0")
//!     .port(8000)
//!     .shutdown_timeout(Duration::from_secs(30))
//!     .health_check_path("/health")
//!     .build()
//!     .unwrap();
//! assert_eq!(config.shutdown_timeout(), Duration::from_secs(30));
//!
//! // Your binary's main: flags, POUNCE_* variables, `healthcheck`, signals.
//! fn my_main() -> std::process::ExitCode {
//!     pounce::main(Hello)
//! }
//! // ...or, with a config built in code: pounce::serve(config, Hello)
//! # let _ = (my_main as fn() -> std::process::ExitCode, config);
//! ```
//!
//! Layers, outermost first: [`config`] → `server` (listeners, executor pool,
//! connection loop) → [`handler`]; `shutdown` (signal thread, coordinator,
//! per-worker drain) is a module of its own that the others only signal into,
//! and `handover` (inherited sockets, hot-upgrade successor, pid file) sits
//! beside it. [`metrics`] owns the per-worker counting cells the server
//! writes into and the `--metrics-addr` listener that reads them.

pub mod config;
mod exit;
#[doc(hidden)]
pub mod fuzzing;
pub mod handler;
mod handover;
pub mod healthcheck;
pub(crate) mod http;
pub mod logging;
pub mod metrics;
pub(crate) mod server;
mod shutdown;
mod time;
pub(crate) mod tls;

pub use config::cli;
pub use config::{
    ConfigError, DrainNewConnections, LogFormat, SchedPolicy, ServerConfig, ServerConfigBuilder,
};
pub use exit::ExitStatus;
pub use handler::{Body, Chunk, ChunkStream, Handler, Request, Response};
pub use http::Version;
pub use server::Server;
pub use tls::TlsConfig;

use std::ffi::OsString;
use std::process::ExitCode;

/// The full pounce command line around `handler`: parses flags and
/// `POUNCE_*` variables (exit 2 on a bad value, before anything binds),
/// handles `<binary> healthcheck`, installs logging and serves until
/// shutdown. Returns the exit code to hand back from `main`.
pub fn main<H: Handler>(handler: H) -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "healthcheck") {
        return healthcheck::main_from(args.into_iter().skip(1)).into();
    }
    let name = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "pounce".into());
    let cmd = cli::command(Box::leak(name.into_boxed_str())).subcommand(healthcheck::command()).after_help(
        format!("{}\n\nRun `<binary> healthcheck --help` for the container health probe.", cli::SIGNALS_HELP),
    );
    let matches = cmd.get_matches_from(args);
    match cli::config_from_matches(&matches) {
        Ok(config) => serve(config, handler),
        Err(e) => usage_error(&e),
    }
}

/// Installs logging as `config` says and serves until shutdown.
pub fn serve<H: Handler>(config: ServerConfig, handler: H) -> ExitCode {
    logging::init(config.log_level(), config.log_format(), config.access_log());
    Server::new(config, handler).run().into()
}

/// Prints `error: <msg>` and returns exit code 2.
pub fn usage_error(msg: &dyn std::fmt::Display) -> ExitCode {
    // One write(2) for the whole line: a hot upgrade's successor shares its
    // stderr with the process still serving, whose log lines must not split
    // this one (eprintln! may write it in pieces).
    use std::io::Write;
    let line = format!("error: {msg}\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
    ExitStatus::Usage.into()
}
