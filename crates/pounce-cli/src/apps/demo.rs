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

use futures_lite::stream;
use glommio::timer::Timer;
use pounce::{Body, Handler, Request, Response};
use std::time::Duration;

const MAX_SLEEP_MS: u64 = 3_600_000;
const MAX_CHUNKS: u32 = 10_000;
const CHUNK_INTERVAL: Duration = Duration::from_millis(100);

pub struct Demo;

impl Handler for Demo {
    async fn call(&self, req: &Request<'_>) -> Response {
        let path = req.path();
        let method = req.method();
        let get = method == "GET" || method == "HEAD";
        if path == "/echo" {
            return match method {
                "POST" => {
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
