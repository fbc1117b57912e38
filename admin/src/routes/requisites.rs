//! Requisites: a trader creates and edits his own; staff read them within their scope and
//! moderate them (pending → approved / rejected / blocked). The number is encrypted at rest and
//! shown in full only to its owner; everyone else sees it masked. Every change is audited and
//! republishes the trader's record to the `traders` topic in the same transaction.

use super::audit_log::Params;
use crate::audit::{self, Actor, Level};
use crate::auth::{Authorized, Caller, Scope, Visibility};
use crate::error::{ApiError, ApiResult};
use crate::json::{present, Body};
use crate::mask::{masked, visible_parts};
use crate::need;
use crate::outbox::snapshots::publish_trader;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use jivapay_core::validate;
use jivapay_platform::http::path::Path;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

need!(RequisitesCreate, "requisites", "create", [Trader]);
need!(RequisitesRead, "requisites", "read", [Trader]);
need!(RequisitesUpdate, "requisites", "update", [Trader]);
need!(RequisitesModerate, "requisites", "moderate", []);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/requisites", post(create).get(list))
        .route("/requisites/{id}", get(read).patch(update).delete(archive))
        .route("/requisites/{id}/moderation", post(moderate))
}

/// Fiat limits a requisite may carry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequisite {
    /// Only staff may name a trader; a trader always creates for himself.
    trader_id: Option<Uuid>,
    payment_method: String,
    fiat_currency: String,
    bank_code: Option<String>,
    kind: String,
    number: String,
    holder_name: String,
    #[serde(default = "yes")]
    pay_in_enabled: bool,
    #[serde(default)]
    pay_out_enabled: bool,
    min_amount: Decimal,
    max_amount: Decimal,
    daily_turnover_limit: Option<Decimal>,
    monthly_turnover_limit: Option<Decimal>,
    daily_count_limit: Option<i64>,
    monthly_count_limit: Option<i64>,
    #[serde(default)]
    min_interval_secs: i64,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateRequisite {
    bank_code: Option<String>,
    number: Option<String>,
    holder_name: Option<String>,
    pay_in_enabled: Option<bool>,
    pay_out_enabled: Option<bool>,
    is_active: Option<bool>,
    min_amount: Option<Decimal>,
    max_amount: Option<Decimal>,
    #[serde(default, deserialize_with = "present")]
    daily_turnover_limit: Option<Option<Decimal>>,
    #[serde(default, deserialize_with = "present")]
    monthly_turnover_limit: Option<Option<Decimal>>,
    #[serde(default, deserialize_with = "present")]
    daily_count_limit: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    monthly_count_limit: Option<Option<i64>>,
    min_interval_secs: Option<i64>,
}

/// The limits of a requisite, validated together (min ≤ max, daily ≤ monthly, bounds).
struct Limits {
    min_amount: Decimal,
    max_amount: Decimal,
    daily_turnover: Option<Decimal>,
    monthly_turnover: Option<Decimal>,
    daily_count: Option<i32>,
    monthly_count: Option<i32>,
    min_interval_secs: i32,
}

/// Most orders one requisite may take in a day / a month.
const DAILY_COUNT_MAX: i64 = 10_000;
const MONTHLY_COUNT_MAX: i64 = 300_000;
/// Longest minimum interval between two orders on one requisite.
const MIN_INTERVAL_MAX_SECS: i64 = 86_400;

impl Limits {
    #[allow(clippy::too_many_arguments)]
    fn validate(
        min_amount: Decimal,
        max_amount: Decimal,
        daily_turnover: Option<Decimal>,
        monthly_turnover: Option<Decimal>,
        daily_count: Option<i64>,
        monthly_count: Option<i64>,
        min_interval_secs: i64,
    ) -> Result<Self, ApiError> {
        let min_amount = validate::fiat("min_amount", min_amount)?;
        let max_amount = validate::fiat("max_amount", max_amount)?;
        if min_amount > max_amount {
            return Err(ApiError::invalid("min_amount must not exceed max_amount"));
        }
        let daily_turnover = daily_turnover
            .map(|v| validate::fiat("daily_turnover_limit", v))
            .transpose()?;
        let monthly_turnover = monthly_turnover
            .map(|v| validate::fiat("monthly_turnover_limit", v))
            .transpose()?;
        if let (Some(d), Some(m)) = (daily_turnover, monthly_turnover) {
            if d > m {
                return Err(ApiError::invalid(
                    "daily_turnover_limit must not exceed monthly_turnover_limit",
                ));
            }
        }
        if let Some(d) = daily_turnover {
            if d < min_amount {
                return Err(ApiError::invalid(
                    "daily_turnover_limit must allow at least one order of min_amount",
                ));
            }
        }
        let daily_count = daily_count
            .map(|v| validate::int_range("daily_count_limit", v, 1, DAILY_COUNT_MAX))
            .transpose()?;
        let monthly_count = monthly_count
            .map(|v| validate::int_range("monthly_count_limit", v, 1, MONTHLY_COUNT_MAX))
            .transpose()?;
        if let (Some(d), Some(m)) = (daily_count, monthly_count) {
            if d > m {
                return Err(ApiError::invalid(
                    "daily_count_limit must not exceed monthly_count_limit",
                ));
            }
        }
        let min_interval_secs = validate::int_range(
            "min_interval_secs",
            min_interval_secs,
            0,
            MIN_INTERVAL_MAX_SECS,
        )?;
        Ok(Self {
            min_amount,
            max_amount,
            daily_turnover,
            monthly_turnover,
            daily_count,
            monthly_count,
            min_interval_secs,
        })
    }
}

#[derive(Debug, Serialize)]
pub struct RequisiteView {
    id: Uuid,
    trader_id: Uuid,
    payment_method: String,
    fiat_currency: String,
    bank_code: Option<String>,
    kind: String,
    /// The full number for its owner; masked for everyone else.
    number: String,
    number_masked: String,
    holder_name: String,
    pay_in_enabled: bool,
    pay_out_enabled: bool,
    min_amount: Decimal,
    max_amount: Decimal,
    daily_turnover_limit: Option<Decimal>,
    monthly_turnover_limit: Option<Decimal>,
    daily_count_limit: Option<i32>,
    monthly_count_limit: Option<i32>,
    min_interval_secs: i32,
    moderation_status: String,
    moderation_reason: Option<String>,
    is_active: bool,
    created_at: chrono::DateTime<chrono::Utc>,
    updated_at: chrono::DateTime<chrono::Utc>,
}

const SELECT_VIEW: &str = "SELECT r.id, r.trader_id, r.payment_method, r.fiat_currency, b.code AS bank_code, r.kind,
        r.number_ciphertext, r.number_first6, r.number_last4, r.holder_name, r.is_pay_in_enabled,
        r.is_pay_out_enabled, r.min_amount, r.max_amount, r.daily_turnover_limit, r.monthly_turnover_limit,
        r.daily_count_limit, r.monthly_count_limit, r.min_interval_seconds, r.moderation_status,
        r.moderation_reason, r.is_active, r.created_at, r.updated_at
    FROM requisites r
    JOIN traders t ON t.id = r.trader_id
    LEFT JOIN banks b ON b.id = r.bank_id
    WHERE r.archived_at IS NULL
      AND ($1 OR t.team_id = ANY($2) OR r.trader_id = $3)";

fn view(
    state: &AppState,
    caller: &Caller,
    row: &sqlx::postgres::PgRow,
) -> ApiResult<RequisiteView> {
    let kind: String = row.get("kind");
    let trader_id: Uuid = row.get("trader_id");
    let first6: Option<String> = row.get("number_first6");
    let last4: String = row.get("number_last4");
    let number_masked = masked(&kind, first6.as_deref(), &last4);
    let number = if caller.trader_id == Some(trader_id) {
        let ciphertext: Vec<u8> = row.get("number_ciphertext");
        state.data_key.decrypt(&ciphertext).map_err(|e| {
            tracing::error!(error = %e, "requisite number does not decrypt");
            ApiError::internal()
        })?
    } else {
        number_masked.clone()
    };
    Ok(RequisiteView {
        id: row.get("id"),
        trader_id,
        payment_method: row.get("payment_method"),
        fiat_currency: row.get("fiat_currency"),
        bank_code: row.get("bank_code"),
        kind,
        number,
        number_masked,
        holder_name: row.get("holder_name"),
        pay_in_enabled: row.get("is_pay_in_enabled"),
        pay_out_enabled: row.get("is_pay_out_enabled"),
        min_amount: row.get("min_amount"),
        max_amount: row.get("max_amount"),
        daily_turnover_limit: row.get("daily_turnover_limit"),
        monthly_turnover_limit: row.get("monthly_turnover_limit"),
        daily_count_limit: row.get("daily_count_limit"),
        monthly_count_limit: row.get("monthly_count_limit"),
        min_interval_secs: row.get("min_interval_seconds"),
        moderation_status: row.get("moderation_status"),
        moderation_reason: row.get("moderation_reason"),
        is_active: row.get("is_active"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    })
}

async fn fetch_visible(
    conn: &mut PgConnection,
    state: &AppState,
    caller: &Caller,
    visibility: &Visibility,
    id: Uuid,
) -> ApiResult<RequisiteView> {
    let row = sqlx::query(&format!("{SELECT_VIEW} AND r.id = $4"))
        .bind(visibility.all)
        .bind(&visibility.team_ids)
        .bind(visibility.trader_id)
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| ApiError::not_found("requisite"))?;
    view(state, caller, &row)
}

fn to_json(view: &RequisiteView) -> serde_json::Value {
    // The audit log never holds the full number.
    let mut value = serde_json::to_value(view).unwrap_or_default();
    value["number"] = serde_json::Value::String(view.number_masked.clone());
    value
}

/// The bank's id for a code, or a clear 422.
async fn bank_id(conn: &mut PgConnection, code: Option<&str>) -> ApiResult<Option<Uuid>> {
    let Some(code) = code else { return Ok(None) };
    sqlx::query_scalar(
        "SELECT id FROM banks WHERE code = $1 AND is_active ORDER BY country_code LIMIT 1",
    )
    .bind(code)
    .fetch_optional(conn)
    .await?
    .map(Some)
    .ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_bank",
            format!("no bank with code {code:?}"),
        )
    })
}

/// Whether the trader may be acted on by this caller (own, team or all).
async fn trader_visible(
    conn: &mut PgConnection,
    visibility: &Visibility,
    trader_id: Uuid,
) -> ApiResult<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM traders t WHERE t.id = $4 AND ($1 OR t.team_id = ANY($2) OR t.id = $3))",
    )
    .bind(visibility.all)
    .bind(&visibility.team_ids)
    .bind(visibility.trader_id)
    .bind(trader_id)
    .fetch_one(conn)
    .await?)
}

async fn create(
    State(state): State<AppState>,
    auth: Authorized<RequisitesCreate>,
    Body(request): Body<CreateRequisite>,
) -> ApiResult<(StatusCode, Json<RequisiteView>)> {
    let visibility = auth.visibility();
    let trader_id = match (auth.caller.trader_id, request.trader_id) {
        (Some(own), None) => own,
        (Some(own), Some(named)) if own == named => own,
        (Some(_), Some(_)) => return Err(ApiError::not_found("trader")),
        (None, Some(named)) if auth.scope > Scope::Own => named,
        (None, _) => return Err(ApiError::invalid("trader_id is required")),
    };
    let kind = request.kind.trim().to_owned();
    let number = validate::requisite_number(&kind, &request.number)?;
    let holder_name = validate::text("holder_name", &request.holder_name, 128)?;
    let limits = Limits::validate(
        request.min_amount,
        request.max_amount,
        request.daily_turnover_limit,
        request.monthly_turnover_limit,
        request.daily_count_limit,
        request.monthly_count_limit,
        request.min_interval_secs,
    )?;
    let mut tx = state.pool.begin().await?;
    if !trader_visible(&mut tx, &visibility, trader_id).await? {
        return Err(ApiError::not_found("trader"));
    }
    let pool_exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM payment_method_currencies pc JOIN payment_methods pm ON pm.code = pc.payment_method
         WHERE pc.payment_method = $1 AND pc.fiat_currency = $2 AND pc.is_active AND pm.is_active)",
    )
    .bind(&request.payment_method)
    .bind(&request.fiat_currency)
    .fetch_one(&mut *tx)
    .await?;
    if !pool_exists {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_payment_method",
            format!(
                "{} is not offered in {}",
                request.payment_method, request.fiat_currency
            ),
        ));
    }
    let bank = bank_id(&mut tx, request.bank_code.as_deref()).await?;
    let (first6, last4) = visible_parts(&kind, &number);
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO requisites (trader_id, payment_method, fiat_currency, bank_id, kind, number_ciphertext,
            number_first6, number_last4, number_hash, holder_name, is_pay_in_enabled, is_pay_out_enabled,
            min_amount, max_amount, daily_turnover_limit, monthly_turnover_limit, daily_count_limit,
            monthly_count_limit, min_interval_seconds)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
         RETURNING id",
    )
    .bind(trader_id)
    .bind(&request.payment_method)
    .bind(&request.fiat_currency)
    .bind(bank)
    .bind(&kind)
    .bind(state.data_key.encrypt(&number))
    .bind(first6)
    .bind(last4)
    .bind(state.data_key.lookup_hash(&number))
    .bind(holder_name)
    .bind(request.pay_in_enabled)
    .bind(request.pay_out_enabled)
    .bind(limits.min_amount)
    .bind(limits.max_amount)
    .bind(limits.daily_turnover)
    .bind(limits.monthly_turnover)
    .bind(limits.daily_count)
    .bind(limits.monthly_count)
    .bind(limits.min_interval_secs)
    .fetch_one(&mut *tx)
    .await
    .map_err(duplicate_number)?;
    let created = fetch_visible(&mut tx, &state, &auth.caller, &visibility, id).await?;
    audit::record(
        &mut tx,
        Actor::User(&auth.caller),
        audit::Entry {
            action: "requisite.create",
            entity_type: "requisite",
            entity_id: id.to_string(),
            before: None,
            after: Some(to_json(&created)),
            level: Level::Info,
        },
    )
    .await?;
    publish_trader(&mut tx, &state.schemas, trader_id).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// The same number may be live only once per payment method.
fn duplicate_number(e: sqlx::Error) -> ApiError {
    let is_duplicate = e
        .as_database_error()
        .is_some_and(|d| d.constraint() == Some("requisites_number_live_key"));
    if is_duplicate {
        ApiError::new(
            StatusCode::CONFLICT,
            "requisite_exists",
            "this number is already registered for this payment method",
        )
    } else {
        e.into()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    trader_id: Option<Uuid>,
    moderation_status: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    auth: Authorized<RequisitesRead>,
    Params(query): Params<ListQuery>,
) -> ApiResult<Json<Vec<RequisiteView>>> {
    let visibility = auth.visibility();
    let rows = sqlx::query(&format!(
        "{SELECT_VIEW} AND ($4::uuid IS NULL OR r.trader_id = $4)
           AND ($5::text IS NULL OR r.moderation_status = $5)
         ORDER BY r.created_at, r.id LIMIT 1000"
    ))
    .bind(visibility.all)
    .bind(&visibility.team_ids)
    .bind(visibility.trader_id)
    .bind(query.trader_id)
    .bind(query.moderation_status)
    .fetch_all(&state.pool)
    .await?;
    rows.iter()
        .map(|row| view(&state, &auth.caller, row))
        .collect::<ApiResult<Vec<_>>>()
        .map(Json)
}

async fn read(
    State(state): State<AppState>,
    auth: Authorized<RequisitesRead>,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<RequisiteView>> {
    let mut conn = state.pool.acquire().await?;
    fetch_visible(&mut conn, &state, &auth.caller, &auth.visibility(), id)
        .await
        .map(Json)
}

async fn update(
    State(state): State<AppState>,
    auth: Authorized<RequisitesUpdate>,
    Path(id): Path<Uuid>,
    Body(request): Body<UpdateRequisite>,
) -> ApiResult<Json<RequisiteView>> {
    let visibility = auth.visibility();
    let mut tx = state.pool.begin().await?;
    sqlx::query("SELECT 1 FROM requisites WHERE id = $1 FOR UPDATE")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let before = fetch_visible(&mut tx, &state, &auth.caller, &visibility, id).await?;
    let limits = Limits::validate(
        request.min_amount.unwrap_or(before.min_amount),
        request.max_amount.unwrap_or(before.max_amount),
        request
            .daily_turnover_limit
            .unwrap_or(before.daily_turnover_limit),
        request
            .monthly_turnover_limit
            .unwrap_or(before.monthly_turnover_limit),
        request
            .daily_count_limit
            .unwrap_or(before.daily_count_limit.map(i64::from)),
        request
            .monthly_count_limit
            .unwrap_or(before.monthly_count_limit.map(i64::from)),
        request
            .min_interval_secs
            .unwrap_or(i64::from(before.min_interval_secs)),
    )?;
    let holder_name = match &request.holder_name {
        Some(name) => validate::text("holder_name", name, 128)?,
        None => before.holder_name.clone(),
    };
    let bank = match &request.bank_code {
        Some(code) => bank_id(&mut tx, Some(code)).await?,
        None => bank_id(&mut tx, before.bank_code.as_deref()).await?,
    };
    // A new number or bank must be checked again before it receives money.
    let number = request
        .number
        .as_deref()
        .map(|n| validate::requisite_number(&before.kind, n))
        .transpose()?;
    let remoderate = number.is_some()
        || request
            .bank_code
            .as_deref()
            .is_some_and(|c| Some(c) != before.bank_code.as_deref());
    if let Some(number) = &number {
        let (first6, last4) = visible_parts(&before.kind, number);
        sqlx::query(
            "UPDATE requisites SET number_ciphertext = $2, number_first6 = $3, number_last4 = $4, number_hash = $5
             WHERE id = $1",
        )
        .bind(id)
        .bind(state.data_key.encrypt(number))
        .bind(first6)
        .bind(last4)
        .bind(state.data_key.lookup_hash(number))
        .execute(&mut *tx)
        .await
        .map_err(duplicate_number)?;
    }
    sqlx::query(
        "UPDATE requisites SET holder_name = $2, bank_id = $3, is_pay_in_enabled = $4, is_pay_out_enabled = $5,
            is_active = $6, min_amount = $7, max_amount = $8, daily_turnover_limit = $9,
            monthly_turnover_limit = $10, daily_count_limit = $11, monthly_count_limit = $12,
            min_interval_seconds = $13,
            moderation_status = CASE WHEN $14 THEN 'pending' ELSE moderation_status END,
            moderated_at = CASE WHEN $14 THEN NULL ELSE moderated_at END,
            moderated_by = CASE WHEN $14 THEN NULL ELSE moderated_by END,
            moderation_reason = CASE WHEN $14 THEN NULL ELSE moderation_reason END
         WHERE id = $1",
    )
    .bind(id)
    .bind(holder_name)
    .bind(bank)
    .bind(request.pay_in_enabled.unwrap_or(before.pay_in_enabled))
    .bind(request.pay_out_enabled.unwrap_or(before.pay_out_enabled))
    .bind(request.is_active.unwrap_or(before.is_active))
    .bind(limits.min_amount)
    .bind(limits.max_amount)
    .bind(limits.daily_turnover)
    .bind(limits.monthly_turnover)
    .bind(limits.daily_count)
    .bind(limits.monthly_count)
    .bind(limits.min_interval_secs)
    .bind(remoderate)
    .execute(&mut *tx)
    .await?;
    let after = fetch_visible(&mut tx, &state, &auth.caller, &visibility, id).await?;
    audit::record(
        &mut tx,
        Actor::User(&auth.caller),
        audit::Entry {
            action: "requisite.update",
            entity_type: "requisite",
            entity_id: id.to_string(),
            before: Some(to_json(&before)),
            after: Some(to_json(&after)),
            level: Level::Info,
        },
    )
    .await?;
    publish_trader(&mut tx, &state.schemas, after.trader_id).await?;
    tx.commit().await?;
    Ok(Json(after))
}

async fn archive(
    State(state): State<AppState>,
    auth: Authorized<RequisitesUpdate>,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    let visibility = auth.visibility();
    let mut tx = state.pool.begin().await?;
    let before = fetch_visible(&mut tx, &state, &auth.caller, &visibility, id).await?;
    sqlx::query("UPDATE requisites SET archived_at = now(), is_active = false WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut tx,
        Actor::User(&auth.caller),
        audit::Entry {
            action: "requisite.archive",
            entity_type: "requisite",
            entity_id: id.to_string(),
            before: Some(to_json(&before)),
            after: None,
            level: Level::Warning,
        },
    )
    .await?;
    publish_trader(&mut tx, &state.schemas, before.trader_id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Moderation {
    status: String,
    reason: Option<String>,
}

async fn moderate(
    State(state): State<AppState>,
    auth: Authorized<RequisitesModerate>,
    Path(id): Path<Uuid>,
    Body(request): Body<Moderation>,
) -> ApiResult<Json<RequisiteView>> {
    let status = request.status.as_str();
    if !matches!(status, "approved" | "rejected" | "blocked") {
        return Err(ApiError::invalid(
            "status must be approved, rejected or blocked",
        ));
    }
    let reason = request
        .reason
        .as_deref()
        .map(|r| validate::text("reason", r, 500))
        .transpose()?;
    if status != "approved" && reason.is_none() {
        return Err(ApiError::invalid("a reason is required to reject or block"));
    }
    let visibility = auth.visibility();
    let mut tx = state.pool.begin().await?;
    let before = fetch_visible(&mut tx, &state, &auth.caller, &visibility, id).await?;
    sqlx::query(
        "UPDATE requisites SET moderation_status = $2, moderation_reason = $3, moderated_by = $4, moderated_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(status)
    .bind(&reason)
    .bind(auth.caller.user_id)
    .execute(&mut *tx)
    .await
    .map_err(duplicate_number)?;
    let after = fetch_visible(&mut tx, &state, &auth.caller, &visibility, id).await?;
    let level = if status == "approved" {
        Level::Info
    } else {
        Level::Warning
    };
    audit::record(
        &mut tx,
        Actor::User(&auth.caller),
        audit::Entry {
            action: if status == "approved" {
                "requisite.approve"
            } else if status == "rejected" {
                "requisite.reject"
            } else {
                "requisite.block"
            },
            entity_type: "requisite",
            entity_id: id.to_string(),
            before: Some(to_json(&before)),
            after: Some(to_json(&after)),
            level,
        },
    )
    .await?;
    publish_trader(&mut tx, &state.schemas, after.trader_id).await?;
    tx.commit().await?;
    Ok(Json(after))
}
