//! Rust types of the Avro schemas, one per schema family. Field order and enum variant order
//! follow the `.avsc` files exactly (Avro enums are encoded by position); the round-trip and
//! golden-bytes tests catch any drift.
//!
//! Timestamps are milliseconds since the Unix epoch (`timestamp-millis`); money is `Decimal` at
//! the schema's scale (fiat 2, USDT 6, rates 8, percentages 4).

mod ledger;
mod master;
mod ops;
mod orders;
mod traders;

pub use ledger::{
    AccountKind, AccountOwnerKind, LedgerEntry, LedgerTransfer, PostingKind, StorePosting,
    TraderPosting, TransferKind,
};
pub use master::{
    ModerationStatus, Rate, Requisite, RequisiteKind, Setting, SettingType, Store, StoreCommission,
    Trader, TraderCommission,
};
pub use ops::{ChangelogEntry, DeadLetter, InputOffset, LoggedBatch, LoggedChange, LoggedOutput};
pub use orders::{
    CandidateDecision, CandidateOutcome, Direction, OrderEvent, OrderEventKind, OrderRequested,
    OrderRouted, OrderScreened, OrderStatus,
};
pub use traders::{
    DisputeResolution, RequisiteUsage, TraderCapacity, TraderCommand, TraderCommandKind,
};

use serde::de::DeserializeOwned;
use serde::Serialize;

/// A type that is the value of some topic, encoded with the newest version of its schema.
pub trait Record: Serialize + DeserializeOwned {
    /// The schema family: the folder under `schemas/avro/`.
    const SCHEMA: &'static str;
}

macro_rules! record {
    ($($ty:ty => $name:literal),* $(,)?) => {
        $(impl Record for $ty { const SCHEMA: &'static str = $name; })*
    };
}

record! {
    OrderRequested => "order_requested",
    OrderScreened => "order_screened",
    OrderRouted => "order_routed",
    OrderEvent => "order_event",
    TraderCommand => "trader_command",
    LedgerTransfer => "ledger_transfer",
    StorePosting => "store_posting",
    TraderPosting => "trader_posting",
    TraderCapacity => "trader_capacity",
    Trader => "trader",
    Store => "store",
    Rate => "rate",
    Setting => "setting",
    ChangelogEntry => "changelog",
    DeadLetter => "dead_letter",
}
