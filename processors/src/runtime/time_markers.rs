//! Time markers: timers judged by when things happened (ARCHITECTURE principle 8).
//!
//! Every tick the loop writes a marker — a record without a value, its key `__time/<stamp>`
//! with the loop's clock — to each owned partition of the input its processor's commands
//! arrive on whose processor has a timer waiting for one, and reads it back with the other
//! inputs. Anything the broker acknowledged before
//! the marker was written lies before it in the partition; an HTTP edge accepts a command only
//! when its acknowledgement came within `COMMAND_ACCEPT_BOUND_MS` of the command's stamp. So
//! once a marker is read, every command accepted up to `stamp − TIMER_HOLD_MS` (the bound plus
//! the clocks' skew) has been applied, and a timer up to then may fire: a confirmation accepted
//! before its deadline wins, however late it is read.
//!
//! Any instance's marker counts, a previous owner's too: what it states is a fact of the log.
//! A marker changes no state and writes no decision: a batch of nothing else only commits its
//! offsets.

use crate::core::Millis;
use jivapay_platform::kafka::{RawRecord, RecordProducer};
use jivapay_platform::trader_commands::TIMER_HOLD_MS;
use jivapay_schemas::SchemaRegistry;
use rdkafka::error::KafkaError;

const PREFIX: &str = "__time/";

/// Up to when timers may fire, once a marker stamped `stamp` was read.
pub fn timers_until(stamp: Millis) -> Millis {
    stamp.saturating_sub(TIMER_HOLD_MS)
}

/// Whether a marker stamped `stamp` would let a timer due at `next_deadline` fire.
pub fn awaited(next_deadline: Option<Millis>, stamp: Millis) -> bool {
    next_deadline.is_some_and(|deadline| deadline <= timers_until(stamp))
}

/// The stamp of `record` if it is a time marker.
pub fn stamp_of(registry: &SchemaRegistry, record: &RawRecord) -> Option<Millis> {
    if record.payload.is_some() {
        return None;
    }
    let key = registry.decode_key(record.key.as_deref()?).ok()?;
    key.strip_prefix(PREFIX)?.parse().ok()
}

/// Hands a marker stamped `stamp` for each of `partitions` of `topic` to the producer without
/// waiting for the broker: a marker lost only delays the timers until the next one, and a loop
/// that waited would stall behind every output queued before it.
pub fn write(
    producer: &RecordProducer,
    registry: &SchemaRegistry,
    topic: &str,
    partitions: &[i32],
    stamp: Millis,
) -> Result<(), KafkaError> {
    let key = registry.encode_key(&format!("{PREFIX}{stamp}"));
    partitions
        .iter()
        .try_for_each(|partition| producer.enqueue_to_partition(topic, *partition, &key, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: Option<&str>, payload: Option<Vec<u8>>) -> RawRecord {
        let registry = SchemaRegistry::builtin().unwrap();
        RawRecord {
            topic: "trader.commands".into(),
            partition: 0,
            offset: 0,
            key: key.map(|k| registry.encode_key(k)),
            payload,
        }
    }

    #[test]
    fn only_a_valueless_record_with_a_marker_key_is_a_marker() {
        let registry = SchemaRegistry::builtin().unwrap();
        assert_eq!(
            stamp_of(&registry, &record(Some("__time/1234"), None)),
            Some(1234)
        );
        assert_eq!(
            stamp_of(&registry, &record(Some("__time/1234"), Some(vec![0]))),
            None
        );
        assert_eq!(stamp_of(&registry, &record(Some("a-trader"), None)), None);
        assert_eq!(stamp_of(&registry, &record(None, None)), None);
        assert_eq!(timers_until(10_000), 10_000 - TIMER_HOLD_MS);
        assert!(awaited(Some(10_000 - TIMER_HOLD_MS), 10_000));
        assert!(!awaited(Some(10_001 - TIMER_HOLD_MS), 10_000));
        assert!(!awaited(None, 10_000));
    }
}
