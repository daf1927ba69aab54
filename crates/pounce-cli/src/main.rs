//! The stock `pounce` binary: `pounce [OPTIONS] <APP>` serves a built-in app
//! (`demo`, `static:<DIR>`); `pounce healthcheck` probes a running one.
//! Everything else — options, environment, logging, shutdown — is the
//! library's, so an embedding binary behaves identically.

mod apps;

use clap::Arg;
use std::ffi::OsString;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "healthcheck") {
        return pounce::healthcheck::main_from(args.into_iter().skip(1)).into();
    }
    let cmd = pounce::cli::command("pounce")
        .about("Thread-per-core HTTP/1.1 server on io_uring with graceful shutdown")
        .arg(Arg::new("app").value_name("APP").required(true).help("What to serve: demo, or static:<DIR>"))
        .subcommand(pounce::healthcheck::command())
        .subcommand_negates_reqs(true)
        .after_help(
            "Exit codes: 0 drained cleanly, 1 fatal error, 2 invalid arguments, 3 forced shutdown.\n\
             `pounce healthcheck --help` describes the container health probe.",
        );
    let matches = cmd.get_matches_from(args);
    let config = match pounce::cli::config_from_matches(&matches) {
        Ok(c) => c,
        Err(e) => return pounce::usage_error(&e),
    };
    let arg = matches.get_one::<String>("app").map(String::as_str).unwrap_or_default();
    match apps::App::from_arg(arg) {
        Ok(app) => pounce::serve(config, app),
        Err(e) => pounce::usage_error(&e),
    }
}
