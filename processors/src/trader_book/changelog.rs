//! How a trader's state is written to the changelog: one small record for the trader
//! (`<trader>`: deposit, usage counters, recent ids) and one per open order
//! (`<trader>/order/<order>`: the order and its hold), tombstoned when the order closes. A
//! batch writes only the orders it changed, so a record does not grow with the trader's open
//! orders (one record with all of them passed the broker's 1 MB limit at about 2 000).
//! Both keys route to the trader's partition (the part before the first `/`). The values are
//! Avro behind a format byte, JSON before it (`changelog_codec.rs`); the keys are the same in
//! both, so a tombstone written now deletes a record written as JSON.

use super::changelog_codec;
use super::machine::OrderState;
use super::state::{OpenOrder, TraderState};
use crate::core::Millis;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// One open order's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderRecord {
    pub order: Option<OpenOrder>,
    pub hold: Option<Decimal>,
}

/// What was last written for an order: an order changes state (and sequence), deadline or
/// hold, never its other fields.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Written {
    state: Option<(OrderState, i32, Option<Millis>)>,
    hold: Option<Decimal>,
}

impl Written {
    fn of(record: &OrderRecord) -> Self {
        Self {
            state: record
                .order
                .as_ref()
                .map(|o| (o.state, o.sequence, o.deadline)),
            hold: record.hold,
        }
    }
}

fn order_key(trader_id: Uuid, order_id: Uuid) -> String {
    format!("{trader_id}/order/{order_id}")
}

/// The records of a changed trader: its own, and those of the orders that changed since they
/// were last written (`written` is updated). Only orders touched since the last call are
/// compared with what was written, so a batch costs what it changed, not what is open.
pub fn changes(
    trader_id: Uuid,
    state: Option<&mut TraderState>,
    written: &mut BTreeMap<Uuid, Written>,
) -> Vec<(String, Option<Vec<u8>>)> {
    let Some(state) = state else {
        let mut out = vec![(trader_id.to_string(), None)];
        out.extend(
            std::mem::take(written)
                .into_keys()
                .map(|order_id| (order_key(trader_id, order_id), None)),
        );
        return out;
    };
    let mut out = vec![(
        trader_id.to_string(),
        Some(changelog_codec::encode_trader(state)),
    )];
    let mut ids = state.orders.take_touched();
    ids.append(&mut state.holds.take_touched());
    for order_id in ids {
        let record = OrderRecord {
            order: state.orders.get(&order_id).cloned(),
            hold: state.holds.get(&order_id),
        };
        let now = Written::of(&record);
        let gone = record.order.is_none() && record.hold.is_none();
        // Unchanged since written, or opened and closed between two writes.
        if written.get(&order_id) == Some(&now) || (gone && !written.contains_key(&order_id)) {
            continue;
        }
        let value = if gone {
            written.remove(&order_id);
            None
        } else {
            written.insert(order_id, now);
            Some(changelog_codec::encode_order(&record))
        };
        out.push((order_key(trader_id, order_id), value));
    }
    out
}

/// What a changelog key names.
pub enum Key {
    Trader(Uuid),
    Order(Uuid, Uuid),
}

pub fn parse_key(key: &str) -> Option<Key> {
    match key.split_once("/order/") {
        None => key.parse().ok().map(Key::Trader),
        Some((trader, order)) => Some(Key::Order(trader.parse().ok()?, order.parse().ok()?)),
    }
}

/// Applies a trader record to the restored state. A record written before orders had their
/// own (it carries them) is taken whole; `true` then: its orders must be written again.
pub fn restore_trader(state: &mut TraderState, record: TraderState) -> bool {
    let carries_orders = !record.orders.is_empty() || !record.holds.is_empty();
    let (orders, holds) = if carries_orders {
        (record.orders.clone(), record.holds.clone())
    } else {
        (
            std::mem::take(&mut state.orders),
            std::mem::take(&mut state.holds),
        )
    };
    *state = TraderState {
        orders,
        holds,
        ..record
    };
    carries_orders
}

/// Applies an order record (or its tombstone) to the restored state.
pub fn restore_order(
    state: &mut TraderState,
    written: &mut BTreeMap<Uuid, Written>,
    order_id: Uuid,
    record: Option<OrderRecord>,
) {
    state.orders.remove(&order_id);
    state.holds.remove(&order_id);
    written.remove(&order_id);
    if let Some(record) = record {
        written.insert(order_id, Written::of(&record));
        if let Some(order) = record.order {
            state.orders.insert(order_id, order);
        }
        if let Some(hold) = record.hold {
            state.holds.insert(order_id, hold);
        }
    }
}
