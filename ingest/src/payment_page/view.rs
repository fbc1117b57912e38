//! What the payer sees, loaded by token: the order's state and, once assigned, the requisite to
//! pay (decrypted for this page only).

use crate::state::IngestState;
use axum::extract::State;
use axum::Json;
use jivapay_domain::OrderStatus;
use jivapay_platform::http::error::{ApiError, ApiResult};
use jivapay_platform::http::path::Path;
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::Row;
use uuid::Uuid;

#[derive(Debug, Clone, Serialize)]
pub struct Requisite {
    pub kind: String,
    pub number: String,
    pub holder_name: String,
    pub bank: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PaymentView {
    pub order_id: Uuid,
    pub status: String,
    pub amount: Option<Decimal>,
    pub currency: String,
    pub payment_method: String,
    pub requisite: Option<Requisite>,
    pub expires_at: chrono::DateTime<chrono::Utc>,
    pub seconds_left: i64,
    /// Whether "I have paid" is accepted now.
    pub can_confirm: bool,
    #[serde(skip)]
    pub trader_id: Option<Uuid>,
}

/// Statuses in which the payer is shown the requisite.
fn shows_requisite(status: &str) -> bool {
    OrderStatus::name_in(status, OrderStatus::AWAITING_PAYMENT)
}

pub async fn load(state: &IngestState, token: &str) -> ApiResult<PaymentView> {
    let row = sqlx::query(
        "SELECT g.order_id, coalesce(o.status, 'created') AS status, g.fiat_amount, g.fiat_currency, g.payment_method,
                coalesce(o.expires_at, g.expires_at) AS expires_at, o.trader_id,
                r.kind, r.number_ciphertext, r.holder_name, b.name AS bank
         FROM gateway_requests g
         LEFT JOIN orders o ON o.id = g.order_id
         LEFT JOIN requisites r ON r.id = o.requisite_id
         LEFT JOIN banks b ON b.id = r.bank_id
         WHERE g.payment_token = $1",
    )
    .bind(token)
    .fetch_optional(&state.pool)
    .await?
    .ok_or_else(|| ApiError::not_found("payment"))?;
    let status: String = row.get("status");
    let expires_at: chrono::DateTime<chrono::Utc> = row.get("expires_at");
    let requisite = match (
        shows_requisite(&status),
        row.get::<Option<Vec<u8>>, _>("number_ciphertext"),
    ) {
        (true, Some(ciphertext)) => Some(Requisite {
            kind: row.get("kind"),
            number: state.data_key.decrypt(&ciphertext).map_err(|e| {
                tracing::error!(error = %e, "requisite number does not decrypt");
                ApiError::internal()
            })?,
            holder_name: row.get("holder_name"),
            bank: row.get("bank"),
        }),
        _ => None,
    };
    let seconds_left = (expires_at - chrono::Utc::now()).num_seconds().max(0);
    Ok(PaymentView {
        order_id: row.get("order_id"),
        can_confirm: status == OrderStatus::Assigned.as_str() && seconds_left > 0,
        status,
        amount: row.get("fiat_amount"),
        currency: row.get("fiat_currency"),
        payment_method: row.get("payment_method"),
        requisite,
        expires_at,
        seconds_left,
        trader_id: row.get("trader_id"),
    })
}

pub async fn json(
    State(state): State<IngestState>,
    Path(token): Path<String>,
) -> ApiResult<Json<PaymentView>> {
    load(&state, &token).await.map(Json)
}
