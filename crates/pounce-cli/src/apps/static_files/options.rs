//! The static app's own options (`--cache-control`, `--index-cache-control`,
//! `--static-hidden`, `--sendfile`) and their validation, kept apart from clap so the
//! rules are unit-tested and the errors read like the server's own:
//! `cache_control must be …, got '…'`.

/// How the static app serves, beyond the directory itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `Cache-Control` for everything but `index.html`; `None` sends none.
    pub cache_control: Option<String>,
    /// `Cache-Control` for `index.html` (a directory index or by name), which
    /// names the other assets and so must be revalidated after a deploy.
    pub index_cache_control: Option<String>,
    /// Serve dotfiles (`.env`, `.git/…`); `/.well-known/` is always served.
    pub hidden: bool,
    /// Send file bodies with `sendfile(2)` (zero-copy, like nginx's
    /// `sendfile on`); off, they are read through io_uring and copied.
    pub sendfile: bool,
}

pub const DEFAULT_CACHE_CONTROL: &str = "public, max-age=3600";
pub const DEFAULT_INDEX_CACHE_CONTROL: &str = "no-cache";

impl Default for Options {
    fn default() -> Options {
        Options {
            cache_control: Some(DEFAULT_CACHE_CONTROL.into()),
            index_cache_control: Some(DEFAULT_INDEX_CACHE_CONTROL.into()),
            hidden: false,
            sendfile: true,
        }
    }
}

/// Checks a `Cache-Control` value: a comma-separated list of directives,
/// each `token` or `token=token` or `token="quoted"` (RFC 9111 §5.2), at most
/// 1 KiB. `off` means "send no Cache-Control". `field` names the option in
/// the error.
pub fn cache_control(field: &str, raw: &str) -> Result<Option<String>, String> {
    let v = raw.trim();
    if v.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let bad = |why: &str| {
        Err(format!(
            "{field} must be a Cache-Control value such as 'public, max-age=3600' or 'no-cache', \
             or 'off' ({why}), got '{raw}'"
        ))
    };
    if v.is_empty() {
        return bad("empty");
    }
    if v.len() > 1024 {
        return bad("longer than 1024 bytes");
    }
    let mut directives = 0;
    for d in split_list(v).into_iter().map(str::trim) {
        if d.is_empty() {
            continue;
        }
        directives += 1;
        let (name, value) = match d.split_once('=') {
            Some((n, val)) => (n, Some(val)),
            None => (d, None),
        };
        if !is_token(name) {
            return bad(&format!("'{d}' is not a directive"));
        }
        if let Some(val) = value {
            let quoted = val.len() >= 2
                && val.starts_with('"')
                && val.ends_with('"')
                && val[1..val.len() - 1]
                    .bytes()
                    .all(|b| b == b'\t' || ((b' '..=b'~').contains(&b) && b != b'"'));
            if !(is_token(val) || quoted) {
                return bad(&format!("'{d}' has a bad value"));
            }
        }
    }
    if directives == 0 {
        return bad("no directives");
    }
    Ok(Some(v.to_string()))
}

/// Splits at commas outside quoted strings.
fn split_list(v: &str) -> Vec<&str> {
    let (mut out, mut start, mut quoted, mut escaped) = (Vec::new(), 0, false, false);
    for (i, b) in v.bytes().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b',' if !quoted => {
                out.push(&v[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&v[start..]);
    out
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// `true/false`, `1/0`, `yes/no`, `on/off` (as the server's own booleans).
pub fn boolean(field: &str, raw: &str) -> Result<bool, String> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        _ => Err(format!("{field} must be true or false, got '{raw}'")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_cache_control() {
        for v in [
            "public, max-age=3600",
            "no-cache",
            "no-store",
            "public,max-age=31536000,immutable",
            "private, max-age=0, must-revalidate",
            "max-age=60, stale-while-revalidate=\"30\"",
            "no-cache=\"Set-Cookie, Foo\"",
            " public ,max-age=5 ",
        ] {
            assert_eq!(cache_control("cache_control", v), Ok(Some(v.trim().to_string())), "{v}");
        }
        assert_eq!(cache_control("cache_control", "off"), Ok(None));
        assert_eq!(cache_control("cache_control", "OFF"), Ok(None));
    }

    #[test]
    fn bad_cache_control() {
        for v in [
            "",
            " ",
            ",",
            "public; max-age=3600",
            "max-age=",
            "max age=5",
            "a=\"unterminated",
            "x=y z",
            "é",
            "max-age = 5",
        ] {
            let e = cache_control("cache_control", v).unwrap_err();
            assert!(e.starts_with("cache_control must be a Cache-Control value"), "{v}: {e}");
            assert!(e.ends_with(&format!("got '{v}'")), "{v}: {e}");
        }
        assert!(cache_control("x", &"a".repeat(1025)).is_err());
    }

    #[test]
    fn booleans() {
        assert_eq!(boolean("static_hidden", "TRUE"), Ok(true));
        assert_eq!(boolean("static_hidden", "0"), Ok(false));
        assert_eq!(
            boolean("static_hidden", "maybe"),
            Err("static_hidden must be true or false, got 'maybe'".into())
        );
    }

    #[test]
    fn defaults() {
        let o = Options::default();
        assert_eq!(o.cache_control.as_deref(), Some("public, max-age=3600"));
        assert_eq!(o.index_cache_control.as_deref(), Some("no-cache"));
        assert!(!o.hidden);
    }
}
