//! A velocity window: how many orders a store, or one of its customers, made recently — kept as
//! counts per bucket of time, so its changelog record (and the decision log's copy of it in
//! every batch) stays small whatever the volume: at most `width / bucket + 1` buckets, 61 for a
//! store's minute and for a customer's hour. (It was every order's time: about 166 KB per
//! batch for a store at 593 orders/s, and past the 1 MB message limit near 3 600 orders/s.)

use crate::core::Millis;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How wide a window is and the grain it counts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub width_ms: Millis,
    pub bucket_ms: Millis,
}

/// A store's orders per minute, counted per second.
pub const STORE_SPAN: Span = Span {
    width_ms: 60_000,
    bucket_ms: 1_000,
};

/// A customer's orders per hour, counted per minute.
pub const CUSTOMER_SPAN: Span = Span {
    width_ms: 3_600_000,
    bucket_ms: 60_000,
};

/// Orders per bucket, by the bucket's start.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "WindowRecord", into = "WindowRecord")]
pub struct Window {
    counts: BTreeMap<Millis, u32>,
}

impl Window {
    /// Counts the orders in every bucket that overlaps the `span.width_ms` before `at` (or lies
    /// after it: orders from another ingest instance may arrive slightly out of order), then
    /// records `at`.
    ///
    /// A bucket the window's edge cuts counts whole, so the count is never below the exact
    /// one: no more orders than the limit pass within any `width_ms`, and an order keeps
    /// counting for at most one bucket longer than an exact window would count it.
    pub fn count_then_record(&mut self, at: Millis, span: Span) -> usize {
        let first = bucket_of(at.saturating_sub(span.width_ms), span.bucket_ms);
        let earlier: u64 = self.counts.range(first..).map(|(_, n)| u64::from(*n)).sum();
        let slot = self
            .counts
            .entry(bucket_of(at, span.bucket_ms))
            .or_default();
        *slot = slot.saturating_add(1);
        // Buckets no order after the newest can count.
        if let Some(newest) = self.counts.last_key_value().map(|(start, _)| *start) {
            let needed = bucket_of(newest.saturating_sub(span.width_ms), span.bucket_ms);
            self.counts = self.counts.split_off(&needed);
        }
        usize::try_from(earlier).unwrap_or(usize::MAX)
    }

    /// True when nothing in the window can count any more at `now` for an order as old as
    /// `lateness_ms` allows.
    pub fn is_stale(&self, now: Millis, span: Span, lateness_ms: Millis) -> bool {
        self.counts.last_key_value().is_none_or(|(start, _)| {
            start.saturating_add(span.bucket_ms)
                <= now.saturating_sub(span.width_ms.saturating_add(lateness_ms))
        })
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// How many buckets the window holds.
    pub fn buckets(&self) -> usize {
        self.counts.len()
    }
}

fn bucket_of(at: Millis, bucket_ms: Millis) -> Millis {
    at - at.rem_euclid(bucket_ms)
}

/// A window in the changelog: `[[bucket start, count], …]`, or — as written before buckets —
/// every order's time, read as buckets of one millisecond (they leave as the window moves).
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum WindowRecord {
    Buckets(Vec<(Millis, u32)>),
    Times(Vec<Millis>),
}

impl From<WindowRecord> for Window {
    fn from(record: WindowRecord) -> Self {
        let mut counts = BTreeMap::new();
        match record {
            WindowRecord::Buckets(buckets) => counts.extend(buckets),
            WindowRecord::Times(times) => {
                for at in times {
                    let slot: &mut u32 = counts.entry(at).or_default();
                    *slot = slot.saturating_add(1);
                }
            }
        }
        Window { counts }
    }
}

impl From<Window> for WindowRecord {
    fn from(window: Window) -> Self {
        WindowRecord::Buckets(window.counts.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T0: Millis = 1_700_000_000_000;

    #[test]
    fn counts_every_bucket_the_window_touches() {
        let mut w = Window::default();
        assert_eq!(w.count_then_record(T0 + 500, STORE_SPAN), 0);
        assert_eq!(w.count_then_record(T0 + 900, STORE_SPAN), 1);
        assert_eq!(w.count_then_record(T0 + 30_000, STORE_SPAN), 2);
        // 60.4 s after the first: its second is cut by the window's edge and counts whole.
        assert_eq!(w.count_then_record(T0 + 60_400, STORE_SPAN), 3);
        // A second later the first second has left.
        assert_eq!(w.count_then_record(T0 + 61_000, STORE_SPAN), 2);
    }

    #[test]
    fn a_store_flooding_the_gateway_keeps_a_small_record() {
        let mut w = Window::default();
        for n in 0..300_000 {
            w.count_then_record(T0 + n / 3, STORE_SPAN);
        }
        assert!(w.buckets() <= 61, "{} buckets", w.buckets());
        let bytes = serde_json::to_vec(&w).unwrap();
        assert!(bytes.len() < 2_000, "{} bytes", bytes.len());
    }

    #[test]
    fn reads_the_times_written_before_buckets() {
        let old = format!("[{},{},{}]", T0, T0 + 10, T0 + 20_000);
        let mut w: Window = serde_json::from_str(&old).unwrap();
        assert_eq!(w.count_then_record(T0 + 30_000, STORE_SPAN), 3);
        let round: Window = serde_json::from_slice(&serde_json::to_vec(&w).unwrap()).unwrap();
        assert_eq!(round, w);
        assert_eq!(
            serde_json::from_str::<Window>("[]").unwrap(),
            Window::default()
        );
    }

    #[test]
    fn is_stale_once_its_newest_bucket_cannot_count() {
        let minute = T0 - T0 % 60_000;
        let mut w = Window::default();
        w.count_then_record(minute + 500, CUSTOMER_SPAN);
        let end = minute + 60_000 + 3_600_000;
        assert!(!w.is_stale(end - 1, CUSTOMER_SPAN, 0));
        assert!(w.is_stale(end, CUSTOMER_SPAN, 0));
        assert!(!w.is_stale(end, CUSTOMER_SPAN, 1));
        assert!(Window::default().is_stale(T0, CUSTOMER_SPAN, 0));
    }

    proptest! {
        /// Never below the exact count of the times within the width before `at` (or after
        /// it), never above the exact count over one bucket more.
        #[test]
        fn counts_between_the_exact_window_and_one_bucket_more(
            gaps in proptest::collection::vec(0i64..5_000, 1..200),
        ) {
            let mut w = Window::default();
            let mut times = Vec::new();
            let mut at = T0;
            for gap in gaps {
                at += gap;
                let exact = times.iter().filter(|t| **t > at - 60_000).count();
                let wider = times.iter().filter(|t| **t > at - 61_000).count();
                let counted = w.count_then_record(at, STORE_SPAN);
                prop_assert!(exact <= counted && counted <= wider, "{exact} ≤ {counted} ≤ {wider}");
                times.push(at);
            }
        }
    }
}
