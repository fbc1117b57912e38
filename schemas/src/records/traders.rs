//! Commands to the trader book and the capacity it publishes.

use jivapay_domain::{FiatAmount, OrderId, RequisiteId, TraderId, UsdtAmount};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TraderCommandKind {
    ClientConfirmed,
    TraderConfirmed,
    ReportNonPayment,
    CancelOrder,
    ResolveDispute,
    Deposit,
    Withdraw,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DisputeResolution {
    InFavourOfCustomer,
    InFavourOfTrader,
}

/// `trader.commands`, key = trader id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraderCommand {
    #[serde(with = "crate::uuid_text")]
    pub command_id: Uuid,
    #[serde(with = "crate::uuid_text")]
    pub trader_id: TraderId,
    #[serde(with = "crate::uuid_text::option")]
    pub order_id: Option<OrderId>,
    pub kind: TraderCommandKind,
    #[serde(with = "crate::decimal::opt_scale6")]
    pub amount: Option<UsdtAmount>,
    pub resolution: Option<DisputeResolution>,
    pub receipt_key: Option<String>,
    #[serde(with = "crate::uuid_text::option")]
    pub actor_id: Option<Uuid>,
    pub actor_role: Option<String>,
    pub reason: Option<String>,
    pub issued_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequisiteUsage {
    #[serde(with = "crate::uuid_text")]
    pub requisite_id: RequisiteId,
    #[serde(with = "crate::decimal::scale2")]
    pub daily_turnover: FiatAmount,
    #[serde(with = "crate::decimal::scale2")]
    pub monthly_turnover: FiatAmount,
    pub daily_count: i32,
    pub monthly_count: i32,
    pub last_order_at: Option<i64>,
    #[serde(with = "crate::decimal::vec_scale2")]
    pub open_amounts: Vec<FiatAmount>,
}

/// `trader.capacity` (compacted), key = trader id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraderCapacity {
    #[serde(with = "crate::uuid_text")]
    pub trader_id: TraderId,
    #[serde(with = "crate::decimal::scale6")]
    pub free_deposit: UsdtAmount,
    pub requisites: Vec<RequisiteUsage>,
    pub version: i64,
    pub updated_at: i64,
}
