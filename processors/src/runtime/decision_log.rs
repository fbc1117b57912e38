//! The decision log (ARCHITECTURE §2, principle 4): per input partition, one batch's state
//! changes and encoded outputs, with the input offsets they cover, written to the changelog
//! partition of the same number *before* any output of the batch is produced.
//!
//! A batch record may be split into chunks (a record must stay under the broker's message
//! limit); the batch counts only once every chunk was read. Batches alternate between two sets
//! of keys (`__batch/<sequence mod 2>/<chunk>`), so compaction can remove a batch's chunks
//! only once the next batch of the same parity is written — by then the batch in between is
//! complete, and it is the one a restore uses.

use super::outgoing::Outgoing;
use jivapay_schemas::records::{
    ChangelogEntry, InputOffset, LoggedBatch, LoggedChange, LoggedOutput,
};
use jivapay_schemas::{CodecError, SchemaRegistry};
use std::collections::BTreeMap;

/// Most bytes of changes and outputs in one chunk: well under the 1 MB message limit of
/// librdkafka's producer and of the brokers, whatever the framing adds.
pub const CHUNK_BYTES: usize = 256 * 1024;

/// What a batch decided in one partition.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decisions {
    /// Every input offset the state covers after the batch, of this partition.
    pub covered: Vec<InputOffset>,
    pub changes: Vec<LoggedChange>,
    pub outputs: Vec<LoggedOutput>,
}

/// A batch as a restore found it in the log: complete.
#[derive(Debug, Clone, PartialEq)]
pub struct Logged {
    pub sequence: i64,
    /// The generation of the owner that logged it (`changelog::writer`), 0 when unknown.
    pub logged_by: i64,
    pub decisions: Decisions,
}

/// What the keys of decision-log chunks start with.
pub const CHUNK_PREFIX: &str = "__batch/";

/// The key of chunk `chunk` of batch `sequence`.
pub fn chunk_key(sequence: i64, chunk: i32) -> String {
    format!("{CHUNK_PREFIX}{}/{chunk}", sequence.rem_euclid(2))
}

/// The chunk records of batch `sequence` in changelog `partition`, in order. Chunk 0 carries
/// the covered offsets.
pub fn chunks(
    registry: &SchemaRegistry,
    changelog: &str,
    partition: i32,
    sequence: i64,
    writer: &str,
    decisions: Decisions,
    now: i64,
) -> Result<Vec<Outgoing>, CodecError> {
    let mut split: Vec<(Vec<LoggedChange>, Vec<LoggedOutput>)> = vec![Default::default()];
    let mut bytes = 0;
    let mut room = |size: usize, split: &mut Vec<(Vec<LoggedChange>, Vec<LoggedOutput>)>| {
        let last = split.last().expect("one chunk at least");
        if bytes + size > CHUNK_BYTES && !(last.0.is_empty() && last.1.is_empty()) {
            split.push(Default::default());
            bytes = 0;
        }
        bytes += size;
    };
    for change in decisions.changes {
        room(
            change.state_key.len() + change.state.as_ref().map_or(0, Vec::len),
            &mut split,
        );
        split.last_mut().expect("one chunk").0.push(change);
    }
    for output in decisions.outputs {
        room(
            output.topic.len() + output.key.len() + output.payload.len(),
            &mut split,
        );
        split.last_mut().expect("one chunk").1.push(output);
    }
    let count = split.len() as i32;
    let mut covered = Some(decisions.covered);
    split
        .into_iter()
        .zip(0..)
        .map(|((changes, outputs), chunk)| {
            let key = chunk_key(sequence, chunk);
            let entry = ChangelogEntry {
                state_key: key.clone(),
                state: None,
                state_schema_id: None,
                covered_offsets: covered.take().unwrap_or_default(),
                marker: None,
                written_at: now,
                writer: Some(writer.to_owned()),
                batch: Some(LoggedBatch {
                    sequence,
                    chunk,
                    chunks: count,
                    changes,
                    outputs,
                }),
            };
            Ok(Outgoing {
                topic: changelog.to_owned(),
                partition: Some(partition),
                key: registry.encode_key(&key),
                payload: registry.encode(&entry)?,
                origin: None,
            })
        })
        .collect()
}

/// Assembles the newest complete batch of one partition from the chunks a restore reads, in
/// log order. Holds at most one batch being assembled and one complete one, whatever the
/// length of the log.
#[derive(Debug, Default)]
pub struct NewestBatch {
    assembling: Option<Assembling>,
    complete: Option<Logged>,
}

/// The chunks read so far of one batch, by chunk number, each with its entry's covered offsets.
#[derive(Debug)]
struct Assembling {
    sequence: i64,
    logged_by: i64,
    parts: BTreeMap<i32, (Vec<InputOffset>, LoggedBatch)>,
}

impl NewestBatch {
    /// One chunk read from the log, with the entry's covered offsets and the generation of
    /// its writer.
    pub fn read(&mut self, covered: Vec<InputOffset>, chunk: LoggedBatch, logged_by: i64) {
        if self
            .complete
            .as_ref()
            .is_some_and(|c| chunk.sequence <= c.sequence)
        {
            return; // an older batch's chunk, still in an uncompacted log
        }
        let (sequence, chunks) = (chunk.sequence, chunk.chunks);
        let assembling = match &mut self.assembling {
            // Chunks of one writer only: a fenced owner's chunk of the same sequence, left
            // over by compaction, never completes its successor's batch.
            Some(a) if a.sequence == sequence && a.logged_by == logged_by => a,
            Some(a) if a.sequence > sequence => return,
            _ => self.assembling.insert(Assembling {
                sequence,
                logged_by,
                parts: BTreeMap::new(),
            }),
        };
        assembling.parts.insert(chunk.chunk, (covered, chunk));
        if assembling.parts.len() as i32 >= chunks {
            let Assembling {
                sequence,
                logged_by,
                parts,
            } = self.assembling.take().expect("assembling");
            let mut decisions = Decisions::default();
            for (n, (covered, part)) in parts {
                if n == 0 {
                    decisions.covered = covered;
                }
                decisions.changes.extend(part.changes);
                decisions.outputs.extend(part.outputs);
            }
            self.complete = Some(Logged {
                sequence,
                logged_by,
                decisions,
            });
        }
    }

    /// The newest complete batch read.
    pub fn finish(self) -> Option<Logged> {
        self.complete
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(n: u8, size: usize) -> LoggedOutput {
        LoggedOutput {
            topic: "orders.events".into(),
            key: vec![n],
            payload: vec![n; size],
        }
    }

    fn decode(
        registry: &SchemaRegistry,
        records: &[Outgoing],
    ) -> Vec<(Vec<InputOffset>, LoggedBatch)> {
        records
            .iter()
            .map(|r| {
                let entry: ChangelogEntry = registry.decode(&r.payload).unwrap();
                (entry.covered_offsets, entry.batch.unwrap())
            })
            .collect()
    }

    fn covered() -> Vec<InputOffset> {
        vec![InputOffset {
            topic: "orders.routed".into(),
            partition: 2,
            offset: 17,
        }]
    }

    #[test]
    fn a_large_batch_is_split_and_counts_only_when_every_chunk_was_read() {
        let registry = SchemaRegistry::builtin().unwrap();
        let decisions = Decisions {
            covered: covered(),
            changes: vec![],
            outputs: (0..5).map(|n| output(n, CHUNK_BYTES / 2 - 64)).collect(),
        };
        let records = chunks(&registry, "x.changelog", 2, 7, "w", decisions.clone(), 0).unwrap();
        assert_eq!(records.len(), 3, "two outputs of half a chunk fit in one");
        assert!(records.iter().all(|r| r.partition == Some(2)));
        let parts = decode(&registry, &records);

        let mut newest = NewestBatch::default();
        for (covered, part) in parts.iter().take(2).cloned() {
            newest.read(covered, part, 3);
        }
        assert_eq!(newest.finish(), None, "a chunk is missing");

        let mut newest = NewestBatch::default();
        for (covered, part) in parts.into_iter().rev() {
            newest.read(covered, part, 3);
        }
        assert_eq!(
            newest.finish(),
            Some(Logged {
                sequence: 7,
                logged_by: 3,
                decisions
            })
        );
    }

    #[test]
    fn the_newest_complete_batch_wins_and_an_incomplete_newer_one_is_ignored() {
        let registry = SchemaRegistry::builtin().unwrap();
        let batch = |sequence: i64, outputs: Vec<LoggedOutput>| {
            let decisions = Decisions {
                covered: covered(),
                changes: vec![],
                outputs,
            };
            decode(
                &registry,
                &chunks(&registry, "x.changelog", 0, sequence, "w", decisions, 0).unwrap(),
            )
        };
        let mut newest = NewestBatch::default();
        for (covered, part) in batch(1, vec![output(1, 10)]) {
            newest.read(covered, part, 3);
        }
        for (covered, part) in batch(2, vec![output(2, 10)]) {
            newest.read(covered, part, 3);
        }
        let third = batch(3, vec![output(3, CHUNK_BYTES), output(4, CHUNK_BYTES)]);
        assert_eq!(third.len(), 2);
        let (covered, part) = third[0].clone();
        newest.read(covered, part, 3);
        // An older chunk read late (an uncompacted log) changes nothing.
        for (covered, part) in batch(1, vec![output(9, 10)]) {
            newest.read(covered, part, 3);
        }
        let found = newest.finish().unwrap();
        assert_eq!(found.sequence, 2);
        assert_eq!(found.decisions.outputs, vec![output(2, 10)]);
        assert_eq!(chunk_key(2, 0), "__batch/0/0");
        assert_eq!(chunk_key(3, 1), "__batch/1/1");
    }

    #[test]
    fn a_chunk_of_another_writer_never_completes_a_batch() {
        let registry = SchemaRegistry::builtin().unwrap();
        let two_chunks = Decisions {
            covered: covered(),
            changes: vec![],
            outputs: vec![output(1, CHUNK_BYTES), output(2, CHUNK_BYTES)],
        };
        let fenced = decode(
            &registry,
            &chunks(&registry, "x.changelog", 0, 5, "w", two_chunks, 0).unwrap(),
        );
        let one_chunk = Decisions {
            covered: covered(),
            ..Decisions::default()
        };
        let successor = decode(
            &registry,
            &chunks(&registry, "x.changelog", 0, 5, "w", one_chunk.clone(), 0).unwrap(),
        );
        let mut newest = NewestBatch::default();
        // Chunk 1 of a fenced owner's batch 5 (generation 3), left over by compaction, then
        // the successor's (generation 8) checkpoint batch 5 in one chunk.
        let (covered, part) = fenced[1].clone();
        newest.read(covered, part, 3);
        for (covered, part) in successor {
            newest.read(covered, part, 8);
        }
        assert_eq!(
            newest.finish(),
            Some(Logged {
                sequence: 5,
                logged_by: 8,
                decisions: one_chunk
            }),
            "the fenced owner's outputs are not part of the successor's batch"
        );
    }
}
