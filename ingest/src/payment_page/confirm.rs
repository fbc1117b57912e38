//! "I have paid": the customer's confirmation becomes a CLIENT_CONFIRMED command for the trader
//! book (key = trader). The command id is derived from the order, so pressing the button twice
//! is one confirmation. Only an assigned order within its payment window can be confirmed.

use super::view::load;
use crate::state::IngestState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Redirect;
use axum::Json;
use jivapay_platform::http::error::{ApiError, ApiResult};
use jivapay_schemas::records::{TraderCommand, TraderCommandKind};
use jivapay_schemas::topics::TRADER_COMMANDS;
use serde_json::{json, Value};

/// Namespace of command ids derived here (the same cause always gives the same id).
const COMMAND_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x7c1e_4e4a_2b0d_4f3b_9a61_3f0e_5d2c_8a17);

async fn confirm(state: &IngestState, token: &str) -> ApiResult<()> {
    let view = load(state, token).await?;
    let trader_id = match (view.can_confirm, view.trader_id) {
        (true, Some(trader)) => trader,
        _ => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "not_confirmable",
                format!("the payment is {} and cannot be confirmed now", view.status),
            ))
        }
    };
    let command = TraderCommand {
        command_id: uuid::Uuid::new_v5(
            &COMMAND_NAMESPACE,
            format!("{}:client_confirmed", view.order_id).as_bytes(),
        ),
        trader_id,
        order_id: Some(view.order_id),
        kind: TraderCommandKind::ClientConfirmed,
        amount: None,
        resolution: None,
        receipt_key: None,
        actor_id: None,
        actor_role: Some("customer".into()),
        reason: None,
        issued_at: chrono::Utc::now().timestamp_millis(),
    };
    state
        .producer
        .send(TRADER_COMMANDS, &trader_id.to_string(), &command)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "trader.commands produce failed");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "try again in a moment",
            )
        })?;
    Ok(())
}

pub async fn confirm_json(
    State(state): State<IngestState>,
    Path(token): Path<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    confirm(&state, &token).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"status": "confirmation_received"})),
    ))
}

/// The page's form: back to the page, which then shows the new state (or why not).
pub async fn confirm_form(
    State(state): State<IngestState>,
    Path(token): Path<String>,
) -> Result<Redirect, ApiError> {
    match confirm(&state, &token).await {
        Ok(()) => Ok(Redirect::to(&format!("/pay/{token}?confirmed=1"))),
        Err(e) if e.code == "not_confirmable" => Ok(Redirect::to(&format!("/pay/{token}"))),
        Err(e) => Err(e),
    }
}
