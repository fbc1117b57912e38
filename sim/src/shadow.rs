//! The replay: every input topic read again from offset 0 by fresh processors that never
//! crash, compared byte for byte with what the pipeline decided (principle 4: a replay never
//! decides differently).
//!
//! For each processor partition the shadow keeps a processor of its own, its own origins
//! trackers and its own master-data view. Each batch whose decisions counted — written to the
//! decision log by an owner not fenced off, or only committed (time markers, duplicates) —
//! reaches the shadow as an [`Entry`]: which input records it consumed, at what time, whether
//! its timers ticked, at which master-data version (a member fenced off by a fenced owner
//! that restored its partition again commits such records, which that newer lineage never
//! applies: they are consumed unapplied, [`Shadow::skip`]). The shadow then
//!
//! - checks that the records are exactly the next ones of each input partition: across
//!   every crash, restore and rebalance each record is applied once, in order, none skipped
//!   (**exactly_once_application**); a record read again is fine only if it changes nothing
//!   (a time marker, a duplicate the trackers drop: offsets a refused commit left behind);
//! - consumes them itself — time markers, its own trackers' verdicts on duplicates, `apply`,
//!   `tick`, `finish_batch`, `take_changes` — and compares the encoded outputs and the state
//!   changes with the original's (**replay_identical**).
//!
//! What a restart resets is reset here too, and nothing else: where the pipeline restored a
//! trader book, the shadow's book is rebuilt from the shadow's own state and its timers held
//! (after a restore no timer fires before a marker comes back, principle 8; a book that never
//! restarted would fire some a little earlier, which is not a different decision but a
//! different time). Fraud, router and commissions are never rebuilt, so a restore that lost
//! anything they need shows as a different output. At every restore the state the pipeline
//! loaded from its changelog must equal the shadow's own state, key by key
//! (**restore_equals_history**) — except fraud's customer windows, whose sweeps are timed by a
//! clock a restore resets (their tombstones differ, their decisions do not); for the same
//! reason fraud's state changes are not compared batch by batch, only its outputs.

use crate::codec;
use crate::master::{MasterLog, MasterView};
use crate::processors::{end_batch, index, AnyProcessor};
use crate::topics::Topics;
use jivapay_processors::core::{Emit, Input, Millis};
use jivapay_processors::runtime::origins::{Origin, Origins};
use jivapay_processors::ProcessorKind;
use jivapay_schemas::records::{LoggedChange, LoggedOutput};
use jivapay_schemas::SchemaRegistry;
use std::collections::{BTreeMap, HashMap};

/// One call of a processor partition that counted: what the replay needs to make it again.
#[derive(Debug, Clone, Default)]
pub struct Entry {
    /// The input records consumed (not covered by a restore), in the order applied.
    pub consumed: Vec<(&'static str, i64)>,
    pub now: Millis,
    pub tick: bool,
    /// The master-data version it saw.
    pub version: usize,
    pub outputs: Vec<LoggedOutput>,
    pub changes: Vec<LoggedChange>,
}

/// A finding of the replay: the invariant and what differed.
pub type Finding = (&'static str, String);

struct Part {
    kind: ProcessorKind,
    processor: AnyProcessor,
    origins: Origins,
    view: MasterView,
    /// Per input topic, the next offset the shadow expects.
    next: BTreeMap<&'static str, i64>,
    /// Its own changelog, folded: the newest value of every key.
    state: BTreeMap<String, Vec<u8>>,
}

pub struct Shadow {
    parts: HashMap<(usize, i32), Part>,
    dedup: bool,
    /// Go on after a record consumed out of order, consuming what the pipeline consumed
    /// (the finding goes to `noted`): `exactly_once_application` is a known failure.
    lenient: bool,
    pub noted: Vec<Finding>,
    /// Batches replayed.
    pub batches: u64,
}

impl Shadow {
    pub fn new(dedup: bool, lenient: bool) -> Shadow {
        Shadow {
            parts: HashMap::new(),
            dedup,
            lenient,
            noted: Vec::new(),
            batches: 0,
        }
    }

    fn part(&mut self, kind: ProcessorKind, partition: i32) -> &mut Part {
        self.parts
            .entry((index(kind), partition))
            .or_insert_with(|| {
                let view = MasterView::default();
                Part {
                    kind,
                    processor: AnyProcessor::new(kind, view.data.clone()),
                    origins: Origins::default(),
                    view,
                    next: BTreeMap::new(),
                    state: BTreeMap::new(),
                }
            })
    }

    /// Replays the entries of one partition, in order.
    pub fn replay(
        &mut self,
        registry: &SchemaRegistry,
        topics: &Topics,
        master: &MasterLog,
        kind: ProcessorKind,
        partition: i32,
        entries: Vec<Entry>,
    ) -> Result<(), Finding> {
        let dedup = self.dedup;
        let count = entries.len() as u64;
        let lenient = self.lenient;
        let mut noted = Vec::new();
        let part = self.part(kind, partition);
        let mut replayed = Ok(());
        for entry in entries {
            replayed = part.replay(
                registry, topics, master, partition, dedup, lenient, &mut noted, entry,
            );
            if replayed.is_err() {
                break;
            }
        }
        self.noted.append(&mut noted);
        self.batches += count;
        replayed
    }

    /// Records a fenced owner consumed and committed — time markers, duplicates its trackers
    /// dropped, which change nothing — while the partition's changelog had moved on to a
    /// newer owner (a fenced owner restoring it again): the group never delivers them again
    /// and that newer lineage never applies them. Consumed here too, not applied.
    pub fn skip(
        &mut self,
        kind: ProcessorKind,
        partition: i32,
        entries: &[Entry],
    ) -> Result<(), Finding> {
        let part = self.part(kind, partition);
        for (topic, offset) in entries.iter().flat_map(|e| &e.consumed) {
            let next = part.next.entry(topic).or_insert(0);
            if *offset > *next {
                return Err((
                    "exactly_once_application",
                    format!(
                        "{} partition {partition}: {topic} offset {offset} skipped, but records from {next} on never were consumed",
                        kind.name()
                    ),
                ));
            }
            *next = (*next).max(offset + 1);
        }
        Ok(())
    }

    /// The pipeline restored `partition` of `kind` with `restored` (every key it loaded, with
    /// its final value): compare with the shadow's history; rebuild a trader book.
    pub fn restored(
        &mut self,
        kind: ProcessorKind,
        partition: i32,
        restored: &BTreeMap<String, Option<Vec<u8>>>,
    ) -> Result<(), Finding> {
        let part = self.part(kind, partition);
        let result = compare_state(kind, partition, restored, &part.state);
        if kind == ProcessorKind::TraderBook {
            let mut fresh = AnyProcessor::new(kind, part.view.data.clone());
            for (key, value) in &part.state {
                if !key.starts_with(jivapay_processors::runtime::origins::STATE_PREFIX) {
                    fresh.get().restore(key, Some(value));
                }
            }
            fresh.get().hold_timers_until(Millis::MIN);
            part.processor = fresh;
        }
        result
    }

    /// Input partitions whose records the shadow has not all consumed, for the end of a run.
    pub fn unconsumed(&self, topics: &Topics) -> Vec<String> {
        let mut out = Vec::new();
        for kind in crate::processors::KINDS {
            for partition in 0..jivapay_schemas::topics::STREAM_PARTITIONS {
                for topic in kind.inputs() {
                    let end = topics.peek(topic, partition).map_or(0, |l| l.end());
                    let next = self.next(kind, topic, partition);
                    if next != end {
                        out.push(format!(
                            "{} partition {partition} of {topic}: consumed up to {next} of {end}",
                            kind.name()
                        ));
                    }
                }
            }
        }
        out
    }

    /// The next offset the shadow will consume of `topic` partition `partition` (retention
    /// must keep everything from there).
    pub fn next(&self, kind: ProcessorKind, topic: &str, partition: i32) -> i64 {
        self.parts
            .get(&(index(kind), partition))
            .and_then(|p| p.next.get(topic).copied())
            .unwrap_or(0)
    }
}

impl Part {
    #[allow(clippy::too_many_arguments)]
    fn replay(
        &mut self,
        registry: &SchemaRegistry,
        topics: &Topics,
        master: &MasterLog,
        partition: i32,
        dedup: bool,
        lenient: bool,
        noted: &mut Vec<Finding>,
        entry: Entry,
    ) -> Result<(), Finding> {
        self.view.advance(master, entry.version);
        let name = self.kind.name();
        let mut outputs: Vec<Emit> = Vec::new();
        for (topic, offset) in &entry.consumed {
            let next = *self.next.entry(topic).or_insert(0);
            if *offset > next {
                let finding = (
                    "exactly_once_application",
                    format!("{name} partition {partition}: {topic} offset {offset} consumed, but records from {next} on never were"),
                );
                if !lenient {
                    return Err(finding);
                }
                noted.push(finding);
            }
            // Read again (an uncommitted offset after a restore): fine if it changes nothing
            // — a time marker, a duplicate the trackers drop — as below.
            let again = *offset < next;
            self.next.insert(topic, next.max(offset + 1));
            let record = topics
                .peek(topic, partition)
                .and_then(|log| log.get(*offset))
                .ok_or_else(|| {
                    (
                        "exactly_once_application",
                        format!(
                            "{topic}/{partition} offset {offset} is gone before the replay read it"
                        ),
                    )
                })?;
            if self.kind.time_markers() == Some(*topic) {
                if let Some(stamp) =
                    codec::marker_stamp(registry, &record.key, record.payload.as_deref())
                {
                    self.processor
                        .get()
                        .hold_timers_until(stamp.saturating_sub(crate::TIMER_HOLD_MS));
                    continue;
                }
            }
            let origin = record
                .origin
                .as_deref()
                .and_then(|h| Origin::parse(h.as_bytes()));
            if dedup && origin.is_some_and(|o| !self.origins.admit(&o)) {
                continue;
            }
            if again {
                let finding = (
                    "exactly_once_application",
                    format!("{name} partition {partition}: {topic} offset {offset} applied again (next unconsumed: {next})"),
                );
                if !lenient {
                    return Err(finding);
                }
                noted.push(finding);
            }
            let Some(payload) = &record.payload else {
                continue;
            };
            let input: Input = codec::decode(registry, topic, payload).map_err(|e| {
                (
                    "decodable",
                    format!("{topic}/{partition} offset {offset}: {e}"),
                )
            })?;
            outputs.extend(self.processor.get().apply(input, entry.now));
        }
        let changes = end_batch(
            &mut self.processor,
            &mut self.origins,
            partition,
            entry.tick,
            entry.now,
            &mut outputs,
        );
        let encoded = codec::outputs(registry, &outputs).map_err(|e| {
            (
                "decodable",
                format!("the replay's output does not encode: {e}"),
            )
        })?;
        compare_outputs(registry, name, partition, &entry, &encoded)?;
        if self.kind != ProcessorKind::Fraud && changes != entry.changes {
            return Err((
                "replay_identical",
                format!(
                    "{name} partition {partition} at {}: state changes differ\n  pipeline: {}\n  replay:   {}",
                    entry.now,
                    describe_changes(&entry.changes),
                    describe_changes(&changes)
                ),
            ));
        }
        for change in changes {
            match change.state {
                Some(value) => self.state.insert(change.state_key, value),
                None => self.state.remove(&change.state_key),
            };
        }
        Ok(())
    }
}

fn compare_outputs(
    registry: &SchemaRegistry,
    name: &str,
    partition: i32,
    entry: &Entry,
    replayed: &[LoggedOutput],
) -> Result<(), Finding> {
    if replayed == entry.outputs.as_slice() {
        return Ok(());
    }
    let count = entry.outputs.len().max(replayed.len());
    let at = (0..count)
        .find(|i| entry.outputs.get(*i) != replayed.get(*i))
        .unwrap_or(0);
    let show = |o: Option<&LoggedOutput>| o.map_or("nothing".to_owned(), |o| describe(registry, o));
    Err((
        "replay_identical",
        format!(
            "{name} partition {partition} at {}: output {at} of {} (replay: {}) differs\n  pipeline: {}\n  replay:   {}",
            entry.now,
            entry.outputs.len(),
            replayed.len(),
            show(entry.outputs.get(at)),
            show(replayed.get(at)),
        ),
    ))
}

/// An output, decoded for a report.
pub fn describe(registry: &SchemaRegistry, output: &LoggedOutput) -> String {
    use jivapay_schemas::records::*;
    use jivapay_schemas::topics::*;
    let payload = &output.payload;
    let text = match output.topic.as_str() {
        ORDERS_EVENTS => registry
            .decode::<OrderEvent>(payload)
            .map(|r| format!("{r:?}")),
        ORDERS_SCREENED => registry
            .decode::<OrderScreened>(payload)
            .map(|r| format!("{r:?}")),
        ORDERS_ROUTED => registry
            .decode::<OrderRouted>(payload)
            .map(|r| format!("{r:?}")),
        LEDGER_TRANSFERS => registry
            .decode::<LedgerTransfer>(payload)
            .map(|r| format!("{r:?}")),
        STORE_POSTINGS => registry
            .decode::<StorePosting>(payload)
            .map(|r| format!("{r:?}")),
        TRADER_POSTINGS => registry
            .decode::<TraderPosting>(payload)
            .map(|r| format!("{r:?}")),
        TRADER_CAPACITY => registry
            .decode::<TraderCapacity>(payload)
            .map(|r| format!("{r:?}")),
        other => Ok(format!("{other}: {} bytes", payload.len())),
    };
    let text = text.unwrap_or_else(|e| format!("undecodable: {e}"));
    format!("{}: {}", output.topic, shorten(&text, 600))
}

fn describe_changes(changes: &[LoggedChange]) -> String {
    let keys: Vec<String> = changes
        .iter()
        .map(|c| {
            format!(
                "{}={}",
                c.state_key,
                c.state
                    .as_ref()
                    .map_or("∅".to_owned(), |s| format!("{} bytes", s.len()))
            )
        })
        .collect();
    shorten(&keys.join(", "), 800)
}

fn compare_state(
    kind: ProcessorKind,
    partition: i32,
    restored: &BTreeMap<String, Option<Vec<u8>>>,
    own: &BTreeMap<String, Vec<u8>>,
) -> Result<(), Finding> {
    // Fraud's sweeps drop a customer's window once nothing in it can count, at ticks a
    // restore reschedules: those keys may differ without any decision differing.
    let compared = |key: &String| kind != ProcessorKind::Fraud || !key.contains("/customer/");
    let loaded: BTreeMap<&String, &Vec<u8>> = restored
        .iter()
        .filter(|(k, _)| compared(k))
        .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
        .collect();
    let own: BTreeMap<&String, &Vec<u8>> = own.iter().filter(|(k, _)| compared(k)).collect();
    if loaded == own {
        return Ok(());
    }
    let mut differing: Vec<String> = Vec::new();
    for key in loaded.keys().chain(own.keys()) {
        let (a, b) = (loaded.get(key), own.get(key));
        if a != b {
            let show = |v: Option<&&Vec<u8>>| {
                v.map_or("absent".to_owned(), |v| format!("{} bytes", v.len()))
            };
            differing.push(format!("{key}: restored {}, history {}", show(a), show(b)));
        }
    }
    differing.dedup();
    let first = loaded
        .keys()
        .chain(own.keys())
        .find(|k| loaded.get(*k) != own.get(*k))
        .map(|k| (*k).clone())
        .unwrap_or_default();
    Err((
        "restore_equals_history",
        format!(
            "{} partition {partition} restored {} keys, its history has {}; differing: {}\n{FIRST_KEY}{first}",
            kind.name(),
            loaded.len(),
            own.len(),
            shorten(&differing.join("; "), 1200)
        ),
    ))
}

/// Marks the first differing key in a `restore_equals_history` finding (the caller adds the
/// changelog's history of that key).
pub const FIRST_KEY: &str = "first differing key: ";

/// `text` cut to at most `max` characters.
pub fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let cut: String = text.chars().take(max).collect();
    format!("{cut}…")
}
