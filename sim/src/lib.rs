//! A deterministic simulation of the whole processor pipeline, after TigerBeetle's VOPR: one
//! seed drives every choice — the world, the traffic, the people, the faults, the order in
//! which things happen — on a simulated clock in milliseconds, and a failing seed replays
//! exactly (`cargo run -p jivapay-sim --release -- --seed N`).
//!
//! **What runs for real**: the four processors of `jivapay_processors` (fraud, router, trader
//! book, commissions) as they are, on `InMemoryMasterData`; the records on every topic are the
//! bytes the runtime writes (Avro in the Confluent wire format, keys included), partitioned by
//! the Java partitioner over the encoded key, with the `jivapay-origin` header of
//! `runtime::origins` on every processor output; each consuming partition keeps the runtime's
//! own `Origins` trackers as part of its state. Command ids come from `jivapay_core`.
//!
//! **What is modelled**: the runtime loop of `processors/src/runtime/` (the simulation models
//! the protocol; it does not run rdkafka or tokio) — per processor a consumer group of one to
//! three instances (static or dynamic members, range assignment; a rebalance waits for members
//! whose session is alive, as the coordinator does), batches of the owned partitions' records,
//! ticks and time markers, the decision log written before the outputs, then the state records,
//! then the commit (refused to a member of an older generation); every changelog write checked
//! against the offset the owner expects it at, lease records of idle owners, and a disturbed
//! owner's batch stopped before its outputs or its commit and its partitions restored again;
//! restores that write a marker (the new owner's generation), ignore records of fenced owners,
//! load the state records and the newest logged batch, send that batch again byte for byte and
//! write again the keys a fenced owner wrote last; in-memory topics (append-only logs per
//! partition with offsets; changelogs compacted as Kafka's cleaner compacts them, with
//! `min.compaction.lag.ms`, streams truncated once every reader is past, an out-of-range
//! offset reset to the earliest);
//! the HTTP edges (the gateway; the payment page, which refuses a confirmation stamped at or
//! after the deadline; the trader API; the 5 s accept bound, 503s and retries; the admin's
//! outbox); people (customers who pay in time, at the last moment, too late or never; traders
//! who confirm, race their timeout, report non-payment, lapse or confirm at once; support that
//! cancels); master data changing mid-flight (traffic switches, in-work flags, requisites,
//! rates, the payment window, the confirmation timeout, commissions) and the `trader.capacity`
//! table following its topic; one holder per order as the projection folds it; fixed clock
//! skews within the 1 s bound; faults (`faults.rs`): crashes at every step of a batch and while
//! resending, freezes — past the session, a fenced owner that resumes, finishes its batch until
//! a write finds it disturbed, and restores the partitions it still believes its own until its
//! next heartbeat — producer duplicates, members leaving.
//!
//! **What is not modelled**: the brokers' own failures (lost acknowledged writes, reordering
//! within a partition, Tansu's under-reported watermark — a restore here reads to its marker
//! exactly), decision-log batches split in chunks (every batch here fits one), dead letters
//! (nothing undecodable is written; a decoding failure is reported as a broken invariant),
//! the sinks' PostgreSQL transactions and the callback sender (the ledger and the projection
//! are deduplicating readers of the topics), pay-outs, dispute resolution, clocks that drift
//! during a run, time-based retention (a stream keeps what a reader may still need), command
//! duplicates older than the trader book's memory of 128 command ids, and lost commits of a
//! live member.
//!
//! The invariants: `observe.rs` (as records arrive), `shadow.rs` and `batch.rs` (the replay and
//! exactly-once application), `invariants.rs` (balances after each batch, and at the end).

pub mod admin;
pub mod batch;
pub mod changelog;
pub mod codec;
pub mod env;
pub mod faults;
pub mod group;
mod housekeeping;
pub mod invariants;
pub mod master;
pub mod observe;
pub mod people;
pub mod processors;
pub mod queue;
mod report;
pub mod rng;
pub mod runtime;
pub mod shadow;
pub mod sim;
pub mod topics;
mod trace;
pub mod world;

pub use faults::Faults;
pub use sim::{Config, Finding, Outcome, Sim};

/// How far behind a time marker's stamp timers may fire (`platform/src/trader_commands.rs`).
pub use jivapay_platform::trader_commands::TIMER_HOLD_MS;

/// Runs one seed to its end.
pub fn run(config: Config) -> Outcome {
    Sim::new(config).run()
}
