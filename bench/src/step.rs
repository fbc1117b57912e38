//! One load step's figures, shared by the pipeline and the baseline.

use hdrhistogram::Histogram;
use jivapay_loadgen::Percentiles;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct StepResult {
    /// "pipeline" or "baseline"
    pub system: &'static str,
    /// "sweep", "25% of max", "ingest only" …
    pub label: String,
    pub offered_rate: f64,
    pub orders: u64,
    pub completed: u64,
    /// Not accepted, no requisite, or not completed before the drain limit.
    pub not_completed: u64,
    /// First scheduled arrival to last completion, seconds.
    pub duration_s: f64,
    pub completed_per_s: f64,
    /// Scheduled arrival → ledger transfer recorded (pipeline) / completion committed (baseline).
    pub e2e: Percentiles,
    /// Scheduled arrival → pay-in accepted (pipeline: HTTP 201; baseline: create committed).
    pub create: Percentiles,
    /// Average cores used during the step, per process (or group of processes).
    pub cpu_cores: Vec<(String, f64)>,
    /// Peak resident memory since start, per process.
    pub peak_rss_mib: Vec<(String, f64)>,
    /// Where the end-to-end time goes, per stage (pipeline only).
    pub stages: Vec<(String, Percentiles)>,
    pub sustainable: bool,
}

/// Largest p99 end-to-end latency a step may have and still count as sustained.
pub const SUSTAINABLE_P99_MS: f64 = 5000.0;

/// Completions of one step: (scheduled arrival, completion), Unix milliseconds, one per
/// completed order. Fills the throughput, the end-to-end percentiles and the verdict.
///
/// A step is sustained when at least 99 % of its orders completed, the p99 stayed under
/// [`SUSTAINABLE_P99_MS`], and the queue did not grow: under open-loop load a system that falls
/// behind makes every later order wait longer, so the median latency of the last third of the
/// arrivals must stay within 1.5× (+250 ms) of the first third's.
pub fn completions(result: &mut StepResult, mut done: Vec<(i64, i64)>) {
    done.sort_unstable();
    let mut h = new_histogram();
    for (at, end) in &done {
        h.saturating_record(((end - at).max(1) * 1000) as u64);
    }
    result.completed = done.len() as u64;
    result.not_completed = result.orders.saturating_sub(result.completed);
    result.e2e = jivapay_loadgen::Percentiles::of(&h);
    let first = done.iter().map(|(_, e)| *e).min().unwrap_or(0);
    let last = done.iter().map(|(_, e)| *e).max().unwrap_or(0);
    // Completions per second while they happened (first to last completion of the step).
    result.duration_s = ((last - first) as f64 / 1000.0).max(0.001);
    result.completed_per_s = if done.len() > 1 {
        (done.len() - 1) as f64 / result.duration_s
    } else {
        0.0
    };
    let third = done.len() / 3;
    let median = |part: &[(i64, i64)]| {
        let mut l: Vec<i64> = part.iter().map(|(a, e)| e - a).collect();
        l.sort_unstable();
        l.get(l.len() / 2).copied().unwrap_or(0) as f64
    };
    let (early, late) = if third > 0 {
        (median(&done[..third]), median(&done[done.len() - third..]))
    } else {
        (0.0, 0.0)
    };
    result.sustainable = result.orders > 0
        && result.completed as f64 >= 0.99 * result.orders as f64
        && result.e2e.p99_ms <= SUSTAINABLE_P99_MS
        && late <= early * 1.5 + 250.0;
}

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds")
}

/// Average cores: CPU seconds used over wall seconds.
pub fn cores(before: f64, after: f64, wall_s: f64) -> f64 {
    if wall_s <= 0.0 {
        0.0
    } else {
        ((after - before) / wall_s * 100.0).round() / 100.0
    }
}
