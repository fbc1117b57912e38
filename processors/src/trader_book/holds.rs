//! A trader's holds (USDT held per open order) with their running total. The total is asked
//! for on every routed order (is the free deposit enough?) and on every capacity, so it is kept
//! as holds come and go instead of summed over every open order each time.

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// Holds by order id. Every change goes through these methods so that `total` and `touched`
/// stay in step; both are derived data, so they are neither compared nor serialized (the
/// JSON is the plain map it always was).
#[derive(Debug, Clone, Default)]
pub struct Holds {
    by_order: BTreeMap<Uuid, Decimal>,
    /// Sum of `by_order`, saturating like the sum it replaces (a deposit never comes near
    /// `Decimal::MAX`).
    total: Decimal,
    /// Orders whose hold changed since [`Holds::take_touched`].
    touched: BTreeSet<Uuid>,
}

impl Holds {
    pub fn get(&self, order_id: &Uuid) -> Option<Decimal> {
        self.by_order.get(order_id).copied()
    }

    #[cfg(test)]
    pub fn keys(&self) -> impl Iterator<Item = &Uuid> {
        self.by_order.keys()
    }

    pub fn is_empty(&self) -> bool {
        self.by_order.is_empty()
    }

    /// USDT held in all.
    pub fn total(&self) -> Decimal {
        self.total
    }

    pub fn insert(&mut self, order_id: Uuid, amount: Decimal) {
        self.remove(&order_id);
        self.total = self.total.saturating_add(amount);
        self.by_order.insert(order_id, amount);
        self.touched.insert(order_id);
    }

    pub fn remove(&mut self, order_id: &Uuid) -> Option<Decimal> {
        let amount = self.by_order.remove(order_id)?;
        self.total = self.total.saturating_sub(amount);
        self.touched.insert(*order_id);
        Some(amount)
    }

    /// The orders whose hold changed since the last call.
    pub fn take_touched(&mut self) -> BTreeSet<Uuid> {
        std::mem::take(&mut self.touched)
    }
}

impl FromIterator<(Uuid, Decimal)> for Holds {
    fn from_iter<I: IntoIterator<Item = (Uuid, Decimal)>>(holds: I) -> Self {
        let mut out = Holds::default();
        for (order_id, amount) in holds {
            out.insert(order_id, amount);
        }
        out
    }
}

impl PartialEq for Holds {
    fn eq(&self, other: &Self) -> bool {
        self.by_order == other.by_order
    }
}

impl Serialize for Holds {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.by_order.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Holds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(BTreeMap::<Uuid, Decimal>::deserialize(deserializer)?
            .into_iter()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn the_total_follows_holds_placed_replaced_and_released() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let mut holds = Holds::default();
        holds.insert(a, d("30.5"));
        holds.insert(b, d("20"));
        assert_eq!(holds.total(), d("50.5"));
        holds.insert(a, d("10"));
        assert_eq!(holds.total(), d("30"));
        assert_eq!(holds.remove(&b), Some(d("20")));
        assert_eq!(holds.remove(&b), None);
        assert_eq!(holds.total(), d("10"));
        assert_eq!(holds.take_touched(), BTreeSet::from([a, b]));
        assert!(holds.take_touched().is_empty());
    }

    #[test]
    fn read_back_from_json_the_total_is_summed_again() {
        let holds: Holds = [
            (Uuid::from_u128(1), d("1.25")),
            (Uuid::from_u128(2), d("2")),
        ]
        .into_iter()
        .collect();
        let back: Holds = serde_json::from_str(&serde_json::to_string(&holds).unwrap()).unwrap();
        assert_eq!(back, holds);
        assert_eq!(back.total(), d("3.25"));
    }
}
