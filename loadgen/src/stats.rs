//! Counters the driver updates as it goes (read by a progress display) and latency histograms.

use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Live counters of a run; cheap to update from many tasks.
#[derive(Debug, Default)]
pub struct Progress {
    /// Pay-ins the gateway accepted.
    pub posted: AtomicU64,
    /// Pay-ins the gateway refused or that failed in transport.
    pub create_failed: AtomicU64,
    /// Arrivals shed because too many orders were in flight in the generator itself.
    pub shed: AtomicU64,
    /// Customers who saw a requisite.
    pub assigned_seen: AtomicU64,
    /// "I have paid" accepted (JSON or form).
    pub customer_confirmed: AtomicU64,
    /// … of which with a receipt uploaded through the form.
    pub receipts: AtomicU64,
    /// Customers who decided not to pay.
    pub unpaid: AtomicU64,
    /// Customers whose order ended without a requisite (no_requisite, review, rejected …) or
    /// who gave up waiting.
    pub not_assigned: AtomicU64,
    /// Trader confirmations accepted.
    pub trader_confirmed: AtomicU64,
    /// Any other refused call (confirmations, polls).
    pub other_errors: AtomicU64,
    /// Gateway latency of the accepted pay-ins, from the scheduled send time.
    pub create_latency: Latency,
}

impl Progress {
    pub fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// A latency histogram in microseconds (1 µs to 10 min, 3 significant digits).
#[derive(Debug)]
pub struct Latency(Mutex<Histogram<u64>>);

impl Default for Latency {
    fn default() -> Self {
        Self(Mutex::new(
            Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds"),
        ))
    }
}

impl Latency {
    pub fn record(&self, latency: Duration) {
        let micros = (latency.as_micros() as u64).clamp(1, 600_000_000);
        if let Ok(mut h) = self.0.lock() {
            h.saturating_record(micros);
        }
    }

    /// A copy of the histogram so far.
    pub fn snapshot(&self) -> Histogram<u64> {
        self.0
            .lock()
            .map(|h| h.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }
}

/// Percentiles of a microsecond histogram, in milliseconds.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Self {
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        Self {
            count: h.len(),
            p50_ms: ms(0.5),
            p95_ms: ms(0.95),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
            max_ms: h.max() as f64 / 1000.0,
        }
    }
}
