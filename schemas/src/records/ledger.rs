//! Double-entry transfers and the postings that tell each book what to apply.

use jivapay_domain::{OrderId, StoreId, TraderId};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TransferKind {
    PayIn,
    PayOut,
    Deposit,
    Withdrawal,
    DisputeResolution,
    Adjustment,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AccountOwnerKind {
    Store,
    Trader,
    Platform,
    External,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AccountKind {
    Available,
    Hold,
    Fees,
    Settlement,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub owner_kind: AccountOwnerKind,
    #[serde(with = "crate::uuid_text::option")]
    pub owner_id: Option<Uuid>,
    pub account_kind: AccountKind,
    pub currency: String,
    /// Signed: positive credits the account, negative debits it.
    #[serde(with = "crate::decimal::scale6")]
    pub amount: Decimal,
}

/// `ledger.transfers`, key = order id (or transfer id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerTransfer {
    #[serde(with = "crate::uuid_text")]
    pub transfer_id: Uuid,
    pub kind: TransferKind,
    #[serde(with = "crate::uuid_text::option")]
    pub order_id: Option<OrderId>,
    pub description: Option<String>,
    pub entries: Vec<LedgerEntry>,
    pub created_at: i64,
}

impl LedgerTransfer {
    /// True when the entries sum to zero in every currency (the ledger's one invariant).
    pub fn is_balanced(&self) -> bool {
        let mut sums: std::collections::HashMap<&str, Decimal> = Default::default();
        for e in &self.entries {
            *sums.entry(e.currency.as_str()).or_default() += e.amount;
        }
        sums.values().all(|s| s.is_zero())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PostingKind {
    Credit,
    Debit,
    Hold,
    Release,
    Capture,
}

/// `store.postings`, key = store id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StorePosting {
    #[serde(with = "crate::uuid_text")]
    pub posting_id: Uuid,
    #[serde(with = "crate::uuid_text")]
    pub store_id: StoreId,
    #[serde(with = "crate::uuid_text::option")]
    pub order_id: Option<OrderId>,
    #[serde(with = "crate::uuid_text::option")]
    pub transfer_id: Option<Uuid>,
    pub kind: PostingKind,
    pub currency: String,
    #[serde(with = "crate::decimal::scale6")]
    pub amount: Decimal,
    pub posted_at: i64,
}

/// `trader.postings`, key = trader id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraderPosting {
    #[serde(with = "crate::uuid_text")]
    pub posting_id: Uuid,
    #[serde(with = "crate::uuid_text")]
    pub trader_id: TraderId,
    #[serde(with = "crate::uuid_text::option")]
    pub order_id: Option<OrderId>,
    #[serde(with = "crate::uuid_text::option")]
    pub transfer_id: Option<Uuid>,
    pub kind: PostingKind,
    pub currency: String,
    #[serde(with = "crate::decimal::scale6")]
    pub amount: Decimal,
    pub posted_at: i64,
}
