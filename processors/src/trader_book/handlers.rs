//! What each input does to one trader's state: routed orders, commands, postings and timers.
//! Each handler remembers the input's id first (so a replay is recognised, whatever the
//! outcome was) and then either applies it completely or changes nothing else.

use super::calendar::Window;
use super::eligibility;
use super::machine::{transition, OrderAction, OrderState};
use super::records::{self, Reason};
use super::settings::BookSettings;
use super::state::{OpenOrder, TraderState, Usage};
use super::transfers::{self, DepositMove};
use crate::core::{Emit, Millis};
use jivapay_domain::UsdtAmount;
use jivapay_schemas::records::{
    OrderRouted, OrderStatus, PostingKind, RequisiteUsage, Trader, TraderCapacity, TraderCommand,
    TraderCommandKind, TraderPosting,
};
use rust_decimal::Decimal;
use std::collections::BTreeSet;
use uuid::Uuid;

/// Fraud writes CREATED as sequence 1; the assignment is the order's second event.
pub const ASSIGNED_SEQUENCE: i32 = 2;

/// The currency of every trader deposit.
pub const DEPOSIT_CURRENCY: &str = "USDT";

/// What became of an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Applied; its records are emitted.
    Applied,
    /// Its id was applied before: nothing changes, nothing is emitted.
    Replay,
    /// Not applied, for the reason given (a routed order goes back to the router; a command or
    /// posting changes nothing). The id is remembered, so a replay gives the same answer.
    Refused(&'static str),
    /// Not an input of the trader book.
    NotForThisBook,
}

/// Everything a handler needs besides the trader's state.
pub struct Ctx<'a> {
    pub trader_id: Uuid,
    /// The trader in master data (`None`: unknown, every order is refused).
    pub trader: Option<&'a Trader>,
    pub settings: &'a BookSettings,
    pub window: Window,
    pub now: Millis,
    /// Timers due up to here fire: `now`, or earlier while commands accepted before `now`
    /// may still be on their way (`Processor::hold_timers_until`).
    pub timers_at: Millis,
}

/// `orders.routed`: accept (hold, count, ASSIGNED) or send back to the router.
pub fn on_routed(
    state: &mut TraderState,
    ctx: &Ctx,
    routed: &OrderRouted,
    out: &mut Vec<Emit>,
) -> Outcome {
    let order_id = routed.order_id.0;
    // A routed order read twice (the router sent its batch again) never reaches here: the
    // runtime drops it by origin (`runtime/origins.rs`). One still open is refused anyway.
    if state.orders.contains_key(&order_id) {
        return Outcome::Replay;
    }
    if let Err(refusal) = eligibility::check(ctx.trader, routed, state, ctx.window, ctx.now) {
        let back = records::screened_back(routed, refusal.code(), ctx.now);
        out.push(Emit::Screened(back));
        return Outcome::Refused(refusal.code());
    }

    state.holds.insert(order_id, routed.crypto_amount.value());
    state
        .usage
        .entry(routed.requisite_id.0)
        .or_insert_with(|| Usage::empty(ctx.window))
        .record(ctx.window, routed.fiat_amount.value(), ctx.now);
    let order = OpenOrder {
        state: OrderState::Assigned,
        sequence: ASSIGNED_SEQUENCE,
        // The expiry the gateway promised the merchant and fraud announced on CREATED, not a
        // window from here: every stage states the same instant, and a replay processed later
        // states it again. Records from before v2 carry none: the window runs from the request.
        deadline: Some(routed.expires_at.unwrap_or_else(|| {
            routed
                .requested_at
                .saturating_add(ctx.settings.payment_window_ms)
        })),
        requisite_id: routed.requisite_id.0,
        store_id: routed.store_id.0,
        external_order_id: routed.external_order_id.clone(),
        direction: routed.direction,
        fiat_amount: routed.fiat_amount.value(),
        fiat_currency: routed.fiat_currency.clone(),
        payment_method: routed.payment_method.clone(),
        rate: routed.rate,
        crypto_amount: routed.crypto_amount.value(),
    };
    out.push(Emit::Event(records::order_event(
        ctx.trader_id,
        order_id,
        &order,
        Some(OrderStatus::Created),
        Reason::none(),
        records::assignment_candidates(routed),
        ctx.now,
    )));
    state.orders.insert(order_id, order);
    Outcome::Applied
}

/// `trader.commands`: order commands through the state machine, deposits and withdrawals.
pub fn on_command(
    state: &mut TraderState,
    ctx: &Ctx,
    command: &TraderCommand,
    out: &mut Vec<Emit>,
) -> Outcome {
    if state.seen_commands.contains(&command.command_id) {
        return Outcome::Replay;
    }
    state.seen_commands.remember(command.command_id);
    let detail = command.reason.clone();
    let result = match command.kind {
        TraderCommandKind::ClientConfirmed => confirmed_in_time(state, command).and_then(|()| {
            order_command(
                state,
                ctx,
                command,
                OrderAction::ClientConfirmed,
                Reason::none(),
                out,
            )
        }),
        TraderCommandKind::TraderConfirmed => order_command(
            state,
            ctx,
            command,
            OrderAction::TraderConfirmed,
            Reason::none(),
            out,
        ),
        TraderCommandKind::ReportNonPayment => order_command(
            state,
            ctx,
            command,
            OrderAction::ReportNonPayment,
            Reason::code("trader_reported_non_payment", detail),
            out,
        ),
        TraderCommandKind::CancelOrder => order_command(
            state,
            ctx,
            command,
            OrderAction::Cancel,
            Reason::code("cancelled", detail),
            out,
        ),
        // The book owns the deposit, so it writes the ledger transfer of what it applied:
        // the ledger's balance of the trader then equals the book's (see [`transfers`]).
        TraderCommandKind::Deposit => positive(command.amount).and_then(|amount| {
            state.balance = state.balance.checked_add(amount).ok_or("amount_overflow")?;
            out.push(Emit::Transfer(transfers::deposit_transfer(
                ctx.trader_id,
                command.command_id,
                DepositMove::In,
                amount,
                ctx.now,
            )));
            Ok(())
        }),
        TraderCommandKind::Withdraw => positive(command.amount).and_then(|amount| {
            if amount > state.free_deposit() {
                return Err("insufficient_free_deposit");
            }
            state.balance = state.balance.checked_sub(amount).ok_or("amount_overflow")?;
            out.push(Emit::Transfer(transfers::deposit_transfer(
                ctx.trader_id,
                command.command_id,
                DepositMove::Out,
                amount,
                ctx.now,
            )));
            Ok(())
        }),
        // Dispute resolution belongs to a later stage of the product.
        TraderCommandKind::ResolveDispute => Err("not_supported"),
    };
    match result {
        Ok(()) => Outcome::Applied,
        Err(code) => Outcome::Refused(code),
    }
}

fn order_command(
    state: &mut TraderState,
    ctx: &Ctx,
    command: &TraderCommand,
    action: OrderAction,
    reason: Reason,
    out: &mut Vec<Emit>,
) -> Result<(), &'static str> {
    let order_id = command.order_id.ok_or("missing_order_id")?.0;
    // A deadline the command starts runs from when the edge accepted it.
    let at = command.issued_at.min(ctx.now);
    advance(state, ctx, order_id, action, reason, at, out)
}

/// The customer's confirmation is judged by when the payment page accepted it (principle 8):
/// one accepted before the payment window closed wins over its timer however late it is read
/// (the timer waits for it, `Processor::hold_timers_until`); one stamped at the deadline or
/// after it loses, however early it is read.
fn confirmed_in_time(state: &TraderState, command: &TraderCommand) -> Result<(), &'static str> {
    let order_id = command.order_id.ok_or("missing_order_id")?.0;
    let order = state.orders.get(&order_id).ok_or("unknown_order")?;
    match order.deadline {
        Some(deadline) if order.state == OrderState::Assigned && command.issued_at >= deadline => {
            Err("payment_window_elapsed")
        }
        _ => Ok(()),
    }
}

/// A positive amount. Its places are the type's and the topic's: 6, as in the ledger, so the
/// book's balance cannot part from the ledger's.
fn positive(amount: Option<UsdtAmount>) -> Result<Decimal, &'static str> {
    amount
        .map(|a| a.value())
        .filter(|a| *a > Decimal::ZERO)
        .ok_or("invalid_amount")
}

/// `trader.postings`: what the ledger did to the trader's deposit, mirrored by the book.
/// The book applies every posting in USDT: the ledger has already written the transfer, and
/// the book's balance must stay equal to the ledger's. A posting read twice (commissions sent
/// its batch again) never reaches here: the runtime drops it by origin.
pub fn on_posting(state: &mut TraderState, posting: &TraderPosting) -> Outcome {
    if posting.currency != DEPOSIT_CURRENCY {
        return Outcome::Refused("wrong_currency");
    }
    if posting.amount < Decimal::ZERO {
        return Outcome::Refused("invalid_amount");
    }
    let amount = posting.amount;
    let balance = match posting.kind {
        // The held amount becomes a debit: the order was paid to the trader.
        PostingKind::Capture => state.balance.checked_sub(amount),
        PostingKind::Release => match posting.order_id {
            Some(_) => Some(state.balance),
            None => return Outcome::Refused("missing_order_id"),
        },
        PostingKind::Credit => state.balance.checked_add(amount),
        PostingKind::Debit => state.balance.checked_sub(amount),
        // The book places its own holds when it accepts an order.
        PostingKind::Hold => return Outcome::Refused("not_supported"),
    };
    let Some(balance) = balance else {
        return Outcome::Refused("amount_overflow");
    };
    state.balance = balance;
    if matches!(posting.kind, PostingKind::Capture | PostingKind::Release) {
        if let Some(order_id) = posting.order_id {
            state.holds.remove(&order_id.0);
        }
    }
    Outcome::Applied
}

/// Fires the timers due at `ctx.timers_at`, earliest first (ties by order id); true when any
/// fired. Only the due timers are visited (the orders keep an index of them), not every open
/// order: this runs twice per input of the trader.
pub fn fire_due(state: &mut TraderState, ctx: &Ctx, out: &mut Vec<Emit>) -> bool {
    let due: Vec<(Uuid, OrderAction, &'static str)> = state
        .orders
        .due(ctx.timers_at)
        .filter_map(|(_, id)| match state.orders.get(&id)?.state {
            OrderState::Assigned => Some((
                id,
                OrderAction::PaymentWindowElapsed,
                "payment_window_expired",
            )),
            OrderState::ClientConfirmed => Some((
                id,
                OrderAction::ConfirmationTimedOut,
                "trader_confirmation_timeout",
            )),
            _ => None,
        })
        .collect();
    for (order_id, action, code) in &due {
        // Cannot fail: the order is open and `action` is legal in the state matched above.
        let _ = advance(
            state,
            ctx,
            *order_id,
            *action,
            Reason::code(code, None),
            ctx.now,
            out,
        );
    }
    !due.is_empty()
}

/// Moves an open order through the state machine (the action happened `at`) and writes the
/// event; a terminal order leaves the state (a cancelled or expired one gives its hold back).
#[allow(clippy::too_many_arguments)]
fn advance(
    state: &mut TraderState,
    ctx: &Ctx,
    order_id: Uuid,
    action: OrderAction,
    reason: Reason,
    at: Millis,
    out: &mut Vec<Emit>,
) -> Result<(), &'static str> {
    let from = state.orders.get(&order_id).ok_or("unknown_order")?.state;
    let next = transition(from, action).map_err(|_| "illegal_transition")?;
    let deadline = match next {
        OrderState::ClientConfirmed => {
            Some(at.saturating_add(ctx.settings.confirmation_timeout_ms))
        }
        _ => None,
    };
    state.orders.update(&order_id, |order| {
        order.state = next;
        order.sequence = order.sequence.saturating_add(1);
        order.deadline = deadline;
    });
    let order = state.orders.get(&order_id).ok_or("unknown_order")?;
    out.push(Emit::Event(records::order_event(
        ctx.trader_id,
        order_id,
        order,
        Some(from.status()),
        reason,
        Vec::new(),
        ctx.now,
    )));
    if next.is_terminal() {
        state.orders.remove(&order_id);
        if next.releases_hold() {
            state.holds.remove(&order_id);
        }
    }
    Ok(())
}

/// Free deposit and requisite usage: a capacity without its version and time.
pub type CapacityView = (Decimal, Vec<RequisiteUsage>);

/// What the router needs to know, without the version: compared before and after a batch
/// to decide whether a new capacity must be published.
pub fn capacity_view(
    state: &TraderState,
    requisites: &BTreeSet<Uuid>,
    window: Window,
) -> CapacityView {
    (
        state.free_deposit(),
        state.requisite_usage(requisites, window),
    )
}

/// A fresh capacity with the next version, from the view just computed.
pub fn publish_capacity(
    state: &mut TraderState,
    trader_id: Uuid,
    (free_deposit, requisites): CapacityView,
    window: Window,
    now: Millis,
) -> TraderCapacity {
    state.capacity_version = state.capacity_version.saturating_add(1);
    state.published_day = Some(window.day);
    TraderCapacity {
        trader_id: trader_id.into(),
        free_deposit: UsdtAmount::rounded(free_deposit),
        requisites,
        version: state.capacity_version,
        updated_at: now,
    }
}
