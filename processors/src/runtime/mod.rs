//! The streaming loop, written once for every processor: consume the assigned partitions of
//! the co-partitioned inputs and feed records in batches to one pure processor per partition;
//! log each partition's decisions (state changes and encoded outputs, with the input offsets
//! they cover) to its changelog partition, then produce the outputs, then write the state
//! records, then commit. On every (re)assignment each partition's state is rebuilt from the
//! changelog, its newest logged batch is sent again as it was, and inputs it covers are
//! skipped. Processors with timers get time markers (`time_markers.rs`): a timer fires only
//! once every command accepted before its deadline has been read.
//!
//! Guarantee: effectively once without Kafka transactions, and replays that never decide
//! differently (principle 4). A crash before the log is written loses nothing anyone saw:
//! the inputs are applied again. A crash after it re-sends the logged outputs, byte for byte,
//! whatever the clock or master data say by then; consumers deduplicate by id.
//!
//! Failures follow `jivapay_platform::failure`: a send or restore that fails transiently is
//! retried with the same bytes until it goes through (the loop reports itself retrying); an
//! input that does not decode is dead-lettered; anything else ends the loop with its error.

mod batch;
mod changelog;
mod config;
mod decision_log;
pub mod decode;
pub mod origins;
mod outgoing;
mod ownership;
mod run;
mod time_markers;

pub use changelog::{restore, Repairs, RestoreError, Restored};
pub use config::{CrashPoint, CrashPoints, RuntimeConfig, RuntimeError};
pub use outgoing::{changelog_partition, state_entry};
pub use ownership::LEASE_KEY;
pub use run::run;
