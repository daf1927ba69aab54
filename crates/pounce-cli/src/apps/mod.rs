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
    async fn call(&self, req: &Request<'_>) -> Response {
        match self {
            App::Demo(d) => d.call(req).await,
            App::Static(s) => s.call(req).await,
        }
    }
}
