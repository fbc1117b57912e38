//! Topics in memory: one append-only log per partition, with offsets as Kafka gives them.
//!
//! A record is what the broker would hold: the key and value bytes exactly as encoded
//! (Confluent wire format), and the `jivapay-origin` header of a processor's output. Compacted
//! topics (the changelogs) are cleaned like Kafka's log cleaner cleans them: only the older
//! part of a log is cleaned — never the newest records (the active segment), never a record
//! younger than `min.compaction.lag.ms` ([`COMPACTION_LAG_MS`]) — and there a record is
//! removed once a later record of that part has the same key, offsets of the survivors
//! unchanged, tombstones kept. A record is therefore never removed while the record that
//! supersedes it is younger than the lag: what the runtime's repairs rely on
//! (`changelog.rs`). Streams drop what every reader is past (`truncate_before`), as retention
//! would.

use jivapay_processors::core::Millis;
use jivapay_schemas::topics::{topic, Cleanup};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

/// `min.compaction.lag.ms` of the changelogs: the cleaner leaves records younger than this.
/// A fenced owner's late record can be the newest of its key for a while; the successor's
/// record it supersedes survives at least this long, so a restore in the meantime (leases
/// make one come soon, `runtime.rs`) can write the key again with its valid value.
pub const COMPACTION_LAG_MS: Millis = 30_000;

/// One record of a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub key: Vec<u8>,
    /// `None`: a time marker on `trader.commands`, a tombstone on a changelog.
    pub payload: Option<Vec<u8>>,
    /// The `origins::HEADER` value a processor puts on its outputs.
    pub origin: Option<String>,
}

/// One partition: records in offset order (with gaps once compacted or truncated).
#[derive(Debug, Default)]
pub struct Log {
    entries: Vec<(i64, Rc<Record>)>,
    /// When each entry was appended (the simulated clock): what the compaction lag counts from.
    appended: Vec<Millis>,
    next: i64,
}

impl Log {
    /// Appends `record` at `at` (the simulated clock); returns its offset.
    pub fn append(&mut self, record: Rc<Record>, at: Millis) -> i64 {
        let offset = self.next;
        self.entries.push((offset, record));
        self.appended.push(at);
        self.next += 1;
        offset
    }

    /// The offset the next record will get (Kafka's log end offset).
    pub fn end(&self) -> i64 {
        self.next
    }

    /// Records still held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The records from `offset` on, in order.
    pub fn from(&self, offset: i64) -> &[(i64, Rc<Record>)] {
        let start = self.entries.partition_point(|(o, _)| *o < offset);
        &self.entries[start..]
    }

    /// The record at `offset`, if still held.
    pub fn get(&self, offset: i64) -> Option<&Rc<Record>> {
        let at = self.entries.partition_point(|(o, _)| *o < offset);
        self.entries
            .get(at)
            .filter(|(o, _)| *o == offset)
            .map(|(_, r)| r)
    }

    /// The first offset still held (the log end when empty).
    pub fn start(&self) -> i64 {
        self.entries.first().map_or(self.next, |(o, _)| *o)
    }

    /// Kafka's log cleaner at `now`: it cleans the records older than `lag` but for the
    /// newest `active` ones (whichever protects more) — as Kafka's offset map covers only the
    /// dirty section below the first uncleanable offset — and there removes every record a
    /// later record of the cleaned part has the same key as.
    pub fn compact(&mut self, active: usize, now: Millis, lag: Millis) {
        let old = self.appended.partition_point(|at| *at < now - lag);
        let clean_until = self.entries.len().saturating_sub(active).min(old);
        let mut newer: HashSet<&[u8]> = HashSet::new();
        let mut keep = vec![true; self.entries.len()];
        for (i, (_, record)) in self.entries[..clean_until].iter().enumerate().rev() {
            keep[i] = newer.insert(record.key.as_slice());
        }
        let mut i = 0;
        self.entries.retain(|_| {
            i += 1;
            keep[i - 1]
        });
        let mut i = 0;
        self.appended.retain(|_| {
            i += 1;
            keep[i - 1]
        });
    }

    /// Retention: forgets the records below `offset`.
    pub fn truncate_before(&mut self, offset: i64) {
        let cut = self.entries.partition_point(|(o, _)| *o < offset);
        self.entries.drain(..cut);
        self.appended.drain(..cut);
    }
}

/// Every topic of the catalogue the pipeline uses, by name.
#[derive(Debug, Default)]
pub struct Topics {
    logs: HashMap<&'static str, Vec<Log>>,
}

impl Topics {
    /// The partitions of `name`, created on first use with the catalogue's count.
    pub fn partitions(&mut self, name: &'static str) -> &mut Vec<Log> {
        self.logs.entry(name).or_insert_with(|| {
            let spec = topic(name).unwrap_or_else(|| panic!("{name} is not in the catalogue"));
            (0..spec.partitions).map(|_| Log::default()).collect()
        })
    }

    pub fn log(&mut self, name: &'static str, partition: i32) -> &mut Log {
        &mut self.partitions(name)[partition as usize]
    }

    /// The log, if the topic has been used.
    pub fn peek(&self, name: &str, partition: i32) -> Option<&Log> {
        self.logs.get(name)?.get(partition as usize)
    }

    pub fn append(
        &mut self,
        name: &'static str,
        partition: i32,
        record: Rc<Record>,
        at: Millis,
    ) -> i64 {
        self.log(name, partition).append(record, at)
    }

    /// Records held over every topic (for the memory report).
    pub fn held(&self) -> usize {
        self.logs.values().flatten().map(Log::len).sum()
    }

    /// Cleans every compacted topic at `now`.
    pub fn compact_all(&mut self, active: usize, now: Millis) {
        for (name, logs) in &mut self.logs {
            if topic(name).is_some_and(|t| t.cleanup == Cleanup::Compact) {
                logs.iter_mut()
                    .for_each(|log| log.compact(active, now, COMPACTION_LAG_MS));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str, value: Option<&str>) -> Rc<Record> {
        Rc::new(Record {
            key: key.as_bytes().to_vec(),
            payload: value.map(|v| v.as_bytes().to_vec()),
            origin: None,
        })
    }

    fn offsets(log: &Log) -> Vec<i64> {
        log.from(0).iter().map(|(o, _)| *o).collect()
    }

    #[test]
    fn compaction_keeps_the_newest_of_each_key_with_its_offset() {
        let mut log = Log::default();
        for (k, v) in [("a", "1"), ("b", "1"), ("a", "2"), ("c", "1"), ("a", "3")] {
            log.append(record(k, Some(v)), 0);
        }
        log.compact(0, 100, 10);
        assert_eq!(offsets(&log), vec![1, 3, 4]);
        assert_eq!(log.end(), 5);
        assert!(log.get(2).is_none());
        assert_eq!(
            log.get(4).and_then(|r| r.payload.clone()),
            Some(b"3".to_vec())
        );
    }

    #[test]
    fn the_active_segment_is_never_cleaned_nor_supersedes_and_truncation_keeps_offsets() {
        let mut log = Log::default();
        for v in ["1", "2", "3", "4"] {
            log.append(record("a", Some(v)), 0);
        }
        log.compact(2, 100, 10);
        assert_eq!(
            offsets(&log),
            vec![1, 2, 3],
            "the two newest are active: only offset 1 supersedes offset 0"
        );
        log.truncate_before(2);
        assert_eq!(log.start(), 2);
        assert_eq!(log.from(0).len(), 2);
        log.compact(0, 100, 10);
        assert_eq!(offsets(&log), vec![3], "the times follow the truncation");
    }

    #[test]
    fn a_record_stays_while_the_one_that_supersedes_it_is_younger_than_the_lag() {
        let mut log = Log::default();
        log.append(record("a", Some("1")), 0);
        log.append(record("b", Some("1")), 5);
        log.append(record("a", Some("2")), 20);
        log.append(record("b", Some("2")), 30);
        log.compact(0, 29, 10);
        assert_eq!(offsets(&log), vec![0, 1, 2, 3], "offset 2 is 9 ms old");
        log.compact(0, 31, 10);
        assert_eq!(
            offsets(&log),
            vec![1, 2, 3],
            "offset 2 is 11 ms old, offset 3 1 ms"
        );
        log.compact(0, 41, 10);
        assert_eq!(offsets(&log), vec![2, 3]);
    }
}
