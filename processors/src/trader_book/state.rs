//! One trader's authoritative state: deposit, holds, requisite usage, open orders and the ids
//! already applied. It is written to the changelog split per open order (`changelog.rs`), so
//! it stays small: an open order costs about 210 bytes there, a closed one only its id in a
//! bounded dedup list. Serde JSON is the changelog's older encoding, still read on restore.

use super::calendar::Window;
use super::holds::Holds;
use super::machine::OrderState;
use super::open_orders::OpenOrders;
use crate::core::Millis;
use jivapay_domain::{FiatAmount, OrderId, RequisiteId};
use jivapay_schemas::records::{Direction, RequisiteUsage};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use uuid::Uuid;

/// How many command ids a trader remembers to recognise a command sent twice: commands come
/// from the HTTP edges, which send each once and retry only a send that failed, so a
/// duplicate arrives right after its original. Routed orders and postings come from
/// processors and are deduplicated exactly by origin (`runtime/origins.rs`).
pub const RECENT_IDS: usize = 128;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TraderState {
    /// USDT on deposit (the ledger's trader available account as the book knows it).
    pub(crate) balance: Decimal,
    /// USDT held by order id: from assignment until released or captured.
    pub(crate) holds: Holds,
    /// Orders not yet terminal, by order id, with their timers.
    pub(crate) orders: OpenOrders,
    /// Counters by requisite id.
    pub(crate) usage: BTreeMap<Uuid, Usage>,
    pub(crate) seen_commands: RecentIds,
    /// Version of the last capacity published (the router keeps the newest).
    pub(crate) capacity_version: i64,
    /// Local day of the last capacity published: a new day resets the daily counters, which
    /// the router only learns from a fresh capacity.
    pub(crate) published_day: Option<i32>,
}

/// What the book keeps of an open order: enough to write its next events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenOrder {
    pub state: OrderState,
    /// Sequence of the last event written for the order.
    pub sequence: i32,
    /// When the timer of the current state fires (payment window, confirmation timeout).
    pub deadline: Option<Millis>,
    pub requisite_id: Uuid,
    pub store_id: Uuid,
    pub external_order_id: String,
    pub direction: Direction,
    pub fiat_amount: Decimal,
    pub fiat_currency: String,
    pub payment_method: String,
    pub rate: Decimal,
    pub crypto_amount: Decimal,
}

/// A requisite's counters in the window they were last written in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub window: Window,
    pub daily_turnover: Decimal,
    pub monthly_turnover: Decimal,
    pub daily_count: i32,
    pub monthly_count: i32,
    pub last_order_at: Option<Millis>,
}

/// A bounded list of recently applied ids, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecentIds(VecDeque<Uuid>);

impl RecentIds {
    pub fn contains(&self, id: &Uuid) -> bool {
        self.0.contains(id)
    }

    /// The ids, oldest first.
    pub fn ids(&self) -> impl ExactSizeIterator<Item = &Uuid> {
        self.0.iter()
    }

    pub fn remember(&mut self, id: Uuid) {
        self.0.push_back(id);
        while self.0.len() > RECENT_IDS {
            self.0.pop_front();
        }
    }

    #[cfg(test)]
    pub fn remembered(&self) -> usize {
        self.0.len()
    }
}

impl FromIterator<Uuid> for RecentIds {
    /// Ids oldest first, as [`RecentIds::ids`] gives them.
    fn from_iter<I: IntoIterator<Item = Uuid>>(ids: I) -> Self {
        let mut out = RecentIds::default();
        for id in ids {
            out.remember(id);
        }
        out
    }
}

impl Usage {
    pub fn empty(window: Window) -> Usage {
        Usage {
            window,
            daily_turnover: Decimal::ZERO,
            monthly_turnover: Decimal::ZERO,
            daily_count: 0,
            monthly_count: 0,
            last_order_at: None,
        }
    }

    /// The counters as they stand in `window`: a later day starts the daily ones at zero, a
    /// later month the monthly ones too. An earlier window (the clock moved back) keeps them,
    /// which can only refuse more, never exceed a limit.
    pub fn at(&self, window: Window) -> Usage {
        let mut now = self.clone();
        if window.month > self.window.month {
            now.monthly_turnover = Decimal::ZERO;
            now.monthly_count = 0;
        }
        if window.day > self.window.day {
            now.daily_turnover = Decimal::ZERO;
            now.daily_count = 0;
        }
        now.window = self.window.max(window);
        now
    }

    /// Counts one order of `fiat_amount` at `now`. Overflow saturates: the limits were checked
    /// with checked arithmetic just before.
    pub fn record(&mut self, window: Window, fiat_amount: Decimal, now: Millis) {
        let mut next = self.at(window);
        next.daily_turnover = next.daily_turnover.saturating_add(fiat_amount);
        next.monthly_turnover = next.monthly_turnover.saturating_add(fiat_amount);
        next.daily_count = next.daily_count.saturating_add(1);
        next.monthly_count = next.monthly_count.saturating_add(1);
        next.last_order_at = Some(next.last_order_at.map_or(now, |t| t.max(now)));
        *self = next;
    }
}

impl TraderState {
    /// USDT on deposit.
    pub fn balance(&self) -> Decimal {
        self.balance
    }

    /// USDT held for orders.
    pub fn held(&self) -> Decimal {
        self.holds.total()
    }

    /// What new orders may still hold: balance − holds.
    pub fn free_deposit(&self) -> Decimal {
        self.balance.saturating_sub(self.held())
    }

    pub fn hold(&self, order_id: OrderId) -> Option<Decimal> {
        self.holds.get(&order_id.0)
    }

    pub fn open_order(&self, order_id: OrderId) -> Option<&OpenOrder> {
        self.orders.get(&order_id.0)
    }

    pub fn open_orders(&self) -> impl Iterator<Item = (&Uuid, &OpenOrder)> {
        self.orders.iter()
    }

    /// A requisite's counters as they stand in `window`.
    pub fn usage_at(&self, requisite_id: RequisiteId, window: Window) -> Usage {
        self.usage
            .get(&requisite_id.0)
            .map_or_else(|| Usage::empty(window), |u| u.at(window))
    }

    /// Fiat amounts of the open orders on a requisite: a payment must match one of them
    /// unambiguously, so no two are equal.
    pub fn open_amounts(&self, requisite_id: RequisiteId) -> impl Iterator<Item = Decimal> + '_ {
        self.orders
            .values()
            .filter(move |o| o.requisite_id == requisite_id.0)
            .map(|o| o.fiat_amount)
    }

    /// The earliest timer of any open order.
    pub fn next_deadline(&self) -> Option<Millis> {
        self.orders.next_deadline()
    }

    /// True when the last capacity was published on an earlier local day than `window` and
    /// counters exist: the router's view still shows the old day's (or month's) counters.
    pub fn needs_new_day_capacity(&self, window: Window) -> bool {
        let published_before = self.published_day.is_some_and(|d| d < window.day);
        published_before
            && self
                .usage
                .values()
                .any(|u| u.daily_count > 0 || u.monthly_count > 0)
    }

    /// The usage part of the capacity: the given requisites (the trader's in master data) and
    /// any the book has counters for, in id order.
    pub fn requisite_usage(
        &self,
        requisites: &BTreeSet<Uuid>,
        window: Window,
    ) -> Vec<RequisiteUsage> {
        let ids: BTreeSet<Uuid> = requisites
            .iter()
            .chain(self.usage.keys())
            .copied()
            .collect();
        // One pass over the open orders (in id order, as `open_amounts` lists them), not one
        // per requisite.
        let mut open_amounts: BTreeMap<Uuid, Vec<FiatAmount>> = BTreeMap::new();
        for order in self.orders.values() {
            open_amounts
                .entry(order.requisite_id)
                .or_default()
                .push(FiatAmount::rounded(order.fiat_amount));
        }
        ids.into_iter()
            .map(|id| {
                let u = self.usage_at(id.into(), window);
                RequisiteUsage {
                    requisite_id: id.into(),
                    daily_turnover: FiatAmount::rounded(u.daily_turnover),
                    monthly_turnover: FiatAmount::rounded(u.monthly_turnover),
                    daily_count: u.daily_count,
                    monthly_count: u.monthly_count,
                    last_order_at: u.last_order_at,
                    open_amounts: open_amounts.remove(&id).unwrap_or_default(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap_or_default()
    }

    const DAY1: Window = Window { day: 10, month: 5 };
    const DAY2: Window = Window { day: 11, month: 5 };
    const NEXT_MONTH: Window = Window { day: 12, month: 6 };

    #[test]
    fn daily_counters_reset_on_a_new_day_and_monthly_on_a_new_month() {
        let mut u = Usage::empty(DAY1);
        u.record(DAY1, d("100"), 1);
        u.record(DAY1, d("50"), 2);
        assert_eq!((u.daily_turnover, u.daily_count), (d("150"), 2));
        let next_day = u.at(DAY2);
        assert_eq!((next_day.daily_turnover, next_day.daily_count), (d("0"), 0));
        assert_eq!(
            (next_day.monthly_turnover, next_day.monthly_count),
            (d("150"), 2)
        );
        let next_month = u.at(NEXT_MONTH);
        assert_eq!(
            (next_month.monthly_turnover, next_month.monthly_count),
            (d("0"), 0)
        );
        u.record(DAY2, d("10"), 3);
        assert_eq!((u.daily_turnover, u.monthly_turnover), (d("10"), d("160")));
        assert_eq!(u.last_order_at, Some(3));
    }

    #[test]
    fn a_clock_moving_back_keeps_the_counters() {
        let mut u = Usage::empty(DAY2);
        u.record(DAY2, d("100"), 5);
        let back = u.at(DAY1);
        assert_eq!((back.daily_turnover, back.window), (d("100"), DAY2));
    }

    #[test]
    fn recent_ids_are_bounded_and_forget_the_oldest() {
        let mut ids = RecentIds::default();
        for n in 0..(RECENT_IDS as u128 + 10) {
            ids.remember(Uuid::from_u128(n));
        }
        assert_eq!(ids.remembered(), RECENT_IDS);
        assert!(!ids.contains(&Uuid::from_u128(0)));
        assert!(ids.contains(&Uuid::from_u128(RECENT_IDS as u128 + 9)));
    }

    #[test]
    fn free_deposit_is_balance_minus_holds() {
        let mut s = TraderState {
            balance: d("100"),
            ..Default::default()
        };
        s.holds.insert(Uuid::from_u128(1), d("30.5"));
        s.holds.insert(Uuid::from_u128(2), d("20"));
        assert_eq!(s.held(), d("50.5"));
        assert_eq!(s.free_deposit(), d("49.5"));
    }
}
