//! The runtime loop of `processors/src/runtime/run.rs`, modelled in memory step for step (the
//! simulation models the protocol; it does not run rdkafka or tokio):
//!
//! 1. if a write of the last batch found its owner disturbed (below), rebuild first;
//! 2. read up to a batch of records of the owned partitions, past the consumer's positions;
//!    when a tick is due, write a lease record to each owned changelog partition written to
//!    nothing for [`LEASE_INTERVAL_MS`], then time markers (trader book: to each owned
//!    partition of `trader.commands` whose earliest deadline a marker would let fire);
//! 3. per record: skip it if the restored state covers it; a time marker moves the timers'
//!    watermark; a record whose origin the partition's trackers have seen is dropped; anything
//!    else is decoded and applied at the instance's clock;
//! 4. per owned partition: `tick` when due, `finish_batch`, `take_changes` plus the trackers'
//!    changes; nothing to say → nothing sent; only markers or dropped records → their offsets
//!    committed; otherwise the next decision-log batch (sequence + 1, covered offsets, changes,
//!    encoded outputs with their origins), state records on the key's partition;
//! 5. write the decision log, then the outputs, then the state records, then commit.
//!
//! **Disturbed owners.** An owner alone writes its changelog partition: each record it
//! appends there (decision log, state records, leases, a restore's records) must land at the
//! offset after its previous one ([`Owned::changelog_next`]; after a restore, its marker's).
//! One that lands elsewhere means someone else wrote there meanwhile — a successor's marker,
//! or a fenced owner's late records — and the batch stops: after the decision log, before
//! any output; after the state records, before the commit; after a lease, before reading.
//! The instance then drops the batch and rebuilds every partition it believes it owns
//! ([`Instance::assigned`]) before its next poll. A fenced owner that has not yet learnt it
//! lost its partitions thus restores them again and fences their owner, which is disturbed
//! in turn, until the fenced one learns it is no longer a member.
//!
//! Steps 4 and 5 are in `batch.rs`. A batch can crash or freeze at each step (`faults.rs`);
//! [`Pending`] holds what is left of a frozen batch. Restores and resends are in `group.rs`.

use crate::batch::{advance, decide};
use crate::changelog;
use crate::codec;
use crate::faults::{Point, Strike};
use crate::processors::AnyProcessor;
use crate::shadow::Entry;
use crate::sim::Env;
use crate::topics::Record;
use jivapay_processors::core::{Emit, Millis};
use jivapay_processors::runtime::origins::{Origin, Origins};
use jivapay_processors::ProcessorKind;
use std::collections::BTreeMap;
use std::rc::Rc;

/// How often timers fire (`RuntimeConfig::tick_interval_ms`).
pub const TICK_INTERVAL_MS: Millis = 500;

/// Most records in one batch: smaller than the runtime's 500, so batches end in more places.
pub const BATCH_RECORDS_MAX: i64 = 48;

/// How long an owner leaves its changelog partition unwritten before a lease record (the
/// runtime's default is 30 s): an idle owner finds out this soon that someone else wrote
/// there, and restores — well within the compaction lag (`topics::COMPACTION_LAG_MS`) that
/// keeps the valid records a fenced owner's late ones supersede.
pub const LEASE_INTERVAL_MS: Millis = 2_000;

/// One owned partition: its processor, trackers and what its state covers.
pub struct Owned {
    pub processor: AnyProcessor,
    pub origins: Origins,
    /// Per input topic, the next offset to apply.
    pub covered: BTreeMap<String, i64>,
    /// The sequence of the last logged batch.
    pub sequence: i64,
    /// This owner's generation: the offset of its restore marker.
    pub generation: i64,
    /// Calls since the last batch that counted, for the replay (dropped with the processor).
    pub journal: Vec<Entry>,
    /// The offset this owner's next changelog record must get: anywhere else, someone else
    /// wrote to the partition since its last write.
    pub changelog_next: i64,
    /// When it last wrote to its changelog partition (the instance's clock).
    pub last_write: Millis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Alive,
    /// Left the group for a while (a deliberate rebalance).
    Away,
    Dead,
    Frozen,
}

pub struct Instance {
    pub id: usize,
    pub kind: ProcessorKind,
    pub status: Status,
    /// Bumped whenever the instance dies, freezes, resumes or restarts: events scheduled for
    /// an earlier life are stale.
    pub life: u64,
    /// Its clock's offset from the simulation's (at most half the skew bound).
    pub skew: Millis,
    pub owned: BTreeMap<i32, Owned>,
    /// The consumer's positions.
    pub positions: BTreeMap<(&'static str, i32), i64>,
    pub last_tick: Millis,
    /// The group generation it joined at (`None`: not a member).
    pub member: Option<u64>,
    /// The partitions the group assigned it, as it believes (a static member gets them back
    /// on restart; a fenced owner believes it until it learns otherwise).
    pub assigned: Vec<i32>,
    /// A write found it disturbed: it rebuilds before its next poll.
    pub disturbed: bool,
    /// The id of its last restore (the writer id's first part).
    pub marker: String,
    pub restores: u64,
    pub pending: Option<Pending>,
}

/// One partition's batch of the decision log, waiting to be written.
pub struct Logged {
    pub partition: i32,
    /// The generation of the owner that decided it.
    pub generation: i64,
    pub sequence: i64,
    pub record: Rc<Record>,
    /// The replay entries that count once the record is written.
    pub entries: Vec<Entry>,
}

/// What a batch still has to send.
pub struct Pending {
    /// Per logged partition, its batch.
    pub logged: Vec<Logged>,
    pub outputs: Vec<(&'static str, i32, Rc<Record>)>,
    pub state: Vec<(i32, Rc<Record>)>,
    pub commit: Vec<(&'static str, i32, i64)>,
    /// Replay entries of partitions that only commit: they count once committed.
    pub commit_only: Vec<(i32, Vec<Entry>)>,
    pub stage: Stage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Log,
    Outputs,
    State,
    Commit,
}

/// How a batch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Finished; whether it read anything.
    Done(bool),
    Crashed(Point),
    Frozen(i64),
    /// A write landed out of place: the batch was dropped, a rebuild is due.
    Disturbed,
}

impl Instance {
    pub fn new(id: usize, kind: ProcessorKind, skew: Millis) -> Instance {
        Instance {
            id,
            kind,
            status: Status::Alive,
            life: 0,
            skew,
            owned: BTreeMap::new(),
            positions: BTreeMap::new(),
            last_tick: Millis::MIN / 2,
            member: None,
            assigned: Vec::new(),
            disturbed: false,
            marker: String::new(),
            restores: 0,
            pending: None,
        }
    }

    /// Forgets everything a process holds in memory (it died, or it restores).
    pub fn forget(&mut self) {
        self.owned.clear();
        self.positions.clear();
        self.pending = None;
        self.disturbed = false;
    }

    /// A write of `what` to changelog partition `number` landed out of place: the batch is
    /// dropped and the instance rebuilds before its next poll.
    pub fn disturb(&mut self, env: &mut Env, number: i32, what: &str) -> End {
        self.pending = None;
        self.disturbed = true;
        env.stats.disturbed += 1;
        env.trace(self.kind, number, || {
            format!(
                "instance {} disturbed writing {what}: it rebuilds {:?}",
                self.id, self.assigned
            )
        });
        End::Disturbed
    }
}

/// Appends `record` to changelog partition `number` of `kind` as its owner (at `now`, the
/// instance's clock); whether it landed where the owner's next record must. A partition it
/// does not own is never in place.
pub fn append_own(
    owned: &mut BTreeMap<i32, Owned>,
    env: &mut Env,
    kind: ProcessorKind,
    number: i32,
    record: Rc<Record>,
    now: Millis,
) -> bool {
    let offset = env.append(kind.changelog(), number, record, false);
    let Some(owned) = owned.get_mut(&number) else {
        return false;
    };
    let in_place = offset == owned.changelog_next;
    owned.changelog_next = offset + 1;
    owned.last_write = now;
    in_place
}

/// One input record of a batch.
struct Read {
    topic: &'static str,
    partition: i32,
    offset: i64,
    record: Rc<Record>,
}

/// One partition's share of a batch (`run.rs` `Work`).
#[derive(Default)]
pub(crate) struct Work {
    pub(crate) outputs: Vec<Emit>,
    pub(crate) positions: BTreeMap<&'static str, i64>,
    pub(crate) consumed: Vec<(&'static str, i64)>,
    pub(crate) decided: bool,
}

/// One poll of `instance`: a batch, as `Worker::handle` runs it.
pub fn poll(
    instance: &mut Instance,
    committed: &mut BTreeMap<(&'static str, i32), i64>,
    group_generation: u64,
    env: &mut Env,
) -> End {
    let now = env.now + instance.skew;
    let tick = now - instance.last_tick >= TICK_INTERVAL_MS;
    if tick {
        instance.last_tick = now;
        if let Some(number) = write_leases(instance, env, now) {
            return instance.disturb(env, number, "a lease");
        }
        write_time_markers(instance, env, now);
    }
    let batch = read_batch(instance, env);
    let read_any = !batch.is_empty();
    let mut work: BTreeMap<i32, Work> = BTreeMap::new();
    for read in batch {
        if let Err(finding) = apply(instance, env, read, &mut work, now) {
            env.finding(finding);
        }
    }
    if !read_any && !tick {
        // An idle poll: the process may still die or stop here, now and then.
        return match env.strike(false) {
            Strike::Crash(_) => End::Crashed(Point::BeforeLog),
            Strike::Freeze(_, ms) => End::Frozen(ms),
            Strike::None => End::Done(false),
        };
    }
    let version = env.master.version();
    let mut pending = Pending {
        logged: Vec::new(),
        outputs: Vec::new(),
        state: Vec::new(),
        commit: Vec::new(),
        commit_only: Vec::new(),
        stage: Stage::Log,
    };
    let numbers: Vec<i32> = instance.owned.keys().copied().collect();
    for number in numbers {
        let w = work.remove(&number).unwrap_or_default();
        if let Err(finding) = decide(instance, env, number, w, tick, now, version, &mut pending) {
            env.finding(finding);
        }
    }
    let strike = env.strike(!pending.logged.is_empty());
    instance.pending = Some(pending);
    match advance(instance, committed, group_generation, env, strike) {
        End::Done(_) => End::Done(read_any),
        other => other,
    }
}

/// A lease record to each owned partition written to nothing for [`LEASE_INTERVAL_MS`]; the
/// first partition where one landed out of place, if any.
fn write_leases(instance: &mut Instance, env: &mut Env, now: Millis) -> Option<i32> {
    let kind = instance.kind;
    let idle: Vec<(i32, i64)> = instance
        .owned
        .iter()
        .filter(|(_, o)| now - o.last_write >= LEASE_INTERVAL_MS)
        .map(|(number, o)| (*number, o.generation))
        .collect();
    let mut disturbed = None;
    for (number, generation) in idle {
        let writer = changelog::writer(&instance.marker, generation);
        let record = changelog::lease_record(&env.registry, &writer, now).expect("a lease encodes");
        env.stats.leases += 1;
        if !append_own(&mut instance.owned, env, kind, number, Rc::new(record), now) {
            disturbed = disturbed.or(Some(number));
        }
    }
    disturbed
}

fn write_time_markers(instance: &Instance, env: &mut Env, stamp: Millis) {
    let Some(topic) = instance.kind.time_markers() else {
        return;
    };
    for (number, owned) in &instance.owned {
        let awaited = owned
            .processor
            .next_deadline()
            .is_some_and(|d| d <= stamp.saturating_sub(crate::TIMER_HOLD_MS));
        if awaited {
            let record = Rc::new(Record {
                key: codec::marker_key(&env.registry, stamp),
                payload: None,
                origin: None,
            });
            // Handed to the producer without waiting: it lands a moment later.
            let delay = env.schedule_rng.range(0, 20);
            env.append_later(delay, topic, *number, record, None);
        }
    }
}

/// Up to a batch of records past the positions, interleaving the owned streams in fetch-sized
/// runs in a seeded order, as a consumer's fetches interleave them.
fn read_batch(instance: &mut Instance, env: &mut Env) -> Vec<Read> {
    let mut streams: Vec<(&'static str, i32, i64, i64)> = Vec::new();
    for number in instance.owned.keys() {
        for topic in instance.kind.inputs() {
            let (start, end) = env
                .topics
                .peek(topic, *number)
                .map_or((0, 0), |l| (l.start(), l.end()));
            // An offset retention removed: `auto.offset.reset = earliest`.
            let position = instance
                .positions
                .get(&(*topic, *number))
                .copied()
                .unwrap_or(0)
                .max(start);
            if position < end {
                streams.push((topic, *number, position, end));
            }
        }
    }
    let mut out = Vec::new();
    let max = env.schedule_rng.range(1, BATCH_RECORDS_MAX) as usize;
    while out.len() < max && !streams.is_empty() {
        let pick = env.schedule_rng.index(streams.len());
        let (topic, number, position, end) = streams[pick];
        let run = env.schedule_rng.range(1, 16) as usize;
        let log = env.topics.log(topic, number);
        let mut last = end;
        for (offset, record) in log.from(position).iter().take(run.min(max - out.len())) {
            out.push(Read {
                topic,
                partition: number,
                offset: *offset,
                record: record.clone(),
            });
            last = offset + 1;
        }
        if last >= end {
            streams.swap_remove(pick);
        } else {
            streams[pick].2 = last;
        }
    }
    for read in &out {
        instance
            .positions
            .insert((read.topic, read.partition), read.offset + 1);
    }
    out
}

/// `Worker::apply`: one record to its partition's processor, unless covered, a time marker
/// or a duplicate its source sent before.
fn apply(
    instance: &mut Instance,
    env: &mut Env,
    read: Read,
    work: &mut BTreeMap<i32, Work>,
    now: Millis,
) -> Result<(), (&'static str, String)> {
    let marker = (instance.kind.time_markers() == Some(read.topic))
        .then(|| {
            codec::marker_stamp(
                &env.registry,
                &read.record.key,
                read.record.payload.as_deref(),
            )
        })
        .flatten();
    let Some(owned) = instance.owned.get_mut(&read.partition) else {
        return Ok(());
    };
    let w = work.entry(read.partition).or_default();
    w.positions.insert(read.topic, read.offset + 1);
    if owned
        .covered
        .get(read.topic)
        .is_some_and(|next| read.offset < *next)
    {
        return Ok(()); // applied before the last restore
    }
    w.consumed.push((read.topic, read.offset));
    if let Some(stamp) = marker {
        owned
            .processor
            .get()
            .hold_timers_until(stamp.saturating_sub(crate::TIMER_HOLD_MS));
        return Ok(());
    }
    let origin = read
        .record
        .origin
        .as_deref()
        .and_then(|h| Origin::parse(h.as_bytes()));
    if env.config.dedup && origin.as_ref().is_some_and(|o| !owned.origins.admit(o)) {
        env.stats.dropped += 1;
        return Ok(());
    }
    if let Some(origin) = origin.filter(|o| env.is_late(o)) {
        env.stats.late_applied += 1;
        if env.stats.late_examples.len() < 5 {
            env.stats.late_examples.push(format!(
                "{} partition {} applied {}/{} offset {} at {}, sent by fenced {} partition {} generation {} (batch {})",
                instance.kind.name(),
                read.partition,
                read.topic,
                read.partition,
                read.offset,
                env.now - crate::world::START,
                origin.source,
                origin.partition,
                origin.logged_by,
                origin.sequence
            ));
        }
    }
    w.decided = true;
    let Some(payload) = &read.record.payload else {
        return Ok(());
    };
    let input = codec::decode(&env.registry, read.topic, payload).map_err(|e| {
        (
            "decodable",
            format!(
                "{}/{} offset {}: {e}",
                read.topic, read.partition, read.offset
            ),
        )
    })?;
    env.stats.applied += 1;
    w.outputs.extend(owned.processor.get().apply(input, now));
    Ok(())
}
