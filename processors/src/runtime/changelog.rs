//! Restoring a processor's state from its changelog.
//!
//! Some brokers report a high watermark below the real end of a partition (Tansu in memory
//! mode), so a restore does not stop at the reported watermark: it first writes a unique marker
//! record to each partition it restores, then reads from the beginning until every marker has
//! come back. Everything written before the marker has then been read.

use crate::core::Processor;
use jivapay_platform::failure::{Classify, Failure};
use jivapay_platform::kafka::{consumer_config, Broker, DeadLetters, RawRecord, RecordProducer};
use jivapay_schemas::records::ChangelogEntry;
use jivapay_schemas::SchemaRegistry;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use uuid::Uuid;

/// What a restore found: the input offsets the restored state covers, per topic and partition
/// (the next offset to apply).
#[derive(Debug, Default, Clone)]
pub struct Restored {
    pub covered: HashMap<(String, i32), i64>,
    pub keys: usize,
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

/// Rebuilds `processor`'s state for `partitions` of `changelog`. A changelog record that does
/// not decode is dead-lettered (it is not sent again: the letter's own sending is what a retry
/// of the restore would repeat).
#[allow(clippy::too_many_arguments)]
pub async fn restore<P: Processor>(
    broker: &Broker,
    registry: &SchemaRegistry,
    producer: &RecordProducer,
    dead_letters: &DeadLetters,
    changelog: &str,
    partitions: &[i32],
    processor: &mut P,
    timeout: Duration,
) -> Result<Restored, RestoreError> {
    let mut restored = Restored::default();
    if partitions.is_empty() {
        return Ok(restored);
    }
    let marker = Uuid::new_v4().to_string();
    let marker_entry = ChangelogEntry {
        state_key: String::new(),
        state: None,
        state_schema_id: None,
        covered_offsets: vec![],
        marker: Some(marker.clone()),
        written_at: chrono::Utc::now().timestamp_millis(),
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
    let read = read_until_markers(
        &consumer,
        registry,
        dead_letters,
        partitions,
        &marker,
        processor,
        &mut restored,
        timeout,
    )
    .await;
    // On every path: a consumer dropped while assigned can hang librdkafka.
    consumer.unassign().ok();
    read.map(|()| restored)
}

#[allow(clippy::too_many_arguments)]
async fn read_until_markers<P: Processor>(
    consumer: &StreamConsumer,
    registry: &SchemaRegistry,
    dead_letters: &DeadLetters,
    partitions: &[i32],
    marker: &str,
    processor: &mut P,
    restored: &mut Restored,
    timeout: Duration,
) -> Result<(), RestoreError> {
    let mut waiting: HashSet<i32> = partitions.iter().copied().collect();
    let deadline = tokio::time::Instant::now() + timeout;
    while !waiting.is_empty() {
        let message = tokio::time::timeout_at(deadline, consumer.recv())
            .await
            .map_err(|_| RestoreError::Timeout(timeout))??;
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
        if let Some(found) = &entry.marker {
            if found == marker {
                waiting.remove(&message.partition());
            }
            continue;
        }
        processor.restore(&entry.state_key, entry.state.as_deref());
        restored.keys += 1;
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
