//! Histograms: pounce's latency buckets, the per-worker latency cells, and
//! the snapshot both the server's and a library user's histograms turn into
//! at scrape time.
//!
//! Per worker, a histogram is one non-cumulative count per bucket (the `+Inf`
//! one included) and a sum; the count is the buckets' total. Only the scrape
//! makes the buckets cumulative and adds the workers up, so an observation is
//! two single-writer increments.

use super::cells::Count;
use std::time::Duration;

/// Upper bounds, in seconds, of `pounce_request_duration_seconds`: from
/// 100 µs (a keep-alive request answered from memory) to 10 s (a slow
/// handler; request_timeout is 30 s by default). `+Inf` is implicit.
pub const LATENCY_BUCKETS: [f64; 16] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// [`LATENCY_BUCKETS`] in nanoseconds, for an integer comparison per bucket.
const BOUNDS_NS: [u64; 16] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// One worker's request-duration histogram.
#[derive(Debug, Default)]
pub(crate) struct LatencyCells {
    /// Per bucket, not cumulative; the last is `+Inf`.
    buckets: [Count; BOUNDS_NS.len() + 1],
    sum_ns: Count,
}

impl LatencyCells {
    /// Records `n` observations of the same duration (one request, or
    /// pipelined requests answered together). Owner thread only.
    #[inline]
    pub(crate) fn observe_n(&self, took: Duration, n: u64) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        // Most requests land in the first few buckets: a forward scan.
        let i = BOUNDS_NS.iter().position(|&b| ns <= b).unwrap_or(BOUNDS_NS.len());
        self.buckets[i].add(n);
        self.sum_ns.add(ns.saturating_mul(n));
    }

    /// Adds this worker's figures to `snap` (which has [`LATENCY_BUCKETS`]).
    pub(crate) fn add_to(&self, snap: &mut Snapshot) {
        for (total, c) in snap.counts.iter_mut().zip(&self.buckets) {
            *total += c.get();
        }
        snap.sum += self.sum_ns.get() as f64 / 1e9;
    }
}

/// A histogram's figures at scrape time, summed over workers.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Snapshot {
    /// Upper bounds, increasing, without `+Inf`.
    pub bounds: Vec<f64>,
    /// Per bucket, not cumulative; `bounds.len() + 1` of them (`+Inf` last).
    pub counts: Vec<u64>,
    pub sum: f64,
}

impl Snapshot {
    pub(crate) fn empty(bounds: &[f64]) -> Snapshot {
        Snapshot { bounds: bounds.to_vec(), counts: vec![0; bounds.len() + 1], sum: 0.0 }
    }

    #[cfg(test)]
    pub(crate) fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// The index of the bucket `v` falls in (`bounds.len()` for `+Inf`).
pub(crate) fn bucket_of(bounds: &[f64], v: f64) -> usize {
    bounds.iter().position(|&b| v <= b).unwrap_or(bounds.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nanosecond_bounds_match_the_seconds() {
        for (s, ns) in LATENCY_BUCKETS.iter().zip(BOUNDS_NS) {
            assert_eq!((s * 1e9).round() as u64, ns);
        }
        assert!(LATENCY_BUCKETS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn observations_land_in_their_bucket_le_inclusive() {
        let h = LatencyCells::default();
        h.observe_n(Duration::from_micros(50), 1);
        h.observe_n(Duration::from_micros(100), 1); // on the bound: le="0.0001"
        h.observe_n(Duration::from_micros(101), 1);
        h.observe_n(Duration::from_secs(11), 1);
        let mut s = Snapshot::empty(&LATENCY_BUCKETS);
        h.add_to(&mut s);
        assert_eq!(s.counts[0], 2);
        assert_eq!(s.counts[1], 1);
        assert_eq!(s.counts[16], 1);
        assert_eq!(s.count(), 4);
        assert!((s.sum - 11.000251).abs() < 1e-9, "{}", s.sum);
        assert_eq!(bucket_of(&LATENCY_BUCKETS, 0.0001), 0);
        assert_eq!(bucket_of(&LATENCY_BUCKETS, 10.5), 16);
        assert_eq!(bucket_of(&[1.0], f64::NAN), 1);
    }

    #[test]
    fn several_equal_observations_at_once() {
        let h = LatencyCells::default();
        h.observe_n(Duration::from_micros(200), 16);
        h.observe_n(Duration::from_micros(50), 0);
        let mut s = Snapshot::empty(&LATENCY_BUCKETS);
        h.add_to(&mut s);
        assert_eq!(s.counts[0], 0);
        assert_eq!(s.counts[1], 16, "{:?}", s.counts);
        assert_eq!(s.count(), 16);
        assert!((s.sum - 0.0032).abs() < 1e-12, "{}", s.sum);
    }
}
