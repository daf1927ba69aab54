//! Prometheus metrics (`--metrics-addr`) against the real binary: the
//! exposition passes `promtool check metrics`, the counts equal the traffic
//! sent (by status code, by kind of timeout, in the histogram), open
//! connections are followed, a drain shows while `/metrics` keeps answering
//! until the process exits, the app's port never serves it, the listener is
//! strict about what it answers, bad and taken addresses are refused, a hot
//! upgrade's successor takes the port over, and the Grafana dashboard only
//! uses metrics a real scrape has.
//!
//! `promtool` is Debian's `prometheus` package (CI installs it). Without it
//! these tests fail, unless POUNCE_TEST_NO_PROMTOOL is set, which skips only
//! the promtool check, loudly.

mod common;

use common::{Client, Pounce, command, get, output_within, raw};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const EXIT: Duration = Duration::from_secs(10);
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

// ---------------------------------------------------------------- helpers

/// `pounce demo <args> --metrics-addr 127.0.0.1:0`.
fn start(args: &[&str]) -> Pounce {
    let mut all = vec!["demo", "--metrics-addr", "127.0.0.1:0"];
    all.extend_from_slice(args);
    let p = Pounce::start(&all);
    assert!(p.metrics_addr.is_some(), "no `Metrics on` line:\n{}", p.log_text());
    p
}

#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// One scrape, parsed.
struct Scrape {
    text: String,
    samples: Vec<Sample>,
    /// `# TYPE` lines: name → type.
    types: BTreeMap<String, String>,
}

impl Scrape {
    fn of(p: &Pounce) -> Scrape {
        let r = get(p.metrics_addr.unwrap(), "/metrics");
        assert_eq!(r.status, 200, "{}", r.head);
        assert_eq!(r.header("content-type"), Some(TEXT_FORMAT));
        assert!(r.closes(), "every metrics answer closes: {}", r.head);
        Scrape::parse(r.text())
    }

    fn parse(text: String) -> Scrape {
        let mut samples = Vec::new();
        let mut types = BTreeMap::new();
        for line in text.lines() {
            if let Some(t) = line.strip_prefix("# TYPE ") {
                let (name, kind) = t.split_once(' ').unwrap();
                assert!(types.insert(name.to_string(), kind.to_string()).is_none(), "{name} typed twice");
                continue;
            }
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line:?}"));
            let value = match value {
                "+Inf" => f64::INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("value in {line:?}")),
            };
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => (n, parse_labels(l.strip_suffix('}').unwrap())),
                None => (series, BTreeMap::new()),
            };
            samples.push(Sample { name: name.to_string(), labels, value });
        }
        Scrape { text, samples, types }
    }

    /// The sum of `name`'s samples whose labels include `with`.
    fn sum(&self, name: &str, with: &[(&str, &str)]) -> f64 {
        self.matching(name, with).map(|s| s.value).sum()
    }

    fn matching<'a>(&'a self, name: &'a str, with: &'a [(&str, &str)]) -> impl Iterator<Item = &'a Sample> {
        self.samples.iter().filter(move |s| {
            s.name == name && with.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(v))
        })
    }

    fn one(&self, name: &str) -> f64 {
        let all: Vec<&Sample> = self.matching(name, &[]).collect();
        assert_eq!(all.len(), 1, "{name}: {all:?}");
        all[0].value
    }

    /// Requests by status code, summed over workers.
    fn by_code(&self) -> BTreeMap<u16, u64> {
        let mut m = BTreeMap::new();
        for s in self.matching("pounce_requests_total", &[]) {
            *m.entry(s.labels["code"].parse().unwrap()).or_default() += s.value as u64;
        }
        m.retain(|_, n| *n > 0);
        m
    }
}

fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = s;
    while !rest.is_empty() {
        let (k, after) = rest.split_once("=\"").unwrap();
        let mut v = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next().expect("closing quote") {
                (i, '"') => break i,
                (_, '\\') => match chars.next().unwrap().1 {
                    'n' => v.push('\n'),
                    c => v.push(c),
                },
                (_, c) => v.push(c),
            }
        };
        out.insert(k.to_string(), v);
        rest = after[end + 1..].trim_start_matches(',');
    }
    out
}

/// `promtool check metrics` on `text`: must exit 0 with no lint complaint.
fn promtool_check(text: &str) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if std::env::var_os("POUNCE_TEST_NO_PROMTOOL").is_some() => {
            println!("SKIPPED the promtool check ({e}): POUNCE_TEST_NO_PROMTOOL is set");
            eprintln!("SKIPPED the promtool check ({e}): POUNCE_TEST_NO_PROMTOOL is set");
            return;
        }
        Err(e) => panic!(
            "promtool not found ({e}): `apt-get install prometheus` (CI does), \
             or set POUNCE_TEST_NO_PROMTOOL=1 to skip this check"
        ),
    };
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "promtool check metrics: {said}\n{text}");
}

/// Waits until `f` holds for a fresh scrape (3 s at most); the last scrape.
fn scrape_until(p: &Pounce, what: &str, f: impl Fn(&Scrape) -> bool) -> Scrape {
    let t = Instant::now();
    loop {
        let s = Scrape::of(p);
        if f(&s) {
            return s;
        }
        assert!(t.elapsed() < Duration::from_secs(3), "{what} never held:\n{}", s.text);
        thread::sleep(Duration::from_millis(50));
    }
}

fn reserve_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

// ---------------------------------------------------------------- tests

#[test]
fn the_exposition_passes_promtool_and_counts_every_response_by_code() {
    let p = start(&["--health-check-path", "/health", "--max-body-size", "8"]);
    let before = Scrape::of(&p);
    promtool_check(&before.text);
    assert!(before.by_code().is_empty(), "{}", before.text);
    assert_eq!(before.one("pounce_request_duration_seconds_count"), 0.0);
    assert_eq!(before.one("pounce_draining"), 0.0);
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(before.sum("pounce_build_info", &[("version", version)]), 1.0);

    // 5 + 1 + 1 + 1 answered 200, two 404, a 405, a 400, a 413.
    let mut c = Client::connect(p.addr);
    for _ in 0..3 {
        assert_eq!(c.get("/").status, 200);
    }
    assert_eq!(get(p.addr, "/").status, 200);
    assert_eq!(get(p.addr, "/json").status, 200);
    assert_eq!(c.get("/health").status, 200);
    assert_eq!(c.get("/sleep/30").status, 200);
    assert_eq!(c.get("/nope").status, 404);
    assert_eq!(get(p.addr, "/nope/either").status, 404);
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc");
    assert_eq!(c.read_response(false).unwrap().status, 200);
    c.send(b"DELETE / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.read_response(false).unwrap().status, 405);
    assert!(
        raw(p.addr, b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: x\r\n\r\n").starts_with("HTTP/1.1 400 ")
    );
    let big = raw(p.addr, b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n");
    assert!(big.starts_with("HTTP/1.1 413 "), "{big}");

    let s = Scrape::of(&p);
    promtool_check(&s.text);
    let want: BTreeMap<u16, u64> = [(200, 8), (400, 1), (404, 2), (405, 1), (413, 1)].into();
    assert_eq!(s.by_code(), want, "{}", s.text);
    // The histogram saw every one of them, once.
    let count = s.one("pounce_request_duration_seconds_count");
    assert_eq!(count, 13.0);
    let buckets: Vec<&Sample> = s.matching("pounce_request_duration_seconds_bucket", &[]).collect();
    assert_eq!(buckets.len(), 17);
    assert!(buckets.windows(2).all(|w| w[0].value <= w[1].value), "cumulative");
    assert_eq!(buckets.last().unwrap().labels["le"], "+Inf");
    assert_eq!(buckets.last().unwrap().value, count);
    assert!(buckets[0].value < count, "the 30 ms sleep is not under 100 us");
    let sum = s.one("pounce_request_duration_seconds_sum");
    assert!((0.03..5.0).contains(&sum), "the sleep alone is 30 ms: {sum}");
    // Both workers are listed, whatever they served.
    for w in ["1", "2"] {
        assert_eq!(s.matching("pounce_connections_active", &[("worker", w)]).count(), 1);
        assert_eq!(s.matching("pounce_request_timeouts_total", &[("worker", w)]).count(), 3);
    }
    assert_eq!(s.sum("pounce_request_timeouts_total", &[]), 0.0);
    assert_eq!(s.one("pounce_drain_rejected_total"), 0.0);
    assert_eq!(s.one("pounce_connections_force_closed_total"), 0.0);
    // The demo's own metrics, through the library API.
    assert_eq!(s.one("demo_echo_bytes_total"), 3.0);
    assert_eq!(s.one("demo_sleep_seconds_count"), 1.0);
    assert!((s.one("demo_sleep_seconds_sum") - 0.03).abs() < 1e-9);
    // Process metrics, sane.
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
    let started = s.one("process_start_time_seconds");
    assert!((now - 60.0..now + 2.0).contains(&started), "started {started}, now {now}");
    assert!(s.one("process_resident_memory_bytes") > 1e6);
    assert!(s.one("process_cpu_seconds_total") >= 0.0);
    let (open, max) = (s.one("process_open_fds"), s.one("process_max_fds"));
    assert!(open >= 5.0 && max >= open, "{open} {max}");
    for (name, kind) in [
        ("pounce_requests_total", "counter"),
        ("pounce_request_duration_seconds", "histogram"),
        ("pounce_connections_active", "gauge"),
        ("process_cpu_seconds_total", "counter"),
        ("demo_sleep_seconds", "histogram"),
    ] {
        assert_eq!(s.types.get(name).map(String::as_str), Some(kind), "{name}");
    }
}

/// Pipelined requests answered without waiting share one clock reading
/// (server/timing.rs); every one is still counted once, by code and in the
/// histogram, and one that waits ends the run before it: the answer queued
/// before a 40 ms handler leaves with that handler's, so both took 40 ms.
#[test]
fn pipelined_requests_are_each_counted_and_a_waiting_one_times_the_run_before_it() {
    let p = start(&["--workers", "1"]);
    let mut c = Client::connect(p.addr);
    c.send(
        b"GET / HTTP/1.1\r\nHost: t\r\n\r\n\
          GET /sleep/40 HTTP/1.1\r\nHost: t\r\n\r\n\
          GET /json HTTP/1.1\r\nHost: t\r\n\r\n\
          GET /nope HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    let statuses: Vec<u16> =
        (0..4).map(|i| c.read_response(false).unwrap_or_else(|| panic!("response {i}")).status).collect();
    assert_eq!(statuses, [200, 200, 200, 404]);

    let s = Scrape::of(&p);
    assert_eq!(s.by_code(), [(200, 3), (404, 1)].into(), "{}", s.text);
    assert_eq!(s.one("pounce_request_duration_seconds_count"), 4.0);
    // The first two took ≥ 40 ms each; the last two, answered after the
    // sleep in one run, far less than that.
    let under = |le: &str| s.sum("pounce_request_duration_seconds_bucket", &[("le", le)]);
    assert_eq!(under("0.025"), 2.0, "{}", s.text);
    assert_eq!(under("+Inf"), 4.0);
    let sum = s.one("pounce_request_duration_seconds_sum");
    assert!((0.08..5.0).contains(&sum), "two requests of >= 40 ms: {sum}");
}

#[test]
fn connections_active_follows_open_keep_alive_connections() {
    let p = start(&[]);
    let mut clients: Vec<Client> = (0..3).map(|_| Client::connect(p.addr)).collect();
    for c in &mut clients {
        assert_eq!(c.get("/").status, 200);
    }
    let s = Scrape::of(&p);
    assert_eq!(s.sum("pounce_connections_active", &[]), 3.0, "{}", s.text);
    assert_eq!(s.sum("pounce_connections_accepted_total", &[]), 3.0);
    clients.truncate(1);
    scrape_until(&p, "1 connection open", |s| s.sum("pounce_connections_active", &[]) == 1.0);
    let mut last = clients.pop().unwrap();
    assert_eq!(last.get("/json").status, 200);
    drop(last);
    let s = scrape_until(&p, "no connection open", |s| s.sum("pounce_connections_active", &[]) == 0.0);
    assert_eq!(s.sum("pounce_connections_accepted_total", &[]), 3.0);
    assert_eq!(s.by_code(), [(200, 4)].into());
}

#[test]
fn a_drain_shows_on_metrics_which_answer_until_the_process_exits() {
    let mut p = start(&["--workers", "1"]);
    let maddr = p.metrics_addr.unwrap();
    let addr = p.addr;
    let slow = thread::spawn(move || {
        let mut c = Client::connect(addr);
        c.send(b"GET /sleep/1500 HTTP/1.1\r\nHost: t\r\n\r\n");
        c.read_response(false)
    });
    thread::sleep(Duration::from_millis(200));
    assert_eq!(Scrape::of(&p).one("pounce_draining"), 0.0);
    p.sigterm();
    p.wait_log("draining 1 active connection(s)", Duration::from_secs(2)).expect("draining");
    let s = Scrape::of(&p);
    assert_eq!(s.one("pounce_draining"), 1.0, "{}", s.text);
    assert_eq!(s.sum("pounce_connections_active", &[]), 1.0);
    // A new connection gets the drain's 503, and it is counted.
    let r = get(addr, "/");
    assert_eq!((r.status, r.header("retry-after")), (503, Some("1")));
    let s = Scrape::of(&p);
    promtool_check(&s.text);
    assert_eq!(s.one("pounce_drain_rejected_total"), 1.0, "{}", s.text);
    assert_eq!(s.by_code(), [(503, 1)].into(), "the slow request is not done yet");
    assert_eq!(s.sum("pounce_connections_accepted_total", &[]), 2.0);
    assert_eq!(slow.join().unwrap().expect("the slow request completes").status, 200);
    assert_eq!(p.wait_exit(EXIT), Some(0), "{}", p.log_text());
    // The listener went with the process, not before.
    assert!(TcpStream::connect_timeout(&maddr, Duration::from_secs(1)).is_err());
    let summary = p.wait_log("Drain finished", Duration::ZERO).unwrap();
    assert!(summary.contains("1 connection(s) answered 503"), "{summary}");
}

#[test]
fn timeouts_are_counted_by_kind_and_by_code() {
    let p = start(&["--request-timeout", "0.4", "--header-timeout", "0.4"]);
    let addr = p.addr;
    let handler = thread::spawn(move || get(addr, "/sleep/3000").status);
    let head = thread::spawn(move || raw(addr, b"GET / HTTP/1.1\r\nHo"));
    let body = raw(addr, b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nab");
    assert!(body.starts_with("HTTP/1.1 408 "), "{body}");
    assert!(head.join().unwrap().starts_with("HTTP/1.1 408 "));
    assert_eq!(handler.join().unwrap(), 503);
    let s = Scrape::of(&p);
    for kind in ["header", "body", "handler"] {
        assert_eq!(s.sum("pounce_request_timeouts_total", &[("kind", kind)]), 1.0, "{kind}:\n{}", s.text);
    }
    assert_eq!(s.by_code(), [(408, 2), (503, 1)].into());
    // The 408 for a slow head is timed from its first byte: 0.4 s.
    assert!(s.one("pounce_request_duration_seconds_sum") >= 1.2, "{}", s.text);
    promtool_check(&s.text);
}

#[test]
fn the_app_port_does_not_serve_metrics() {
    let p = start(&[]);
    let r = get(p.addr, "/metrics");
    assert_eq!(r.status, 404, "the demo app answers, not the exposition");
    assert!(!r.text().contains("# TYPE"));
    assert_ne!(p.addr.port(), p.metrics_addr.unwrap().port());
    // Off by default: no listener, no line.
    let p = Pounce::start(&["demo"]);
    assert!(p.metrics_addr.is_none() && p.line_index("Metrics").is_none(), "{}", p.log_text());
}

#[test]
fn the_metrics_listener_answers_get_and_head_on_metrics_only() {
    let p = start(&[]);
    let m = p.metrics_addr.unwrap();
    // Idle connections do not hold scrapes up.
    let idle: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(m).unwrap()).collect();
    let t = Instant::now();
    let full = get(m, "/metrics");
    assert!(t.elapsed() < Duration::from_secs(1));
    let len: usize = full.header("content-length").unwrap().parse().unwrap();
    assert_eq!(len, full.body.len());

    let mut c = Client::connect(m);
    c.send(b"HEAD /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.read_response(true).unwrap();
    assert_eq!((r.status, r.header("content-type")), (200, Some(TEXT_FORMAT)));
    assert!(r.header("content-length").unwrap().parse::<usize>().unwrap() > 1000);
    assert!(c.is_closed_within(Duration::from_secs(2)), "no body, then the close");

    let r = raw(m, b"GET /metrics?name[]=pounce_draining HTTP/1.0\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n") && r.contains("\npounce_draining 0\n"), "{r}");
    let r = raw(m, b"POST /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi");
    assert!(r.starts_with("HTTP/1.1 405 ") && r.contains("\r\nAllow: GET, HEAD\r\n"), "{r}");
    for path in ["/", "/metrics/", "/health"] {
        let r = raw(m, format!("GET {path} HTTP/1.1\r\n\r\n").as_bytes());
        assert!(r.starts_with("HTTP/1.1 404 "), "{path}: {r}");
    }
    assert!(raw(m, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n").starts_with("HTTP/1.1 400 "));
    let huge = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(9000));
    assert!(raw(m, huge.as_bytes()).starts_with("HTTP/1.1 431 "));
    drop(idle);
    assert_eq!(Scrape::of(&p).by_code(), BTreeMap::new(), "scrapes are not app requests");
}

#[test]
fn a_taken_metrics_port_exits_1_and_the_apps_own_address_exits_2() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let out = output_within(
        command(&["demo", "--port", "0", "--metrics-addr", &addr.to_string()]),
        Duration::from_secs(10),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("metrics_addr: {addr} is already in use")), "{err}");
    assert!(!err.contains("Listening on"), "{err}");

    let port = reserve_port().to_string();
    let out = output_within(
        command(&["demo", "--port", &port, "--metrics-addr", &format!("0.0.0.0:{port}")]),
        Duration::from_secs(10),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.trim().starts_with("error: metrics_addr must not be the app's own address"), "{err}");
}

#[test]
fn a_hot_upgrade_successor_takes_the_metrics_port_over_when_the_old_process_exits() {
    let mport = reserve_port();
    let maddr = format!("127.0.0.1:{mport}");
    let mut old = Pounce::start(&["demo", "--metrics-addr", &maddr, "--workers", "1"]);
    let addr = old.addr;
    let slow = thread::spawn(move || {
        let mut c = Client::connect(addr);
        c.send(b"GET /sleep/1200 HTTP/1.1\r\nHost: t\r\n\r\n");
        c.read_response(false)
    });
    thread::sleep(Duration::from_millis(200));
    let skip = old.lines().len();
    old.signal(libc::SIGUSR2);
    let ready = old
        .wait_log_after(skip, "Upgrade: successor pid", Duration::from_secs(15))
        .unwrap_or_else(|| panic!("no handover:\n{}", old.log_text()));
    let pid: i32 = ready.split("successor pid ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    // From here on, kill the successor whatever happens.
    struct Kill(i32);
    impl Drop for Kill {
        fn drop(&mut self) {
            // SAFETY: kill(2) on the successor this test caused.
            unsafe { libc::kill(self.0, libc::SIGKILL) };
        }
    }
    let _kill = Kill(pid);
    old.wait_log_after(skip, "still served by the previous process", Duration::from_secs(5))
        .unwrap_or_else(|| panic!("the successor did not wait for the port:\n{}", old.log_text()));
    // The handover: the old process starts its drain.
    old.wait_log_after(skip, "Shutting down 1 worker(s)", Duration::from_secs(5))
        .unwrap_or_else(|| panic!("the old process did not hand over:\n{}", old.log_text()));
    // The old process drains, and its metrics say so.
    let s = Scrape::parse(get(maddr.parse().unwrap(), "/metrics").text());
    assert_eq!(s.one("pounce_draining"), 1.0, "{}", s.text);
    assert_eq!(s.sum("pounce_connections_active", &[]), 1.0);
    assert_eq!(slow.join().unwrap().unwrap().status, 200);
    assert_eq!(old.wait_exit(EXIT), Some(0), "{}", old.log_text());
    old.wait_log_after(skip, &format!("Metrics on http://{maddr}/metrics"), Duration::from_secs(5))
        .unwrap_or_else(|| panic!("the successor never took the port:\n{}", old.log_text()));
    // The successor's own counters: from zero, and serving.
    assert_eq!(get(addr, "/").status, 200);
    let s = Scrape::parse(get(maddr.parse().unwrap(), "/metrics").text());
    assert_eq!(s.one("pounce_draining"), 0.0, "{}", s.text);
    assert_eq!(s.by_code(), [(200, 1)].into(), "{}", s.text);
}

// ---------------------------------------------------------- the dashboard

/// The metric names a PromQL expression uses: identifiers that are not
/// functions (followed by `(`), keywords, label names (inside `{...}` and
/// `by (...)`), durations (inside `[...]`), strings or Grafana variables.
fn promql_metrics(expr: &str) -> Vec<String> {
    const KEYWORDS: &[&str] = &["and", "or", "unless", "bool", "offset", "group_left", "group_right"];
    const LABEL_LISTS: &[&str] = &["by", "without", "on", "ignoring", "group_left", "group_right"];
    let b = expr.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let skip_to = |i: &mut usize, close: u8| {
        while *i < b.len() && b[*i] != close {
            if b[*i] == b'"' {
                *i += 1;
                while *i < b.len() && b[*i] != b'"' {
                    *i += if b[*i] == b'\\' { 2 } else { 1 };
                }
            }
            *i += 1;
        }
    };
    while i < b.len() {
        let c = b[i];
        if c == b'{' {
            skip_to(&mut i, b'}');
        } else if c == b'[' {
            skip_to(&mut i, b']');
        } else if c == b'"' {
            i += 1;
            skip_to(&mut i, b'"');
        } else if c == b'$' {
            i += 1;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            continue;
        } else if c.is_ascii_digit() || c == b'.' {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                i += 1;
            }
            continue;
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':') {
                i += 1;
            }
            let word = &expr[start..i];
            let mut j = i;
            while j < b.len() && b[j] == b' ' {
                j += 1;
            }
            // `sum by (le) (...)`: an aggregation with its modifier first.
            let modifier = ["by", "without"]
                .iter()
                .any(|m| expr[j..].strip_prefix(m).is_some_and(|r| r.trim_start().starts_with('(')));
            let call = j < b.len() && b[j] == b'(' || modifier;
            if LABEL_LISTS.contains(&word) && call {
                i = j;
                skip_to(&mut i, b')');
            } else if !call && !KEYWORDS.contains(&word) {
                out.push(word.to_string());
            }
            continue;
        }
        i += 1;
    }
    out
}

/// Every PromQL expression in a dashboard: panels' targets (rows' nested
/// panels too) and query variables.
fn dashboard_exprs(d: &serde_json::Value) -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("expr", serde_json::Value::String(s)) => out.push(s.clone()),
                        ("query", serde_json::Value::Object(q)) => {
                            if let Some(serde_json::Value::String(s)) = q.get("query") {
                                out.push(s.clone());
                            }
                        }
                        ("query", serde_json::Value::String(s)) if s.contains('(') => out.push(s.clone()),
                        _ => walk(v, out),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(d, &mut out);
    out
}

#[test]
fn promql_metric_names_are_found_and_nothing_else() {
    let e = "histogram_quantile(0.99, sum by (le) (rate(pounce_request_duration_seconds_bucket{job=~\"$job\", \
             instance=~\"$instance\"}[$__rate_interval]))) / on (instance) group_left sum without (worker) \
             (pounce_connections_active offset 5m) > bool 0 and process_open_fds";
    assert_eq!(
        promql_metrics(e),
        ["pounce_request_duration_seconds_bucket", "pounce_connections_active", "process_open_fds"]
    );
    assert_eq!(
        promql_metrics("label_values(pounce_build_info, instance)"),
        ["pounce_build_info", "instance"]
    );
    assert!(promql_metrics("sum(rate(x_total[5m])) * 100").contains(&"x_total".to_string()));
}

#[test]
fn the_grafana_dashboard_uses_only_metrics_a_real_scrape_has() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/grafana-dashboard.json");
    let text = std::fs::read_to_string(path).expect("deploy/grafana-dashboard.json");
    let d: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert!(d["title"].as_str().is_some_and(|t| t.contains("pounce")));
    assert!(d["uid"].as_str().is_some() && d["schemaVersion"].as_u64().is_some());
    assert!(d["panels"].as_array().is_some_and(|p| p.len() >= 6));

    // A scrape with every kind of traffic, so every series exists.
    let p = start(&[]);
    assert_eq!(get(p.addr, "/").status, 200);
    let s = Scrape::of(&p);
    let mut known: BTreeSet<String> = s.samples.iter().map(|x| x.name.clone()).collect();
    known.extend(s.types.keys().cloned());

    let exprs = dashboard_exprs(&d);
    assert!(exprs.len() >= 8, "{exprs:?}");
    let mut used = BTreeSet::new();
    for e in &exprs {
        // label_values(metric, label): the label is not a metric.
        let names = promql_metrics(e);
        let names = if e.starts_with("label_values(") { &names[..1] } else { &names[..] };
        assert!(!names.is_empty(), "no metric in {e:?}");
        for n in names {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suf| n.strip_suffix(suf))
                .filter(|b| s.types.get(*b).is_some_and(|t| t == "histogram"));
            assert!(known.contains(n) || base.is_some(), "{n:?} (in {e:?}) is not in a scrape:\n{}", s.text);
            used.insert(base.unwrap_or(n).to_string());
        }
    }
    for must in [
        "pounce_requests_total",
        "pounce_request_duration_seconds",
        "pounce_draining",
        "pounce_drain_rejected_total",
    ] {
        assert!(used.contains(must), "the dashboard does not show {must}: {used:?}");
    }
}

#[test]
fn the_readme_lists_exactly_the_metrics_a_scrape_has() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let section =
        readme.split("\n## Metrics\n").nth(1).expect("a Metrics section").split("\n## ").next().unwrap();
    let mut listed = BTreeSet::new();
    for row in section.lines().filter(|l| l.starts_with("| `")) {
        let first = row.split(" | ").next().unwrap();
        listed.extend(first.split('`').skip(1).step_by(2).map(String::from));
    }
    let p = start(&[]);
    assert_eq!(get(p.addr, "/").status, 200);
    let s = Scrape::of(&p);
    let own: BTreeSet<String> =
        s.types.keys().filter(|n| n.starts_with("pounce_") || n.starts_with("process_")).cloned().collect();
    assert_eq!(listed, own, "README's metrics table vs a real scrape");
}
