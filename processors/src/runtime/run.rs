//! The consume → process → produce → changelog → commit loop.

use super::changelog::{restore, RestoreError};
use super::decode::{decode, encode};
use crate::core::{Clock, Emit, Processor};
use jivapay_platform::kafka::partitioner::java_partition;
use jivapay_platform::kafka::{consumer_config, Broker, ProduceError, RecordProducer};
use jivapay_schemas::records::{ChangelogEntry, InputOffset};
use jivapay_schemas::SchemaRegistry;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Limits of one runtime.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Consumer group id.
    pub group: String,
    /// Most records applied in one batch (one produce, changelog write and commit).
    pub batch_records_max: usize,
    /// How long a batch waits for more records once it has one.
    pub batch_wait_ms: u64,
    /// How often timers fire (`Processor::tick`).
    pub tick_interval_ms: u64,
    /// Bound on one restore.
    pub restore_timeout_ms: u64,
    /// Static group membership (`group.instance.id`), see `KafkaSettings::instance_id`.
    pub instance_id: Option<String>,
}

impl RuntimeConfig {
    pub fn new(group: impl Into<String>) -> Self {
        Self {
            group: group.into(),
            batch_records_max: 500,
            batch_wait_ms: 5,
            tick_interval_ms: 500,
            restore_timeout_ms: 60_000,
            instance_id: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("produce: {0}")]
    Produce(#[from] ProduceError),
    #[error("restore: {0}")]
    Restore(#[from] RestoreError),
    #[error("changelog topic {0} does not exist: run `jivapay topics create` first")]
    NoChangelog(String),
}

/// How often librdkafka reports statistics, from which the consumer lag gauge is set.
const STATISTICS_INTERVAL_MS: &str = "2000";

/// Marks that the assignment changed, so the loop rebuilds its state before going on, and
/// publishes the consumer lag librdkafka computes from its statistics (no extra round trips:
/// the high watermark comes with every fetch response).
struct RebalanceContext {
    changed: Arc<AtomicBool>,
    stage: &'static str,
}

impl ClientContext for RebalanceContext {
    fn stats(&self, statistics: rdkafka::Statistics) {
        for (topic, stats) in &statistics.topics {
            for (id, partition) in &stats.partitions {
                // -1 is librdkafka's internal "unassigned" partition; a lag of -1 is unknown
                // (no committed offset or watermark yet).
                if *id < 0 || partition.consumer_lag < 0 {
                    continue;
                }
                metrics::gauge!(
                    "jivapay_processor_consumer_lag",
                    "stage" => self.stage,
                    "topic" => topic.clone(),
                    "partition" => id.to_string()
                )
                .set(partition.consumer_lag as f64);
            }
        }
    }
}

impl ConsumerContext for RebalanceContext {
    fn post_rebalance(
        &self,
        _consumer: &rdkafka::consumer::BaseConsumer<Self>,
        rebalance: &Rebalance<'_>,
    ) {
        if matches!(rebalance, Rebalance::Assign(_) | Rebalance::Revoke(_)) {
            self.changed.store(true, Ordering::SeqCst);
        }
    }
}

/// One input record with where it came from.
struct Received {
    topic: String,
    partition: i32,
    offset: i64,
    payload: Option<Vec<u8>>,
}

impl Received {
    fn from(message: &BorrowedMessage<'_>) -> Self {
        Self {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            payload: message.payload().map(<[u8]>::to_vec),
        }
    }
}

/// Runs `make()`'s processor over `inputs` until `stop`. State lives in `changelog`.
#[allow(clippy::too_many_arguments)]
pub async fn run<P: Processor>(
    broker: &Broker,
    registry: SchemaRegistry,
    inputs: &[&str],
    changelog: &str,
    make: impl Fn() -> P,
    clock: Arc<dyn Clock>,
    config: RuntimeConfig,
    stop: CancellationToken,
) -> Result<(), RuntimeError> {
    let changed = Arc::new(AtomicBool::new(false));
    let mut consumer_config =
        consumer_config(broker.bootstrap_servers(), &config.group, &config.group);
    consumer_config.set("statistics.interval.ms", STATISTICS_INTERVAL_MS);
    if let Some(id) = &config.instance_id {
        consumer_config.set("group.instance.id", id);
    }
    let consumer: StreamConsumer<RebalanceContext> =
        consumer_config.create_with_context(RebalanceContext {
            changed: changed.clone(),
            stage: make().name(),
        })?;
    consumer.subscribe(inputs)?;
    let producer = RecordProducer::shared(broker, registry.clone())?;
    let changelog_partitions = broker
        .partition_counts(&[changelog])
        .await
        .ok()
        .and_then(|counts| counts.first().map(|(_, n)| *n))
        .ok_or_else(|| RuntimeError::NoChangelog(changelog.to_owned()))?;
    let mut processor = make();
    // Input offsets the current state already covers (skip anything below them).
    let mut covered: HashMap<(String, i32), i64> = HashMap::new();
    let mut owned: BTreeSet<i32> = BTreeSet::new();
    let mut last_tick = Instant::now();
    let name = processor.name();
    let result = loop {
        if stop.is_cancelled() {
            break Ok(());
        }
        let first = tokio::select! {
            _ = stop.cancelled() => break Ok(()),
            received = tokio::time::timeout(Duration::from_millis(config.tick_interval_ms), consumer.recv()) => received,
        };
        let mut batch = Vec::new();
        match first {
            Ok(Ok(message)) => batch.push(Received::from(&message)),
            Ok(Err(e)) => {
                tracing::warn!(processor = name, error = %e, "consume error");
                continue;
            }
            Err(_) => {} // no record within a tick interval: fire timers below
        }
        if !batch.is_empty() {
            let deadline =
                tokio::time::Instant::now() + Duration::from_millis(config.batch_wait_ms);
            while batch.len() < config.batch_records_max {
                match tokio::time::timeout_at(deadline, consumer.recv()).await {
                    Ok(Ok(message)) => batch.push(Received::from(&message)),
                    _ => break,
                }
            }
        }
        if changed.swap(false, Ordering::SeqCst) {
            // Rebuild the whole state for what this instance owns now.
            let assignment = consumer.assignment()?;
            owned = assignment
                .elements()
                .iter()
                .map(|e| e.partition())
                .collect();
            processor = make();
            let started = Instant::now();
            let partitions: Vec<i32> = owned.iter().copied().collect();
            let restored = restore(
                broker,
                &registry,
                &producer,
                changelog,
                &partitions,
                &mut processor,
                Duration::from_millis(config.restore_timeout_ms),
            )
            .await?;
            covered = restored.covered;
            metrics::histogram!("jivapay_processor_restore_seconds", "stage" => name)
                .record(started.elapsed().as_secs_f64());
            tracing::info!(processor = name, partitions = ?partitions, keys = restored.keys, "state restored");
        }
        let started = Instant::now();
        let mut outputs: Vec<Emit> = Vec::new();
        let mut positions: HashMap<(String, i32), i64> = HashMap::new();
        for record in batch {
            let slot = (record.topic.clone(), record.partition);
            if !owned.contains(&record.partition) {
                continue; // fetched before a revocation
            }
            positions.insert(slot.clone(), record.offset + 1);
            if covered.get(&slot).is_some_and(|next| record.offset < *next) {
                continue; // already applied before the last restore
            }
            metrics::counter!("jivapay_processor_records_in_total", "stage" => name, "topic" => record.topic.clone()).increment(1);
            let Some(payload) = record.payload else {
                continue;
            };
            match decode(&registry, &record.topic, &payload) {
                Ok(input) => outputs.extend(processor.apply(input, clock.now())),
                Err(e) => tracing::warn!(
                    processor = name,
                    topic = %record.topic,
                    partition = record.partition,
                    offset = record.offset,
                    error = %e,
                    "undecodable input skipped"
                ),
            }
        }
        if last_tick.elapsed() >= Duration::from_millis(config.tick_interval_ms) {
            outputs.extend(processor.tick(clock.now()));
            last_tick = Instant::now();
        }
        outputs.extend(processor.finish_batch(clock.now()));
        let changes = processor.take_changes();
        if outputs.is_empty() && changes.is_empty() && positions.is_empty() {
            continue;
        }
        // 1. Outputs, all acknowledged.
        let sends = outputs.iter().map(|emit| {
            let producer = &producer;
            let registry = &registry;
            async move {
                let payload = encode(registry, emit).map_err(ProduceError::Encode)?;
                let key = registry.encode_key(&emit.key());
                producer
                    .send_bytes(emit.topic(), Some(&key), Some(&payload))
                    .await
            }
        });
        for sent in futures::future::join_all(sends).await {
            sent?;
        }
        metrics::counter!("jivapay_processor_records_out_total", "stage" => name)
            .increment(outputs.len() as u64);
        // 2. State changes with the offsets they cover.
        for (slot, next) in &positions {
            covered.insert(slot.clone(), *next);
        }
        // A record carries the covered offsets of its own partition only: it is restored with
        // the input partition of that number (co-partitioning), and an input changes only state
        // of its own key, so offsets of other partitions would only make every record longer.
        let mut covered_offsets: BTreeMap<i32, Vec<InputOffset>> = BTreeMap::new();
        for ((topic, partition), offset) in &covered {
            covered_offsets
                .entry(*partition)
                .or_default()
                .push(InputOffset {
                    topic: topic.clone(),
                    partition: *partition,
                    offset: *offset,
                });
        }
        for offsets in covered_offsets.values_mut() {
            offsets.sort_by(|a, b| a.topic.cmp(&b.topic));
        }
        let now = clock.now();
        // A state key may have sub-keys (`<store>/order/<id>`): the record goes to the
        // partition of the input key before the first `/`, so it is restored by the instance
        // that owns that input partition.
        let changes: Vec<(i32, String, Option<Vec<u8>>)> = changes
            .into_iter()
            .map(|(key, state)| {
                let route = key.split('/').next().unwrap_or(&key);
                let partition = java_partition(&registry.encode_key(route), changelog_partitions);
                (partition, key, state)
            })
            .collect();
        let carriers = offset_carriers(&changes);
        let writes = changes
            .into_iter()
            .enumerate()
            .map(|(n, (partition, key, state))| {
                let entry = ChangelogEntry {
                    state_key: key.clone(),
                    state,
                    state_schema_id: None,
                    covered_offsets: if carriers.contains(&n) {
                        covered_offsets.get(&partition).cloned().unwrap_or_default()
                    } else {
                        Vec::new()
                    },
                    marker: None,
                    written_at: now,
                };
                let producer = &producer;
                let registry = &registry;
                async move {
                    let payload = registry.encode(&entry).map_err(ProduceError::Encode)?;
                    producer
                        .send_bytes_to_partition(
                            changelog,
                            partition,
                            &registry.encode_key(&key),
                            &payload,
                        )
                        .await
                }
            });
        for written in futures::future::join_all(writes).await {
            written?;
        }
        // 3. Commit what was applied.
        if !positions.is_empty() {
            let mut commit = TopicPartitionList::new();
            for ((topic, partition), next) in &positions {
                commit.add_partition_offset(topic, *partition, Offset::Offset(*next))?;
            }
            consumer.commit(&commit, CommitMode::Async)?;
        }
        metrics::histogram!("jivapay_processor_batch_seconds", "stage" => name)
            .record(started.elapsed().as_secs_f64());
    };
    // Leave the group deliberately: librdkafka can hang when a consumer is dropped mid-state.
    consumer.unsubscribe();
    producer.close(Duration::from_secs(5)).ok();
    result
}

/// Which of a batch's changelog records (by index) carry the covered offsets: per partition,
/// the last one that is not a tombstone, or every one if all are tombstones. A restore takes
/// the highest offsets it reads, and the newest record of a partition is never compacted away
/// (a later record of its key comes with a later batch, which has a carrier of its own); a
/// tombstone may be, so it carries them only when nothing else in the batch can. On every
/// record they cost about a third of an open order's record.
fn offset_carriers(changes: &[(i32, String, Option<Vec<u8>>)]) -> BTreeSet<usize> {
    let mut last_value: BTreeMap<i32, usize> = BTreeMap::new();
    for (n, (partition, _, state)) in changes.iter().enumerate() {
        if state.is_some() {
            last_value.insert(*partition, n);
        }
    }
    changes
        .iter()
        .enumerate()
        .filter(|(n, (partition, _, _))| last_value.get(partition).is_none_or(|last| last == n))
        .map(|(n, _)| n)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::offset_carriers;

    fn change(partition: i32, key: &str, tombstone: bool) -> (i32, String, Option<Vec<u8>>) {
        (partition, key.to_owned(), (!tombstone).then(|| vec![1]))
    }

    #[test]
    fn the_last_value_of_each_partition_carries_the_offsets_and_tombstones_only_when_alone() {
        let changes = vec![
            change(0, "a", false),
            change(1, "b/order/1", false),
            change(0, "a/order/1", false),
            change(0, "a/order/2", true),
            change(1, "b", false),
            change(2, "c/order/3", true),
            change(2, "c/order/4", true),
        ];
        assert_eq!(
            offset_carriers(&changes).into_iter().collect::<Vec<_>>(),
            vec![2, 4, 5, 6]
        );
    }
}
