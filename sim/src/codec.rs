//! The bytes on the topics, made exactly as the runtime makes them: inputs decoded by the
//! topic they come from, outputs encoded with the newest schema and keyed by their topic's
//! key, partitions chosen by the Java partitioner over the encoded key. Decoding, encoding and
//! changelog partitions are the runtime's own; the time markers' few lines repeat
//! `time_markers.rs` (keep them in step).

use crate::topics::Record;
use jivapay_platform::kafka::partitioner::java_partition;
use jivapay_processors::core::{Emit, Millis};
use jivapay_processors::runtime::origins::Origin;
use jivapay_schemas::records::LoggedOutput;
use jivapay_schemas::topics::*;
use jivapay_schemas::{CodecError, SchemaRegistry};
use std::rc::Rc;

pub use jivapay_processors::runtime::decode::{decode, encode};

/// The outputs of a batch as the decision log keeps them (`outgoing::outputs`).
pub fn outputs(registry: &SchemaRegistry, emits: &[Emit]) -> Result<Vec<LoggedOutput>, CodecError> {
    emits
        .iter()
        .map(|emit| {
            Ok(LoggedOutput {
                topic: emit.topic().to_owned(),
                key: registry.encode_key(&emit.key()),
                payload: encode(registry, emit)?,
            })
        })
        .collect()
}

/// The catalogue's name for `name` (the `'static` one the logs are filed under).
pub fn topic_name(name: &str) -> &'static str {
    topic(name)
        .unwrap_or_else(|| panic!("{name} is not in the catalogue"))
        .name
}

/// The partition a keyed record of `name` lands on: the producer's `murmur2_random`.
pub fn partition_of(name: &str, key: &[u8]) -> i32 {
    let partitions = topic(name).map_or(STREAM_PARTITIONS, |t| t.partitions);
    java_partition(key, partitions)
}

/// The changelog partition of a state key, as the runtime chooses it.
pub fn state_partition(registry: &SchemaRegistry, state_key: &str) -> i32 {
    jivapay_processors::runtime::changelog_partition(registry, state_key, STREAM_PARTITIONS)
}

/// The key prefix of a time marker (`time_markers.rs`).
const MARKER_PREFIX: &str = "__time/";

/// The key of a time marker stamped `stamp`; the marker has no value.
pub fn marker_key(registry: &SchemaRegistry, stamp: Millis) -> Vec<u8> {
    registry.encode_key(&format!("{MARKER_PREFIX}{stamp}"))
}

/// The stamp of a record if it is a time marker (`time_markers::stamp_of`).
pub fn marker_stamp(
    registry: &SchemaRegistry,
    key: &[u8],
    payload: Option<&[u8]>,
) -> Option<Millis> {
    if payload.is_some() {
        return None;
    }
    let key = registry.decode_key(key).ok()?;
    key.strip_prefix(MARKER_PREFIX)?.parse().ok()
}

/// A batch's outputs as the records a send appends: each on its topic's partition for its key,
/// with `origin` and the output's index as its header (`outgoing::with_origins`).
pub fn output_records(
    outputs: &[LoggedOutput],
    origin: &Origin,
) -> Vec<(&'static str, i32, Rc<Record>)> {
    (0..)
        .zip(outputs)
        .map(|(index, output)| {
            let topic = topic_name(&output.topic);
            let record = Record {
                key: output.key.clone(),
                payload: Some(output.payload.clone()),
                origin: Some(
                    Origin {
                        index,
                        ..origin.clone()
                    }
                    .header(),
                ),
            };
            (topic, partition_of(topic, &output.key), Rc::new(record))
        })
        .collect()
}
