//! Stores: a merchant creates and edits his own (self-service, scope `own`); staff work on any
//! store within their scope and alone set store commissions and enable or disable a store.
//!
//! Each store has a callback signing secret (`whsec_` + 32 random bytes, base64url), encrypted at
//! rest with the data key and shown once: in the answer that creates or rotates it. Rotation keeps
//! the old secret as `previous` for 24 hours, so callbacks in flight still verify.
//!
//! Every store change is audited and republishes the store's record to the `stores` topic in the
//! same transaction. Gateway API keys are in [`api_keys`].

pub mod api_keys;

use super::callback_deliveries::vet_callback_url;
use super::users::{limit, query_rejected};
use crate::audit::{self, Actor, Level};
use crate::auth::permissions::allowed_scope;
use crate::auth::{Authorized, Permission, Scope, Visibility};
use crate::commission_rules::check_store_commission;
use crate::error::{ApiError, ApiResult};
use crate::json::{present, Body};
use crate::need;
use crate::outbox::snapshots::publish_store;
use crate::state::AppState;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use jivapay_core::signing_secret;
use jivapay_core::validate;
use jivapay_domain::Direction;
use jivapay_platform::http::path::Path;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

need!(StoresCreate, "stores", "create", [Merchant]);
need!(StoresRead, "stores", "read", [Merchant]);
need!(StoresUpdate, "stores", "update", [Merchant]);
need!(CommissionsUpdate, "commissions", "update", []);

/// Holding this lets a caller save a commission that makes the platform lose money.
const ALLOW_LOSS: Permission = Permission::new("commissions", "allow_loss");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/stores", post(create).get(list))
        .route("/stores/{id}", get(read).patch(update))
        .route("/stores/{id}/signing-secret/rotate", post(rotate_secret))
        .route(
            "/stores/{id}/commissions/{payment_method}/{direction}",
            put(set_commission).delete(delete_commission),
        )
        .merge(api_keys::router())
}

/// Longest store name, in characters.
const NAME_MAX_CHARS: usize = 128;
/// How long the previous signing secret stays valid after a rotation.
const PREVIOUS_SECRET_HOURS: i32 = 24;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateStore {
    /// Staff name the merchant; a merchant always creates under his own.
    merchant_id: Option<Uuid>,
    name: String,
    callback_url: Option<String>,
    success_url: Option<String>,
    fail_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateStore {
    name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    callback_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    success_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    fail_url: Option<Option<String>>,
    /// Staff only: a merchant cannot re-enable a store staff switched off.
    is_enabled: Option<bool>,
    pay_in_enabled: Option<bool>,
    pay_out_enabled: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    merchant_id: Option<Uuid>,
    limit: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetCommission {
    percent: Decimal,
    #[serde(default)]
    allow_loss: bool,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct CommissionView {
    payment_method: String,
    direction: String,
    percent: Decimal,
    allow_loss: bool,
    updated_at: chrono::DateTime<chrono::Utc>,
}

/// A store as the API shows it: never a signing secret.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct StoreView {
    id: Uuid,
    merchant_id: Uuid,
    name: String,
    callback_url: Option<String>,
    success_url: Option<String>,
    fail_url: Option<String>,
    is_enabled: bool,
    pay_in_enabled: bool,
    pay_out_enabled: bool,
    signing_secret_rotated_at: Option<chrono::DateTime<chrono::Utc>>,
    previous_signing_secret_expires_at: Option<chrono::DateTime<chrono::Utc>>,
    callbacks_disabled_at: Option<chrono::DateTime<chrono::Utc>>,
    callbacks_disabled_reason: Option<String>,
    #[sqlx(skip)]
    commissions: Vec<CommissionView>,
    created_at: chrono::DateTime<chrono::Utc>,
    updated_at: chrono::DateTime<chrono::Utc>,
}

/// The answer that creates or rotates a signing secret: the store and, once, the secret.
#[derive(Debug, Serialize)]
struct WithSecret {
    #[serde(flatten)]
    store: StoreView,
    signing_secret: String,
}

/// `$1` all, `$2` the caller's own merchant.
const SELECT_VIEW: &str =
    "SELECT s.id, s.merchant_id, s.name, s.callback_url, s.success_url, s.fail_url,
        s.is_enabled, s.pay_in_enabled, s.pay_out_enabled, s.signing_secret_rotated_at,
        s.previous_signing_secret_expires_at, s.callbacks_disabled_at, s.callbacks_disabled_reason,
        s.created_at, s.updated_at
    FROM stores s
    WHERE ($1 OR s.merchant_id = $2)";

async fn commissions(conn: &mut PgConnection, store_id: Uuid) -> sqlx::Result<Vec<CommissionView>> {
    sqlx::query_as(
        "SELECT payment_method, direction, percent, allow_loss, updated_at FROM store_commissions
         WHERE store_id = $1 ORDER BY payment_method, direction",
    )
    .bind(store_id)
    .fetch_all(conn)
    .await
}

/// The store `id` if the caller may reach it, else 404; `lock` holds its row until commit.
async fn fetch_visible(
    conn: &mut PgConnection,
    visibility: &Visibility,
    id: Uuid,
    lock: bool,
) -> ApiResult<StoreView> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    let mut store: StoreView = sqlx::query_as(&format!("{SELECT_VIEW} AND s.id = $3{lock}"))
        .bind(visibility.all)
        .bind(visibility.merchant_id)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| ApiError::not_found("store"))?;
    store.commissions = commissions(conn, id).await?;
    Ok(store)
}

fn to_json(view: &StoreView) -> serde_json::Value {
    serde_json::to_value(view).unwrap_or_default()
}

fn optional_url(field: &str, value: Option<&str>) -> ApiResult<Option<String>> {
    Ok(value.map(|v| validate::url(field, v)).transpose()?)
}

/// `Some(None)` clears, `Some(Some(url))` sets (validated), `None` keeps.
fn url_change(field: &str, value: &Option<Option<String>>) -> ApiResult<Option<Option<String>>> {
    match value {
        Some(Some(v)) => Ok(Some(Some(validate::url(field, v)?))),
        Some(None) => Ok(Some(None)),
        None => Ok(None),
    }
}

/// Names are unique per merchant.
fn duplicate_name(e: sqlx::Error) -> ApiError {
    let duplicate = e
        .as_database_error()
        .is_some_and(|d| d.constraint() == Some("stores_merchant_name_key"));
    if duplicate {
        ApiError::new(
            StatusCode::CONFLICT,
            "store_exists",
            "the merchant already has a store with this name",
        )
    } else {
        e.into()
    }
}

async fn create(
    State(state): State<AppState>,
    auth: Authorized<StoresCreate>,
    Body(request): Body<CreateStore>,
) -> ApiResult<(StatusCode, Json<WithSecret>)> {
    let visibility = auth.visibility();
    let merchant_id = match (auth.caller.merchant_id, request.merchant_id) {
        (Some(own), None) => own,
        (Some(own), Some(named)) if own == named => own,
        (Some(_), Some(_)) => return Err(ApiError::not_found("merchant")),
        (None, Some(named)) if auth.scope == Scope::All => named,
        (None, Some(_)) => return Err(ApiError::not_found("merchant")),
        (None, None) => return Err(ApiError::invalid("merchant_id is required")),
    };
    let name = validate::text("name", &request.name, NAME_MAX_CHARS)?;
    let callback_url = optional_url("callback_url", request.callback_url.as_deref())?;
    let success_url = optional_url("success_url", request.success_url.as_deref())?;
    let fail_url = optional_url("fail_url", request.fail_url.as_deref())?;
    vet_callback_url(&state.pool, "callback_url", callback_url.as_deref()).await?;
    let secret = signing_secret::generate();

    let mut tx = state.pool.begin().await?;
    let merchant_enabled: Option<bool> =
        sqlx::query_scalar("SELECT is_enabled FROM merchants WHERE id = $1 FOR SHARE")
            .bind(merchant_id)
            .fetch_optional(&mut *tx)
            .await?;
    match merchant_enabled {
        None => return Err(ApiError::not_found("merchant")),
        Some(false) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "merchant_disabled",
                "the merchant is disabled",
            ))
        }
        Some(true) => {}
    }
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO stores (merchant_id, name, callback_url, success_url, fail_url, signing_secret_encrypted)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(merchant_id)
    .bind(&name)
    .bind(&callback_url)
    .bind(&success_url)
    .bind(&fail_url)
    .bind(signing_secret::seal(&state.data_key, &secret))
    .fetch_one(&mut *tx)
    .await
    .map_err(duplicate_name)?;
    let created = fetch_visible(
        &mut tx,
        &Visibility {
            all: true,
            ..visibility
        },
        id,
        false,
    )
    .await?;
    audit::record(
        &mut tx,
        Actor::User(&auth.caller),
        audit::Entry {
            action: "store.create",
            entity_type: "store",
            entity_id: id.to_string(),
            before: None,
            after: Some(to_json(&created)),
            level: Level::Info,
        },
    )
    .await?;
    publish_store(&mut tx, &state.schemas, id).await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(WithSecret {
            store: created,
            signing_secret: secret,
        }),
    ))
}

async fn list(
    State(state): State<AppState>,
    auth: Authorized<StoresRead>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<Json<Vec<StoreView>>> {
    let Query(query) = query.map_err(query_rejected)?;
    let limit = limit(query.limit)?;
    let visibility = auth.visibility();
    let mut conn = state.pool.acquire().await?;
    let mut stores: Vec<StoreView> = sqlx::query_as(&format!(
        "{SELECT_VIEW} AND ($3::uuid IS NULL OR s.merchant_id = $3) ORDER BY s.created_at, s.id LIMIT $4"
    ))
    .bind(visibility.all)
    .bind(visibility.merchant_id)
    .bind(query.merchant_id)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    for store in &mut stores {
        store.commissions = commissions(&mut conn, store.id).await?;
    }
    Ok(Json(stores))
}

async fn read(
    State(state): State<AppState>,
    auth: Authorized<StoresRead>,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<StoreView>> {
    let mut conn = state.pool.acquire().await?;
    fetch_visible(&mut conn, &auth.visibility(), id, false)
        .await
        .map(Json)
}

async fn update(
    State(state): State<AppState>,
    auth: Authorized<StoresUpdate>,
    Path(id): Path<Uuid>,
    Body(request): Body<UpdateStore>,
) -> ApiResult<Json<StoreView>> {
    if request.is_enabled.is_some() && !auth.caller.role.is_staff() {
        return Err(ApiError::forbidden("only staff enable or disable a store"));
    }
    let name = request
        .name
        .as_deref()
        .map(|n| validate::text("name", n, NAME_MAX_CHARS))
        .transpose()?;
    let callback_url = url_change("callback_url", &request.callback_url)?;
    let success_url = url_change("success_url", &request.success_url)?;
    let fail_url = url_change("fail_url", &request.fail_url)?;
    if let Some(Some(url)) = &callback_url {
        vet_callback_url(&state.pool, "callback_url", Some(url)).await?;
    }
    let visibility = auth.visibility();
    let mut tx = state.pool.begin().await?;
    let before = fetch_visible(&mut tx, &visibility, id, true).await?;
    // A new callback URL is a fresh start for deliveries the callback sink had switched off.
    let new_callback =
        matches!(&callback_url, Some(Some(url)) if Some(url) != before.callback_url.as_ref());
    sqlx::query(
        "UPDATE stores SET name = $2, callback_url = $3, success_url = $4, fail_url = $5, is_enabled = $6,
            pay_in_enabled = $7, pay_out_enabled = $8,
            callbacks_disabled_at = CASE WHEN $9 THEN NULL ELSE callbacks_disabled_at END,
            callbacks_disabled_reason = CASE WHEN $9 THEN NULL ELSE callbacks_disabled_reason END,
            callbacks_failing_since = CASE WHEN $9 THEN NULL ELSE callbacks_failing_since END
         WHERE id = $1",
    )
    .bind(id)
    .bind(name.unwrap_or_else(|| before.name.clone()))
    .bind(callback_url.clone().unwrap_or_else(|| before.callback_url.clone()))
    .bind(success_url.unwrap_or_else(|| before.success_url.clone()))
    .bind(fail_url.unwrap_or_else(|| before.fail_url.clone()))
    .bind(request.is_enabled.unwrap_or(before.is_enabled))
    .bind(request.pay_in_enabled.unwrap_or(before.pay_in_enabled))
    .bind(request.pay_out_enabled.unwrap_or(before.pay_out_enabled))
    .bind(new_callback)
    .execute(&mut *tx)
    .await
    .map_err(duplicate_name)?;
    if let (true, Some(old_url), Some(Some(new_url))) =
        (new_callback, &before.callback_url, &callback_url)
    {
        // Callbacks not yet delivered that were bound for the store's old URL (orders that took
        // the store's default) go to the new one: fixing the URL fixes them, and a replay of a
        // failed one reaches the new endpoint. Attempts keep the URL they were made to.
        sqlx::query(
            "UPDATE callback_deliveries SET url = $3
             WHERE store_id = $1 AND url = $2 AND status IN ('pending', 'delivering', 'failed')",
        )
        .bind(id)
        .bind(old_url)
        .bind(new_url)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE callback_order_targets SET url = $3 WHERE store_id = $1 AND url = $2")
            .bind(id)
            .bind(old_url)
            .bind(new_url)
            .execute(&mut *tx)
            .await?;
    }
    let after = fetch_visible(&mut tx, &visibility, id, false).await?;
    audit::record(
        &mut tx,
        Actor::User(&auth.caller),
        audit::Entry {
            action: "store.update",
            entity_type: "store",
            entity_id: id.to_string(),
            before: Some(to_json(&before)),
            after: Some(to_json(&after)),
            level: if before.is_enabled && !after.is_enabled {
                Level::Warning
            } else {
                Level::Info
            },
        },
    )
    .await?;
    publish_store(&mut tx, &state.schemas, id).await?;
    tx.commit().await?;
    Ok(Json(after))
}

async fn rotate_secret(
    State(state): State<AppState>,
    auth: Authorized<StoresUpdate>,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<WithSecret>> {
    let visibility = auth.visibility();
    let secret = signing_secret::generate();
    let mut tx = state.pool.begin().await?;
    let before = fetch_visible(&mut tx, &visibility, id, true).await?;
    sqlx::query(
        "UPDATE stores SET previous_signing_secret_encrypted = signing_secret_encrypted,
            previous_signing_secret_expires_at = now() + make_interval(hours => $3),
            signing_secret_encrypted = $2, signing_secret_rotated_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(signing_secret::seal(&state.data_key, &secret))
    .bind(PREVIOUS_SECRET_HOURS)
    .execute(&mut *tx)
    .await?;
    let after = fetch_visible(&mut tx, &visibility, id, false).await?;
    audit::record(
        &mut tx,
        Actor::User(&auth.caller),
        audit::Entry {
            action: "store.signing_secret.rotate",
            entity_type: "store",
            entity_id: id.to_string(),
            before: Some(to_json(&before)),
            after: Some(to_json(&after)),
            level: Level::Warning,
        },
    )
    .await?;
    publish_store(&mut tx, &state.schemas, id).await?;
    tx.commit().await?;
    Ok(Json(WithSecret {
        store: after,
        signing_secret: secret,
    }))
}

fn direction(value: &str) -> ApiResult<&str> {
    match value.parse::<Direction>() {
        Ok(_) => Ok(value),
        Err(_) => Err(ApiError::invalid("direction must be pay_in or pay_out")),
    }
}

/// The store's commission for a method and direction, if set, as audit JSON.
async fn commission_json(
    conn: &mut PgConnection,
    store_id: Uuid,
    method: &str,
    direction: &str,
) -> sqlx::Result<Option<serde_json::Value>> {
    let row: Option<CommissionView> = sqlx::query_as(
        "SELECT payment_method, direction, percent, allow_loss, updated_at FROM store_commissions
         WHERE store_id = $1 AND payment_method = $2 AND direction = $3",
    )
    .bind(store_id)
    .bind(method)
    .bind(direction)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|c| serde_json::to_value(c).unwrap_or_default()))
}

async fn set_commission(
    State(state): State<AppState>,
    auth: Authorized<CommissionsUpdate>,
    Path((id, method, direction_text)): Path<(Uuid, String, String)>,
    Body(request): Body<SetCommission>,
) -> ApiResult<Json<StoreView>> {
    let direction = direction(&direction_text)?;
    let percent = validate::percent("percent", request.percent)?;
    if request.allow_loss && allowed_scope(&auth.caller.grants, ALLOW_LOSS).is_none() {
        return Err(ApiError::forbidden(
            "allow_loss needs the permission commissions:allow_loss",
        ));
    }
    let visibility = auth.visibility();
    let mut tx = state.pool.begin().await?;
    fetch_visible(&mut tx, &visibility, id, true).await?;
    let known: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM payment_methods WHERE code = $1 AND is_active)",
    )
    .bind(&method)
    .fetch_one(&mut *tx)
    .await?;
    if !known {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_payment_method",
            format!("no active payment method {method:?}"),
        ));
    }
    check_store_commission(&mut tx, &method, direction, percent, request.allow_loss).await?;
    let before = commission_json(&mut tx, id, &method, direction).await?;
    sqlx::query(
        "INSERT INTO store_commissions (store_id, payment_method, direction, percent, allow_loss, updated_by)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (store_id, payment_method, direction)
         DO UPDATE SET percent = EXCLUDED.percent, allow_loss = EXCLUDED.allow_loss, updated_by = EXCLUDED.updated_by",
    )
    .bind(id)
    .bind(&method)
    .bind(direction)
    .bind(percent)
    .bind(request.allow_loss)
    .bind(auth.caller.user_id)
    .execute(&mut *tx)
    .await?;
    let after = commission_json(&mut tx, id, &method, direction).await?;
    audit::record(
        &mut tx,
        Actor::User(&auth.caller),
        audit::Entry {
            action: "store.commission.set",
            entity_type: "store",
            entity_id: id.to_string(),
            before,
            after,
            level: if request.allow_loss {
                Level::Warning
            } else {
                Level::Info
            },
        },
    )
    .await?;
    publish_store(&mut tx, &state.schemas, id).await?;
    let store = fetch_visible(&mut tx, &visibility, id, false).await?;
    tx.commit().await?;
    Ok(Json(store))
}

async fn delete_commission(
    State(state): State<AppState>,
    auth: Authorized<CommissionsUpdate>,
    Path((id, method, direction_text)): Path<(Uuid, String, String)>,
) -> ApiResult<StatusCode> {
    let direction = direction(&direction_text)?;
    let visibility = auth.visibility();
    let mut tx = state.pool.begin().await?;
    fetch_visible(&mut tx, &visibility, id, true).await?;
    let before = commission_json(&mut tx, id, &method, direction)
        .await?
        .ok_or_else(|| ApiError::not_found("commission"))?;
    sqlx::query(
        "DELETE FROM store_commissions WHERE store_id = $1 AND payment_method = $2 AND direction = $3",
    )
    .bind(id)
    .bind(&method)
    .bind(direction)
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        Actor::User(&auth.caller),
        audit::Entry {
            action: "store.commission.delete",
            entity_type: "store",
            entity_id: id.to_string(),
            before: Some(before),
            after: None,
            level: Level::Warning,
        },
    )
    .await?;
    publish_store(&mut tx, &state.schemas, id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
