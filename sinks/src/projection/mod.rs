//! The order projection sink: `orders.events` → the `orders` table (current state) and
//! `order_events` (history), for queries, the gateway's status endpoint and the payment page.
//! Key: order id. Guarantee: an event is applied only if it is newer than what the row holds
//! (`version` = the event's sequence), and each event id is recorded once, so replays and
//! redeliveries change nothing.

use crate::runtime::Sink;
use jivapay_schemas::records::{Direction, OrderEvent, OrderEventKind, OrderStatus};
use sqlx::PgConnection;

pub struct ProjectionSink;

pub fn status_name(status: OrderStatus) -> &'static str {
    match status {
        OrderStatus::Created => "created",
        OrderStatus::Review => "review",
        OrderStatus::Rejected => "rejected",
        OrderStatus::NoRequisite => "no_requisite",
        OrderStatus::Assigned => "assigned",
        OrderStatus::ClientConfirmed => "client_confirmed",
        OrderStatus::TraderPaid => "trader_paid",
        OrderStatus::Completed => "completed",
        OrderStatus::Cancelled => "cancelled",
        OrderStatus::Expired => "expired",
        OrderStatus::Disputed => "disputed",
        OrderStatus::Failed => "failed",
    }
}

pub fn kind_name(kind: OrderEventKind) -> &'static str {
    match kind {
        OrderEventKind::Created => "created",
        OrderEventKind::Review => "review",
        OrderEventKind::Rejected => "rejected",
        OrderEventKind::NoRequisite => "no_requisite",
        OrderEventKind::Assigned => "assigned",
        OrderEventKind::ClientConfirmed => "client_confirmed",
        OrderEventKind::TraderPaid => "trader_paid",
        OrderEventKind::Completed => "completed",
        OrderEventKind::Cancelled => "cancelled",
        OrderEventKind::Expired => "expired",
        OrderEventKind::Disputed => "disputed",
        OrderEventKind::Resolved => "resolved",
        OrderEventKind::Failed => "failed",
    }
}

fn is_terminal(status: OrderStatus) -> bool {
    matches!(
        status,
        OrderStatus::Completed
            | OrderStatus::Cancelled
            | OrderStatus::Expired
            | OrderStatus::Rejected
            | OrderStatus::NoRequisite
            | OrderStatus::Failed
    )
}

fn millis(at: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(at).unwrap_or_default()
}

impl Sink<OrderEvent> for ProjectionSink {
    async fn write<'a>(
        &'a self,
        tx: &'a mut PgConnection,
        event: &'a OrderEvent,
    ) -> sqlx::Result<()> {
        let at = millis(event.occurred_at);
        let when = |kind: OrderEventKind| (event.kind == kind).then_some(at);
        sqlx::query(
            "INSERT INTO orders (id, store_id, external_order_id, direction, status, previous_status, fiat_amount,
                 fiat_currency, crypto_amount, rate, payment_method, trader_id, requisite_id, customer_id, callback_url,
                 reason_code, payment_token, created_at, assigned_at, client_confirmed_at, trader_paid_at,
                 completed_at, closed_at, expires_at, updated_at, last_event_id, version)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21,
                 $22, $23, $24, $18, $25, $26)
             ON CONFLICT (id) DO UPDATE SET
                 status = EXCLUDED.status,
                 previous_status = EXCLUDED.previous_status,
                 fiat_amount = coalesce(EXCLUDED.fiat_amount, orders.fiat_amount),
                 crypto_amount = coalesce(EXCLUDED.crypto_amount, orders.crypto_amount),
                 rate = coalesce(EXCLUDED.rate, orders.rate),
                 trader_id = coalesce(EXCLUDED.trader_id, orders.trader_id),
                 requisite_id = coalesce(EXCLUDED.requisite_id, orders.requisite_id),
                 reason_code = EXCLUDED.reason_code,
                 payment_token = coalesce(orders.payment_token, EXCLUDED.payment_token),
                 assigned_at = coalesce(orders.assigned_at, EXCLUDED.assigned_at),
                 client_confirmed_at = coalesce(orders.client_confirmed_at, EXCLUDED.client_confirmed_at),
                 trader_paid_at = coalesce(orders.trader_paid_at, EXCLUDED.trader_paid_at),
                 completed_at = coalesce(orders.completed_at, EXCLUDED.completed_at),
                 closed_at = EXCLUDED.closed_at,
                 expires_at = coalesce(EXCLUDED.expires_at, orders.expires_at),
                 updated_at = EXCLUDED.updated_at,
                 last_event_id = EXCLUDED.last_event_id,
                 version = EXCLUDED.version,
                 projected_at = now()
             WHERE orders.version < EXCLUDED.version",
        )
        .bind(event.order_id)
        .bind(event.store_id)
        .bind(&event.external_order_id)
        .bind(if event.direction == Direction::PayOut { "pay_out" } else { "pay_in" })
        .bind(status_name(event.status))
        .bind(event.previous_status.map(status_name))
        .bind(event.fiat_amount)
        .bind(&event.fiat_currency)
        .bind(event.crypto_amount)
        .bind(event.rate)
        .bind(&event.payment_method)
        .bind(event.trader_id)
        .bind(event.requisite_id)
        .bind(&event.customer_id)
        .bind(&event.callback_url)
        .bind(&event.reason_code)
        .bind(&event.payment_token)
        .bind(at)
        .bind(when(OrderEventKind::Assigned))
        .bind(when(OrderEventKind::ClientConfirmed))
        .bind(when(OrderEventKind::TraderPaid))
        .bind(when(OrderEventKind::Completed))
        .bind(is_terminal(event.status).then_some(at))
        .bind(event.expires_at.map(millis))
        .bind(event.event_id)
        .bind(i64::from(event.sequence))
        .execute(&mut *tx)
        .await?;
        let payload = serde_json::json!({
            "reason_code": event.reason_code,
            "reason_detail": event.reason_detail,
            "trader_id": event.trader_id,
            "requisite_id": event.requisite_id,
            "crypto_amount": event.crypto_amount,
            "rate": event.rate,
            "candidates": event.candidates.iter().map(|c| serde_json::json!({
                "trader_id": c.trader_id,
                "requisite_id": c.requisite_id,
                "outcome": format!("{:?}", c.outcome).to_lowercase(),
                "reason_code": c.reason_code,
            })).collect::<Vec<_>>(),
        });
        sqlx::query(
            "INSERT INTO order_events (event_id, order_id, version, event_type, status, actor_kind, occurred_at, payload)
             VALUES ($1, $2, $3, $4, $5, 'system', $6, $7) ON CONFLICT DO NOTHING",
        )
        .bind(event.event_id)
        .bind(event.order_id)
        .bind(i64::from(event.sequence))
        .bind(kind_name(event.kind))
        .bind(status_name(event.status))
        .bind(at)
        .bind(payload)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}
