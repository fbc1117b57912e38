//! An owner writes its changelog partitions alone — and checks it on every write.
//!
//! Kafka without transactions cannot stop an instance that lost its partitions (frozen past
//! its session, then resumed) from writing on. What it can do is tell every writer where its
//! record landed. An owner knows the offset of its restore marker (its generation) and counts
//! what it writes after it, so it knows the offset each of its next records must get. A
//! record that lands anywhere else means someone else wrote to the partition since: a
//! successor's restore marker or records, or a fenced owner's late records. The owner is then
//! *disturbed*: it stops the batch where it is — after the decision log, before any output;
//! after the state records, before the commit — and restores its partitions again
//! (`Worker::recover`).
//!
//! Why that is enough for outputs (principle 4): a batch's outputs are produced only after its
//! decision log landed where the owner expected, so before any successor's marker; the
//! successor has restored that batch and sends its outputs again, with the same origins, and
//! consumers drop whichever copy comes second. A fenced owner's outputs never carry a
//! decision its successor does not know.
//!
//! What a fenced owner writes to the changelog before it notices is ignored by restores
//! (`changelog.rs`, fenced by generation), and a restore that finds such a record on top of a
//! key writes the key again (`Repairs`), so compaction keeps the successor's value. An idle
//! partition writes a lease record now and then, so that it notices within a bound what a
//! fenced owner wrote to it — well within the changelog's `min.compaction.lag.ms`, during
//! which the cleaner keeps what the late record would supersede.

use super::batch::Partition;
use super::outgoing::{state_entry, Outgoing};
use jivapay_platform::kafka::Delivered;
use jivapay_schemas::{CodecError, SchemaRegistry};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The state key of lease records: restores skip them.
pub const LEASE_KEY: &str = "__lease";

/// A write of the owner landed where it did not expect it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disturbed {
    pub partition: i32,
    pub expected: i64,
    pub found: i64,
}

/// Checks that the changelog records of one send (`records`, acknowledged as `delivered`, in
/// the same order) landed, per partition, right after the owner's previous write, and
/// advances each partition's next offset. Sends are awaited whole before the next one, and
/// the idempotent producer keeps a partition's order, so an owner's own records are
/// contiguous unless someone else wrote in between.
pub fn check<P>(
    partitions: &mut BTreeMap<i32, Partition<P>>,
    changelog: &str,
    records: &[Outgoing],
    delivered: &[Delivered],
) -> Result<(), Disturbed> {
    let mut landed: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for (record, delivered) in records.iter().zip(delivered) {
        if record.topic == changelog {
            landed
                .entry(delivered.partition)
                .or_default()
                .push(delivered.offset);
        }
    }
    let now = Instant::now();
    for (number, mut offsets) in landed {
        let Some(partition) = partitions.get_mut(&number) else {
            continue;
        };
        offsets.sort_unstable();
        let expected = partition.changelog_next;
        if let Some((found, wanted)) = offsets
            .iter()
            .zip(expected..)
            .find(|(offset, wanted)| **offset != *wanted)
        {
            return Err(Disturbed {
                partition: number,
                expected: wanted,
                found: *found,
            });
        }
        partition.changelog_next = expected + offsets.len() as i64;
        partition.last_write = now;
    }
    Ok(())
}

/// The partitions that wrote nothing to the changelog for `interval`.
pub fn idle<P>(partitions: &BTreeMap<i32, Partition<P>>, interval: Duration) -> Vec<i32> {
    partitions
        .iter()
        .filter(|(_, p)| p.last_write.elapsed() >= interval)
        .map(|(number, _)| *number)
        .collect()
}

/// A lease record for `partition`: nothing but its writer, to learn where it lands.
pub fn lease(
    registry: &SchemaRegistry,
    changelog: &str,
    partition: i32,
    writer: &str,
    now: i64,
) -> Result<Outgoing, CodecError> {
    let entry = state_entry(LEASE_KEY, None, writer, now);
    Ok(Outgoing {
        topic: changelog.to_owned(),
        partition: Some(partition),
        key: registry.encode_key(LEASE_KEY),
        payload: registry.encode(&entry)?,
        origin: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::origins::Origins;

    fn owned(next: i64) -> BTreeMap<i32, Partition<()>> {
        let partition = Partition {
            processor: (),
            covered: BTreeMap::new(),
            sequence: 0,
            generation: next - 1,
            origins: Origins::default(),
            changelog_next: next,
            last_write: Instant::now(),
        };
        BTreeMap::from([(3, partition)])
    }

    fn sent(topic: &str, partition: i32) -> Outgoing {
        Outgoing {
            topic: topic.into(),
            partition: Some(partition),
            key: vec![],
            payload: vec![],
            origin: None,
        }
    }

    fn landed(offsets: &[i64]) -> Vec<Delivered> {
        offsets
            .iter()
            .map(|offset| Delivered {
                partition: 3,
                offset: *offset,
            })
            .collect()
    }

    #[test]
    fn an_owners_own_records_land_one_after_another() {
        let mut partitions = owned(11);
        let records = [sent("c", 3), sent("out", 3), sent("c", 3)];
        // Acknowledged out of order; the output's offset is another topic's.
        let delivered = landed(&[12, 500, 11]);
        assert_eq!(check(&mut partitions, "c", &records, &delivered), Ok(()));
        assert_eq!(partitions[&3].changelog_next, 13);
        let delivered = landed(&[13]);
        assert_eq!(
            check(&mut partitions, "c", &records[..1], &delivered),
            Ok(())
        );
        assert_eq!(partitions[&3].changelog_next, 14);
    }

    #[test]
    fn a_record_after_someone_elses_is_a_disturbance() {
        let mut partitions = owned(11);
        let records = [sent("c", 3), sent("c", 3)];
        // A successor's restore marker took offset 12.
        let delivered = landed(&[11, 13]);
        assert_eq!(
            check(&mut partitions, "c", &records, &delivered),
            Err(Disturbed {
                partition: 3,
                expected: 12,
                found: 13
            })
        );
    }
}
