//! The stream processors: fraud (keyed by store), router (keyed by pool), trader book (keyed
//! by trader) and commissions (keyed by order). This module registers the fixed set of them
//! with the topics each one reads together, and checks at start-up that those topics are
//! co-partitioned (a processor instance must own the same partition number of all of them).

pub mod commissions;
pub mod core;
pub mod fraud;
pub mod launch;
pub mod router;
pub mod runtime;
pub mod tables;
pub mod trader_book;

use jivapay_platform::kafka::Broker;
use jivapay_platform::StartupError;
use jivapay_schemas::topics::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessorKind {
    Fraud,
    Router,
    TraderBook,
    Commissions,
}

/// Every processor, in pipeline order.
pub const PROCESSORS: &[ProcessorKind] = &[
    ProcessorKind::Fraud,
    ProcessorKind::Router,
    ProcessorKind::TraderBook,
    ProcessorKind::Commissions,
];

impl ProcessorKind {
    /// The name used on the command line, in consumer group ids and changelog topics.
    pub fn name(&self) -> &'static str {
        match self {
            ProcessorKind::Fraud => "fraud",
            ProcessorKind::Router => "router",
            ProcessorKind::TraderBook => "trader-book",
            ProcessorKind::Commissions => "commissions",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        PROCESSORS.iter().copied().find(|p| p.name() == name)
    }

    /// The keyed input streams, read together and therefore co-partitioned.
    pub fn inputs(&self) -> &'static [&'static str] {
        match self {
            ProcessorKind::Fraud => &[ORDERS_REQUESTED, STORE_POSTINGS],
            ProcessorKind::Router => &[ORDERS_SCREENED],
            ProcessorKind::TraderBook => &[ORDERS_ROUTED, TRADER_COMMANDS, TRADER_POSTINGS],
            ProcessorKind::Commissions => &[ORDERS_EVENTS],
        }
    }

    /// The input this processor's loop writes time markers to, when its timers race
    /// commands: the trader book's payment windows and confirmation timeouts against the
    /// customers' and traders' confirmations (`runtime/time_markers.rs`).
    pub fn time_markers(&self) -> Option<&'static str> {
        match self {
            ProcessorKind::TraderBook => Some(TRADER_COMMANDS),
            ProcessorKind::Fraud | ProcessorKind::Router | ProcessorKind::Commissions => None,
        }
    }

    /// The compacted topic that holds this processor's state.
    pub fn changelog(&self) -> &'static str {
        match self {
            ProcessorKind::Fraud => "fraud.changelog",
            ProcessorKind::Router => "router.changelog",
            ProcessorKind::TraderBook => "trader-book.changelog",
            ProcessorKind::Commissions => "commissions.changelog",
        }
    }

    /// Master-data tables (compacted topics) read whole by every instance.
    pub fn tables(&self) -> &'static [&'static str] {
        match self {
            ProcessorKind::Fraud => &[STORES, SETTINGS],
            ProcessorKind::Router => &[TRADERS, RATES, TRADER_CAPACITY, SETTINGS],
            ProcessorKind::TraderBook => &[TRADERS, SETTINGS],
            ProcessorKind::Commissions => &[STORES, TRADERS],
        }
    }
}

/// Refuses to run a processor whose inputs and changelog differ in partition count, or are
/// missing: its state would be split across instances that do not own the same keys.
pub async fn check_co_partitioning(
    broker: &Broker,
    kind: ProcessorKind,
) -> Result<(), StartupError> {
    let mut topics: Vec<&str> = kind.inputs().to_vec();
    topics.push(kind.changelog());
    let counts = broker.partition_counts(&topics).await?;
    for topic in &topics {
        if !counts.iter().any(|(name, _)| name == topic) {
            return Err(StartupError::Kafka(format!(
                "{topic} does not exist: run `jivapay topics create` first"
            )));
        }
    }
    let (first, expected) = &counts[0];
    for (topic, actual) in &counts[1..] {
        if actual != expected {
            return Err(StartupError::Kafka(format!(
                "{} reads {first} ({expected} partitions) and {topic} ({actual} partitions) together; \
                 co-partitioned topics must have the same count",
                kind.name()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in PROCESSORS {
            assert_eq!(ProcessorKind::from_name(p.name()), Some(*p));
        }
        assert_eq!(ProcessorKind::from_name("nope"), None);
    }

    #[test]
    fn every_topic_named_is_in_the_catalogue() {
        for p in PROCESSORS {
            for t in p.inputs().iter().chain(p.tables()).chain([&p.changelog()]) {
                assert!(topic(t).is_some(), "{} names unknown topic {t}", p.name());
            }
        }
    }
}
