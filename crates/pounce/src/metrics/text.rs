//! The Prometheus text exposition format, version 0.0.4: the few rules it
//! has, written out by hand rather than pulled in as a crate.
//!
//! - `# HELP name text` (backslash and newline escaped) and
//!   `# TYPE name counter|gauge|histogram` once per metric, before its samples;
//! - `name{label="value",...} number` per sample; label values escape
//!   backslash, double quote and newline;
//! - a histogram is `name_bucket{le="..."}` lines, cumulative and ending
//!   with `le="+Inf"`, then `name_sum` and `name_count`;
//! - numbers are Go-parsable floats: `+Inf`, `-Inf`, `NaN` spelled so.

use super::histogram::Snapshot;
use std::fmt::Write;

/// The `Content-Type` of a scrape's answer.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The metric types pounce exposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Accumulates one exposition.
#[derive(Debug, Default)]
pub(crate) struct Exposition {
    out: String,
}

impl Exposition {
    pub(crate) fn into_string(self) -> String {
        self.out
    }

    /// `# HELP` and `# TYPE` for metric `name`.
    pub(crate) fn header(&mut self, name: &str, help: &str, kind: Kind) {
        self.out.push_str("# HELP ");
        self.out.push_str(name);
        self.out.push(' ');
        for c in help.chars() {
            match c {
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                c => self.out.push(c),
            }
        }
        let _ = writeln!(self.out, "\n# TYPE {name} {}", kind.as_str());
    }

    /// One sample line.
    pub(crate) fn sample<V: Value>(&mut self, name: &str, labels: &[(&str, &str)], value: V) {
        self.out.push_str(name);
        self.labels(labels, None);
        self.out.push(' ');
        value.write(&mut self.out);
        self.out.push('\n');
    }

    /// A histogram's bucket, sum and count lines (after its [`header`]).
    ///
    /// [`header`]: Self::header
    pub(crate) fn histogram(&mut self, name: &str, labels: &[(&str, &str)], snap: &Snapshot) {
        let mut cumulative = 0u64;
        let mut le = String::new();
        for (i, n) in snap.counts.iter().enumerate() {
            cumulative += n;
            le.clear();
            match snap.bounds.get(i) {
                Some(b) => b.write(&mut le),
                None => le.push_str("+Inf"),
            }
            let _ = write!(self.out, "{name}_bucket");
            self.labels(labels, Some(&le));
            let _ = writeln!(self.out, " {cumulative}");
        }
        self.sample(&format!("{name}_sum"), labels, snap.sum);
        self.sample(&format!("{name}_count"), labels, cumulative);
    }

    fn labels(&mut self, labels: &[(&str, &str)], le: Option<&str>) {
        if labels.is_empty() && le.is_none() {
            return;
        }
        self.out.push('{');
        let mut first = true;
        for (k, v) in labels.iter().copied().chain(le.map(|v| ("le", v))) {
            if !first {
                self.out.push(',');
            }
            first = false;
            self.out.push_str(k);
            self.out.push_str("=\"");
            for c in v.chars() {
                match c {
                    '\\' => self.out.push_str("\\\\"),
                    '"' => self.out.push_str("\\\""),
                    '\n' => self.out.push_str("\\n"),
                    c => self.out.push(c),
                }
            }
            self.out.push('"');
        }
        self.out.push('}');
    }
}

/// A sample value.
pub(crate) trait Value {
    fn write(&self, out: &mut String);
}

impl Value for u64 {
    fn write(&self, out: &mut String) {
        out.push_str(itoa::Buffer::new().format(*self));
    }
}

impl Value for f64 {
    fn write(&self, out: &mut String) {
        let v = *self;
        if v.is_nan() {
            out.push_str("NaN");
        } else if v.is_infinite() {
            out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
        } else if v != 0.0 && !(1e-5..1e15).contains(&v.abs()) {
            // Rust's plain Display never uses an exponent: keep huge and tiny
            // numbers short (`1e300`, `2.5e-7`; Go parses both).
            let _ = write!(out, "{v:e}");
        } else {
            let _ = write!(out, "{v}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(v: f64) -> String {
        let mut s = String::new();
        v.write(&mut s);
        s
    }

    #[test]
    fn numbers_are_go_floats() {
        assert_eq!(f(0.0001), "0.0001");
        assert_eq!(f(1.0), "1");
        assert_eq!(f(2.5), "2.5");
        assert_eq!(f(0.0), "0");
        assert_eq!(f(-3.0), "-3");
        assert_eq!(f(f64::INFINITY), "+Inf");
        assert_eq!(f(f64::NEG_INFINITY), "-Inf");
        assert_eq!(f(f64::NAN), "NaN");
        assert_eq!(f(1e300), "1e300");
        assert_eq!(f(2.5e-7), "2.5e-7");
        let mut s = String::new();
        u64::MAX.write(&mut s);
        assert_eq!(s, "18446744073709551615");
    }

    #[test]
    fn help_and_label_values_are_escaped() {
        let mut e = Exposition::default();
        e.header("x_total", "a \\ b\nc \"q\"", Kind::Counter);
        e.sample("x_total", &[("path", "a\"b\\c\nd"), ("k", "")], 3u64);
        e.sample("y", &[], 0.5f64);
        assert_eq!(
            e.into_string(),
            "# HELP x_total a \\\\ b\\nc \"q\"\n# TYPE x_total counter\n\
             x_total{path=\"a\\\"b\\\\c\\nd\",k=\"\"} 3\ny 0.5\n"
        );
    }

    #[test]
    fn histograms_are_cumulative_and_end_with_inf() {
        let snap = Snapshot { bounds: vec![0.1, 1.0], counts: vec![2, 0, 1], sum: 3.25 };
        let mut e = Exposition::default();
        e.header("d_seconds", "D.", Kind::Histogram);
        e.histogram("d_seconds", &[("w", "1")], &snap);
        assert_eq!(
            e.into_string(),
            "# HELP d_seconds D.\n# TYPE d_seconds histogram\n\
             d_seconds_bucket{w=\"1\",le=\"0.1\"} 2\n\
             d_seconds_bucket{w=\"1\",le=\"1\"} 2\n\
             d_seconds_bucket{w=\"1\",le=\"+Inf\"} 3\n\
             d_seconds_sum{w=\"1\"} 3.25\n\
             d_seconds_count{w=\"1\"} 3\n"
        );
    }
}
