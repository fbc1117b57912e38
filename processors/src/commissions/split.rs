//! The splits of a completed order, pure.
//!
//! **Pay-in.** Of the crypto amount C the customer paid to the trader:
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
//!
//! **Pay-out** (issue 15). The trader paid the store's customer C in fiat from his own bank:
//!
//! | account | amount |
//! |---|---|
//! | store HOLD | −C · (1 + s_out / 100), held when the pay-out was accepted, now captured |
//! | trader AVAILABLE | +C · (1 + t_out / 100): the fiat he paid back, with his reward |
//! | platform FEES | the rest, C · (s_out − t_out) / 100 up to rounding |
//!
//! Rounded the same way: the store's and the trader's legs to 6 places, the platform's what is
//! left. The store's leg is also the hold fraud places ([`pay_out_hold`]), so the capture is
//! exactly what was held.

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayOutSplit {
    /// C · (1 + s_out), captured from the store's hold.
    pub store_debit: Decimal,
    /// C · (1 + t_out), credited to the trader's available deposit.
    pub trader_credit: Decimal,
    /// Credited (or, at a loss, debited) to the platform's fees.
    pub platform_fee: Decimal,
}

/// What a pay-out of `crypto_amount` holds of its store's balance at `store_percent`:
/// C · (1 + s_out / 100), rounded to 6 places.
pub fn pay_out_hold(crypto_amount: Decimal, store_percent: Decimal) -> Option<Decimal> {
    with_percent(crypto_amount, percent(store_percent))
}

fn with_percent(amount: Decimal, p: Decimal) -> Option<Decimal> {
    let extra = amount.checked_mul(p)?.checked_div(Decimal::ONE_HUNDRED)?;
    Some(usdt(amount.checked_add(extra)?))
}

/// The split of a completed pay-out of `crypto_amount` at the store's and the trader's
/// percentages; `None` only beyond `Decimal`'s range.
pub fn pay_out_split(
    crypto_amount: Decimal,
    store_percent: Decimal,
    trader_percent: Decimal,
) -> Option<PayOutSplit> {
    let store_debit = pay_out_hold(crypto_amount, store_percent)?;
    let trader_credit = with_percent(crypto_amount, percent(trader_percent))?;
    Some(PayOutSplit {
        store_debit,
        trader_credit,
        platform_fee: store_debit.checked_sub(trader_credit)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn amount() -> impl Strategy<Value = Decimal> {
        (1i64..=1_000_000_000_000).prop_map(|micros| Decimal::new(micros, 6))
    }

    fn percentage() -> impl Strategy<Value = Decimal> {
        (0i64..=1_000_000).prop_map(|p| Decimal::new(p, 4))
    }

    #[test]
    fn a_pay_out_of_100_usdt_at_3_and_2_percent() {
        let split = pay_out_split(Decimal::ONE_HUNDRED, Decimal::from(3), Decimal::TWO).unwrap();
        assert_eq!(split.store_debit, Decimal::from(103));
        assert_eq!(split.trader_credit, Decimal::from(102));
        assert_eq!(split.platform_fee, Decimal::ONE);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// The legs sum to exactly zero, have at most 6 places, follow the formula within
        /// rounding, and the store is debited exactly what fraud held.
        #[test]
        fn the_pay_out_split_balances_and_captures_the_hold(
            c in amount(), s in percentage(), t in percentage()
        ) {
            let split = pay_out_split(c, s, t).unwrap();
            prop_assert_eq!(-split.store_debit + split.trader_credit + split.platform_fee, Decimal::ZERO);
            prop_assert_eq!(Some(split.store_debit), pay_out_hold(c, s));
            let half_micro = Decimal::new(5, 7);
            let hundred = Decimal::ONE_HUNDRED;
            prop_assert!((split.store_debit - c * (hundred + s) / hundred).abs() <= half_micro);
            prop_assert!((split.trader_credit - c * (hundred + t) / hundred).abs() <= half_micro);
            prop_assert!((split.platform_fee - c * (s - t) / hundred).abs() <= half_micro * Decimal::TWO);
            for leg in [split.store_debit, split.trader_credit, split.platform_fee] {
                prop_assert!(leg.normalize().scale() <= USDT_SCALE, "{} has more than 6 places", leg);
            }
            prop_assert!(split.store_debit >= c && split.trader_credit >= c);
            if s >= t {
                prop_assert!(split.platform_fee >= Decimal::ZERO, "the platform never pays at s >= t");
            }
        }
    }
}
