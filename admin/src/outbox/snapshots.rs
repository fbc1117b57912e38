//! Current state of a trader or store as the record published on its compacted topic, read in
//! the writing transaction (so the record matches what that transaction commits).

use crate::mask::masked;
use jivapay_schemas::records::{
    Direction, ModerationStatus, Requisite, RequisiteKind, Store, StoreCommission, Trader,
    TraderCommission,
};
use jivapay_schemas::topics::{STORES, TRADERS};
use jivapay_schemas::SchemaRegistry;
use rust_decimal::Decimal;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::{enqueue, EnqueueError};

/// The stored direction (a check constraint keeps it one of the names; pay-in otherwise, as
/// before).
fn direction(text: &str) -> Direction {
    text.parse().unwrap_or(Direction::PayIn)
}

fn millis(at: chrono::DateTime<chrono::Utc>) -> i64 {
    at.timestamp_millis()
}

fn moderation(text: &str) -> ModerationStatus {
    match text {
        "approved" => ModerationStatus::Approved,
        "rejected" => ModerationStatus::Rejected,
        "blocked" => ModerationStatus::Blocked,
        _ => ModerationStatus::Pending,
    }
}

fn requisite_kind(text: &str) -> RequisiteKind {
    match text {
        "card" => RequisiteKind::Card,
        "account" => RequisiteKind::Account,
        _ => RequisiteKind::Phone,
    }
}

pub async fn trader(tx: &mut PgConnection, trader_id: Uuid) -> sqlx::Result<Option<Trader>> {
    let Some(row) = sqlx::query(
        "SELECT id, team_id, priority, is_active, is_in_work, is_traffic_enabled_by_teamlead, updated_at
         FROM traders WHERE id = $1",
    )
    .bind(trader_id)
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(None);
    };
    let commissions = sqlx::query(
        "SELECT payment_method, direction, percent FROM trader_commissions WHERE trader_id = $1
         ORDER BY payment_method, direction",
    )
    .bind(trader_id)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|c| TraderCommission {
        payment_method: c.get("payment_method"),
        direction: direction(c.get("direction")),
        percent: c.get::<Decimal, _>("percent"),
    })
    .collect();
    let requisites = sqlx::query(
        "SELECT r.id, r.payment_method, r.fiat_currency, b.code AS bank_code, r.kind, r.number_first6,
                r.number_last4, r.holder_name, r.is_pay_in_enabled, r.is_pay_out_enabled, r.min_amount,
                r.max_amount, r.daily_turnover_limit, r.monthly_turnover_limit, r.daily_count_limit,
                r.monthly_count_limit, r.min_interval_seconds, r.moderation_status, r.is_active
         FROM requisites r LEFT JOIN banks b ON b.id = r.bank_id
         WHERE r.trader_id = $1 AND r.archived_at IS NULL ORDER BY r.created_at, r.id",
    )
    .bind(trader_id)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|r| {
        let kind: String = r.get("kind");
        let first6: Option<String> = r.get("number_first6");
        let last4: String = r.get("number_last4");
        Requisite {
            requisite_id: r.get("id"),
            payment_method: r.get("payment_method"),
            fiat_currency: r.get("fiat_currency"),
            bank_code: r.get("bank_code"),
            kind: requisite_kind(&kind),
            number_masked: masked(&kind, first6.as_deref(), &last4),
            holder_name: r.get("holder_name"),
            pay_in_enabled: r.get("is_pay_in_enabled"),
            pay_out_enabled: r.get("is_pay_out_enabled"),
            min_amount: r.get("min_amount"),
            max_amount: r.get("max_amount"),
            daily_turnover_limit: r.get("daily_turnover_limit"),
            monthly_turnover_limit: r.get("monthly_turnover_limit"),
            daily_count_limit: r.get("daily_count_limit"),
            monthly_count_limit: r.get("monthly_count_limit"),
            min_interval_secs: r.get("min_interval_seconds"),
            moderation_status: moderation(r.get("moderation_status")),
            is_active: r.get("is_active"),
        }
    })
    .collect();
    Ok(Some(Trader {
        trader_id: row.get("id"),
        team_id: row.get("team_id"),
        priority: row.get("priority"),
        is_active: row.get("is_active"),
        is_in_work: row.get("is_in_work"),
        is_traffic_enabled_by_teamlead: row.get("is_traffic_enabled_by_teamlead"),
        commissions,
        requisites,
        updated_at: millis(row.get("updated_at")),
    }))
}

pub async fn store(tx: &mut PgConnection, store_id: Uuid) -> sqlx::Result<Option<Store>> {
    let Some(row) = sqlx::query(
        // A store of a disabled merchant is published disabled: processors refuse its orders.
        "SELECT s.id, s.merchant_id, s.name, s.is_enabled AND m.is_enabled AS is_enabled, s.callback_url, s.updated_at
         FROM stores s JOIN merchants m ON m.id = s.merchant_id WHERE s.id = $1",
    )
    .bind(store_id)
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(None);
    };
    let commissions = sqlx::query(
        "SELECT payment_method, direction, percent FROM store_commissions WHERE store_id = $1
         ORDER BY payment_method, direction",
    )
    .bind(store_id)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|c| StoreCommission {
        payment_method: c.get("payment_method"),
        direction: direction(c.get("direction")),
        percent: c.get::<Decimal, _>("percent"),
    })
    .collect();
    Ok(Some(Store {
        store_id: row.get("id"),
        merchant_id: row.get("merchant_id"),
        name: row.get("name"),
        is_enabled: row.get("is_enabled"),
        callback_url: row.get("callback_url"),
        commissions,
        updated_at: millis(row.get("updated_at")),
    }))
}

/// Enqueues the trader's current record (or a tombstone if it is gone).
pub async fn publish_trader(
    tx: &mut PgConnection,
    schemas: &SchemaRegistry,
    trader_id: Uuid,
) -> Result<(), EnqueueError> {
    let record = trader(&mut *tx, trader_id).await?;
    enqueue(
        tx,
        schemas,
        TRADERS,
        &trader_id.to_string(),
        record.as_ref(),
    )
    .await
}

/// Enqueues the store's current record (or a tombstone if it is gone).
pub async fn publish_store(
    tx: &mut PgConnection,
    schemas: &SchemaRegistry,
    store_id: Uuid,
) -> Result<(), EnqueueError> {
    let record = store(&mut *tx, store_id).await?;
    enqueue(tx, schemas, STORES, &store_id.to_string(), record.as_ref()).await
}
