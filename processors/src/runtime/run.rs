//! The consume → process → produce → changelog → commit loop.

use super::changelog::{restore, RestoreError, Restored};
use super::decode::decode;
use super::outgoing::{self, send_all};
use crate::core::{Clock, Emit, Processor};
use jivapay_platform::failure::{retry, Halt, CONSUME_ERROR_PAUSE};
use jivapay_platform::health::{Health, LoopHealth};
use jivapay_platform::kafka::{
    consumer_config, Broker, DeadLetters, LoopContext, ProduceError, RawRecord, Rebalanced,
    RecordProducer, STATISTICS_INTERVAL_MS,
};
use jivapay_schemas::{CodecError, SchemaRegistry};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeSet, HashMap};
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
    /// Bound on one restore attempt (a failed one is retried).
    pub restore_timeout_ms: u64,
    /// Static group membership (`group.instance.id`), see `KafkaSettings::instance_id`.
    pub instance_id: Option<String>,
    /// Where the loop reports its state (`processor <name>`).
    pub health: Health,
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
            health: Health::default(),
        }
    }
}

/// A failure no retry mends: the loop ends with it and its process exits.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("produce: {0}")]
    Produce(#[from] ProduceError),
    #[error("restore: {0}")]
    Restore(#[from] RestoreError),
    #[error("encode: {0}")]
    Encode(#[from] CodecError),
    #[error("changelog topic {0} does not exist: run `jivapay topics create` first")]
    NoChangelog(String),
}

/// How a step ended early: `None` when the loop is stopping.
type Halted = Option<RuntimeError>;

fn halted<E: Into<RuntimeError>>(halt: Halt<E>) -> Halted {
    match halt {
        Halt::Stopped => None,
        Halt::Failed(e, _) => Some(e.into()),
    }
}

/// Runs `make()`'s processor over `inputs` until `stop`. State lives in `changelog`. Returns
/// an error only for a failure no retry mends.
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
    let name = make().name();
    let health = config.health.register(format!("processor {name}"));
    let mut consumer_config =
        consumer_config(broker.bootstrap_servers(), &config.group, &config.group);
    consumer_config.set("statistics.interval.ms", STATISTICS_INTERVAL_MS);
    if let Some(id) = &config.instance_id {
        consumer_config.set("group.instance.id", id);
    }
    let context = LoopContext::new("jivapay_processor_consumer_lag", "stage", name);
    let rebalanced = context.rebalanced();
    let consumer: StreamConsumer<LoopContext> = consumer_config.create_with_context(context)?;
    let producer = RecordProducer::shared(broker, registry.clone())?;
    let dead_letters = DeadLetters::new(broker, registry.clone(), name)?;
    let result = match consumer.subscribe(inputs) {
        Ok(()) => {
            let mut worker = Worker {
                broker,
                registry: &registry,
                consumer: &consumer,
                rebalanced,
                producer: &producer,
                dead_letters,
                changelog,
                changelog_partitions: 0,
                processor: make(),
                make: &make,
                clock,
                config: &config,
                health: &health,
                stop: &stop,
                covered: HashMap::new(),
                owned: BTreeSet::new(),
                last_tick: Instant::now(),
            };
            worker.drive().await
        }
        Err(e) => Err(e.into()),
    };
    // Leave the group deliberately on every path: librdkafka can hang when a consumer is
    // dropped mid-state.
    consumer.unsubscribe();
    producer.close(Duration::from_secs(5)).ok();
    match &result {
        Ok(()) => health.stopped("stopped"),
        Err(e) => health.stopped(&e.to_string()),
    }
    result
}

/// One input record with where it came from.
fn received(message: &BorrowedMessage<'_>) -> RawRecord {
    RawRecord {
        topic: message.topic().to_owned(),
        partition: message.partition(),
        offset: message.offset(),
        key: message.key().map(<[u8]>::to_vec),
        payload: message.payload().map(<[u8]>::to_vec),
    }
}

struct Worker<'a, P, M> {
    broker: &'a Broker,
    registry: &'a SchemaRegistry,
    consumer: &'a StreamConsumer<LoopContext>,
    rebalanced: Rebalanced,
    producer: &'a RecordProducer,
    dead_letters: DeadLetters,
    changelog: &'a str,
    changelog_partitions: i32,
    processor: P,
    make: &'a M,
    clock: Arc<dyn Clock>,
    config: &'a RuntimeConfig,
    health: &'a LoopHealth,
    stop: &'a CancellationToken,
    /// Input offsets the current state already covers (skip anything below them).
    covered: HashMap<(String, i32), i64>,
    owned: BTreeSet<i32>,
    last_tick: Instant,
}

impl<P: Processor, M: Fn() -> P> Worker<'_, P, M> {
    async fn drive(&mut self) -> Result<(), RuntimeError> {
        self.changelog_partitions = self
            .broker
            .partition_counts(&[self.changelog])
            .await
            .ok()
            .and_then(|counts| counts.first().map(|(_, n)| *n))
            .ok_or_else(|| RuntimeError::NoChangelog(self.changelog.to_owned()))?;
        self.health.succeeded();
        loop {
            let Some((batch, consumed)) = self.read_batch().await else {
                return Ok(());
            };
            let step = async {
                if self.rebalanced.take() {
                    self.rebuild().await?;
                }
                self.handle(batch).await
            };
            match step.await {
                Ok(()) if consumed => self.health.succeeded(),
                Ok(()) => {}
                Err(halted) => return halted.map_or(Ok(()), Err),
            }
        }
    }

    /// The next batch — empty when a tick interval passed without a record — and whether the
    /// read went without an error; `None` once stopped.
    async fn read_batch(&mut self) -> Option<(Vec<RawRecord>, bool)> {
        let tick = Duration::from_millis(self.config.tick_interval_ms);
        let first = tokio::select! {
            _ = self.stop.cancelled() => return None,
            received = tokio::time::timeout(tick, self.consumer.recv()) => received,
        };
        let mut batch = Vec::new();
        match first {
            Ok(Ok(message)) => batch.push(received(&message)),
            Ok(Err(e)) => {
                // librdkafka reconnects by itself; the error says it is trying.
                self.health.retrying(&format!("consume: {e}"));
                tokio::select! {
                    _ = self.stop.cancelled() => return None,
                    _ = tokio::time::sleep(CONSUME_ERROR_PAUSE) => {}
                }
                return Some((batch, false));
            }
            Err(_) => {} // no record within a tick interval: fire timers
        }
        if !batch.is_empty() {
            let deadline =
                tokio::time::Instant::now() + Duration::from_millis(self.config.batch_wait_ms);
            while batch.len() < self.config.batch_records_max {
                match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                    Ok(Ok(message)) => batch.push(received(&message)),
                    _ => break,
                }
            }
        }
        Some((batch, true))
    }

    /// Rebuilds the whole state for what this instance owns now, from the changelog.
    async fn rebuild(&mut self) -> Result<(), Halted> {
        let assignment = self.consumer.assignment().map_err(|e| Some(e.into()))?;
        self.owned = assignment
            .elements()
            .iter()
            .map(|e| e.partition())
            .collect();
        let partitions: Vec<i32> = self.owned.iter().copied().collect();
        let name = self.processor.name();
        self.health.starting("restoring its state");
        let started = Instant::now();
        let (broker, registry, producer, changelog, make) = (
            self.broker,
            self.registry,
            self.producer,
            self.changelog,
            self.make,
        );
        let dead_letters = &self.dead_letters;
        let timeout = Duration::from_millis(self.config.restore_timeout_ms);
        let (processor, restored): (P, Restored) = retry(self.health, self.stop, "restore", || {
            let partitions = &partitions;
            async move {
                let mut processor = make();
                let restored = restore(
                    broker,
                    registry,
                    producer,
                    dead_letters,
                    changelog,
                    partitions,
                    &mut processor,
                    timeout,
                )
                .await?;
                Ok::<_, RestoreError>((processor, restored))
            }
        })
        .await
        .map_err(halted)?;
        self.processor = processor;
        self.covered = restored.covered;
        self.health.succeeded();
        metrics::histogram!("jivapay_processor_restore_seconds", "stage" => name)
            .record(started.elapsed().as_secs_f64());
        tracing::info!(processor = name, partitions = ?partitions, keys = restored.keys, "state restored");
        Ok(())
    }

    /// Applies a batch and sends what follows from it: outputs, then the changelog, then the
    /// commit. A transient failure of a send retries the same bytes.
    async fn handle(&mut self, batch: Vec<RawRecord>) -> Result<(), Halted> {
        let started = Instant::now();
        let name = self.processor.name();
        let mut outputs: Vec<Emit> = Vec::new();
        let mut positions: HashMap<(String, i32), i64> = HashMap::new();
        for record in batch {
            let slot = (record.topic.clone(), record.partition);
            if !self.owned.contains(&record.partition) {
                continue; // fetched before a revocation
            }
            positions.insert(slot.clone(), record.offset + 1);
            if self
                .covered
                .get(&slot)
                .is_some_and(|next| record.offset < *next)
            {
                continue; // already applied before the last restore
            }
            metrics::counter!("jivapay_processor_records_in_total", "stage" => name, "topic" => record.topic.clone()).increment(1);
            let Some(payload) = &record.payload else {
                continue;
            };
            match decode(self.registry, &record.topic, payload) {
                Ok(input) => outputs.extend(self.processor.apply(input, self.clock.now())),
                Err(e) => {
                    let reason = format!("undecodable: {e}");
                    retry(self.health, self.stop, "dead letter", || {
                        self.dead_letters.send(&record, &reason)
                    })
                    .await
                    .map_err(halted)?;
                }
            }
        }
        if self.last_tick.elapsed() >= Duration::from_millis(self.config.tick_interval_ms) {
            outputs.extend(self.processor.tick(self.clock.now()));
            self.last_tick = Instant::now();
        }
        outputs.extend(self.processor.finish_batch(self.clock.now()));
        let changes = self.processor.take_changes();
        if outputs.is_empty() && changes.is_empty() && positions.is_empty() {
            return Ok(());
        }
        // 1. Outputs, all acknowledged.
        let records = outgoing::outputs(self.registry, &outputs).map_err(|e| Some(e.into()))?;
        self.send(&records, "produce outputs").await?;
        metrics::counter!("jivapay_processor_records_out_total", "stage" => name)
            .increment(outputs.len() as u64);
        // 2. State changes with the offsets they cover.
        self.covered.extend(positions.clone());
        let log = outgoing::changelog(
            self.registry,
            self.changelog,
            self.changelog_partitions,
            changes,
            &self.covered,
            self.clock.now(),
        )
        .map_err(|e| Some(e.into()))?;
        self.send(&log, "write changelog").await?;
        // 3. Commit what was applied. A failed commit only means a restart replays from an
        // older offset; the changelog's covered offsets skip what was applied.
        if !positions.is_empty() {
            let mut commit = TopicPartitionList::new();
            for ((topic, partition), next) in &positions {
                commit
                    .add_partition_offset(topic, *partition, Offset::Offset(*next))
                    .map_err(|e| Some(e.into()))?;
            }
            if let Err(e) = self.consumer.commit(&commit, CommitMode::Async) {
                tracing::warn!(processor = name, error = %e, "commit failed; the next one covers it");
            }
        }
        metrics::histogram!("jivapay_processor_batch_seconds", "stage" => name)
            .record(started.elapsed().as_secs_f64());
        Ok(())
    }

    async fn send(&self, records: &[outgoing::Outgoing], what: &str) -> Result<(), Halted> {
        if records.is_empty() {
            return Ok(());
        }
        retry(self.health, self.stop, what, || {
            send_all(self.producer, records)
        })
        .await
        .map_err(halted)
    }
}
