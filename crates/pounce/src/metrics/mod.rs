//! Prometheus metrics: per-worker state that the server owns, and an
//! exposition that reads it.
//!
//! Thread-per-core holds here too. A worker counts its requests in cells
//! only it writes, with plain loads and stores (no shared atomic, no lock,
//! no allocation per request); a scrape, on a thread of its own, reads every
//! worker's cells when it is asked. Nothing per request crosses cores.
//!
//! - [`cells`]: the single-writer counter cell and the cache-line padding;
//! - [`histogram`]: latency buckets, the per-worker latency cells, snapshots;
//! - [`worker`]: the server's per-worker block (responses by status code,
//!   latency, accepted connections, timeouts) and the request path's hooks;
//! - [`registry`]: the library API, [`Counter`] and [`Histogram`] for a
//!   handler's own metrics, counted per thread the same way;
//! - [`process`]: the standard `process_*` metrics from `/proc`;
//! - [`text`]: the text exposition format;
//! - [`exposition`]: what `/metrics` shows, gathered at scrape time;
//! - [`endpoint`]: the `--metrics-addr` listener, on a thread of its own that
//!   serves until the process exits, through the whole drain.
//!
//! Off by default: without `--metrics-addr` the workers have no cells and
//! every hook is a test of a `None`. Counters are per process: a hot
//! upgrade's successor starts from zero, and Prometheus sees an ordinary
//! counter reset.

pub(crate) mod cells;
pub(crate) mod endpoint;
pub(crate) mod exposition;
pub(crate) mod histogram;
pub(crate) mod process;
pub(crate) mod registry;
pub(crate) mod text;
pub(crate) mod worker;

pub use histogram::LATENCY_BUCKETS;
pub use registry::{Counter, Histogram, MetricError, gather};
pub use text::CONTENT_TYPE;
