//! `Content-Type` from the file name's extension, as a pure function.
//!
//! The table is `mime_guess`'s (kept in step with the IANA and Apache lists),
//! with a few fixes for the web (`.mjs` and source maps), and
//! `; charset=utf-8` on textual types so browsers do not guess the encoding.
//! Unknown extensions are `application/octet-stream`: a download, never a
//! page a browser would sniff and render.

use std::cell::RefCell;
use std::collections::HashMap;

/// The `Content-Type` for a file called `name` (bytes: the last path
/// segment, or the whole relative path).
pub fn content_type(name: &[u8]) -> &'static str {
    let file = name.rsplit(|&b| b == b'/').next().unwrap_or(name);
    let ext = match file.iter().rposition(|&b| b == b'.') {
        // A leading dot starts a name (`.htaccess`), not an extension.
        Some(i) if i > 0 => std::str::from_utf8(&file[i + 1..]).unwrap_or(""),
        _ => "",
    };
    let mut lower = [0u8; 32];
    let essence = match ext.len() {
        0 => "application/octet-stream",
        n if n > lower.len() => "application/octet-stream",
        n => {
            lower[..n].copy_from_slice(ext.as_bytes());
            lower[..n].make_ascii_lowercase();
            match std::str::from_utf8(&lower[..n]).unwrap_or("") {
                "mjs" | "js" => "text/javascript",
                "map" => "application/json",
                ext => mime_guess::from_ext(ext).first_raw().unwrap_or("application/octet-stream"),
            }
        }
    };
    if is_text(essence) { with_charset(essence) } else { essence }
}

/// `essence; charset=utf-8`, made once per type (there are a few hundred
/// at most) and kept for the life of the process, so a response borrows it.
fn with_charset(essence: &'static str) -> &'static str {
    thread_local! {
        static TEXT: RefCell<HashMap<&'static str, &'static str>> = RefCell::new(HashMap::new());
    }
    TEXT.with_borrow_mut(|m| {
        *m.entry(essence).or_insert_with(|| Box::leak(format!("{essence}; charset=utf-8").into_boxed_str()))
    })
}

fn is_text(essence: &str) -> bool {
    essence.starts_with("text/")
        || matches!(essence, "application/javascript" | "application/json" | "application/xml")
        || (essence.starts_with("application/") && (essence.ends_with("+json") || essence.ends_with("+xml")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_types() {
        let cases: &[(&str, &str)] = &[
            ("index.html", "text/html; charset=utf-8"),
            ("a/b/style.css", "text/css; charset=utf-8"),
            ("app.js", "text/javascript; charset=utf-8"),
            ("mod.mjs", "text/javascript; charset=utf-8"),
            ("data.json", "application/json; charset=utf-8"),
            ("notes.txt", "text/plain; charset=utf-8"),
            ("feed.rss", "application/rss+xml; charset=utf-8"),
            ("site.webmanifest", "application/manifest+json; charset=utf-8"),
            ("app.js.map", "application/json; charset=utf-8"),
            ("logo.svg", "image/svg+xml"),
            ("photo.JPG", "image/jpeg"),
            ("font.woff2", "font/woff2"),
            ("mod.wasm", "application/wasm"),
            ("archive.tar.gz", "application/gzip"),
            ("noext", "application/octet-stream"),
            ("weird.zzzunknown", "application/octet-stream"),
            ("dir.d/noext", "application/octet-stream"),
            ("long.averyveryveryveryverylongextension", "application/octet-stream"),
            ("x.ssisdeploymentmanifest", "text/xml; charset=utf-8"),
            ("UPPER.HTML", "text/html; charset=utf-8"),
            (".htaccess", "application/octet-stream"),
        ];
        for (name, want) in cases {
            assert_eq!(content_type(name.as_bytes()), *want, "{name}");
        }
    }
}
