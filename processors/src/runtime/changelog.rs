//! Restoring a processor's state from its changelog.
//!
//! Some brokers report a high watermark below the real end of a partition (Tansu in memory
//! mode), so a restore does not stop at the reported watermark: it first writes a unique marker
//! record to each partition it restores, then reads from the beginning until every marker has
//! come back. Everything written before the marker has then been read.

use crate::core::Processor;
use jivapay_platform::kafka::{consumer_config, Broker, RecordProducer};
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

/// Rebuilds `processor`'s state for `partitions` of `changelog`.
pub async fn restore<P: Processor>(
    broker: &Broker,
    registry: &SchemaRegistry,
    producer: &RecordProducer,
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
    let mut waiting: HashSet<i32> = partitions.iter().copied().collect();
    let deadline = tokio::time::Instant::now() + timeout;
    while !waiting.is_empty() {
        let message = tokio::time::timeout_at(deadline, consumer.recv())
            .await
            .map_err(|_| RestoreError::Timeout(timeout))??;
        let Some(payload) = message.payload() else {
            continue;
        };
        let Ok(entry) = registry.decode::<ChangelogEntry>(payload) else {
            tracing::warn!(
                changelog,
                partition = message.partition(),
                offset = message.offset(),
                "undecodable changelog record skipped"
            );
            continue;
        };
        if let Some(found) = &entry.marker {
            if *found == marker {
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
    consumer.unassign().ok();
    Ok(restored)
}
