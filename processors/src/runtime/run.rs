//! The consume → apply → log decisions → produce → state records → commit loop.

use super::changelog::{restore, writer, RestoreError, Restored};
use super::decision_log::{self, Decisions, Logged};
use super::decode::decode;
use super::origins::{self, Origin, Origins};
use super::outgoing::{self, send_all, Outgoing};
use super::time_markers;
use crate::core::{Clock, Emit, Millis, Processor};
use jivapay_platform::failure::{retry, Halt, CONSUME_ERROR_PAUSE};
use jivapay_platform::health::{Health, LoopHealth};
use jivapay_platform::kafka::{
    consumer_config, Broker, DeadLetters, LoopContext, ProduceError, RawRecord, Rebalanced,
    RecordProducer, STATISTICS_INTERVAL_MS,
};
use jivapay_schemas::records::{InputOffset, LoggedChange};
use jivapay_schemas::{CodecError, SchemaRegistry};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet};
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
    /// Where a test stops the loop as if its process died there (none in production).
    pub crash_points: CrashPoints,
    /// The input this loop writes time markers to and reads them back from
    /// (`time_markers.rs`): its processor's timers then fire only up to what every accepted
    /// command is known to precede. `ProcessorKind::time_markers`.
    pub time_markers: Option<&'static str>,
}

/// The steps of a batch after which a test can stop the loop as if its process died:
/// nothing after the step is sent, committed or closed gracefully by the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// The decision log is written; no output is sent.
    AfterLog,
    /// The outputs are sent; the state records are not.
    AfterOutputs,
    /// The state records are sent; the input offsets are not committed.
    AfterState,
}

/// Asked at every [`CrashPoint`] of every batch that sends something: `true` stops the loop
/// there with [`RuntimeError::Crashed`].
#[derive(Clone, Default)]
pub struct CrashPoints(Option<Arc<dyn Fn(CrashPoint) -> bool + Send + Sync>>);

impl CrashPoints {
    pub fn new(crash_at: impl Fn(CrashPoint) -> bool + Send + Sync + 'static) -> Self {
        Self(Some(Arc::new(crash_at)))
    }

    fn check(&self, point: CrashPoint) -> Result<(), Halted> {
        match &self.0 {
            Some(crash_at) if crash_at(point) => Err(Some(RuntimeError::Crashed(point))),
            _ => Ok(()),
        }
    }
}

impl std::fmt::Debug for CrashPoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "CrashPoints(set)"
        } else {
            "CrashPoints(none)"
        })
    }
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
            crash_points: CrashPoints::default(),
            time_markers: None,
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
    #[error("inputs and changelog are not co-partitioned: {0:?}")]
    NotCoPartitioned(Vec<(String, i32)>),
    #[error("state key {key} of a record of partition {partition} belongs to partition {belongs}")]
    Misrouted {
        key: String,
        partition: i32,
        belongs: i32,
    },
    #[error("stopped at {0:?} (a test's crash point)")]
    Crashed(CrashPoint),
}

/// How a step ended early: `None` when the loop is stopping.
type Halted = Option<RuntimeError>;

fn halted<E: Into<RuntimeError>>(halt: Halt<E>) -> Halted {
    match halt {
        Halt::Stopped => None,
        Halt::Failed(e, _) => Some(e.into()),
    }
}

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

/// One owned partition: its processor and what its state covers.
pub(super) struct Partition<P> {
    pub processor: P,
    /// Per input topic, the next offset to apply (anything below it is covered by the state).
    pub covered: BTreeMap<String, i64>,
    /// The sequence of the last logged batch.
    pub sequence: i64,
    /// This owner's generation (`changelog.rs`): on all it writes, fencing off older owners.
    pub generation: i64,
    /// What it knows of the processors its inputs come from (`origins.rs`).
    pub origins: Origins,
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

/// What a batch applied so far, per partition.
#[derive(Default)]
struct Applied {
    work: BTreeMap<i32, Work>,
}

/// One partition's share of a batch: its outputs and the next offset of each input read.
#[derive(Default)]
struct Work {
    outputs: Vec<Emit>,
    positions: BTreeMap<String, i64>,
    /// Whether a record other than a time marker was read.
    decided: bool,
}

/// The end of a batch for one partition: its timers (when due), `finish_batch`, its state
/// changes. `None` when the partition has nothing to log.
#[allow(clippy::type_complexity)]
fn decide<P: Processor>(
    number: i32,
    partition: &mut Partition<P>,
    mut work: Work,
    tick: bool,
    now: Millis,
) -> Option<(Vec<Emit>, Vec<LoggedChange>, BTreeMap<String, i64>)> {
    if tick {
        work.outputs.extend(partition.processor.tick(now));
    }
    work.outputs.extend(partition.processor.finish_batch(now));
    let changes = partition.processor.take_changes();
    let changes: Vec<LoggedChange> = changes
        .into_iter()
        .map(|(state_key, state)| LoggedChange { state_key, state })
        .chain(partition.origins.take_changes(number))
        .collect();
    if work.outputs.is_empty() && changes.is_empty() && work.positions.is_empty() {
        return None;
    }
    Some((work.outputs, changes, work.positions))
}

/// The records a batch sends, in the order it sends them.
#[derive(Default)]
struct Sends {
    log: Vec<Outgoing>,
    outputs: Vec<Outgoing>,
    state: Vec<Outgoing>,
    commit: Vec<(String, i32, i64)>,
}

/// How one partition's decisions become records.
struct Plan<'a> {
    registry: &'a SchemaRegistry,
    changelog: &'a str,
    changelog_partitions: i32,
    /// The processor's name, on the origin of its outputs.
    name: &'static str,
    marker: &'a str,
    now: Millis,
}

impl Plan<'_> {
    /// Adds one partition's decisions to `sends`: the next batch of its decision log, its
    /// outputs, its state records and the offsets to commit.
    fn add<P>(
        &self,
        sends: &mut Sends,
        number: i32,
        partition: &mut Partition<P>,
        outputs: Vec<Emit>,
        changes: Vec<LoggedChange>,
        positions: BTreeMap<String, i64>,
    ) -> Result<(), RuntimeError> {
        let mut outputs = outgoing::outputs(self.registry, &outputs)?;
        let state = outgoing::state_records(
            self.registry,
            self.changelog,
            self.changelog_partitions,
            &changes,
            &writer("", partition.generation),
            self.now,
        )?;
        if let Some((record, change)) = state
            .iter()
            .zip(&changes)
            .find(|(record, _)| record.partition != Some(number))
        {
            return Err(RuntimeError::Misrouted {
                key: change.state_key.clone(),
                partition: number,
                belongs: record.partition.unwrap_or_default(),
            });
        }
        for (topic, next) in &positions {
            partition.covered.insert(topic.clone(), *next);
            sends.commit.push((topic.clone(), number, *next));
        }
        let decisions = Decisions {
            covered: covered_offsets(number, &partition.covered),
            changes,
            outputs: outputs.iter().map(Outgoing::logged).collect(),
        };
        partition.sequence += 1;
        outgoing::with_origins(
            &mut outputs,
            &Origin {
                source: self.name.to_owned(),
                partition: number,
                sender: partition.generation,
                logged_by: partition.generation,
                sequence: partition.sequence,
                index: 0,
            },
        );
        sends.log.extend(decision_log::chunks(
            self.registry,
            self.changelog,
            number,
            partition.sequence,
            &writer(self.marker, partition.generation),
            decisions,
            self.now,
        )?);
        sends.outputs.extend(outputs);
        sends.state.extend(state);
        Ok(())
    }
}

fn covered_offsets(partition: i32, covered: &BTreeMap<String, i64>) -> Vec<InputOffset> {
    covered
        .iter()
        .map(|(topic, offset)| InputOffset {
            topic: topic.clone(),
            partition,
            offset: *offset,
        })
        .collect()
}

/// The restored processors with what their state covers, the sequence of their last
/// logged batch, this owner's generation and the trackers of their sources.
fn partitions_of<P>(
    mut restored: Restored<P>,
    logged: &BTreeMap<i32, Logged>,
) -> BTreeMap<i32, Partition<P>> {
    let covered = &restored.covered;
    std::mem::take(&mut restored.processors)
        .into_iter()
        .map(|(number, processor)| {
            let covered = covered
                .iter()
                .filter(|((_, p), _)| *p == number)
                .map(|((topic, _), offset)| (topic.clone(), *offset))
                .collect();
            let sequence = logged.get(&number).map_or(0, |l| l.sequence);
            let generation = restored.generations.get(&number).copied().unwrap_or(0);
            let origins = restored.origins.remove(&number).unwrap_or_default();
            (
                number,
                Partition {
                    processor,
                    covered,
                    sequence,
                    generation,
                    origins,
                },
            )
        })
        .collect()
}
