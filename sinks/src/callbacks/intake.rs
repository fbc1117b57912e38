//! Intake: `orders.events` → one `callback_deliveries` row per merchant-visible event, written
//! by the generic sink loop in the same transaction as the consumed offsets (so each event is
//! taken in exactly once; a replayed event hits `ON CONFLICT (event_id) DO NOTHING`).
//!
//! The URL is the one the order's first event carries (the order's own, else the store's
//! default then, as fraud chose it), remembered per order in `callback_order_targets`; an order
//! whose first event carried none falls back to the store's current default. Without either,
//! there is nobody to call and no delivery is made.

use super::policy::PolicyCache;
use super::Clock;
use crate::runtime::Sink;
use jivapay_schemas::records::{Direction, OrderEvent, OrderEventKind, OrderStatus};
use serde_json::{json, Value};
use sqlx::PgConnection;

/// The events a merchant is told about. `review` (an internal fraud step) and `trader_paid`
/// (the trader's own claim, followed by `completed` or a dispute) are not.
pub fn merchant_visible(kind: OrderEventKind) -> bool {
    use OrderEventKind::*;
    match kind {
        Created | Assigned | ClientConfirmed | Completed | Cancelled | Expired | Disputed
        | Resolved | Rejected | NoRequisite | Failed => true,
        Review | TraderPaid => false,
    }
}

/// The callback's `type`, e.g. `order.completed`.
pub fn event_type(kind: OrderEventKind) -> String {
    format!("order.{}", kind.as_str())
}

fn millis_rfc3339(at: i64) -> String {
    chrono::DateTime::from_timestamp_millis(at)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The JSON body: the Standard Webhooks envelope `{type, timestamp, data}`; amounts are decimal
/// strings, never JSON numbers.
pub fn payload(event: &OrderEvent, public_url: &str) -> Value {
    let payment_url = (event.kind == OrderEventKind::Created
        && event.direction == Direction::PayIn)
        .then_some(event.payment_token.as_ref())
        .flatten()
        .map(|token| format!("{}/pay/{token}", public_url.trim_end_matches('/')));
    json!({
        "type": event_type(event.kind),
        "timestamp": millis_rfc3339(event.occurred_at),
        "data": {
            "event_id": event.event_id,
            "order_id": event.order_id,
            "external_order_id": event.external_order_id,
            "store_id": event.store_id,
            "direction": event.direction.as_str(),
            "sequence": event.sequence,
            "status": event.status.as_str(),
            "previous_status": event.previous_status.map(OrderStatus::as_str),
            "fiat_amount": text(event.fiat_amount),
            "fiat_currency": event.fiat_currency,
            "crypto_amount": text(event.crypto_amount),
            "crypto_currency": "USDT",
            "rate": text(event.rate),
            "store_commission": text(event.store_commission),
            "payment_method": event.payment_method,
            "payment_url": payment_url,
            "reason_code": event.reason_code,
            "occurred_at": millis_rfc3339(event.occurred_at),
        }
    })
}

/// An amount as its exact decimal string.
fn text<T: ToString>(amount: Option<T>) -> Option<String> {
    amount.map(|a| a.to_string())
}

fn is_http_url(url: &str) -> bool {
    url.starts_with("https://") || url.starts_with("http://")
}

pub struct CallbackIntake {
    /// Where payment pages are served (the payment URL of `created` callbacks).
    pub public_url: String,
    pub clock: Clock,
    /// The first element of the retry schedule delays the first attempt.
    pub policy: PolicyCache,
}

impl Sink<OrderEvent> for CallbackIntake {
    /// Three statements per batch at most, whatever its size: the orders' own callback URLs,
    /// which events have somewhere to go, and their deliveries. Most batches of a store
    /// without a callback URL stop after the second.
    async fn write_batch<'a>(
        &'a self,
        tx: &'a mut PgConnection,
        events: &'a [&'a OrderEvent],
    ) -> sqlx::Result<()> {
        remember_order_urls(tx, events).await?;
        remember_holders(tx, events).await?;
        let visible: Vec<&OrderEvent> = events
            .iter()
            .copied()
            .filter(|e| merchant_visible(e.kind))
            .collect();
        if visible.is_empty() {
            return Ok(());
        }
        let targets = delivery_urls(tx, &visible).await?;
        if targets.is_empty() {
            tracing::debug!(
                events = visible.len(),
                "no callback URL: nothing to deliver"
            );
            return Ok(());
        }
        let first_delay = self
            .policy
            .get()
            .await?
            .schedule
            .first()
            .copied()
            .unwrap_or(0);
        let due = (self.clock)() + chrono::Duration::seconds(first_delay as i64);
        let deliveries: Vec<(&OrderEvent, String)> = targets
            .into_iter()
            .filter_map(|(index, url)| Some((*visible.get(usize::try_from(index).ok()?)?, url)))
            .collect();
        let payloads: Vec<Value> = deliveries
            .iter()
            .map(|(e, _)| payload(e, &self.public_url))
            .collect();
        let inserted = sqlx::query(
            "INSERT INTO callback_deliveries (event_id, order_id, store_id, event_type, order_version, url,
                 payload, status, next_attempt_at, order_status, previous_status)
             SELECT event_id, order_id, store_id, event_type, order_version, url, payload, 'pending', $8,
                    order_status, previous_status
             FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::bigint[], $6::text[], $7::jsonb[],
                         $9::text[], $10::text[])
                 AS d(event_id, order_id, store_id, event_type, order_version, url, payload, order_status,
                      previous_status)
             ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(deliveries.iter().map(|(e, _)| e.event_id).collect::<Vec<_>>())
        .bind(deliveries.iter().map(|(e, _)| e.order_id).collect::<Vec<_>>())
        .bind(deliveries.iter().map(|(e, _)| e.store_id).collect::<Vec<_>>())
        .bind(deliveries.iter().map(|(e, _)| event_type(e.kind)).collect::<Vec<_>>())
        .bind(
            deliveries
                .iter()
                .map(|(e, _)| i64::from(e.sequence.max(1)))
                .collect::<Vec<_>>(),
        )
        .bind(deliveries.iter().map(|(_, u)| u.clone()).collect::<Vec<_>>())
        .bind(payloads)
        .bind(due)
        .bind(
            deliveries
                .iter()
                .map(|(e, _)| e.status.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            deliveries
                .iter()
                .map(|(e, _)| e.previous_status.map(OrderStatus::as_str))
                .collect::<Vec<_>>(),
        )
        .execute(&mut *tx)
        .await?;
        metrics::counter!("jivapay_callbacks_enqueued_total").increment(inserted.rows_affected());
        Ok(())
    }
}

/// Keeps the callback URL a pay-in brought with it (the first one wins), for its events.
async fn remember_order_urls(tx: &mut PgConnection, events: &[&OrderEvent]) -> sqlx::Result<()> {
    let with_url: Vec<(&OrderEvent, &str)> = events
        .iter()
        .filter_map(|e| Some((*e, e.callback_url.as_deref().filter(|u| is_http_url(u))?)))
        .collect();
    if with_url.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO callback_order_targets (order_id, store_id, url)
         SELECT t.order_id, t.store_id, t.url
         FROM UNNEST($1::uuid[], $2::uuid[], $3::text[]) WITH ORDINALITY AS t(order_id, store_id, url, n)
         WHERE EXISTS (SELECT 1 FROM stores s WHERE s.id = t.store_id)
         ORDER BY t.n
         ON CONFLICT (order_id) DO NOTHING",
    )
    .bind(with_url.iter().map(|(e, _)| e.order_id).collect::<Vec<_>>())
    .bind(with_url.iter().map(|(e, _)| e.store_id).collect::<Vec<_>>())
    .bind(with_url.iter().map(|(_, u)| *u).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Keeps the trader of each order's first ASSIGNED (the first one wins, as in commissions):
/// only the holder's events reach the merchant.
async fn remember_holders(tx: &mut PgConnection, events: &[&OrderEvent]) -> sqlx::Result<()> {
    let assigned: Vec<(&OrderEvent, uuid::Uuid)> = events
        .iter()
        .filter(|e| e.kind == OrderEventKind::Assigned)
        .filter_map(|e| Some((*e, e.trader_id?.0)))
        .collect();
    if assigned.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO callback_order_holders (order_id, trader_id)
         SELECT h.order_id, h.trader_id
         FROM UNNEST($1::uuid[], $2::uuid[]) WITH ORDINALITY AS h(order_id, trader_id, n)
         ORDER BY h.n
         ON CONFLICT (order_id) DO NOTHING",
    )
    .bind(assigned.iter().map(|(e, _)| e.order_id).collect::<Vec<_>>())
    .bind(assigned.iter().map(|(_, t)| *t).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// (index into `events`, URL) of the events that have somewhere to go: the order's own URL,
/// else its store's; only stores that exist, and only events of the order's holder (or of no
/// trader).
async fn delivery_urls(
    tx: &mut PgConnection,
    events: &[&OrderEvent],
) -> sqlx::Result<Vec<(i64, String)>> {
    let urls: Vec<(i64, Option<String>)> = sqlx::query_as(
        "SELECT e.n - 1, coalesce(t.url, s.callback_url)
         FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[]) WITH ORDINALITY AS e(order_id, store_id, trader_id, n)
         JOIN stores s ON s.id = e.store_id
         LEFT JOIN callback_order_targets t ON t.order_id = e.order_id
         LEFT JOIN callback_order_holders h ON h.order_id = e.order_id
         WHERE e.trader_id IS NULL OR h.trader_id IS NULL OR h.trader_id = e.trader_id
         ORDER BY e.n",
    )
    .bind(events.iter().map(|e| e.order_id).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.store_id).collect::<Vec<_>>())
    .bind(
        events
            .iter()
            .map(|e| e.trader_id.map(|t| t.0))
            .collect::<Vec<_>>(),
    )
    .fetch_all(&mut *tx)
    .await?;
    Ok(urls
        .into_iter()
        .filter_map(|(index, url)| Some((index, url.filter(|u| is_http_url(u))?)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jivapay_schemas::samples;

    #[test]
    fn the_payload_has_decimal_strings_and_the_payment_url() {
        let mut event = samples::order_event();
        event.kind = OrderEventKind::Created;
        event.direction = Direction::PayIn;
        event.payment_token = Some("tok".into());
        event.fiat_amount = Some("5000.00".parse().unwrap());
        let body = payload(&event, "https://pay.example/");
        assert_eq!(body["type"], "order.created");
        assert_eq!(body["data"]["fiat_amount"], "5000.00");
        assert_eq!(body["data"]["payment_url"], "https://pay.example/pay/tok");
        assert_eq!(body["data"]["event_id"], event.event_id.to_string());
        assert!(merchant_visible(OrderEventKind::Completed));
        assert!(!merchant_visible(OrderEventKind::Review));
    }
}
