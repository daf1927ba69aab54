//! `pounce static:<DIR>` over real sockets against a directory each test
//! makes for itself: methods, path confinement (traversal, encoded
//! traversal, escaping symlinks, dotfiles), directories, types, validators
//! and conditional requests, ranges, precompressed siblings, options, a
//! 5 MiB file intact, and a download in progress at SIGTERM. The tests of
//! body bytes run twice: with `sendfile(2)` (the default) and with
//! `--sendfile=false` (io_uring reads).

mod common;

use common::{Client, Pounce, Resp};
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The static app's own variables: a test must not inherit them.
const STATIC_ENV: &[&str] =
    &["POUNCE_CACHE_CONTROL", "POUNCE_INDEX_CACHE_CONTROL", "POUNCE_STATIC_HIDDEN", "POUNCE_SENDFILE"];

/// The two ways file bodies are sent: `sendfile(2)` (the default) and
/// io_uring reads. Tests of body bytes run in both.
const SENDFILE: &[&str] = &[];
const URING_READS: &[&str] = &["--sendfile=false"];

/// Two tests, one per mode, around `fn with(mode: &[&str])`.
macro_rules! in_both_modes {
    ($sendfile:ident, $uring:ident, $with:ident) => {
        #[test]
        fn $sendfile() {
            $with(SENDFILE);
        }
        #[test]
        fn $uring() {
            $with(URING_READS);
        }
    };
}

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let d = std::env::temp_dir().join(format!(
            "pounce-static-{tag}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
    fn path(&self) -> &Path {
        &self.0
    }
    /// Writes `rel` (creating parent directories).
    fn write(&self, rel: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, bytes).unwrap();
        p
    }
    fn app(&self) -> String {
        format!("static:{}", self.0.display())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `pounce static:<dir> <args>` with a clean environment plus `env`.
fn start_env(dir: &TempDir, args: &[&str], env: &[(&str, &str)]) -> Pounce {
    let app = dir.app();
    let mut all = vec![app.as_str(), "--port", "0"];
    if !args.contains(&"--workers") {
        all.extend(["--workers", "2"]);
    }
    all.extend_from_slice(args);
    let mut cmd = common::command(&all);
    for v in STATIC_ENV {
        cmd.env_remove(v);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    Pounce::spawn(cmd)
}

fn start(dir: &TempDir, args: &[&str]) -> Pounce {
    start_env(dir, args, &[])
}

/// One request with extra header lines, on a fresh connection.
fn get_with(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Resp {
    request(addr, "GET", path, headers)
}

fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: t\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut c = Client::connect(addr);
    c.send(head.as_bytes());
    c.read_response(method == "HEAD").expect("a response")
}

/// Deterministic pseudo-random bytes (xorshift64*), so corruption shows.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// FNV-1a, to name a mismatch without printing megabytes.
fn checksum(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| (h ^ x as u64).wrapping_mul(0x100_0000_01b3))
}

#[test]
fn serves_files_with_type_validators_and_cache_control() {
    let d = TempDir::new("basic");
    d.write("index.html", "<h1>home</h1>\n");
    d.write("hello.txt", "Hello, static!\n");
    d.write("style.css", "body{}\n");
    d.write("app.js", "console.log(1)\n");
    d.write("pic.png", [0x89, b'P', b'N', b'G']);
    d.write("blob", "no extension");
    d.write("sp ace/na%me.txt", "odd name");
    d.write("empty.txt", "");
    let fifo = std::ffi::CString::new(d.path().join("fifo").into_os_string().into_encoded_bytes()).unwrap();
    // SAFETY: mkfifo(3) with a valid path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    let p = start(&d, &[]);

    let r = common::get(p.addr, "/hello.txt");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "Hello, static!\n");
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.header("content-length"), Some("15"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert_eq!(r.header("cache-control"), Some("public, max-age=3600"));
    assert_eq!(r.header("vary"), None, "no precompressed sibling, no Vary");
    let etag = r.header("etag").unwrap();
    assert!(etag.starts_with('"') && etag.ends_with('"') && !etag.starts_with("W/"), "strong: {etag}");
    let lm = r.header("last-modified").unwrap();
    assert!(lm.ends_with(" GMT") && lm.len() == 29, "IMF-fixdate: {lm}");

    for (path, ct) in [
        ("/style.css", "text/css; charset=utf-8"),
        ("/app.js", "text/javascript; charset=utf-8"),
        ("/pic.png", "image/png"),
        ("/blob", "application/octet-stream"),
    ] {
        let r = common::get(p.addr, path);
        assert_eq!((r.status, r.header("content-type")), (200, Some(ct)), "{path}");
    }
    let r = common::get(p.addr, "/sp%20ace/na%25me.txt");
    assert_eq!((r.status, r.text().as_str()), (200, "odd name"));

    // index.html: no-cache by default, so a deploy is picked up at once.
    for path in ["/", "/index.html"] {
        let r = common::get(p.addr, path);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.text(), "<h1>home</h1>\n");
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        assert_eq!(r.header("cache-control"), Some("no-cache"), "{path}");
    }
    let r = common::get(p.addr, "/empty.txt");
    assert_eq!((r.status, r.header("content-length"), r.body.len()), (200, Some("0"), 0));
    let r = get_with(p.addr, "/empty.txt", &[("Range", "bytes=0-")]);
    assert_eq!((r.status, r.header("content-range")), (416, Some("bytes */0")));
    assert_eq!(common::get(p.addr, "/fifo").status, 404, "only regular files, and no hang on a FIFO");
    assert_eq!(common::get(p.addr, "/missing.txt").status, 404);
    assert_eq!(common::get(p.addr, "/hello.txt/").status, 404, "a file is not a directory");
}

#[test]
fn head_is_get_without_the_body() {
    let d = TempDir::new("head");
    d.write("a.txt", "abcdef");
    d.write("big.bin", pattern(300_000, 7));
    let p = start(&d, &[]);
    for path in ["/a.txt", "/big.bin"] {
        let g = common::get(p.addr, path);
        let mut c = Client::connect(p.addr);
        c.send(format!("HEAD {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        let h = c.read_response(true).unwrap();
        assert_eq!(h.status, 200);
        for f in ["content-length", "content-type", "etag", "last-modified", "accept-ranges", "cache-control"]
        {
            assert_eq!(h.header(f), g.header(f), "{path}: {f}");
        }
        // No body followed the head: the next response on the connection is intact.
        let again = c.get("/a.txt");
        assert_eq!((again.status, again.text().as_str()), (200, "abcdef"), "{path}");
    }
}

#[test]
fn other_methods_get_405_with_allow() {
    let d = TempDir::new("methods");
    d.write("a.txt", "a");
    let p = start(&d, &[]);
    for m in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        let raw = format!("{m} /a.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
        let r = Client::connect(p.addr).send(raw.as_bytes()).read_response(false).unwrap();
        assert_eq!(r.status, 405, "{m}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"), "{m}");
    }
}

/// The layout the confinement tests attack: `www/` is served; `secret.txt`
/// and `outside/` sit beside it.
fn escape_fixture(tag: &str) -> (TempDir, PathBuf) {
    let base = TempDir::new(tag);
    let www = base.path().join("www");
    std::fs::create_dir_all(www.join("sub")).unwrap();
    base.write("secret.txt", "TOP-SECRET");
    base.write("outside/secret.txt", "TOP-SECRET");
    base.write("www/a.txt", "inside");
    base.write("www/sub/b.txt", "inside too");
    symlink(base.path().join("secret.txt"), www.join("abs-link")).unwrap();
    symlink("../secret.txt", www.join("rel-link")).unwrap();
    symlink("../../outside", www.join("sub/dir-link")).unwrap();
    symlink("a.txt", www.join("inside-link")).unwrap();
    (base, www)
}

fn start_at(dir: &Path, args: &[&str]) -> Pounce {
    let app = format!("static:{}", dir.display());
    let mut all = vec![app.as_str(), "--port", "0", "--workers", "2"];
    all.extend_from_slice(args);
    let mut cmd = common::command(&all);
    for v in STATIC_ENV {
        cmd.env_remove(v);
    }
    Pounce::spawn(cmd)
}

#[test]
fn traversal_is_refused_however_it_is_spelt() {
    let (_base, www) = escape_fixture("traversal");
    let p = start_at(&www, &[]);
    for path in [
        "/../secret.txt",
        "/sub/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/.%2e/secret.txt",
        "/sub/%2e%2e/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/sub%2f..%2f..%2fsecret.txt",
        "/%2e%2e%2fsecret.txt",
        "/..%5csecret.txt",
        "/sub/..%5c..%5csecret.txt",
        "/..\\secret.txt",
        "/sub\\..\\..\\secret.txt",
        "/a.txt%00.html",
        "/%00",
        "/%",
        "/%zz",
    ] {
        let raw = common::raw(
            p.addr,
            format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        let status: u16 = raw.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        assert!([400, 403, 404].contains(&status), "{path}: {raw}");
        assert!(!raw.contains("TOP-SECRET"), "{path} leaked the file: {raw}");
    }
    // Dot segments that stay inside are resolved like a browser would.
    let r = common::get(p.addr, "/sub/../a.txt");
    assert_eq!((r.status, r.text().as_str()), (200, "inside"));
    let r = common::get(p.addr, "/sub/%2e%2e/sub/b.txt");
    assert_eq!((r.status, r.text().as_str()), (200, "inside too"));
}

#[test]
fn symlinks_out_of_the_root_are_refused() {
    let (_base, www) = escape_fixture("symlinks");
    let p = start_at(&www, &[]);
    for path in ["/abs-link", "/rel-link", "/sub/dir-link/secret.txt", "/sub/dir-link", "/sub/dir-link/"] {
        let r = common::get(p.addr, path);
        assert!([403, 404].contains(&r.status), "{path}: {} {}", r.status, r.text());
        assert!(!r.text().contains("TOP-SECRET"), "{path}");
        assert_eq!(r.header("location"), None, "{path}: no redirect for a directory outside");
    }
    // A symlink that stays inside is followed.
    let r = common::get(p.addr, "/inside-link");
    assert_eq!((r.status, r.text().as_str()), (200, "inside"));
}

#[test]
fn dotfiles_are_hidden_unless_asked_for() {
    let d = TempDir::new("hidden");
    d.write(".env", "SECRET=1");
    d.write(".git/config", "[core]");
    d.write("sub/.htpasswd", "admin:x");
    d.write(".well-known/acme-challenge/tok", "acme");
    let p = start(&d, &[]);
    for path in ["/.env", "/.git/config", "/sub/.htpasswd", "/%2eenv", "/.git/"] {
        let r = common::get(p.addr, path);
        assert_eq!(r.status, 404, "{path}");
    }
    let r = common::get(p.addr, "/.well-known/acme-challenge/tok");
    assert_eq!((r.status, r.text().as_str()), (200, "acme"), "RFC 8615 paths are served");
    drop(p);

    let p = start(&d, &["--static-hidden"]);
    assert_eq!(common::get(p.addr, "/.env").text(), "SECRET=1");
    assert_eq!(common::get(p.addr, "/sub/.htpasswd").status, 200);
    drop(p);
    let p = start_env(&d, &[], &[("POUNCE_STATIC_HIDDEN", "true")]);
    assert_eq!(common::get(p.addr, "/.git/config").text(), "[core]");
    drop(p);
    let p = start_env(&d, &["--static-hidden=false"], &[("POUNCE_STATIC_HIDDEN", "true")]);
    assert_eq!(common::get(p.addr, "/.env").status, 404, "the flag beats the environment");
}

#[test]
fn directories_redirect_serve_index_and_never_list() {
    let d = TempDir::new("dirs");
    d.write("docs/index.html", "docs home");
    d.write("docs/page.txt", "page");
    d.write("docs/deeper/index.html", "deeper");
    std::fs::create_dir_all(d.path().join("empty")).unwrap();
    d.write("nolist/file.txt", "x");
    let p = start(&d, &[]);

    let r = common::get(p.addr, "/docs");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/docs/"));
    let r = common::get(p.addr, "/docs?lang=en&x=1");
    assert_eq!((r.status, r.header("location")), (301, Some("/docs/?lang=en&x=1")), "query kept");
    let r = common::get(p.addr, "/docs/deeper");
    assert_eq!(r.header("location"), Some("/docs/deeper/"));
    let r = common::get(p.addr, "//docs");
    assert_eq!(r.header("location"), Some("/docs/"), "never a protocol-relative //host");

    let r = common::get(p.addr, "/docs/");
    assert_eq!((r.status, r.text().as_str()), (200, "docs home"));
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    assert_eq!(common::get(p.addr, "/docs/deeper/").text(), "deeper");

    // No listings: a directory without index.html is 404, with or without the slash.
    for path in ["/empty/", "/nolist/"] {
        let r = common::get(p.addr, path);
        assert_eq!(r.status, 404, "{path}");
        assert!(!r.text().contains("file.txt"));
    }
    assert_eq!(common::get(p.addr, "/empty").status, 301);
}

in_both_modes!(
    five_mib_file_arrives_intact,
    five_mib_file_arrives_intact_through_io_uring_reads,
    five_mib_file_arrives_intact_with
);

fn five_mib_file_arrives_intact_with(mode: &[&str]) {
    let d = TempDir::new("big");
    let data = pattern(5 << 20, 42);
    d.write("big.bin", &data);
    let p = start(&d, mode);
    // Twice on one connection: the second from the open-file cache.
    let mut c = Client::connect(p.addr);
    for _ in 0..2 {
        let r = c.get("/big.bin");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-length"), Some("5242880"));
        assert_eq!(r.body.len(), data.len());
        assert_eq!(checksum(&r.body), checksum(&data), "content differs");
        assert!(r.body == data);
    }
}

in_both_modes!(
    ranges_at_both_ends_and_unsatisfiable,
    ranges_at_both_ends_and_unsatisfiable_through_io_uring_reads,
    ranges_at_both_ends_and_unsatisfiable_with
);

fn ranges_at_both_ends_and_unsatisfiable_with(mode: &[&str]) {
    let d = TempDir::new("ranges");
    let data = pattern(5 << 20, 9);
    let size = data.len();
    d.write("big.bin", &data);
    d.write("small.txt", "0123456789");
    let p = start(&d, mode);
    let range = |path: &str, spec: &str| get_with(p.addr, path, &[("Range", spec)]);

    let r = range("/big.bin", "bytes=0-99");
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some(format!("bytes 0-99/{size}").as_str()));
    assert_eq!(r.body, &data[..100]);
    // Suffix: the last 100 bytes.
    let r = range("/big.bin", "bytes=-100");
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range").unwrap(), format!("bytes {}-{}/{size}", size - 100, size - 1));
    assert_eq!(r.body, &data[size - 100..]);
    // Open-ended from the middle: a large, streamed part.
    let from = size / 2 + 3;
    let r = range("/big.bin", &format!("bytes={from}-"));
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-length").unwrap(), (size - from).to_string());
    assert!(r.body == data[from..], "open range content");
    // Last byte, first byte, clamped end.
    assert_eq!(range("/big.bin", &format!("bytes={}-", size - 1)).body, &data[size - 1..]);
    assert_eq!(range("/big.bin", "bytes=0-0").body, &data[..1]);
    let r = range("/small.txt", "bytes=5-1000");
    assert_eq!((r.status, r.text().as_str()), (206, "56789"));
    assert_eq!(r.header("content-range"), Some("bytes 5-9/10"));

    // Unsatisfiable: 416 with the size.
    for spec in [format!("bytes={size}-"), "bytes=-0".into(), format!("bytes={}-{}", size + 10, size + 20)] {
        let r = range("/big.bin", &spec);
        assert_eq!(r.status, 416, "{spec}");
        assert_eq!(r.header("content-range"), Some(format!("bytes */{size}").as_str()), "{spec}");
    }
    // Several disjoint ranges: the whole file (allowed by RFC 9110).
    let r = range("/small.txt", "bytes=0-1,5-6");
    assert_eq!((r.status, r.text().as_str()), (200, "0123456789"));
    // A Range we cannot parse is ignored.
    assert_eq!(range("/small.txt", "bytes=x-y").status, 200);
    assert_eq!(range("/small.txt", "lines=1-2").status, 200);

    // If-Range: honoured only with the current strong ETag (or exact date).
    let etag = common::get(p.addr, "/small.txt").header("etag").unwrap().to_string();
    let lm = common::get(p.addr, "/small.txt").header("last-modified").unwrap().to_string();
    let r = get_with(p.addr, "/small.txt", &[("Range", "bytes=0-1"), ("If-Range", &etag)]);
    assert_eq!((r.status, r.text().as_str()), (206, "01"));
    let r = get_with(p.addr, "/small.txt", &[("Range", "bytes=0-1"), ("If-Range", &lm)]);
    assert_eq!(r.status, 206);
    let r = get_with(p.addr, "/small.txt", &[("Range", "bytes=0-1"), ("If-Range", "\"stale\"")]);
    assert_eq!((r.status, r.text().as_str()), (200, "0123456789"));
    let weak = format!("W/{etag}");
    let r = get_with(p.addr, "/small.txt", &[("Range", "bytes=0-1"), ("If-Range", &weak)]);
    assert_eq!(r.status, 200, "a weak validator never satisfies If-Range");

    // HEAD ignores Range (defined for GET only).
    let h = request(p.addr, "HEAD", "/small.txt", &[("Range", "bytes=0-1")]);
    assert_eq!((h.status, h.header("content-length")), (200, Some("10")));
}

#[test]
fn conditional_requests_get_304_and_412() {
    let d = TempDir::new("cond");
    let f = d.write("a.txt", "version 1");
    let p = start(&d, &[]);
    let first = common::get(p.addr, "/a.txt");
    let etag = first.header("etag").unwrap().to_string();
    let lm = first.header("last-modified").unwrap().to_string();
    let cond = |h: &[(&str, &str)]| get_with(p.addr, "/a.txt", h);

    for inm in [etag.clone(), format!("W/{etag}"), format!("\"other\", {etag}"), "*".into()] {
        let r = cond(&[("If-None-Match", &inm)]);
        assert_eq!(r.status, 304, "If-None-Match: {inm}");
        assert!(r.body.is_empty());
        assert_eq!(r.header("etag"), Some(etag.as_str()));
        assert_eq!(r.header("cache-control"), Some("public, max-age=3600"));
    }
    assert_eq!(cond(&[("If-None-Match", "\"other\"")]).status, 200);
    assert_eq!(cond(&[("If-Modified-Since", &lm)]).status, 304);
    assert_eq!(cond(&[("If-Modified-Since", "Thu, 01 Jan 1970 00:00:01 GMT")]).status, 200);
    assert_eq!(cond(&[("If-Modified-Since", "not a date")]).status, 200);
    // If-None-Match takes precedence over If-Modified-Since, both ways.
    assert_eq!(cond(&[("If-None-Match", "\"other\""), ("If-Modified-Since", &lm)]).status, 200);
    let r = cond(&[("If-None-Match", &etag), ("If-Modified-Since", "Thu, 01 Jan 1970 00:00:01 GMT")]);
    assert_eq!(r.status, 304);
    // HEAD too.
    assert_eq!(request(p.addr, "HEAD", "/a.txt", &[("If-None-Match", &etag)]).status, 304);
    // If-Match / If-Unmodified-Since.
    assert_eq!(cond(&[("If-Match", &etag)]).status, 200);
    assert_eq!(cond(&[("If-Match", "\"other\"")]).status, 412);
    assert_eq!(cond(&[("If-Unmodified-Since", "Thu, 01 Jan 1970 00:00:01 GMT")]).status, 412);

    // A changed file (same size, even) has a new ETag at once: the cache
    // revalidates every request.
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&f, "version 2").unwrap();
    let r = cond(&[("If-None-Match", &etag)]);
    assert_eq!((r.status, r.text().as_str()), (200, "version 2"));
    assert_ne!(r.header("etag"), Some(etag.as_str()));
    // Replaced by rename (a new inode), then deleted.
    let tmp = d.write("a.txt.new", "version 3, longer");
    std::fs::rename(&tmp, &f).unwrap();
    assert_eq!(common::get(p.addr, "/a.txt").text(), "version 3, longer");
    std::fs::remove_file(&f).unwrap();
    assert_eq!(common::get(p.addr, "/a.txt").status, 404);
}

#[test]
fn precompressed_siblings_follow_accept_encoding() {
    let d = TempDir::new("precomp");
    d.write("app.js", "IDENTITY app.js");
    d.write("app.js.br", "BROTLI app.js");
    d.write("app.js.gz", "GZIP app.js");
    d.write("only-gz.css", "IDENTITY css");
    d.write("only-gz.css.gz", "GZIP css");
    d.write("plain.txt", "plain");
    let p = start(&d, &[]);
    let ae = |path: &str, v: Option<&str>| match v {
        Some(v) => get_with(p.addr, path, &[("Accept-Encoding", v)]),
        None => common::get(p.addr, path),
    };

    let r = ae("/app.js", Some("gzip, deflate, br"));
    assert_eq!(r.text(), "BROTLI app.js");
    assert_eq!(r.header("content-encoding"), Some("br"));
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    assert_eq!(r.header("content-type"), Some("text/javascript; charset=utf-8"), "the original's type");
    let br_etag = r.header("etag").unwrap().to_string();

    let r = ae("/app.js", Some("gzip"));
    assert_eq!((r.text().as_str(), r.header("content-encoding")), ("GZIP app.js", Some("gzip")));
    let gz_etag = r.header("etag").unwrap().to_string();
    assert_ne!(br_etag, gz_etag, "each representation has its own ETag");
    assert_eq!(ae("/app.js", Some("br;q=0, gzip")).text(), "GZIP app.js", "q=0 refuses br");
    assert_eq!(ae("/app.js", Some("br;q=0.5, gzip;q=0.9")).text(), "GZIP app.js");
    assert_eq!(ae("/app.js", Some("*")).text(), "BROTLI app.js");

    // Identity when nothing acceptable, still with Vary (a sibling exists).
    for v in [None, Some("identity"), Some("gzip;q=0, br;q=0"), Some("deflate")] {
        let r = ae("/app.js", v);
        assert_eq!(r.text(), "IDENTITY app.js", "{v:?}");
        assert_eq!(r.header("content-encoding"), None, "{v:?}");
        assert_eq!(r.header("vary"), Some("Accept-Encoding"), "{v:?}");
    }
    let r = ae("/only-gz.css", Some("br"));
    assert_eq!((r.text().as_str(), r.header("vary")), ("IDENTITY css", Some("Accept-Encoding")));
    let r = ae("/only-gz.css", Some("br, gzip"));
    assert_eq!(r.text(), "GZIP css");
    let r = ae("/plain.txt", Some("gzip, br"));
    assert_eq!((r.header("content-encoding"), r.header("vary")), (None, None));

    // Conditional and range requests apply to the chosen representation.
    let r = get_with(p.addr, "/app.js", &[("Accept-Encoding", "gzip"), ("If-None-Match", &gz_etag)]);
    assert_eq!(r.status, 304);
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    let r = get_with(p.addr, "/app.js", &[("Accept-Encoding", "gzip"), ("If-None-Match", &br_etag)]);
    assert_eq!(r.status, 200);
    let r = get_with(p.addr, "/app.js", &[("Accept-Encoding", "br"), ("Range", "bytes=0-5")]);
    assert_eq!((r.status, r.text().as_str()), (206, "BROTLI"));
    assert_eq!(r.header("content-range"), Some("bytes 0-5/13"));
    assert_eq!(r.header("content-encoding"), Some("br"));
    // The siblings are also files in their own right.
    let r = common::get(p.addr, "/app.js.gz");
    assert_eq!((r.text().as_str(), r.header("content-type")), ("GZIP app.js", Some("application/gzip")));

    // A sibling removed is never served: the next request falls back at once.
    std::fs::remove_file(d.path().join("app.js.br")).unwrap();
    let r = ae("/app.js", Some("br, gzip"));
    assert_eq!((r.text().as_str(), r.header("content-encoding")), ("GZIP app.js", Some("gzip")));
    // A sibling added next to an unchanged file is noticed within about a
    // second (which siblings exist is remembered that long).
    d.write("plain.txt.gz", "GZIP plain");
    let added = Instant::now();
    loop {
        let r = ae("/plain.txt", Some("gzip"));
        if r.text() == "GZIP plain" {
            assert_eq!(r.header("vary"), Some("Accept-Encoding"));
            break;
        }
        assert_eq!(r.text(), "plain");
        assert!(added.elapsed() < Duration::from_secs(3), "the new sibling was not picked up");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn cache_control_is_configurable_by_flag_and_environment() {
    let d = TempDir::new("cc");
    d.write("index.html", "i");
    d.write("a.css", "a");
    let p = start(
        &d,
        &["--cache-control", "public, max-age=31536000, immutable", "--index-cache-control", "off"],
    );
    let r = common::get(p.addr, "/a.css");
    assert_eq!(r.header("cache-control"), Some("public, max-age=31536000, immutable"));
    assert_eq!(common::get(p.addr, "/").header("cache-control"), None, "off sends none");
    drop(p);
    let env =
        [("POUNCE_CACHE_CONTROL", "no-store"), ("POUNCE_INDEX_CACHE_CONTROL", "max-age=0, must-revalidate")];
    let p = start_env(&d, &[], &env);
    assert_eq!(common::get(p.addr, "/a.css").header("cache-control"), Some("no-store"));
    assert_eq!(common::get(p.addr, "/").header("cache-control"), Some("max-age=0, must-revalidate"));
}

/// Runs pounce expecting it to stop at once; its exit code and stderr.
fn run_to_exit(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = common::command(args);
    for v in STATIC_ENV {
        cmd.env_remove(v);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            let mut err = String::new();
            child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            return (st.code().unwrap_or(-1), err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("pounce {args:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn bad_static_options_exit_2_naming_the_option() {
    let d = TempDir::new("badopts");
    let app = d.app();
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        (
            &["--cache-control", "public; max-age=60"],
            &[],
            "error: cache_control must be a Cache-Control value",
        ),
        (&["--index-cache-control", ""], &[], "error: index_cache_control must be"),
        (&[], &[("POUNCE_CACHE_CONTROL", "max-age=")], "(from POUNCE_CACHE_CONTROL)"),
        (&["--static-hidden=maybe"], &[], "error: static_hidden must be true or false, got 'maybe'"),
        (&[], &[("POUNCE_STATIC_HIDDEN", "perhaps")], "(from POUNCE_STATIC_HIDDEN)"),
        (&["--sendfile=sometimes"], &[], "error: sendfile must be true or false, got 'sometimes'"),
        (&[], &[("POUNCE_SENDFILE", "2")], "(from POUNCE_SENDFILE)"),
    ];
    for (args, env, want) in cases {
        let mut all = vec![app.as_str(), "--port", "0"];
        all.extend_from_slice(args);
        let (code, err) = run_to_exit(&all, env);
        assert_eq!(code, 2, "{args:?} {env:?}: {err}");
        assert!(err.contains(want), "{args:?} {env:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    }
}

#[test]
fn missing_or_bad_directory_exits_2_before_binding() {
    let d = TempDir::new("missing");
    let gone = d.path().join("not-here");
    let file = d.write("file.txt", "x");
    let cases = [
        (
            format!("static:{}", gone.display()),
            format!("error: static directory '{}' does not exist", gone.display()),
        ),
        (
            format!("static:{}", file.display()),
            format!("error: static directory '{}' is not a directory", file.display()),
        ),
        ("static:".to_string(), "error: static needs a directory".to_string()),
    ];
    for (app, want) in cases {
        let (code, err) = run_to_exit(&[&app, "--port", "0"], &[]);
        assert_eq!(code, 2, "{app}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{app}: {err}");
        assert!(err.starts_with(&want), "{app}: got {err:?}, want {want:?}");
        assert!(!err.contains("Listening"), "{app}");
    }
}

/// A client socket with a small receive buffer, so a large download cannot
/// hide in kernel buffers: the server is still sending while we read.
fn small_rcvbuf_connect(addr: SocketAddr) -> TcpStream {
    use std::os::fd::FromRawFd;
    let SocketAddr::V4(v4) = addr else { panic!("IPv4 only") };
    // SAFETY: plain socket calls on a descriptor we create and then own.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let size: libc::c_int = 32 * 1024;
        let r = libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &size as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        assert_eq!(r, 0);
        let sa = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: v4.port().to_be(),
            sin_addr: libc::in_addr { s_addr: u32::from(*v4.ip()).to_be() },
            sin_zero: [0; 8],
        };
        let r = libc::connect(
            fd,
            &sa as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        assert_eq!(r, 0, "connect: {}", std::io::Error::last_os_error());
        let s = TcpStream::from_raw_fd(fd);
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }
}

/// Reads the `GET /big.bin` response at about `rate` bytes/s, calling
/// `progress` with the body bytes so far after each read; stops early after
/// `stop_after` body bytes. Returns (head, body, complete).
fn slow_download(
    s: &mut TcpStream,
    rate: f64,
    stop_after: Option<usize>,
    progress: &mut dyn FnMut(usize),
) -> (String, Vec<u8>, bool) {
    use std::io::Write;
    s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    let mut head_end = None;
    let mut want = usize::MAX;
    loop {
        let n = match s.read(&mut chunk) {
            Ok(0) | Err(_) => return split(buf, head_end, false),
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        if head_end.is_none() {
            if let Some(i) = common::find(&buf, b"\r\n\r\n") {
                head_end = Some(i + 4);
                let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
                let len = head.lines().find_map(|l| l.strip_prefix("content-length: ")).unwrap();
                want = i + 4 + len.trim().parse::<usize>().unwrap();
            }
        }
        if let Some(h) = head_end {
            progress(buf.len() - h);
        }
        if buf.len() >= want {
            return split(buf, head_end, true);
        }
        if let (Some(h), Some(stop)) = (head_end, stop_after) {
            if buf.len() - h >= stop {
                return split(buf, head_end, false);
            }
        }
        // Pace: never ahead of `rate`.
        let ahead = buf.len() as f64 / rate - started.elapsed().as_secs_f64();
        if ahead > 0.0 {
            std::thread::sleep(Duration::from_secs_f64(ahead));
        }
    }
}

fn split(mut buf: Vec<u8>, head_end: Option<usize>, complete: bool) -> (String, Vec<u8>, bool) {
    let h = head_end.unwrap_or(buf.len());
    let body = buf.split_off(h);
    (String::from_utf8_lossy(&buf).into_owned(), body, complete)
}

in_both_modes!(
    download_in_progress_at_sigterm_completes_then_exit_0,
    download_in_progress_at_sigterm_completes_then_exit_0_through_io_uring_reads,
    download_in_progress_at_sigterm_completes_then_exit_0_with
);

fn download_in_progress_at_sigterm_completes_then_exit_0_with(mode: &[&str]) {
    let d = TempDir::new("drain");
    let data = pattern(12 << 20, 3);
    d.write("big.bin", &data);
    let mut p = start(&d, &[mode, &["--shutdown-timeout", "20"]].concat());
    let mut s = small_rcvbuf_connect(p.addr);
    // SIGTERM once 1 MiB of the body has arrived: the download is under way.
    let mut signalled = false;
    let mut at_signal = |got: usize| {
        if !signalled && got >= 1 << 20 {
            p.sigterm();
            signalled = true;
        }
    };
    // 12 MiB at ~4 MiB/s: about 3 s, most of it after the signal.
    let (head, body, complete) = slow_download(&mut s, 4.0 * 1024.0 * 1024.0, None, &mut at_signal);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(complete, "download cut short at {} of {} bytes; log:\n{}", body.len(), data.len(), p.log_text());
    assert_eq!(checksum(&body), checksum(&data));
    assert!(body == data);
    assert!(
        p.wait_log("draining 1 active connection", Duration::from_secs(5)).is_some(),
        "the download was in progress at the signal; log:\n{}",
        p.log_text()
    );
    // Then the connection closes cleanly (FIN, not a reset).
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert!(matches!(s.read(&mut [0u8; 1]), Ok(0)), "the drained connection must close");
    assert_eq!(p.wait_exit(Duration::from_secs(15)), Some(0), "log:\n{}", p.log_text());
    assert!(p.wait_log("All workers stopped", Duration::from_secs(1)).is_some());
}

in_both_modes!(
    stalled_download_is_force_closed_at_shutdown_timeout,
    stalled_download_is_force_closed_at_shutdown_timeout_through_io_uring_reads,
    stalled_download_is_force_closed_at_shutdown_timeout_with
);

/// Serves a 12 MiB `/big.bin` with `args`, downloads 256 KiB of it, then
/// stops reading, so the server's writes stall. Returns the directory (keep
/// it), the server, the socket, its open sockets before the download, and the
/// body bytes read.
fn stall_a_download(tag: &str, args: &[&str]) -> (TempDir, Pounce, TcpStream, usize, usize) {
    let d = TempDir::new(tag);
    d.write("big.bin", pattern(12 << 20, 5));
    let p = start(&d, args);
    let sockets = common::settled_sockets(p.pid(), None);
    let mut s = small_rcvbuf_connect(p.addr);
    let (head, body, complete) = slow_download(&mut s, 64.0 * 1024.0 * 1024.0, Some(256 * 1024), &mut |_| {});
    assert!(head.starts_with("HTTP/1.1 200") && !complete && body.len() >= 256 * 1024);
    (d, p, s, sockets, body.len())
}

fn stalled_download_is_force_closed_at_shutdown_timeout_with(mode: &[&str]) {
    let (_d, mut p, mut s, _, got) =
        stall_a_download("stall", &[mode, &["--shutdown-timeout", "1"]].concat());
    let signalled = Instant::now();
    p.sigterm();
    assert_eq!(p.wait_exit(Duration::from_secs(10)), Some(3), "log:\n{}", p.log_text());
    let took = signalled.elapsed();
    assert!(took < Duration::from_secs(5), "forced at ~1 s, took {took:?}");
    assert!(p.wait_log("force terminating", Duration::from_secs(1)).is_some(), "log:\n{}", p.log_text());
    // The client sees the end of the stream (FIN or reset), never the rest.
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(got + rest.len() < 12 << 20, "the body must not have completed");
}

in_both_modes!(
    a_stalled_download_is_cut_and_its_socket_closed,
    a_stalled_download_is_cut_and_its_socket_closed_through_io_uring_reads,
    a_stalled_download_is_cut_and_its_socket_closed_with
);

/// A client that stops reading mid-body is cut off after request_timeout
/// without progress, and the server really lets go of the socket (the wait
/// for room in it is cancelled), although the client still reads nothing.
fn a_stalled_download_is_cut_and_its_socket_closed_with(mode: &[&str]) {
    let (_d, p, mut s, baseline, got) =
        stall_a_download("stallcut", &[mode, &["--request-timeout", "1"]].concat());
    // ~1 s without progress, then closed; the count settles within 3 s more.
    std::thread::sleep(Duration::from_millis(1000));
    let now = common::settled_sockets(p.pid(), Some(baseline));
    assert_eq!(now, baseline, "the stalled download's socket is still open in the server");
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(got + rest.len() < 12 << 20, "the body must not have completed");
    assert_eq!(common::get(p.addr, "/big.bin").status, 200, "the server still serves");
}

in_both_modes!(
    a_slow_download_outlasting_request_timeout_is_not_cut,
    a_slow_download_outlasting_request_timeout_is_not_cut_through_io_uring_reads,
    a_slow_download_outlasting_request_timeout_is_not_cut_with
);

fn a_slow_download_outlasting_request_timeout_is_not_cut_with(mode: &[&str]) {
    // request_timeout bounds the handler (reading the file is fast); the
    // client's slowness is bounded per write instead. 12 MiB at ~4 MiB/s
    // takes ~3 s, three times request_timeout.
    let d = TempDir::new("slowdl");
    let data = pattern(12 << 20, 9);
    d.write("big.bin", &data);
    let p = start(&d, &[mode, &["--request-timeout", "1"]].concat());
    let mut s = small_rcvbuf_connect(p.addr);
    let t = Instant::now();
    let (head, body, complete) = slow_download(&mut s, 4.0 * 1024.0 * 1024.0, None, &mut |_| {});
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(t.elapsed() > Duration::from_millis(1500), "the download really outlasted request_timeout");
    assert!(complete, "cut at {} of {} bytes; log:\n{}", body.len(), data.len(), p.log_text());
    assert!(body == data);
}

in_both_modes!(
    pipelined_requests_keep_their_order_around_file_bodies,
    pipelined_requests_keep_their_order_around_file_bodies_through_io_uring_reads,
    pipelined_requests_keep_their_order_around_file_bodies_with
);

/// A file body sent by `sendfile(2)` must not overtake the responses queued
/// before it in the ring, nor be overtaken by those after it.
fn pipelined_requests_keep_their_order_around_file_bodies_with(mode: &[&str]) {
    let d = TempDir::new("pipeline");
    let big = pattern(3 << 20, 11);
    let mid = pattern(100 * 1024, 12);
    d.write("big.bin", &big);
    d.write("mid.bin", &mid);
    d.write("a.txt", "first\n");
    d.write("b.txt", "last\n");
    let p = start(&d, mode);
    let mut c = Client::connect(p.addr);
    let mut burst = Vec::new();
    for path in ["/a.txt", "/big.bin", "/a.txt", "/mid.bin", "/missing", "/b.txt"] {
        burst.extend_from_slice(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    }
    burst.extend_from_slice(b"GET /big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=1000-1999\r\n\r\n");
    c.send(&burst);
    let mut next = || c.read_response(false).expect("a response");
    assert_eq!(next().text(), "first\n");
    let r = next();
    assert_eq!(r.status, 200);
    assert!(r.body == big, "big body differs (checksum {:x})", checksum(&r.body));
    assert_eq!(next().text(), "first\n");
    assert!(next().body == mid);
    assert_eq!(next().status, 404);
    assert_eq!(next().text(), "last\n");
    let r = next();
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &big[1000..2000]);

    // A first request padded so that the second one's head straddles the
    // server's 4 KiB read buffer: the first response is handed to the ring
    // before the rest of the second head is read, so it is still in flight
    // when the file's bytes are ready to go.
    for first_len in [4070, 4080, 4090] {
        let mut first = b"GET /missing HTTP/1.1\r\nHost: t\r\nX-Pad: ".to_vec();
        first.resize(first_len - 4, b'p');
        first.extend_from_slice(b"\r\n\r\n");
        first.extend_from_slice(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n");
        let mut c = Client::connect(p.addr);
        c.send(&first);
        assert_eq!(c.read_response(false).expect("the 404").status, 404, "pad {first_len}");
        let r = c.read_response(false).expect("the file");
        assert!(r.body == big, "pad {first_len}: body differs (checksum {:x})", checksum(&r.body));
    }
}

in_both_modes!(
    a_file_truncated_while_it_is_sent_closes_only_that_connection,
    a_file_truncated_while_it_is_sent_closes_only_that_connection_through_io_uring_reads,
    a_file_truncated_while_it_is_sent_closes_only_that_connection_with
);

/// The head promised the old length; the server cannot keep that promise,
/// so it closes the connection (the client sees a short body, never bytes
/// from past the new end), and goes on serving everyone else.
fn a_file_truncated_while_it_is_sent_closes_only_that_connection_with(mode: &[&str]) {
    let d = TempDir::new("truncate");
    let data = pattern(12 << 20, 21);
    let path = d.write("big.bin", &data);
    d.write("ok.txt", "still here\n");
    let p = start(&d, mode);
    let mut s = small_rcvbuf_connect(p.addr);
    let mut truncated = false;
    let mut at = |got: usize| {
        if !truncated && got >= 1 << 20 {
            std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(2 << 20).unwrap();
            truncated = true;
        }
    };
    let (head, body, complete) = slow_download(&mut s, 16.0 * 1024.0 * 1024.0, None, &mut at);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(!complete, "the body cannot be complete: the file lost 10 MiB");
    assert!(body.len() < 12 << 20);
    let n = body.len().min(2 << 20);
    assert!(body[..n] == data[..n], "bytes before the cut must be the file's");
    assert_eq!(common::get(p.addr, "/ok.txt").text(), "still here\n");
    assert!(
        p.wait_log("connection closed", Duration::from_secs(5)).is_some(),
        "the cut is logged; log:\n{}",
        p.log_text()
    );
}

#[test]
fn clients_vanishing_mid_download_cost_nothing_but_their_connection() {
    let d = TempDir::new("vanish");
    d.write("big.bin", pattern(12 << 20, 31));
    d.write("ok.txt", "fine\n");
    let p = start(&d, &[]);
    for _ in 0..5 {
        let mut s = small_rcvbuf_connect(p.addr);
        // Stop after a little of the body, then reset (SO_LINGER 0): the
        // server's next sendfile meets EPIPE/ECONNRESET (and, were SIGPIPE
        // not ignored, the process would die).
        let (head, body, complete) =
            slow_download(&mut s, 64.0 * 1024.0 * 1024.0, Some(64 * 1024), &mut |_| {});
        assert!(head.starts_with("HTTP/1.1 200") && !complete && !body.is_empty());
        let linger = libc::linger { l_onoff: 1, l_linger: 0 };
        // SAFETY: setsockopt on a socket we own, with a valid linger struct.
        let r = unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&s),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                &linger as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            )
        };
        assert_eq!(r, 0);
        drop(s);
    }
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(common::get(p.addr, "/ok.txt").text(), "fine\n");
    let log = p.log_text();
    assert!(!log.contains("failed"), "a vanished client is not an error worth a warning:\n{log}");
}
