//! Trader book: the single writer of each trader's deposit, holds, requisite usage and the
//! lifecycle of every order assigned to him (ARCHITECTURE §2, principles 1–3 and 8).
//!
//! - **Reads** `orders.routed`, `trader.commands`, `trader.postings` (all keyed by trader id,
//!   co-partitioned) and the `traders` and `settings` tables.
//! - **Writes** `orders.events` (ASSIGNED, CLIENT_CONFIRMED, COMPLETED, CANCELLED, EXPIRED,
//!   DISPUTED), `orders.screened` (a refused order goes back to its router with this trader
//!   excluded and `attempt + 1`), `ledger.transfers` (deposits and withdrawals, key = transfer
//!   id) and `trader.capacity` (whenever what the router sees of the trader changed).
//! - **State keys**: trader id (deposit, usage, recent ids) and `<trader>/order/<order>` per
//!   open order (the order and its hold, tombstoned on close), as Avro behind a format byte
//!   (`changelog.rs`, `changelog_codec.rs`; older JSON values are still read).
//! - **Guarantees**: an order is accepted only if every requisite limit and the free deposit
//!   (balance − holds) allow it, as the book knows them, so the deposit is never over-held
//!   and limits hold exactly; every routed order, command and posting id is applied at most
//!   once (replays are recognised); every event has a deterministic id
//!   (`derived_id([order id, kind])`) and a per-order sequence (ASSIGNED = 2); timers fire
//!   from the book's own state at the time the runtime gives, before any input of the trader,
//!   but only up to the watermark of its time markers (`Processor::hold_timers_until`): a
//!   command accepted before a deadline is applied before the deadline's timer fires.
//! - **Expiry**: the payment window runs from the order's `requested_at`, as the gateway
//!   promised the merchant and fraud announced on CREATED, so all three state the same
//!   `expires_at` and a replay states it again; the trader's confirmation timeout runs from
//!   the customer's confirmation (its `issued_at`), and a confirmation stamped at or after the
//!   payment window's deadline is refused.
//!
//! Money flows: the book places a hold at assignment and releases it itself on cancellation
//! or expiry; a completed order's hold stays until commissions sends CAPTURE. A hold is the
//! book's reservation, not a ledger transfer. Deposits and withdrawals move the book's balance
//! and are written to the ledger by the book (debit or credit of the trader's AVAILABLE
//! against the external SETTLEMENT account), so that the trader's AVAILABLE + HOLD in the
//! ledger always equals the book's balance once the postings of commissions are applied.

mod avro_value;
mod calendar;
mod changelog;
mod changelog_codec;
mod eligibility;
mod handlers;
mod holds;
mod machine;
mod open_orders;
mod processor;
mod records;
mod settings;
mod state;
mod transfers;

#[cfg(test)]
mod changelog_tests;
#[cfg(test)]
mod expiry_tests;
#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod ledger_proptests;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod watermark_tests;

pub use calendar::{Window, DEFAULT_TIME_ZONE};
pub use eligibility::Refusal;
pub use handlers::{Outcome, ASSIGNED_SEQUENCE, DEPOSIT_CURRENCY};
pub use machine::{transition, IllegalTransition, OrderAction, OrderState};
pub use processor::TraderBookProcessor;
pub use records::REFUSED_BY_TRADER_BOOK;
pub use settings::BookSettings;
pub use state::{OpenOrder, TraderState, Usage, RECENT_IDS};
pub use transfers::{deposit_transfer, transfer_id, DepositMove};
