//! The command line: every option of SPEC's table as a `--kebab-case` flag
//! with a `POUNCE_<NAME>` environment fallback (flag beats env beats default),
//! plus the bare `SHUTDOWN_TIMEOUT` the seed page uses.
//!
//! clap only collects strings here; [`config_from_matches`] parses them with
//! [`super::parse`] and validates them with [`super::ServerConfigBuilder`], so
//! every bad value, whichever way it came in, yields the same one-line error
//! naming the option (and the environment variable, if that is where it came
//! from) and exit code 2, before anything binds.

use super::parse::{parse_bool, parse_seconds, parse_size, parse_uint};
use super::{ConfigError, DrainNewConnections, LogFormat, SchedPolicy, ServerConfig, ServerConfigBuilder};
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command};

/// One server option: its `ServerConfig` field name, flag, env var, value
/// name and help. The table is the single source for clap and for errors.
struct Opt {
    field: &'static str,
    flag: &'static str,
    env: &'static str,
    value: &'static str,
    help: &'static str,
}

const OPTIONS: &[Opt] = &[
    Opt {
        field: "host",
        flag: "host",
        env: "POUNCE_HOST",
        value: "ADDR",
        help: "Address to bind: IPv4 or IPv6 literal, or localhost [default: 127.0.0.1]",
    },
    Opt {
        field: "port",
        flag: "port",
        env: "POUNCE_PORT",
        value: "PORT",
        help: "TCP port, 0-65535; 0 picks a free port and logs it [default: 8000]",
    },
    Opt {
        field: "workers",
        flag: "workers",
        env: "POUNCE_WORKERS",
        value: "N",
        help: "Executors, one per core [default: CPUs this process may use]",
    },
    Opt {
        field: "shutdown_timeout",
        flag: "shutdown-timeout",
        env: "POUNCE_SHUTDOWN_TIMEOUT",
        value: "SECONDS",
        help: "Longest drain before force-closing, > 0 (SHUTDOWN_TIMEOUT is read too) [default: 10]",
    },
    Opt {
        field: "shutdown_delay",
        flag: "shutdown-delay",
        env: "POUNCE_SHUTDOWN_DELAY",
        value: "SECONDS",
        help: "Keep serving this long after SIGTERM with health at 503, then drain [default: 0]",
    },
    Opt {
        field: "request_timeout",
        flag: "request-timeout",
        env: "POUNCE_REQUEST_TIMEOUT",
        value: "SECONDS",
        help: "Limit for reading a body and for a handler to answer [default: 30]",
    },
    Opt {
        field: "header_timeout",
        flag: "header-timeout",
        env: "POUNCE_HEADER_TIMEOUT",
        value: "SECONDS",
        help: "Limit for receiving a request head [default: 10]",
    },
    Opt {
        field: "keep_alive_timeout",
        flag: "keep-alive-timeout",
        env: "POUNCE_KEEP_ALIVE_TIMEOUT",
        value: "SECONDS",
        help: "Idle keep-alive connections are closed after this [default: 5]",
    },
    Opt {
        field: "health_check_path",
        flag: "health-check-path",
        env: "POUNCE_HEALTH_CHECK_PATH",
        value: "PATH",
        help: "Path answered by pounce with health JSON, 503 once shutting down [default: none]",
    },
    Opt {
        field: "max_header_size",
        flag: "max-header-size",
        env: "POUNCE_MAX_HEADER_SIZE",
        value: "BYTES",
        help: "Largest request head, e.g. 64k [default: 64KiB]",
    },
    Opt {
        field: "max_headers",
        flag: "max-headers",
        env: "POUNCE_MAX_HEADERS",
        value: "N",
        help: "Most header fields per request; more gets 431 [default: 100]",
    },
    Opt {
        field: "max_body_size",
        flag: "max-body-size",
        env: "POUNCE_MAX_BODY_SIZE",
        value: "BYTES",
        help: "Largest request body, e.g. 1M; more gets 413 [default: 1MiB]",
    },
    Opt {
        field: "max_connections",
        flag: "max-connections",
        env: "POUNCE_MAX_CONNECTIONS",
        value: "N",
        help: "Open connections for the whole process; more get 503 [default: 10000]",
    },
    Opt {
        field: "backlog",
        flag: "backlog",
        env: "POUNCE_BACKLOG",
        value: "N",
        help: "listen(2) backlog of each worker's socket [default: 2048]",
    },
    Opt {
        field: "log_level",
        flag: "log-level",
        env: "POUNCE_LOG_LEVEL",
        value: "LEVEL",
        help: "off, error, warn, info, debug or trace (else RUST_LOG, else info)",
    },
    Opt {
        field: "log_format",
        flag: "log-format",
        env: "POUNCE_LOG_FORMAT",
        value: "FORMAT",
        help: "text or json [default: text]",
    },
    Opt {
        field: "sched_policy",
        flag: "sched-policy",
        env: "POUNCE_SCHED_POLICY",
        value: "POLICY",
        help: "Worker threads' scheduling: batch (SCHED_BATCH: a wake-up does not preempt the \
               core's running task) or normal (as started) [default: batch]",
    },
    Opt {
        field: "pin_workers",
        flag: "pin-workers",
        env: "POUNCE_PIN_WORKERS",
        value: "BOOL",
        help: "Pin each worker to a CPU of its own (when there is one for each). false lets the \
               kernel place and move them, which helps when other busy processes share the \
               CPUs [default: true]",
    },
    Opt {
        field: "drain_new_connections",
        flag: "drain-new-connections",
        env: "POUNCE_DRAIN_NEW_CONNECTIONS",
        value: "503|refuse",
        help: "What a new connection gets while draining: 503 (after its request head, Retry-After: 1) \
               or refuse (stop accepting at once; balancers retry a refused connect elsewhere). \
               Sockets inherited from systemd are left to the next instance instead [default: 503]",
    },
    Opt {
        field: "pid_file",
        flag: "pid-file",
        env: "POUNCE_PID_FILE",
        value: "PATH",
        help: "Write the serving process's pid here once ready; a hot upgrade's successor replaces \
               it; removed at exit if it still names this process [default: none]",
    },
    Opt {
        field: "tls_cert",
        flag: "tls-cert",
        env: "POUNCE_TLS_CERT",
        value: "PATH",
        help: "Serve HTTPS (TLS 1.3 and 1.2, ALPN http/1.1) with the PEM certificate chain in this file, \
               the server's certificate first; needs --tls-key. Read at start, and afresh by each hot \
               upgrade (SIGHUP), which is how a renewed certificate is picked up [default: none: plain HTTP]",
    },
    Opt {
        field: "tls_key",
        flag: "tls-key",
        env: "POUNCE_TLS_KEY",
        value: "PATH",
        help: "The PEM private key (PKCS#8, PKCS#1 or SEC1) of --tls-cert's certificate [default: none]",
    },
    Opt {
        field: "upgrade_timeout",
        flag: "upgrade-timeout",
        env: "POUNCE_UPGRADE_TIMEOUT",
        value: "SECONDS",
        help: "Hot upgrade (SIGUSR2 or SIGHUP): how long to wait for the successor to be ready \
               before stopping it and serving on [default: 30]",
    },
    Opt {
        field: "metrics_addr",
        flag: "metrics-addr",
        env: "POUNCE_METRICS_ADDR",
        value: "HOST:PORT",
        help: "Serve Prometheus metrics at http://HOST:PORT/metrics on a listener of their own (never \
               the app's port), up until exit, through the whole drain; e.g. 0.0.0.0:9090, [::]:9090; \
               port 0 picks one and logs it [default: off]",
    },
];

/// Adds every server option (and `--access-log`) to `cmd`.
pub fn add_server_args(mut cmd: Command) -> Command {
    for o in OPTIONS {
        cmd = cmd.arg(
            Arg::new(o.field)
                .long(o.flag)
                .env(o.env)
                .value_name(o.value)
                .help(o.help)
                .num_args(1)
                .allow_hyphen_values(true),
        );
    }
    cmd.arg(
        Arg::new("access_log")
            .long("access-log")
            .env("POUNCE_ACCESS_LOG")
            .value_name("BOOL")
            .num_args(0..=1)
            .require_equals(true)
            .default_missing_value("true")
            .action(ArgAction::Set)
            .help("Log one line per request (--access-log or --access-log=false) [default: off]"),
    )
}

/// What each signal does, for `--help`.
pub const SIGNALS_HELP: &str = "Signals: SIGTERM or SIGINT drains and exits (a second one exits at once, code 3); \
SIGUSR2 or SIGHUP is a hot upgrade: the binary at the start-up path is started with the same arguments \
and environment and takes over the listening sockets, then this process drains and exits (as a container's \
main process it stays up as the successor's init); the successor reads every file afresh, --tls-cert/--tls-key \
included: this is how a renewed certificate is served. \
Sockets passed in LISTEN_FDS/LISTEN_PID (systemd socket activation) are served instead of binding.";

/// The server command for a binary called `name`: all options, no app.
pub fn command(name: &'static str) -> Command {
    add_server_args(Command::new(name).version(env!("CARGO_PKG_VERSION")))
}

/// Builds the config from parsed matches; the error names the option and,
/// when the value came from the environment, the variable.
pub fn config_from_matches(m: &ArgMatches) -> Result<ServerConfig, ConfigError> {
    let mut b = ServerConfigBuilder::default();
    let get = |field: &'static str| -> Option<(String, Source)> {
        let v = m.get_one::<String>(field)?.clone();
        let src = match m.value_source(field) {
            Some(ValueSource::EnvVariable) => Source::Env(env_of(field)),
            _ => Source::Flag,
        };
        Some((v, src))
    };
    let annotate = |src: &Source| {
        let src = src.clone();
        move |e: ConfigError| match src {
            Source::Env(var) => ConfigError::new(e.field(), format!("{} (from {var})", e.message)),
            Source::Flag => e,
        }
    };
    if let Some((v, s)) = get("host") {
        b = b.host(v.trim());
        // Validate host now so an env-supplied bad host is annotated too.
        ServerConfigBuilder::default().workers(1).host(v.trim()).build().map_err(annotate(&s))?;
    }
    if let Some((v, s)) = get("port") {
        b = b.port(parse_uint("port", &v, "an integer from 0 to 65535").map_err(annotate(&s))?);
    }
    if let Some((v, s)) = get("workers") {
        let n: usize = parse_uint("workers", &v, "a whole number of at least 1").map_err(annotate(&s))?;
        ServerConfigBuilder::default().workers(n).build().map_err(annotate(&s))?;
        b = b.workers(n);
    }
    let shutdown_timeout = get("shutdown_timeout")
        .or_else(|| std::env::var("SHUTDOWN_TIMEOUT").ok().map(|v| (v, Source::Env("SHUTDOWN_TIMEOUT"))));
    macro_rules! secs {
        ($field:literal, $opt:expr, $setter:ident) => {
            if let Some((v, s)) = $opt {
                let d = parse_seconds($field, &v).map_err(annotate(&s))?;
                // Range rules are the builder's; check this one value now so
                // the error can say where it came from.
                ServerConfigBuilder::default().workers(1).$setter(d).build().map_err(annotate(&s))?;
                b = b.$setter(d);
            }
        };
    }
    secs!("shutdown_timeout", shutdown_timeout, shutdown_timeout);
    secs!("shutdown_delay", get("shutdown_delay"), shutdown_delay);
    secs!("request_timeout", get("request_timeout"), request_timeout);
    secs!("header_timeout", get("header_timeout"), header_timeout);
    secs!("keep_alive_timeout", get("keep_alive_timeout"), keep_alive_timeout);
    secs!("upgrade_timeout", get("upgrade_timeout"), upgrade_timeout);
    if let Some((v, s)) = get("health_check_path") {
        let t = ServerConfigBuilder::default().workers(1).health_check_path(v.clone());
        t.build().map_err(annotate(&s))?;
        b = b.health_check_path(v);
    }
    macro_rules! count {
        ($field:literal, $setter:ident, $parse:expr) => {
            if let Some((v, s)) = get($field) {
                let n = $parse($field, &v).map_err(annotate(&s))?;
                ServerConfigBuilder::default().workers(1).$setter(n).build().map_err(annotate(&s))?;
                b = b.$setter(n);
            }
        };
    }
    let whole = |f: &'static str, v: &str| parse_uint::<usize>(f, v, "a whole number of at least 1");
    count!("max_header_size", max_header_size, parse_size);
    count!("max_headers", max_headers, whole);
    count!("max_body_size", max_body_size, parse_size);
    count!("max_connections", max_connections, whole);
    count!("backlog", backlog, |f, v: &str| parse_uint::<u32>(f, v, "a whole number of at least 1"));
    if let Some((v, s)) = get("access_log") {
        b = b.access_log(parse_bool("access_log", &v).map_err(annotate(&s))?);
    }
    if let Some((v, s)) = get("log_level") {
        let level = v.trim().parse::<log::LevelFilter>().map_err(|_| {
            annotate(&s)(ConfigError::new(
                "log_level",
                format!("must be one of off, error, warn, info, debug, trace, got '{v}'"),
            ))
        })?;
        b = b.log_level(level);
    }
    if let Some((v, s)) = get("log_format") {
        let choices = [("text", LogFormat::Text), ("json", LogFormat::Json)];
        b = b.log_format(one_of("log_format", &v, &choices).map_err(annotate(&s))?);
    }
    if let Some((v, s)) = get("sched_policy") {
        let choices = [("batch", SchedPolicy::Batch), ("normal", SchedPolicy::Normal)];
        b = b.sched_policy(one_of("sched_policy", &v, &choices).map_err(annotate(&s))?);
    }
    if let Some((v, s)) = get("pin_workers") {
        b = b.pin_workers(parse_bool("pin_workers", &v).map_err(annotate(&s))?);
    }
    if let Some((v, s)) = get("drain_new_connections") {
        let choices = [("503", DrainNewConnections::Respond503), ("refuse", DrainNewConnections::Refuse)];
        b = b.drain_new_connections(one_of("drain_new_connections", &v, &choices).map_err(annotate(&s))?);
    }
    if let Some((v, s)) = get("metrics_addr") {
        // The form is checked here, so that the error names the variable;
        // a clash with the app's address is the final build's to find.
        ServerConfigBuilder::default().workers(1).port(0).metrics_addr(&v).build().map_err(annotate(&s))?;
        b = b.metrics_addr(v);
    }
    if let Some((v, s)) = get("pid_file") {
        ServerConfigBuilder::default().workers(1).pid_file(&v).build().map_err(annotate(&s))?;
        b = b.pid_file(v);
    }
    // The files are read once, by the final build; its error names the
    // option, and here where its value came from.
    let tls_cert = get("tls_cert");
    let tls_key = get("tls_key");
    if let Some((v, _)) = &tls_cert {
        b = b.tls_cert(v);
    }
    if let Some((v, _)) = &tls_key {
        b = b.tls_key(v);
    }
    b.build().map_err(|e| {
        // (A missing half names the option that is missing: the note says
        // where the other came from.)
        let (cert, key) = (tls_cert.as_ref().map(|(_, s)| s), tls_key.as_ref().map(|(_, s)| s));
        let src = match e.field() {
            "tls_cert" => cert.or(key),
            "tls_key" => key.or(cert),
            _ => None,
        };
        match src {
            Some(s) => annotate(s)(e),
            None => e,
        }
    })
}

/// One of a fixed set of words, case and surrounding spaces ignored.
fn one_of<T: Copy>(field: &'static str, raw: &str, choices: &[(&str, T)]) -> Result<T, ConfigError> {
    let word = raw.trim().to_ascii_lowercase();
    if let Some((_, v)) = choices.iter().find(|(name, _)| *name == word) {
        return Ok(*v);
    }
    let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
    Err(ConfigError::new(field, format!("must be {}, got '{raw}'", names.join(" or "))))
}

#[derive(Clone)]
enum Source {
    Flag,
    Env(&'static str),
}

fn env_of(field: &str) -> &'static str {
    if field == "access_log" {
        return "POUNCE_ACCESS_LOG";
    }
    OPTIONS.iter().find(|o| o.field == field).map(|o| o.env).unwrap_or("environment")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn parse(args: &[&str]) -> Result<ServerConfig, ConfigError> {
        let mut argv = vec!["pounce"];
        argv.extend_from_slice(args);
        let m = command("pounce").try_get_matches_from(argv).expect("clap accepts");
        config_from_matches(&m)
    }

    #[test]
    fn flags_parse() {
        let c = parse(&[
            "--host",
            "::1",
            "--port",
            "0",
            "--workers",
            "3",
            "--shutdown-timeout",
            "0.5",
            "--shutdown-delay",
            "2",
            "--request-timeout",
            "7",
            "--header-timeout",
            "3",
            "--keep-alive-timeout",
            "1.5",
            "--health-check-path",
            "/health",
            "--max-header-size",
            "8k",
            "--max-headers",
            "20",
            "--max-body-size",
            "2M",
            "--max-connections",
            "50",
            "--backlog",
            "16",
            "--access-log",
            "--log-level",
            "debug",
            "--log-format",
            "json",
            "--sched-policy",
            "normal",
            "--pin-workers",
            "false",
            "--drain-new-connections",
            "refuse",
            "--pid-file",
            "/run/pounce.pid",
            "--upgrade-timeout",
            "2.5",
            "--metrics-addr",
            "[::1]:9090",
        ])
        .unwrap();
        assert_eq!(c.socket_addr().to_string(), "[::1]:0");
        assert_eq!(c.workers(), 3);
        assert_eq!(c.shutdown_timeout(), Duration::from_millis(500));
        assert_eq!(c.shutdown_delay(), Duration::from_secs(2));
        assert_eq!(c.request_timeout(), Duration::from_secs(7));
        assert_eq!(c.header_timeout(), Duration::from_secs(3));
        assert_eq!(c.keep_alive_timeout(), Duration::from_millis(1500));
        assert_eq!(c.health_check_path(), Some("/health"));
        assert_eq!(c.max_header_size(), 8192);
        assert_eq!(c.max_headers(), 20);
        assert_eq!(c.max_body_size(), 2 << 20);
        assert_eq!(c.max_connections(), 50);
        assert_eq!(c.backlog(), 16);
        assert!(c.access_log());
        assert_eq!(c.log_level(), Some(log::LevelFilter::Debug));
        assert_eq!(c.log_format(), LogFormat::Json);
        assert_eq!(c.sched_policy(), SchedPolicy::Normal);
        assert!(!c.pin_workers());
        assert!(parse(&[]).unwrap().pin_workers(), "pinned by default");
        assert!(parse(&["--pin-workers", "yes"]).unwrap().pin_workers());
        assert_eq!(c.drain_new_connections(), DrainNewConnections::Refuse);
        assert_eq!(c.pid_file(), Some(std::path::Path::new("/run/pounce.pid")));
        assert_eq!(c.upgrade_timeout(), Duration::from_millis(2500));
        assert_eq!(c.metrics_addr(), Some("[::1]:9090".parse().unwrap()));
        assert_eq!(parse(&["--sched-policy", " Batch "]).unwrap().sched_policy(), SchedPolicy::Batch);
        let d = parse(&["--drain-new-connections", "503"]).unwrap();
        assert_eq!(d.drain_new_connections(), DrainNewConnections::Respond503);
    }

    #[test]
    fn bad_flags_name_the_option() {
        let cases: &[(&[&str], &str)] = &[
            (&["--shutdown-timeout", "0"], "shutdown_timeout must be positive, got 0"),
            (&["--shutdown-timeout", "-5"], "shutdown_timeout must not be negative, got -5"),
            (&["--shutdown-timeout", "NaN"], "shutdown_timeout must be a finite number"),
            (&["--port", "70000"], "port must be an integer from 0 to 65535, got '70000'"),
            (&["--port", "-1"], "port must be"),
            (&["--workers", "0"], "workers must be at least 1"),
            (&["--request-timeout", "0"], "request_timeout must be positive"),
            (&["--header-timeout", "inf"], "header_timeout must be a finite"),
            (&["--keep-alive-timeout", "abc"], "keep_alive_timeout must be a number"),
            (&["--shutdown-delay", "-1"], "shutdown_delay must not be negative"),
            (&["--max-body-size", "0"], "max_body_size must be positive"),
            (&["--max-header-size", "lots"], "max_header_size must be a whole number"),
            (&["--max-headers", "0"], "max_headers must be positive"),
            (&["--max-connections", "-3"], "max_connections must be"),
            (&["--backlog", "0"], "backlog must be positive"),
            (&["--health-check-path", "health"], "health_check_path must start with '/'"),
            (&["--host", "nope"], "host must be an IPv4 or IPv6 address"),
            (&["--log-format", "xml"], "log_format must be text or json"),
            (&["--log-level", "loud"], "log_level must be one of"),
            (&["--access-log=maybe"], "access_log must be true or false"),
            (&["--sched-policy", "fifo"], "sched_policy must be batch or normal, got 'fifo'"),
            (&["--pin-workers", "sometimes"], "pin_workers must be true or false, got 'sometimes'"),
            (
                &["--drain-new-connections", "close"],
                "drain_new_connections must be 503 or refuse, got 'close'",
            ),
            (&["--pid-file", ""], "pid_file must be a file path"),
            (&["--pid-file", "/run/"], "pid_file must name a file, not a directory"),
            (&["--upgrade-timeout", "0"], "upgrade_timeout must be positive, got 0"),
            (&["--metrics-addr", "9090"], "metrics_addr must be HOST:PORT"),
            (&["--metrics-addr", "localhost:http"], "metrics_addr must be HOST:PORT"),
            (&["--metrics-addr", "127.0.0.1:8000"], "metrics_addr must not be the app's own address"),
            (&["--tls-cert", "/nonexistent/c.pem"], "tls_key must be given with tls_cert"),
            (&["--tls-key", "/nonexistent/k.pem"], "tls_cert must be given with tls_key"),
            (
                &["--tls-cert", "/nonexistent/c.pem", "--tls-key", "/nonexistent/k.pem"],
                "tls_cert cannot be read: /nonexistent/c.pem: No such file or directory",
            ),
        ];
        for (args, want) in cases {
            let e = parse(args).unwrap_err().to_string();
            assert!(e.starts_with(want), "{args:?}: got {e:?}, want {want:?}");
        }
    }
}
