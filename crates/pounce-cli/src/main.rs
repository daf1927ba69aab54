//! The stock `pounce` binary: `pounce [OPTIONS] <APP>` serves a built-in app
//! (`demo`, `static:<DIR>`); `pounce healthcheck` probes a running one.
//! Everything else — options, environment, logging, shutdown — is the
//! library's, so an embedding binary behaves identically.

mod apps;

use apps::static_files::options::{self, DEFAULT_CACHE_CONTROL, DEFAULT_INDEX_CACHE_CONTROL};
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command};
use std::ffi::OsString;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "healthcheck") {
        return pounce::healthcheck::main_from(args.into_iter().skip(1)).into();
    }
    let cmd = add_static_args(pounce::cli::command("pounce"))
        .about("Thread-per-core HTTP/1.1 server on io_uring with graceful shutdown")
        .arg(Arg::new("app").value_name("APP").required(true).help("What to serve: demo, or static:<DIR>"))
        .subcommand(pounce::healthcheck::command())
        .subcommand_negates_reqs(true)
        .after_help(format!(
            "{}\n\nExit codes: 0 drained cleanly, 1 fatal error, 2 invalid arguments, 3 forced shutdown.\n\
             `pounce healthcheck --help` describes the container health probe.",
            pounce::cli::SIGNALS_HELP
        ));
    let matches = cmd.get_matches_from(args);
    let config = match pounce::cli::config_from_matches(&matches) {
        Ok(c) => c,
        Err(e) => return pounce::usage_error(&e),
    };
    let static_opts = match static_options(&matches) {
        Ok(o) => o,
        Err(e) => return pounce::usage_error(&e),
    };
    let arg = matches.get_one::<String>("app").map(String::as_str).unwrap_or_default();
    match apps::App::from_arg(arg, &static_opts) {
        Ok(app) => pounce::serve(config, app),
        Err(e) => pounce::usage_error(&e),
    }
}

/// The static app's options: flag, environment variable, help.
fn add_static_args(cmd: Command) -> Command {
    cmd.next_help_heading("Static files (static:<DIR>)")
        .arg(
            Arg::new("cache_control")
                .long("cache-control")
                .env("POUNCE_CACHE_CONTROL")
                .value_name("VALUE")
                .num_args(1)
                .help(format!("Cache-Control for served files, or 'off' [default: {DEFAULT_CACHE_CONTROL}]")),
        )
        .arg(
            Arg::new("index_cache_control")
                .long("index-cache-control")
                .env("POUNCE_INDEX_CACHE_CONTROL")
                .value_name("VALUE")
                .num_args(1)
                .help(format!(
                    "Cache-Control for index.html, so a deploy is seen at once, or 'off' \
                     [default: {DEFAULT_INDEX_CACHE_CONTROL}]"
                )),
        )
        .arg(
            Arg::new("static_hidden")
                .long("static-hidden")
                .env("POUNCE_STATIC_HIDDEN")
                .value_name("BOOL")
                .num_args(0..=1)
                .require_equals(true)
                .default_missing_value("true")
                .action(ArgAction::Set)
                .help("Serve dotfiles such as .env or .git/ (/.well-known/ always is) [default: off]"),
        )
        .arg(
            Arg::new("sendfile")
                .long("sendfile")
                .env("POUNCE_SENDFILE")
                .value_name("BOOL")
                .num_args(0..=1)
                .require_equals(true)
                .default_missing_value("true")
                .action(ArgAction::Set)
                .help(
                    "Send files zero-copy with sendfile(2) (under TLS they are read and encrypted \
                     in chunks instead); false reads them through io_uring instead (blocking disk \
                     reads never stall a worker) [default: on]",
                ),
        )
        .next_help_heading(None)
}

/// Reads and validates the static app's options (checked whatever the app,
/// so a bad value is caught before a deploy switches apps). The error names
/// the option, and the variable when the value came from the environment.
fn static_options(m: &ArgMatches) -> Result<options::Options, String> {
    let mut o = options::Options::default();
    let get = |id: &str, env: &str| -> Option<(String, String)> {
        let v = m.get_one::<String>(id)?.clone();
        let from = match m.value_source(id) {
            Some(ValueSource::EnvVariable) => format!(" (from {env})"),
            _ => String::new(),
        };
        Some((v, from))
    };
    if let Some((v, from)) = get("cache_control", "POUNCE_CACHE_CONTROL") {
        o.cache_control = options::cache_control("cache_control", &v).map_err(|e| e + &from)?;
    }
    if let Some((v, from)) = get("index_cache_control", "POUNCE_INDEX_CACHE_CONTROL") {
        o.index_cache_control = options::cache_control("index_cache_control", &v).map_err(|e| e + &from)?;
    }
    if let Some((v, from)) = get("static_hidden", "POUNCE_STATIC_HIDDEN") {
        o.hidden = options::boolean("static_hidden", &v).map_err(|e| e + &from)?;
    }
    if let Some((v, from)) = get("sendfile", "POUNCE_SENDFILE") {
        o.sendfile = options::boolean("sendfile", &v).map_err(|e| e + &from)?;
    }
    Ok(o)
}
