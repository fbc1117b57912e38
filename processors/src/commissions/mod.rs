//! Commissions, keyed by order: turns a completed pay-in into a balanced ledger transfer and
//! into the postings the books apply.
//!
//! - Input: `orders.events` (key = order id).
//! - Output: `ledger.transfers` (key = order id), `trader.postings` (key = trader id) and
//!   `store.postings` (key = store id).
//! - State (owned by the order's partition): from ASSIGNED to the order's terminal event, what
//!   the split needs — trader, requisite, rate, crypto amount C and the commission percentages
//!   of the store and the trader *at assignment* (a commission changed later does not change
//!   an order already assigned); then, for [`CLOSED_RETENTION_MS`], only a closed marker.
//! - Guarantee: each order is settled once: a COMPLETED replayed by an upstream stage (or an
//!   ASSIGNED + COMPLETED pair replayed after a crash of the trader book) finds the closed
//!   marker and produces nothing; and every id is derived from the order id, so a replay of
//!   commissions itself produces the same records, which the ledger and the books deduplicate.
//!
//! EXPIRED, CANCELLED, REJECTED, NO_REQUISITE or FAILED after ASSIGNED produce nothing: the
//! trader book released its own hold when it wrote that event, and no money moved in the
//! ledger (a hold is a book's reservation, not a ledger transfer). Pay-outs are settled by
//! their own issue; their events are ignored here.

mod processor;
pub mod split;
#[cfg(test)]
mod tests;

pub use processor::{CommissionsProcessor, CLOSED_RETENTION_MS};
pub use split::{pay_in_split, pay_out_hold, pay_out_split, PayInSplit, PayOutSplit};
