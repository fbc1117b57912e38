//! May this trader take this routed order? The router asked with a slightly stale view; this
//! answer uses the book's authoritative state, so limits and deposits hold exactly.
//!
//! The checks run in a fixed order and the first failure is the reason, so the same state
//! always gives the same answer.

use super::calendar::Window;
use super::state::TraderState;
use crate::core::{pool, Millis};
use jivapay_schemas::records::{Direction, ModerationStatus, OrderRouted, Trader};
use rust_decimal::Decimal;

/// Why the book refuses a routed order (the `reason_code` it is known by).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// Zero or negative fiat or crypto amount: the router should never send one.
    InvalidAmount,
    TraderUnknown,
    TraderInactive,
    TraderNotInWork,
    TrafficDisabledByTeamlead,
    RequisiteUnknown,
    RequisiteNotApproved,
    RequisiteInactive,
    /// Pay-outs are held on the store's side and routed elsewhere (not in this book yet).
    DirectionNotSupported,
    PayInDisabled,
    RequisiteNotInPool,
    AmountBelowMin,
    AmountAboveMax,
    DailyTurnoverExceeded,
    MonthlyTurnoverExceeded,
    DailyCountExceeded,
    MonthlyCountExceeded,
    MinIntervalNotElapsed,
    DuplicateOpenAmount,
    InsufficientDeposit,
}

impl Refusal {
    pub const ALL: [Refusal; 20] = [
        Refusal::InvalidAmount,
        Refusal::TraderUnknown,
        Refusal::TraderInactive,
        Refusal::TraderNotInWork,
        Refusal::TrafficDisabledByTeamlead,
        Refusal::RequisiteUnknown,
        Refusal::RequisiteNotApproved,
        Refusal::RequisiteInactive,
        Refusal::DirectionNotSupported,
        Refusal::PayInDisabled,
        Refusal::RequisiteNotInPool,
        Refusal::AmountBelowMin,
        Refusal::AmountAboveMax,
        Refusal::DailyTurnoverExceeded,
        Refusal::MonthlyTurnoverExceeded,
        Refusal::DailyCountExceeded,
        Refusal::MonthlyCountExceeded,
        Refusal::MinIntervalNotElapsed,
        Refusal::DuplicateOpenAmount,
        Refusal::InsufficientDeposit,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Refusal::InvalidAmount => "invalid_amount",
            Refusal::TraderUnknown => "trader_unknown",
            Refusal::TraderInactive => "trader_inactive",
            Refusal::TraderNotInWork => "trader_not_in_work",
            Refusal::TrafficDisabledByTeamlead => "traffic_disabled_by_teamlead",
            Refusal::RequisiteUnknown => "requisite_unknown",
            Refusal::RequisiteNotApproved => "requisite_not_approved",
            Refusal::RequisiteInactive => "requisite_inactive",
            Refusal::DirectionNotSupported => "direction_not_supported",
            Refusal::PayInDisabled => "pay_in_disabled",
            Refusal::RequisiteNotInPool => "requisite_not_in_pool",
            Refusal::AmountBelowMin => "amount_below_min",
            Refusal::AmountAboveMax => "amount_above_max",
            Refusal::DailyTurnoverExceeded => "daily_turnover_exceeded",
            Refusal::MonthlyTurnoverExceeded => "monthly_turnover_exceeded",
            Refusal::DailyCountExceeded => "daily_count_exceeded",
            Refusal::MonthlyCountExceeded => "monthly_count_exceeded",
            Refusal::MinIntervalNotElapsed => "min_interval_not_elapsed",
            Refusal::DuplicateOpenAmount => "duplicate_open_amount",
            Refusal::InsufficientDeposit => "insufficient_deposit",
        }
    }
}

/// Accepts when every rule allows the order at `now` in the limits' calendar `window`.
pub fn check(
    trader: Option<&Trader>,
    routed: &OrderRouted,
    state: &TraderState,
    window: Window,
    now: Millis,
) -> Result<(), Refusal> {
    let fiat = routed.fiat_amount.value();
    if fiat <= Decimal::ZERO || routed.crypto_amount.value() <= Decimal::ZERO {
        return Err(Refusal::InvalidAmount);
    }

    let trader = trader.ok_or(Refusal::TraderUnknown)?;
    refuse_if(!trader.is_active, Refusal::TraderInactive)?;
    refuse_if(!trader.is_in_work, Refusal::TraderNotInWork)?;
    refuse_if(
        !trader.is_traffic_enabled_by_teamlead,
        Refusal::TrafficDisabledByTeamlead,
    )?;

    let requisite = trader
        .requisites
        .iter()
        .find(|r| r.requisite_id == routed.requisite_id)
        .ok_or(Refusal::RequisiteUnknown)?;
    refuse_if(
        requisite.moderation_status != ModerationStatus::Approved,
        Refusal::RequisiteNotApproved,
    )?;
    refuse_if(!requisite.is_active, Refusal::RequisiteInactive)?;
    refuse_if(
        routed.direction != Direction::PayIn,
        Refusal::DirectionNotSupported,
    )?;
    refuse_if(!requisite.pay_in_enabled, Refusal::PayInDisabled)?;
    refuse_if(
        pool(&requisite.fiat_currency, &requisite.payment_method) != routed.pool,
        Refusal::RequisiteNotInPool,
    )?;
    refuse_if(fiat < requisite.min_amount.value(), Refusal::AmountBelowMin)?;
    refuse_if(fiat > requisite.max_amount.value(), Refusal::AmountAboveMax)?;

    let usage = state.usage_at(requisite.requisite_id, window);
    refuse_if(
        exceeds(
            usage.daily_turnover,
            fiat,
            requisite.daily_turnover_limit.map(Decimal::from),
        ),
        Refusal::DailyTurnoverExceeded,
    )?;
    refuse_if(
        exceeds(
            usage.monthly_turnover,
            fiat,
            requisite.monthly_turnover_limit.map(Decimal::from),
        ),
        Refusal::MonthlyTurnoverExceeded,
    )?;
    refuse_if(
        requisite
            .daily_count_limit
            .is_some_and(|limit| usage.daily_count >= limit),
        Refusal::DailyCountExceeded,
    )?;
    refuse_if(
        requisite
            .monthly_count_limit
            .is_some_and(|limit| usage.monthly_count >= limit),
        Refusal::MonthlyCountExceeded,
    )?;
    let min_interval_ms = i64::from(requisite.min_interval_secs.max(0)) * 1000;
    refuse_if(
        usage
            .last_order_at
            .is_some_and(|last| now.saturating_sub(last) < min_interval_ms),
        Refusal::MinIntervalNotElapsed,
    )?;
    refuse_if(
        state
            .open_amounts(requisite.requisite_id)
            .any(|open| open == fiat),
        Refusal::DuplicateOpenAmount,
    )?;
    refuse_if(
        state.free_deposit() < routed.crypto_amount.value(),
        Refusal::InsufficientDeposit,
    )?;
    Ok(())
}

fn refuse_if(condition: bool, refusal: Refusal) -> Result<(), Refusal> {
    if condition {
        Err(refusal)
    } else {
        Ok(())
    }
}

/// Would `used + amount` pass `limit`? An overflow passes every limit.
fn exceeds(used: Decimal, amount: Decimal, limit: Option<Decimal>) -> bool {
    limit.is_some_and(|limit| used.checked_add(amount).is_none_or(|total| total > limit))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_snake_case() {
        let codes: HashSet<&str> = Refusal::ALL.iter().map(|r| r.code()).collect();
        assert_eq!(codes.len(), Refusal::ALL.len());
        for code in codes {
            assert!(code.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
        }
    }

    #[test]
    fn limits_compare_the_total_after_the_order() {
        let d = |n: i64| Decimal::from(n);
        assert!(
            !exceeds(d(900), d(100), Some(d(1000))),
            "reaching the limit is allowed"
        );
        assert!(exceeds(d(901), d(100), Some(d(1000))));
        assert!(!exceeds(d(1_000_000), d(1), None));
        assert!(exceeds(Decimal::MAX, d(1), Some(Decimal::MAX)));
    }
}
