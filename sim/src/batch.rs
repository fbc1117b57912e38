//! The end of a batch (`processors/src/runtime/batch.rs` and `run.rs`): per partition,
//! `tick`, `finish_batch` and the state changes become the next decision-log record, the
//! outputs with their origins and the state records; then the steps that send them — the
//! decision log, the outputs, the state records, the commit — each a place where a crash or
//! a freeze can strike.

use crate::changelog;
use crate::codec;
use crate::env::Env;
use crate::faults::{Point, Strike};
use crate::runtime::{End, Instance, Logged, Pending, Stage, Work};
use crate::shadow::Entry;
use crate::topics::Record;
use jivapay_processors::core::Millis;
use jivapay_processors::runtime::origins::Origin;
use jivapay_schemas::records::{InputOffset, LoggedChange};
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
    if tick {
        w.outputs.extend(owned.processor.get().tick(now));
    }
    w.outputs.extend(owned.processor.get().finish_batch(now));
    let mut changes: Vec<LoggedChange> = owned
        .processor
        .get()
        .take_changes()
        .into_iter()
        .map(|(state_key, state)| LoggedChange { state_key, state })
        .collect();
    changes.extend(owned.origins.take_changes(number));
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
    for (index, output) in (0..).zip(&outputs) {
        let topic = codec::topic_name(&output.topic);
        let record = Record {
            key: output.key.clone(),
            payload: Some(output.payload.clone()),
            origin: Some(
                Origin {
                    index,
                    ..origin.clone()
                }
                .header(),
            ),
        };
        pending.outputs.push((
            topic,
            codec::partition_of(topic, &output.key),
            Rc::new(record),
        ));
    }
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
                    env.append(kind.changelog(), number, record, false);
                    if !env.journal(kind, number, generation, entries) {
                        // Its outputs, sent next, are late writes of a fenced owner.
                        env.late_batches
                            .insert((kind.name(), number, generation, sequence));
                    }
                }
                if mid {
                    return End::Crashed(Point::MidLog);
                }
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
                for (partition, record) in state {
                    if mid && env.fault_rng.chance(0.5) {
                        continue;
                    }
                    env.append(kind.changelog(), partition, record, false);
                }
                if mid {
                    return End::Crashed(Point::MidState);
                }
                pending.stage = Stage::Commit;
                if let Some(end) = stop(Point::AfterState) {
                    return end;
                }
            }
            Stage::Commit => {
                let pending = instance.pending.take().expect("pending");
                if instance.member == Some(group_generation) {
                    for (topic, partition, next) in pending.commit {
                        committed.insert((topic, partition), next);
                    }
                } else {
                    // Not a member of the group's generation: the coordinator refuses the
                    // commit, and whoever restores next reads these records again.
                    env.stats.commits_refused += 1;
                }
                // The processor applied them (time markers moved its timers' watermark): they
                // count for the replay unless a newer owner fenced this one off.
                for (number, entries) in pending.commit_only {
                    let generation = instance.owned.get(&number).map_or(0, |o| o.generation);
                    env.journal(kind, number, generation, entries);
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
