//! hyper 1 on tokio's multi-thread runtime (one worker thread per pounce worker), as
//! hyper's server guide shows: accept loop, one task per connection, `http1::Builder`.
use bytes::Bytes;
use http_body_util::Full;
use hyper::{header, server::conn::http1, service::service_fn, Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use tokio::net::TcpSocket;

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

fn main() -> std::io::Result<()> {
    let (port, workers) = args();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?
        .block_on(serve(port))
}

async fn serve(port: u16) -> std::io::Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    // TcpListener::bind would do; TcpSocket only to give the harness's shared backlog (4096).
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    let listener = socket.listen(4096)?;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(stream);
        tokio::task::spawn(async move {
            let _ = http1::Builder::new().serve_connection(io, service_fn(handle)).await;
        });
    }
}
