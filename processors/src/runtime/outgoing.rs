//! What a batch sends, encoded before anything is sent: its decision log, its outputs and its
//! state records. Encoded once, the same bytes are sent again when a send is retried.

use super::decode::encode;
use super::origins::{self, Origin};
use crate::core::Emit;
use jivapay_platform::kafka::partitioner::java_partition;
use jivapay_platform::kafka::{Delivered, ProduceError, RecordProducer};
use jivapay_schemas::records::{ChangelogEntry, LoggedChange, LoggedOutput};
use jivapay_schemas::{CodecError, SchemaRegistry};

/// One encoded record and where it goes: a partition chosen by the caller (changelogs), or by
/// the key with the Java partitioner (outputs).
pub struct Outgoing {
    pub topic: String,
    pub partition: Option<i32>,
    pub key: Vec<u8>,
    pub payload: Vec<u8>,
    /// The `origins::HEADER` value of an output.
    pub origin: Option<String>,
}

/// Sends every record of `records` and waits for all acknowledgements: where each landed, in
/// the order of `records`. The first failure is returned (records of a failed send are sent
/// again whole: consumers deduplicate by origin).
pub async fn send_all(
    producer: &RecordProducer,
    records: &[Outgoing],
) -> Result<Vec<Delivered>, ProduceError> {
    let sends = records.iter().map(|record| {
        let header = record
            .origin
            .as_ref()
            .map(|origin| (origins::HEADER, origin.as_bytes()));
        producer.send_bytes_with_header(
            &record.topic,
            record.partition,
            &record.key,
            &record.payload,
            header,
        )
    });
    futures::future::join_all(sends).await.into_iter().collect()
}

/// The outputs, keyed by their topic's key; their origins are set by [`with_origins`].
pub fn outputs(registry: &SchemaRegistry, emits: &[Emit]) -> Result<Vec<Outgoing>, CodecError> {
    emits
        .iter()
        .map(|emit| {
            Ok(Outgoing {
                topic: emit.topic().to_owned(),
                partition: None,
                key: registry.encode_key(&emit.key()),
                payload: encode(registry, emit)?,
                origin: None,
            })
        })
        .collect()
}

/// Sets the origin of each output of one batch: `template` with the output's index.
pub fn with_origins(outputs: &mut [Outgoing], template: &Origin) {
    for (index, output) in (0..).zip(outputs.iter_mut()) {
        output.origin = Some(
            Origin {
                index,
                ..template.clone()
            }
            .header(),
        );
    }
}

/// The state records of `changes` in `changelog`, each to the partition of the input key
/// before the first `/` of its state key (`<store>/order/<id>` goes with `<store>`), where the
/// instance that owns that input partition restores it (co-partitioning); the runtime's
/// trackers name their partition (`origins.rs`). The covered offsets are the decision log's
/// (`decision_log.rs`), not theirs. `writer` names the owner's generation.
pub fn state_records(
    registry: &SchemaRegistry,
    changelog: &str,
    changelog_partitions: i32,
    changes: &[LoggedChange],
    writer: &str,
    now: i64,
) -> Result<Vec<Outgoing>, CodecError> {
    changes
        .iter()
        .map(|change| {
            let entry = state_entry(&change.state_key, change.state.clone(), writer, now);
            let partition = changelog_partition(registry, &change.state_key, changelog_partitions);
            Ok(Outgoing {
                topic: changelog.to_owned(),
                partition: Some(partition),
                key: registry.encode_key(&change.state_key),
                payload: registry.encode(&entry)?,
                origin: None,
            })
        })
        .collect()
}

/// A changelog record of one key's state (`None`: deleted) by `writer`.
pub fn state_entry(
    state_key: &str,
    state: Option<Vec<u8>>,
    writer: &str,
    now: i64,
) -> ChangelogEntry {
    ChangelogEntry {
        state_key: state_key.to_owned(),
        state,
        state_schema_id: None,
        covered_offsets: Vec::new(),
        marker: None,
        written_at: now,
        writer: Some(writer.to_owned()),
        batch: None,
    }
}

/// The changelog partition of a state key: the one a runtime tracker names
/// (`origins::state_partition`), else that of its input key ([`state_partition`]).
pub fn changelog_partition(registry: &SchemaRegistry, state_key: &str, partitions: i32) -> i32 {
    origins::state_partition(state_key)
        .unwrap_or_else(|| state_partition(registry, state_key, partitions))
}

/// The changelog partition of a state key: that of its input key, the part before the first
/// `/`.
pub fn state_partition(registry: &SchemaRegistry, state_key: &str, partitions: i32) -> i32 {
    let route = state_key.split('/').next().unwrap_or(state_key);
    java_partition(&registry.encode_key(route), partitions)
}

impl Outgoing {
    /// The output as the decision log keeps it.
    pub fn logged(&self) -> LoggedOutput {
        LoggedOutput {
            topic: self.topic.clone(),
            key: self.key.clone(),
            payload: self.payload.clone(),
        }
    }

    /// A logged output, to be sent again as it was (its origin set by [`with_origins`]).
    pub fn from_logged(output: &LoggedOutput) -> Outgoing {
        Outgoing {
            topic: output.topic.clone(),
            partition: None,
            key: output.key.clone(),
            payload: output.payload.clone(),
            origin: None,
        }
    }
}
