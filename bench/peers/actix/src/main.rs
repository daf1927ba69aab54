//! actix-web 4, as its docs show: `HttpServer::new(|| App::new()...).workers(N)`.
use actix_web::{http::header::ContentType, web, App, HttpResponse, HttpServer};
use std::time::Duration;

include!("../../common.rs");

async fn hello() -> HttpResponse {
    HttpResponse::Ok().content_type(TEXT_PLAIN).body(HELLO)
}

async fn json() -> HttpResponse {
    HttpResponse::Ok().content_type(ContentType::json()).body(JSON)
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let (port, workers) = args();
    HttpServer::new(|| App::new().route("/", web::get().to(hello)).route("/json", web::get().to(json)))
        .workers(workers)
        // The harness's shared settings (bench/lib.sh): listen backlog 4096 and a 120 s
        // keep-alive, so idle benchmark connections are not reaped (actix's default is 5 s).
        .backlog(4096)
        .keep_alive(Duration::from_secs(120))
        .bind(("127.0.0.1", port))?
        .run()
        .await
}
