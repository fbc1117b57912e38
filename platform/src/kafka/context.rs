//! The consumer context of every streaming loop: it marks that the assignment changed (so the
//! loop drops what it cached per partition and, for processors, rebuilds its state) and
//! publishes the consumer lag librdkafka computes from its statistics (no extra round trips:
//! the high watermark comes with every fetch response).

use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::ClientContext;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// How often librdkafka reports statistics, from which the lag gauge is set.
pub const STATISTICS_INTERVAL_MS: &str = "2000";

pub struct LoopContext {
    rebalanced: Arc<AtomicBool>,
    /// Gauge name and label of the lag: `jivapay_processor_consumer_lag{stage}`,
    /// `jivapay_sink_consumer_lag{sink}`.
    lag_gauge: &'static str,
    label: &'static str,
    name: String,
}

impl LoopContext {
    pub fn new(lag_gauge: &'static str, label: &'static str, name: impl Into<String>) -> Self {
        Self {
            rebalanced: Arc::default(),
            lag_gauge,
            label,
            name: name.into(),
        }
    }

    /// What [`take_rebalanced`](Rebalanced::take) reads; clone it before creating the consumer.
    pub fn rebalanced(&self) -> Rebalanced {
        Rebalanced(self.rebalanced.clone())
    }
}

/// Whether the assignment changed since the loop last asked.
#[derive(Clone)]
pub struct Rebalanced(Arc<AtomicBool>);

impl Rebalanced {
    pub fn take(&self) -> bool {
        self.0.swap(false, Ordering::SeqCst)
    }
}

impl ClientContext for LoopContext {
    fn stats(&self, statistics: rdkafka::Statistics) {
        for (topic, stats) in &statistics.topics {
            for (id, partition) in &stats.partitions {
                // -1 is librdkafka's internal "unassigned" partition; a lag of -1 is unknown
                // (no committed offset or watermark yet).
                if *id < 0 || partition.consumer_lag < 0 {
                    continue;
                }
                metrics::gauge!(
                    self.lag_gauge,
                    self.label => self.name.clone(),
                    "topic" => topic.clone(),
                    "partition" => id.to_string()
                )
                .set(partition.consumer_lag as f64);
            }
        }
    }
}

impl ConsumerContext for LoopContext {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if matches!(rebalance, Rebalance::Assign(_) | Rebalance::Revoke(_)) {
            self.rebalanced.store(true, Ordering::SeqCst);
        }
    }
}
