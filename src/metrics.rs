//! Counters and latency histograms, read by `GET /api/status`, `GET /metrics`
//! (Prometheus text format) and `system:metric`. Plain atomics: counting costs a few
//! nanoseconds on any thread.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// A histogram with fixed buckets (seconds).
pub struct Histogram {
    bounds: &'static [f64],
    counts: [AtomicU64; 16],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

const LATENCY_BOUNDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

impl Histogram {
    const fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: [const { AtomicU64::new(0) }; 16],
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        if let Some(i) = self.bounds.iter().position(|b| secs <= *b) {
            self.counts[i].fetch_add(1, Relaxed);
        }
        self.sum_micros
            .fetch_add(elapsed.as_micros() as u64, Relaxed);
        self.count.fetch_add(1, Relaxed);
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, bound) in self.bounds.iter().enumerate() {
            cumulative += self.counts[i].load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_micros.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {count}");
    }
}

pub struct Metrics {
    pub http_requests: AtomicU64,
    pub http_errors: AtomicU64,
    pub http_latency: Histogram,
    pub ws_messages_received: AtomicU64,
    pub ws_messages_sent: AtomicU64,
    pub ws_connections_opened: AtomicU64,
    pub protocol_latency: Histogram,
    pub commands_run: AtomicU64,
    pub commands_failed: AtomicU64,
    pub command_latency: Histogram,
}

pub static METRICS: Metrics = Metrics {
    http_requests: AtomicU64::new(0),
    http_errors: AtomicU64::new(0),
    http_latency: Histogram::new(LATENCY_BOUNDS),
    ws_messages_received: AtomicU64::new(0),
    ws_messages_sent: AtomicU64::new(0),
    ws_connections_opened: AtomicU64::new(0),
    protocol_latency: Histogram::new(LATENCY_BOUNDS),
    commands_run: AtomicU64::new(0),
    commands_failed: AtomicU64::new(0),
    command_latency: Histogram::new(LATENCY_BOUNDS),
};

/// A counter as `system:metric` / `GET /api/status` name it (`key`) and as `/metrics`
/// does (`name`), with its help text.
pub struct Counter {
    pub key: &'static str,
    pub name: &'static str,
    pub help: &'static str,
    pub value: &'static AtomicU64,
}

/// Every counter, in the order both expositions list them.
pub const COUNTERS: [Counter; 7] = [
    Counter {
        key: "http_requests",
        name: "workerhub_http_requests_total",
        help: "HTTP requests served.",
        value: &METRICS.http_requests,
    },
    Counter {
        key: "http_errors",
        name: "workerhub_http_errors_total",
        help: "HTTP requests answered with an error status.",
        value: &METRICS.http_errors,
    },
    Counter {
        key: "ws_connections_opened",
        name: "workerhub_ws_connections_opened_total",
        help: "WebSocket connections opened.",
        value: &METRICS.ws_connections_opened,
    },
    Counter {
        key: "ws_messages_received",
        name: "workerhub_ws_messages_received_total",
        help: "WebSocket messages received from clients.",
        value: &METRICS.ws_messages_received,
    },
    Counter {
        key: "ws_messages_sent",
        name: "workerhub_ws_messages_sent_total",
        help: "WebSocket messages queued for clients.",
        value: &METRICS.ws_messages_sent,
    },
    Counter {
        key: "commands_run",
        name: "workerhub_commands_total",
        help: "One-off commands run.",
        value: &METRICS.commands_run,
    },
    Counter {
        key: "commands_failed",
        name: "workerhub_commands_failed_total",
        help: "One-off commands that did not succeed.",
        value: &METRICS.commands_failed,
    },
];

pub fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Relaxed);
}

pub fn get(counter: &AtomicU64) -> u64 {
    counter.load(Relaxed)
}

/// A Prometheus text exposition.
pub struct Exposition(String);

impl Exposition {
    pub fn new() -> Exposition {
        Exposition(String::new())
    }

    /// One metric with its help, type and samples (`labels` as `k="v",...`).
    pub fn metric(&mut self, name: &str, kind: &str, help: &str, samples: &[(String, f64)]) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            if labels.is_empty() {
                let _ = writeln!(self.0, "{name} {value}");
            } else {
                let _ = writeln!(self.0, "{name}{{{labels}}} {value}");
            }
        }
    }

    pub fn one(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        self.metric(name, kind, help, &[(String::new(), value)]);
    }

    pub fn histogram(&mut self, name: &str, help: &str, histogram: &Histogram) {
        histogram.render(name, help, &mut self.0);
    }

    pub fn finish(self) -> String {
        self.0
    }
}

impl Default for Exposition {
    fn default() -> Self {
        Exposition::new()
    }
}

/// A label value with `\`, `"` and newlines escaped.
pub fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative() {
        let h = Histogram::new(LATENCY_BOUNDS);
        h.observe(Duration::from_micros(50));
        h.observe(Duration::from_millis(3));
        let mut out = String::new();
        h.render("x", "help", &mut out);
        assert!(out.contains("x_bucket{le=\"0.0001\"} 1"));
        assert!(out.contains("x_bucket{le=\"0.005\"} 2"));
        assert!(out.contains("x_count 2"));
    }
}
