//! Merchant callbacks in the management API: the delivery log (deliveries per store and per
//! order, each with its attempts: status code, latency, the first KB of the answer, the next
//! attempt's time), replay of one delivery or of a store's failed deliveries in a time range,
//! and re-enabling a store whose callbacks the sink disabled after continuous failure.
//!
//! A merchant sees and replays only his own stores' deliveries (scope `own`); staff need
//! `callbacks:read` / `callbacks:replay` / `callbacks:update` with scope `*`. Anything outside
//! the caller's scope is 404. Replays and re-enabling are audited in the same transaction.
//!
//! Also here: [`vet_callback_url`], the store routes' save-time address check for callback URLs
//! (the policy itself is `jivapay_core::callback_url`, shared with the gateway and the sink).

use super::audit_log::Params;
use crate::audit::{self, Actor, Level};
use crate::auth::{Authorized, Visibility};
use crate::error::{ApiError, ApiResult};
use crate::json::Body;
use crate::need;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use jivapay_core::callback_url;
use jivapay_platform::http::path::Path;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

need!(CallbacksRead, "callbacks", "read", [Merchant]);
need!(CallbacksReplay, "callbacks", "replay", [Merchant]);
need!(CallbacksUpdate, "callbacks", "update", [Merchant]);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/callback-deliveries", get(list))
        .route("/callback-deliveries/{id}", get(read))
        .route("/callback-deliveries/{id}/replay", post(replay_one))
        .route(
            "/stores/{id}/callback-deliveries/replay",
            post(replay_failed),
        )
        .route("/stores/{id}/callbacks/enable", post(enable))
}

/// Refuses a callback URL whose host is or resolves to a loopback, private, link-local or
/// metadata address (422 `callback_url_forbidden`), unless the runtime setting
/// `callbacks.allow_private_addresses` is on. The URL is checked again at every send.
pub async fn vet_callback_url(
    pool: &sqlx::PgPool,
    field: &str,
    url: Option<&str>,
) -> ApiResult<()> {
    let Some(url) = url else {
        return Ok(());
    };
    let allow = callback_url::allow_private(pool).await?;
    Ok(callback_url::vet_field(allow, field, url).await?)
}

const MAX_LIMIT: i64 = 500;
const DEFAULT_LIMIT: i64 = 100;
/// The widest time range one bulk replay covers.
const REPLAY_RANGE_MAX_DAYS: i64 = 31;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    store_id: Option<Uuid>,
    order_id: Option<Uuid>,
    /// pending, delivering, succeeded or failed.
    status: Option<String>,
    /// e.g. `order.completed`.
    event_type: Option<String>,
    /// Inclusive lower bound of `created_at` (RFC 3339).
    from: Option<DateTime<Utc>>,
    /// Exclusive upper bound of `created_at` (RFC 3339).
    to: Option<DateTime<Utc>>,
    limit: Option<i64>,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
struct DeliveryView {
    id: Uuid,
    event_id: Uuid,
    order_id: Uuid,
    store_id: Uuid,
    event_type: String,
    order_version: i64,
    order_status: Option<String>,
    previous_status: Option<String>,
    url: String,
    status: String,
    attempt_count: i32,
    /// When the next attempt is due (pending), or when the current attempt's lease ends
    /// (delivering); null once finished.
    next_attempt_at: Option<DateTime<Utc>>,
    last_attempt_at: Option<DateTime<Utc>>,
    last_status_code: Option<i32>,
    last_error: Option<String>,
    replay_count: i32,
    replayed_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    completed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
struct AttemptView {
    attempt_no: i32,
    url: String,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    status_code: Option<i32>,
    latency_ms: Option<i32>,
    response_excerpt: Option<String>,
    error: Option<String>,
    webhook_timestamp: Option<i64>,
    next_attempt_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize)]
struct DeliveryDetail {
    #[serde(flatten)]
    delivery: DeliveryView,
    payload: serde_json::Value,
    attempts: Vec<AttemptView>,
}

/// `$1` all, `$2` the caller's own merchant.
const SELECT_DELIVERY: &str =
    "SELECT d.id, d.event_id, d.order_id, d.store_id, d.event_type, d.order_version,
        d.order_status, d.previous_status, d.url, d.status, d.attempt_count, d.next_attempt_at,
        d.last_attempt_at, d.last_status_code, d.last_error, d.replay_count, d.replayed_at,
        d.created_at, d.completed_at
    FROM callback_deliveries d JOIN stores s ON s.id = d.store_id
    WHERE ($1 OR s.merchant_id = $2)";

const STATUSES: [&str; 4] = ["pending", "delivering", "succeeded", "failed"];

async fn list(
    State(state): State<AppState>,
    auth: Authorized<CallbacksRead>,
    Params(query): Params<ListQuery>,
) -> ApiResult<Json<Vec<DeliveryView>>> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    if let Some(status) = &query.status {
        if !STATUSES.contains(&status.as_str()) {
            return Err(ApiError::invalid(format!(
                "status must be one of {}",
                STATUSES.join(", ")
            )));
        }
    }
    if let (Some(from), Some(to)) = (query.from, query.to) {
        if from > to {
            return Err(ApiError::invalid("from must not be after to"));
        }
    }
    let visibility = auth.visibility();
    let rows = sqlx::query_as(&format!(
        "{SELECT_DELIVERY}
           AND ($3::uuid IS NULL OR d.store_id = $3)
           AND ($4::uuid IS NULL OR d.order_id = $4)
           AND ($5::text IS NULL OR d.status = $5)
           AND ($6::text IS NULL OR d.event_type = $6)
           AND ($7::timestamptz IS NULL OR d.created_at >= $7)
           AND ($8::timestamptz IS NULL OR d.created_at < $8)
         ORDER BY d.created_at DESC, d.order_version DESC, d.id DESC
         LIMIT $9"
    ))
    .bind(visibility.all)
    .bind(visibility.merchant_id)
    .bind(query.store_id)
    .bind(query.order_id)
    .bind(&query.status)
    .bind(&query.event_type)
    .bind(query.from)
    .bind(query.to)
    .bind(limit)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(rows))
}

async fn fetch_visible(
    conn: &mut PgConnection,
    visibility: &Visibility,
    id: Uuid,
    lock: bool,
) -> ApiResult<DeliveryView> {
    let lock = if lock { " FOR UPDATE OF d" } else { "" };
    sqlx::query_as(&format!("{SELECT_DELIVERY} AND d.id = $3{lock}"))
        .bind(visibility.all)
        .bind(visibility.merchant_id)
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| ApiError::not_found("callback delivery"))
}

async fn read(
    State(state): State<AppState>,
    auth: Authorized<CallbacksRead>,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<DeliveryDetail>> {
    let mut conn = state.pool.acquire().await?;
    let delivery = fetch_visible(&mut conn, &auth.visibility(), id, false).await?;
    let payload: serde_json::Value =
        sqlx::query_scalar("SELECT payload FROM callback_deliveries WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *conn)
            .await?;
    let attempts = sqlx::query_as(
        "SELECT attempt_no, url, started_at, finished_at, status_code, latency_ms, response_excerpt,
                error, webhook_timestamp, next_attempt_at
         FROM callback_attempts WHERE delivery_id = $1 ORDER BY attempt_no",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Json(DeliveryDetail {
        delivery,
        payload,
        attempts,
    }))
}

/// The store if the caller may reach it (404 otherwise), refusing a store whose callbacks are
/// disabled: a replay would only wait.
async fn store_for_replay(
    conn: &mut PgConnection,
    visibility: &Visibility,
    store_id: Uuid,
) -> ApiResult<()> {
    let disabled: Option<Option<DateTime<Utc>>> = sqlx::query_scalar(
        "SELECT callbacks_disabled_at FROM stores WHERE id = $3 AND ($1 OR merchant_id = $2) FOR SHARE",
    )
    .bind(visibility.all)
    .bind(visibility.merchant_id)
    .bind(store_id)
    .fetch_optional(conn)
    .await?;
    match disabled {
        None => Err(ApiError::not_found("store")),
        Some(Some(_)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "callbacks_disabled",
            format!(
                "the store's callbacks are disabled after continuous failure; fix the endpoint, \
                 then POST /api/stores/{store_id}/callbacks/enable (or save a new callback_url)"
            ),
        )),
        Some(None) => Ok(()),
    }
}

const REPLAY_SET: &str =
    "status = 'pending', next_attempt_at = now(), schedule_offset = attempt_count,
    replay_count = replay_count + 1, replayed_at = now(), replayed_by = $2, completed_at = NULL";

async fn replay_one(
    State(state): State<AppState>,
    auth: Authorized<CallbacksReplay>,
    Path(id): Path<Uuid>,
) -> ApiResult<(StatusCode, Json<DeliveryView>)> {
    let visibility = auth.visibility();
    let mut tx = state.pool.begin().await?;
    let before = fetch_visible(&mut tx, &visibility, id, true).await?;
    store_for_replay(&mut tx, &visibility, before.store_id).await?;
    if !matches!(before.status.as_str(), "succeeded" | "failed") {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "delivery_in_progress",
            format!(
                "the delivery is {}; only a finished delivery is replayed",
                before.status
            ),
        ));
    }
    sqlx::query(&format!(
        "UPDATE callback_deliveries SET {REPLAY_SET} WHERE id = $1"
    ))
    .bind(id)
    .bind(auth.caller.user_id)
    .execute(&mut *tx)
    .await?;
    let after = fetch_visible(&mut tx, &visibility, id, false).await?;
    audit::record(
        &mut tx,
        Actor::User(&auth.caller),
        audit::Entry {
            action: "callback_delivery.replay",
            entity_type: "callback_delivery",
            entity_id: id.to_string(),
            before: serde_json::to_value(&before).ok(),
            after: serde_json::to_value(&after).ok(),
            level: Level::Info,
        },
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::ACCEPTED, Json(after)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayRange {
    /// Inclusive lower bound of the deliveries' `created_at`.
    from: DateTime<Utc>,
    /// Exclusive upper bound.
    to: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
struct Replayed {
    store_id: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    replayed: i64,
}

async fn replay_failed(
    State(state): State<AppState>,
    auth: Authorized<CallbacksReplay>,
    Path(store_id): Path<Uuid>,
    Body(range): Body<ReplayRange>,
) -> ApiResult<(StatusCode, Json<Replayed>)> {
    if range.from >= range.to {
        return Err(ApiError::invalid("from must be before to"));
    }
    if range.to - range.from > chrono::Duration::days(REPLAY_RANGE_MAX_DAYS) {
        return Err(ApiError::invalid(format!(
            "the range covers at most {REPLAY_RANGE_MAX_DAYS} days"
        )));
    }
    let visibility = auth.visibility();
    let mut tx = state.pool.begin().await?;
    store_for_replay(&mut tx, &visibility, store_id).await?;
    let replayed = sqlx::query(&format!(
        "UPDATE callback_deliveries SET {REPLAY_SET}
         WHERE store_id = $1 AND status = 'failed' AND created_at >= $3 AND created_at < $4"
    ))
    .bind(store_id)
    .bind(auth.caller.user_id)
    .bind(range.from)
    .bind(range.to)
    .execute(&mut *tx)
    .await?
    .rows_affected() as i64;
    let answer = Replayed {
        store_id,
        from: range.from,
        to: range.to,
        replayed,
    };
    audit::record(
        &mut tx,
        Actor::User(&auth.caller),
        audit::Entry {
            action: "callback_delivery.replay_failed",
            entity_type: "store",
            entity_id: store_id.to_string(),
            before: None,
            after: serde_json::to_value(&answer).ok(),
            level: Level::Info,
        },
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::ACCEPTED, Json(answer)))
}

#[derive(Debug, Serialize, sqlx::FromRow)]
struct CallbackState {
    store_id: Uuid,
    callback_url: Option<String>,
    callbacks_disabled_at: Option<DateTime<Utc>>,
    callbacks_disabled_reason: Option<String>,
    callbacks_failing_since: Option<DateTime<Utc>>,
}

async fn enable(
    State(state): State<AppState>,
    auth: Authorized<CallbacksUpdate>,
    Path(store_id): Path<Uuid>,
) -> ApiResult<Json<CallbackState>> {
    let visibility = auth.visibility();
    let mut tx = state.pool.begin().await?;
    let select =
        "SELECT id AS store_id, callback_url, callbacks_disabled_at, callbacks_disabled_reason,
            callbacks_failing_since
        FROM stores WHERE id = $3 AND ($1 OR merchant_id = $2)";
    let before: CallbackState = sqlx::query_as(&format!("{select} FOR UPDATE"))
        .bind(visibility.all)
        .bind(visibility.merchant_id)
        .bind(store_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| ApiError::not_found("store"))?;
    sqlx::query(
        "UPDATE stores SET callbacks_disabled_at = NULL, callbacks_disabled_reason = NULL,
            callbacks_failing_since = NULL
         WHERE id = $1",
    )
    .bind(store_id)
    .execute(&mut *tx)
    .await?;
    let after: CallbackState = sqlx::query_as(select)
        .bind(visibility.all)
        .bind(visibility.merchant_id)
        .bind(store_id)
        .fetch_one(&mut *tx)
        .await?;
    audit::record(
        &mut tx,
        Actor::User(&auth.caller),
        audit::Entry {
            action: "store.callbacks.enable",
            entity_type: "store",
            entity_id: store_id.to_string(),
            before: serde_json::to_value(&before).ok(),
            after: serde_json::to_value(&after).ok(),
            level: Level::Info,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Json(after))
}
