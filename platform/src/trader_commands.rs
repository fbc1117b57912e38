//! Sending a command to the trader book, for every HTTP edge that sends one (the payment page,
//! the trader API). Building it is `jivapay_core::trader_commands`.

use crate::http::error::{ApiError, ApiResult};
use crate::kafka::RecordProducer;
use jivapay_schemas::records::TraderCommand;
use jivapay_schemas::topics::TRADER_COMMANDS;

/// Puts `command` on `trader.commands` (key = its trader, the owner of the decision);
/// 503 if the broker does not take it.
pub async fn send(producer: &RecordProducer, command: &TraderCommand) -> ApiResult<()> {
    producer
        .send(TRADER_COMMANDS, &command.trader_id.to_string(), command)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "trader.commands produce failed");
            ApiError::unavailable("try again in a moment")
        })?;
    Ok(())
}
