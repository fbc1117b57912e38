//! One batch's end for one partition: what it decided, and how that becomes the records the
//! loop sends — its decision log, outputs with their origins, state records, offsets.

use super::changelog::{writer, Restored};
use super::decision_log::{self, Decisions, Logged};
use super::origins::{Origin, Origins};
use super::outgoing;
use super::outgoing::Outgoing;
use super::RuntimeError;
use crate::core::{Emit, Millis, Processor};
use jivapay_schemas::records::{InputOffset, LoggedChange};
use jivapay_schemas::SchemaRegistry;
use std::collections::BTreeMap;
use std::time::Instant;

/// One owned partition: its processor and what its state covers.
pub(super) struct Partition<P> {
    pub processor: P,
    /// Per input topic, the next offset to apply (anything below it is covered by the state).
    pub covered: BTreeMap<String, i64>,
    /// The sequence of the last logged batch.
    pub sequence: i64,
    /// This owner's generation (`changelog.rs`): on all it writes, fencing off older owners.
    pub generation: i64,
    /// What it knows of the processors its inputs come from (`origins.rs`).
    pub origins: Origins,
    /// The offset its next changelog record must land at (`ownership.rs`).
    pub changelog_next: i64,
    /// When it last wrote to the changelog (an idle partition writes a lease record).
    pub last_write: Instant,
}

/// What a batch applied so far, per partition.
#[derive(Default)]
pub(super) struct Applied {
    pub(super) work: BTreeMap<i32, Work>,
}

/// One partition's share of a batch: its outputs and the next offset of each input read.
#[derive(Default)]
pub(super) struct Work {
    pub(super) outputs: Vec<Emit>,
    pub(super) positions: BTreeMap<String, i64>,
    /// Whether a record other than a time marker was read.
    pub(super) decided: bool,
}

/// The end of a batch for one partition: its timers (when due), `finish_batch`, its state
/// changes. `None` when the partition has nothing to log.
#[allow(clippy::type_complexity)]
pub(super) fn decide<P: Processor>(
    number: i32,
    partition: &mut Partition<P>,
    mut work: Work,
    tick: bool,
    now: Millis,
) -> Option<(Vec<Emit>, Vec<LoggedChange>, BTreeMap<String, i64>)> {
    if tick {
        work.outputs.extend(partition.processor.tick(now));
    }
    work.outputs.extend(partition.processor.finish_batch(now));
    let changes = partition.processor.take_changes();
    let changes: Vec<LoggedChange> = changes
        .into_iter()
        .map(|(state_key, state)| LoggedChange { state_key, state })
        .chain(partition.origins.take_changes(number))
        .collect();
    if work.outputs.is_empty() && changes.is_empty() && work.positions.is_empty() {
        return None;
    }
    Some((work.outputs, changes, work.positions))
}

/// The records a batch sends, in the order it sends them.
#[derive(Default)]
pub(super) struct Sends {
    pub(super) log: Vec<Outgoing>,
    pub(super) outputs: Vec<Outgoing>,
    pub(super) state: Vec<Outgoing>,
    pub(super) commit: Vec<(String, i32, i64)>,
}

/// How one partition's decisions become records.
pub(super) struct Plan<'a> {
    pub(super) registry: &'a SchemaRegistry,
    pub(super) changelog: &'a str,
    pub(super) changelog_partitions: i32,
    /// The processor's name, on the origin of its outputs.
    pub(super) name: &'static str,
    pub(super) marker: &'a str,
    pub(super) now: Millis,
}

impl Plan<'_> {
    /// Adds one partition's decisions to `sends`: the next batch of its decision log, its
    /// outputs, its state records and the offsets to commit.
    pub(super) fn add<P>(
        &self,
        sends: &mut Sends,
        number: i32,
        partition: &mut Partition<P>,
        outputs: Vec<Emit>,
        changes: Vec<LoggedChange>,
        positions: BTreeMap<String, i64>,
    ) -> Result<(), RuntimeError> {
        let mut outputs = outgoing::outputs(self.registry, &outputs)?;
        let state = outgoing::state_records(
            self.registry,
            self.changelog,
            self.changelog_partitions,
            &changes,
            &writer("", partition.generation),
            self.now,
        )?;
        if let Some((record, change)) = state
            .iter()
            .zip(&changes)
            .find(|(record, _)| record.partition != Some(number))
        {
            return Err(RuntimeError::Misrouted {
                key: change.state_key.clone(),
                partition: number,
                belongs: record.partition.unwrap_or_default(),
            });
        }
        for (topic, next) in &positions {
            // Never backwards: a restored consumer starts at its committed offset, which can be
            // behind what the log covers, and re-reads covered records (skipped) before new
            // ones. Found by the simulation (sim/, seed 106).
            let covered = partition.covered.entry(topic.clone()).or_insert(*next);
            *covered = (*covered).max(*next);
            sends.commit.push((topic.clone(), number, *covered));
        }
        let decisions = Decisions {
            covered: covered_offsets(number, &partition.covered),
            changes,
            outputs: outputs.iter().map(Outgoing::logged).collect(),
        };
        partition.sequence += 1;
        outgoing::with_origins(
            &mut outputs,
            &Origin {
                source: self.name.to_owned(),
                partition: number,
                sender: partition.generation,
                logged_by: partition.generation,
                sequence: partition.sequence,
                index: 0,
            },
        );
        sends.log.extend(decision_log::chunks(
            self.registry,
            self.changelog,
            number,
            partition.sequence,
            &writer(self.marker, partition.generation),
            decisions,
            self.now,
        )?);
        sends.outputs.extend(outputs);
        sends.state.extend(state);
        Ok(())
    }
}

pub(super) fn covered_offsets(partition: i32, covered: &BTreeMap<String, i64>) -> Vec<InputOffset> {
    covered
        .iter()
        .map(|(topic, offset)| InputOffset {
            topic: topic.clone(),
            partition,
            offset: *offset,
        })
        .collect()
}

/// The restored processors with what their state covers, the sequence of their last
/// logged batch, this owner's generation and the trackers of their sources.
pub(super) fn partitions_of<P>(
    mut restored: Restored<P>,
    logged: &BTreeMap<i32, Logged>,
) -> BTreeMap<i32, Partition<P>> {
    let covered = &restored.covered;
    std::mem::take(&mut restored.processors)
        .into_iter()
        .map(|(number, processor)| {
            let covered = covered
                .iter()
                .filter(|((_, p), _)| *p == number)
                .map(|((topic, _), offset)| (topic.clone(), *offset))
                .collect();
            let sequence = logged.get(&number).map_or(0, |l| l.sequence);
            let generation = restored.generations.get(&number).copied().unwrap_or(0);
            let origins = restored.origins.remove(&number).unwrap_or_default();
            (
                number,
                Partition {
                    processor,
                    covered,
                    sequence,
                    generation,
                    origins,
                    // Its restore marker landed at its generation.
                    changelog_next: generation + 1,
                    last_write: Instant::now(),
                },
            )
        })
        .collect()
}
