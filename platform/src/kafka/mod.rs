//! Kafka clients on any Kafka-protocol broker: the embedded mock cluster or an external one.
//!
//! Only what every broker we run supports is used: idempotent produce, fetch, consumer groups
//! with committed offsets, explicit topic creation. No transactions (see ARCHITECTURE §2.4).

mod broker;
pub(crate) mod client_config;
mod consumer;
mod context;
mod dead_letters;
mod embedded;
pub mod partitioner;
mod producer;
mod table;

pub use broker::Broker;
pub use client_config::{consumer_config, producer_config};
pub use consumer::{ConsumeError, Consumed, RecordConsumer};
pub use context::{LoopContext, Rebalanced, STATISTICS_INTERVAL_MS};
pub use dead_letters::{DeadLetters, RawRecord};
pub use embedded::EmbeddedBroker;
pub use producer::{Delivered, ProduceError, RecordProducer};
pub use table::{Table, TableError};
