//! Reference data: countries, fiat currencies, payment methods, the pools they form (payment
//! method + fiat currency), banks, and exchange rates.
//!
//! Every authenticated caller, whatever the role, may read it (a trader picks a bank and a pool
//! for his requisites, a merchant sees which currencies exist). Writes need `reference:update`,
//! rates `rates:update`; no role has them as self-service. Nothing is ever deleted: an entry is
//! deactivated instead, because orders and requisites refer to it. Every change is audited in
//! its transaction, and a new rate is also enqueued for the compacted `rates` topic.

use super::audit_log::Params;
use crate::audit::{self, Actor, Level};
use crate::auth::{Authorized, Caller};
use crate::error::{ApiError, ApiResult};
use crate::json::{present, Body};
use crate::need;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, patch};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use jivapay_core::validate;
use jivapay_platform::http::path::Path;
use jivapay_schemas::records::Rate;
use jivapay_schemas::topics::RATES;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

need!(ReferenceUpdate, "reference", "update", []);
need!(RatesUpdate, "rates", "update", []);

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/reference/countries",
            get(list_countries).post(create_country),
        )
        .route("/reference/countries/{code}", patch(update_country))
        .route(
            "/reference/currencies",
            get(list_currencies).post(create_currency),
        )
        .route("/reference/currencies/{code}", patch(update_currency))
        .route(
            "/reference/payment-methods",
            get(list_methods).post(create_method),
        )
        .route("/reference/payment-methods/{code}", patch(update_method))
        .route("/reference/pools", get(list_pools).post(create_pool))
        .route("/reference/pools/{method}/{fiat}", patch(update_pool))
        .route("/reference/banks", get(list_banks).post(create_bank))
        .route("/reference/banks/{id}", patch(update_bank))
        .route("/rates", get(current_rates).post(post_rate))
        .route("/rates/{fiat}/history", get(rate_history))
}

// ---- Shared checks -------------------------------------------------------------------------

/// A code that must match its pattern exactly (no case folding, no trimming).
fn code(field: &str, value: &str, ok: bool, rule: &str) -> ApiResult<String> {
    if ok {
        Ok(value.to_owned())
    } else {
        Err(ApiError::invalid(format!("{field} must be {rule}")))
    }
}

fn is_country_code(s: &str) -> bool {
    s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase())
}

fn is_currency_code(s: &str) -> bool {
    (3..=5).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_uppercase())
}

/// `[a-z][a-z0-9_]{1,31}`, as the table requires.
fn is_method_code(s: &str) -> bool {
    let mut bytes = s.bytes();
    (2..=32).contains(&s.len())
        && bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// `[a-z0-9][a-z0-9_-]{0,63}`, as the table requires.
fn is_bank_code(s: &str) -> bool {
    let mut bytes = s.bytes();
    (1..=64).contains(&s.len())
        && bytes
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// `[a-z][a-z0-9_.-]{0,63}`, as `exchange_rates.source` requires.
fn is_rate_source(s: &str) -> bool {
    let mut bytes = s.bytes();
    (1..=64).contains(&s.len())
        && bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-')
        })
}

fn requisite_kind(value: &str) -> ApiResult<String> {
    code(
        "requisite_kind",
        value,
        matches!(value, "card" | "phone" | "account"),
        "card, phone or account",
    )
}

fn name(value: &str) -> ApiResult<String> {
    Ok(validate::text("name", value, 128)?)
}

fn unknown(code: &'static str, what: &str, value: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        code,
        format!("there is no active {what} {value:?}"),
    )
}

fn exists(what: &str, key: &str) -> ApiError {
    ApiError::conflict(format!("{what} {key} already exists"))
}

async fn country_active(conn: &mut PgConnection, code: &str) -> ApiResult<()> {
    let found: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM countries WHERE code = $1 AND is_active)")
            .bind(code)
            .fetch_one(conn)
            .await?;
    found
        .then_some(())
        .ok_or_else(|| unknown("unknown_country", "country", code))
}

async fn fiat_active(conn: &mut PgConnection, code: &str) -> ApiResult<()> {
    let found: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM currencies WHERE code = $1 AND kind = 'fiat' AND is_active)",
    )
    .bind(code)
    .fetch_one(conn)
    .await?;
    found
        .then_some(())
        .ok_or_else(|| unknown("unknown_currency", "fiat currency", code))
}

async fn method_active(conn: &mut PgConnection, code: &str) -> ApiResult<()> {
    let found: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM payment_methods WHERE code = $1 AND is_active)",
    )
    .bind(code)
    .fetch_one(conn)
    .await?;
    found
        .then_some(())
        .ok_or_else(|| unknown("unknown_payment_method", "payment method", code))
}

/// A reference entry as its audit row shows it.
trait Entry: Serialize {
    fn is_active(&self) -> bool;
}

macro_rules! entries {
    ($($view:ty),*) => {$(
        impl Entry for $view {
            fn is_active(&self) -> bool {
                self.is_active
            }
        }
    )*};
}
entries!(CountryView, CurrencyView, MethodView, PoolView, BankView);

/// A rate is never deactivated, only superseded.
impl Entry for RateView {
    fn is_active(&self) -> bool {
        true
    }
}

/// A change to a reference entry, audited in the transaction that makes it.
struct Change<'a> {
    action: &'a str,
    entity_type: &'a str,
    entity_id: String,
}

impl<'a> Change<'a> {
    fn new(action: &'a str, entity_type: &'a str, entity_id: String) -> Self {
        Self {
            action,
            entity_type,
            entity_id,
        }
    }

    /// Writes the audit row (`before` is `None` for a creation); a deactivation is a
    /// warning, anything else routine.
    async fn record<T: Entry>(
        self,
        tx: &mut PgConnection,
        caller: &Caller,
        before: Option<&T>,
        after: &T,
    ) -> ApiResult<()> {
        let deactivated = before.is_some_and(|b| b.is_active() && !after.is_active());
        let image = |view: &T| serde_json::to_value(view).unwrap_or_default();
        let entry = audit::Entry {
            action: self.action,
            entity_type: self.entity_type,
            entity_id: self.entity_id,
            before: before.map(image),
            after: Some(image(after)),
            level: if deactivated {
                Level::Warning
            } else {
                Level::Info
            },
        };
        audit::record(tx, Actor::User(caller), entry).await?;
        Ok(())
    }

    /// Writes the audit row and commits the change with it.
    async fn commit<T: Entry>(
        self,
        mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
        caller: &Caller,
        before: Option<&T>,
        after: &T,
    ) -> ApiResult<()> {
        self.record(&mut tx, caller, before, after).await?;
        tx.commit().await?;
        Ok(())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActiveFilter {
    active: Option<bool>,
}

// ---- Countries -----------------------------------------------------------------------------

#[derive(Debug, Serialize, sqlx::FromRow)]
struct CountryView {
    code: String,
    name: String,
    is_active: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

const COUNTRY: &str = "SELECT code, name, is_active, created_at, updated_at FROM countries";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateCountry {
    code: String,
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateNamed {
    name: Option<String>,
    is_active: Option<bool>,
}

async fn list_countries(
    State(state): State<AppState>,
    _caller: Caller,
    Params(filter): Params<ActiveFilter>,
) -> ApiResult<Json<Vec<CountryView>>> {
    let rows = sqlx::query_as(&format!(
        "{COUNTRY} WHERE ($1::bool IS NULL OR is_active = $1) ORDER BY code"
    ))
    .bind(filter.active)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(rows))
}

async fn create_country(
    State(state): State<AppState>,
    auth: Authorized<ReferenceUpdate>,
    Body(request): Body<CreateCountry>,
) -> ApiResult<(StatusCode, Json<CountryView>)> {
    let code = code(
        "code",
        &request.code,
        is_country_code(&request.code),
        "two upper-case letters (ISO 3166-1 alpha-2)",
    )?;
    let name = name(&request.name)?;
    let mut tx = state.pool.begin().await?;
    let created: CountryView = sqlx::query_as(
        "INSERT INTO countries (code, name) VALUES ($1, $2) ON CONFLICT (code) DO NOTHING
         RETURNING code, name, is_active, created_at, updated_at",
    )
    .bind(&code)
    .bind(name)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| exists("country", &code))?;
    let change = Change::new("country.create", "country", code);
    change.commit(tx, &auth.caller, None, &created).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn update_country(
    State(state): State<AppState>,
    auth: Authorized<ReferenceUpdate>,
    Path(code): Path<String>,
    Body(request): Body<UpdateNamed>,
) -> ApiResult<Json<CountryView>> {
    let name = request.name.as_deref().map(name).transpose()?;
    let mut tx = state.pool.begin().await?;
    let before: CountryView = sqlx::query_as(&format!("{COUNTRY} WHERE code = $1 FOR UPDATE"))
        .bind(&code)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| ApiError::not_found("country"))?;
    let after: CountryView = sqlx::query_as(
        "UPDATE countries SET name = coalesce($2, name), is_active = coalesce($3, is_active)
         WHERE code = $1 RETURNING code, name, is_active, created_at, updated_at",
    )
    .bind(&code)
    .bind(name)
    .bind(request.is_active)
    .fetch_one(&mut *tx)
    .await?;
    let change = Change::new("country.update", "country", code);
    change
        .commit(tx, &auth.caller, Some(&before), &after)
        .await?;
    Ok(Json(after))
}

// ---- Fiat currencies -----------------------------------------------------------------------

#[derive(Debug, Serialize, sqlx::FromRow)]
struct CurrencyView {
    code: String,
    name: String,
    scale: i16,
    country_code: Option<String>,
    is_active: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

const CURRENCY: &str =
    "SELECT code, name, scale, country_code, is_active, created_at, updated_at FROM fiat_currencies";
const CURRENCY_COLUMNS: &str = "code, name, scale, country_code, is_active, created_at, updated_at";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateCurrency {
    code: String,
    name: String,
    scale: i64,
    country_code: Option<String>,
}

async fn list_currencies(
    State(state): State<AppState>,
    _caller: Caller,
    Params(filter): Params<ActiveFilter>,
) -> ApiResult<Json<Vec<CurrencyView>>> {
    let rows = sqlx::query_as(&format!(
        "{CURRENCY} WHERE ($1::bool IS NULL OR is_active = $1) ORDER BY code"
    ))
    .bind(filter.active)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(rows))
}

async fn create_currency(
    State(state): State<AppState>,
    auth: Authorized<ReferenceUpdate>,
    Body(request): Body<CreateCurrency>,
) -> ApiResult<(StatusCode, Json<CurrencyView>)> {
    let code = code(
        "code",
        &request.code,
        is_currency_code(&request.code),
        "3 to 5 upper-case letters (ISO 4217)",
    )?;
    let name = name(&request.name)?;
    let scale = validate::int_range("scale", request.scale, 0, 2)?;
    let mut tx = state.pool.begin().await?;
    if let Some(country) = &request.country_code {
        country_active(&mut tx, country).await?;
    }
    let created: CurrencyView = sqlx::query_as(&format!(
        "INSERT INTO currencies (code, kind, name, scale, country_code) VALUES ($1, 'fiat', $2, $3, $4)
         ON CONFLICT (code) DO NOTHING RETURNING {CURRENCY_COLUMNS}"
    ))
    .bind(&code)
    .bind(name)
    .bind(scale as i16)
    .bind(&request.country_code)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| exists("currency", &code))?;
    let change = Change::new("currency.create", "currency", code);
    change.commit(tx, &auth.caller, None, &created).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn update_currency(
    State(state): State<AppState>,
    auth: Authorized<ReferenceUpdate>,
    Path(code): Path<String>,
    Body(request): Body<UpdateNamed>,
) -> ApiResult<Json<CurrencyView>> {
    let name = request.name.as_deref().map(name).transpose()?;
    let mut tx = state.pool.begin().await?;
    let before: CurrencyView = sqlx::query_as(&format!(
        "SELECT {CURRENCY_COLUMNS} FROM currencies WHERE code = $1 AND kind = 'fiat' FOR UPDATE"
    ))
    .bind(&code)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| ApiError::not_found("currency"))?;
    let after: CurrencyView = sqlx::query_as(&format!(
        "UPDATE currencies SET name = coalesce($2, name), is_active = coalesce($3, is_active)
         WHERE code = $1 RETURNING {CURRENCY_COLUMNS}"
    ))
    .bind(&code)
    .bind(name)
    .bind(request.is_active)
    .fetch_one(&mut *tx)
    .await?;
    let change = Change::new("currency.update", "currency", code);
    change
        .commit(tx, &auth.caller, Some(&before), &after)
        .await?;
    Ok(Json(after))
}

// ---- Payment methods -----------------------------------------------------------------------

#[derive(Debug, Serialize, sqlx::FromRow)]
struct MethodView {
    code: String,
    name: String,
    requisite_kind: Option<String>,
    sort_order: i32,
    is_active: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

const METHOD_COLUMNS: &str =
    "code, name, requisite_kind, sort_order, is_active, created_at, updated_at";

/// Bounds of `sort_order`, so that a typo does not push a method out of every list.
const SORT_ORDER_MAX: i64 = 10_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateMethod {
    code: String,
    name: String,
    requisite_kind: String,
    #[serde(default)]
    sort_order: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateMethod {
    name: Option<String>,
    requisite_kind: Option<String>,
    sort_order: Option<i64>,
    is_active: Option<bool>,
}

async fn list_methods(
    State(state): State<AppState>,
    _caller: Caller,
    Params(filter): Params<ActiveFilter>,
) -> ApiResult<Json<Vec<MethodView>>> {
    let rows = sqlx::query_as(&format!(
        "SELECT {METHOD_COLUMNS} FROM payment_methods WHERE ($1::bool IS NULL OR is_active = $1)
         ORDER BY sort_order, code"
    ))
    .bind(filter.active)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(rows))
}

async fn create_method(
    State(state): State<AppState>,
    auth: Authorized<ReferenceUpdate>,
    Body(request): Body<CreateMethod>,
) -> ApiResult<(StatusCode, Json<MethodView>)> {
    let code = code(
        "code",
        &request.code,
        is_method_code(&request.code),
        "2 to 32 characters: a lower-case letter, then lower-case letters, digits or _",
    )?;
    let name = name(&request.name)?;
    let kind = requisite_kind(&request.requisite_kind)?;
    let sort_order = validate::int_range("sort_order", request.sort_order, 0, SORT_ORDER_MAX)?;
    let mut tx = state.pool.begin().await?;
    let created: MethodView = sqlx::query_as(&format!(
        "INSERT INTO payment_methods (code, name, requisite_kind, sort_order) VALUES ($1, $2, $3, $4)
         ON CONFLICT (code) DO NOTHING RETURNING {METHOD_COLUMNS}"
    ))
    .bind(&code)
    .bind(name)
    .bind(kind)
    .bind(sort_order)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| exists("payment method", &code))?;
    let change = Change::new("payment_method.create", "payment_method", code);
    change.commit(tx, &auth.caller, None, &created).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn update_method(
    State(state): State<AppState>,
    auth: Authorized<ReferenceUpdate>,
    Path(code): Path<String>,
    Body(request): Body<UpdateMethod>,
) -> ApiResult<Json<MethodView>> {
    let name = request.name.as_deref().map(name).transpose()?;
    let kind = request
        .requisite_kind
        .as_deref()
        .map(requisite_kind)
        .transpose()?;
    let sort_order = request
        .sort_order
        .map(|s| validate::int_range("sort_order", s, 0, SORT_ORDER_MAX))
        .transpose()?;
    let mut tx = state.pool.begin().await?;
    let before: MethodView = sqlx::query_as(&format!(
        "SELECT {METHOD_COLUMNS} FROM payment_methods WHERE code = $1 FOR UPDATE"
    ))
    .bind(&code)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| ApiError::not_found("payment method"))?;
    let after: MethodView = sqlx::query_as(&format!(
        "UPDATE payment_methods SET name = coalesce($2, name), requisite_kind = coalesce($3, requisite_kind),
            sort_order = coalesce($4, sort_order), is_active = coalesce($5, is_active)
         WHERE code = $1 RETURNING {METHOD_COLUMNS}"
    ))
    .bind(&code)
    .bind(name)
    .bind(kind)
    .bind(sort_order)
    .bind(request.is_active)
    .fetch_one(&mut *tx)
    .await?;
    let change = Change::new("payment_method.update", "payment_method", code);
    change
        .commit(tx, &auth.caller, Some(&before), &after)
        .await?;
    Ok(Json(after))
}

// ---- Pools (payment method + fiat currency) ------------------------------------------------

#[derive(Debug, Serialize, sqlx::FromRow)]
struct PoolView {
    payment_method: String,
    fiat_currency: String,
    min_amount: Option<Decimal>,
    max_amount: Option<Decimal>,
    is_active: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

const POOL_COLUMNS: &str =
    "payment_method, fiat_currency, min_amount, max_amount, is_active, created_at, updated_at";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreatePool {
    payment_method: String,
    fiat_currency: String,
    min_amount: Option<Decimal>,
    max_amount: Option<Decimal>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdatePool {
    #[serde(default, deserialize_with = "present")]
    min_amount: Option<Option<Decimal>>,
    #[serde(default, deserialize_with = "present")]
    max_amount: Option<Option<Decimal>>,
    is_active: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PoolFilter {
    payment_method: Option<String>,
    fiat_currency: Option<String>,
    active: Option<bool>,
}

/// The platform-wide order bounds of a pool: each optional, positive fiat, min ≤ max.
fn pool_bounds(
    min: Option<Decimal>,
    max: Option<Decimal>,
) -> ApiResult<(Option<Decimal>, Option<Decimal>)> {
    let min = min.map(|v| validate::fiat("min_amount", v)).transpose()?;
    let max = max.map(|v| validate::fiat("max_amount", v)).transpose()?;
    if let (Some(min), Some(max)) = (min, max) {
        if min > max {
            return Err(ApiError::invalid("min_amount must not exceed max_amount"));
        }
    }
    Ok((min, max))
}

/// The pool's key on the wire and in the audit log (`fiat:method`, as `orders.screened`).
fn pool_key(method: &str, fiat: &str) -> String {
    format!("{fiat}:{method}")
}

async fn list_pools(
    State(state): State<AppState>,
    _caller: Caller,
    Params(filter): Params<PoolFilter>,
) -> ApiResult<Json<Vec<PoolView>>> {
    let rows = sqlx::query_as(&format!(
        "SELECT {POOL_COLUMNS} FROM payment_method_currencies
         WHERE ($1::text IS NULL OR payment_method = $1) AND ($2::text IS NULL OR fiat_currency = $2)
           AND ($3::bool IS NULL OR is_active = $3)
         ORDER BY fiat_currency, payment_method"
    ))
    .bind(&filter.payment_method)
    .bind(&filter.fiat_currency)
    .bind(filter.active)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(rows))
}

async fn create_pool(
    State(state): State<AppState>,
    auth: Authorized<ReferenceUpdate>,
    Body(request): Body<CreatePool>,
) -> ApiResult<(StatusCode, Json<PoolView>)> {
    let (min, max) = pool_bounds(request.min_amount, request.max_amount)?;
    let mut tx = state.pool.begin().await?;
    method_active(&mut tx, &request.payment_method).await?;
    fiat_active(&mut tx, &request.fiat_currency).await?;
    let key = pool_key(&request.payment_method, &request.fiat_currency);
    let created: PoolView = sqlx::query_as(&format!(
        "INSERT INTO payment_method_currencies (payment_method, fiat_currency, min_amount, max_amount)
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING {POOL_COLUMNS}"
    ))
    .bind(&request.payment_method)
    .bind(&request.fiat_currency)
    .bind(min)
    .bind(max)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| exists("pool", &key))?;
    let change = Change::new("pool.create", "pool", key);
    change.commit(tx, &auth.caller, None, &created).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn update_pool(
    State(state): State<AppState>,
    auth: Authorized<ReferenceUpdate>,
    Path((method, fiat)): Path<(String, String)>,
    Body(request): Body<UpdatePool>,
) -> ApiResult<Json<PoolView>> {
    let mut tx = state.pool.begin().await?;
    let before: PoolView = sqlx::query_as(&format!(
        "SELECT {POOL_COLUMNS} FROM payment_method_currencies
         WHERE payment_method = $1 AND fiat_currency = $2 FOR UPDATE"
    ))
    .bind(&method)
    .bind(&fiat)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| ApiError::not_found("pool"))?;
    let (min, max) = pool_bounds(
        request.min_amount.unwrap_or(before.min_amount),
        request.max_amount.unwrap_or(before.max_amount),
    )?;
    let after: PoolView = sqlx::query_as(&format!(
        "UPDATE payment_method_currencies SET min_amount = $3, max_amount = $4,
            is_active = coalesce($5, is_active)
         WHERE payment_method = $1 AND fiat_currency = $2 RETURNING {POOL_COLUMNS}"
    ))
    .bind(&method)
    .bind(&fiat)
    .bind(min)
    .bind(max)
    .bind(request.is_active)
    .fetch_one(&mut *tx)
    .await?;
    let change = Change::new("pool.update", "pool", pool_key(&method, &fiat));
    change
        .commit(tx, &auth.caller, Some(&before), &after)
        .await?;
    Ok(Json(after))
}

// ---- Banks ---------------------------------------------------------------------------------

#[derive(Debug, Serialize, sqlx::FromRow)]
struct BankView {
    id: Uuid,
    country_code: String,
    code: String,
    name: String,
    is_active: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

const BANK_COLUMNS: &str = "id, country_code, code, name, is_active, created_at, updated_at";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBank {
    country_code: String,
    code: String,
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BankFilter {
    country_code: Option<String>,
    active: Option<bool>,
}

async fn list_banks(
    State(state): State<AppState>,
    _caller: Caller,
    Params(filter): Params<BankFilter>,
) -> ApiResult<Json<Vec<BankView>>> {
    let rows = sqlx::query_as(&format!(
        "SELECT {BANK_COLUMNS} FROM banks
         WHERE ($1::text IS NULL OR country_code = $1) AND ($2::bool IS NULL OR is_active = $2)
         ORDER BY country_code, name, code"
    ))
    .bind(&filter.country_code)
    .bind(filter.active)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(rows))
}

async fn create_bank(
    State(state): State<AppState>,
    auth: Authorized<ReferenceUpdate>,
    Body(request): Body<CreateBank>,
) -> ApiResult<(StatusCode, Json<BankView>)> {
    let code = code(
        "code",
        &request.code,
        is_bank_code(&request.code),
        "1 to 64 characters: lower-case letters, digits, _ or -, starting with a letter or digit",
    )?;
    let name = name(&request.name)?;
    let mut tx = state.pool.begin().await?;
    country_active(&mut tx, &request.country_code).await?;
    let created: BankView = sqlx::query_as(&format!(
        "INSERT INTO banks (country_code, code, name) VALUES ($1, $2, $3)
         ON CONFLICT (country_code, code) DO NOTHING RETURNING {BANK_COLUMNS}"
    ))
    .bind(&request.country_code)
    .bind(&code)
    .bind(name)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| exists("bank", &format!("{} in {}", code, request.country_code)))?;
    let change = Change::new("bank.create", "bank", created.id.to_string());
    change.commit(tx, &auth.caller, None, &created).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn update_bank(
    State(state): State<AppState>,
    auth: Authorized<ReferenceUpdate>,
    Path(id): Path<String>,
    Body(request): Body<UpdateNamed>,
) -> ApiResult<Json<BankView>> {
    // A malformed id names no bank.
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::not_found("bank"))?;
    let name = request.name.as_deref().map(name).transpose()?;
    let mut tx = state.pool.begin().await?;
    let before: BankView = sqlx::query_as(&format!(
        "SELECT {BANK_COLUMNS} FROM banks WHERE id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| ApiError::not_found("bank"))?;
    let after: BankView = sqlx::query_as(&format!(
        "UPDATE banks SET name = coalesce($2, name), is_active = coalesce($3, is_active)
         WHERE id = $1 RETURNING {BANK_COLUMNS}"
    ))
    .bind(id)
    .bind(name)
    .bind(request.is_active)
    .fetch_one(&mut *tx)
    .await?;
    let change = Change::new("bank.update", "bank", id.to_string());
    change
        .commit(tx, &auth.caller, Some(&before), &after)
        .await?;
    Ok(Json(after))
}

// ---- Exchange rates ------------------------------------------------------------------------

/// Highest rate accepted (fiat per USDT); anything above is a typo, not a market.
fn max_rate() -> Decimal {
    Decimal::from(1_000_000_000_i64)
}

/// Places a rate may carry (`exchange_rates.rate` is numeric(20,8)).
const RATE_SCALE: u32 = 8;

const HISTORY_MAX_LIMIT: i64 = 1000;
const HISTORY_DEFAULT_LIMIT: i64 = 100;

#[derive(Debug, Serialize, sqlx::FromRow)]
struct RateView {
    id: Uuid,
    fiat_currency: String,
    crypto_currency: String,
    rate: Decimal,
    source: String,
    observed_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    created_by: Option<Uuid>,
}

const RATE_COLUMNS: &str =
    "id, fiat_currency, crypto_currency, rate, source, observed_at, created_at, created_by";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PostRate {
    fiat_currency: String,
    rate: Decimal,
    #[serde(default = "manual")]
    source: String,
}

fn manual() -> String {
    "manual".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    /// Inclusive lower bound of `observed_at` (RFC 3339).
    from: Option<DateTime<Utc>>,
    /// Exclusive upper bound of `observed_at` (RFC 3339).
    to: Option<DateTime<Utc>>,
    limit: Option<i64>,
}

fn rate_value(rate: Decimal) -> ApiResult<Decimal> {
    if rate <= Decimal::ZERO || rate > max_rate() {
        return Err(ApiError::invalid(format!(
            "rate must be greater than 0 and at most {}",
            max_rate()
        )));
    }
    jivapay_domain::money::at_scale(rate, RATE_SCALE).map_err(|_| {
        ApiError::invalid(format!(
            "rate must have at most {RATE_SCALE} decimal places"
        ))
    })
}

async fn current_rates(
    State(state): State<AppState>,
    _caller: Caller,
) -> ApiResult<Json<Vec<RateView>>> {
    let rows = sqlx::query_as(&format!(
        "SELECT {RATE_COLUMNS} FROM current_exchange_rates WHERE crypto_currency = 'USDT'
         ORDER BY fiat_currency"
    ))
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(rows))
}

async fn rate_history(
    State(state): State<AppState>,
    _caller: Caller,
    Path(fiat): Path<String>,
    Params(query): Params<HistoryQuery>,
) -> ApiResult<Json<Vec<RateView>>> {
    let limit = query.limit.unwrap_or(HISTORY_DEFAULT_LIMIT);
    if !(1..=HISTORY_MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(format!(
            "limit must be between 1 and {HISTORY_MAX_LIMIT}"
        )));
    }
    if let (Some(from), Some(to)) = (query.from, query.to) {
        if from > to {
            return Err(ApiError::invalid("from must not be after to"));
        }
    }
    let mut conn = state.pool.acquire().await?;
    let known: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM currencies WHERE code = $1 AND kind = 'fiat')",
    )
    .bind(&fiat)
    .fetch_one(&mut *conn)
    .await?;
    if !known {
        return Err(ApiError::not_found("currency"));
    }
    let rows = sqlx::query_as(&format!(
        "SELECT {RATE_COLUMNS} FROM exchange_rates
         WHERE fiat_currency = $1 AND crypto_currency = 'USDT'
           AND ($2::timestamptz IS NULL OR observed_at >= $2)
           AND ($3::timestamptz IS NULL OR observed_at < $3)
         ORDER BY observed_at DESC, created_at DESC, id DESC
         LIMIT $4"
    ))
    .bind(&fiat)
    .bind(query.from)
    .bind(query.to)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Json(rows))
}

async fn post_rate(
    State(state): State<AppState>,
    auth: Authorized<RatesUpdate>,
    Body(request): Body<PostRate>,
) -> ApiResult<(StatusCode, Json<RateView>)> {
    let rate = rate_value(request.rate)?;
    let source = code(
        "source",
        &request.source,
        is_rate_source(&request.source),
        "1 to 64 characters: a lower-case letter, then lower-case letters, digits, _, . or -",
    )?;
    let fiat = request.fiat_currency;
    let observed_at = Utc::now();
    let mut tx = state.pool.begin().await?;
    fiat_active(&mut tx, &fiat).await?;
    let created: RateView = sqlx::query_as(&format!(
        "INSERT INTO exchange_rates (fiat_currency, rate, source, observed_at, created_by)
         VALUES ($1, $2, $3, $4, $5) RETURNING {RATE_COLUMNS}"
    ))
    .bind(&fiat)
    .bind(rate)
    .bind(&source)
    .bind(observed_at)
    .bind(auth.caller.user_id)
    .fetch_one(&mut *tx)
    .await?;
    let change = Change::new("exchange_rate.create", "exchange_rate", fiat.clone());
    change.record(&mut tx, &auth.caller, None, &created).await?;
    let record = Rate {
        fiat_currency: fiat.clone(),
        rate: created.rate,
        source,
        observed_at: created.observed_at.timestamp_millis(),
    };
    crate::outbox::enqueue(&mut tx, &state.schemas, RATES, &fiat, Some(&record)).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn codes_follow_the_table_patterns() {
        assert!(is_country_code("RU") && !is_country_code("ru") && !is_country_code("RUS"));
        assert!(is_currency_code("RUB") && is_currency_code("USDTX") && !is_currency_code("RU"));
        assert!(!is_currency_code("Rub") && !is_currency_code("RUBBLE"));
        assert!(is_method_code("sbp") && is_method_code("card2card") && !is_method_code("s"));
        assert!(!is_method_code("2card") && !is_method_code("Card") && !is_method_code("a-b"));
        assert!(is_bank_code("sberbank") && is_bank_code("1bank") && is_bank_code("t-bank"));
        assert!(!is_bank_code("") && !is_bank_code("-bank") && !is_bank_code("Bank"));
        assert!(is_rate_source("manual") && is_rate_source("bybit_p2p.v2"));
        assert!(!is_rate_source("") && !is_rate_source("Manual") && !is_rate_source("1x"));
    }

    #[test]
    fn rates_are_positive_bounded_and_at_most_8_places() {
        let d = |s: &str| Decimal::from_str(s).unwrap();
        assert_eq!(rate_value(d("92.5")).unwrap(), d("92.50000000"));
        assert!(rate_value(d("0.00000001")).is_ok());
        assert!(rate_value(d("0.000000001")).is_err());
        assert!(rate_value(Decimal::ZERO).is_err());
        assert!(rate_value(d("-1")).is_err());
        assert!(rate_value(d("1000000000")).is_ok());
        assert!(rate_value(d("1000000000.01")).is_err());
    }
}
