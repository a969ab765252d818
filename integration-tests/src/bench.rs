//! Reporting for the in-process benchmarks: latency samples of variants
//! measured side by side, printed as one table with ratios to the first
//! variant (the baseline).

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tower::ServiceExt;
use tower_data_api::DataApiService;

/// Calls `service` in-process; the time from the call to the end of the
/// response body, the status and the body.
pub async fn timed_call(
    service: &DataApiService,
    request: http::Request<Full<Bytes>>,
) -> (Duration, u16, Bytes) {
    let started = Instant::now();
    let response = service.clone().oneshot(request).await.expect("infallible");
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("infallible")
        .to_bytes();
    (started.elapsed(), status, body)
}

/// Latencies of one variant, sorted, in nanoseconds.
pub struct Latencies(Vec<u64>);

impl Latencies {
    /// Sorts `samples` (nanoseconds).
    pub fn new(mut samples: Vec<u64>) -> Self {
        samples.sort_unstable();
        Self(samples)
    }

    /// The `p` quantile (0–1), in microseconds.
    pub fn percentile_us(&self, p: f64) -> f64 {
        let rank = ((p * self.0.len() as f64).ceil() as usize).clamp(1, self.0.len());
        self.0[rank - 1] as f64 / 1e3
    }

    /// The mean, in microseconds.
    pub fn mean_us(&self) -> f64 {
        self.0.iter().sum::<u64>() as f64 / self.0.len() as f64 / 1e3
    }
}

/// Prints `title` and one line per variant (`labels[i]`, `samples[i]`):
/// p50, p99, mean, requests per second of one client, and the ratios to
/// the first variant.
pub fn print_comparison(
    title: &str,
    labels: &[&str],
    samples: Vec<Vec<u64>>,
    warm_up: usize,
    rounds: usize,
    wall: Duration,
) {
    let latencies: Vec<Latencies> = samples.into_iter().map(Latencies::new).collect();
    println!();
    println!("{title}");
    println!(
        "  {rounds} measured rounds after {warm_up} warm-up rounds, {} variants interleaved, \
         {:.3} s wall",
        labels.len(),
        wall.as_secs_f64()
    );
    println!(
        "  {:<50} {:>9} {:>9} {:>9} {:>9}   {:>6} {:>6} {:>6}",
        "variant", "p50 µs", "p99 µs", "mean µs", "req/s", "×p50", "×p99", "×mean"
    );
    let base = &latencies[0];
    for (label, figures) in labels.iter().zip(&latencies) {
        println!(
            "  {:<50} {:>9.1} {:>9.1} {:>9.1} {:>9.0}   {:>6.2} {:>6.2} {:>6.2}",
            label,
            figures.percentile_us(0.50),
            figures.percentile_us(0.99),
            figures.mean_us(),
            1e6 / figures.mean_us(),
            figures.percentile_us(0.50) / base.percentile_us(0.50),
            figures.percentile_us(0.99) / base.percentile_us(0.99),
            figures.mean_us() / base.mean_us(),
        );
    }
}

/// The machine's load averages (1, 5, 15 minutes), for the header of a run.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}
