//! Traders: staff register a trader for a user with role `trader`, place him in a team, set his
//! priority and commissions; a team lead sees his team's traders and switches their traffic on
//! and off; a trader sees himself and switches himself in and out of work. Every change is
//! audited and republishes the trader's record to the `traders` topic in the same transaction.

use super::audit_log::Params;
use crate::audit::{self, Actor, Level};
use crate::auth::permissions::allowed_scope;
use crate::auth::{Authorized, Permission, Role, Scope, Visibility};
use crate::commission_rules;
use crate::error::{ApiError, ApiResult};
use crate::json::{present, Body};
use crate::need;
use crate::outbox::snapshots::publish_trader;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use jivapay_core::validate;
use jivapay_domain::Direction;
use jivapay_platform::http::path::Path;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

need!(TradersCreate, "traders", "create", []);
need!(TradersRead, "traders", "read", [Trader]);
need!(TradersUpdate, "traders", "update", []);
// Switching in and out of work is the trader's own act: staff never do it (see `set_in_work`).
need!(TradersWork, "traders", "work", [Trader]);
need!(TradersTraffic, "traders", "traffic", []);
need!(CommissionsUpdate, "commissions", "update", []);

/// Saving a commission that makes the platform lose money needs this besides
/// `commissions:update`.
const ALLOW_LOSS: Permission = Permission::new("commissions", "allow_loss");

/// Priorities run from 0 (asked first) to this.
const PRIORITY_MAX: i64 = 1_000_000;
const DEFAULT_PRIORITY: i64 = 100;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/traders", post(create).get(list))
        .route("/traders/{id}", get(read).patch(update))
        .route("/traders/{id}/in-work", put(set_in_work))
        .route("/traders/{id}/traffic", put(set_traffic))
        .route(
            "/traders/{id}/commissions/{payment_method}/{direction}",
            put(set_commission).delete(delete_commission),
        )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateTrader {
    user_id: Uuid,
    team_id: Option<Uuid>,
    priority: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateTrader {
    priority: Option<i64>,
    #[serde(default, deserialize_with = "present")]
    team_id: Option<Option<Uuid>>,
    is_active: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InWork {
    in_work: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Traffic {
    enabled: bool,
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
    #[serde(skip)]
    trader_id: Uuid,
    payment_method: String,
    direction: String,
    percent: Decimal,
    allow_loss: bool,
    updated_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct TraderView {
    id: Uuid,
    user_id: Uuid,
    login: String,
    display_name: Option<String>,
    team_id: Option<Uuid>,
    team_name: Option<String>,
    priority: i32,
    is_active: bool,
    is_in_work: bool,
    is_traffic_enabled_by_teamlead: bool,
    #[sqlx(skip)]
    commissions: Vec<CommissionView>,
    created_at: chrono::DateTime<chrono::Utc>,
    updated_at: chrono::DateTime<chrono::Utc>,
}

const SELECT_VIEW: &str = "SELECT t.id, t.user_id, u.login, u.display_name, t.team_id, tm.name AS team_name,
        t.priority, t.is_active, t.is_in_work, t.is_traffic_enabled_by_teamlead, t.created_at, t.updated_at
    FROM traders t
    JOIN users u ON u.id = t.user_id
    LEFT JOIN teams tm ON tm.id = t.team_id
    WHERE ($1 OR t.team_id = ANY($2) OR t.id = $3)";

/// Fills in the commissions of `traders`.
async fn with_commissions(
    conn: &mut PgConnection,
    mut traders: Vec<TraderView>,
) -> ApiResult<Vec<TraderView>> {
    let ids: Vec<Uuid> = traders.iter().map(|t| t.id).collect();
    let commissions: Vec<CommissionView> = sqlx::query_as(
        "SELECT trader_id, payment_method, direction, percent, allow_loss, updated_at
         FROM trader_commissions WHERE trader_id = ANY($1) ORDER BY payment_method, direction",
    )
    .bind(&ids)
    .fetch_all(conn)
    .await?;
    for trader in &mut traders {
        trader.commissions = commissions
            .iter()
            .filter(|c| c.trader_id == trader.id)
            .cloned()
            .collect();
    }
    Ok(traders)
}

async fn fetch_visible(
    conn: &mut PgConnection,
    visibility: &Visibility,
    id: Uuid,
) -> ApiResult<TraderView> {
    let trader: TraderView = sqlx::query_as(&format!("{SELECT_VIEW} AND t.id = $4"))
        .bind(visibility.all)
        .bind(&visibility.team_ids)
        .bind(visibility.trader_id)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| ApiError::not_found("trader"))?;
    let mut one = with_commissions(conn, vec![trader]).await?;
    Ok(one.remove(0))
}

/// Locks the trader's row for the rest of the transaction, then reads it within the caller's
/// scope (404 when absent or out of scope).
async fn lock_visible(
    conn: &mut PgConnection,
    visibility: &Visibility,
    id: Uuid,
) -> ApiResult<TraderView> {
    sqlx::query("SELECT 1 FROM traders WHERE id = $1 FOR UPDATE")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    fetch_visible(conn, visibility, id).await
}

fn to_json<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or_default()
}

/// A team a trader may be placed in by this caller: it must exist within the caller's scope
/// (404 otherwise, as for any object out of scope) and be active.
async fn check_team(
    conn: &mut PgConnection,
    visibility: &Visibility,
    team_id: Uuid,
) -> ApiResult<()> {
    let active: Option<bool> =
        sqlx::query_scalar("SELECT is_active FROM teams WHERE id = $1 AND ($2 OR id = ANY($3))")
            .bind(team_id)
            .bind(visibility.all)
            .bind(&visibility.team_ids)
            .fetch_optional(conn)
            .await?;
    match active {
        None => Err(ApiError::not_found("team")),
        Some(false) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "team_inactive",
            "the team is not active",
        )),
        Some(true) => Ok(()),
    }
}

fn priority(value: i64) -> ApiResult<i32> {
    Ok(validate::int_range("priority", value, 0, PRIORITY_MAX)?)
}

/// One trader per user.
fn duplicate_trader(e: sqlx::Error) -> ApiError {
    let is_duplicate = e
        .as_database_error()
        .is_some_and(|d| d.constraint() == Some("traders_user_id_key"));
    if is_duplicate {
        ApiError::new(
            StatusCode::CONFLICT,
            "trader_exists",
            "this user is already a trader",
        )
    } else {
        e.into()
    }
}

/// Audits a change to a trader and republishes his record, in the caller's transaction.
async fn audit_and_publish(
    tx: &mut PgConnection,
    state: &AppState,
    caller: &crate::auth::Caller,
    trader_id: Uuid,
    entry: audit::Entry<'_>,
) -> ApiResult<()> {
    audit::record(&mut *tx, Actor::User(caller), entry).await?;
    publish_trader(tx, &state.schemas, trader_id).await?;
    Ok(())
}

async fn create(
    State(state): State<AppState>,
    auth: Authorized<TradersCreate>,
    Body(request): Body<CreateTrader>,
) -> ApiResult<(StatusCode, Json<TraderView>)> {
    let priority = priority(request.priority.unwrap_or(DEFAULT_PRIORITY))?;
    let visibility = auth.visibility();
    // Below scope `*` a trader can only be created into one of the caller's own teams.
    if !visibility.all && request.team_id.is_none() {
        return Err(ApiError::invalid(
            "team_id is required: you may create traders only in your own teams",
        ));
    }
    let mut tx = state.pool.begin().await?;
    let role: Option<String> = sqlx::query_scalar("SELECT role FROM users WHERE id = $1")
        .bind(request.user_id)
        .fetch_optional(&mut *tx)
        .await?;
    if role.as_deref() != Some(Role::Trader.as_str()) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_a_trader",
            "user_id must be a user with role trader",
        ));
    }
    if let Some(team_id) = request.team_id {
        check_team(&mut tx, &visibility, team_id).await?;
    }
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO traders (user_id, team_id, priority) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(request.user_id)
    .bind(request.team_id)
    .bind(priority)
    .fetch_one(&mut *tx)
    .await
    .map_err(duplicate_trader)?;
    let created = fetch_visible(&mut tx, &visibility, id).await?;
    audit_and_publish(
        &mut tx,
        &state,
        &auth.caller,
        id,
        audit::Entry {
            action: "trader.create",
            entity_type: "trader",
            entity_id: id.to_string(),
            before: None,
            after: Some(to_json(&created)),
            level: Level::Info,
        },
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    team_id: Option<Uuid>,
    in_work: Option<bool>,
}

async fn list(
    State(state): State<AppState>,
    auth: Authorized<TradersRead>,
    Params(query): Params<ListQuery>,
) -> ApiResult<Json<Vec<TraderView>>> {
    let visibility = auth.visibility();
    let mut conn = state.pool.acquire().await?;
    let traders: Vec<TraderView> = sqlx::query_as(&format!(
        "{SELECT_VIEW} AND ($4::uuid IS NULL OR t.team_id = $4)
           AND ($5::boolean IS NULL OR t.is_in_work = $5)
         ORDER BY t.created_at, t.id LIMIT 1000"
    ))
    .bind(visibility.all)
    .bind(&visibility.team_ids)
    .bind(visibility.trader_id)
    .bind(query.team_id)
    .bind(query.in_work)
    .fetch_all(&mut *conn)
    .await?;
    with_commissions(&mut conn, traders).await.map(Json)
}

async fn read(
    State(state): State<AppState>,
    auth: Authorized<TradersRead>,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<TraderView>> {
    let mut conn = state.pool.acquire().await?;
    fetch_visible(&mut conn, &auth.visibility(), id)
        .await
        .map(Json)
}

async fn update(
    State(state): State<AppState>,
    auth: Authorized<TradersUpdate>,
    Path(id): Path<Uuid>,
    Body(request): Body<UpdateTrader>,
) -> ApiResult<Json<TraderView>> {
    let new_priority = request.priority.map(priority).transpose()?;
    let visibility = auth.visibility();
    let mut tx = state.pool.begin().await?;
    let before = lock_visible(&mut tx, &visibility, id).await?;
    let is_active = request.is_active.unwrap_or(before.is_active);
    if is_active != before.is_active && auth.scope < Scope::All {
        return Err(ApiError::forbidden(
            "activating or deactivating a trader needs the permission traders:update with scope *",
        ));
    }
    let team_id = match request.team_id {
        Some(team) if team != before.team_id => {
            match team {
                Some(team) => check_team(&mut tx, &visibility, team).await?,
                // Out of every team is out of the caller's teams too.
                None if !visibility.all => {
                    return Err(ApiError::invalid(
                        "you may move a trader only between teams you lead",
                    ))
                }
                None => {}
            }
            team
        }
        _ => before.team_id,
    };
    sqlx::query("UPDATE traders SET priority = $2, team_id = $3, is_active = $4 WHERE id = $1")
        .bind(id)
        .bind(new_priority.unwrap_or(before.priority))
        .bind(team_id)
        .bind(is_active)
        .execute(&mut *tx)
        .await?;
    let after = fetch_visible(&mut tx, &visibility, id).await?;
    audit_and_publish(
        &mut tx,
        &state,
        &auth.caller,
        id,
        audit::Entry {
            action: "trader.update",
            entity_type: "trader",
            entity_id: id.to_string(),
            before: Some(to_json(&before)),
            after: Some(to_json(&after)),
            level: Level::Info,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Json(after))
}

async fn set_in_work(
    State(state): State<AppState>,
    auth: Authorized<TradersWork>,
    Path(id): Path<Uuid>,
    Body(request): Body<InWork>,
) -> ApiResult<Json<TraderView>> {
    // Only the trader himself says whether he is at work, whatever a staff user's grants say.
    if auth.caller.role != Role::Trader {
        return Err(ApiError::forbidden(
            "only the trader himself switches in and out of work",
        ));
    }
    if auth.caller.trader_id != Some(id) {
        return Err(ApiError::not_found("trader"));
    }
    let visibility = auth.visibility();
    let mut tx = state.pool.begin().await?;
    let before = lock_visible(&mut tx, &visibility, id).await?;
    if request.in_work && !before.is_active {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "trader_inactive",
            "an inactive trader cannot go to work",
        ));
    }
    sqlx::query("UPDATE traders SET is_in_work = $2 WHERE id = $1")
        .bind(id)
        .bind(request.in_work)
        .execute(&mut *tx)
        .await?;
    let after = fetch_visible(&mut tx, &visibility, id).await?;
    audit_and_publish(
        &mut tx,
        &state,
        &auth.caller,
        id,
        audit::Entry {
            action: if request.in_work {
                "trader.work_start"
            } else {
                "trader.work_stop"
            },
            entity_type: "trader",
            entity_id: id.to_string(),
            before: Some(to_json(&before)),
            after: Some(to_json(&after)),
            level: Level::Info,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Json(after))
}

async fn set_traffic(
    State(state): State<AppState>,
    auth: Authorized<TradersTraffic>,
    Path(id): Path<Uuid>,
    Body(request): Body<Traffic>,
) -> ApiResult<Json<TraderView>> {
    let visibility = auth.visibility();
    let mut tx = state.pool.begin().await?;
    let before = lock_visible(&mut tx, &visibility, id).await?;
    sqlx::query("UPDATE traders SET is_traffic_enabled_by_teamlead = $2 WHERE id = $1")
        .bind(id)
        .bind(request.enabled)
        .execute(&mut *tx)
        .await?;
    let after = fetch_visible(&mut tx, &visibility, id).await?;
    let level = if auth.caller.role == Role::TeamLead {
        Level::Warning
    } else {
        Level::Info
    };
    audit_and_publish(
        &mut tx,
        &state,
        &auth.caller,
        id,
        audit::Entry {
            action: if request.enabled {
                "trader.traffic_enable"
            } else {
                "trader.traffic_disable"
            },
            entity_type: "trader",
            entity_id: id.to_string(),
            before: Some(to_json(&before)),
            after: Some(to_json(&after)),
            level,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Json(after))
}

fn check_direction(direction: &str) -> ApiResult<()> {
    if direction.parse::<Direction>().is_ok() {
        Ok(())
    } else {
        Err(ApiError::invalid("direction must be pay_in or pay_out"))
    }
}

async fn set_commission(
    State(state): State<AppState>,
    auth: Authorized<CommissionsUpdate>,
    Path((id, method, direction)): Path<(Uuid, String, String)>,
    Body(request): Body<SetCommission>,
) -> ApiResult<Json<TraderView>> {
    if request.allow_loss && allowed_scope(&auth.caller.grants, ALLOW_LOSS).is_none() {
        return Err(ApiError::forbidden(
            "allow_loss needs the permission commissions:allow_loss",
        ));
    }
    let percent = validate::percent("percent", request.percent)?;
    check_direction(&direction)?;
    let visibility = auth.visibility();
    let mut tx = state.pool.begin().await?;
    let before = lock_visible(&mut tx, &visibility, id).await?;
    let method_exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM payment_methods WHERE code = $1 AND is_active)",
    )
    .bind(&method)
    .fetch_one(&mut *tx)
    .await?;
    if !method_exists {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_payment_method",
            format!("no active payment method {method:?}"),
        ));
    }
    commission_rules::check_trader_commission(
        &mut tx,
        &method,
        &direction,
        percent,
        request.allow_loss,
    )
    .await?;
    sqlx::query(
        "INSERT INTO trader_commissions (trader_id, payment_method, direction, percent, allow_loss, updated_by)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (trader_id, payment_method, direction)
         DO UPDATE SET percent = EXCLUDED.percent, allow_loss = EXCLUDED.allow_loss, updated_by = EXCLUDED.updated_by",
    )
    .bind(id)
    .bind(&method)
    .bind(&direction)
    .bind(percent)
    .bind(request.allow_loss)
    .bind(auth.caller.user_id)
    .execute(&mut *tx)
    .await?;
    let after = fetch_visible(&mut tx, &visibility, id).await?;
    let find = |view: &TraderView| {
        view.commissions
            .iter()
            .find(|c| c.payment_method == method && c.direction == direction)
            .map(to_json)
    };
    audit_and_publish(
        &mut tx,
        &state,
        &auth.caller,
        id,
        audit::Entry {
            action: "trader.commission_set",
            entity_type: "trader",
            entity_id: id.to_string(),
            before: find(&before),
            after: find(&after),
            level: Level::Info,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Json(after))
}

async fn delete_commission(
    State(state): State<AppState>,
    auth: Authorized<CommissionsUpdate>,
    Path((id, method, direction)): Path<(Uuid, String, String)>,
) -> ApiResult<StatusCode> {
    check_direction(&direction)?;
    let visibility = auth.visibility();
    let mut tx = state.pool.begin().await?;
    let before = lock_visible(&mut tx, &visibility, id).await?;
    let removed = before
        .commissions
        .iter()
        .find(|c| c.payment_method == method && c.direction == direction)
        .ok_or_else(|| ApiError::not_found("commission"))?;
    sqlx::query(
        "DELETE FROM trader_commissions WHERE trader_id = $1 AND payment_method = $2 AND direction = $3",
    )
    .bind(id)
    .bind(&method)
    .bind(&direction)
    .execute(&mut *tx)
    .await?;
    audit_and_publish(
        &mut tx,
        &state,
        &auth.caller,
        id,
        audit::Entry {
            action: "trader.commission_delete",
            entity_type: "trader",
            entity_id: id.to_string(),
            before: Some(to_json(removed)),
            after: None,
            level: Level::Info,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
