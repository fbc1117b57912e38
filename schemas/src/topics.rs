//! The topic catalogue: the one place that names every topic, its key, partition count, cleanup
//! policy and value schema. Topics are created from it at start-up, idempotently.
//!
//! Topics read together by one processor are co-partitioned (same count, same key), so the
//! counts below come in groups: every keyed stream has [`STREAM_PARTITIONS`].

/// Partitions of every keyed stream and of the processors' changelogs. Co-partitioned topics
/// must agree; changing it needs a migration of every processor's state.
pub const STREAM_PARTITIONS: i32 = 8;
/// Partitions of the compacted master-data tables, which every reader consumes whole.
pub const TABLE_PARTITIONS: i32 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cleanup {
    Delete,
    Compact,
}

impl Cleanup {
    pub fn as_config(&self) -> &'static str {
        match self {
            Cleanup::Delete => "delete",
            Cleanup::Compact => "compact",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: &'static str,
    /// What the record key is (documentation and the registry's `<topic>-key` subject).
    pub key: &'static str,
    pub partitions: i32,
    pub cleanup: Cleanup,
    /// The schema family of the record values (folder under `schemas/avro/`).
    pub value_schema: &'static str,
}

/// How long Kafka's log cleaner leaves a changelog record alone before a newer record of its
/// key may remove it (`min.compaction.lag.ms`). An owner notices a fenced owner's late write
/// within its lease interval (30 s) and writes the key again (`processors::runtime`
/// `ownership.rs`); until then the cleaner must keep the value the late record supersedes.
/// An hour leaves a wide margin.
pub const CHANGELOG_COMPACTION_LAG_MS: u64 = 3_600_000;

impl TopicSpec {
    /// `min.compaction.lag.ms` of the topic, if it sets one.
    pub fn min_compaction_lag_ms(&self) -> Option<u64> {
        (self.value_schema == "changelog").then_some(CHANGELOG_COMPACTION_LAG_MS)
    }
}

const fn stream(name: &'static str, key: &'static str, value_schema: &'static str) -> TopicSpec {
    TopicSpec {
        name,
        key,
        partitions: STREAM_PARTITIONS,
        cleanup: Cleanup::Delete,
        value_schema,
    }
}

const fn table(name: &'static str, key: &'static str, value_schema: &'static str) -> TopicSpec {
    TopicSpec {
        name,
        key,
        partitions: TABLE_PARTITIONS,
        cleanup: Cleanup::Compact,
        value_schema,
    }
}

const fn changelog(name: &'static str) -> TopicSpec {
    TopicSpec {
        name,
        key: "state key",
        partitions: STREAM_PARTITIONS,
        cleanup: Cleanup::Compact,
        value_schema: "changelog",
    }
}

pub const ORDERS_REQUESTED: &str = "orders.requested";
pub const ORDERS_SCREENED: &str = "orders.screened";
pub const ORDERS_ROUTED: &str = "orders.routed";
pub const ORDERS_EVENTS: &str = "orders.events";
pub const TRADER_COMMANDS: &str = "trader.commands";
pub const LEDGER_TRANSFERS: &str = "ledger.transfers";
pub const STORE_POSTINGS: &str = "store.postings";
pub const TRADER_POSTINGS: &str = "trader.postings";
pub const TRADER_CAPACITY: &str = "trader.capacity";
pub const TRADERS: &str = "traders";
pub const STORES: &str = "stores";
pub const RATES: &str = "rates";
pub const SETTINGS: &str = "settings";
pub const DEAD_LETTERS: &str = "deadletters";

pub const TOPICS: &[TopicSpec] = &[
    stream(ORDERS_REQUESTED, "store id", "order_requested"),
    stream(ORDERS_SCREENED, "pool (fiat:method)", "order_screened"),
    stream(ORDERS_ROUTED, "trader id", "order_routed"),
    stream(TRADER_COMMANDS, "trader id", "trader_command"),
    stream(ORDERS_EVENTS, "order id", "order_event"),
    stream(
        LEDGER_TRANSFERS,
        "order id or transfer id",
        "ledger_transfer",
    ),
    stream(STORE_POSTINGS, "store id", "store_posting"),
    stream(TRADER_POSTINGS, "trader id", "trader_posting"),
    table(TRADER_CAPACITY, "trader id", "trader_capacity"),
    table(TRADERS, "trader id", "trader"),
    table(STORES, "store id", "store"),
    TopicSpec {
        partitions: 1,
        ..table(RATES, "fiat currency", "rate")
    },
    TopicSpec {
        partitions: 1,
        ..table(SETTINGS, "setting key", "setting")
    },
    changelog("fraud.changelog"),
    changelog("router.changelog"),
    changelog("trader-book.changelog"),
    changelog("commissions.changelog"),
    TopicSpec {
        partitions: 1,
        ..stream(DEAD_LETTERS, "source topic", "dead_letter")
    },
];

/// The catalogue entry of a topic.
pub fn topic(name: &str) -> Option<&'static TopicSpec> {
    TOPICS.iter().find(|t| t.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::SCHEMAS;
    use std::collections::HashSet;

    #[test]
    fn topic_names_are_unique() {
        let names: HashSet<_> = TOPICS.iter().map(|t| t.name).collect();
        assert_eq!(names.len(), TOPICS.len());
    }

    #[test]
    fn every_topic_has_a_shipped_schema() {
        for t in TOPICS {
            assert!(
                SCHEMAS.iter().any(|s| s.name == t.value_schema),
                "{} names missing schema {}",
                t.name,
                t.value_schema
            );
        }
    }

    #[test]
    fn co_partitioned_inputs_agree() {
        // Read together by one processor: fraud, trader book.
        let groups: &[&[&str]] = &[
            &[ORDERS_REQUESTED, STORE_POSTINGS, "fraud.changelog"],
            &[
                ORDERS_ROUTED,
                TRADER_COMMANDS,
                TRADER_POSTINGS,
                "trader-book.changelog",
            ],
            &[ORDERS_SCREENED, "router.changelog"],
            &[ORDERS_EVENTS, "commissions.changelog"],
        ];
        for group in groups {
            let counts: HashSet<_> = group.iter().map(|n| topic(n).unwrap().partitions).collect();
            assert_eq!(counts.len(), 1, "{group:?} must share a partition count");
        }
    }
}
