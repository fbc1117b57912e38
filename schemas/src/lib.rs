//! Avro schemas of every topic, their Rust types, the topic catalogue and the Confluent wire
//! codec.
//!
//! - `avro/<name>/v<N>.avsc` holds every version of every schema ever published; ids are fixed in
//!   [`catalogue::SCHEMAS`] and never change, so a record written today decodes after any restart.
//! - [`topics::TOPICS`] is the one list of topics (name, key, partitions, cleanup policy, schema).
//! - [`SchemaRegistry`] encodes and decodes records in the Confluent wire format: magic byte 0,
//!   4-byte big-endian schema id, Avro binary datum.
//!
//! Evolution rules (checked by tests): a new version may only add fields that have a default, or
//! remove fields that had one; a reader of the newest version must read every older version.

pub mod catalogue;
pub mod decimal;
mod inline;
pub mod records;
pub mod registry;
pub mod samples;
pub mod topics;
pub mod uuid_text;
pub mod wire;

pub use catalogue::{SchemaSource, SCHEMAS};
pub use records::Record;
pub use registry::{CodecError, RegisteredSchema, SchemaError, SchemaRegistry};
pub use topics::{Cleanup, TopicSpec, TOPICS};
