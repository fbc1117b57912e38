//! A trader's open orders with an index of their timers. Timers are checked before and after
//! every input of the trader; with the index that costs O(log n + due) instead of a scan of
//! every open order, which mattered once traders held thousands of them.

use super::state::OpenOrder;
use crate::core::Millis;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// Open orders by id. Every change goes through these methods so that `timers` stays in step
/// with the orders' deadlines; it is derived data, so it is neither compared nor serialized
/// (the JSON is the plain map it always was).
#[derive(Debug, Clone, Default)]
pub struct OpenOrders {
    by_id: BTreeMap<Uuid, OpenOrder>,
    /// `(deadline, order id)` of every order with a deadline: the earliest first, and ties
    /// in order-id order, the order in which due timers fire.
    timers: BTreeSet<(Millis, Uuid)>,
    /// Orders inserted, changed or removed since [`OpenOrders::take_touched`]: what the
    /// changelog may have to write, without comparing every open order.
    touched: BTreeSet<Uuid>,
}

impl OpenOrders {
    pub fn get(&self, id: &Uuid) -> Option<&OpenOrder> {
        self.by_id.get(id)
    }

    pub fn contains_key(&self, id: &Uuid) -> bool {
        self.by_id.contains_key(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Uuid, &OpenOrder)> {
        self.by_id.iter()
    }

    pub fn values(&self) -> impl Iterator<Item = &OpenOrder> {
        self.by_id.values()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    pub fn insert(&mut self, id: Uuid, order: OpenOrder) {
        self.remove(&id);
        self.touched.insert(id);
        if let Some(deadline) = order.deadline {
            self.timers.insert((deadline, id));
        }
        self.by_id.insert(id, order);
    }

    pub fn remove(&mut self, id: &Uuid) -> Option<OpenOrder> {
        let order = self.by_id.remove(id)?;
        if let Some(deadline) = order.deadline {
            self.timers.remove(&(deadline, *id));
        }
        self.touched.insert(*id);
        Some(order)
    }

    /// Changes an order in place (its deadline may change); `None` if it is not open.
    pub fn update<R>(&mut self, id: &Uuid, change: impl FnOnce(&mut OpenOrder) -> R) -> Option<R> {
        let order = self.by_id.get_mut(id)?;
        if let Some(deadline) = order.deadline {
            self.timers.remove(&(deadline, *id));
        }
        let result = change(order);
        if let Some(deadline) = order.deadline {
            self.timers.insert((deadline, *id));
        }
        self.touched.insert(*id);
        Some(result)
    }

    /// The orders touched since the last call.
    pub fn take_touched(&mut self) -> BTreeSet<Uuid> {
        std::mem::take(&mut self.touched)
    }

    /// The earliest timer of any open order.
    pub fn next_deadline(&self) -> Option<Millis> {
        self.timers.first().map(|(deadline, _)| *deadline)
    }

    /// The timers due at `now` (deadline ≤ now), earliest first, ties by order id.
    pub fn due(&self, now: Millis) -> impl Iterator<Item = (Millis, Uuid)> + '_ {
        self.timers
            .range(..=(now, Uuid::from_u128(u128::MAX)))
            .copied()
    }
}

impl FromIterator<(Uuid, OpenOrder)> for OpenOrders {
    fn from_iter<I: IntoIterator<Item = (Uuid, OpenOrder)>>(orders: I) -> Self {
        let mut out = OpenOrders::default();
        for (id, order) in orders {
            out.insert(id, order);
        }
        out
    }
}

impl PartialEq for OpenOrders {
    fn eq(&self, other: &Self) -> bool {
        self.by_id == other.by_id
    }
}

impl Serialize for OpenOrders {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.by_id.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for OpenOrders {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(BTreeMap::<Uuid, OpenOrder>::deserialize(deserializer)?
            .into_iter()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trader_book::machine::OrderState;
    use jivapay_schemas::records::Direction;
    use rust_decimal::Decimal;

    fn order(deadline: Option<Millis>) -> OpenOrder {
        OpenOrder {
            state: OrderState::Assigned,
            sequence: 2,
            deadline,
            requisite_id: Uuid::from_u128(1),
            store_id: Uuid::from_u128(2),
            external_order_id: "ext".into(),
            direction: Direction::PayIn,
            fiat_amount: Decimal::ONE_HUNDRED,
            fiat_currency: "RUB".into(),
            payment_method: "sbp".into(),
            rate: Decimal::ONE_HUNDRED,
            crypto_amount: Decimal::ONE,
        }
    }

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn due_timers_come_earliest_first_then_by_id_and_follow_every_change() {
        let mut orders = OpenOrders::default();
        orders.insert(id(3), order(Some(20)));
        orders.insert(id(2), order(Some(20)));
        orders.insert(id(1), order(Some(30)));
        orders.insert(id(4), order(None));
        assert_eq!(orders.next_deadline(), Some(20));
        assert_eq!(
            orders.due(20).collect::<Vec<_>>(),
            [(20, id(2)), (20, id(3))]
        );
        orders.update(&id(2), |o| o.deadline = Some(40));
        orders.update(&id(4), |o| o.deadline = Some(10));
        orders.remove(&id(3));
        orders.insert(id(1), order(None)); // replaced: its old timer goes
        assert_eq!(
            orders.due(100).collect::<Vec<_>>(),
            [(10, id(4)), (40, id(2))]
        );
        assert_eq!(orders.update(&id(9), |_| ()), None);
    }

    proptest::proptest! {
        /// The index gives what a scan of every order gives, after any changes.
        #[test]
        fn due_timers_are_those_a_scan_finds(
            ops in proptest::collection::vec((0u8..3, 0u128..8, proptest::option::of(0i64..20)), 0..60),
            now in 0i64..20,
        ) {
            let mut orders = OpenOrders::default();
            for (op, n, deadline) in ops {
                match op {
                    0 => orders.insert(id(n), order(deadline)),
                    1 => { orders.update(&id(n), |o| o.deadline = deadline); }
                    _ => { orders.remove(&id(n)); }
                }
            }
            let mut scanned: Vec<(Millis, Uuid)> = orders
                .iter()
                .filter_map(|(id, o)| Some((o.deadline.filter(|d| *d <= now)?, *id)))
                .collect();
            scanned.sort();
            proptest::prop_assert_eq!(orders.due(now).collect::<Vec<_>>(), scanned);
            proptest::prop_assert_eq!(
                orders.next_deadline(),
                orders.values().filter_map(|o| o.deadline).min()
            );
        }
    }

    #[test]
    fn serializes_as_the_plain_map_and_rebuilds_its_index() {
        let orders: OpenOrders = [(id(1), order(Some(5))), (id(2), order(None))]
            .into_iter()
            .collect();
        let json = serde_json::to_string(&orders).unwrap_or_default();
        let map: BTreeMap<Uuid, OpenOrder> = serde_json::from_str(&json).unwrap_or_default();
        assert_eq!(map.len(), 2);
        let back: OpenOrders = serde_json::from_str(&json).unwrap_or_default();
        assert_eq!(back, orders);
        assert_eq!(back.due(5).collect::<Vec<_>>(), [(5, id(1))]);
    }
}
