//! Whether one requisite may take one order, as far as the router can tell: the rules on the
//! trader and requisite records (exact), then the rules on the published capacity (slightly
//! stale; the trader book re-checks them with its own state).
//!
//! The checks run in a fixed order and the first failing one names the reason, so a
//! requisite's reason is stable and support reads the most basic problem first.

use crate::core::Millis;
use jivapay_domain::{FiatAmount, TraderId, UsdtAmount};
use jivapay_schemas::records::{
    Direction, ModerationStatus, Requisite, RequisiteUsage, Trader, TraderCapacity,
};
use rust_decimal::Decimal;

/// Decimal places of USDT amounts.
pub const USDT_SCALE: u32 = 6;

/// Published counters older than this cannot belong to the current local day (the longest
/// local day, with a daylight-saving change, lasts 25 h). The trader book republishes its
/// capacity when a day begins; this only keeps a trader from being skipped for good if that
/// publication is missing, without the router needing the time zone.
pub const LONGEST_DAY_MS: Millis = 25 * 3_600_000;
/// The same for the current local month (31 days and a daylight-saving hour).
pub const LONGEST_MONTH_MS: Millis = (31 * 24 + 1) * 3_600_000;

/// Why a requisite was not proposed: the stable `reason_code` of its candidate entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SkipReason {
    /// Its trader's book refused this order before.
    ExcludedAfterRefusal,
    TraderInactive,
    NotInWork,
    TrafficDisabledByTeamLead,
    NotApproved,
    RequisiteInactive,
    /// The requisite does not take this direction (pay-in or pay-out disabled).
    DirectionDisabled(Direction),
    BelowMinAmount,
    AboveMaxAmount,
    /// The trader's book has published no capacity yet.
    NoCapacity,
    InsufficientDeposit,
    DailyTurnoverLimit,
    MonthlyTurnoverLimit,
    DailyCountLimit,
    MonthlyCountLimit,
    MinInterval,
    /// Another open order on the requisite has the same amount (payments could not be told
    /// apart).
    SameAmountOpen,
}

impl SkipReason {
    pub fn code(&self) -> &'static str {
        match self {
            SkipReason::ExcludedAfterRefusal => "excluded_after_refusal",
            SkipReason::TraderInactive => "trader_inactive",
            SkipReason::NotInWork => "not_in_work",
            SkipReason::TrafficDisabledByTeamLead => "traffic_disabled_by_team_lead",
            SkipReason::NotApproved => "requisite_not_approved",
            SkipReason::RequisiteInactive => "requisite_inactive",
            SkipReason::DirectionDisabled(Direction::PayIn) => "pay_in_disabled",
            SkipReason::DirectionDisabled(Direction::PayOut) => "pay_out_disabled",
            SkipReason::BelowMinAmount => "below_min_amount",
            SkipReason::AboveMaxAmount => "above_max_amount",
            SkipReason::NoCapacity => "no_capacity_published",
            SkipReason::InsufficientDeposit => "insufficient_deposit",
            SkipReason::DailyTurnoverLimit => "daily_turnover_limit",
            SkipReason::MonthlyTurnoverLimit => "monthly_turnover_limit",
            SkipReason::DailyCountLimit => "daily_count_limit",
            SkipReason::MonthlyCountLimit => "monthly_count_limit",
            SkipReason::MinInterval => "min_interval",
            SkipReason::SameAmountOpen => "same_amount_open",
        }
    }
}

/// The order as eligibility sees it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub direction: Direction,
    pub fiat_amount: FiatAmount,
    /// At the current rate, 6 places.
    pub crypto_amount: UsdtAmount,
    pub excluded_traders: &'a [TraderId],
    pub now: Millis,
}

/// C = fiat / rate, rounded half away from zero to 6 places; `None` for a rate that is not
/// positive (or a quotient out of range).
pub fn crypto_amount(fiat_amount: FiatAmount, rate: Decimal) -> Option<UsdtAmount> {
    if rate <= Decimal::ZERO {
        return None;
    }
    fiat_amount
        .value()
        .checked_div(rate)
        .map(UsdtAmount::rounded)
}

/// Checks `requisite` of `trader` for `request`; the first rule that fails names the reason.
pub fn check(
    trader: &Trader,
    requisite: &Requisite,
    capacity: Option<&TraderCapacity>,
    request: &Request<'_>,
) -> Result<(), SkipReason> {
    check_records(trader, requisite, request)?;
    check_capacity(requisite, capacity, request)
}

/// The rules on master data, which the router knows exactly.
fn check_records(
    trader: &Trader,
    requisite: &Requisite,
    request: &Request<'_>,
) -> Result<(), SkipReason> {
    let rules = [
        (
            request.excluded_traders.contains(&trader.trader_id),
            SkipReason::ExcludedAfterRefusal,
        ),
        (!trader.is_active, SkipReason::TraderInactive),
        (!trader.is_in_work, SkipReason::NotInWork),
        (
            !trader.is_traffic_enabled_by_teamlead,
            SkipReason::TrafficDisabledByTeamLead,
        ),
        (
            requisite.moderation_status != ModerationStatus::Approved,
            SkipReason::NotApproved,
        ),
        (!requisite.is_active, SkipReason::RequisiteInactive),
        (
            match request.direction {
                Direction::PayIn => !requisite.pay_in_enabled,
                Direction::PayOut => !requisite.pay_out_enabled,
            },
            SkipReason::DirectionDisabled(request.direction),
        ),
        (
            request.fiat_amount < requisite.min_amount,
            SkipReason::BelowMinAmount,
        ),
        (
            request.fiat_amount > requisite.max_amount,
            SkipReason::AboveMaxAmount,
        ),
    ];
    match rules.into_iter().find(|(fails, _)| *fails) {
        Some((_, reason)) => Err(reason),
        None => Ok(()),
    }
}

/// The rules on the published capacity and the requisite's limits.
fn check_capacity(
    requisite: &Requisite,
    capacity: Option<&TraderCapacity>,
    request: &Request<'_>,
) -> Result<(), SkipReason> {
    let Some(capacity) = capacity else {
        return Err(SkipReason::NoCapacity);
    };
    if capacity.free_deposit < request.crypto_amount {
        return Err(SkipReason::InsufficientDeposit);
    }
    let unused = RequisiteUsage {
        requisite_id: requisite.requisite_id,
        daily_turnover: FiatAmount::ZERO,
        monthly_turnover: FiatAmount::ZERO,
        daily_count: 0,
        monthly_count: 0,
        last_order_at: None,
        open_amounts: Vec::new(),
    };
    let usage = capacity
        .requisites
        .iter()
        .find(|u| u.requisite_id == requisite.requisite_id)
        .unwrap_or(&unused);
    let age_ms = request.now.saturating_sub(capacity.updated_at);
    let (daily_turnover, daily_count) = if age_ms < LONGEST_DAY_MS {
        (usage.daily_turnover, usage.daily_count)
    } else {
        (FiatAmount::ZERO, 0)
    };
    let (monthly_turnover, monthly_count) = if age_ms < LONGEST_MONTH_MS {
        (usage.monthly_turnover, usage.monthly_count)
    } else {
        (FiatAmount::ZERO, 0)
    };
    let amount = request.fiat_amount;
    // An overflowing sum is certainly over any limit.
    let over = |used: FiatAmount, limit: Option<FiatAmount>| {
        limit.is_some_and(|l| {
            used.value()
                .checked_add(amount.value())
                .is_none_or(|total| total > l.value())
        })
    };
    let full = |count: i32, limit: Option<i32>| limit.is_some_and(|l| count >= l);
    if over(daily_turnover, requisite.daily_turnover_limit) {
        return Err(SkipReason::DailyTurnoverLimit);
    }
    if over(monthly_turnover, requisite.monthly_turnover_limit) {
        return Err(SkipReason::MonthlyTurnoverLimit);
    }
    if full(daily_count, requisite.daily_count_limit) {
        return Err(SkipReason::DailyCountLimit);
    }
    if full(monthly_count, requisite.monthly_count_limit) {
        return Err(SkipReason::MonthlyCountLimit);
    }
    let min_interval_ms = i64::from(requisite.min_interval_secs.max(0)) * 1000;
    if usage
        .last_order_at
        .is_some_and(|last| request.now.saturating_sub(last) < min_interval_ms)
    {
        return Err(SkipReason::MinInterval);
    }
    if usage.open_amounts.contains(&amount) {
        return Err(SkipReason::SameAmountOpen);
    }
    Ok(())
}
