//! One consumer group per processor kind: its members, which partitions each owns (Kafka's
//! range assignor), the committed offsets, and what happens on every change of membership —
//! `Worker::rebuild`: each member restores every partition it owns now from the changelog,
//! sends each one's newest logged batch again, byte for byte, with its state records and the
//! records that repair what fenced owners left on top (`changelog::repair`), and starts
//! reading at the committed offsets. A disturbed owner (`runtime.rs`) rebuilds the same way,
//! without a rebalance, the partitions it believes it owns.
//!
//! Static members (`group.instance.id`) that restart within the session timeout get their
//! partitions back without a rebalance; anything else that leaves, dies or freezes past the
//! session makes the group rebalance, and every member restores.

use crate::batch::deliver_prefixes;
use crate::changelog::{self, Restored};
use crate::faults::Point;
use crate::processors::{index, AnyProcessor};
use crate::runtime::{append_own, End, Instance, Owned, Status};
use crate::sim::Env;
use crate::topics::Record;
use jivapay_processors::core::Millis;
use jivapay_processors::runtime::origins::Origin;
use jivapay_processors::ProcessorKind;
use jivapay_schemas::topics::STREAM_PARTITIONS;
use std::collections::BTreeMap;
use std::rc::Rc;

/// How long a member may stay silent before the group rebalances without it.
pub const SESSION_TIMEOUT_MS: Millis = 10_000;

pub struct Group {
    pub kind: ProcessorKind,
    pub instances: Vec<Instance>,
    pub committed: BTreeMap<(&'static str, i32), i64>,
    /// The group's generation: bumped by every rebalance.
    pub generation: u64,
    pub static_members: bool,
    /// A rebalance waits for a member whose session is alive but which does not answer
    /// (frozen, or dead and not yet noticed): it runs once the member is back or expired.
    pub deferred: bool,
}

impl Group {
    pub fn new(kind: ProcessorKind, instances: Vec<Instance>, static_members: bool) -> Group {
        Group {
            kind,
            instances,
            committed: BTreeMap::new(),
            generation: 0,
            static_members,
            deferred: false,
        }
    }

    /// Whether every partition is owned by a live member (nothing is stuck waiting).
    pub fn fully_owned(&self) -> bool {
        let owned: usize = self
            .instances
            .iter()
            .filter(|i| i.status == Status::Alive && i.pending.is_none())
            .map(|i| i.owned.len())
            .sum();
        owned == STREAM_PARTITIONS as usize
    }
}

/// Range assignment of the partitions over the live instances, then a restore in each —
/// once no member in session is silent (until then it is deferred). Returns the members
/// whose restore crashed.
pub fn rebalance(group: &mut Group, env: &mut Env) -> Vec<usize> {
    let waiting = group
        .instances
        .iter()
        .any(|i| matches!(i.status, Status::Frozen | Status::Dead) && i.member.is_some());
    if waiting {
        // The coordinator waits for every member in session to join again.
        group.deferred = true;
        return Vec::new();
    }
    group.deferred = false;
    group.generation += 1;
    env.stats.rebalances += 1;
    let members: Vec<usize> = group
        .instances
        .iter()
        .filter(|i| i.status == Status::Alive)
        .map(|i| i.id)
        .collect();
    for instance in &mut group.instances {
        instance.member = None;
        if instance.status == Status::Alive {
            instance.assigned.clear();
        }
        // A frozen one goes on believing in its assignment until it learns otherwise.
    }
    let n = members.len();
    let mut crashed = Vec::new();
    if n == 0 {
        return crashed;
    }
    let partitions = STREAM_PARTITIONS as usize;
    let (each, extra) = (partitions / n, partitions % n);
    let mut next = 0;
    for (rank, id) in members.iter().enumerate() {
        let count = each + usize::from(rank < extra);
        let assigned: Vec<i32> = (next..next + count).map(|p| p as i32).collect();
        next += count;
        let generation = group.generation;
        let instance = &mut group.instances[*id];
        instance.member = Some(generation);
        instance.assigned = assigned.clone();
        if let End::Crashed(_) = rebuild(instance, &group.committed, env, &assigned) {
            crashed.push(*id);
        }
    }
    crashed
}

/// `Worker::rebuild`: restores `partitions` in `instance` and sends their newest logged
/// batches again. Crashes while sending when the faults say so.
pub fn rebuild(
    instance: &mut Instance,
    committed: &BTreeMap<(&'static str, i32), i64>,
    env: &mut Env,
    partitions: &[i32],
) -> End {
    let kind = instance.kind;
    let now = env.now + instance.skew;
    instance.forget();
    instance.restores += 1;
    env.stats.restores += 1;
    instance.marker = format!("{}-{}-{}", kind.name(), instance.id, instance.restores);
    let mut generations = Vec::new();
    for number in partitions {
        let record = changelog::marker_record(&env.registry, &instance.marker, now)
            .expect("a marker encodes");
        let offset = env.append(kind.changelog(), *number, Rc::new(record), false);
        env.markers[index(kind)][*number as usize] = offset;
        generations.push((*number, offset));
    }
    let mut resend: Vec<(&'static str, i32, Rc<Record>)> = Vec::new();
    // Per partition, in order: the logged batch's state records, then the repairs.
    let mut writes: Vec<(i32, Rc<Record>)> = Vec::new();
    let (mut rewritten, mut checkpoints) = (0, 0);
    for (number, generation) in generations {
        let fresh = AnyProcessor::new(kind, env.live.data.clone());
        let log = env.topics.log(kind.changelog(), number);
        let restored = match changelog::restore(&env.registry, log, generation, fresh) {
            Ok(restored) => restored,
            Err(detail) => {
                env.finding(("decodable", detail));
                continue;
            }
        };
        env.stats.fenced_on_restore += restored.fenced as u64;
        env.trace(kind, number, || {
            format!(
                "restored by instance {} as generation {generation}: newest batch {:?}, covered {:?}, {} keys, {} fenced records ignored, to repair: {} keys, batch keys {:?}",
                instance.id,
                restored.logged.as_ref().map(|l| (l.sequence, l.logged_by)),
                restored.covered,
                restored.state.len(),
                restored.fenced,
                restored.repair.state.len(),
                restored.repair.batches,
            )
        });
        if let Err((name, mut detail)) = env.shadow.restored(kind, number, &restored.state) {
            if let Some((_, key)) = detail.split_once(crate::shadow::FIRST_KEY) {
                let log = env.topics.log(kind.changelog(), number);
                let history = changelog::history(&env.registry, log, key);
                detail = format!("{detail}\n{history}");
            }
            env.finding((name, detail));
        }
        let writer = changelog::writer(&instance.marker, generation);
        let repaired =
            changelog::repair(&env.registry, &restored, number, &writer, generation, now)
                .expect("repair records encode");
        let Restored {
            mut processor,
            origins,
            covered,
            logged,
            ..
        } = restored;
        if kind.time_markers().is_some() {
            // No timer fires before a marker written after this restore comes back.
            processor.get().hold_timers_until(Millis::MIN);
        }
        for topic in kind.inputs() {
            let position = committed.get(&(*topic, number)).copied().unwrap_or(0);
            instance.positions.insert((topic, number), position);
        }
        let mut sequence = logged.as_ref().map_or(0, |l| l.sequence);
        if let Some(logged) = logged {
            let origin = Origin {
                source: kind.name().to_owned(),
                partition: number,
                sender: generation,
                logged_by: logged.logged_by,
                sequence: logged.sequence,
                index: 0,
            };
            resend.extend(crate::codec::output_records(&logged.outputs, &origin));
            for change in &logged.changes {
                let (partition, record) =
                    changelog::state_record(&env.registry, change, generation, now)
                        .expect("a state record encodes");
                writes.push((partition, Rc::new(record)));
            }
        }
        // The checkpoint goes after the state records of the batch it supersedes.
        if let Some(checkpoint) = repaired.checkpoint {
            sequence = checkpoint;
            checkpoints += 1;
        }
        rewritten += repaired.rewritten as u64;
        writes.extend(repaired.records.into_iter().map(|r| (number, Rc::new(r))));
        instance.owned.insert(
            number,
            Owned {
                processor,
                origins,
                covered,
                sequence,
                generation,
                journal: Vec::new(),
                changelog_next: generation + 1,
                last_write: now,
            },
        );
    }
    env.stats.resent += resend.len() as u64;
    if env.crash_while_resending() {
        deliver_prefixes(env, resend);
        env.stats.crashes[Point::MidOutputs as usize] += 1;
        return End::Crashed(Point::MidOutputs);
    }
    for (topic, partition, record) in resend {
        env.append(topic, partition, record, true);
    }
    env.stats.rewritten += rewritten;
    env.stats.checkpoints += checkpoints;
    let mut disturbed = None;
    for (partition, record) in writes {
        if !append_own(&mut instance.owned, env, kind, partition, record, now) {
            disturbed = disturbed.or(Some(partition));
        }
    }
    if let Some(number) = disturbed {
        return instance.disturb(env, number, "what its restore sends");
    }
    End::Done(true)
}
