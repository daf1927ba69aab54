//! The built-in apps the stock binary can serve, chosen by its `<APP>`
//! argument: `demo` or `static:<DIR>`.

pub mod demo;
pub mod static_files;

use pounce::{Handler, Request, Response};

/// One of the built-in apps.
pub enum App {
    Demo(demo::Demo),
    Static(static_files::StaticFiles),
}

impl App {
    /// Parses the `<APP>` argument; the error is one line for exit code 2.
    /// `static:<DIR>` opens the directory now, so a missing or unreadable
    /// one stops pounce before anything binds.
    pub fn from_arg(arg: &str, static_opts: &static_files::Options) -> Result<App, String> {
        match arg {
            "demo" => Ok(App::Demo(demo::Demo::new())),
            _ => match arg.strip_prefix("static:") {
                Some(dir) => static_files::StaticFiles::new(dir, static_opts).map(App::Static),
                None => Err(format!("unknown app '{arg}' (expected demo or static:<DIR>)")),
            },
        }
    }
}

impl Handler for App {
    /// The static handler's future is boxed: at 1 KiB it would otherwise set
    /// the size of every request's state, the demo's too, and push the
    /// connection's per-burst allocation past the allocator's fast path
    /// (glibc's thread cache stops at 1 032 bytes). A file request does
    /// several system calls; one small allocation more is noise there.
    async fn call(&self, req: &Request<'_>) -> Response {
        match self {
            App::Demo(d) => d.call(req).await,
            App::Static(s) => Box::pin(s.call(req)).await,
        }
    }
}
