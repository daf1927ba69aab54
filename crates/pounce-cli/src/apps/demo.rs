//! `pounce demo`: the benchmark target and the endpoints the shutdown tests
//! and the seed page's recipes use.
//!
//! | route | answer |
//! |---|---|
//! | `GET /` | `200 Hello, World!` (text/plain) |
//! | `GET /json` | `{"message":"Hello, World!"}` |
//! | `GET /sleep/<ms>` | waits `ms` milliseconds (at most 1 h), then 200 |
//! | `POST /echo` | the request body (read whole, up to max_body_size) |
//! | `GET /stream/<n>` | `n` chunks (at most 10 000), 100 ms apart, chunked |
//! | `GET /panic` | panics inside the handler: shows a panic costs one 500 |
//!
//! HEAD works wherever GET does. Other methods get 405 with `Allow`.
//!
//! It also shows the library's metrics API ([`pounce::metrics`]): bytes
//! echoed and time slept are counted in metrics of the demo's own, which
//! `--metrics-addr` exposes after pounce's. (Only on those routes: `/` and
//! `/json`, the benchmark's, count nothing extra.)

use futures_lite::stream;
use glommio::timer::Timer;
use pounce::metrics::{Counter, Histogram, LATENCY_BUCKETS};
use pounce::{Body, Handler, Request, Response};
use std::time::Duration;

const MAX_SLEEP_MS: u64 = 3_600_000;
const MAX_CHUNKS: u32 = 10_000;
const CHUNK_INTERVAL: Duration = Duration::from_millis(100);

pub struct Demo {
    echoed: Counter,
    slept: Histogram,
}

impl Demo {
    /// The demo app; registers its metrics (once per process).
    pub fn new() -> Demo {
        static METRICS: std::sync::OnceLock<(Counter, Histogram)> = std::sync::OnceLock::new();
        let (echoed, slept) = METRICS.get_or_init(|| {
            let echoed =
                Counter::new("demo_echo_bytes_total", "Request body bytes echoed back by POST /echo.");
            let slept = Histogram::new(
                "demo_sleep_seconds",
                "Time GET /sleep/<ms> was asked to sleep, in seconds.",
                &LATENCY_BUCKETS,
            );
            (echoed.expect("a valid name"), slept.expect("a valid name"))
        });
        Demo { echoed: echoed.clone(), slept: slept.clone() }
    }
}

impl Handler for Demo {
    async fn call(&self, req: &Request<'_>) -> Response {
        let path = req.path();
        let method = req.method();
        let get = method == "GET" || method == "HEAD";
        if path == "/echo" {
            return match method {
                "POST" => {
                    self.echoed.add(req.body().len() as u64);
                    let ct = req.header_str("content-type").unwrap_or("application/octet-stream").to_string();
                    Response::new(200).with_content_type(ct).with_body(req.body().to_vec())
                }
                _ => not_allowed("POST"),
            };
        }
        let route = match path {
            "/" => Route::Hello,
            "/json" => Route::Json,
            "/panic" => Route::Panic,
            _ => match (path.strip_prefix("/sleep/"), path.strip_prefix("/stream/")) {
                (Some(ms), _) => match ms.parse::<u64>() {
                    Ok(ms) if ms <= MAX_SLEEP_MS => Route::Sleep(ms),
                    _ => return bad(&format!("sleep takes milliseconds from 0 to {MAX_SLEEP_MS}")),
                },
                (_, Some(n)) => match n.parse::<u32>() {
                    Ok(n) if n <= MAX_CHUNKS => Route::Stream(n),
                    _ => return bad(&format!("stream takes a chunk count from 0 to {MAX_CHUNKS}")),
                },
                _ => return Response::text(404, "Not Found\n"),
            },
        };
        if !get {
            return not_allowed("GET, HEAD");
        }
        match route {
            Route::Hello => Response::text(200, "Hello, World!"),
            Route::Json => Response::json(200, r#"{"message":"Hello, World!"}"#),
            Route::Sleep(ms) => {
                self.slept.observe_duration(Duration::from_millis(ms));
                Timer::new(Duration::from_millis(ms)).await;
                Response::text(200, format!("Slept {ms} ms\n"))
            }
            Route::Stream(n) => Response::new(200)
                .with_content_type("text/plain; charset=utf-8")
                .with_body(Body::stream(chunks(n))),
            Route::Panic => panic!("the demo's /panic route panics on purpose"),
        }
    }
}

enum Route {
    Hello,
    Json,
    Sleep(u64),
    Stream(u32),
    Panic,
}

/// `chunk 0\n` at once, then one more every 100 ms.
fn chunks(n: u32) -> impl futures_lite::Stream<Item = std::io::Result<Vec<u8>>> {
    stream::unfold(0u32, move |i| async move {
        if i >= n {
            return None;
        }
        if i > 0 {
            Timer::new(CHUNK_INTERVAL).await;
        }
        Some((Ok(format!("chunk {i}\n").into_bytes()), i + 1))
    })
}

fn not_allowed(allow: &'static str) -> Response {
    Response::text(405, "Method Not Allowed\n").with_header("Allow", allow)
}

fn bad(msg: &str) -> Response {
    Response::text(400, format!("{msg}\n"))
}
