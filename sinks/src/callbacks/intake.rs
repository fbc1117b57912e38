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
use crate::projection::{kind_name, status_name};
use crate::runtime::Sink;
use jivapay_schemas::records::{Direction, OrderEvent, OrderEventKind};
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
    format!("order.{}", kind_name(kind))
}

fn millis_rfc3339(at: i64) -> String {
    chrono::DateTime::from_timestamp_millis(at)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The JSON body: the Standard Webhooks envelope `{type, timestamp, data}`; amounts are decimal
/// strings, never JSON numbers.
pub fn payload(event: &OrderEvent, public_url: &str) -> Value {
    let decimal = |d: Option<rust_decimal::Decimal>| d.map(|d| d.to_string());
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
            "direction": if event.direction == Direction::PayOut { "pay_out" } else { "pay_in" },
            "sequence": event.sequence,
            "status": status_name(event.status),
            "previous_status": event.previous_status.map(status_name),
            "fiat_amount": decimal(event.fiat_amount),
            "fiat_currency": event.fiat_currency,
            "crypto_amount": decimal(event.crypto_amount),
            "crypto_currency": "USDT",
            "rate": decimal(event.rate),
            "store_commission": decimal(event.store_commission),
            "payment_method": event.payment_method,
            "payment_url": payment_url,
            "reason_code": event.reason_code,
            "occurred_at": millis_rfc3339(event.occurred_at),
        }
    })
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
    async fn write<'a>(
        &'a self,
        tx: &'a mut PgConnection,
        event: &'a OrderEvent,
    ) -> sqlx::Result<()> {
        if let Some(url) = event.callback_url.as_deref().filter(|u| is_http_url(u)) {
            sqlx::query(
                "INSERT INTO callback_order_targets (order_id, store_id, url)
                 SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM stores WHERE id = $2)
                 ON CONFLICT (order_id) DO NOTHING",
            )
            .bind(event.order_id)
            .bind(event.store_id)
            .bind(url)
            .execute(&mut *tx)
            .await?;
        }
        if !merchant_visible(event.kind) {
            return Ok(());
        }
        let url: Option<String> = sqlx::query_scalar(
            "SELECT coalesce(
                 (SELECT url FROM callback_order_targets WHERE order_id = $1),
                 (SELECT callback_url FROM stores WHERE id = $2))",
        )
        .bind(event.order_id)
        .bind(event.store_id)
        .fetch_one(&mut *tx)
        .await?;
        let Some(url) = url.filter(|u| is_http_url(u)) else {
            tracing::debug!(order_id = %event.order_id, "no callback URL: nothing to deliver");
            return Ok(());
        };
        let first_delay = self
            .policy
            .get()
            .await?
            .schedule
            .first()
            .copied()
            .unwrap_or(0);
        let due = (self.clock)() + chrono::Duration::seconds(first_delay as i64);
        let inserted = sqlx::query(
            "INSERT INTO callback_deliveries (event_id, order_id, store_id, event_type, order_version, url,
                 payload, status, next_attempt_at, order_status, previous_status)
             SELECT $1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9, $10
             WHERE EXISTS (SELECT 1 FROM stores WHERE id = $3)
             ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(event.event_id)
        .bind(event.order_id)
        .bind(event.store_id)
        .bind(event_type(event.kind))
        .bind(i64::from(event.sequence.max(1)))
        .bind(&url)
        .bind(payload(event, &self.public_url))
        .bind(due)
        .bind(status_name(event.status))
        .bind(event.previous_status.map(status_name))
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 1 {
            metrics::counter!("jivapay_callbacks_enqueued_total").increment(1);
        }
        Ok(())
    }
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
