//! The built-in health endpoint (`--health-check-path`), answered by pounce
//! without calling the app, so a readiness probe reflects the server's state
//! even when the app is busy: 200 while serving, 503 `draining` (with
//! `Connection: close` and `Retry-After: 1`) from the first signal on, so a
//! load balancer stops routing here before the drain closes anything.

use crate::handler::Response;
use crate::shutdown::Shared;

/// The health response and whether the connection must close after it.
pub(crate) fn respond(method: &str, worker: usize, active: usize, shared: &Shared) -> (Response, bool) {
    if method != "GET" && method != "HEAD" {
        return (Response::text(405, "Method Not Allowed\n").with_header("Allow", "GET, HEAD"), false);
    }
    let draining = shared.shutting_down();
    let body = json(if draining { "draining" } else { "ok" }, worker, active, shared);
    if draining {
        (Response::json(503, body).with_header("Retry-After", "1"), true)
    } else {
        (Response::json(200, body), false)
    }
}

fn json(status: &str, worker: usize, active: usize, shared: &Shared) -> String {
    format!(
        "{{\"status\":\"{status}\",\"worker\":{worker},\"active_connections\":{active},\"uptime_seconds\":{}}}",
        shared.started.elapsed().as_secs()
    )
}

/// The complete draining response (head and JSON body), for a probe that
/// arrives on a new connection while the worker is draining.
pub(crate) fn encode_draining(out: &mut Vec<u8>, worker: usize, active: usize, shared: &Shared) {
    use crate::http::response::{ConnHeader, Head, OutFraming, encode_head};
    let body = json("draining", worker, active, shared);
    let head = Head {
        status: 503,
        content_type: Some("application/json"),
        headers: &[],
        extra: &[("Retry-After", "1")],
        framing: OutFraming::Length(body.len() as u64),
        connection: ConnHeader::Close,
    };
    encode_head(out, &head).expect("server-made heads are valid");
    out.extend_from_slice(body.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handler::Body;
    use crate::shutdown::Phase;

    fn body(r: &Response) -> String {
        match r.body() {
            Body::Bytes(b) => String::from_utf8(b.to_vec()).unwrap(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ok_then_draining() {
        let shared = Shared::new(2);
        let (r, close) = respond("GET", 2, 7, &shared);
        assert_eq!((r.status(), close), (200, false));
        assert_eq!(body(&r), r#"{"status":"ok","worker":2,"active_connections":7,"uptime_seconds":0}"#);
        shared.advance(Phase::LameDuck);
        let (r, close) = respond("HEAD", 1, 0, &shared);
        assert_eq!((r.status(), close), (503, true));
        assert!(body(&r).starts_with(r#"{"status":"draining","worker":1,"#));
        assert!(r.headers().any(|(n, v)| n == "Retry-After" && v == "1"));
    }

    #[test]
    fn other_methods() {
        let (r, _) = respond("POST", 1, 0, &Shared::new(1));
        assert_eq!(r.status(), 405);
        assert!(r.headers().any(|(n, v)| n == "Allow" && v == "GET, HEAD"));
    }
}
