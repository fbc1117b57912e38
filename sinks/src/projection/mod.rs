//! The order projection sink: `orders.events` → the `orders` table (current state) and
//! `order_events` (history), for queries, the gateway's status endpoint and the payment page.
//! Key: order id. Guarantee: an event is applied only if it is newer than what the row holds
//! (`version` = the event's sequence), and each event id is recorded once, so replays and
//! redeliveries change nothing.

mod fold;

use crate::runtime::Sink;
use fold::OrderRow;
use jivapay_platform::order_changes::{self, OrderChange};
use jivapay_schemas::records::{OrderEvent, OrderEventKind};
use sqlx::PgConnection;

pub struct ProjectionSink;

fn millis(at: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(at).unwrap_or_default()
}

impl Sink<OrderEvent> for ProjectionSink {
    /// Two statements per batch, whatever its size: the orders (one folded row each) and the
    /// events, as arrays.
    async fn write_batch<'a>(
        &'a self,
        tx: &'a mut PgConnection,
        events: &'a [&'a OrderEvent],
    ) -> sqlx::Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let rows = fold::fold(events);
        upsert_orders(tx, &rows).await?;
        insert_events(tx, events).await?;
        notify_changes(tx, &rows).await
    }
}

/// Tells the HTTP streams that show these orders (payment pages, traders' lists) that they
/// changed: one notice per order, delivered when this transaction commits. A batch applied
/// again after a crash notifies again, which only makes a stream reload.
async fn notify_changes(tx: &mut PgConnection, rows: &[OrderRow]) -> sqlx::Result<()> {
    let payloads: Vec<String> = rows
        .iter()
        .map(|row| {
            OrderChange {
                order_id: row.id.into(),
                trader_id: row.trader_id.map(Into::into),
                status: row.status.to_owned(),
            }
            .payload()
        })
        .collect();
    sqlx::query("SELECT pg_notify($1, payload) FROM UNNEST($2::text[]) AS payload")
        .bind(order_changes::CHANNEL)
        .bind(payloads)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Inserts the orders not yet projected and moves the others forward, each only if the row is
/// newer than what the table holds and of the trader holding the order (`fold::of_one_holder`).
async fn upsert_orders(tx: &mut PgConnection, rows: &[OrderRow]) -> sqlx::Result<()> {
    fn column<T>(rows: &[OrderRow], f: impl Fn(&OrderRow) -> T) -> Vec<T> {
        rows.iter().map(f).collect()
    }
    sqlx::query(
        "INSERT INTO orders (id, store_id, external_order_id, direction, status, previous_status, fiat_amount,
             fiat_currency, crypto_amount, rate, payment_method, trader_id, requisite_id, customer_id, callback_url,
             reason_code, payment_token, created_at, assigned_at, client_confirmed_at, trader_paid_at,
             completed_at, closed_at, expires_at, updated_at, last_event_id, version)
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],
             $7::numeric[], $8::text[], $9::numeric[], $10::numeric[], $11::text[], $12::uuid[], $13::uuid[],
             $14::text[], $15::text[], $16::text[], $17::text[], $18::timestamptz[], $19::timestamptz[],
             $20::timestamptz[], $21::timestamptz[], $22::timestamptz[], $23::timestamptz[],
             $24::timestamptz[], $25::timestamptz[], $26::uuid[], $27::bigint[])
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
         WHERE orders.version < EXCLUDED.version
             AND (orders.trader_id IS NULL OR EXCLUDED.trader_id IS NULL
                  OR orders.trader_id = EXCLUDED.trader_id)",
    )
    .bind(column(rows, |r| r.id))
    .bind(column(rows, |r| r.store_id))
    .bind(column(rows, |r| r.external_order_id.clone()))
    .bind(column(rows, |r| r.direction))
    .bind(column(rows, |r| r.status))
    .bind(column(rows, |r| r.previous_status))
    .bind(column(rows, |r| r.fiat_amount))
    .bind(column(rows, |r| r.fiat_currency.clone()))
    .bind(column(rows, |r| r.crypto_amount))
    .bind(column(rows, |r| r.rate))
    .bind(column(rows, |r| r.payment_method.clone()))
    .bind(column(rows, |r| r.trader_id))
    .bind(column(rows, |r| r.requisite_id))
    .bind(column(rows, |r| r.customer_id.clone()))
    .bind(column(rows, |r| r.callback_url.clone()))
    .bind(column(rows, |r| r.reason_code.clone()))
    .bind(column(rows, |r| r.payment_token.clone()))
    .bind(column(rows, |r| r.created_at))
    .bind(column(rows, |r| r.assigned_at))
    .bind(column(rows, |r| r.client_confirmed_at))
    .bind(column(rows, |r| r.trader_paid_at))
    .bind(column(rows, |r| r.completed_at))
    .bind(column(rows, |r| r.closed_at))
    .bind(column(rows, |r| r.expires_at))
    .bind(column(rows, |r| r.updated_at))
    .bind(column(rows, |r| r.last_event_id))
    .bind(column(rows, |r| r.version))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// What an event adds to the timeline beyond its kind and status: only what is set, and the
/// assignment (trader, requisite, rate, amount in USDT, candidates) only on the event that
/// makes it — the later events of the order would repeat it, and the `orders` row holds the
/// current one. Most events therefore store `{}`.
fn timeline_payload(event: &OrderEvent) -> serde_json::Value {
    let mut payload = serde_json::Map::new();
    let mut put = |key: &str, value: serde_json::Value| {
        if !value.is_null() {
            payload.insert(key.to_owned(), value);
        }
    };
    put("reason_code", serde_json::json!(event.reason_code));
    put("reason_detail", serde_json::json!(event.reason_detail));
    if matches!(
        event.kind,
        OrderEventKind::Assigned | OrderEventKind::NoRequisite
    ) {
        put("trader_id", serde_json::json!(event.trader_id));
        put("requisite_id", serde_json::json!(event.requisite_id));
        put("crypto_amount", serde_json::json!(event.crypto_amount));
        put("rate", serde_json::json!(event.rate));
        if !event.candidates.is_empty() {
            put(
                "candidates",
                event
                    .candidates
                    .iter()
                    .map(|c| {
                        serde_json::json!({
                            "trader_id": c.trader_id,
                            "requisite_id": c.requisite_id,
                            "outcome": format!("{:?}", c.outcome).to_lowercase(),
                            "reason_code": c.reason_code,
                        })
                    })
                    .collect(),
            );
        }
    }
    serde_json::Value::Object(payload)
}

/// The order timeline: every event once (by its id), with what support reads on it.
async fn insert_events(tx: &mut PgConnection, events: &[&OrderEvent]) -> sqlx::Result<()> {
    let payloads: Vec<serde_json::Value> = events.iter().map(|e| timeline_payload(e)).collect();
    sqlx::query(
        "INSERT INTO order_events (event_id, order_id, version, event_type, status, actor_kind, occurred_at, payload)
         SELECT event_id, order_id, version, event_type, status, 'system', occurred_at, payload
         FROM UNNEST($1::uuid[], $2::uuid[], $3::bigint[], $4::text[], $5::text[], $6::timestamptz[], $7::jsonb[])
             AS e (event_id, order_id, version, event_type, status, occurred_at, payload)
         ON CONFLICT DO NOTHING",
    )
    .bind(events.iter().map(|e| e.event_id).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.order_id).collect::<Vec<_>>())
    .bind(events.iter().map(|e| i64::from(e.sequence)).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.status.as_str()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| millis(e.occurred_at)).collect::<Vec<_>>())
    .bind(payloads)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
