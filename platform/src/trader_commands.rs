//! Sending a command to the trader book, for every HTTP edge that sends one (the payment page,
//! the trader API). Building it is `jivapay_core::trader_commands`.
//!
//! **An accepted command is in the log within [`COMMAND_ACCEPT_BOUND_MS`] of its `issued_at`**
//! (ARCHITECTURE principle 8): an edge answers 202 only when the broker acknowledged the command
//! within the bound, and 503 ("try again") otherwise. The trader book relies on it: a timer
//! fires only once the book has read back a time marker it wrote at least
//! [`TIMER_HOLD_MS`] after the deadline, so every command accepted before the deadline is
//! applied before the timer.

use crate::http::error::{ApiError, ApiResult};
use crate::kafka::RecordProducer;
use jivapay_schemas::records::TraderCommand;
use jivapay_schemas::topics::TRADER_COMMANDS;

/// Longest time from a command's `issued_at` to the broker's acknowledgement for an edge to
/// still answer 202.
pub const COMMAND_ACCEPT_BOUND_MS: i64 = 5_000;

/// Most two hosts' clocks may differ (the edge stamps `issued_at`, the book its markers).
pub const CLOCK_SKEW_BOUND_MS: i64 = 1_000;

/// How far behind a time marker's stamp a timer may fire: every command accepted before
/// `stamp − TIMER_HOLD_MS` precedes the marker in its partition.
pub const TIMER_HOLD_MS: i64 = COMMAND_ACCEPT_BOUND_MS + CLOCK_SKEW_BOUND_MS;

/// Puts `command` on `trader.commands` (key = its trader, the owner of the decision);
/// 503 if the broker does not take it, or takes it later than the bound allows.
pub async fn send(producer: &RecordProducer, command: &TraderCommand) -> ApiResult<()> {
    producer
        .send(TRADER_COMMANDS, &command.trader_id.to_string(), command)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "trader.commands produce failed");
            ApiError::unavailable("try again in a moment")
        })?;
    let acknowledged_at = chrono::Utc::now().timestamp_millis();
    if !within_bound(command.issued_at, acknowledged_at) {
        // In the log, but perhaps after a timer it raced: the book decides, and the caller
        // asks again (the command id is the same, so it counts once).
        tracing::warn!(
            command_id = %command.command_id,
            took_ms = acknowledged_at - command.issued_at,
            "trader command acknowledged later than the accept bound"
        );
        return Err(ApiError::unavailable("try again in a moment"));
    }
    Ok(())
}

/// Whether a command issued at `issued_at` and acknowledged at `acknowledged_at` may be
/// answered as accepted.
pub fn within_bound(issued_at: i64, acknowledged_at: i64) -> bool {
    acknowledged_at.saturating_sub(issued_at) <= COMMAND_ACCEPT_BOUND_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_acknowledged_past_the_bound_is_not_accepted() {
        assert!(within_bound(1_000, 1_000));
        assert!(within_bound(1_000, 1_000 + COMMAND_ACCEPT_BOUND_MS));
        assert!(!within_bound(1_000, 1_001 + COMMAND_ACCEPT_BOUND_MS));
    }
}
