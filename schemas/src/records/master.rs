//! Master data published from PostgreSQL through the outbox to compacted topics.

use crate::records::Direction;
use jivapay_domain::{FiatAmount, RequisiteId, StoreId, TraderId};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraderCommission {
    pub payment_method: String,
    pub direction: Direction,
    #[serde(with = "crate::decimal::scale4")]
    pub percent: Decimal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RequisiteKind {
    Card,
    Phone,
    Account,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ModerationStatus {
    Pending,
    Approved,
    Rejected,
    Blocked,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Requisite {
    #[serde(with = "crate::uuid_text")]
    pub requisite_id: RequisiteId,
    pub payment_method: String,
    pub fiat_currency: String,
    pub bank_code: Option<String>,
    pub kind: RequisiteKind,
    pub number_masked: String,
    pub holder_name: String,
    pub pay_in_enabled: bool,
    pub pay_out_enabled: bool,
    #[serde(with = "crate::decimal::scale2")]
    pub min_amount: FiatAmount,
    #[serde(with = "crate::decimal::scale2")]
    pub max_amount: FiatAmount,
    #[serde(with = "crate::decimal::opt_scale2")]
    pub daily_turnover_limit: Option<FiatAmount>,
    #[serde(with = "crate::decimal::opt_scale2")]
    pub monthly_turnover_limit: Option<FiatAmount>,
    pub daily_count_limit: Option<i32>,
    pub monthly_count_limit: Option<i32>,
    pub min_interval_secs: i32,
    pub moderation_status: ModerationStatus,
    pub is_active: bool,
}

/// `traders` (compacted), key = trader id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trader {
    #[serde(with = "crate::uuid_text")]
    pub trader_id: TraderId,
    #[serde(with = "crate::uuid_text::option")]
    pub team_id: Option<Uuid>,
    pub priority: i32,
    pub is_active: bool,
    pub is_in_work: bool,
    pub is_traffic_enabled_by_teamlead: bool,
    pub commissions: Vec<TraderCommission>,
    pub requisites: Vec<Requisite>,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreCommission {
    pub payment_method: String,
    pub direction: Direction,
    #[serde(with = "crate::decimal::scale4")]
    pub percent: Decimal,
}

/// `stores` (compacted), key = store id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Store {
    #[serde(with = "crate::uuid_text")]
    pub store_id: StoreId,
    #[serde(with = "crate::uuid_text")]
    pub merchant_id: Uuid,
    pub name: String,
    pub is_enabled: bool,
    pub callback_url: Option<String>,
    pub commissions: Vec<StoreCommission>,
    pub updated_at: i64,
}

/// `rates` (compacted), key = fiat currency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    pub fiat_currency: String,
    /// Fiat per USDT.
    #[serde(with = "crate::decimal::scale8")]
    pub rate: Decimal,
    pub source: String,
    pub observed_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SettingType {
    Integer,
    Decimal,
    Boolean,
    String,
    DurationSecs,
    Json,
}

/// `settings` (compacted), key = setting key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Setting {
    pub key: String,
    pub value_type: SettingType,
    pub value_json: String,
    pub updated_at: i64,
}
