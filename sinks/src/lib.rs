//! The sinks: consumers that write PostgreSQL (ledger, order projection, dead letters) or call
//! merchants (callbacks). This module registers the fixed set of them and what they read.

pub mod callbacks;
pub mod dead_letters;
pub mod ledger;
pub mod projection;
pub mod runtime;

use jivapay_schemas::topics::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkKind {
    Ledger,
    Projection,
    Callbacks,
    DeadLetters,
}

/// Every sink.
pub const SINKS: &[SinkKind] = &[
    SinkKind::Ledger,
    SinkKind::Projection,
    SinkKind::Callbacks,
    SinkKind::DeadLetters,
];

impl SinkKind {
    /// The name used on the command line and in consumer group ids.
    pub fn name(&self) -> &'static str {
        match self {
            SinkKind::Ledger => "ledger",
            SinkKind::Projection => "projection",
            SinkKind::Callbacks => "callbacks",
            SinkKind::DeadLetters => "dead-letters",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        SINKS.iter().copied().find(|s| s.name() == name)
    }

    /// The topics this sink consumes.
    pub fn inputs(&self) -> &'static [&'static str] {
        match self {
            SinkKind::Ledger => &[LEDGER_TRANSFERS],
            SinkKind::Projection => &[ORDERS_EVENTS],
            SinkKind::Callbacks => &[ORDERS_EVENTS],
            SinkKind::DeadLetters => &[DEAD_LETTERS],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_inputs_exist() {
        for s in SINKS {
            assert_eq!(SinkKind::from_name(s.name()), Some(*s));
            for t in s.inputs() {
                assert!(topic(t).is_some(), "{} reads unknown topic {t}", s.name());
            }
        }
    }
}
