//! What a runtime is given: its limits and where a test stops it, and how it ends.

use jivapay_platform::failure::Halt;
use jivapay_platform::health::Health;
use jivapay_platform::kafka::ProduceError;
use jivapay_schemas::CodecError;
use std::sync::Arc;

use super::changelog::RestoreError;

/// Limits of one runtime.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Consumer group id.
    pub group: String,
    /// Most records applied in one batch (one produce, changelog write and commit).
    pub batch_records_max: usize,
    /// How long a batch waits for more records once it has one.
    pub batch_wait_ms: u64,
    /// How often timers fire (`Processor::tick`).
    pub tick_interval_ms: u64,
    /// Bound on one restore attempt (a failed one is retried).
    pub restore_timeout_ms: u64,
    /// How long an owned partition may write nothing to its changelog before it writes a
    /// lease record (`ownership.rs`): the bound on noticing a fenced owner's late write there,
    /// well below the changelog's `min.compaction.lag.ms`.
    pub lease_interval_ms: u64,
    /// Static group membership (`group.instance.id`), see `KafkaSettings::instance_id`.
    pub instance_id: Option<String>,
    /// Where the loop reports its state (`processor <name>`).
    pub health: Health,
    /// Where a test stops the loop as if its process died there (none in production).
    pub crash_points: CrashPoints,
    /// The input this loop writes time markers to and reads them back from
    /// (`time_markers.rs`): its processor's timers then fire only up to what every accepted
    /// command is known to precede. `ProcessorKind::time_markers`.
    pub time_markers: Option<&'static str>,
}

/// The steps of a batch after which a test can stop the loop as if its process died:
/// nothing after the step is sent, committed or closed gracefully by the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// The decision log is written; no output is sent.
    AfterLog,
    /// The outputs are sent; the state records are not.
    AfterOutputs,
    /// The state records are sent; the input offsets are not committed.
    AfterState,
    /// A write landed after another writer's in an owned changelog partition
    /// (`ownership.rs`); the partitions are not restored again yet.
    Disturbed,
}

/// Asked at every [`CrashPoint`] of every batch that sends something: `true` stops the loop
/// there with [`RuntimeError::Crashed`].
#[derive(Clone, Default)]
pub struct CrashPoints(Option<Arc<dyn Fn(CrashPoint) -> bool + Send + Sync>>);

impl CrashPoints {
    pub fn new(crash_at: impl Fn(CrashPoint) -> bool + Send + Sync + 'static) -> Self {
        Self(Some(Arc::new(crash_at)))
    }

    pub(super) fn check(&self, point: CrashPoint) -> Result<(), Halted> {
        match &self.0 {
            Some(crash_at) if crash_at(point) => Err(Some(RuntimeError::Crashed(point))),
            _ => Ok(()),
        }
    }
}

impl std::fmt::Debug for CrashPoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "CrashPoints(set)"
        } else {
            "CrashPoints(none)"
        })
    }
}

impl RuntimeConfig {
    pub fn new(group: impl Into<String>) -> Self {
        Self {
            group: group.into(),
            batch_records_max: 500,
            batch_wait_ms: 5,
            tick_interval_ms: 500,
            restore_timeout_ms: 60_000,
            lease_interval_ms: 30_000,
            instance_id: None,
            health: Health::default(),
            crash_points: CrashPoints::default(),
            time_markers: None,
        }
    }
}

/// A failure no retry mends: the loop ends with it and its process exits.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("produce: {0}")]
    Produce(#[from] ProduceError),
    #[error("restore: {0}")]
    Restore(#[from] RestoreError),
    #[error("encode: {0}")]
    Encode(#[from] CodecError),
    #[error("changelog topic {0} does not exist: run `jivapay topics create` first")]
    NoChangelog(String),
    #[error("inputs and changelog are not co-partitioned: {0:?}")]
    NotCoPartitioned(Vec<(String, i32)>),
    #[error("state key {key} of a record of partition {partition} belongs to partition {belongs}")]
    Misrouted {
        key: String,
        partition: i32,
        belongs: i32,
    },
    #[error("stopped at {0:?} (a test's crash point)")]
    Crashed(CrashPoint),
}

/// How a step ended early: `None` when the loop is stopping.
pub(super) type Halted = Option<RuntimeError>;

pub(super) fn halted<E: Into<RuntimeError>>(halt: Halt<E>) -> Halted {
    match halt {
        Halt::Stopped => None,
        Halt::Failed(e, _) => Some(e.into()),
    }
}
