//! The consume → apply → log decisions → produce → state records → commit loop.

use super::batch::{covered_offsets, decide, partitions_of, Applied, Partition, Plan, Sends};
use super::changelog::{restore, writer, Repairs, Restored};
use super::config::{halted, CrashPoint, Halted, RuntimeConfig, RuntimeError};
use super::decision_log::{self, Decisions, Logged};
use super::decode::decode;
use super::origins::{self, Origin};
use super::outgoing::{self, send_all, Outgoing};
use super::ownership;
use super::time_markers;
use crate::core::{Clock, Millis, Processor};
use jivapay_platform::failure::{retry, CONSUME_ERROR_PAUSE};
use jivapay_platform::health::LoopHealth;
use jivapay_platform::kafka::{
    consumer_config, Broker, DeadLetters, Delivered, LoopContext, RawRecord, Rebalanced,
    RecordProducer, STATISTICS_INTERVAL_MS,
};
use jivapay_schemas::records::LoggedChange;
use jivapay_schemas::SchemaRegistry;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Bound on each blocking call of a rewind (`Worker::rewind`).
const REWIND_TIMEOUT: Duration = Duration::from_secs(10);

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
                disturbed: false,
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
    /// Someone else wrote to an owned changelog partition (`ownership.rs`): the partitions
    /// are restored again before anything else.
    disturbed: bool,
}

impl<P: Processor, M: Fn() -> P> Worker<'_, P, M> {
    async fn drive(&mut self) -> Result<(), RuntimeError> {
        self.changelog_partitions = self.check_partitioning().await?;
        self.health.succeeded();
        loop {
            if std::mem::take(&mut self.disturbed) {
                let recovered = async {
                    self.config.crash_points.check(CrashPoint::Disturbed)?;
                    self.recover().await
                };
                if let Err(halted) = recovered.await {
                    return halted.map_or(Ok(()), Err);
                }
                continue;
            }
            let Some((batch, consumed)) = self.read_batch().await else {
                return Ok(());
            };
            let step = async {
                if self.rebalanced.take() {
                    self.rebuild().await?;
                }
                if self.disturbed {
                    return Ok(()); // read again after the rewind
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
        let repairs = std::mem::take(&mut restored.repairs);
        self.partitions = partitions_of(restored, &logged);
        if self.config.time_markers.is_some() {
            // No timer fires before a marker written after this restore comes back.
            for partition in self.partitions.values_mut() {
                partition.processor.hold_timers_until(Millis::MIN);
            }
        }
        self.resend(logged, repairs).await?;
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
            self.write_leases().await?;
            if self.disturbed {
                return Ok(());
            }
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
        let landed = self.send(&sends.log, "write decision log").await?;
        if !self.owns(&sends.log, &landed) {
            return Ok(()); // no output of a batch a successor may not know
        }
        self.config.crash_points.check(CrashPoint::AfterLog)?;
        self.send(&sends.outputs, "produce outputs").await?;
        metrics::counter!("jivapay_processor_records_out_total", "stage" => self.name)
            .increment(sends.outputs.len() as u64);
        self.config.crash_points.check(CrashPoint::AfterOutputs)?;
        let landed = self.send(&sends.state, "write state records").await?;
        if !self.owns(&sends.state, &landed) {
            return Ok(()); // the commit is the next owner's
        }
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
    /// with the origin they were logged with, then state records — and what a fenced owner
    /// left on top of keys written over (`Repairs`). Consumers deduplicate what had gone out.
    async fn resend(
        &mut self,
        logged: BTreeMap<i32, Logged>,
        repairs: BTreeMap<i32, Repairs>,
    ) -> Result<(), Halted> {
        let now = self.clock.now();
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
            state.extend(self.state_records(&batch.decisions.changes, generation, now)?);
        }
        for (number, repairs) in repairs {
            state.extend(self.repair_records(number, repairs, now)?);
        }
        self.send(&outputs, "send logged outputs again").await?;
        let landed = self.send(&state, "write logged state records").await?;
        self.owns(&state, &landed);
        Ok(())
    }

    fn state_records(
        &self,
        changes: &[LoggedChange],
        generation: i64,
        now: Millis,
    ) -> Result<Vec<Outgoing>, Halted> {
        outgoing::state_records(
            self.registry,
            self.changelog,
            self.changelog_partitions,
            changes,
            &writer("", generation),
            now,
        )
        .map_err(|e| Some(e.into()))
    }

    /// One partition's keys a fenced owner wrote last, written again at this generation, and,
    /// if it logged a batch there, a checkpoint batch after the newest batch read, valid or
    /// fenced: no changes, no outputs, the offsets the state covers.
    fn repair_records(
        &mut self,
        number: i32,
        repairs: Repairs,
        now: Millis,
    ) -> Result<Vec<Outgoing>, Halted> {
        let Some(generation) = self.partitions.get(&number).map(|p| p.generation) else {
            return Ok(Vec::new());
        };
        tracing::warn!(
            processor = self.name,
            partition = number,
            keys = repairs.state.len(),
            checkpoint = ?repairs.checkpoint,
            "writing again what a fenced owner wrote last"
        );
        let mut records = self.state_records(&repairs.state, generation, now)?;
        if let Some(fenced) = repairs.checkpoint {
            let writer = writer(&self.marker, generation);
            let partition = self.partitions.get_mut(&number).expect("owned partition");
            partition.sequence = partition.sequence.max(fenced) + 1;
            let checkpoint = Decisions {
                covered: covered_offsets(number, &partition.covered),
                ..Decisions::default()
            };
            let chunks = decision_log::chunks(
                self.registry,
                self.changelog,
                number,
                partition.sequence,
                &writer,
                checkpoint,
                now,
            );
            records.extend(chunks.map_err(|e| Some(e.into()))?);
        }
        Ok(records)
    }

    /// Whether `records` landed where this owner expected (`ownership.rs`). If not, the loop
    /// stops the batch and restores its partitions again before anything else.
    fn owns(&mut self, records: &[Outgoing], landed: &[Delivered]) -> bool {
        let Err(disturbed) =
            ownership::check(&mut self.partitions, self.changelog, records, landed)
        else {
            return true;
        };
        tracing::warn!(
            processor = self.name,
            partition = disturbed.partition,
            expected = disturbed.expected,
            found = disturbed.found,
            "another writer wrote to an owned changelog partition: restoring again"
        );
        metrics::counter!("jivapay_processor_disturbed_total", "stage" => self.name).increment(1);
        self.disturbed = true;
        false
    }

    /// A lease record to each owned partition that wrote nothing to the changelog for the
    /// lease interval: an owner notices a fenced owner's late write within that bound.
    async fn write_leases(&mut self) -> Result<(), Halted> {
        let interval = Duration::from_millis(self.config.lease_interval_ms);
        let now = self.clock.now();
        let mut leases = Vec::new();
        for number in ownership::idle(&self.partitions, interval) {
            let generation = self.partitions[&number].generation;
            let writer = writer(&self.marker, generation);
            let lease = ownership::lease(self.registry, self.changelog, number, &writer, now);
            leases.push(lease.map_err(|e| Some(e.into()))?);
        }
        let landed = self.send(&leases, "write leases").await?;
        self.owns(&leases, &landed);
        Ok(())
    }

    /// After a disturbance: the owned partitions restored again, and the consumer moved back
    /// to what their state covers — records read past it belong to batches that never
    /// counted.
    async fn recover(&mut self) -> Result<(), Halted> {
        self.rebuild().await?;
        self.rewind().map_err(|e| Some(e.into()))
    }

    /// Seeks every owned input partition to the next offset its state does not cover; an
    /// input the state has never covered, to its committed offset (the earliest without one).
    /// Blocking calls, on a path only a disturbance takes.
    fn rewind(&self) -> Result<(), rdkafka::error::KafkaError> {
        let mut seeks = Vec::new();
        let mut uncovered = TopicPartitionList::new();
        for (number, partition) in &self.partitions {
            for topic in self.inputs {
                match partition.covered.get(*topic) {
                    Some(next) => seeks.push((topic.to_string(), *number, Offset::Offset(*next))),
                    None => {
                        uncovered.add_partition(topic, *number);
                    }
                }
            }
        }
        if uncovered.count() > 0 {
            let committed = self.consumer.committed_offsets(uncovered, REWIND_TIMEOUT)?;
            for element in committed.elements() {
                let offset = match element.offset() {
                    Offset::Offset(next) => Offset::Offset(next),
                    _ => Offset::Beginning,
                };
                seeks.push((element.topic().to_owned(), element.partition(), offset));
            }
        }
        for (topic, partition, offset) in seeks {
            self.consumer
                .seek(&topic, partition, offset, REWIND_TIMEOUT)?;
        }
        Ok(())
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

    async fn send(&self, records: &[Outgoing], what: &str) -> Result<Vec<Delivered>, Halted> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        retry(self.health, self.stop, what, || {
            send_all(self.producer, records)
        })
        .await
        .map_err(halted)
    }
}
