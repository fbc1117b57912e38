//! Topics in memory: one append-only log per partition, with offsets as Kafka gives them.
//!
//! A record is what the broker would hold: the key and value bytes exactly as encoded
//! (Confluent wire format), and the `jivapay-origin` header of a processor's output. Compacted
//! topics (the changelogs) are cleaned like Kafka's log cleaner cleans them: a record is
//! removed once a later record has the same key, offsets of the survivors unchanged, the
//! newest records (the active segment) never touched, tombstones kept.
//! Streams drop what every reader is past (`truncate_before`), as retention would.

use jivapay_schemas::topics::{topic, Cleanup};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

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
    next: i64,
}

impl Log {
    /// Appends `record`; returns its offset.
    pub fn append(&mut self, record: Rc<Record>) -> i64 {
        let offset = self.next;
        self.entries.push((offset, record));
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

    /// Kafka's log cleaner: every record but the newest `active` ones is removed when a later
    /// record has the same key.
    pub fn compact(&mut self, active: usize) {
        let clean_until = self.entries.len().saturating_sub(active);
        let mut newer: HashSet<&[u8]> = HashSet::new();
        let mut keep = vec![true; self.entries.len()];
        for (i, (_, record)) in self.entries.iter().enumerate().rev() {
            let seen = !newer.insert(record.key.as_slice());
            if seen && i < clean_until {
                keep[i] = false;
            }
        }
        let mut i = 0;
        self.entries.retain(|_| {
            i += 1;
            keep[i - 1]
        });
    }

    /// Retention: forgets the records below `offset`.
    pub fn truncate_before(&mut self, offset: i64) {
        let cut = self.entries.partition_point(|(o, _)| *o < offset);
        self.entries.drain(..cut);
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

    pub fn append(&mut self, name: &'static str, partition: i32, record: Rc<Record>) -> i64 {
        self.log(name, partition).append(record)
    }

    /// Records held over every topic (for the memory report).
    pub fn held(&self) -> usize {
        self.logs.values().flatten().map(Log::len).sum()
    }

    /// Cleans every compacted topic.
    pub fn compact_all(&mut self, active: usize) {
        for (name, logs) in &mut self.logs {
            if topic(name).is_some_and(|t| t.cleanup == Cleanup::Compact) {
                logs.iter_mut().for_each(|log| log.compact(active));
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

    #[test]
    fn compaction_keeps_the_newest_of_each_key_with_its_offset() {
        let mut log = Log::default();
        for (k, v) in [("a", "1"), ("b", "1"), ("a", "2"), ("c", "1"), ("a", "3")] {
            log.append(record(k, Some(v)));
        }
        log.compact(1);
        let left: Vec<i64> = log.from(0).iter().map(|(o, _)| *o).collect();
        assert_eq!(left, vec![1, 3, 4]);
        assert_eq!(log.end(), 5);
        assert!(log.get(2).is_none());
        assert_eq!(
            log.get(4).and_then(|r| r.payload.clone()),
            Some(b"3".to_vec())
        );
    }

    #[test]
    fn the_active_segment_is_never_cleaned_and_truncation_keeps_offsets() {
        let mut log = Log::default();
        for v in ["1", "2", "3"] {
            log.append(record("a", Some(v)));
        }
        log.compact(2);
        assert_eq!(log.len(), 2, "the two newest are active");
        log.truncate_before(2);
        assert_eq!(log.start(), 2);
        assert_eq!(log.from(0).len(), 1);
    }
}
