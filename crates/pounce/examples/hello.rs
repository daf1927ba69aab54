//! The smallest embedding of pounce: one handler, the full pounce CLI.
//!
//! ```sh
//! cargo run --example hello -- --port 8080
//! curl localhost:8080/           # Hello, World!
//! ```

use pounce::{Handler, Request, Response};

struct Hello;

impl Handler for Hello {
    async fn call(&self, req: &Request<'_>) -> Response {
        match req.path() {
            "/" => Response::text(200, "Hello, World!"),
            _ => Response::text(404, "Not Found\n"),
        }
    }
}

fn main() -> std::process::ExitCode {
    pounce::main(Hello)
}
