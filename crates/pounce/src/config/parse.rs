//! Turning option strings (from flags or environment variables) into typed
//! values, with errors that name the option and say what was expected.
//!
//! Range rules (positive, at most…) belong to the builder; these functions only
//! reject what is not a number of the right shape at all.

use super::{ConfigError, MAX_DURATION_SECS};
use std::time::Duration;

/// Seconds as a decimal number: `30`, `0.5`, `1e1`; an optional trailing `s`
/// is accepted. NaN, infinities and negatives are refused here so that the
/// builder's "must be positive" rule sees only real durations.
pub fn parse_seconds(field: &'static str, raw: &str) -> Result<Duration, ConfigError> {
    let s = raw.trim();
    let num = s.strip_suffix('s').unwrap_or(s);
    let v: f64 = num
        .parse()
        .map_err(|_| ConfigError::new(field, format!("must be a number of seconds, got '{raw}'")))?;
    if v.is_nan() || v.is_infinite() {
        return Err(ConfigError::new(field, format!("must be a finite number of seconds, got '{raw}'")));
    }
    if v < 0.0 {
        return Err(ConfigError::new(field, format!("must not be negative, got {raw}")));
    }
    if v > MAX_DURATION_SECS {
        return Err(ConfigError::new(
            field,
            format!("must be at most {MAX_DURATION_SECS} seconds, got {raw}"),
        ));
    }
    Ok(Duration::from_secs_f64(v))
}

/// A byte count: `65536`, `64k`, `64KiB`, `1M`, `1MiB`, `1g` (binary units).
pub fn parse_size(field: &'static str, raw: &str) -> Result<usize, ConfigError> {
    let s = raw.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let bad = || {
        ConfigError::new(
            field,
            format!("must be a whole number of bytes (optionally with k, M or G), got '{raw}'"),
        )
    };
    if digits.is_empty() {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(bad()),
    };
    n.checked_mul(mult)
        .and_then(|v| usize::try_from(v).ok())
        .ok_or_else(|| ConfigError::new(field, format!("is too large, got '{raw}'")))
}

/// A plain non-negative integer that fits `T`.
pub(crate) fn parse_uint<T: TryFrom<u64>>(
    field: &'static str,
    raw: &str,
    rule: &str,
) -> Result<T, ConfigError> {
    let s = raw.trim();
    let err = || ConfigError::new(field, format!("must be {rule}, got '{raw}'"));
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err());
    }
    s.parse::<u64>().ok().and_then(|v| T::try_from(v).ok()).ok_or_else(err)
}

/// `true/false`, `1/0`, `yes/no`, `on/off`.
pub(crate) fn parse_bool(field: &'static str, raw: &str) -> Result<bool, ConfigError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        _ => Err(ConfigError::new(field, format!("must be true or false, got '{raw}'"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds() {
        assert_eq!(parse_seconds("x", "30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_seconds("x", "0.5").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_seconds("x", "2.5s").unwrap(), Duration::from_millis(2500));
        assert_eq!(parse_seconds("x", " 0 ").unwrap(), Duration::ZERO);
        for bad in ["", "abc", "NaN", "nan", "inf", "-inf", "1e400", "ten", "5m", "--1"] {
            let e = parse_seconds("shutdown_timeout", bad).unwrap_err();
            assert_eq!(e.field(), "shutdown_timeout", "{bad}");
        }
        let e = parse_seconds("shutdown_timeout", "-5").unwrap_err();
        assert_eq!(e.to_string(), "shutdown_timeout must not be negative, got -5");
        assert!(parse_seconds("x", "99999999999").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("x", "65536").unwrap(), 65536);
        assert_eq!(parse_size("x", "64k").unwrap(), 65536);
        assert_eq!(parse_size("x", "64KiB").unwrap(), 65536);
        assert_eq!(parse_size("x", "1M").unwrap(), 1 << 20);
        assert_eq!(parse_size("x", "2g").unwrap(), 2 << 30);
        assert_eq!(parse_size("x", "0").unwrap(), 0);
        for bad in ["", "-1", "1.5M", "k", "12 parsecs", "0x10", "99999999999999999999"] {
            assert_eq!(parse_size("max_body_size", bad).unwrap_err().field(), "max_body_size");
        }
        assert!(parse_size("x", "99999999999G").is_err());
    }

    #[test]
    fn uints_and_bools() {
        assert_eq!(parse_uint::<u16>("port", "8080", "r").unwrap(), 8080);
        assert!(parse_uint::<u16>("port", "65536", "r").is_err());
        assert!(parse_uint::<u16>("port", "-1", "r").is_err());
        assert!(parse_uint::<u16>("port", "+1", "r").is_err());
        assert!(parse_uint::<usize>("workers", "1.5", "r").is_err());
        assert!(parse_bool("access_log", "TRUE").unwrap());
        assert!(!parse_bool("access_log", "off").unwrap());
        assert!(parse_bool("access_log", "maybe").is_err());
    }
}
