//! Folds a batch of order events into one `orders` row per order, as applying them one by one
//! in sequence order would leave it: the newest event's state, the first-set timestamps kept,
//! amounts and parties kept once known. One row per order lets a whole batch be written with
//! one `INSERT … ON CONFLICT` (PostgreSQL refuses to update a row twice in one statement).

use super::millis;
use jivapay_domain::{FiatAmount, OrderId, RequisiteId, StoreId, TraderId, UsdtAmount};
use jivapay_schemas::records::{OrderEvent, OrderEventKind, OrderStatus};
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use uuid::Uuid;

type At = chrono::DateTime<chrono::Utc>;

/// The `orders` columns one batch writes for one order.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderRow {
    pub id: OrderId,
    pub store_id: StoreId,
    pub external_order_id: String,
    pub direction: &'static str,
    pub status: &'static str,
    pub previous_status: Option<&'static str>,
    pub fiat_amount: Option<FiatAmount>,
    pub fiat_currency: String,
    pub crypto_amount: Option<UsdtAmount>,
    pub rate: Option<Decimal>,
    pub payment_method: String,
    pub trader_id: Option<TraderId>,
    pub requisite_id: Option<RequisiteId>,
    pub customer_id: Option<String>,
    pub callback_url: Option<String>,
    pub reason_code: Option<String>,
    pub payment_token: Option<String>,
    /// The first event's time: the row's creation when the batch inserts it.
    pub created_at: At,
    pub assigned_at: Option<At>,
    pub client_confirmed_at: Option<At>,
    pub trader_paid_at: Option<At>,
    pub completed_at: Option<At>,
    pub closed_at: Option<At>,
    pub expires_at: Option<At>,
    pub updated_at: At,
    pub last_event_id: Uuid,
    pub version: i64,
}

impl OrderRow {
    fn from_event(event: &OrderEvent) -> Self {
        let at = millis(event.occurred_at);
        let when = |kind: OrderEventKind| (event.kind == kind).then_some(at);
        Self {
            id: event.order_id,
            store_id: event.store_id,
            external_order_id: event.external_order_id.clone(),
            direction: event.direction.as_str(),
            status: event.status.as_str(),
            previous_status: event.previous_status.map(OrderStatus::as_str),
            fiat_amount: event.fiat_amount,
            fiat_currency: event.fiat_currency.clone(),
            crypto_amount: event.crypto_amount,
            rate: event.rate,
            payment_method: event.payment_method.clone(),
            trader_id: event.trader_id,
            requisite_id: event.requisite_id,
            customer_id: event.customer_id.clone(),
            callback_url: event.callback_url.clone(),
            reason_code: event.reason_code.clone(),
            payment_token: event.payment_token.clone(),
            created_at: at,
            assigned_at: when(OrderEventKind::Assigned),
            client_confirmed_at: when(OrderEventKind::ClientConfirmed),
            trader_paid_at: when(OrderEventKind::TraderPaid),
            completed_at: when(OrderEventKind::Completed),
            closed_at: event.status.is_terminal().then_some(at),
            expires_at: event.expires_at.map(millis),
            updated_at: at,
            last_event_id: event.event_id,
            version: i64::from(event.sequence),
        }
    }

    /// Applies a newer event, with the same rules as the upsert applies a newer row.
    fn apply(&mut self, newer: OrderRow) {
        let older = std::mem::replace(self, newer);
        self.fiat_amount = self.fiat_amount.or(older.fiat_amount);
        self.crypto_amount = self.crypto_amount.or(older.crypto_amount);
        self.rate = self.rate.or(older.rate);
        self.trader_id = self.trader_id.or(older.trader_id);
        self.requisite_id = self.requisite_id.or(older.requisite_id);
        self.expires_at = self.expires_at.or(older.expires_at);
        // Set once, by the first event that has them.
        self.payment_token = older.payment_token.or(self.payment_token.take());
        self.customer_id = older.customer_id.or(self.customer_id.take());
        self.callback_url = older.callback_url.or(self.callback_url.take());
        self.created_at = older.created_at;
        self.assigned_at = older.assigned_at.or(self.assigned_at);
        self.client_confirmed_at = older.client_confirmed_at.or(self.client_confirmed_at);
        self.trader_paid_at = older.trader_paid_at.or(self.trader_paid_at);
        self.completed_at = older.completed_at.or(self.completed_at);
    }
}

/// One row per order of the batch, folded in sequence order (a redelivered event of the same
/// sequence changes nothing), from its holder's events only.
pub fn fold(events: &[&OrderEvent]) -> Vec<OrderRow> {
    let mut by_order: BTreeMap<OrderId, Vec<&OrderEvent>> = BTreeMap::new();
    for event in events {
        by_order.entry(event.order_id).or_default().push(event);
    }
    by_order
        .into_values()
        .filter_map(|events| {
            let mut events = of_one_holder(events);
            events.sort_by_key(|e| e.sequence);
            events.dedup_by_key(|e| e.sequence);
            let mut events = events.into_iter();
            let mut row = OrderRow::from_event(events.next()?);
            for event in events {
                row.apply(OrderRow::from_event(event));
            }
            Some(row)
        })
        .collect()
}

/// The events of the order's holder and those that name no trader, in log order. The trader
/// of the first event that names one holds the order, as commissions decides (one partition,
/// one order); a second trader's events (a duplicate assignment, which commissions has his
/// book cancel) stay in the order's history only. Across batches the upsert keeps the holder.
fn of_one_holder(mut events: Vec<&OrderEvent>) -> Vec<&OrderEvent> {
    let holder = events.iter().find_map(|e| e.trader_id);
    events.retain(|e| e.trader_id.is_none() || e.trader_id == holder);
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use jivapay_schemas::records::OrderStatus;
    use jivapay_schemas::samples;

    fn event(sequence: i32, kind: OrderEventKind, status: OrderStatus, at: i64) -> OrderEvent {
        OrderEvent {
            event_id: Uuid::from_u128(sequence as u128),
            sequence,
            kind,
            status,
            occurred_at: at,
            ..samples::order_event()
        }
    }

    #[test]
    fn a_batch_folds_to_what_one_by_one_application_leaves() {
        use OrderEventKind as K;
        use OrderStatus as S;
        let mut created = event(1, K::Created, S::Created, 1_000);
        created.payment_token = Some("tok-first".into());
        created.trader_id = None;
        created.crypto_amount = None;
        let mut assigned = event(2, K::Assigned, S::Assigned, 2_000);
        assigned.payment_token = Some("tok-later".into());
        assigned.reason_code = Some("something".into());
        let confirmed = event(3, K::ClientConfirmed, S::ClientConfirmed, 3_000);
        let mut completed = event(4, K::Completed, S::Completed, 4_000);
        completed.trader_id = None; // not restated: the known one stays
        completed.reason_code = None;
        // Out of order, with a redelivery.
        let rows = fold(&[&completed, &assigned, &created, &confirmed, &assigned]);
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!((row.status, row.version), ("completed", 4));
        assert_eq!(row.last_event_id, completed.event_id);
        assert_eq!(row.payment_token.as_deref(), Some("tok-first"));
        assert_eq!(row.trader_id, assigned.trader_id);
        assert_eq!(row.crypto_amount, assigned.crypto_amount);
        assert_eq!(row.reason_code, None, "the newest event's reason");
        assert_eq!(row.created_at, millis(1_000));
        assert_eq!(row.assigned_at, Some(millis(2_000)));
        assert_eq!(row.client_confirmed_at, Some(millis(3_000)));
        assert_eq!(row.completed_at, Some(millis(4_000)));
        assert_eq!(row.closed_at, Some(millis(4_000)));
        assert_eq!(row.updated_at, millis(4_000));
    }

    #[test]
    fn each_order_gets_its_own_row() {
        let mut other = event(1, OrderEventKind::Created, OrderStatus::Created, 5);
        other.order_id = Uuid::from_u128(77).into();
        let mine = event(1, OrderEventKind::Created, OrderStatus::Created, 5);
        let rows = fold(&[&mine, &other]);
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().any(|r| r.id == other.order_id));
        assert!(rows.iter().any(|r| r.id == mine.order_id));
    }

    /// A second trader's book assigned the order too and cancelled it when told to: the row
    /// stays the holder's, completed (issue 14, one holder per order).
    #[test]
    fn a_second_holders_events_leave_the_row_alone() {
        use OrderEventKind as K;
        use OrderStatus as S;
        let assigned = event(2, K::Assigned, S::Assigned, 2_000);
        let second = jivapay_domain::TraderId(Uuid::from_u128(0xb0b));
        let mut theirs = event(2, K::Assigned, S::Assigned, 2_100);
        theirs.trader_id = Some(second);
        let mut cancelled = event(3, K::Cancelled, S::Cancelled, 2_200);
        cancelled.trader_id = Some(second);
        let completed = event(4, K::Completed, S::Completed, 4_000);
        let rows = fold(&[&assigned, &theirs, &cancelled, &completed]);
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].status, rows[0].trader_id),
            ("completed", assigned.trader_id)
        );
        let rows = fold(&[&theirs, &cancelled]);
        assert_eq!(
            rows[0].trader_id,
            Some(second),
            "alone in a batch: the upsert refuses it"
        );
    }
}
