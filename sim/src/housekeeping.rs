//! What the run does every simulated second besides the traffic: log cleaning (every 5 s; the
//! compaction lag and a random active segment spare the newest records), retention,
//! the check of books open twice, the balances of the books after a batch, and the end —
//! settling once the last order is in, stopping once the pipeline is quiescent.

use crate::invariants;
use crate::processors::{index, KINDS};
use crate::queue::Event;
use crate::runtime::Status;
use crate::sim::{Sim, STUCK_AFTER_MS};
use crate::world::START;
use jivapay_processors::ProcessorKind;
use jivapay_schemas::topics::*;

impl Sim {
    /// No deposit or free balance below zero in the books one instance owns (a current
    /// member's: a fenced owner's state counts for nothing).
    pub(crate) fn check_balances(&mut self, kind: usize, id: usize) {
        let instance = &self.groups[kind].instances[id];
        if instance.member != Some(self.groups[kind].generation) {
            return;
        }
        for (partition, owned) in &instance.owned {
            let Some(book) = owned.processor.book() else {
                continue;
            };
            for trader in &self.env.traders_by_partition[*partition as usize] {
                if let Some(state) = book.trader(*trader) {
                    if let Err(finding) = invariants::balances(*trader, state) {
                        self.env.finding(finding);
                        return;
                    }
                }
            }
        }
    }

    pub(crate) fn housekeeping(&mut self) {
        let now = self.env.now;
        let tick = (now - START) / 1_000;
        if tick % 5 == 0 {
            let active = self.env.schedule_rng.range(0, 30) as usize;
            self.env.topics.compact_all(active, now);
            self.env.trace_compaction();
            let twice = invariants::open_twice(&self.env, &self.groups);
            self.env.stats.open_twice = self.env.stats.open_twice.max(twice);
        }
        if tick % 30 == 0 {
            self.retention();
        }
        if let Some(settle_at) = self.settle_at {
            if !self.env.settling && now >= settle_at {
                self.env.settling = true;
            }
            if self.env.settling {
                match self.stuck() {
                    None => self.done = true,
                    Some(what) if now >= settle_at + STUCK_AFTER_MS => {
                        self.env
                            .finding(("quiescent", format!("the pipeline never settled: {what}")));
                        self.done = true;
                    }
                    Some(_) => {}
                }
            }
        }
        self.env.schedule_at(now + 1_000, Event::Housekeeping);
    }

    /// Retention: records every reader is past are dropped (the replay's reader included).
    fn retention(&mut self) {
        for kind in KINDS {
            let committed = &self.groups[index(kind)].committed;
            for topic in kind.inputs() {
                for partition in 0..STREAM_PARTITIONS {
                    let group_at = committed.get(&(*topic, partition)).copied().unwrap_or(0);
                    // A margin: a consumer restarts at its group's committed offset, which can be
                    // a little behind what it last committed (covered offsets can go back).
                    let keep = group_at.min(self.env.shadow.next(kind, topic, partition)) - 2_000;
                    self.env.topics.log(topic, partition).truncate_before(keep);
                }
            }
        }
        for partition in 0..STREAM_PARTITIONS {
            let log = self.env.topics.log(LEDGER_TRANSFERS, partition);
            let end = log.end();
            log.truncate_before(end);
        }
    }

    /// What keeps the pipeline from being quiescent, if anything.
    fn stuck(&self) -> Option<String> {
        for group in &self.groups {
            for instance in &group.instances {
                if instance.status != Status::Alive
                    || instance.pending.is_some()
                    || instance.disturbed
                {
                    return Some(format!(
                        "{} instance {} is {:?}",
                        group.kind.name(),
                        instance.id,
                        instance.status
                    ));
                }
            }
            if !group.fully_owned() {
                return Some(format!(
                    "not every partition of {} is owned",
                    group.kind.name()
                ));
            }
        }
        if self.env.queue.in_flight > 0 {
            return Some(format!(
                "{} appends or actions still scheduled",
                self.env.queue.in_flight
            ));
        }
        if let Some(unconsumed) = self
            .env
            .shadow
            .unconsumed(&self.env.topics)
            .into_iter()
            .next()
        {
            return Some(unconsumed);
        }
        for instance in &self.groups[index(ProcessorKind::TraderBook)].instances {
            for (partition, owned) in &instance.owned {
                if let Some(deadline) = owned.processor.next_deadline() {
                    return Some(format!(
                        "a timer of trader book partition {partition} is due at {}",
                        deadline - START
                    ));
                }
            }
        }
        for (partition, position) in self.env.table_positions.iter().enumerate() {
            let end = self
                .env
                .topics
                .peek(TRADER_CAPACITY, partition as i32)
                .map_or(0, |l| l.end());
            if *position != end {
                return Some("the capacity table is behind".into());
            }
        }
        None
    }
}
