//! Single-writer counter cells: the only thing a worker touches per request.
//!
//! A [`Count`] is written by one thread only (its worker) and read by any
//! (a scrape). The write is a relaxed load and a relaxed store, not a
//! `fetch_add`: with a single writer no increment can be lost, and on x86 the
//! pair compiles to two plain `mov`s around an `add`, with no `lock` prefix and
//! no fence. A reader sees each cell's latest value, or one a little older;
//! never a torn one. Cells of different workers never share a cache line
//! (each worker's block is [`CACHE_LINE`]-aligned), so a worker's writes never
//! invalidate another core's cache.

use std::sync::atomic::{AtomicU64, Ordering};

/// Cache line size to pad to: 128 bytes covers the adjacent-line prefetcher
/// of current x86 parts and the 128-byte lines of some ARM cores.
pub(crate) const CACHE_LINE: usize = 128;

/// A counter with one writer. See the module documentation.
#[derive(Debug, Default)]
#[repr(transparent)]
pub(crate) struct Count(AtomicU64);

impl Count {
    /// Adds `n`. Only the cell's owning thread may call this.
    #[inline]
    pub(crate) fn add(&self, n: u64) {
        self.0.store(self.0.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }

    /// Replaces the value (a gauge, or an `f64` stored as its bits). Owner only.
    #[inline]
    pub(crate) fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }

    /// The value; from any thread.
    #[inline]
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Adds `n` from any thread (an atomic read-modify-write): for cells
    /// that have no single owner.
    pub(crate) fn add_shared(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Adds `v` to the `f64` stored as bits, from any thread.
    pub(crate) fn add_f64_shared(&self, v: f64) {
        let _ = self.0.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
            Some((f64::from_bits(bits) + v).to_bits())
        });
    }
}

/// One cache line of cells, aligned so that it is never shared.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Line(pub [Count; CACHE_LINE / 8]);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_lines() {
        let c = Count::default();
        c.add(2);
        c.add(3);
        assert_eq!(c.get(), 5);
        c.add_shared(1);
        assert_eq!(c.get(), 6);
        c.set(1.5f64.to_bits());
        c.add_f64_shared(0.25);
        assert_eq!(f64::from_bits(c.get()), 1.75);
        assert_eq!(std::mem::align_of::<Line>(), CACHE_LINE);
        assert_eq!(std::mem::size_of::<Line>(), CACHE_LINE);
    }

    #[test]
    fn one_writer_many_readers_lose_nothing() {
        let c = std::sync::Arc::new(Count::default());
        let w = c.clone();
        let writer = std::thread::spawn(move || {
            for _ in 0..100_000 {
                w.add(1);
            }
        });
        let mut last = 0;
        while !writer.is_finished() {
            let now = c.get();
            assert!(now >= last, "a reader never sees the count go back");
            last = now;
        }
        writer.join().unwrap();
        assert_eq!(c.get(), 100_000);
    }
}
