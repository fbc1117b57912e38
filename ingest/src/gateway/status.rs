//! Order status for the store that created it: by order id or by external order id. An order
//! of another store is 404. The status comes from the order projection once the pipeline has
//! reported on it, and is `created` before that.

use crate::auth::StoreCaller;
use crate::state::IngestState;
use axum::extract::State;
use axum::Json;
use jivapay_platform::http::error::{ApiError, ApiResult};
use jivapay_platform::http::path::Path;
use rust_decimal::Decimal;
use serde::Serialize;
use uuid::Uuid;

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct OrderStatus {
    order_id: Uuid,
    external_order_id: String,
    direction: String,
    status: String,
    amount: Option<Decimal>,
    currency: String,
    payment_method: String,
    crypto_amount: Option<Decimal>,
    rate: Option<Decimal>,
    reason_code: Option<String>,
    created_at: chrono::DateTime<chrono::Utc>,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
    updated_at: Option<chrono::DateTime<chrono::Utc>>,
}

const SELECT: &str = "SELECT g.order_id, g.external_order_id, g.direction, coalesce(o.status, 'created') AS status,
        g.fiat_amount AS amount, g.fiat_currency AS currency, g.payment_method, o.crypto_amount, o.rate,
        o.reason_code, g.created_at, coalesce(o.expires_at, g.expires_at) AS expires_at, o.updated_at
    FROM gateway_requests g LEFT JOIN orders o ON o.id = g.order_id
    WHERE g.store_id = $1";

pub async fn by_id(
    State(state): State<IngestState>,
    store: StoreCaller,
    Path(order_id): Path<Uuid>,
) -> ApiResult<Json<OrderStatus>> {
    sqlx::query_as(&format!("{SELECT} AND g.order_id = $2"))
        .bind(store.store_id)
        .bind(order_id)
        .fetch_optional(&state.pool)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("order"))
}

pub async fn by_external_id(
    State(state): State<IngestState>,
    store: StoreCaller,
    Path(external_order_id): Path<String>,
) -> ApiResult<Json<OrderStatus>> {
    sqlx::query_as(&format!("{SELECT} AND g.external_order_id = $2"))
        .bind(store.store_id)
        .bind(external_order_id)
        .fetch_optional(&state.pool)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("order"))
}
