//! The invariants checked at the end of a run (those checked as it runs are in `observe.rs`,
//! `shadow.rs` and [`balances`]). Each has a name; a failure names it, says what broke it and
//! prints the seed (`report.rs`).
//!
//! **Books against the ledger — what is compared, and why only that.** The ledger here is
//! built from `ledger.transfers` as the ledger sink builds it (each transfer once, by id).
//! Holds are not journaled yet (ARCHITECTURE principle 5 wants them; another issue adds
//! them): a pay-in's transfer debits the trader's HOLD account by C although no transfer ever
//! moved C into it, so the ledger's trader HOLD is minus everything captured, and its
//! AVAILABLE is deposits and rewards. Neither equals anything the book keeps. What is right
//! today, and compared once the run is quiescent (every posting applied):
//!
//! - per trader: ledger AVAILABLE + HOLD (USDT) = the book's balance (deposits − withdrawals
//!   − captured + rewards);
//! - per store: ledger AVAILABLE (USDT) = the balance fraud keeps from the store postings;
//! - per trader: the deposits the ledger journaled = the deposits the admin issued (each
//!   applied exactly once).
//!
//! Not compared: the ledger's trader HOLD or AVAILABLE alone against the book's held or free
//! deposit (they will be equal once holds are journaled), the platform's fees (no independent
//! figure: they are what the split leaves).

use crate::group::Group;
use crate::observe::OrderView;
use crate::processors::index;
use crate::runtime::Status;
use crate::sim::Env;
use jivapay_domain::{OrderId, StoreId, TraderId};
use jivapay_processors::trader_book::TraderState;
use jivapay_processors::ProcessorKind;
use jivapay_schemas::records::{AccountKind, AccountOwnerKind, OrderStatus, TraderCommandKind};
use jivapay_schemas::topics::{ORDERS_REQUESTED, TRADER_COMMANDS};
use rust_decimal::Decimal;
use std::collections::HashMap;

pub type Finding = (&'static str, String);

/// Statuses an order may rest in once every timer has run: the terminal ones, and those that
/// wait for a person the simulation does not play (manual review, a dispute for support).
pub fn settled(status: OrderStatus) -> bool {
    status.is_terminal() || matches!(status, OrderStatus::Review | OrderStatus::Disputed)
}

/// The book state of `trader`, from whichever live instance owns its partition.
pub fn book<'a>(env: &Env, groups: &'a [Group], trader: TraderId) -> Option<&'a TraderState> {
    let key = env.registry.encode_key(&trader.to_string());
    let partition = crate::codec::partition_of(TRADER_COMMANDS, &key);
    groups[index(ProcessorKind::TraderBook)]
        .instances
        .iter()
        .filter(|i| i.status == Status::Alive)
        .find_map(|i| i.owned.get(&partition))
        .and_then(|o| o.processor.book())
        .and_then(|b| b.trader(trader))
}

/// No deposit and no free balance below zero.
pub fn balances(trader: TraderId, state: &TraderState) -> Result<(), Finding> {
    let (balance, held) = (state.balance(), state.held());
    if balance < Decimal::ZERO || balance - held < Decimal::ZERO {
        return Err((
            "no_negative_balance",
            format!(
                "trader {trader}: balance {balance}, held {held}, free {}",
                balance - held
            ),
        ));
    }
    Ok(())
}

/// Orders open in two books at once right now. One holder per order (issue 14, item 3)
/// allows it for a moment: commissions has the second trader's book cancel its copy. The end
/// of the run checks that every second copy was released ([`at_the_end`]).
pub fn open_twice(env: &Env, groups: &[Group]) -> u64 {
    let mut open: HashMap<uuid::Uuid, TraderId> = HashMap::new();
    let mut twice = 0;
    for trader in env.world.trader_ids() {
        let Some(state) = book(env, groups, trader) else {
            continue;
        };
        for (order, _) in state.open_orders() {
            twice += u64::from(open.insert(*order, trader).is_some());
        }
    }
    twice
}

/// Everything checked once the run is quiescent.
pub fn at_the_end(env: &Env, groups: &[Group]) -> Vec<Finding> {
    let mut out = Vec::new();
    for unconsumed in env.shadow.unconsumed(&env.topics) {
        out.push((
            "exactly_once_application",
            format!("at the end, {unconsumed}"),
        ));
    }
    out.extend(orders(env));
    out.extend(ledger(env, groups));
    out
}

/// Every accepted order has exactly one final state, its events form one chain, its store is
/// credited (and its pay-in settled) once if and only if it completed, and a confirmation
/// accepted before its deadline was not beaten by the timer.
fn orders(env: &Env) -> Vec<Finding> {
    let mut out = Vec::new();
    let empty = OrderView::default();
    for placed in &env.people.placed {
        let order = placed.order;
        let view = env.observer.orders.get(&order).unwrap_or(&empty);
        match view.status() {
            None => out.push((
                "one_final_state",
                format!(
                    "order {order} (requested at {}) has no event at all",
                    placed.requested_at
                ),
            )),
            Some(status) if !settled(status) => out.push((
                "one_final_state",
                format!(
                    "order {order} rests in {} once every timer has run",
                    status.as_str()
                ),
            )),
            Some(_) => {}
        }
        if let Err(finding) = chain(order, view) {
            out.push(finding);
        }
        // A second trader's copy is released (cancelled on commissions' word, or expired),
        // never completed, disputed or settled.
        if let Some(copy) = view
            .others
            .last()
            .filter(|e| !matches!(e.status, OrderStatus::Cancelled | OrderStatus::Expired))
        {
            out.push((
                "single_trader",
                format!(
                    "order {order} is held by trader {:?}, and trader {:?}'s copy of it ended {} (not released)",
                    view.holder,
                    copy.trader,
                    copy.status.as_str()
                ),
            ));
        }
        let completed = view.terminal() == Some(OrderStatus::Completed);
        let credits = env.observer.credits.get(&order).copied().unwrap_or(0);
        let settled = env.observer.settled.get(&order).copied().unwrap_or(0);
        let expected = u32::from(completed);
        if credits != expected || settled != expected {
            out.push((
                "store_credited_iff_completed",
                format!(
                    "order {order} ended {}: {credits} store credit(s), {settled} pay-in transfer(s)",
                    view.status().map_or("nowhere", |s| s.as_str())
                ),
            ));
        }
    }
    for accepted in &env.people.accepted {
        let Some(deadline) = accepted.deadline.filter(|d| accepted.issued_at < *d) else {
            continue;
        };
        let view = env.observer.orders.get(&accepted.order).unwrap_or(&empty);
        let end = view.terminal().or(view.status());
        let lost = match accepted.kind {
            TraderCommandKind::ClientConfirmed => end == Some(OrderStatus::Expired),
            TraderCommandKind::TraderConfirmed => end != Some(OrderStatus::Completed),
            _ => false,
        };
        if lost {
            let name = if accepted.kind == TraderCommandKind::ClientConfirmed {
                "accepted_confirmation_never_expires"
            } else {
                "accepted_trader_confirmation_wins"
            };
            out.push((
                name,
                format!(
                    "order {}: {:?} issued at {} (deadline {deadline}, {} ms before it) was answered 202, yet the order ended {}",
                    accepted.order,
                    accepted.kind,
                    accepted.issued_at,
                    deadline - accepted.issued_at,
                    end.map_or("nowhere", |s| s.as_str()),
                ),
            ));
        }
    }
    out
}

/// Sequences 1, 2, … without a gap, each event's previous status the one before it.
fn chain(order: OrderId, view: &OrderView) -> Result<(), Finding> {
    let mut previous: Option<OrderStatus> = None;
    for (n, (sequence, event)) in (1..).zip(&view.events) {
        if *sequence != n || event.previous != previous {
            return Err((
                "event_chain",
                format!(
                    "order {order}: event {:?} has sequence {sequence} and previous status {:?}; expected sequence {n} after {:?}",
                    event.kind, event.previous, previous
                ),
            ));
        }
        previous = Some(event.status);
    }
    Ok(())
}

/// The books against the ledger (see the module's notes), holds and deposits.
fn ledger(env: &Env, groups: &[Group]) -> Vec<Finding> {
    let mut out = Vec::new();
    let usdt = "USDT";
    for trader in env.world.trader_ids() {
        let Some(state) = book(env, groups, trader) else {
            if env.people.deposits_issued.contains_key(&trader) {
                out.push((
                    "books_equal_ledger",
                    format!("trader {trader} has no book state at the end"),
                ));
            }
            continue;
        };
        if let Err(finding) = balances(trader, state) {
            out.push(finding);
        }
        let ledger = env.observer.balance(
            AccountOwnerKind::Trader,
            Some(trader.0),
            AccountKind::Available,
            usdt,
        ) + env.observer.balance(
            AccountOwnerKind::Trader,
            Some(trader.0),
            AccountKind::Hold,
            usdt,
        );
        if ledger != state.balance() {
            out.push((
                "books_equal_ledger",
                format!(
                    "trader {trader}: book balance {}, ledger AVAILABLE + HOLD {ledger}",
                    state.balance()
                ),
            ));
        }
        let issued = env
            .people
            .deposits_issued
            .get(&trader)
            .copied()
            .unwrap_or_default();
        let journaled = env
            .observer
            .deposits
            .get(&trader)
            .copied()
            .unwrap_or_default();
        if issued != journaled {
            out.push((
                "deposits_applied_once",
                format!("trader {trader}: deposits issued {issued}, journaled {journaled}"),
            ));
        }
        let mut open_holds = Decimal::ZERO;
        for (order, open) in state.open_orders() {
            if open.state != jivapay_processors::trader_book::OrderState::Disputed {
                out.push((
                    "one_final_state",
                    format!(
                        "trader {trader}: order {order} is still open in the book as {:?}",
                        open.state
                    ),
                ));
            }
            open_holds += state.hold((*order).into()).unwrap_or_default();
        }
        if state.held() != open_holds {
            out.push((
                "no_stuck_hold",
                format!(
                    "trader {trader}: {} held, but the open (disputed) orders hold {open_holds}: a hold was neither released nor captured",
                    state.held()
                ),
            ));
        }
    }
    for store in env.world.store_ids() {
        let fraud = fraud_balance(env, groups, store);
        let ledger = env.observer.balance(
            AccountOwnerKind::Store,
            Some(store.0),
            AccountKind::Available,
            usdt,
        );
        match fraud {
            Some(balance) if balance == ledger => {}
            other => out.push((
                "books_equal_ledger",
                format!("store {store}: fraud's balance {other:?}, ledger AVAILABLE {ledger}"),
            )),
        }
    }
    out
}

/// The store's available USDT as fraud keeps it (`None`: no live owner).
fn fraud_balance(env: &Env, groups: &[Group], store: StoreId) -> Option<Decimal> {
    let key = env.registry.encode_key(&store.to_string());
    let partition = crate::codec::partition_of(ORDERS_REQUESTED, &key);
    groups[index(ProcessorKind::Fraud)]
        .instances
        .iter()
        .filter(|i| i.status == Status::Alive)
        .find_map(|i| i.owned.get(&partition))
        .and_then(|o| o.processor.fraud())
        .map(|f| f.store_balance(store, "USDT").available)
}
