//! One run: a seed makes the world, the traffic and the faults; the event loop moves the
//! simulated clock from event to event. Phases: traffic (orders arrive, faults strike), then
//! settling (no new order, fault or master-data change; dead and frozen instances come back)
//! until the pipeline is quiescent — every record consumed, every timer run out, nothing in
//! flight — and the final invariants are checked (`housekeeping.rs`).

pub use crate::env::{Config, Env, Finding, Stats};
use crate::faults::Strike;
use crate::group::{self, Group, SESSION_TIMEOUT_MS};
use crate::master::{MasterLog, MasterView};
use crate::observe::Observer;
use crate::people::{self, People};
use crate::processors::KINDS;
use crate::queue::{Event, Queue};
use crate::rng::{Rng, Stream};
use crate::runtime::{self, End, Instance, Status};
use crate::shadow::Shadow;
use crate::topics::Topics;
use crate::world::{World, START};
use crate::{admin, invariants};
use jivapay_processors::core::Millis;
use jivapay_processors::ProcessorKind;
use jivapay_schemas::topics::*;
use jivapay_schemas::SchemaRegistry;
use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

/// How a run ended.
pub struct Outcome {
    pub config: Config,
    pub findings: Vec<Finding>,
    pub stats: Stats,
    /// Orders placed, and how many ended in each status.
    pub orders: u64,
    pub statuses: BTreeMap<&'static str, u64>,
    pub simulated_ms: Millis,
    pub wall: Duration,
    pub replayed_batches: u64,
}

pub struct Sim {
    pub env: Env,
    pub groups: Vec<Group>,
    pub(crate) placed: u64,
    pub(crate) settle_at: Option<Millis>,
    pub(crate) done: bool,
}

/// Settling begins this long after the last order: its payment window (at most 240 s), a
/// confirmation timeout (at most 150 s), and a margin.
pub(crate) const SETTLE_AFTER_MS: Millis = 450_000;
/// A run that is not quiescent this long after settling began is stuck.
pub(crate) const STUCK_AFTER_MS: Millis = 1_800_000;

impl Sim {
    pub fn new(config: Config) -> Sim {
        let seed = config.seed;
        let mut world_rng = Rng::stream(seed, Stream::World);
        let world = World::new(&mut world_rng);
        let registry = SchemaRegistry::builtin().expect("the shipped schemas parse");
        let mut traders_by_partition = vec![Vec::new(); STREAM_PARTITIONS as usize];
        for trader in world.trader_ids() {
            let key = registry.encode_key(&trader.to_string());
            traders_by_partition[crate::codec::partition_of(TRADER_COMMANDS, &key) as usize]
                .push(trader);
        }
        let people = People {
            page_skew: world_rng.range(-500, 500),
            api_skew: world_rng.range(-500, 500),
            ..People::default()
        };
        let groups = KINDS
            .iter()
            .map(|kind| {
                let count = world_rng.range(1, 3) as usize;
                let instances = (0..count)
                    .map(|id| Instance::new(id, *kind, world_rng.range(-500, 500)))
                    .collect();
                Group::new(*kind, instances, world_rng.chance(0.5))
            })
            .collect();
        let mut env = Env {
            registry,
            now: START,
            topics: Topics::default(),
            master: MasterLog::default(),
            live: MasterView::default(),
            shadow: Shadow::new(
                config.dedup,
                config.known.iter().any(|k| k == "exactly_once_application"),
            ),
            observer: Observer::default(),
            people,
            queue: Queue::default(),
            traffic_rng: Rng::stream(seed, Stream::Traffic),
            people_rng: Rng::stream(seed, Stream::People),
            fault_rng: Rng::stream(seed, Stream::Faults),
            schedule_rng: Rng::stream(seed, Stream::Schedule),
            admin_rng: Rng::stream(seed, Stream::Admin),
            stats: Stats::default(),
            findings: Vec::new(),
            markers: vec![vec![i64::MIN; STREAM_PARTITIONS as usize]; KINDS.len()],
            table_positions: vec![0; TABLE_PARTITIONS as usize],
            late_batches: HashSet::new(),
            settling: false,
            trace: std::env::var("JIVAPAY_SIM_TRACE").ok().and_then(|t| {
                let (kind, partition) = t.split_once('/')?;
                // `*`: every partition of the kind.
                let partition = if partition == "*" {
                    -1
                } else {
                    partition.parse().ok()?
                };
                Some((kind.to_owned(), partition))
            }),
            trace_order: std::env::var("JIVAPAY_SIM_ORDER").ok(),
            traders_by_partition,
            world,
            config,
        };
        for change in env.world.initial(START) {
            env.push_master(change);
        }
        Sim {
            env,
            groups,
            placed: 0,
            settle_at: None,
            done: false,
        }
    }

    /// Runs to the end (quiescence, or the first broken invariant).
    pub fn run(mut self) -> Outcome {
        let started = Instant::now();
        for kind in 0..KINDS.len() {
            self.rebalance(kind);
            for id in 0..self.groups[kind].instances.len() {
                self.schedule_poll(kind, id, 1);
            }
        }
        let deposits: Vec<_> = self
            .env
            .world
            .trader_ids()
            .into_iter()
            .zip(self.env.world.deposits.clone())
            .collect();
        for (trader, amount) in deposits {
            people::deposit(&mut self.env, trader, amount);
        }
        let env = &mut self.env;
        env.schedule_at(START + 2_000, Event::Arrival);
        env.schedule_at(START + 50, Event::TablePoll);
        env.schedule_at(START + 1_000, Event::Housekeeping);
        let admin = env.admin_rng.exponential(15_000.0);
        env.schedule_at(START + admin, Event::Admin);
        let top_up = env.admin_rng.exponential(40_000.0);
        env.schedule_at(START + top_up, Event::TopUp);
        let mean = env.config.faults.rebalance_mean_ms;
        if mean > 0.0 {
            for kind in 0..KINDS.len() {
                let at = START + env.fault_rng.exponential(mean);
                env.schedule_at(at, Event::Leave { kind });
            }
        }
        let progress = std::env::var("JIVAPAY_SIM_PROGRESS").is_ok();
        let mut events: u64 = 0;
        while let Some((at, event)) = self.env.queue.pop() {
            self.env.now = self.env.now.max(at);
            events += 1;
            if progress && events % 200_000 == 0 {
                eprintln!(
                    "{events} events, at {} s: {event:?}",
                    (self.env.now - START) / 1000
                );
            }
            self.handle(event);
            if self.done || !self.env.findings.is_empty() {
                break;
            }
        }
        if self.env.findings.is_empty() {
            let findings = invariants::at_the_end(&self.env, &self.groups);
            for finding in findings {
                self.env.finding(finding);
            }
        }
        let mut statuses: BTreeMap<&'static str, u64> = BTreeMap::new();
        for placed in &self.env.people.placed {
            let status = self
                .env
                .observer
                .orders
                .get(&placed.order)
                .and_then(|v| v.status())
                .map_or("none", |s| s.as_str());
            *statuses.entry(status).or_default() += 1;
        }
        self.env.stats.late_kept = self.env.observer.late_kept;
        self.env.stats.second_holders = self.env.observer.second_holders;
        self.env.stats.late_ignored = self.env.observer.late_ignored;
        Outcome {
            config: self.env.config.clone(),
            findings: std::mem::take(&mut self.env.findings),
            stats: self.env.stats.clone(),
            orders: self.placed,
            statuses,
            simulated_ms: self.env.now - START,
            wall: started.elapsed(),
            replayed_batches: self.env.shadow.batches,
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Arrival => {
                people::place_order(&mut self.env, self.placed);
                self.placed += 1;
                if self.placed < self.env.config.orders {
                    let gap = self
                        .env
                        .traffic_rng
                        .exponential(self.env.world.arrival_mean_ms);
                    self.env.schedule_at(self.env.now + gap, Event::Arrival);
                } else {
                    self.settle_at = Some(self.env.now + SETTLE_AFTER_MS);
                }
            }
            Event::Append {
                topic,
                partition,
                record,
                ack,
            } => {
                self.env.append(topic, partition, record, false);
                if let Some(ack) = ack {
                    people::acked(&mut self.env, *ack);
                }
            }
            Event::Poll {
                kind,
                instance,
                life,
            } => self.poll(kind, instance, life),
            Event::Resume {
                kind,
                instance,
                life,
            } => self.resume(kind, instance, life),
            Event::Restart {
                kind,
                instance,
                life,
            } => self.restart(kind, instance, life),
            Event::Lost {
                kind,
                instance,
                life,
            } => self.lost(kind, instance, life),
            Event::SessionTimeout {
                kind,
                instance,
                life,
            } => {
                let i = &mut self.groups[kind].instances[instance];
                if i.life == life && matches!(i.status, Status::Dead | Status::Frozen) {
                    i.member = None;
                    self.rebalance(kind);
                }
            }
            Event::Leave { kind } => self.leave(kind),
            Event::Rejoin { kind, instance } => {
                let i = &mut self.groups[kind].instances[instance];
                if i.status == Status::Away {
                    i.status = Status::Alive;
                    i.life += 1;
                    self.rebalance(kind);
                    self.schedule_poll(kind, instance, 1);
                }
            }
            Event::TablePoll => {
                admin::read_capacity(&mut self.env);
                let next = self.env.schedule_rng.range(50, 300);
                self.env.schedule_at(self.env.now + next, Event::TablePoll);
            }
            Event::Admin => {
                if !self.env.settling {
                    admin::change(&mut self.env);
                    let next = self.env.admin_rng.exponential(15_000.0);
                    self.env.schedule_at(self.env.now + next, Event::Admin);
                }
            }
            Event::TopUp => {
                if !self.env.settling {
                    people::top_up(&mut self.env);
                    let next = self.env.admin_rng.exponential(40_000.0);
                    self.env.schedule_at(self.env.now + next, Event::TopUp);
                }
            }
            Event::Act(action) => people::act(&mut self.env, action),
            Event::Housekeeping => self.housekeeping(),
        }
    }

    fn schedule_poll(&mut self, kind: usize, instance: usize, delay: Millis) {
        let life = self.groups[kind].instances[instance].life;
        let at = self.env.now + delay;
        self.env.schedule_at(
            at,
            Event::Poll {
                kind,
                instance,
                life,
            },
        );
    }

    fn poll(&mut self, kind: usize, id: usize, life: u64) {
        let group = &mut self.groups[kind];
        let instance = &mut group.instances[id];
        if instance.life != life || instance.status != Status::Alive {
            return;
        }
        if instance.disturbed {
            // As the loop does before its next batch.
            let assigned = instance.assigned.clone();
            let end = group::rebuild(instance, &group.committed, &mut self.env, &assigned);
            if end != End::Done(true) {
                self.after(kind, id, end);
                return;
            }
        }
        let group = &mut self.groups[kind];
        let instance = &mut group.instances[id];
        self.env.stats.polls += 1;
        let end = runtime::poll(
            instance,
            &mut group.committed,
            group.generation,
            &mut self.env,
        );
        if KINDS[kind] == ProcessorKind::TraderBook {
            self.check_balances(kind, id);
        }
        self.after(kind, id, end);
    }

    /// What follows a batch: the next poll, or the process dying or freezing.
    fn after(&mut self, kind: usize, id: usize, end: End) {
        match end {
            End::Done(read) => {
                let delay = if read {
                    self.env.schedule_rng.range(2, 25)
                } else {
                    self.env.schedule_rng.range(10, 80)
                };
                self.schedule_poll(kind, id, delay);
            }
            End::Crashed(point) => {
                self.env.stats.crashes[point as usize] += 1;
                self.kill(kind, id);
            }
            End::Disturbed => {
                let delay = self.env.schedule_rng.range(2, 25);
                self.schedule_poll(kind, id, delay);
            }
            End::Frozen(ms) => {
                self.env.stats.freezes += 1;
                if ms > SESSION_TIMEOUT_MS {
                    self.env.stats.zombies += 1;
                }
                let instance = &mut self.groups[kind].instances[id];
                instance.status = Status::Frozen;
                instance.life += 1;
                let life = instance.life;
                let now = self.env.now;
                self.env.schedule_at(
                    now + ms,
                    Event::Resume {
                        kind,
                        instance: id,
                        life,
                    },
                );
                self.env.schedule_at(
                    now + SESSION_TIMEOUT_MS,
                    Event::SessionTimeout {
                        kind,
                        instance: id,
                        life,
                    },
                );
            }
        }
    }

    /// The process dies: everything in memory is lost; it restarts after a while, and the
    /// group notices its silence after the session timeout.
    fn kill(&mut self, kind: usize, id: usize) {
        let instance = &mut self.groups[kind].instances[id];
        instance.status = Status::Dead;
        instance.life += 1;
        instance.forget();
        let life = instance.life;
        let rng = &mut self.env.fault_rng;
        let down = if rng.chance(0.6) {
            rng.range(200, SESSION_TIMEOUT_MS - 1_000)
        } else {
            rng.range(SESSION_TIMEOUT_MS, SESSION_TIMEOUT_MS * 2)
        };
        let now = self.env.now;
        self.env.schedule_at(
            now + down,
            Event::Restart {
                kind,
                instance: id,
                life,
            },
        );
        self.env.schedule_at(
            now + SESSION_TIMEOUT_MS,
            Event::SessionTimeout {
                kind,
                instance: id,
                life,
            },
        );
    }

    fn restart(&mut self, kind: usize, id: usize, life: u64) {
        let group = &mut self.groups[kind];
        let generation = group.generation;
        let instance = &mut group.instances[id];
        if instance.life != life || instance.status != Status::Dead {
            return;
        }
        instance.status = Status::Alive;
        instance.life += 1;
        if group.static_members && instance.member == Some(generation) {
            // A static member back within its session: its partitions, no rebalance.
            let assigned = instance.assigned.clone();
            let end = group::rebuild(instance, &group.committed, &mut self.env, &assigned);
            self.after(kind, id, end);
            if self.groups[kind].deferred {
                self.rebalance(kind);
            }
        } else {
            // A new member (the old one leaves with its session).
            instance.member = None;
            self.rebalance(kind);
            self.schedule_poll(kind, id, 1);
        }
    }

    /// A frozen process goes on: it finishes its batch (as a fenced owner if its session
    /// ended meanwhile: its first changelog write finds it disturbed), then finds out whether
    /// it is still a member.
    fn resume(&mut self, kind: usize, id: usize, life: u64) {
        let group = &mut self.groups[kind];
        let instance = &mut group.instances[id];
        if instance.life != life || instance.status != Status::Frozen {
            return;
        }
        instance.status = Status::Alive;
        instance.life += 1;
        let end = crate::batch::advance(
            instance,
            &mut group.committed,
            group.generation,
            &mut self.env,
            Strike::None,
        );
        let (stale, deferred) = (instance.member != Some(group.generation), group.deferred);
        if stale {
            // Frozen past its session: its partitions have moved on. It learns so at its next
            // heartbeat; until then it goes on as their owner: disturbed at its first write,
            // it restores them again, and fences their new owner off in turn.
            let life = instance.life;
            let heartbeat = self.env.fault_rng.range(0, 3_000);
            let at = self.env.now + heartbeat;
            self.env.schedule_at(
                at,
                Event::Lost {
                    kind,
                    instance: id,
                    life,
                },
            );
        }
        self.after(kind, id, end);
        if deferred && !stale {
            self.rebalance(kind);
        }
    }

    /// A fenced owner learns its assignment is gone: it drops its partitions and joins again.
    fn lost(&mut self, kind: usize, id: usize, life: u64) {
        let generation = self.groups[kind].generation;
        let instance = &mut self.groups[kind].instances[id];
        if instance.life != life
            || instance.status != Status::Alive
            || instance.member == Some(generation)
        {
            return;
        }
        instance.forget();
        instance.member = None;
        instance.assigned.clear();
        instance.life += 1;
        self.rebalance(kind);
        self.schedule_poll(kind, id, 1);
    }

    /// A member leaves the group for a while (a deploy, a scale-down), then comes back.
    fn leave(&mut self, kind: usize) {
        if self.env.settling {
            return;
        }
        let candidates: Vec<usize> = self.groups[kind]
            .instances
            .iter()
            .filter(|i| i.status == Status::Alive)
            .map(|i| i.id)
            .collect();
        if !candidates.is_empty() {
            let id = candidates[self.env.fault_rng.index(candidates.len())];
            let instance = &mut self.groups[kind].instances[id];
            instance.status = Status::Away;
            instance.life += 1;
            instance.forget();
            self.rebalance(kind);
            let back = self.env.fault_rng.range(500, 8_000);
            self.env
                .schedule_at(self.env.now + back, Event::Rejoin { kind, instance: id });
        }
        let mean = self.env.config.faults.rebalance_mean_ms;
        let next = self.env.fault_rng.exponential(mean);
        self.env
            .schedule_at(self.env.now + next, Event::Leave { kind });
    }

    fn rebalance(&mut self, kind: usize) {
        let crashed = group::rebalance(&mut self.groups[kind], &mut self.env);
        for id in crashed {
            self.kill(kind, id);
        }
    }
}
