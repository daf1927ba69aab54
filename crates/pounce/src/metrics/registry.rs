//! The library API: counters and histograms of a handler's own, exposed on
//! `/metrics` after pounce's.
//!
//! A metric is created once (at start-up, or lazily in a `static`) and then
//! updated from any worker. Like the server's own figures, it is counted per
//! thread: every thread that updates metrics gets a slot (on first use,
//! returned when the thread ends), and each metric keeps one cache-line
//! aligned block of cells per slot, allocated the first time that thread
//! updates it. An update is then a thread-local lookup and single-writer
//! increments: no lock, no shared atomic, no allocation. A scrape adds the
//! slots up. Threads beyond the [`SLOTS`] limit share one block with atomic
//! increments (correct, only slower).
//!
//! Metrics live as long as the process: the registry keeps every one, so a
//! name can be registered only once (with the same labels).

use super::cells::{CACHE_LINE, Count, Line};
use super::histogram::{Snapshot, bucket_of};
use super::text::{Exposition, Kind};
use std::fmt;
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Threads that can have cells of their own at the same time.
pub(crate) const SLOTS: usize = 1024;
const PER_LINE: usize = CACHE_LINE / 8;

// ------------------------------------------------------------------ slots

struct SlotPool {
    next: usize,
    free: Vec<usize>,
}

static SLOT_POOL: Mutex<SlotPool> = Mutex::new(SlotPool { next: 0, free: Vec::new() });

/// A thread's slot, given back when the thread ends. A slot's cells keep
/// their counts (counters only grow): the next thread to get the slot adds
/// to them. The pool's lock orders the old owner's last write before the new
/// owner's first.
struct Slot(Option<usize>);

impl Slot {
    fn take() -> Slot {
        let mut pool = lock(&SLOT_POOL);
        let slot = pool.free.pop().or_else(|| {
            (pool.next < SLOTS).then(|| {
                pool.next += 1;
                pool.next - 1
            })
        });
        Slot(slot)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(s) = self.0 {
            lock(&SLOT_POOL).free.push(s);
        }
    }
}

thread_local! {
    static SLOT: Slot = Slot::take();
}

/// This thread's slot; None beyond [`SLOTS`] threads (or while the thread
/// is being torn down).
fn this_slot() -> Option<usize> {
    SLOT.try_with(|s| s.0).ok().flatten()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// ------------------------------------------------------------------ cells

/// One series' cells: `width` counts per slot, plus a shared block for
/// threads without a slot.
struct Cells {
    lines: usize,
    /// Per slot: a block of `lines` [`Line`]s, allocated by the slot's thread.
    slots: Box<[AtomicPtr<Line>]>,
    shared: Box<[Line]>,
}

// SAFETY: the blocks behind the pointers hold only atomics, are written by
// their slot's thread, read by anyone, and freed only on drop.
unsafe impl Send for Cells {}
unsafe impl Sync for Cells {}

/// A block of cells, indexed across its lines.
#[derive(Clone, Copy)]
struct Block<'a>(&'a [Line]);

impl<'a> Block<'a> {
    #[inline]
    fn at(self, i: usize) -> &'a Count {
        &self.0[i / PER_LINE].0[i % PER_LINE]
    }
}

impl Cells {
    fn new(width: usize) -> Cells {
        let lines = width.div_ceil(PER_LINE);
        Cells {
            lines,
            slots: (0..SLOTS).map(|_| AtomicPtr::new(ptr::null_mut())).collect(),
            shared: (0..lines).map(|_| Line::default()).collect(),
        }
    }

    /// This thread's own cells (allocated on first use), or None: use
    /// `shared`, atomically.
    #[inline]
    fn mine(&self) -> Option<Block<'_>> {
        let slot = this_slot()?;
        let cell = &self.slots[slot];
        let mut p = cell.load(Ordering::Acquire);
        if p.is_null() {
            let block: Box<[Line]> = (0..self.lines).map(|_| Line::default()).collect();
            p = Box::into_raw(block).cast::<Line>();
            // Only this thread owns the slot: nobody else stores here.
            cell.store(p, Ordering::Release);
        }
        // SAFETY: `p` is a live Box<[Line]> of `lines` (freed only on drop).
        Some(Block(unsafe { std::slice::from_raw_parts(p, self.lines) }))
    }

    fn shared(&self) -> Block<'_> {
        Block(&self.shared)
    }

    /// Every block allocated so far, and the shared one.
    fn each(&self, mut f: impl FnMut(Block<'_>)) {
        for cell in self.slots.iter() {
            let p = cell.load(Ordering::Acquire);
            if !p.is_null() {
                // SAFETY: as in `mine`; published with Release.
                f(Block(unsafe { std::slice::from_raw_parts(p, self.lines) }));
            }
        }
        f(self.shared());
    }

    fn total(&self, i: usize) -> u64 {
        let mut t = 0u64;
        self.each(|b| t = t.wrapping_add(b.at(i).get()));
        t
    }
}

impl Drop for Cells {
    fn drop(&mut self) {
        for cell in self.slots.iter() {
            let p = cell.load(Ordering::Acquire);
            if !p.is_null() {
                // SAFETY: allocated in `mine` as a Box<[Line]> of `lines`.
                drop(unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(p, self.lines)) });
            }
        }
    }
}

// ------------------------------------------------------------------ the API

/// A monotonic counter of a handler's own, exposed on `/metrics`.
///
/// Create it once and keep it (in the handler, or a `static`); cloning is
/// cheap and clones count into the same series. `inc`/`add` from any worker
/// touch only that worker's own cells.
///
/// ```
/// use pounce::metrics::{Counter, Histogram, LATENCY_BUCKETS};
/// use pounce::{Handler, Request, Response};
/// use std::time::Instant;
///
/// struct App {
///     hits: Counter,
///     misses: Counter,
///     lookup: Histogram,
/// }
///
/// impl Handler for App {
///     async fn call(&self, req: &Request<'_>) -> Response {
///         let t = Instant::now();
///         let found = req.path() == "/cached";
///         self.lookup.observe_duration(t.elapsed());
///         if found { self.hits.inc() } else { self.misses.inc() }
///         Response::text(200, "ok")
///     }
/// }
///
/// let help = "Cache lookups, by result.";
/// let app = App {
///     hits: Counter::with_labels("myapp_cache_lookups_total", help, &[("result", "hit")]).unwrap(),
///     misses: Counter::with_labels("myapp_cache_lookups_total", help, &[("result", "miss")]).unwrap(),
///     lookup: Histogram::new("myapp_lookup_seconds", "Cache lookup time.", &LATENCY_BUCKETS).unwrap(),
/// };
/// app.hits.add(2);
/// app.misses.inc();
/// app.lookup.observe(0.0003);
/// // What `/metrics` will show after pounce's own metrics
/// // (`pounce::serve` with `--metrics-addr`):
/// let text = pounce::metrics::gather();
/// assert!(text.contains("# TYPE myapp_cache_lookups_total counter\n"));
/// assert!(text.contains("myapp_cache_lookups_total{result=\"hit\"} 2\n"));
/// assert!(text.contains("myapp_cache_lookups_total{result=\"miss\"} 1\n"));
/// assert!(text.contains("myapp_lookup_seconds_bucket{le=\"0.0005\"} 1\n"));
/// assert!(text.contains("myapp_lookup_seconds_count 1\n"));
/// // Names follow Prometheus conventions, and each series exists once:
/// assert!(Counter::new("myapp_cache_lookups", "no _total").is_err());
/// assert!(Counter::with_labels("myapp_cache_lookups_total", help, &[("result", "hit")]).is_err());
/// # let _ = app;
/// ```
#[derive(Clone)]
pub struct Counter(Arc<Cells>);

impl Counter {
    /// Registers a counter without labels. The name must be a valid
    /// Prometheus name ending in `_total`, not starting with `pounce_` or
    /// `process_` (pounce's own), and not registered yet.
    pub fn new(name: &str, help: &str) -> Result<Counter, MetricError> {
        Counter::with_labels(name, help, &[])
    }

    /// Registers one series of counter `name` with these label values. Other
    /// series of the same name must use the same help text and label names.
    pub fn with_labels(name: &str, help: &str, labels: &[(&str, &str)]) -> Result<Counter, MetricError> {
        register(name, help, Kind::Counter, labels, &[]).map(Counter)
    }

    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    #[inline]
    pub fn add(&self, n: u64) {
        match self.0.mine() {
            Some(b) => b.at(0).add(n),
            None => self.0.shared().at(0).add_shared(n),
        }
    }

    /// The total over every thread (what a scrape would show).
    pub fn get(&self) -> u64 {
        self.0.total(0)
    }
}

/// A histogram of a handler's own (sizes, durations in seconds...), exposed
/// on `/metrics`. See [`Counter`] for an example; updating is as cheap.
#[derive(Clone)]
pub struct Histogram {
    cells: Arc<Cells>,
    bounds: Arc<[f64]>,
}

impl Histogram {
    /// Registers a histogram without labels. `buckets` are the upper bounds,
    /// finite and increasing (`+Inf` is added); [`LATENCY_BUCKETS`] are
    /// pounce's own, for durations in seconds.
    ///
    /// [`LATENCY_BUCKETS`]: super::LATENCY_BUCKETS
    pub fn new(name: &str, help: &str, buckets: &[f64]) -> Result<Histogram, MetricError> {
        Histogram::with_labels(name, help, buckets, &[])
    }

    /// Registers one series of histogram `name` with these label values.
    pub fn with_labels(
        name: &str,
        help: &str,
        buckets: &[f64],
        labels: &[(&str, &str)],
    ) -> Result<Histogram, MetricError> {
        let cells = register(name, help, Kind::Histogram, labels, buckets)?;
        Ok(Histogram { cells, bounds: buckets.into() })
    }

    /// Records one value. NaN is ignored.
    #[inline]
    pub fn observe(&self, v: f64) {
        if v.is_nan() {
            return;
        }
        let i = bucket_of(&self.bounds, v);
        let sum = self.bounds.len() + 1;
        match self.cells.mine() {
            Some(b) => {
                b.at(i).add(1);
                b.at(sum).set((f64::from_bits(b.at(sum).get()) + v).to_bits());
            }
            None => {
                let b = self.cells.shared();
                b.at(i).add_shared(1);
                b.at(sum).add_f64_shared(v);
            }
        }
    }

    /// Records a duration, in seconds.
    #[inline]
    pub fn observe_duration(&self, d: Duration) {
        self.observe(d.as_secs_f64());
    }

    fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot::empty(&self.bounds);
        let n = self.bounds.len() + 1;
        self.cells.each(|b| {
            for (i, t) in s.counts.iter_mut().enumerate() {
                *t += b.at(i).get();
            }
            s.sum += f64::from_bits(b.at(n).get());
        });
        s
    }
}

/// Why a metric could not be registered. Displays as one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricError(String);

impl fmt::Display for MetricError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MetricError {}

// ------------------------------------------------------------------ registry

struct Family {
    name: String,
    help: String,
    kind: Kind,
    label_names: Vec<String>,
    bounds: Vec<f64>,
    series: Vec<Series>,
}

struct Series {
    label_values: Vec<String>,
    counter: Option<Counter>,
    histogram: Option<Histogram>,
}

static REGISTRY: Mutex<Vec<Family>> = Mutex::new(Vec::new());

fn register(
    name: &str,
    help: &str,
    kind: Kind,
    labels: &[(&str, &str)],
    bounds: &[f64],
) -> Result<Arc<Cells>, MetricError> {
    let err = |why: String| Err(MetricError(format!("metric {name:?}: {why}")));
    if !is_name(name) {
        return err("a name is ASCII letters, digits and '_', not starting with a digit".into());
    }
    if name.starts_with("pounce_") || name.starts_with("process_") {
        return err("the pounce_ and process_ prefixes are pounce's own".into());
    }
    match kind {
        Kind::Counter if !name.ends_with("_total") => return err("a counter's name ends in _total".into()),
        Kind::Histogram if ["_total", "_bucket", "_sum", "_count"].iter().any(|s| name.ends_with(s)) => {
            return err("a histogram's name must not end in _total, _bucket, _sum or _count".into());
        }
        _ => {}
    }
    for (i, (k, _)) in labels.iter().enumerate() {
        if !is_name(k) || k.starts_with("__") {
            return err(format!("label name {k:?} is not valid"));
        }
        if kind == Kind::Histogram && *k == "le" {
            return err("a histogram cannot have a label named le".into());
        }
        if labels[..i].iter().any(|(j, _)| j == k) {
            return err(format!("label {k:?} given twice"));
        }
    }
    if kind == Kind::Histogram
        && (bounds.is_empty()
            || bounds.iter().any(|b| !b.is_finite())
            || bounds.windows(2).any(|w| w[0] >= w[1]))
    {
        return err("buckets must be finite, increasing, and at least one".into());
    }

    let label_names: Vec<String> = labels.iter().map(|(k, _)| k.to_string()).collect();
    let label_values: Vec<String> = labels.iter().map(|(_, v)| v.to_string()).collect();
    let mut reg = lock(&REGISTRY);
    let fam = match reg.iter_mut().position(|f| f.name == name) {
        Some(i) => {
            let f = &mut reg[i];
            if f.kind != kind || f.help != help || f.label_names != label_names || f.bounds != bounds {
                return err("already registered with another type, help text, label names or buckets".into());
            }
            if f.series.iter().any(|s| s.label_values == label_values) {
                return err("already registered with these label values".into());
            }
            f
        }
        None => {
            reg.push(Family {
                name: name.into(),
                help: help.into(),
                kind,
                label_names,
                bounds: bounds.to_vec(),
                series: Vec::new(),
            });
            reg.last_mut().expect("just pushed")
        }
    };
    let cells = Arc::new(Cells::new(if kind == Kind::Histogram { bounds.len() + 2 } else { 1 }));
    let (counter, histogram) = match kind {
        Kind::Histogram => (None, Some(Histogram { cells: cells.clone(), bounds: bounds.into() })),
        _ => (Some(Counter(cells.clone())), None),
    };
    fam.series.push(Series { label_values, counter, histogram });
    Ok(cells)
}

fn is_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// Appends every registered metric, in registration order.
pub(crate) fn write_registered(e: &mut Exposition) {
    let reg = lock(&REGISTRY);
    for f in reg.iter() {
        e.header(&f.name, &f.help, f.kind);
        for s in &f.series {
            let labels: Vec<(&str, &str)> = f
                .label_names
                .iter()
                .map(String::as_str)
                .zip(s.label_values.iter().map(String::as_str))
                .collect();
            if let Some(c) = &s.counter {
                e.sample(&f.name, &labels, c.get());
            }
            if let Some(h) = &s.histogram {
                e.histogram(&f.name, &labels, &h.snapshot());
            }
        }
    }
}

/// The registered metrics (not pounce's own) in the Prometheus text format:
/// what `/metrics` shows after pounce's metrics. For tests, or to serve them
/// some other way.
pub fn gather() -> String {
    let mut e = Exposition::default();
    write_registered(&mut e);
    e.into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_labels_and_buckets_are_checked() {
        let bad_counters: &[(&str, &[(&str, &str)])] = &[
            ("", &[]),
            ("9lives_total", &[]),
            ("has-dash_total", &[]),
            ("has:colon_total", &[]),
            ("no_suffix", &[]),
            ("pounce_mine_total", &[]),
            ("process_mine_total", &[]),
            ("t_ok_total", &[("__reserved", "x")]),
            ("t_ok_total", &[("a", "1"), ("a", "2")]),
            ("t_ok_total", &[("bad-label", "x")]),
        ];
        for (name, labels) in bad_counters {
            let e =
                Counter::with_labels(name, "h", labels).err().unwrap_or_else(|| panic!("{name} accepted"));
            assert!(e.to_string().starts_with(&format!("metric {name:?}: ")), "{e}");
        }
        for (name, buckets) in [
            ("t_h_total", &[1.0][..]),
            ("t_h_count", &[1.0]),
            ("t_h", &[]),
            ("t_h", &[2.0, 1.0]),
            ("t_h", &[1.0, 1.0]),
            ("t_h", &[1.0, f64::INFINITY]),
        ] {
            assert!(Histogram::new(name, "h", buckets).is_err(), "{name} {buckets:?}");
        }
        assert!(Histogram::with_labels("t_h2", "h", &[1.0], &[("le", "1")]).is_err());
    }

    #[test]
    fn series_of_one_family_must_agree() {
        let a = Counter::with_labels("t_family_total", "Help.", &[("k", "a")]).unwrap();
        assert!(Counter::with_labels("t_family_total", "Other help.", &[("k", "b")]).is_err());
        assert!(Counter::with_labels("t_family_total", "Help.", &[("j", "b")]).is_err());
        assert!(Counter::with_labels("t_family_total", "Help.", &[("k", "a")]).is_err());
        assert!(Histogram::with_labels("t_family_total", "Help.", &[1.0], &[("k", "b")]).is_err());
        let b = Counter::with_labels("t_family_total", "Help.", &[("k", "b\"q")]).unwrap();
        a.inc();
        b.add(5);
        let text = gather();
        let at = text.find("# HELP t_family_total Help.\n# TYPE t_family_total counter\n").unwrap();
        assert!(text[at..].contains("t_family_total{k=\"a\"} 1\nt_family_total{k=\"b\\\"q\"} 5\n"), "{text}");
    }

    #[test]
    fn counts_from_many_threads_add_up() {
        let c = Counter::new("t_threads_total", "Threads.").unwrap();
        let h = Histogram::new("t_threads_seconds", "Threads.", &[0.5, 1.0]).unwrap();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (c, h) = (c.clone(), h.clone());
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        c.inc();
                        h.observe(0.75);
                    }
                    h.observe(f64::NAN);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // Threads that ended gave their slots back, their counts stay.
        assert_eq!(c.get(), 8000);
        let s = h.snapshot();
        assert_eq!(s.counts, [0, 8000, 0]);
        assert_eq!(s.sum, 6000.0);
        c.add(2);
        assert_eq!(c.get(), 8002);
    }

    #[test]
    fn threads_beyond_the_slots_share_one_block() {
        let c = Counter::new("t_shared_total", "Shared.").unwrap();
        let h = Histogram::new("t_shared_seconds", "Shared.", &[1.0]).unwrap();
        // As a thread without a slot does.
        c.0.shared().at(0).add_shared(3);
        h.cells.shared().at(0).add_shared(1);
        h.cells.shared().at(2).add_f64_shared(0.5);
        c.inc();
        h.observe(2.0);
        assert_eq!(c.get(), 4);
        let s = h.snapshot();
        assert_eq!((s.counts.clone(), s.sum), (vec![1, 1], 2.5));
    }

    #[test]
    fn a_slot_given_back_is_taken_again() {
        // (nextest runs each test in a process of its own: no other thread
        // takes slots meanwhile.)
        let a = Slot::take();
        let s = a.0.expect("a slot");
        drop(a);
        assert_eq!(Slot::take().0, Some(s), "reused, not a new one per thread");
        let ended = std::thread::spawn(this_slot).join().unwrap().unwrap();
        assert_eq!(std::thread::spawn(this_slot).join().unwrap(), Some(ended));
    }
}
