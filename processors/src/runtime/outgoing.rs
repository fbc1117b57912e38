//! What a batch sends, encoded before anything is sent: its outputs, then its state changes as
//! changelog records with the input offsets they cover. Encoded once, the same bytes are sent
//! again when a send is retried.

use super::decode::encode;
use crate::core::Emit;
use jivapay_platform::kafka::partitioner::java_partition;
use jivapay_platform::kafka::{Delivered, ProduceError, RecordProducer};
use jivapay_schemas::records::{ChangelogEntry, InputOffset};
use jivapay_schemas::{CodecError, SchemaRegistry};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// One encoded record and where it goes: a partition chosen by the caller (changelogs), or by
/// the key with the Java partitioner (outputs).
pub struct Outgoing {
    pub topic: String,
    pub partition: Option<i32>,
    pub key: Vec<u8>,
    pub payload: Vec<u8>,
}

/// Sends every record of `records` and waits for all acknowledgements; the first failure is
/// returned (records of a failed send are sent again whole: consumers deduplicate by id).
pub async fn send_all(producer: &RecordProducer, records: &[Outgoing]) -> Result<(), ProduceError> {
    let sends = records.iter().map(|record| async move {
        match record.partition {
            Some(partition) => {
                producer
                    .send_bytes_to_partition(&record.topic, partition, &record.key, &record.payload)
                    .await
            }
            None => {
                producer
                    .send_bytes(&record.topic, Some(&record.key), Some(&record.payload))
                    .await
            }
        }
    });
    futures::future::join_all(sends)
        .await
        .into_iter()
        .collect::<Result<Vec<Delivered>, _>>()
        .map(drop)
}

/// The outputs, keyed by their topic's key.
pub fn outputs(registry: &SchemaRegistry, emits: &[Emit]) -> Result<Vec<Outgoing>, CodecError> {
    emits
        .iter()
        .map(|emit| {
            Ok(Outgoing {
                topic: emit.topic().to_owned(),
                partition: None,
                key: registry.encode_key(&emit.key()),
                payload: encode(registry, emit)?,
            })
        })
        .collect()
}

/// The changelog records of a batch's `changes`. A state key may have sub-keys
/// (`<store>/order/<id>`): the record goes to the partition of the input key before the first
/// `/`, so it is restored by the instance that owns that input partition. A record carries the
/// covered offsets of its own partition only: it is restored with the input partition of that
/// number (co-partitioning), and an input changes only state of its own key, so offsets of
/// other partitions would only make every record longer.
pub fn changelog(
    registry: &SchemaRegistry,
    changelog: &str,
    changelog_partitions: i32,
    changes: Vec<(String, Option<Vec<u8>>)>,
    covered: &HashMap<(String, i32), i64>,
    now: i64,
) -> Result<Vec<Outgoing>, CodecError> {
    let mut covered_offsets: BTreeMap<i32, Vec<InputOffset>> = BTreeMap::new();
    for ((topic, partition), offset) in covered {
        covered_offsets
            .entry(*partition)
            .or_default()
            .push(InputOffset {
                topic: topic.clone(),
                partition: *partition,
                offset: *offset,
            });
    }
    for offsets in covered_offsets.values_mut() {
        offsets.sort_by(|a, b| a.topic.cmp(&b.topic));
    }
    let changes: Vec<(i32, String, Option<Vec<u8>>)> = changes
        .into_iter()
        .map(|(key, state)| {
            let route = key.split('/').next().unwrap_or(&key);
            let partition = java_partition(&registry.encode_key(route), changelog_partitions);
            (partition, key, state)
        })
        .collect();
    let carriers = offset_carriers(&changes);
    changes
        .into_iter()
        .enumerate()
        .map(|(n, (partition, key, state))| {
            let entry = ChangelogEntry {
                state_key: key.clone(),
                state,
                state_schema_id: None,
                covered_offsets: if carriers.contains(&n) {
                    covered_offsets.get(&partition).cloned().unwrap_or_default()
                } else {
                    Vec::new()
                },
                marker: None,
                written_at: now,
            };
            Ok(Outgoing {
                topic: changelog.to_owned(),
                partition: Some(partition),
                key: registry.encode_key(&key),
                payload: registry.encode(&entry)?,
            })
        })
        .collect()
}

/// Which of a batch's changelog records (by index) carry the covered offsets: per partition,
/// the last one that is not a tombstone, or every one if all are tombstones. A restore takes
/// the highest offsets it reads, and the newest record of a partition is never compacted away
/// (a later record of its key comes with a later batch, which has a carrier of its own); a
/// tombstone may be, so it carries them only when nothing else in the batch can. On every
/// record they cost about a third of an open order's record.
fn offset_carriers(changes: &[(i32, String, Option<Vec<u8>>)]) -> BTreeSet<usize> {
    let mut last_value: BTreeMap<i32, usize> = BTreeMap::new();
    for (n, (partition, _, state)) in changes.iter().enumerate() {
        if state.is_some() {
            last_value.insert(*partition, n);
        }
    }
    changes
        .iter()
        .enumerate()
        .filter(|(n, (partition, _, _))| last_value.get(partition).is_none_or(|last| last == n))
        .map(|(n, _)| n)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::offset_carriers;

    fn change(partition: i32, key: &str, tombstone: bool) -> (i32, String, Option<Vec<u8>>) {
        (partition, key.to_owned(), (!tombstone).then(|| vec![1]))
    }

    #[test]
    fn the_last_value_of_each_partition_carries_the_offsets_and_tombstones_only_when_alone() {
        let changes = vec![
            change(0, "a", false),
            change(1, "b/order/1", false),
            change(0, "a/order/1", false),
            change(0, "a/order/2", true),
            change(1, "b", false),
            change(2, "c/order/3", true),
            change(2, "c/order/4", true),
        ];
        assert_eq!(
            offset_carriers(&changes).into_iter().collect::<Vec<_>>(),
            vec![2, 4, 5, 6]
        );
    }
}
