//! Which faults a run injects, and how often. Every draw comes from the seed's fault stream.
//!
//! - **crash** — the process dies at one step of a batch: before its decision log is written
//!   (while applying), with only some partitions' log records written, after the log, with
//!   only some outputs delivered (per destination partition a prefix: the idempotent producer
//!   keeps a partition's order), after the outputs, with only some state records written,
//!   after the state records (before the commit); or while a restore sends its logged batch
//!   again. It restarts after a while: within the session timeout a static member gets its
//!   partitions back; later, or without static membership, the group rebalances.
//! - **freeze** — the process stops at a step of a batch and resumes later where it was.
//!   Past the session timeout its partitions have moved on: it resumes as a fenced owner
//!   ("zombie") and goes on with its old generation until a changelog write lands after its
//!   successor's marker (`runtime.rs`, disturbed owners): a batch frozen before its decision
//!   log stops right after it, before any output; one frozen after it sends what is left —
//!   outputs its successor has sent again already (duplicates), state records, after which
//!   it stops; a commit is refused — and its next write (a lease, a decision log) finds it
//!   disturbed. Then, until its next heartbeat tells it it is no longer a member (0–3 s), it
//!   restores the partitions it believes are still its own, fencing their owner, which
//!   restores them in turn.
//! - **duplicate** — a producer retry appends a record a second time, a little later.
//! - **rebalance** — a member leaves and joins again: every member of the group restores.

/// Fault rates of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Faults {
    /// Chance that a batch crashes at one of its steps.
    pub crash: f64,
    /// Chance that a batch freezes at one of its steps.
    pub freeze: f64,
    /// Share of freezes that outlast the session (the owner is fenced off meanwhile).
    pub zombie: f64,
    /// Chance that a produced record is appended twice.
    pub duplicate: f64,
    /// Mean time between deliberate rebalances of each group (0: none).
    pub rebalance_mean_ms: f64,
}

impl Faults {
    pub const NONE: Faults = Faults {
        crash: 0.0,
        freeze: 0.0,
        zombie: 0.0,
        duplicate: 0.0,
        rebalance_mean_ms: 0.0,
    };

    pub const DEFAULT: Faults = Faults {
        crash: 0.002,
        freeze: 0.0005,
        zombie: 0.5,
        duplicate: 0.01,
        rebalance_mean_ms: 120_000.0,
    };

    pub const HEAVY: Faults = Faults {
        crash: 0.01,
        freeze: 0.002,
        zombie: 0.5,
        duplicate: 0.05,
        rebalance_mean_ms: 30_000.0,
    };

    /// By name: `none`, `default`, `heavy`.
    pub fn named(name: &str) -> Option<Faults> {
        match name {
            "none" => Some(Faults::NONE),
            "default" => Some(Faults::DEFAULT),
            "heavy" => Some(Faults::HEAVY),
            _ => None,
        }
    }

    /// The command-line arguments that select these rates.
    pub fn arguments(&self) -> String {
        let base = [
            ("none", Faults::NONE),
            ("default", Faults::DEFAULT),
            ("heavy", Faults::HEAVY),
        ];
        for (name, faults) in base {
            if *self == faults {
                return format!("--faults {name}");
            }
            if *self
                == (Faults {
                    zombie: 0.0,
                    ..faults
                })
            {
                return format!("--faults {name} --no-zombies");
            }
        }
        format!("{self:?}")
    }
}

/// Where in a batch a crash or a freeze strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Point {
    /// While applying: nothing of the batch was written.
    BeforeLog,
    /// Some partitions' log records written, not all.
    MidLog,
    AfterLog,
    /// Some outputs delivered.
    MidOutputs,
    AfterOutputs,
    /// Some state records written.
    MidState,
    /// Before the commit.
    AfterState,
}

pub const CRASH_POINTS: [Point; 7] = [
    Point::BeforeLog,
    Point::MidLog,
    Point::AfterLog,
    Point::MidOutputs,
    Point::AfterOutputs,
    Point::MidState,
    Point::AfterState,
];

/// A freeze stops between steps (a step's sends run concurrently and end together).
pub const FREEZE_POINTS: [Point; 4] = [
    Point::BeforeLog,
    Point::AfterLog,
    Point::AfterOutputs,
    Point::AfterState,
];

/// What strikes one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strike {
    None,
    Crash(Point),
    /// Stops at the point for that many milliseconds.
    Freeze(Point, i64),
}
