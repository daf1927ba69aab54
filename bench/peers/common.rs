// Shared by every peer (included with `include!`): the command line and the two answers.
// `PEER PORT WORKERS`: listen on 127.0.0.1:PORT with WORKERS threads/workers.
// GET / → 200 "Hello, World!" (text/plain; charset=utf-8), GET /json →
// {"message":"Hello, World!"} (application/json): the bodies and types `pounce demo` sends.

#[allow(dead_code)]
const HELLO: &str = "Hello, World!";
#[allow(dead_code)]
const JSON: &str = r#"{"message":"Hello, World!"}"#;
#[allow(dead_code)]
const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

fn args() -> (u16, usize) {
    let a: Vec<String> = std::env::args().collect();
    let usage = || -> ! {
        eprintln!("usage: {} PORT WORKERS", a[0]);
        std::process::exit(2)
    };
    if a.len() != 3 {
        usage()
    }
    let port = a[1].parse().unwrap_or_else(|_| usage());
    let workers = a[2].parse().unwrap_or_else(|_| usage());
    (port, workers)
}
