//! The streaming loop, written once for every processor: consume the assigned partitions of
//! the co-partitioned inputs, feed records in batches to the pure processor, produce its
//! outputs, write its state changes with the input offsets they cover to its changelog, then
//! commit. On every (re)assignment the state of the assigned partitions is rebuilt from the
//! changelog and inputs already covered by it are skipped.
//!
//! Guarantee: effectively once without Kafka transactions. A crash between producing outputs
//! and writing the changelog replays those inputs; the processor is deterministic, so the
//! replay emits records with the same ids, which every consumer deduplicates.
//!
//! Failures follow `jivapay_platform::failure`: a send or restore that fails transiently is
//! retried with the same bytes until it goes through (the loop reports itself retrying); an
//! input that does not decode is dead-lettered; anything else ends the loop with its error.

mod changelog;
mod decode;
mod outgoing;
mod run;

pub use changelog::{restore, RestoreError, Restored};
pub use run::{run, RuntimeConfig, RuntimeError};
