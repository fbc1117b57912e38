//! What the payer sees, loaded by token: the order's state and, once assigned, the requisite to
//! pay (decrypted for this page only).

use crate::state::IngestState;
use axum::extract::State;
use axum::Json;
use jivapay_platform::group::{Batch, Group, Shape};
use jivapay_platform::http::error::{ApiError, ApiResult};
use jivapay_platform::http::path::Path;
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::PgPool;
use std::collections::HashMap;
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
    matches!(status, "assigned" | "client_confirmed")
}

/// The rows of a view as PostgreSQL has them, by payment token.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ViewRow {
    token: String,
    order_id: Uuid,
    status: String,
    fiat_amount: Option<Decimal>,
    fiat_currency: String,
    payment_method: String,
    expires_at: chrono::DateTime<chrono::Utc>,
    trader_id: Option<Uuid>,
    kind: Option<String>,
    number_ciphertext: Option<Vec<u8>>,
    holder_name: Option<String>,
    bank: Option<String>,
}

/// Loads views by group commit: every open payment page and app stream reloads on each change
/// of its order, so concurrent loads share one query (see [`jivapay_platform::group`]).
pub struct ViewLoader {
    group: Group<String, Option<ViewRow>>,
}

/// The views of the tokens in `$1`, each token once. Each token is probed by its index
/// (LATERAL … OFFSET 0 cannot be turned into a join): a plan cached while the tables were
/// small would otherwise hash-join them whole on every batch as they grow.
pub const VIEWS_BY_TOKEN: &str =
    "SELECT g.payment_token AS token, g.order_id, coalesce(o.status, 'created') AS status, g.fiat_amount,
            g.fiat_currency, g.payment_method, coalesce(o.expires_at, g.expires_at) AS expires_at, o.trader_id,
            r.kind, r.number_ciphertext, r.holder_name, b.name AS bank
     FROM (SELECT DISTINCT unnest($1::text[]) AS token) AS wanted
     CROSS JOIN LATERAL
         (SELECT * FROM gateway_requests WHERE payment_token = wanted.token OFFSET 0) AS g
     LEFT JOIN LATERAL (SELECT * FROM orders WHERE orders.id = g.order_id OFFSET 0) AS o ON true
     LEFT JOIN requisites r ON r.id = o.requisite_id
     LEFT JOIN banks b ON b.id = r.bank_id";

/// Reads all views whose tokens were asked for at once.
struct ViewQuery {
    pool: PgPool,
}

impl Batch<String, Option<ViewRow>> for ViewQuery {
    async fn run(&self, tokens: Vec<String>) -> sqlx::Result<Vec<Option<ViewRow>>> {
        let rows: Vec<ViewRow> = sqlx::query_as(VIEWS_BY_TOKEN)
            .bind(&tokens)
            .fetch_all(&self.pool)
            .await?;
        let by_token: HashMap<&str, &ViewRow> =
            rows.iter().map(|row| (row.token.as_str(), row)).collect();
        // The same token may be asked for twice in one batch (a stream and a confirmation).
        Ok(tokens
            .iter()
            .map(|token| by_token.get(token.as_str()).map(|row| (*row).clone()))
            .collect())
    }
}

impl ViewLoader {
    /// Loads through connections of its own, one per worker, that keep one plan of the
    /// batch query (see [`jivapay_platform::db::generic_plan_pool`]).
    pub fn start(pool: &PgPool) -> Self {
        const SHAPE: Shape = Shape {
            queue: 4096,
            max_batch: 256,
            workers: 2,
        };
        let pool = jivapay_platform::db::generic_plan_pool(pool, SHAPE.workers as u32);
        Self {
            group: Group::start(SHAPE, ViewQuery { pool }),
        }
    }
}

pub async fn load(state: &IngestState, token: &str) -> ApiResult<PaymentView> {
    let row = state
        .views
        .group
        .call(token.to_owned())
        .await?
        .ok_or_else(|| ApiError::not_found("payment"))?;
    let requisite = match (shows_requisite(&row.status), row.number_ciphertext) {
        (true, Some(ciphertext)) => Some(Requisite {
            kind: row.kind.unwrap_or_default(),
            number: state.data_key.decrypt(&ciphertext).map_err(|e| {
                tracing::error!(error = %e, "requisite number does not decrypt");
                ApiError::internal()
            })?,
            holder_name: row.holder_name.unwrap_or_default(),
            bank: row.bank,
        }),
        _ => None,
    };
    let seconds_left = (row.expires_at - chrono::Utc::now()).num_seconds().max(0);
    Ok(PaymentView {
        order_id: row.order_id,
        can_confirm: row.status == "assigned" && seconds_left > 0,
        status: row.status,
        amount: row.fiat_amount,
        currency: row.fiat_currency,
        payment_method: row.payment_method,
        requisite,
        expires_at: row.expires_at,
        seconds_left,
        trader_id: row.trader_id,
    })
}

pub async fn json(
    State(state): State<IngestState>,
    Path(token): Path<String>,
) -> ApiResult<Json<PaymentView>> {
    load(&state, &token).await.map(Json)
}
