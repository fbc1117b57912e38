//! The pay-in split, pure. Of the crypto amount C the customer paid to the trader:
//!
//! | account | amount |
//! |---|---|
//! | trader HOLD | −C (the held deposit is spent: the trader keeps the fiat instead) |
//! | trader AVAILABLE | +C · t_in / 100, the trader's reward |
//! | store AVAILABLE | +C · (1 − s_in / 100) |
//! | platform FEES | the rest, C · (s_in − t_in) / 100 up to rounding |
//!
//! The trader's and the store's legs are rounded half away from zero to 6 places; the
//! platform leg is computed as what is left, so the legs sum to exactly zero. With
//! `t_in > s_in` (allowed only with the admin's `allow_loss`) the platform leg is negative.

use rust_decimal::{Decimal, RoundingStrategy};

/// Decimal places of USDT.
pub const USDT_SCALE: u32 = 6;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayInSplit {
    /// C, debited from the trader's hold.
    pub crypto_amount: Decimal,
    /// Credited to the trader's available deposit.
    pub trader_reward: Decimal,
    /// Credited to the store.
    pub store_share: Decimal,
    /// Credited (or, at a loss, debited) to the platform's fees.
    pub platform_fee: Decimal,
}

/// A percentage as the admin API allows it, 0 to 100; anything else is clamped so a bad
/// record cannot turn a credit into a debit.
fn percent(p: Decimal) -> Decimal {
    p.clamp(Decimal::ZERO, Decimal::ONE_HUNDRED)
}

fn usdt(amount: Decimal) -> Decimal {
    amount.round_dp_with_strategy(USDT_SCALE, RoundingStrategy::MidpointAwayFromZero)
}

/// The split of `crypto_amount` at the store's and the trader's percentages; `None` only for
/// amounts beyond `Decimal`'s range (about 7.9 · 10^28).
pub fn pay_in_split(
    crypto_amount: Decimal,
    store_percent: Decimal,
    trader_percent: Decimal,
) -> Option<PayInSplit> {
    let (s, t) = (percent(store_percent), percent(trader_percent));
    let trader_reward = usdt(
        crypto_amount
            .checked_mul(t)?
            .checked_div(Decimal::ONE_HUNDRED)?,
    );
    let store_share = usdt(
        crypto_amount
            .checked_mul(Decimal::ONE_HUNDRED - s)?
            .checked_div(Decimal::ONE_HUNDRED)?,
    );
    let platform_fee = crypto_amount
        .checked_sub(trader_reward)?
        .checked_sub(store_share)?;
    Some(PayInSplit {
        crypto_amount,
        trader_reward,
        store_share,
        platform_fee,
    })
}
