//! Prometheus metrics: request counts by route and status, a latency histogram, predictions
//! per class.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 5.0,
];

#[derive(Default)]
struct Inner {
    requests: BTreeMap<(String, u16), u64>,
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
    predictions: BTreeMap<String, u64>,
}

/// The server's metrics.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    /// Records one finished request.
    pub fn request(&self, route: &str, status: u16, seconds: f64) {
        let mut m = self
            .inner
            .lock()
            .expect("metrics lock is never poisoned: no panics inside");
        *m.requests.entry((route.to_owned(), status)).or_default() += 1;
        for (b, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                m.buckets[b] += 1;
            }
        }
        m.count += 1;
        m.sum += seconds;
    }

    /// Records predicted classes.
    pub fn predictions<'a>(&self, classes: impl IntoIterator<Item = &'a str>) {
        let mut m = self
            .inner
            .lock()
            .expect("metrics lock is never poisoned: no panics inside");
        for c in classes {
            *m.predictions.entry(c.to_owned()).or_default() += 1;
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let m = self
            .inner
            .lock()
            .expect("metrics lock is never poisoned: no panics inside");
        let mut s = String::new();
        s.push_str("# HELP tabtune_requests_total HTTP requests by route and status.\n# TYPE tabtune_requests_total counter\n");
        for ((route, status), n) in &m.requests {
            let _ = writeln!(
                s,
                "tabtune_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        s.push_str("# HELP tabtune_request_duration_seconds Request latency.\n# TYPE tabtune_request_duration_seconds histogram\n");
        for (b, bound) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                s,
                "tabtune_request_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                m.buckets[b]
            );
        }
        let _ = writeln!(
            s,
            "tabtune_request_duration_seconds_bucket{{le=\"+Inf\"}} {}",
            m.count
        );
        let _ = writeln!(s, "tabtune_request_duration_seconds_sum {}", m.sum);
        let _ = writeln!(s, "tabtune_request_duration_seconds_count {}", m.count);
        s.push_str("# HELP tabtune_predictions_total Predicted rows by class.\n# TYPE tabtune_predictions_total counter\n");
        for (class, n) in &m.predictions {
            let _ = writeln!(s, "tabtune_predictions_total{{class=\"{class}\"}} {n}");
        }
        s
    }
}
