//! The decision log and the changelog restore, record for record as the runtime writes and
//! reads them (`runtime/decision_log.rs`, `runtime/changelog.rs`, `runtime/outgoing.rs`):
//!
//! - a batch record (`__batch/<sequence mod 2>/0`, writer `<marker>@<generation>`) with the
//!   covered offsets, the state changes and the encoded outputs — in one chunk, since the
//!   simulation's batches are far below the 256 KiB a chunk holds;
//! - one state record per changed key (writer `@<generation>`), on the partition its key
//!   routes to (trackers of origins name theirs);
//! - a restore marker (key `""`) whose offset is the new owner's generation;
//! - a lease record (key `__lease`, writer `<marker>@<generation>`): an idle owner's write,
//!   only there to find out whether anyone else wrote to its partition (`runtime.rs`).
//!
//! A restore reads its partition from the start up to its own marker (the simulated broker
//! never under-reports an end, but the marker is what fences older owners), ignores records of
//! generations older than a marker or generation read before them, loads state records into
//! the processor or the origins trackers (lease records count for the fence only), then
//! applies the newest complete batch over them.
//!
//! A fenced owner's record can be the newest of its key: ignored by the restore, but it is
//! what compaction keeps, and the valid record before it goes. So the restore also notes, per
//! key, whether its last record was fenced, and the new owner writes those keys again at its
//! own generation ([`repair`]): a state key with its last valid value; the decision log with a
//! *checkpoint* — an empty batch, a sequence above every batch read (fenced ones too, so it
//! wins even once the cleaner removed the marker that fenced the late batch), the restored
//! covered offsets. The compaction lag keeps the valid records until then (`topics.rs`).

use crate::codec;
use crate::processors::AnyProcessor;
use crate::topics::{Log, Record};
use jivapay_processors::runtime::origins::Origins;
use jivapay_processors::runtime::state_entry;
use jivapay_schemas::records::{
    ChangelogEntry, InputOffset, LoggedBatch, LoggedChange, LoggedOutput,
};
use jivapay_schemas::{CodecError, SchemaRegistry};
use std::collections::{BTreeMap, BTreeSet};

pub use jivapay_processors::runtime::LEASE_KEY;

/// The key prefix of decision-log records (`decision_log::chunk_key`).
const BATCH_PREFIX: &str = "__batch/";

/// The key of chunk 0 of batch `sequence`.
fn batch_key(sequence: i64) -> String {
    format!("{BATCH_PREFIX}{}/0", sequence.rem_euclid(2))
}

/// The writer id on what an owner of `generation` writes (`changelog::writer`).
pub fn writer(marker: &str, generation: i64) -> String {
    format!("{marker}@{generation}")
}

fn generation_of(writer: Option<&str>) -> Option<i64> {
    writer?.rsplit_once('@')?.1.parse().ok()
}

/// The record of batch `sequence` of one partition.
#[allow(clippy::too_many_arguments)]
pub fn batch_record(
    registry: &SchemaRegistry,
    sequence: i64,
    writer: &str,
    covered: Vec<InputOffset>,
    changes: Vec<LoggedChange>,
    outputs: Vec<LoggedOutput>,
    now: i64,
) -> Result<Record, CodecError> {
    let key = batch_key(sequence);
    let entry = ChangelogEntry {
        state_key: key.clone(),
        state: None,
        state_schema_id: None,
        covered_offsets: covered,
        marker: None,
        written_at: now,
        writer: Some(writer.to_owned()),
        batch: Some(LoggedBatch {
            sequence,
            chunk: 0,
            chunks: 1,
            changes,
            outputs,
        }),
    };
    Ok(Record {
        key: registry.encode_key(&key),
        payload: Some(registry.encode(&entry)?),
        origin: None,
    })
}

/// The state record of one change and the changelog partition it goes to.
pub fn state_record(
    registry: &SchemaRegistry,
    change: &LoggedChange,
    generation: i64,
    now: i64,
) -> Result<(i32, Record), CodecError> {
    let entry = state_entry(
        &change.state_key,
        change.state.clone(),
        &writer("", generation),
        now,
    );
    let record = Record {
        key: registry.encode_key(&change.state_key),
        payload: Some(registry.encode(&entry)?),
        origin: None,
    };
    Ok((codec::state_partition(registry, &change.state_key), record))
}

/// A restore marker.
pub fn marker_record(
    registry: &SchemaRegistry,
    marker: &str,
    now: i64,
) -> Result<Record, CodecError> {
    let entry = ChangelogEntry {
        state_key: String::new(),
        state: None,
        state_schema_id: None,
        covered_offsets: vec![],
        marker: Some(marker.to_owned()),
        written_at: now,
        writer: Some(marker.to_owned()),
        batch: None,
    };
    Ok(Record {
        key: registry.encode_key(""),
        payload: Some(registry.encode(&entry)?),
        origin: None,
    })
}

/// A lease record of the owner `writer` (`writer(marker, generation)`).
pub fn lease_record(
    registry: &SchemaRegistry,
    writer: &str,
    now: i64,
) -> Result<Record, CodecError> {
    let entry = state_entry(LEASE_KEY, None, writer, now);
    Ok(Record {
        key: registry.encode_key(LEASE_KEY),
        payload: Some(registry.encode(&entry)?),
        origin: None,
    })
}

/// The newest logged batch of a partition, as a restore finds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Logged {
    pub sequence: i64,
    pub logged_by: i64,
    pub covered: Vec<InputOffset>,
    pub changes: Vec<LoggedChange>,
    pub outputs: Vec<LoggedOutput>,
}

/// One partition rebuilt from its changelog.
pub struct Restored {
    pub processor: AnyProcessor,
    pub origins: Origins,
    /// Per input topic, the next offset to apply.
    pub covered: BTreeMap<String, i64>,
    pub logged: Option<Logged>,
    pub generation: i64,
    /// Every key the restore loaded, with its final value (`None`: deleted): what the replay
    /// compares with its own history.
    pub state: BTreeMap<String, Option<Vec<u8>>>,
    /// Records ignored as written by a fenced owner.
    pub fenced: usize,
    /// The keys whose newest record a fenced owner wrote.
    pub repair: Repair,
}

/// What fenced owners left on top of a partition: the keys whose last record read before the
/// marker was fenced.
#[derive(Debug, Default)]
pub struct Repair {
    /// State keys (neither leases nor changed by the newest logged batch, whose resend writes
    /// them), each with its last valid value (`None`: deleted, or never validly written).
    pub state: Vec<LoggedChange>,
    /// Decision-log keys.
    pub batches: BTreeSet<String>,
    /// The highest sequence of a fenced batch newest of its key.
    pub fenced_sequence: Option<i64>,
}

/// The records that repair a restored partition, and the sequence of its checkpoint if it
/// needs one.
pub struct Repaired {
    pub records: Vec<Record>,
    /// State keys written again.
    pub rewritten: usize,
    pub checkpoint: Option<i64>,
}

/// The records the new owner (`writer`, `generation`) writes after restoring `restored` of
/// changelog partition `partition` — after the logged batch's state records it sends again:
/// each state key of [`Repair::state`] with its last valid value; if a fenced batch record
/// is the newest of its key, a checkpoint batch (a sequence above the newest valid one and
/// every fenced one, the restored covered offsets, nothing else) that supersedes every logged
/// batch — its changes are written by then (`processors/src/runtime/run.rs`
/// `Worker::repair_records`).
pub fn repair(
    registry: &SchemaRegistry,
    restored: &Restored,
    partition: i32,
    writer: &str,
    generation: i64,
    now: i64,
) -> Result<Repaired, CodecError> {
    let mut records = Vec::new();
    for change in &restored.repair.state {
        records.push(state_record(registry, change, generation, now)?.1);
    }
    let mut repaired = Repaired {
        records,
        rewritten: restored.repair.state.len(),
        checkpoint: None,
    };
    if restored.repair.batches.is_empty() {
        return Ok(repaired);
    }
    let valid = restored.logged.as_ref().map_or(0, |l| l.sequence);
    let sequence = valid.max(restored.repair.fenced_sequence.unwrap_or(0)) + 1;
    let covered = restored
        .covered
        .iter()
        .map(|(topic, offset)| InputOffset {
            topic: topic.clone(),
            partition,
            offset: *offset,
        })
        .collect();
    let checkpoint = batch_record(registry, sequence, writer, covered, vec![], vec![], now)?;
    repaired.records.push(checkpoint);
    repaired.checkpoint = Some(sequence);
    Ok(repaired)
}

/// The last record of a key read by a restore: whether a fenced owner wrote it.
struct Last {
    fenced: bool,
    batch: bool,
    /// A fenced batch's sequence.
    sequence: Option<i64>,
}

/// Rebuilds `processor` from `log`, reading up to the marker at `marker_offset` (the
/// restoring owner's generation). A record that does not decode is reported as an error: in
/// the simulation nothing writes one.
pub fn restore(
    registry: &SchemaRegistry,
    log: &Log,
    marker_offset: i64,
    processor: AnyProcessor,
) -> Result<Restored, String> {
    let mut restored = Restored {
        processor,
        origins: Origins::default(),
        covered: BTreeMap::new(),
        logged: None,
        generation: marker_offset,
        state: BTreeMap::new(),
        fenced: 0,
        repair: Repair::default(),
    };
    let mut newest: Option<Logged> = None;
    let mut fence = i64::MIN;
    let mut last: BTreeMap<String, Last> = BTreeMap::new();
    // Per state key, its last valid value.
    let mut valid: BTreeMap<String, Option<Vec<u8>>> = BTreeMap::new();
    for (offset, record) in log.from(0) {
        if *offset > marker_offset {
            break; // written after this restore's marker: never applied
        }
        let Some(payload) = &record.payload else {
            // A tombstone: nothing left of its key.
            if let Some(last) = registry
                .decode_key(&record.key)
                .ok()
                .and_then(|key| last.get_mut(&key))
            {
                last.fenced = false;
            }
            continue;
        };
        let entry: ChangelogEntry = registry
            .decode(payload)
            .map_err(|e| format!("changelog record at offset {offset} does not decode: {e}"))?;
        if entry.marker.is_some() {
            fence = fence.max(*offset);
            continue;
        }
        let generation = generation_of(entry.writer.as_deref());
        let fenced = generation.is_some_and(|g| g < fence);
        let batch = entry.batch.is_some();
        let sequence = entry.batch.as_ref().filter(|_| fenced).map(|b| b.sequence);
        let last_of_key = Last {
            fenced,
            batch,
            sequence,
        };
        last.insert(entry.state_key.clone(), last_of_key);
        if fenced {
            restored.fenced += 1;
            continue;
        }
        fence = fence.max(generation.unwrap_or(i64::MIN));
        if entry.state_key == LEASE_KEY {
            continue; // counts for the fence only
        }
        if let Some(batch) = entry.batch {
            // One chunk per batch: complete as read. The newest sequence wins; of two with the
            // same sequence, the first read (`NewestBatch::read`).
            if newest.as_ref().is_none_or(|n| batch.sequence > n.sequence) {
                newest = Some(Logged {
                    sequence: batch.sequence,
                    logged_by: generation.unwrap_or(0),
                    covered: entry.covered_offsets,
                    changes: batch.changes,
                    outputs: batch.outputs,
                });
            }
            continue;
        }
        restore_key(&mut restored, &entry.state_key, entry.state.as_deref());
        valid.insert(entry.state_key, entry.state);
    }
    let resent: BTreeSet<&str> = newest
        .iter()
        .flat_map(|l| l.changes.iter().map(|c| c.state_key.as_str()))
        .collect();
    for (key, last) in &last {
        if !last.fenced || key == LEASE_KEY {
            continue;
        }
        if last.batch || key.starts_with(BATCH_PREFIX) {
            restored.repair.batches.insert(key.clone());
            let repair = &mut restored.repair;
            repair.fenced_sequence = repair.fenced_sequence.max(last.sequence);
        } else if !resent.contains(key.as_str()) {
            restored.repair.state.push(LoggedChange {
                state_key: key.clone(),
                state: valid.get(key).cloned().flatten(),
            });
        }
    }
    if let Some(logged) = &newest {
        for change in &logged.changes {
            restore_key(&mut restored, &change.state_key, change.state.as_deref());
        }
        for covered in &logged.covered {
            let slot = restored.covered.entry(covered.topic.clone()).or_insert(0);
            *slot = (*slot).max(covered.offset);
        }
    }
    restored.logged = newest;
    Ok(restored)
}

fn restore_key(restored: &mut Restored, key: &str, state: Option<&[u8]>) {
    restored
        .state
        .insert(key.to_owned(), state.map(<[u8]>::to_vec));
    if !restored.origins.restore(key, state) {
        restored.processor.get().restore(key, state);
    }
}

/// What a changelog partition still holds of `key`, and its restore markers: for a report.
pub fn history(registry: &SchemaRegistry, log: &Log, key: &str) -> String {
    let wanted = registry.encode_key(key);
    let marker = registry.encode_key("");
    let held: Vec<String> = log
        .from(0)
        .iter()
        .filter(|(_, r)| r.key == wanted || r.key == marker)
        .map(|(offset, r)| {
            let entry = r
                .payload
                .as_deref()
                .and_then(|p| registry.decode::<ChangelogEntry>(p).ok());
            match entry {
                Some(e) if e.marker.is_some() => format!("{offset}: restore marker"),
                Some(e) => format!(
                    "{offset}: {} by {}",
                    e.state
                        .map_or("tombstone".to_owned(), |s| format!("{} bytes", s.len())),
                    e.writer.unwrap_or_default()
                ),
                None => format!("{offset}: tombstone"),
            }
        })
        .collect();
    format!("the changelog holds of {key}: {}", held.join("; "))
}
