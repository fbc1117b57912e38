//! Fraud screening, keyed by store.
//!
//! - Input: `orders.requested` (key = store id) and `store.postings` (key = store id).
//! - Output: `orders.events` (key = order id): CREATED, REVIEW or REJECTED, each with sequence 1;
//!   and, for a CREATED order only, `orders.screened` (key = pool) to the router. CREATED
//!   carries `expires_at = requested_at + orders.payment_window_secs`, the expiry the gateway
//!   promised and the trader book's timer fires at.
//! - State (owned by the store's partition): the ids of recent orders (deduplication), the
//!   velocity windows of the store and of each of its customers (counts per bucket of time,
//!   see [`window`]), and the store's balance and
//!   holds per currency built from its postings (pay-outs and withdrawals will spend it).
//! - Guarantee: an order id is screened once while it is remembered (see [`state`] for the
//!   bound); REVIEW and REJECTED are final here; every output id is derived from the order id,
//!   so a replay produces the same records and downstream deduplicates them.

mod processor;
mod rules;
pub mod settings;
pub mod state;
#[cfg(test)]
mod tests;
pub mod window;

pub use processor::FraudProcessor;
pub use rules::Verdict;
pub use settings::FraudSettings;
pub use state::StoreBalance;
