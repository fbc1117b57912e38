//! The consume → apply → log decisions → produce → state records → commit loop.

use super::batch::{decide, partitions_of, Applied, Partition, Plan, Sends};
use super::changelog::{restore, writer, Restored};
use super::config::{halted, CrashPoint, Halted, RuntimeConfig, RuntimeError};
use super::decision_log::Logged;
use super::decode::decode;
use super::origins::{self, Origin};
use super::outgoing::{self, send_all, Outgoing};
use super::time_markers;
use crate::core::{Clock, Millis, Processor};
use jivapay_platform::failure::{retry, CONSUME_ERROR_PAUSE};
use jivapay_platform::health::LoopHealth;
use jivapay_platform::kafka::{
    consumer_config, Broker, DeadLetters, LoopContext, RawRecord, Rebalanced, RecordProducer,
    STATISTICS_INTERVAL_MS,
};
use jivapay_schemas::SchemaRegistry;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Runs `make()`'s processors (one per assigned partition) over `inputs` until `stop`. State
/// lives in `changelog`. Returns an error only for a failure no retry mends.
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
                inputs,
                changelog,
                changelog_partitions: 0,
                name,
                partitions: BTreeMap::new(),
                marker: String::new(),
                make: &make,
                clock,
                config: &config,
                health: &health,
                stop: &stop,
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

/// One input record with where it came from, and the origin of a processor's output.
struct Received {
    raw: RawRecord,
    origin: Option<Origin>,
}

fn received(message: &BorrowedMessage<'_>) -> Received {
    let origin = message.headers().and_then(|headers| {
        headers
            .iter()
            .find(|h| h.key == origins::HEADER)
            .and_then(|h| Origin::parse(h.value?))
    });
    Received {
        raw: RawRecord {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec),
        },
        origin,
    }
}

struct Worker<'a, P, M> {
    broker: &'a Broker,
    registry: &'a SchemaRegistry,
    consumer: &'a StreamConsumer<LoopContext>,
    rebalanced: Rebalanced,
    producer: &'a RecordProducer,
    dead_letters: DeadLetters,
    inputs: &'a [&'a str],
    changelog: &'a str,
    changelog_partitions: i32,
    name: &'static str,
    partitions: BTreeMap<i32, Partition<P>>,
    /// The marker of the last restore: with a partition's generation, the id of this owner on
    /// what it writes.
    marker: String,
    make: &'a M,
    clock: Arc<dyn Clock>,
    config: &'a RuntimeConfig,
    health: &'a LoopHealth,
    stop: &'a CancellationToken,
    last_tick: Instant,
}

impl<P: Processor, M: Fn() -> P> Worker<'_, P, M> {
    async fn drive(&mut self) -> Result<(), RuntimeError> {
        self.changelog_partitions = self.check_partitioning().await?;
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

    /// The changelog's partition count, which must be every input's (principle 4): a
    /// partition's state, decisions and inputs share one number.
    async fn check_partitioning(&self) -> Result<i32, RuntimeError> {
        let mut topics: Vec<&str> = self.inputs.to_vec();
        topics.push(self.changelog);
        let counts = self
            .broker
            .partition_counts(&topics)
            .await
            .map_err(|_| RuntimeError::NoChangelog(self.changelog.to_owned()))?;
        let changelog = counts
            .iter()
            .find(|(topic, _)| topic == self.changelog)
            .map(|(_, n)| *n)
            .ok_or_else(|| RuntimeError::NoChangelog(self.changelog.to_owned()))?;
        if counts.iter().any(|(_, n)| *n != changelog) {
            return Err(RuntimeError::NotCoPartitioned(counts));
        }
        Ok(changelog)
    }

    /// The next batch — empty when a tick interval passed without a record — and whether the
    /// read went without an error; `None` once stopped.
    async fn read_batch(&mut self) -> Option<(Vec<Received>, bool)> {
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

    /// Rebuilds the state of every partition this instance owns now from the changelog, then
    /// sends the newest logged batch of each again — its outputs may never have gone out —
    /// and its state records, before any new input is applied.
    async fn rebuild(&mut self) -> Result<(), Halted> {
        let assignment = self.consumer.assignment().map_err(|e| Some(e.into()))?;
        let owned: BTreeSet<i32> = assignment
            .elements()
            .iter()
            .map(|e| e.partition())
            .collect();
        let partitions: Vec<i32> = owned.into_iter().collect();
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
        let mut restored: Restored<P> = retry(self.health, self.stop, "restore", || {
            let partitions = &partitions;
            async move {
                restore(
                    broker,
                    registry,
                    producer,
                    dead_letters,
                    changelog,
                    partitions,
                    make,
                    timeout,
                )
                .await
            }
        })
        .await
        .map_err(halted)?;
        let (keys, fenced) = (restored.keys, restored.fenced);
        self.marker = restored.marker.clone();
        let logged = std::mem::take(&mut restored.logged);
        self.partitions = partitions_of(restored, &logged);
        if self.config.time_markers.is_some() {
            // No timer fires before a marker written after this restore comes back.
            for partition in self.partitions.values_mut() {
                partition.processor.hold_timers_until(Millis::MIN);
            }
        }
        self.resend(logged).await?;
        self.health.succeeded();
        metrics::histogram!("jivapay_processor_restore_seconds", "stage" => self.name)
            .record(started.elapsed().as_secs_f64());
        tracing::info!(processor = self.name, partitions = ?partitions, keys, fenced, "state restored");
        Ok(())
    }

    /// Applies a batch, partition by partition, and sends what follows from it in the order
    /// the decision log needs: the logged decisions, then the outputs, then the state records,
    /// then the commit. A transient failure of a send retries the same bytes.
    async fn handle(&mut self, batch: Vec<Received>) -> Result<(), Halted> {
        let started = Instant::now();
        let tick = self.last_tick.elapsed() >= Duration::from_millis(self.config.tick_interval_ms);
        if tick {
            self.last_tick = Instant::now();
            self.write_time_markers();
        }
        let mut applied = Applied::default();
        for record in batch {
            self.apply(record, &mut applied).await?;
        }
        let now = self.clock.now();
        let mut sends = Sends::default();
        for (number, partition) in &mut self.partitions {
            let work = applied.work.remove(number).unwrap_or_default();
            let markers_only = !work.decided;
            let decided = decide(*number, partition, work, tick, now);
            let Some((outputs, changes, positions)) = decided else {
                continue;
            };
            if markers_only && outputs.is_empty() && changes.is_empty() {
                // Time markers decide nothing: their offsets are committed, not logged.
                for (topic, next) in positions {
                    sends.commit.push((topic, *number, next));
                }
                continue;
            }
            let plan = Plan {
                registry: self.registry,
                changelog: self.changelog,
                changelog_partitions: self.changelog_partitions,
                name: self.name,
                marker: &self.marker,
                now,
            };
            plan.add(&mut sends, *number, partition, outputs, changes, positions)
                .map_err(Some)?;
        }
        if sends.log.is_empty() {
            self.commit(&sends.commit);
            return Ok(());
        }
        self.send(&sends.log, "write decision log").await?;
        self.config.crash_points.check(CrashPoint::AfterLog)?;
        self.send(&sends.outputs, "produce outputs").await?;
        metrics::counter!("jivapay_processor_records_out_total", "stage" => self.name)
            .increment(sends.outputs.len() as u64);
        self.config.crash_points.check(CrashPoint::AfterOutputs)?;
        self.send(&sends.state, "write state records").await?;
        self.config.crash_points.check(CrashPoint::AfterState)?;
        self.commit(&sends.commit);
        metrics::histogram!("jivapay_processor_batch_seconds", "stage" => self.name)
            .record(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Applies one input record to its partition's processor, unless it is covered already or
    /// a duplicate of one its source sent before (`origins.rs`); an undecodable one is
    /// dead-lettered.
    async fn apply(&mut self, received: Received, applied: &mut Applied) -> Result<(), Halted> {
        let Received {
            raw: record,
            origin,
        } = received;
        let marker = self.time_marker(&record);
        let Some(partition) = self.partitions.get_mut(&record.partition) else {
            return Ok(()); // fetched before a revocation
        };
        let work = applied.work.entry(record.partition).or_default();
        work.positions
            .insert(record.topic.clone(), record.offset + 1);
        if partition
            .covered
            .get(&record.topic)
            .is_some_and(|next| record.offset < *next)
        {
            return Ok(()); // applied before the last restore
        }
        if let Some(stamp) = marker {
            partition
                .processor
                .hold_timers_until(time_markers::timers_until(stamp));
            return Ok(());
        }
        if origin.is_some_and(|origin| !partition.origins.admit(&origin)) {
            metrics::counter!("jivapay_processor_duplicates_dropped_total", "stage" => self.name, "topic" => record.topic.clone()).increment(1);
            return Ok(());
        }
        metrics::counter!("jivapay_processor_records_in_total", "stage" => self.name, "topic" => record.topic.clone()).increment(1);
        work.decided = true;
        let Some(payload) = &record.payload else {
            return Ok(());
        };
        match decode(self.registry, &record.topic, payload) {
            Ok(input) => {
                let now = self.clock.now();
                work.outputs.extend(partition.processor.apply(input, now));
                Ok(())
            }
            Err(e) => {
                let reason = format!("undecodable: {e}");
                retry(self.health, self.stop, "dead letter", || {
                    self.dead_letters.send(&record, &reason)
                })
                .await
                .map_err(halted)
            }
        }
    }

    /// The stamp of `record` if it is a time marker of this loop's marked input.
    fn time_marker(&self, record: &RawRecord) -> Option<Millis> {
        let topic = self.config.time_markers?;
        (record.topic == topic)
            .then(|| time_markers::stamp_of(self.registry, record))
            .flatten()
    }

    /// A time marker, stamped now, to every owned partition of the marked input that has a
    /// timer waiting for one (its deadline at least the hold behind now): an idle partition
    /// writes none.
    fn write_time_markers(&self) {
        let Some(topic) = self.config.time_markers else {
            return;
        };
        let stamp = self.clock.now();
        let partitions: Vec<i32> = self
            .partitions
            .iter()
            .filter(|(_, p)| time_markers::awaited(p.processor.next_deadline(), stamp))
            .map(|(number, _)| *number)
            .collect();
        if partitions.is_empty() {
            return;
        }
        let written = time_markers::write(self.producer, self.registry, topic, &partitions, stamp);
        if let Err(e) = written {
            // The next tick writes another: the timers wait a little longer.
            tracing::warn!(processor = self.name, error = %e, "time marker not written");
        }
    }

    /// After a restore: each partition's newest logged batch sent again as it was — outputs,
    /// with the origin they were logged with, then state records. Consumers deduplicate what
    /// had gone out already.
    async fn resend(&self, logged: BTreeMap<i32, Logged>) -> Result<(), Halted> {
        let mut outputs = Vec::new();
        let mut state = Vec::new();
        for (number, batch) in logged {
            let generation = self.partitions.get(&number).map_or(0, |p| p.generation);
            let mut sent: Vec<Outgoing> = batch
                .decisions
                .outputs
                .iter()
                .map(Outgoing::from_logged)
                .collect();
            let origin = Origin {
                source: self.name.to_owned(),
                partition: number,
                sender: generation,
                logged_by: batch.logged_by,
                sequence: batch.sequence,
                index: 0,
            };
            outgoing::with_origins(&mut sent, &origin);
            outputs.extend(sent);
            state.extend(
                outgoing::state_records(
                    self.registry,
                    self.changelog,
                    self.changelog_partitions,
                    &batch.decisions.changes,
                    &writer("", generation),
                    self.clock.now(),
                )
                .map_err(|e| Some(e.into()))?,
            );
        }
        self.send(&outputs, "send logged outputs again").await?;
        self.send(&state, "write logged state records").await
    }

    /// Commits what was applied. A failed commit only means a restart replays from an older
    /// offset; the decision log's covered offsets skip what was applied.
    fn commit(&self, positions: &[(String, i32, i64)]) {
        if positions.is_empty() {
            return;
        }
        let mut commit = TopicPartitionList::new();
        for (topic, partition, next) in positions {
            if let Err(e) = commit.add_partition_offset(topic, *partition, Offset::Offset(*next)) {
                tracing::warn!(processor = self.name, error = %e, "commit skipped");
                return;
            }
        }
        if let Err(e) = self.consumer.commit(&commit, CommitMode::Async) {
            tracing::warn!(processor = self.name, error = %e, "commit failed; the next one covers it");
        }
    }

    async fn send(&self, records: &[Outgoing], what: &str) -> Result<(), Halted> {
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
