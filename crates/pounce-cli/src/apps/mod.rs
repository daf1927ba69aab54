//! The built-in apps the stock binary can serve, chosen by its `<APP>`
//! argument: `demo` or `static:<DIR>`.

pub mod demo;

use pounce::{Handler, Request, Response};

/// One of the built-in apps.
pub enum App {
    Demo(demo::Demo),
}

impl App {
    /// Parses the `<APP>` argument; the error is one line for exit code 2.
    pub fn from_arg(arg: &str) -> Result<App, String> {
        match arg {
            "demo" => Ok(App::Demo(demo::Demo)),
            other => Err(format!("unknown app '{other}' (expected demo or static:<DIR>)")),
        }
    }
}

impl Handler for App {
    async fn call(&self, req: &Request<'_>) -> Response {
        match self {
            App::Demo(d) => d.call(req).await,
        }
    }
}
