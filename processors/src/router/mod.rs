//! Requisite selection, keyed by pool (`FIAT:method`).
//!
//! - Input: `orders.screened` (key = pool): new orders from fraud, and orders a trader book
//!   refused, sent back with that trader in `excluded_traders` and `attempt` + 1.
//! - Output: `orders.routed` (key = trader id) with the proposed requisite, the rate and the
//!   crypto amount; or, when no requisite is left, `orders.events` (key = order id) NO_REQUISITE
//!   (final, sequence 2) listing every requisite considered and why each was skipped.
//! - Master data: traders of the pool, rates, and the capacity the trader books publish
//!   (slightly stale: the router only proposes; the trader book decides with its own state and
//!   refuses when they disagree, so limits hold exactly).
//! - State (owned by the pool's partition): when each requisite of the pool was last
//!   proposed, for round-robin among traders of equal priority.
//! - Guarantee: for the same state, input and master data the same proposal; the NO_REQUISITE
//!   event id is derived from the order id, so a replay is recognised downstream.

pub mod eligibility;
mod processor;
#[cfg(test)]
mod tests;

pub use eligibility::{crypto_amount, SkipReason};
pub use processor::{RouterProcessor, MAX_ATTEMPTS};
