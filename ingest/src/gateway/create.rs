//! `POST /api/v1/payins`: a store asks to be paid. The request is parsed into a validated order
//! (amount, currency, method, URLs) before anything is written; the order id is derived from
//! the store and its external order id, so the same request twice is the same order (200 with
//! the same answer), while the same external id with another amount, currency or method is a
//! 409 `idempotency_conflict`. The order goes to `orders.requested` (key = store id) and the
//! answer waits for the broker's acknowledgement.

use super::journal::NewRequest;
use crate::auth::StoreCaller;
use crate::cache::PoolCheck;
use crate::state::IngestState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use base64::Engine as _;
use jivapay_core::{callback_url, validate};
use jivapay_domain::{FiatAmount, OrderId, OrderStatus, StoreId};
use jivapay_platform::http::error::{ApiError, ApiResult};
use jivapay_platform::http::json::Body;
use jivapay_schemas::records::{Direction, OrderRequested};
use jivapay_schemas::topics::ORDERS_REQUESTED;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;
use std::str::FromStr;
use uuid::Uuid;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatePayin {
    external_order_id: String,
    /// A decimal string, e.g. `"5000.00"` (numbers are refused: money is never a float).
    amount: String,
    currency: String,
    payment_method: String,
    customer_id: Option<String>,
    callback_url: Option<String>,
    success_url: Option<String>,
    fail_url: Option<String>,
}

/// A pay-in request after every check.
struct ValidPayin {
    external_order_id: String,
    amount: FiatAmount,
    currency: String,
    payment_method: String,
    customer_id: Option<String>,
    callback_url: Option<String>,
    success_url: Option<String>,
    fail_url: Option<String>,
}

fn code(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(status, code, message)
}

impl CreatePayin {
    fn parse(self) -> ApiResult<ValidPayin> {
        let external_order_id = self.external_order_id.trim().to_owned();
        if external_order_id.is_empty()
            || external_order_id.chars().count() > 128
            || external_order_id.chars().any(char::is_control)
        {
            return Err(code(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_external_order_id",
                "external_order_id must be 1 to 128 printable characters",
            ));
        }
        let amount = Decimal::from_str(self.amount.trim())
            .ok()
            .and_then(|d| FiatAmount::positive(d).ok())
            .filter(|a| a.value() <= validate::max_fiat())
            .ok_or_else(|| {
                code(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_amount",
                    "amount must be a decimal string greater than 0 with at most 2 decimal places",
                )
            })?;
        let optional_text =
            |field: &str, value: Option<String>, max: usize| -> ApiResult<Option<String>> {
                Ok(value.map(|v| validate::text(field, &v, max)).transpose()?)
            };
        let optional_url = |field: &str, value: Option<String>| -> ApiResult<Option<String>> {
            Ok(value.map(|v| validate::url(field, &v)).transpose()?)
        };
        Ok(ValidPayin {
            external_order_id,
            amount,
            currency: self.currency.trim().to_owned(),
            payment_method: self.payment_method.trim().to_owned(),
            customer_id: optional_text("customer_id", self.customer_id, 256)?,
            callback_url: optional_url("callback_url", self.callback_url)?,
            success_url: optional_url("success_url", self.success_url)?,
            fail_url: optional_url("fail_url", self.fail_url)?,
        })
    }
}

impl ValidPayin {
    /// What makes two requests "the same order".
    fn fingerprint(&self) -> Vec<u8> {
        let text = format!(
            "pay_in|{}|{}|{}",
            self.amount, self.currency, self.payment_method
        );
        Sha256::digest(text.as_bytes()).to_vec()
    }
}

#[derive(Debug, Serialize)]
pub struct PayinCreated {
    order_id: Uuid,
    external_order_id: String,
    status: &'static str,
    direction: &'static str,
    amount: String,
    currency: String,
    payment_method: String,
    payment_url: String,
    created_at: chrono::DateTime<chrono::Utc>,
    expires_at: chrono::DateTime<chrono::Utc>,
}

/// The payment page token: keyed hash of the order id, so it is unguessable and the same for
/// every repeat of the request.
pub fn payment_token(state: &IngestState, order_id: Uuid) -> String {
    let digest = state
        .data_key
        .lookup_hash(&format!("payment-page:{order_id}"));
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..24])
}

/// Reference data and the store's own switches for a pay-in: from the cache, else in one
/// round trip.
async fn pool_check(
    state: &IngestState,
    store_id: Uuid,
    currency: &str,
    method: &str,
) -> ApiResult<PoolCheck> {
    if let Some(check) = state.cache.pool_check(store_id, currency, method) {
        return Ok(check);
    }
    let epoch = state.cache.epoch();
    let row = sqlx::query(
        "SELECT
            (SELECT pay_in_enabled FROM stores WHERE id = $1) AS pay_in_enabled,
            EXISTS (SELECT 1 FROM currencies WHERE code = $2 AND kind = 'fiat' AND is_active) AS currency_known,
            EXISTS (SELECT 1 FROM payment_method_currencies pc
               JOIN payment_methods pm ON pm.code = pc.payment_method
              WHERE pc.payment_method = $3 AND pc.fiat_currency = $2 AND pc.is_active AND pm.is_active) AS pool_active,
            (SELECT min_amount FROM payment_method_currencies WHERE payment_method = $3 AND fiat_currency = $2) AS min_amount,
            (SELECT max_amount FROM payment_method_currencies WHERE payment_method = $3 AND fiat_currency = $2) AS max_amount",
    )
    .bind(store_id)
    .bind(currency)
    .bind(method)
    .fetch_one(&state.pool)
    .await?;
    let check = PoolCheck {
        pay_in_enabled: row
            .get::<Option<bool>, _>("pay_in_enabled")
            .unwrap_or(false),
        currency_known: row.get("currency_known"),
        pool_active: row.get("pool_active"),
        min_amount: row.get("min_amount"),
        max_amount: row.get("max_amount"),
    };
    state
        .cache
        .remember_pool_check(epoch, store_id, currency, method, check.clone());
    Ok(check)
}

pub async fn create_payin(
    State(state): State<IngestState>,
    store: StoreCaller,
    Body(request): Body<CreatePayin>,
) -> ApiResult<(StatusCode, Json<PayinCreated>)> {
    let payin = request.parse()?;
    if let Some(url) = payin.callback_url.as_deref() {
        let allow = state.cache.allow_private_callbacks(&state.pool).await;
        callback_url::vet_field(allow, "callback_url", url).await?;
    }
    let check = pool_check(
        &state,
        store.store_id,
        &payin.currency,
        &payin.payment_method,
    )
    .await?;
    if !check.pay_in_enabled {
        return Err(code(
            StatusCode::FORBIDDEN,
            "pay_in_disabled",
            "pay-ins are disabled for this store",
        ));
    }
    if !check.currency_known {
        return Err(code(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_currency",
            format!("{} is not a supported currency", payin.currency),
        ));
    }
    if !check.pool_active {
        return Err(code(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_payment_method",
            format!(
                "{} is not offered for {}",
                payin.payment_method, payin.currency
            ),
        ));
    }
    let (min, max) = (check.min_amount, check.max_amount);
    if min.is_some_and(|m| payin.amount.value() < m)
        || max.is_some_and(|m| payin.amount.value() > m)
    {
        return Err(code(
            StatusCode::UNPROCESSABLE_ENTITY,
            "amount_out_of_bounds",
            "amount is outside the limits of this payment method",
        ));
    }

    let order_id = OrderId::derive(StoreId(store.store_id), &payin.external_order_id).as_uuid();
    let fingerprint = payin.fingerprint();
    let token = payment_token(&state, order_id);
    let first = state
        .journal
        .record(NewRequest {
            store_id: store.store_id,
            external_order_id: payin.external_order_id.clone(),
            order_id,
            request_hash: fingerprint.clone(),
            fiat_amount: payin.amount.value(),
            fiat_currency: payin.currency.clone(),
            payment_method: payin.payment_method.clone(),
            payment_token: token.clone(),
        })
        .await?;
    let (status, created_at, expires_at) = match first {
        Some((created, expires)) => (StatusCode::CREATED, created, expires),
        None => {
            let (hash, created, expires): (Vec<u8>, chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) = sqlx::query_as(
                "SELECT request_hash, created_at, expires_at FROM gateway_requests WHERE store_id = $1 AND external_order_id = $2",
            )
            .bind(store.store_id)
            .bind(&payin.external_order_id)
            .fetch_one(&state.pool)
            .await?;
            if hash != fingerprint {
                return Err(code(
                    StatusCode::CONFLICT,
                    "idempotency_conflict",
                    "this external_order_id was already used with another amount, currency or payment method",
                ));
            }
            (StatusCode::OK, created, expires)
        }
    };
    let record = OrderRequested {
        order_id: order_id.into(),
        store_id: store.store_id.into(),
        external_order_id: payin.external_order_id.clone(),
        direction: Direction::PayIn,
        fiat_amount: Some(payin.amount),
        fiat_currency: payin.currency.clone(),
        payment_method: payin.payment_method.clone(),
        customer_id: payin.customer_id,
        callback_url: payin.callback_url,
        success_url: payin.success_url,
        fail_url: payin.fail_url,
        payment_token: token.clone(),
        // The expiry in this response is the one every stage keeps, even if the window
        // setting changes while the order is in flight.
        expires_at: Some(expires_at.timestamp_millis()),
        requested_at: created_at.timestamp_millis(),
    };
    // Produced again on a repeat too: if the first attempt's produce failed, this is the one
    // that lands; if not, downstream deduplicates by order id.
    state
        .producer
        .send(ORDERS_REQUESTED, &store.store_id.to_string(), &record)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "orders.requested produce failed");
            ApiError::unavailable(
                "the order could not be accepted now; retry with the same external_order_id",
            )
        })?;
    Ok((
        status,
        Json(PayinCreated {
            order_id,
            external_order_id: payin.external_order_id,
            status: OrderStatus::Created.as_str(),
            direction: Direction::PayIn.as_str(),
            amount: payin.amount.to_string(),
            currency: payin.currency,
            payment_method: payin.payment_method,
            payment_url: format!("{}/pay/{token}", state.public_url.trim_end_matches('/')),
            created_at,
            expires_at,
        }),
    ))
}
