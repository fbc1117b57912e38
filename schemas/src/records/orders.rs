//! Orders on their way through the pipeline: requested → screened → routed, and their events.

use jivapay_domain::{FiatAmount, OrderId, RequisiteId, StoreId, TraderId, UsdtAmount};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The names are written once, in the domain; the records carry the domain's enums (same
/// variants in the schemas' order, same serde names, so the same bytes).
pub use jivapay_domain::order::{Direction, OrderEventKind, OrderStatus};

/// `orders.requested`, key = store id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderRequested {
    #[serde(with = "crate::uuid_text")]
    pub order_id: OrderId,
    #[serde(with = "crate::uuid_text")]
    pub store_id: StoreId,
    pub external_order_id: String,
    pub direction: Direction,
    #[serde(with = "crate::decimal::opt_scale2")]
    pub fiat_amount: Option<FiatAmount>,
    pub fiat_currency: String,
    pub payment_method: String,
    pub customer_id: Option<String>,
    pub callback_url: Option<String>,
    pub success_url: Option<String>,
    pub fail_url: Option<String>,
    pub payment_token: String,
    /// The end of the payment window the gateway promised (v2; absent on v1 records).
    pub expires_at: Option<i64>,
    pub requested_at: i64,
}

/// `orders.screened`, key = pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderScreened {
    #[serde(with = "crate::uuid_text")]
    pub order_id: OrderId,
    #[serde(with = "crate::uuid_text")]
    pub store_id: StoreId,
    pub external_order_id: String,
    pub direction: Direction,
    pub pool: String,
    #[serde(with = "crate::decimal::scale2")]
    pub fiat_amount: FiatAmount,
    pub fiat_currency: String,
    pub payment_method: String,
    pub customer_id: Option<String>,
    #[serde(with = "crate::uuid_text::vec")]
    pub excluded_traders: Vec<TraderId>,
    pub attempt: i32,
    pub expires_at: Option<i64>,
    /// The trader books that refused the order so far, each with its reason.
    #[serde(default)]
    pub refusals: Vec<CandidateDecision>,
    pub requested_at: i64,
    pub screened_at: i64,
}

/// `orders.routed`, key = trader id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderRouted {
    #[serde(with = "crate::uuid_text")]
    pub order_id: OrderId,
    #[serde(with = "crate::uuid_text")]
    pub store_id: StoreId,
    pub external_order_id: String,
    pub direction: Direction,
    pub pool: String,
    #[serde(with = "crate::uuid_text")]
    pub trader_id: TraderId,
    #[serde(with = "crate::uuid_text")]
    pub requisite_id: RequisiteId,
    #[serde(with = "crate::decimal::scale2")]
    pub fiat_amount: FiatAmount,
    pub fiat_currency: String,
    pub payment_method: String,
    #[serde(with = "crate::decimal::scale8")]
    pub rate: Decimal,
    #[serde(with = "crate::decimal::scale6")]
    pub crypto_amount: UsdtAmount,
    #[serde(with = "crate::uuid_text::vec")]
    pub excluded_traders: Vec<TraderId>,
    pub attempt: i32,
    pub expires_at: Option<i64>,
    /// Every requisite considered for this proposal (earlier refusals, skipped, chosen): the
    /// trader book states them on the ASSIGNED event.
    #[serde(default)]
    pub candidates: Vec<CandidateDecision>,
    pub requested_at: i64,
    pub routed_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CandidateOutcome {
    Chosen,
    Skipped,
    Refused,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidateDecision {
    #[serde(with = "crate::uuid_text")]
    pub trader_id: TraderId,
    #[serde(with = "crate::uuid_text::option")]
    pub requisite_id: Option<RequisiteId>,
    pub outcome: CandidateOutcome,
    pub reason_code: Option<String>,
}

/// `orders.events`, key = order id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderEvent {
    #[serde(with = "crate::uuid_text")]
    pub event_id: Uuid,
    #[serde(with = "crate::uuid_text")]
    pub order_id: OrderId,
    #[serde(with = "crate::uuid_text")]
    pub store_id: StoreId,
    pub external_order_id: String,
    pub direction: Direction,
    pub sequence: i32,
    pub kind: OrderEventKind,
    pub status: OrderStatus,
    pub previous_status: Option<OrderStatus>,
    #[serde(with = "crate::decimal::opt_scale2")]
    pub fiat_amount: Option<FiatAmount>,
    pub fiat_currency: String,
    pub payment_method: String,
    #[serde(with = "crate::decimal::opt_scale8")]
    pub rate: Option<Decimal>,
    #[serde(with = "crate::decimal::opt_scale6")]
    pub crypto_amount: Option<UsdtAmount>,
    #[serde(with = "crate::decimal::opt_scale6")]
    pub store_commission: Option<UsdtAmount>,
    #[serde(with = "crate::decimal::opt_scale6")]
    pub trader_reward: Option<UsdtAmount>,
    #[serde(with = "crate::uuid_text::option")]
    pub trader_id: Option<TraderId>,
    #[serde(with = "crate::uuid_text::option")]
    pub requisite_id: Option<RequisiteId>,
    pub customer_id: Option<String>,
    pub callback_url: Option<String>,
    pub payment_token: Option<String>,
    pub expires_at: Option<i64>,
    pub reason_code: Option<String>,
    pub reason_detail: Option<String>,
    pub candidates: Vec<CandidateDecision>,
    pub occurred_at: i64,
}
