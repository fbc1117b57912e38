//! Everything a run holds but the consumer groups — the clock, the topics, the master data,
//! the replay, the sinks and people, the random streams, the findings — and what every part
//! does with it: append a record (the sinks and people read it, a producer retry may repeat
//! it), hand a batch that counted to the replay, decide what strikes a batch.

use crate::faults::{Faults, Strike, CRASH_POINTS, FREEZE_POINTS};
use crate::group::SESSION_TIMEOUT_MS;
use crate::master::{Change, MasterLog, MasterView};
use crate::observe::Observer;
use crate::people::{self, Ack, People};
use crate::processors::{index, KINDS};
use crate::queue::{Event, Queue};
use crate::rng::Rng;
use crate::shadow::{self, Entry, Shadow};
use crate::topics::{Record, Topics};
use crate::world::{World, START};
use jivapay_domain::TraderId;
use jivapay_processors::core::Millis;
use jivapay_processors::runtime::origins::Origin;
use jivapay_processors::ProcessorKind;
use jivapay_schemas::topics::*;
use jivapay_schemas::SchemaRegistry;
use std::collections::{BTreeMap, HashSet};
use std::rc::Rc;

/// What to run.
#[derive(Debug, Clone)]
pub struct Config {
    pub seed: u64,
    pub orders: u64,
    pub faults: Faults,
    /// Deduplicate by origin as the runtime does (off: to see what the trackers prevent).
    pub dedup: bool,
    /// Invariants known to break (a bug reported, not fixed yet): their findings are counted
    /// and the run goes on, so it can find what else breaks.
    pub known: Vec<String>,
}

impl Config {
    pub fn new(seed: u64, orders: u64) -> Config {
        Config {
            seed,
            orders,
            faults: Faults::DEFAULT,
            dedup: true,
            known: Vec::new(),
        }
    }
}

/// A broken invariant.
#[derive(Debug, Clone)]
pub struct Finding {
    pub invariant: &'static str,
    pub detail: String,
    /// Simulated milliseconds since the start.
    pub at: Millis,
}

/// Counters of a run.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub polls: u64,
    pub applied: u64,
    /// Records dropped by the origin trackers.
    pub dropped: u64,
    pub appended: u64,
    pub duplicates: u64,
    pub crashes: [u64; 7],
    pub freezes: u64,
    /// Freezes that outlasted the session: the owner wrote on as a fenced zombie.
    pub zombies: u64,
    pub rebalances: u64,
    pub restores: u64,
    pub resent: u64,
    /// Changelog records a restore ignored as written by a fenced owner.
    pub fenced_on_restore: u64,
    /// Batches a fenced owner logged, which therefore never counted.
    pub fenced_batches: u64,
    pub commits_refused: u64,
    /// Batches (or leases, or restores) stopped because a changelog write landed out of place.
    pub disturbed: u64,
    pub leases: u64,
    /// What restores repaired of fenced owners' late records: state keys written again,
    /// checkpoint batches.
    pub rewritten: u64,
    pub checkpoints: u64,
    /// Outputs of fenced owners' batches (late writes) applied by a processor whose trackers
    /// had not seen the newer owner yet.
    pub late_applied: u64,
    /// The first few late writes applied, for a report.
    pub late_examples: Vec<String>,
    /// Late writes a sink kept as the first version of their id, and late writes ignored.
    pub late_kept: u64,
    pub late_ignored: u64,
    /// Most orders seen open in two books at once (a second holder not yet cancelled).
    pub open_twice: u64,
    /// Orders a second trader assigned too.
    pub second_holders: u64,
    /// Findings of known invariants: how many, and the first.
    pub known: BTreeMap<&'static str, (u64, String)>,
}

/// Everything but the consumer groups.
pub struct Env {
    pub config: Config,
    pub registry: SchemaRegistry,
    pub now: Millis,
    pub topics: Topics,
    pub master: MasterLog,
    /// The tables every live processor reads.
    pub live: MasterView,
    pub shadow: Shadow,
    pub observer: Observer,
    pub people: People,
    pub world: World,
    pub queue: Queue,
    pub traffic_rng: Rng,
    pub people_rng: Rng,
    pub fault_rng: Rng,
    pub schedule_rng: Rng,
    pub admin_rng: Rng,
    pub stats: Stats,
    pub findings: Vec<Finding>,
    /// Per kind and changelog partition, the offset of the newest restore marker.
    pub markers: Vec<Vec<i64>>,
    /// The capacity table reader's positions.
    pub table_positions: Vec<i64>,
    /// Batches logged by fenced owners (source, partition, generation, sequence): whatever
    /// they send is a late write.
    pub late_batches: HashSet<(&'static str, i32, i64, i64)>,
    pub settling: bool,
    /// `JIVAPAY_SIM_TRACE=<processor>/<partition>`: what happens to that partition, on stderr.
    pub(crate) trace: Option<(String, i32)>,
    /// `JIVAPAY_SIM_ORDER=<order id>`: every record about that order, and the time markers of
    /// its trader's partition, on stderr.
    pub(crate) trace_order: Option<String>,
    /// Per `trader.commands` partition, its traders.
    pub(crate) traders_by_partition: Vec<Vec<TraderId>>,
}

fn observed(topic: &str) -> bool {
    matches!(
        topic,
        ORDERS_EVENTS | LEDGER_TRANSFERS | STORE_POSTINGS | TRADER_POSTINGS
    )
}

/// The records `entries` consumed, for a trace.
fn consumed(entries: &[Entry]) -> String {
    let all: Vec<String> = entries
        .iter()
        .flat_map(|e| e.consumed.iter().map(|(t, o)| format!("{t}@{o}")))
        .collect();
    shadow::shorten(&all.join(" "), 300)
}

impl Env {
    pub fn finding(&mut self, (invariant, detail): (&'static str, String)) {
        if self.config.known.iter().any(|k| k == invariant) {
            let entry = self.stats.known.entry(invariant).or_insert((0, detail));
            entry.0 += 1;
            return;
        }
        self.findings.push(Finding {
            invariant,
            detail,
            at: self.now - START,
        });
    }

    /// What strikes the next batch: faults aim at batches that write something (`busy`);
    /// an idle poll is struck a twentieth as often.
    pub fn strike(&mut self, busy: bool) -> Strike {
        let faults = self.config.faults;
        if self.settling {
            return Strike::None;
        }
        let scale = if busy { 1.0 } else { 0.05 };
        if faults.crash > 0.0 && self.fault_rng.chance(faults.crash * scale) {
            return Strike::Crash(*self.fault_rng.pick(&CRASH_POINTS));
        }
        if faults.freeze > 0.0 && self.fault_rng.chance(faults.freeze * scale) {
            let point = *self.fault_rng.pick(&FREEZE_POINTS);
            let ms = if self.fault_rng.chance(faults.zombie) {
                self.fault_rng
                    .range(SESSION_TIMEOUT_MS + 1_000, SESSION_TIMEOUT_MS * 3)
            } else {
                self.fault_rng.range(100, SESSION_TIMEOUT_MS - 2_000)
            };
            return Strike::Freeze(point, ms);
        }
        Strike::None
    }

    /// Whether a restore crashes while sending its logged batch again.
    pub fn crash_while_resending(&mut self) -> bool {
        let p = (self.config.faults.crash * 10.0).min(0.2);
        !self.settling && p > 0.0 && self.fault_rng.chance(p)
    }

    pub fn schedule_at(&mut self, at: Millis, event: Event) {
        self.queue.push(at.max(self.now), event);
    }

    /// A record that reaches its partition `delay` ms from now (with who waits for its
    /// acknowledgement).
    pub fn append_later(
        &mut self,
        delay: Millis,
        topic: &'static str,
        partition: i32,
        record: Rc<Record>,
        ack: Option<Ack>,
    ) {
        let event = Event::Append {
            topic,
            partition,
            record,
            ack: ack.map(Box::new),
        };
        self.schedule_at(self.now + delay, event);
    }

    /// Appends a record now; the sinks and people read it; a producer retry may append it
    /// again a little later.
    pub fn append(
        &mut self,
        topic: &'static str,
        partition: i32,
        record: Rc<Record>,
        may_duplicate: bool,
    ) -> i64 {
        let offset = self
            .topics
            .append(topic, partition, record.clone(), self.now);
        self.stats.appended += 1;
        if self.trace_order.is_some() {
            self.trace_order_record(topic, partition, offset, &record);
        }
        if let (true, Some(payload)) = (observed(topic), &record.payload) {
            let late = record
                .origin
                .as_deref()
                .and_then(|h| Origin::parse(h.as_bytes()))
                .is_some_and(|o| self.is_late(&o));
            let mut seen = Vec::new();
            let read = self
                .observer
                .on_record(&self.registry, topic, payload, late, &mut seen);
            if let Err(finding) = read {
                self.finding(finding);
            }
            for s in seen {
                people::on_seen(self, s);
            }
        }
        let duplicate = self.config.faults.duplicate;
        if may_duplicate && !self.settling && duplicate > 0.0 && self.fault_rng.chance(duplicate) {
            self.stats.duplicates += 1;
            let delay = self.fault_rng.range(1, 4_000);
            self.append_later(delay, topic, partition, record, None);
        }
        offset
    }

    /// Whether a record of this origin was sent by a fenced owner's batch.
    pub fn is_late(&self, origin: &Origin) -> bool {
        !self.late_batches.is_empty()
            && KINDS.iter().any(|k| {
                k.name() == origin.source
                    && self.late_batches.contains(&(
                        k.name(),
                        origin.partition,
                        origin.logged_by,
                        origin.sequence,
                    ))
            })
    }

    /// Replay entries of a partition whose batch counted — unless its owner was fenced off
    /// (a newer owner's restore marker is in the changelog): then nobody ever reads them.
    /// Returns whether they counted.
    pub fn journal(
        &mut self,
        kind: ProcessorKind,
        partition: i32,
        generation: i64,
        entries: Vec<Entry>,
    ) -> bool {
        if self.fenced(kind, partition, generation) {
            self.trace(kind, partition, || {
                format!(
                    "fenced owner {generation}: batch dropped ({})",
                    consumed(&entries)
                )
            });
            self.stats.fenced_batches += 1;
            return false;
        }
        if entries.is_empty() {
            return true;
        }
        self.trace(kind, partition, || {
            format!("owner {generation}: counts ({})", consumed(&entries))
        });
        let replayed = self.shadow.replay(
            &self.registry,
            &self.topics,
            &self.master,
            kind,
            partition,
            entries,
        );
        if let Err(finding) = replayed {
            self.finding(finding);
        }
        for finding in std::mem::take(&mut self.shadow.noted) {
            self.finding(finding);
        }
        true
    }

    /// Whether an owner of `generation` is fenced off: a newer restore marker is in the
    /// partition's changelog.
    pub fn fenced(&self, kind: ProcessorKind, partition: i32, generation: i64) -> bool {
        self.markers[index(kind)][partition as usize] > generation
    }

    /// A fenced owner's entries that only committed, and whose commit was accepted
    /// (`Shadow::skip`).
    pub fn skip(
        &mut self,
        kind: ProcessorKind,
        partition: i32,
        generation: i64,
        entries: &[Entry],
    ) {
        self.trace(kind, partition, || {
            format!(
                "fenced owner {generation}: committed, skipped ({})",
                consumed(entries)
            )
        });
        if let Err(finding) = self.shadow.skip(kind, partition, entries) {
            self.finding(finding);
        }
    }

    pub fn push_master(&mut self, change: Change) {
        self.master.push(change);
        let version = self.master.version();
        self.live.advance(&self.master, version);
    }
}
