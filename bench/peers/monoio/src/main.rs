//! monoio (io_uring, thread per core): WORKERS threads, each with its own runtime and its
//! own SO_REUSEPORT listener (monoio's default), serving HTTP/1.1 with hyper 1 through
//! monoio-compat, as monoio's hyper example does.
use bytes::Bytes;
use http_body_util::Full;
use hyper::{header, server::conn::http1, service::service_fn, Request, Response};
use monoio::io::IntoPollIo;
use monoio::net::{ListenerOpts, TcpListener};
use monoio_compat::hyper::MonoioIo;
use std::convert::Infallible;

include!("../../common.rs");

async fn handle(req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (ct, body) = match req.uri().path() {
        "/json" => ("application/json", JSON),
        _ => (TEXT_PLAIN, HELLO),
    };
    let mut rsp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    rsp.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static(ct));
    Ok(rsp)
}

async fn serve(port: u16) {
    // monoio's default ListenerOpts (reuse_port on), with the harness's shared backlog.
    let opts = ListenerOpts::new().backlog(4096);
    let listener = TcpListener::bind_with_config(("127.0.0.1", port), &opts).expect("bind");
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let Ok(io) = stream.into_poll_io() else { continue };
        monoio::spawn(async move {
            let _ = http1::Builder::new().serve_connection(MonoioIo::new(io), service_fn(handle)).await;
        });
    }
}

fn main() {
    let (port, workers) = args();
    let threads: Vec<_> = (0..workers)
        .map(|_| {
            std::thread::spawn(move || {
                monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
                    .enable_timer()
                    .build()
                    .expect("monoio runtime")
                    .block_on(serve(port))
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}
