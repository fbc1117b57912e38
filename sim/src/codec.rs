//! The bytes on the topics, made exactly as the runtime makes them: inputs decoded by the
//! topic they come from, outputs encoded with the newest schema and keyed by their topic's
//! key, partitions chosen by the Java partitioner over the encoded key. The runtime's own
//! `decode.rs`, `outgoing.rs` and `time_markers.rs` are private; these few lines repeat them
//! (keep them in step).

use jivapay_platform::kafka::partitioner::java_partition;
use jivapay_processors::core::{Emit, Input, Millis};
use jivapay_processors::runtime::origins;
use jivapay_schemas::records::LoggedOutput;
use jivapay_schemas::topics::*;
use jivapay_schemas::{CodecError, SchemaRegistry};

/// Decodes a record value of `topic` into an [`Input`] (`runtime/decode.rs`).
pub fn decode(registry: &SchemaRegistry, topic: &str, payload: &[u8]) -> Result<Input, CodecError> {
    Ok(match topic {
        ORDERS_REQUESTED => Input::Requested(registry.decode(payload)?),
        ORDERS_SCREENED => Input::Screened(registry.decode(payload)?),
        ORDERS_ROUTED => Input::Routed(registry.decode(payload)?),
        TRADER_COMMANDS => Input::Command(registry.decode(payload)?),
        ORDERS_EVENTS => Input::Event(registry.decode(payload)?),
        STORE_POSTINGS => Input::StorePosting(registry.decode(payload)?),
        TRADER_POSTINGS => Input::TraderPosting(registry.decode(payload)?),
        other => {
            return Err(CodecError::Avro(format!(
                "{other} is not a processor input"
            )))
        }
    })
}

/// Encodes an output for its topic (`runtime/decode.rs`).
pub fn encode(registry: &SchemaRegistry, emit: &Emit) -> Result<Vec<u8>, CodecError> {
    match emit {
        Emit::Screened(r) => registry.encode(r),
        Emit::Routed(r) => registry.encode(r),
        Emit::Event(r) => registry.encode(r),
        Emit::Transfer(r) => registry.encode(r),
        Emit::StorePosting(r) => registry.encode(r),
        Emit::TraderPosting(r) => registry.encode(r),
        Emit::Capacity(r) => registry.encode(r),
        Emit::Command(r) => registry.encode(r),
    }
}

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

/// The changelog partition of a state key (`outgoing::state_records`): a tracker's names its
/// partition, any other goes with the input key before its first `/`.
pub fn state_partition(registry: &SchemaRegistry, state_key: &str) -> i32 {
    origins::state_partition(state_key).unwrap_or_else(|| {
        let route = state_key.split('/').next().unwrap_or(state_key);
        java_partition(&registry.encode_key(route), STREAM_PARTITIONS)
    })
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
