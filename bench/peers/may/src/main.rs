//! may-minihttp, as its examples show (`HttpServer(service).start(addr)`), with may's
//! scheduler set to WORKERS worker threads (may pins them by default).
use may_minihttp::{HttpServer, HttpService, Request, Response};
use std::io;

include!("../../common.rs");

#[derive(Clone)]
struct Hello;

impl HttpService for Hello {
    fn call(&mut self, req: Request, rsp: &mut Response) -> io::Result<()> {
        match req.path() {
            "/json" => rsp.header("Content-Type: application/json").body(JSON),
            _ => rsp.header("Content-Type: text/plain; charset=utf-8").body(HELLO),
        }
        Ok(())
    }
}

fn main() {
    let (port, workers) = args();
    may::config().set_workers(workers);
    let server = HttpServer(Hello).start(("127.0.0.1", port)).unwrap();
    server.join().unwrap();
}
