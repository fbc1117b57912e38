//! Restoring a processor's state from its changelog: one processor per partition, from its
//! state records, with the newest complete logged batch applied over them (`decision_log.rs`).
//!
//! Fencing (issue 14 (e)): an owner's generation is the offset of its restore marker in the
//! partition, and everything it writes there names it (`ChangelogEntry::writer`, see
//! [`writer`]). Read in log order, a record of a generation older than the newest marker or
//! generation seen before it was written by an owner that had lost the partition (frozen past
//! its session, then resumed): its successor never read it, so the restore ignores it too.
//!
//! A fenced owner's record can be the newest of its key; compaction would then keep it and
//! drop the successor's value. A restore notes such keys and the restoring owner writes them
//! again ([`Repairs`], `ownership.rs`).
//!
//! Some brokers report a high watermark below the real end of a partition (Tansu in memory
//! mode), so a restore does not stop at the reported watermark: it first writes a unique marker
//! record to each partition it restores, then reads from the beginning until every marker has
//! come back. Everything written before the marker has then been read.

use super::decision_log::{Logged, NewestBatch};
use super::origins::Origins;
use super::ownership::LEASE_KEY;
use crate::core::Processor;
use jivapay_platform::failure::{Classify, Failure};
use jivapay_platform::kafka::{consumer_config, Broker, DeadLetters, RawRecord, RecordProducer};
use jivapay_schemas::records::{ChangelogEntry, LoggedChange};
use jivapay_schemas::SchemaRegistry;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;
use uuid::Uuid;

/// What a restore found, per partition: the processor with its state, the input offsets that
/// state covers (per topic and partition, the next offset to apply) and the newest logged
/// batch, whose outputs may not have been sent.
pub struct Restored<P> {
    pub processors: BTreeMap<i32, P>,
    pub covered: HashMap<(String, i32), i64>,
    pub logged: BTreeMap<i32, Logged>,
    /// Per partition, what it knows of the sources of its inputs (`origins.rs`).
    pub origins: BTreeMap<i32, Origins>,
    /// Per partition, this owner's generation: the offset of its restore marker.
    pub generations: BTreeMap<i32, i64>,
    /// The restore marker: with a generation, the writer id of everything this owner writes.
    pub marker: String,
    pub keys: usize,
    /// Records ignored as written by an owner fenced off before them.
    pub fenced: usize,
    /// Per partition, what the restoring owner writes again over a fenced owner's records.
    pub repairs: BTreeMap<i32, Repairs>,
}

/// Keys whose newest record a fenced owner wrote: left alone, compaction would keep that
/// record and drop the valid one, and a later restore would lose the key.
#[derive(Debug, Default, PartialEq)]
pub struct Repairs {
    /// State keys with their newest valid value (`None`: deleted, or never validly written).
    /// Keys the newest logged batch changed are not among them: its state records are
    /// written again anyway.
    pub state: Vec<LoggedChange>,
    /// A decision-log chunk was the newest of its key: the highest sequence a fenced owner
    /// logged. A checkpoint batch with a higher sequence than it and any valid batch is
    /// written, so no restore ever takes the fenced batch — even once the cleaner removed the
    /// marker that fenced it.
    pub checkpoint: Option<i64>,
}

/// The newest record read of one key.
#[derive(Default)]
struct Top {
    fenced: bool,
    /// The newest valid value of a state key.
    valid: Option<Vec<u8>>,
    /// The sequence of a fenced decision-log chunk.
    fenced_sequence: Option<i64>,
}

/// The writer id of records an owner of generation `generation` writes: `<marker>@<generation>`
/// (state records, where every byte counts, carry only `@<generation>`).
pub fn writer(marker: &str, generation: i64) -> String {
    format!("{marker}@{generation}")
}

/// The generation a writer id names; `None` for records written before fencing existed.
fn generation_of(writer: Option<&str>) -> Option<i64> {
    writer?.rsplit_once('@')?.1.parse().ok()
}

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("writing the restore marker: {0}")]
    Marker(#[from] jivapay_platform::kafka::ProduceError),
    #[error("the changelog did not return its restore markers within {0:?}")]
    Timeout(Duration),
}

impl Classify for RestoreError {
    fn failure(&self) -> Failure {
        match self {
            RestoreError::Kafka(e) => e.failure(),
            RestoreError::Marker(e) => e.failure(),
            // The broker is slow or unreachable: the restore starts again.
            RestoreError::Timeout(_) => Failure::Transient,
        }
    }
}

/// Rebuilds a processor made by `make` for each of `partitions` of `changelog`. A changelog
/// record that does not decode is dead-lettered (it is not sent again: the letter's own
/// sending is what a retry of the restore would repeat).
#[allow(clippy::too_many_arguments)]
pub async fn restore<P: Processor>(
    broker: &Broker,
    registry: &SchemaRegistry,
    producer: &RecordProducer,
    dead_letters: &DeadLetters,
    changelog: &str,
    partitions: &[i32],
    make: &impl Fn() -> P,
    timeout: Duration,
) -> Result<Restored<P>, RestoreError> {
    let marker = Uuid::new_v4().to_string();
    let mut restored = Restored {
        processors: partitions.iter().map(|p| (*p, make())).collect(),
        covered: HashMap::new(),
        logged: BTreeMap::new(),
        origins: partitions
            .iter()
            .map(|p| (*p, Origins::default()))
            .collect(),
        generations: BTreeMap::new(),
        marker: marker.clone(),
        keys: 0,
        fenced: 0,
        repairs: BTreeMap::new(),
    };
    if partitions.is_empty() {
        return Ok(restored);
    }
    let marker_entry = ChangelogEntry {
        state_key: String::new(),
        state: None,
        state_schema_id: None,
        covered_offsets: vec![],
        marker: Some(marker.clone()),
        written_at: chrono::Utc::now().timestamp_millis(),
        writer: Some(marker.clone()),
        batch: None,
    };
    let marker_bytes = registry
        .encode(&marker_entry)
        .map_err(|e| RestoreError::Marker(jivapay_platform::kafka::ProduceError::Encode(e)))?;
    let marker_key = registry.encode_key("");
    for partition in partitions {
        producer
            .send_bytes_to_partition(changelog, *partition, &marker_key, &marker_bytes)
            .await?;
    }
    let group = format!("restore-{}", Uuid::new_v4().simple());
    let consumer: StreamConsumer =
        consumer_config(broker.bootstrap_servers(), &group, &group).create()?;
    let mut assignment = TopicPartitionList::new();
    for partition in partitions {
        assignment.add_partition_offset(changelog, *partition, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let mut batches: BTreeMap<i32, NewestBatch> = BTreeMap::new();
    let mut tops: BTreeMap<i32, HashMap<String, Top>> = BTreeMap::new();
    let mut read = Read {
        restored: &mut restored,
        batches: &mut batches,
        tops: &mut tops,
    };
    let result = read_until_markers(
        &consumer,
        registry,
        dead_letters,
        &marker,
        &mut read,
        timeout,
    )
    .await;
    // On every path: a consumer dropped while assigned can hang librdkafka.
    consumer.unassign().ok();
    result?;
    for (partition, newest) in batches {
        if let Some(logged) = newest.finish() {
            apply_logged(&mut restored, partition, logged);
        }
    }
    for (partition, tops) in tops {
        let repairs = repairs(tops, restored.logged.get(&partition));
        if repairs != Repairs::default() {
            restored.repairs.insert(partition, repairs);
        }
    }
    Ok(restored)
}

/// The keys of one partition whose newest record was fenced.
fn repairs(tops: HashMap<String, Top>, logged: Option<&Logged>) -> Repairs {
    let written_again =
        |key: &str| logged.is_some_and(|l| l.decisions.changes.iter().any(|c| c.state_key == key));
    let mut repairs = Repairs::default();
    let fenced = tops
        .into_iter()
        .filter(|(key, top)| top.fenced && key != LEASE_KEY);
    for (key, top) in fenced {
        if key.starts_with(super::decision_log::CHUNK_PREFIX) {
            repairs.checkpoint = repairs.checkpoint.max(top.fenced_sequence);
        } else if !written_again(&key) {
            repairs.state.push(LoggedChange {
                state_key: key,
                state: top.valid,
            });
        }
    }
    repairs.state.sort_by(|a, b| a.state_key.cmp(&b.state_key));
    repairs
}

/// The newest logged batch over the state records: its changes are the newest values of
/// their keys (its state records may not all have been written), its offsets the highest.
fn apply_logged<P: Processor>(restored: &mut Restored<P>, partition: i32, logged: Logged) {
    for change in &logged.decisions.changes {
        restore_key(
            restored,
            partition,
            &change.state_key,
            change.state.as_deref(),
        );
    }
    for covered in &logged.decisions.covered {
        let slot = restored
            .covered
            .entry((covered.topic.clone(), covered.partition))
            .or_insert(0);
        *slot = (*slot).max(covered.offset);
    }
    restored.logged.insert(partition, logged);
}

/// One key's state: a tracker of the runtime's, or the processor's.
fn restore_key<P: Processor>(
    restored: &mut Restored<P>,
    partition: i32,
    key: &str,
    state: Option<&[u8]>,
) {
    let origins = restored.origins.entry(partition).or_default();
    if origins.restore(key, state) {
        return;
    }
    if let Some(processor) = restored.processors.get_mut(&partition) {
        processor.restore(key, state);
    }
}

/// What a restore builds while it reads.
struct Read<'a, P> {
    restored: &'a mut Restored<P>,
    batches: &'a mut BTreeMap<i32, NewestBatch>,
    tops: &'a mut BTreeMap<i32, HashMap<String, Top>>,
}

async fn read_until_markers<P: Processor>(
    consumer: &StreamConsumer,
    registry: &SchemaRegistry,
    dead_letters: &DeadLetters,
    marker: &str,
    read: &mut Read<'_, P>,
    timeout: Duration,
) -> Result<(), RestoreError> {
    let Read {
        restored,
        batches,
        tops,
    } = read;
    let partitions: Vec<i32> = restored.processors.keys().copied().collect();
    let mut waiting: HashSet<i32> = partitions.iter().copied().collect();
    let mut fences: HashMap<i32, i64> = HashMap::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while !waiting.is_empty() {
        let message = tokio::time::timeout_at(deadline, consumer.recv())
            .await
            .map_err(|_| RestoreError::Timeout(timeout))??;
        if !waiting.contains(&message.partition()) {
            continue; // past this restore's marker: written after it
        }
        let Some(payload) = message.payload() else {
            continue;
        };
        let entry = match registry.decode::<ChangelogEntry>(payload) {
            Ok(entry) => entry,
            Err(e) => {
                let raw = RawRecord {
                    topic: message.topic().to_owned(),
                    partition: message.partition(),
                    offset: message.offset(),
                    key: message.key().map(<[u8]>::to_vec),
                    payload: Some(payload.to_vec()),
                };
                dead_letters
                    .send(&raw, &format!("undecodable changelog record: {e}"))
                    .await?;
                continue;
            }
        };
        let (partition, offset) = (message.partition(), message.offset());
        let fence = fences.entry(partition).or_insert(i64::MIN);
        if let Some(found) = &entry.marker {
            *fence = (*fence).max(offset);
            if found == marker {
                restored.generations.insert(partition, offset);
                waiting.remove(&partition);
            }
            continue;
        }
        let generation = generation_of(entry.writer.as_deref());
        let top = tops
            .entry(partition)
            .or_default()
            .entry(entry.state_key.clone())
            .or_default();
        if generation.is_some_and(|g| g < *fence) {
            restored.fenced += 1;
            top.fenced = true;
            top.fenced_sequence = entry.batch.as_ref().map(|b| b.sequence);
            continue;
        }
        *fence = (*fence).max(generation.unwrap_or(i64::MIN));
        *top = Top {
            fenced: false,
            valid: entry.state.clone(),
            fenced_sequence: None,
        };
        if entry.state_key == LEASE_KEY {
            continue;
        }
        if let Some(batch) = entry.batch {
            batches.entry(partition).or_default().read(
                entry.covered_offsets,
                batch,
                generation.unwrap_or(0),
            );
            continue;
        }
        restore_key(
            restored,
            partition,
            &entry.state_key,
            entry.state.as_deref(),
        );
        restored.keys += 1;
        // Offsets on state records: written before the decision log existed.
        for covered in entry.covered_offsets {
            let slot = restored
                .covered
                .entry((covered.topic, covered.partition))
                .or_insert(0);
            *slot = (*slot).max(covered.offset);
        }
    }
    Ok(())
}
