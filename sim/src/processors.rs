//! The four real processors behind one type, so a partition can hold any of them and the
//! invariants can look inside the two that keep balances (the trader book and fraud).

use jivapay_processors::commissions::CommissionsProcessor;
use jivapay_processors::core::{MasterData, Processor};
use jivapay_processors::fraud::FraudProcessor;
use jivapay_processors::router::RouterProcessor;
use jivapay_processors::trader_book::TraderBookProcessor;
use jivapay_processors::ProcessorKind;
use std::sync::Arc;

pub enum AnyProcessor {
    Fraud(FraudProcessor),
    Router(RouterProcessor),
    Book(TraderBookProcessor),
    Commissions(CommissionsProcessor),
}

impl AnyProcessor {
    /// A fresh processor of `kind`, as the runtime's `make()` builds it.
    pub fn new(kind: ProcessorKind, master: Arc<dyn MasterData>) -> AnyProcessor {
        match kind {
            ProcessorKind::Fraud => AnyProcessor::Fraud(FraudProcessor::new(master)),
            ProcessorKind::Router => AnyProcessor::Router(RouterProcessor::new(master)),
            ProcessorKind::TraderBook => AnyProcessor::Book(TraderBookProcessor::new(master)),
            ProcessorKind::Commissions => {
                AnyProcessor::Commissions(CommissionsProcessor::new(master))
            }
        }
    }

    pub fn get(&mut self) -> &mut dyn Processor {
        match self {
            AnyProcessor::Fraud(p) => p,
            AnyProcessor::Router(p) => p,
            AnyProcessor::Book(p) => p,
            AnyProcessor::Commissions(p) => p,
        }
    }

    pub fn book(&self) -> Option<&TraderBookProcessor> {
        match self {
            AnyProcessor::Book(p) => Some(p),
            _ => None,
        }
    }

    pub fn fraud(&self) -> Option<&FraudProcessor> {
        match self {
            AnyProcessor::Fraud(p) => Some(p),
            _ => None,
        }
    }

    /// The earliest timer still to fire (`Processor::next_deadline`).
    pub fn next_deadline(&self) -> Option<i64> {
        match self {
            AnyProcessor::Fraud(p) => p.next_deadline(),
            AnyProcessor::Router(p) => p.next_deadline(),
            AnyProcessor::Book(p) => p.next_deadline(),
            AnyProcessor::Commissions(p) => p.next_deadline(),
        }
    }
}

/// The processor kinds in pipeline order, with a dense index for tables.
pub const KINDS: [ProcessorKind; 4] = [
    ProcessorKind::Fraud,
    ProcessorKind::Router,
    ProcessorKind::TraderBook,
    ProcessorKind::Commissions,
];

pub fn index(kind: ProcessorKind) -> usize {
    KINDS
        .iter()
        .position(|k| *k == kind)
        .expect("every kind is listed")
}
