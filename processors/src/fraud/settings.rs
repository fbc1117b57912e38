//! The runtime settings fraud reads, parsed from the `settings` table with the catalogue's
//! defaults (`platform/src/settings_catalog.rs`) when a key is missing or unreadable. The admin API
//! validates every write, so falling back only happens before the first publication or after a
//! bug; it is logged.

use crate::core::MasterData;
use jivapay_platform::settings_catalog as catalogue;
use rust_decimal::Decimal;
use serde_json::Value;
use std::str::FromStr;

pub const REVIEW_THRESHOLD: &str = "fraud.review_threshold";
pub const DENY_THRESHOLD: &str = "fraud.deny_threshold";
pub const STORE_ORDERS_PER_MINUTE: &str = "fraud.velocity.store_orders_per_minute";
pub const CUSTOMER_ORDERS_PER_HOUR: &str = "fraud.velocity.customer_orders_per_hour";
pub const PAYMENT_WINDOW_SECS: &str = "orders.payment_window_secs";

/// What fraud needs from the settings, read once per order (settings change without restart).
#[derive(Debug, Clone, PartialEq)]
pub struct FraudSettings {
    /// Fiat amount from which an order goes to manual review.
    pub review_threshold: Decimal,
    /// Fiat amount from which an order is denied.
    pub deny_threshold: Decimal,
    /// Orders one store may create in 60 s; the next ones go to review.
    pub store_orders_per_minute: usize,
    /// Orders one customer of a store may create in an hour; the next ones go to review.
    pub customer_orders_per_hour: usize,
    /// Time the customer has to pay and confirm a pay-in, from the order's `requested_at`.
    pub payment_window_secs: i64,
}

impl Default for FraudSettings {
    /// The catalogue's defaults (`jivapay_platform::settings_catalog`).
    fn default() -> Self {
        Self {
            review_threshold: catalogue::default_decimal(REVIEW_THRESHOLD),
            deny_threshold: catalogue::default_decimal(DENY_THRESHOLD),
            store_orders_per_minute: catalogue::default_integer(STORE_ORDERS_PER_MINUTE) as usize,
            customer_orders_per_hour: catalogue::default_integer(CUSTOMER_ORDERS_PER_HOUR) as usize,
            payment_window_secs: catalogue::default_integer(PAYMENT_WINDOW_SECS),
        }
    }
}

impl FraudSettings {
    pub fn load(master: &dyn MasterData) -> Self {
        let d = Self::default();
        Self {
            review_threshold: decimal(master, REVIEW_THRESHOLD, d.review_threshold),
            deny_threshold: decimal(master, DENY_THRESHOLD, d.deny_threshold),
            // A limit below 1 would send every order to review; the catalogue's minimum is 1.
            store_orders_per_minute: integer(
                master,
                STORE_ORDERS_PER_MINUTE,
                1,
                d.store_orders_per_minute as i64,
            ) as usize,
            customer_orders_per_hour: integer(
                master,
                CUSTOMER_ORDERS_PER_HOUR,
                1,
                d.customer_orders_per_hour as i64,
            ) as usize,
            payment_window_secs: payment_window_secs(master),
        }
    }
}

/// The payment window, read by every stage that states an order's expiry (fraud on CREATED,
/// the trader book for its timer) in this one way, so that they state the same instant.
pub fn payment_window_secs(master: &dyn MasterData) -> i64 {
    integer(
        master,
        PAYMENT_WINDOW_SECS,
        catalogue::minimum_integer(PAYMENT_WINDOW_SECS),
        catalogue::default_integer(PAYMENT_WINDOW_SECS),
    )
}

fn value(master: &dyn MasterData, key: &str) -> Option<Value> {
    let setting = master.setting(key)?;
    match serde_json::from_str(&setting.value_json) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!(key, error = %e, "setting is not JSON; using the default");
            None
        }
    }
}

/// A decimal setting: a JSON string (how the catalogue stores it) or, leniently, a number.
pub fn decimal(master: &dyn MasterData, key: &str, default: Decimal) -> Decimal {
    let parsed = match value(master, key) {
        None => return default,
        Some(Value::String(s)) => Decimal::from_str(&s).ok(),
        Some(Value::Number(n)) => Decimal::from_str(&n.to_string()).ok(),
        Some(_) => None,
    };
    parsed.unwrap_or_else(|| {
        tracing::warn!(key, "setting is not a decimal; using the default");
        default
    })
}

/// A whole-number setting, at least `min`.
pub fn integer(master: &dyn MasterData, key: &str, min: i64, default: i64) -> i64 {
    match value(master, key) {
        None => default,
        Some(v) => match v.as_i64() {
            Some(n) => n.max(min),
            None => {
                tracing::warn!(key, "setting is not a whole number; using the default");
                default
            }
        },
    }
}
