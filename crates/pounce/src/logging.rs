//! Log lines on stderr through env_logger, in the seed page's shape:
//!
//! ```text
//! [2026-02-12 10:15:30] Received SIGTERM — initiating shutdown
//! [2026-02-12 10:15:30] warning: Worker 1 did not stop within shutdown_timeout (30.0s) — force terminating
//! ```
//!
//! or, with `--log-format json`, one object per line
//! (`{"ts":"2026-02-12T10:15:30Z","level":"info","target":"pounce","msg":"..."}`).
//! Timestamps are UTC. `--log-level` wins over `RUST_LOG`, which wins over the
//! default `info`; the access log (`--access-log`) is shown whatever the level.

use crate::config::LogFormat;
use crate::time::{Civil, log_timestamp};
use log::{Level, LevelFilter};
use std::io::Write;

/// Target of access-log records.
pub const ACCESS_TARGET: &str = "pounce::access";

/// Installs the logger. A second call is a no-op.
pub fn init(level: Option<LevelFilter>, format: LogFormat, access_log: bool) {
    let mut b = env_logger::Builder::new();
    b.target(env_logger::Target::Stderr);
    match (level, std::env::var("RUST_LOG")) {
        (Some(l), _) => {
            b.filter_level(l);
        }
        (None, Ok(spec)) if !spec.trim().is_empty() => {
            b.filter_level(LevelFilter::Info);
            b.parse_filters(&spec);
        }
        _ => {
            b.filter_level(LevelFilter::Info);
        }
    }
    if std::env::var("RUST_LOG").is_err() || level.is_some() {
        // glommio reports recoverable set-up details at info/warn; keep them
        // out of operators' logs unless asked for.
        b.filter_module("glommio", level.unwrap_or(LevelFilter::Info).min(LevelFilter::Error));
    }
    b.filter_module(ACCESS_TARGET, if access_log { LevelFilter::Info } else { LevelFilter::Off });
    match format {
        LogFormat::Text => b.format(|out, rec| {
            let ts = log_timestamp(&Civil::now());
            let prefix = match rec.level() {
                Level::Error => "error: ",
                Level::Warn => "warning: ",
                Level::Info => "",
                Level::Debug => "debug: ",
                Level::Trace => "trace: ",
            };
            writeln!(out, "[{ts}] {prefix}{}", rec.args())
        }),
        LogFormat::Json => b.format(|out, rec| {
            let c = Civil::now();
            let ts = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                c.year, c.month, c.day, c.hour, c.minute, c.second
            );
            let msg = rec.args().to_string();
            writeln!(
                out,
                "{{\"ts\":\"{ts}\",\"level\":\"{}\",\"target\":{},\"msg\":{}}}",
                rec.level().as_str().to_ascii_lowercase(),
                json_string(rec.target()),
                json_string(&msg)
            )
        }),
    };
    let _ = b.try_init();
}

/// A JSON string literal for `s`.
pub(crate) fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn json_escaping() {
        assert_eq!(super::json_string("a\"b\\c\nd\u{1}é—"), "\"a\\\"b\\\\c\\nd\\u0001é—\"");
    }
}
