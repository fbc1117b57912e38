//! The four real processors behind one type, so a partition can hold any of them and the
//! invariants can look inside the two that keep balances (the trader book and fraud).

use jivapay_processors::commissions::CommissionsProcessor;
use jivapay_processors::core::{Emit, MasterData, Millis, Processor};
use jivapay_processors::fraud::FraudProcessor;
use jivapay_processors::router::RouterProcessor;
use jivapay_processors::runtime::origins::Origins;
use jivapay_processors::trader_book::TraderBookProcessor;
use jivapay_processors::ProcessorKind;
use jivapay_schemas::records::LoggedChange;
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

/// The end of a batch (`runtime::batch::decide`): its timers when `tick`, `finish_batch`,
/// each appending to `outputs`; then the state changes of the processor and of its trackers.
pub fn end_batch(
    processor: &mut AnyProcessor,
    origins: &mut Origins,
    partition: i32,
    tick: bool,
    now: Millis,
    outputs: &mut Vec<Emit>,
) -> Vec<LoggedChange> {
    if tick {
        outputs.extend(processor.get().tick(now));
    }
    outputs.extend(processor.get().finish_batch(now));
    let mut changes: Vec<LoggedChange> = processor
        .get()
        .take_changes()
        .into_iter()
        .map(|(state_key, state)| LoggedChange { state_key, state })
        .collect();
    changes.extend(origins.take_changes(partition));
    changes
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
