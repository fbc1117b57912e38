//! The trader's own orders: list the open ones with the requisite and amount, confirm that the
//! money arrived, or report that it did not. A confirmation becomes a command for the trader
//! book (`trader.commands`, key = trader), which owns the order's state and decides; the API
//! answers 202 once the command is on the topic. Command ids derive from the order, so a
//! repeated click is one command (building and sending are shared with the payment page:
//! `jivapay_core::trader_commands`, `jivapay_platform::trader_commands`). `GET /trader/orders/events` streams the list as it changes
//! (see [`events`]).

mod events;

use crate::auth::Authorized;
use crate::need;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use jivapay_core::{trader_commands, validate};
use jivapay_domain::OrderStatus;
use jivapay_platform::http::error::{ApiError, ApiResult};
use jivapay_platform::http::json::Body;
use jivapay_platform::http::path::Path;
use jivapay_schemas::records::TraderCommandKind;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::LazyLock;
use uuid::Uuid;

need!(TraderOrders, "trader_orders", "use", [Trader]);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/trader/orders", get(list))
        .route("/trader/orders/events", get(events::stream))
        .route("/trader/orders/{id}/confirm", post(confirm))
        .route(
            "/trader/orders/{id}/report-non-payment",
            post(report_non_payment),
        )
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
struct OpenOrder {
    order_id: Uuid,
    status: String,
    amount: Option<Decimal>,
    currency: String,
    payment_method: String,
    crypto_amount: Option<Decimal>,
    requisite_id: Option<Uuid>,
    requisite_masked: Option<String>,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
    created_at: chrono::DateTime<chrono::Utc>,
    /// Checked in code, not in SQL: see [`one_order`].
    #[serde(skip)]
    trader_id: Option<Uuid>,
}

/// Orders as their trader sees them (requisite masked), from `o` (orders) and `r` (its
/// requisite); the caller names the rows.
const ORDER_COLUMNS: &str =
    "o.id AS order_id, o.status, o.fiat_amount AS amount, o.fiat_currency AS currency, o.payment_method,
     o.crypto_amount, o.requisite_id,
     CASE WHEN r.kind = 'card' THEN r.number_first6 || '******' || r.number_last4 ELSE '****' || r.number_last4 END
         AS requisite_masked,
     o.expires_at, o.created_at, o.trader_id";

/// Whether an order in `status` is on the trader's list ([`OrderStatus::WITH_TRADER`]).
fn is_open(status: &str) -> bool {
    OrderStatus::name_in(status, OrderStatus::WITH_TRADER)
}

/// The caller's trader, or 403.
fn trader_of(auth: &Authorized<TraderOrders>) -> ApiResult<Uuid> {
    auth.caller
        .trader_id
        .ok_or_else(|| ApiError::forbidden("only traders have orders"))
}

/// The trader's open orders, oldest first (at most 500).
///
/// The statuses are literals in the text (from [`OrderStatus::WITH_TRADER`]), as they always
/// were. The SQL also says `closed_at IS NULL`: that is the predicate of the partial index of
/// unclosed orders by trader (without it the plan walks the trader's whole history).
async fn open_orders(state: &AppState, trader: Uuid) -> sqlx::Result<Vec<OpenOrder>> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT {ORDER_COLUMNS} FROM orders o LEFT JOIN requisites r ON r.id = o.requisite_id
         WHERE o.trader_id = $1 AND o.closed_at IS NULL
           AND o.status IN ({})
         ORDER BY o.created_at LIMIT 500",
            OrderStatus::sql_list(OrderStatus::WITH_TRADER)
        )
    });
    sqlx::query_as(SQL.as_str())
        .bind(trader)
        .fetch_all(&state.pool)
        .await
}

/// Those of `orders` that are the trader's, whatever their status.
///
/// Looked up by id alone and the trader compared here: with `AND trader_id = $2` in SQL, a
/// generic plan on a table without statistics yet walked the trader's index and filtered his
/// every order by id — a cost that grew with the trader's history (found in the benchmark).
/// One primary-key probe per id, whatever the statistics say: as `o.id = ANY($1)`, a plan
/// cached while the table was small scanned all of it (and joined by hash) on every call
/// until the next autoanalyze — at 500 orders/s a cost that grew with every order.
async fn some_orders(
    state: &AppState,
    trader: Uuid,
    orders: &[Uuid],
) -> sqlx::Result<Vec<OpenOrder>> {
    let found: Vec<OpenOrder> = sqlx::query_as(&format!(
        "SELECT {ORDER_COLUMNS}
         FROM (SELECT DISTINCT unnest($1::uuid[]) AS id) AS wanted
         CROSS JOIN LATERAL (SELECT * FROM orders WHERE orders.id = wanted.id OFFSET 0) AS o
         LEFT JOIN LATERAL (SELECT * FROM requisites WHERE requisites.id = o.requisite_id OFFSET 0) AS r
             ON true"
    ))
    .bind(orders)
    .fetch_all(&state.pool)
    .await?;
    Ok(found
        .into_iter()
        .filter(|o| o.trader_id == Some(trader))
        .collect())
}

async fn list(
    State(state): State<AppState>,
    auth: Authorized<TraderOrders>,
) -> ApiResult<Json<Vec<OpenOrder>>> {
    let trader = trader_of(&auth)?;
    Ok(Json(open_orders(&state, trader).await?))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Report {
    reason: Option<String>,
}

/// Sends `kind` for one of the caller's open orders in one of `allowed` statuses.
async fn command(
    state: &AppState,
    auth: &Authorized<TraderOrders>,
    order_id: Uuid,
    kind: TraderCommandKind,
    allowed: &[OrderStatus],
    reason: Option<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let trader = trader_of(auth)?;
    // By id alone, the trader compared here (see `some_orders`).
    let order: Option<(String, Option<Uuid>)> =
        sqlx::query_as("SELECT status, trader_id FROM orders WHERE id = $1")
            .bind(order_id)
            .fetch_optional(&state.pool)
            .await?;
    let status = order
        .filter(|(_, owner)| *owner == Some(trader))
        .map(|(status, _)| status)
        .ok_or_else(|| ApiError::not_found("order"))?;
    if !OrderStatus::name_in(&status, allowed) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "invalid_order_state",
            format!("the order is {status}"),
        ));
    }
    let producer = state.commands.as_ref().ok_or_else(ApiError::internal)?;
    let name = format!("{kind:?}");
    let command = trader_commands::from_trader(
        order_id,
        trader,
        kind,
        auth.caller.user_id,
        reason,
        chrono::Utc::now().timestamp_millis(),
    );
    jivapay_platform::trader_commands::send(producer, &command).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"order_id": order_id, "command": name})),
    ))
}

async fn confirm(
    State(state): State<AppState>,
    auth: Authorized<TraderOrders>,
    Path(order_id): Path<Uuid>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    command(
        &state,
        &auth,
        order_id,
        TraderCommandKind::TraderConfirmed,
        OrderStatus::AWAITING_PAYMENT,
        None,
    )
    .await
}

async fn report_non_payment(
    State(state): State<AppState>,
    auth: Authorized<TraderOrders>,
    Path(order_id): Path<Uuid>,
    Body(report): Body<Report>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let reason = report
        .reason
        .map(|r| validate::text("reason", &r, 500))
        .transpose()?;
    command(
        &state,
        &auth,
        order_id,
        TraderCommandKind::ReportNonPayment,
        &[OrderStatus::ClientConfirmed],
        reason,
    )
    .await
}
