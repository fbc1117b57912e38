//! The platform never loses money on a commission: for the same payment method and direction,
//! what a store pays must be at least what a trader earns. A write that would break this is
//! refused unless it carries `allow_loss`, which only callers holding `commissions:allow_loss`
//! may set (checked by the route).

use crate::error::ApiError;
use axum::http::StatusCode;
use rust_decimal::Decimal;
use sqlx::PgConnection;

fn losing(method: &str, direction: &str, store: Decimal, trader: Decimal) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "commission_would_lose_money",
        format!(
            "a store commission of {store}% is below a trader commission of {trader}% for {method} {direction}; \
             the platform would lose money (an admin may allow it with allow_loss)"
        ),
    )
}

/// Checks a store commission against every trader commission of the same method and direction.
pub async fn check_store_commission(
    conn: &mut PgConnection,
    method: &str,
    direction: &str,
    store_percent: Decimal,
    allow_loss: bool,
) -> Result<(), ApiError> {
    if allow_loss {
        return Ok(());
    }
    let highest_trader: Option<Decimal> = sqlx::query_scalar(
        "SELECT max(percent) FROM trader_commissions WHERE payment_method = $1 AND direction = $2 AND NOT allow_loss",
    )
    .bind(method)
    .bind(direction)
    .fetch_one(conn)
    .await?;
    match highest_trader {
        Some(trader) if trader > store_percent => {
            Err(losing(method, direction, store_percent, trader))
        }
        _ => Ok(()),
    }
}

/// Checks a trader commission against every store commission of the same method and direction.
pub async fn check_trader_commission(
    conn: &mut PgConnection,
    method: &str,
    direction: &str,
    trader_percent: Decimal,
    allow_loss: bool,
) -> Result<(), ApiError> {
    if allow_loss {
        return Ok(());
    }
    let lowest_store: Option<Decimal> = sqlx::query_scalar(
        "SELECT min(percent) FROM store_commissions WHERE payment_method = $1 AND direction = $2 AND NOT allow_loss",
    )
    .bind(method)
    .bind(direction)
    .fetch_one(conn)
    .await?;
    match lowest_store {
        Some(store) if store < trader_percent => {
            Err(losing(method, direction, store, trader_percent))
        }
        _ => Ok(()),
    }
}
