//! The screening rules, pure: an order, its store, the settings and the velocity counts in,
//! a verdict out. The order of the checks decides which reason an order gets when several
//! apply: a refusal of the store first, then the amount (deny before review), then velocity.

use super::settings::FraudSettings;
use jivapay_schemas::records::{Direction, OrderRequested, Store};
use rust_decimal::Decimal;

/// The outcome of screening one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Let through: CREATED, then to the router.
    Accept,
    /// Final REVIEW with a stable reason code.
    Review {
        reason: &'static str,
        detail: String,
    },
    /// Final REJECTED with a stable reason code.
    Reject {
        reason: &'static str,
        detail: String,
    },
}

/// How many orders came before this one within the velocity windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Velocity {
    /// Orders of the store in the 60 s before this one.
    pub store_earlier: usize,
    /// Orders of the same customer of the store in the hour before; `None` without customer id.
    pub customer_earlier: Option<usize>,
}

/// Whether the order may be screened at all: its store exists and is enabled, and it is a
/// pay-in (pay-outs arrive with their own issue; until then they are refused, not guessed).
/// `None`: go on with [`assess`].
pub fn admission(order: &OrderRequested, store: Option<&Store>) -> Option<Verdict> {
    match store {
        None => Some(Verdict::Reject {
            reason: "store_disabled",
            detail: "the store is unknown".into(),
        }),
        Some(s) if !s.is_enabled => Some(Verdict::Reject {
            reason: "store_disabled",
            detail: "the store is disabled".into(),
        }),
        Some(_) if order.direction != Direction::PayIn => Some(Verdict::Reject {
            reason: "direction_not_supported",
            detail: "only pay-ins are screened".into(),
        }),
        Some(_) => None,
    }
}

/// The amount and velocity rules.
pub fn assess(order: &OrderRequested, settings: &FraudSettings, velocity: Velocity) -> Verdict {
    let Some(amount) = order.fiat_amount.map(|a| a.value()) else {
        return Verdict::Review {
            reason: "amount_missing",
            detail: "the order has no amount".into(),
        };
    };
    if amount <= Decimal::ZERO {
        return Verdict::Reject {
            reason: "amount_not_positive",
            detail: format!("amount {amount} is not positive"),
        };
    }
    if amount >= settings.deny_threshold {
        return Verdict::Reject {
            reason: "amount_above_deny_threshold",
            detail: format!(
                "amount {amount} is at or above the deny threshold {}",
                settings.deny_threshold
            ),
        };
    }
    if amount >= settings.review_threshold {
        return Verdict::Review {
            reason: "amount_above_review_threshold",
            detail: format!(
                "amount {amount} is at or above the review threshold {}",
                settings.review_threshold
            ),
        };
    }
    // "More than N in the window" counting this order: N earlier ones are already too many.
    if velocity.store_earlier >= settings.store_orders_per_minute {
        return Verdict::Review {
            reason: "velocity_store",
            detail: format!(
                "more than {} orders of the store within 60 s",
                settings.store_orders_per_minute
            ),
        };
    }
    if velocity
        .customer_earlier
        .is_some_and(|n| n >= settings.customer_orders_per_hour)
    {
        return Verdict::Review {
            reason: "velocity_customer",
            detail: format!(
                "more than {} orders of the customer within an hour",
                settings.customer_orders_per_hour
            ),
        };
    }
    Verdict::Accept
}
