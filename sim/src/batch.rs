//! The end of a batch (`processors/src/runtime/batch.rs` and `run.rs`): per partition,
//! `tick`, `finish_batch` and the state changes become the next decision-log record, the
//! outputs with their origins and the state records; then the steps that send them — the
//! decision log, the outputs, the state records, the commit — each a place where a crash or
//! a freeze can strike. The changelog writes are checked (`runtime.rs`, disturbed owners):
//! a disturbed decision log stops the batch before its outputs, disturbed state records
//! before its commit.

use crate::changelog;
use crate::codec;
use crate::env::Env;
use crate::faults::{Point, Strike};
use crate::processors::end_batch;
use crate::runtime::{append_own, End, Instance, Logged, Pending, Stage, Work};
use crate::shadow::Entry;
use crate::topics::Record;
use jivapay_processors::core::Millis;
use jivapay_processors::runtime::origins::Origin;
use jivapay_schemas::records::InputOffset;
use std::collections::BTreeMap;
use std::rc::Rc;

/// `decide` and `Plan::add`: the end of a batch for one partition.
#[allow(clippy::too_many_arguments)]
pub(crate) fn decide(
    instance: &mut Instance,
    env: &mut Env,
    number: i32,
    mut w: Work,
    tick: bool,
    now: Millis,
    version: usize,
    pending: &mut Pending,
) -> Result<(), (&'static str, String)> {
    let kind = instance.kind;
    let marker = instance.marker.clone();
    let owned = instance.owned.get_mut(&number).expect("owned partition");
    let changes = end_batch(
        &mut owned.processor,
        &mut owned.origins,
        number,
        tick,
        now,
        &mut w.outputs,
    );
    let outputs = codec::outputs(&env.registry, &w.outputs).map_err(|e| {
        (
            "decodable",
            format!("{} output does not encode: {e}", kind.name()),
        )
    })?;
    let called = tick || !w.consumed.is_empty();
    if called {
        owned.journal.push(Entry {
            consumed: std::mem::take(&mut w.consumed),
            now,
            tick,
            version,
            outputs: outputs.clone(),
            changes: changes.clone(),
        });
    }
    if outputs.is_empty() && changes.is_empty() && w.positions.is_empty() {
        return Ok(());
    }
    if !w.decided && outputs.is_empty() && changes.is_empty() {
        // Time markers and duplicates decide nothing: their offsets are committed, not logged.
        for (topic, next) in w.positions {
            pending.commit.push((topic, number, next));
        }
        pending
            .commit_only
            .push((number, std::mem::take(&mut owned.journal)));
        return Ok(());
    }
    let mut state = Vec::with_capacity(changes.len());
    for change in &changes {
        let (partition, record) =
            changelog::state_record(&env.registry, change, owned.generation, now)
                .map_err(|e| ("decodable", format!("state record does not encode: {e}")))?;
        if partition != number {
            // The runtime stops with `RuntimeError::Misrouted`: that state would be restored
            // by another partition's owner.
            return Err((
                "state_routed_home",
                format!(
                    "{} partition {number} changed key {} of partition {partition}",
                    kind.name(),
                    change.state_key
                ),
            ));
        }
        state.push((partition, Rc::new(record)));
    }
    for (topic, next) in &w.positions {
        // Never backwards (`Plan::add`, ff66658): a restored consumer starts at its committed
        // offset, which can be behind what the log covers, and re-reads covered records.
        let covered = owned.covered.entry((*topic).to_owned()).or_insert(*next);
        *covered = (*covered).max(*next);
        pending.commit.push((topic, number, *covered));
    }
    let covered: Vec<InputOffset> = owned
        .covered
        .iter()
        .map(|(topic, offset)| InputOffset {
            topic: topic.clone(),
            partition: number,
            offset: *offset,
        })
        .collect();
    owned.sequence += 1;
    let origin = Origin {
        source: kind.name().to_owned(),
        partition: number,
        sender: owned.generation,
        logged_by: owned.generation,
        sequence: owned.sequence,
        index: 0,
    };
    pending
        .outputs
        .extend(codec::output_records(&outputs, &origin));
    let log = changelog::batch_record(
        &env.registry,
        owned.sequence,
        &changelog::writer(&marker, owned.generation),
        covered,
        changes,
        outputs,
        now,
    )
    .map_err(|e| {
        (
            "decodable",
            format!("decision log record does not encode: {e}"),
        )
    })?;
    pending.logged.push(Logged {
        partition: number,
        generation: owned.generation,
        sequence: owned.sequence,
        record: Rc::new(log),
        entries: std::mem::take(&mut owned.journal),
    });
    pending.state.extend(state);
    Ok(())
}

/// Runs the pending batch's remaining steps; `strike` stops it at its point.
pub fn advance(
    instance: &mut Instance,
    committed: &mut BTreeMap<(&'static str, i32), i64>,
    group_generation: u64,
    env: &mut Env,
    strike: Strike,
) -> End {
    let kind = instance.kind;
    // The instance's clock as it writes (a frozen batch writes when it resumes).
    let now = env.now + instance.skew;
    let stop = |point: Point| match strike {
        Strike::Crash(p) if p == point => Some(End::Crashed(p)),
        Strike::Freeze(p, ms) if p == point => Some(End::Frozen(ms)),
        _ => None,
    };
    loop {
        let Some(pending) = instance.pending.as_mut() else {
            return End::Done(true);
        };
        match pending.stage {
            Stage::Log => {
                if let Some(end) = stop(Point::BeforeLog) {
                    return end;
                }
                if pending.logged.is_empty() {
                    pending.stage = Stage::Commit;
                    continue;
                }
                let logged = std::mem::take(&mut pending.logged);
                let mid = strike == Strike::Crash(Point::MidLog);
                let mut disturbed = None;
                for batch in logged {
                    let Logged {
                        partition: number,
                        generation,
                        sequence,
                        record,
                        entries,
                    } = batch;
                    if mid && env.fault_rng.chance(0.5) {
                        continue;
                    }
                    env.trace(kind, number, || {
                        format!(
                            "instance {} logs batch {sequence} as generation {generation}",
                            instance.id
                        )
                    });
                    if !append_own(&mut instance.owned, env, kind, number, record, now) {
                        disturbed = disturbed.or(Some(number));
                    }
                    if !env.journal(kind, number, generation, entries) {
                        // A fenced owner's batch: if its outputs went out, they would be late
                        // writes (they do not: its log record landed after the marker).
                        env.late_batches
                            .insert((kind.name(), number, generation, sequence));
                    }
                }
                if mid {
                    return End::Crashed(Point::MidLog);
                }
                if let Some(number) = disturbed {
                    // Its log records stay: a restore ignores them if fenced, and otherwise
                    // they are a logged batch the rebuild sends again.
                    return instance.disturb(env, number, "its decision log");
                }
                let pending = instance.pending.as_mut().expect("pending");
                pending.stage = Stage::Outputs;
                if let Some(end) = stop(Point::AfterLog) {
                    return end;
                }
            }
            Stage::Outputs => {
                let outputs = std::mem::take(&mut pending.outputs);
                if strike == Strike::Crash(Point::MidOutputs) {
                    deliver_prefixes(env, outputs);
                    return End::Crashed(Point::MidOutputs);
                }
                for (topic, partition, record) in outputs {
                    env.append(topic, partition, record, true);
                }
                pending.stage = Stage::State;
                if let Some(end) = stop(Point::AfterOutputs) {
                    return end;
                }
            }
            Stage::State => {
                let state = std::mem::take(&mut pending.state);
                let mid = strike == Strike::Crash(Point::MidState);
                let mut disturbed = None;
                for (partition, record) in state {
                    if mid && env.fault_rng.chance(0.5) {
                        continue;
                    }
                    if !append_own(&mut instance.owned, env, kind, partition, record, now) {
                        disturbed = disturbed.or(Some(partition));
                    }
                }
                if mid {
                    return End::Crashed(Point::MidState);
                }
                if let Some(number) = disturbed {
                    return instance.disturb(env, number, "its state records");
                }
                let pending = instance.pending.as_mut().expect("pending");
                pending.stage = Stage::Commit;
                if let Some(end) = stop(Point::AfterState) {
                    return end;
                }
            }
            Stage::Commit => {
                let pending = instance.pending.take().expect("pending");
                let accepted = instance.member == Some(group_generation);
                if accepted {
                    for (topic, partition, next) in pending.commit {
                        committed.insert((topic, partition), next);
                    }
                } else {
                    // Not a member of the group's generation: the coordinator refuses the
                    // commit, and whoever restores next reads these records again.
                    env.stats.commits_refused += 1;
                }
                // The processor applied them (time markers moved its timers' watermark): they
                // count for the replay unless a newer owner fenced this one off. A member is
                // fenced off only by a fenced owner that restored the partition again (that
                // newer lineage never applies them); its commit still stands, so the group
                // never reads them again.
                for (number, entries) in pending.commit_only {
                    let generation = instance.owned.get(&number).map_or(0, |o| o.generation);
                    if accepted && env.fenced(kind, number, generation) {
                        env.skip(kind, number, generation, &entries);
                    } else {
                        env.journal(kind, number, generation, entries);
                    }
                }
                return End::Done(true);
            }
        }
    }
}

/// A crash while producing: of each destination partition's records a prefix arrived (the
/// idempotent producer keeps a partition's order; a failed record fails those after it).
pub fn deliver_prefixes(env: &mut Env, records: Vec<(&'static str, i32, Rc<Record>)>) {
    let mut by_destination: BTreeMap<(&'static str, i32), Vec<Rc<Record>>> = BTreeMap::new();
    for (topic, partition, record) in records {
        by_destination
            .entry((topic, partition))
            .or_default()
            .push(record);
    }
    for ((topic, partition), records) in by_destination {
        let arrived = env.fault_rng.range(0, records.len() as i64) as usize;
        for record in records.into_iter().take(arrived) {
            env.append(topic, partition, record, true);
        }
    }
}
