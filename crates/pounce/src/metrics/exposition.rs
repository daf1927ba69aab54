//! What `/metrics` shows: pounce's own metrics, gathered from the workers'
//! cells and the shutdown state when a scrape asks, then the process
//! metrics, then the library user's.
//!
//! Nothing is sent to or asked of the workers: each figure is a relaxed read
//! of a cell its worker owns ([`super::worker`], `shutdown::WorkerStats`), so
//! a scrape works the same while the workers serve, drain, or have stopped.

use super::histogram::{LATENCY_BUCKETS, Snapshot};
use super::process::ProcessStats;
use super::registry;
use super::text::{Exposition, Kind};
use super::worker::{ServerMetrics, Timeout, WorkerMetrics};
use crate::shutdown::{Phase, Shared};
use crate::tls::HandshakeFailure;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Every metric pounce exposes itself (the process and library ones come
/// after): name, type, help. The README's table and the Grafana dashboard
/// are checked against a real scrape, not against this list.
pub(crate) const METRICS: &[(&str, Kind, &str)] = &[
    ("pounce_build_info", Kind::Gauge, "pounce's version, as a label; always 1."),
    (
        "pounce_draining",
        Kind::Gauge,
        "1 while this process drains (after a shutdown signal and shutdown_delay, or after handing over \
         to a hot upgrade's successor), else 0.",
    ),
    (
        "pounce_requests_total",
        Kind::Counter,
        "Responses sent, by worker and status code: the app's, the health endpoint's and pounce's own \
         (400, 408, 413, 431, 503 while draining or over max_connections, ...).",
    ),
    (
        "pounce_request_duration_seconds",
        Kind::Histogram,
        "Time from a request's head being read (its first byte, for one refused before its head was \
         complete) to its response being handed to the socket, in seconds. Pipelined requests \
         answered without waiting are timed together, from the start of their run to its end.",
    ),
    (
        "pounce_request_timeouts_total",
        Kind::Counter,
        "Requests that timed out, by worker and kind: header (408, head not complete within \
         header_timeout), body (408, body stalled past request_timeout), handler (cancelled past \
         request_timeout: 503, or the connection closed if the response had started).",
    ),
    ("pounce_connections_active", Kind::Gauge, "Open client connections, by worker."),
    (
        "pounce_connections_accepted_total",
        Kind::Counter,
        "Client connections accepted, by worker (those refused with a 503 included).",
    ),
    (
        "pounce_drain_rejected_total",
        Kind::Counter,
        "New connections answered 503 (Retry-After: 1) because this process was draining.",
    ),
    (
        "pounce_connections_force_closed_total",
        Kind::Counter,
        "Connections shut down by force when shutdown_timeout expired.",
    ),
    (
        "pounce_tls_handshakes_total",
        Kind::Counter,
        "TLS handshakes completed, by worker (0 when serving plain HTTP).",
    ),
    (
        "pounce_tls_handshake_failures_total",
        Kind::Counter,
        "TLS handshakes that did not complete, by worker and reason (timeout, plain_http, not_tls, \
         protocol_version, no_application_protocol, ...).",
    ),
];

/// Where a scrape reads from; shared with the metrics endpoint's thread.
pub(crate) struct Sources {
    pub shared: Arc<Shared>,
    pub server: Arc<ServerMetrics>,
}

impl Sources {
    /// The whole exposition, as of now.
    pub(crate) fn render(&self) -> String {
        let mut e = Exposition::default();
        let header = |e: &mut Exposition, name: &str| {
            let (_, kind, help) = METRICS.iter().find(|m| m.0 == name).expect("listed in METRICS");
            e.header(name, help, *kind);
        };
        let workers: Vec<(usize, String, &WorkerMetrics)> =
            self.server.iter().map(|(id, w)| (id, id.to_string(), w)).collect();

        header(&mut e, "pounce_build_info");
        e.sample("pounce_build_info", &[("version", env!("CARGO_PKG_VERSION"))], 1u64);

        header(&mut e, "pounce_draining");
        e.sample("pounce_draining", &[], u64::from(self.shared.phase() >= Phase::Draining));

        header(&mut e, "pounce_requests_total");
        let mut codes: Vec<u16> = workers.iter().flat_map(|(_, _, w)| w.codes_seen()).collect();
        codes.sort_unstable();
        codes.dedup();
        for code in codes {
            let code_label = code.to_string();
            for (_, id, w) in &workers {
                e.sample(
                    "pounce_requests_total",
                    &[("worker", id), ("code", &code_label)],
                    w.responses(code),
                );
            }
        }

        header(&mut e, "pounce_request_duration_seconds");
        let mut snap = Snapshot::empty(&LATENCY_BUCKETS);
        for (_, _, w) in &workers {
            w.latency().add_to(&mut snap);
        }
        e.histogram("pounce_request_duration_seconds", &[], &snap);

        header(&mut e, "pounce_request_timeouts_total");
        for (_, id, w) in &workers {
            for kind in Timeout::ALL {
                e.sample(
                    "pounce_request_timeouts_total",
                    &[("worker", id), ("kind", kind.label())],
                    w.timeouts(kind),
                );
            }
        }

        header(&mut e, "pounce_connections_active");
        for (k, id, _) in &workers {
            let n = self.shared.workers.get(k - 1).map_or(0, |s| s.active.load(Ordering::Relaxed) as u64);
            e.sample("pounce_connections_active", &[("worker", id)], n);
        }

        header(&mut e, "pounce_connections_accepted_total");
        for (_, id, w) in &workers {
            e.sample("pounce_connections_accepted_total", &[("worker", id)], w.accepted());
        }

        header(&mut e, "pounce_drain_rejected_total");
        e.sample(
            "pounce_drain_rejected_total",
            &[],
            self.shared.total(|w| w.rejected.load(Ordering::Relaxed)),
        );

        header(&mut e, "pounce_connections_force_closed_total");
        e.sample(
            "pounce_connections_force_closed_total",
            &[],
            self.shared.total(|w| w.forced.load(Ordering::Relaxed)),
        );

        header(&mut e, "pounce_tls_handshakes_total");
        for (k, id, _) in &workers {
            let n = self.shared.workers.get(k - 1).map_or(0, |s| s.tls_handshakes.load(Ordering::Relaxed));
            e.sample("pounce_tls_handshakes_total", &[("worker", id)], n);
        }

        header(&mut e, "pounce_tls_handshake_failures_total");
        for (k, id, _) in &workers {
            for reason in HandshakeFailure::ALL {
                let n = self
                    .shared
                    .workers
                    .get(k - 1)
                    .map_or(0, |s| s.tls_failures[reason.index()].load(Ordering::Relaxed));
                e.sample(
                    "pounce_tls_handshake_failures_total",
                    &[("worker", id), ("reason", reason.label())],
                    n,
                );
            }
        }

        ProcessStats::read().write(&mut e);
        registry::write_registered(&mut e);
        e.into_string()
    }
}

#[cfg(test)]
mod tests {
    use super::super::worker::Meter;
    use super::*;
    use std::time::Duration;

    fn lines_of<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
        text.lines().filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' '])).collect()
    }

    #[test]
    fn a_scrape_shows_what_the_workers_counted() {
        let sources = Sources { shared: Arc::new(Shared::new(2)), server: Arc::new(ServerMetrics::new(2)) };
        let text = sources.render();
        assert!(text.starts_with("# HELP pounce_build_info "), "{text}");
        let info = format!("\npounce_build_info{{version=\"{}\"}} 1\n", env!("CARGO_PKG_VERSION"));
        assert!(text.contains(&info), "{text}");
        assert!(text.contains("\npounce_draining 0\n"));
        assert!(lines_of(&text, "pounce_requests_total").is_empty(), "no code seen yet");
        assert!(text.contains("\npounce_request_duration_seconds_count 0\n"));

        let (w1, w2) = (Meter(Some(sources.server.worker(1))), Meter(Some(sources.server.worker(2))));
        let t = Duration::from_millis(2);
        w1.response(200, t);
        w2.response(200, t);
        w2.response(503, t);
        w2.accepted();
        w1.timeout(Timeout::Handler);
        sources.shared.stats(1).active.store(3, Ordering::Relaxed);
        sources.shared.stats(2).rejected.fetch_add(1, Ordering::Relaxed);
        sources.shared.advance(Phase::Draining);
        let text = sources.render();
        assert_eq!(
            lines_of(&text, "pounce_requests_total"),
            [
                "pounce_requests_total{worker=\"1\",code=\"200\"} 1",
                "pounce_requests_total{worker=\"2\",code=\"200\"} 1",
                "pounce_requests_total{worker=\"1\",code=\"503\"} 0",
                "pounce_requests_total{worker=\"2\",code=\"503\"} 1",
            ]
        );
        assert!(text.contains("\npounce_request_duration_seconds_bucket{le=\"0.001\"} 0\n"), "{text}");
        assert!(text.contains("\npounce_request_duration_seconds_bucket{le=\"0.0025\"} 3\n"), "{text}");
        assert!(text.contains("\npounce_request_duration_seconds_count 3\n"));
        assert!(text.contains("\npounce_request_timeouts_total{worker=\"1\",kind=\"handler\"} 1\n"));
        assert!(text.contains("\npounce_request_timeouts_total{worker=\"2\",kind=\"header\"} 0\n"));
        assert!(text.contains("\npounce_connections_active{worker=\"1\"} 3\n"));
        assert!(text.contains("\npounce_connections_accepted_total{worker=\"2\"} 1\n"));
        assert!(text.contains("\npounce_drain_rejected_total 1\n"));
        assert!(text.contains("\npounce_connections_force_closed_total 0\n"));
        assert!(text.contains("\npounce_draining 1\n"));
        assert!(text.contains("\n# TYPE process_open_fds gauge\n"));
        // Every listed metric has its HELP and TYPE, once.
        for (name, _, _) in METRICS {
            assert_eq!(text.matches(&format!("# TYPE {name} ")).count(), 1, "{name}");
        }
    }

    #[test]
    fn a_handover_drain_is_a_drain() {
        let sources = Sources { shared: Arc::new(Shared::new(1)), server: Arc::new(ServerMetrics::new(1)) };
        sources.shared.hand_over();
        sources.shared.advance(Phase::Draining);
        assert!(!sources.shared.shutting_down(), "health stays ok");
        assert!(sources.render().contains("\npounce_draining 1\n"));
    }
}
