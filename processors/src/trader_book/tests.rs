//! Unit tests of the trader book through its processor interface.

use super::fixtures::*;
use super::{Outcome, Refusal, TraderBookProcessor, ASSIGNED_SEQUENCE, REFUSED_BY_TRADER_BOOK};
use crate::core::{derived_id, Emit, Input, Processor};
use jivapay_schemas::records::{
    AccountKind, AccountOwnerKind, CandidateDecision, CandidateOutcome, Direction, LedgerTransfer,
    ModerationStatus, OrderEventKind, OrderRouted, OrderStatus, PostingKind,
    TraderCommandKind as K, TransferKind,
};
use rust_decimal::Decimal;
use std::collections::HashSet;
use uuid::Uuid;

pub(super) fn funded(amount: &str) -> Book {
    let mut b = Book::new();
    b.deposit(amount, T0 - SEC);
    b
}

fn route(b: &mut Book, r: OrderRouted, now: i64) -> (Vec<Emit>, Outcome) {
    b.explain(Input::Routed(r), now)
}

fn assert_assigned(out: &[Emit]) {
    assert_eq!(events(out).len(), 1, "{out:?}");
    assert_eq!(events(out)[0].kind, OrderEventKind::Assigned);
}

// ---------------------------------------------------------------------------------------
// Acceptance

#[test]
fn an_accepted_order_holds_the_crypto_amount_and_announces_the_assignment() {
    let mut b = funded("1000");
    let r = routed(1, "5000.00");
    let (out, outcome) = route(&mut b, r.clone(), T0);
    assert_eq!(outcome, Outcome::Applied);
    assert_eq!(out.len(), 2, "one event, one capacity: {out:?}");

    let Emit::Event(e) = &out[0] else {
        panic!("event first: {out:?}")
    };
    assert_eq!(e.kind, OrderEventKind::Assigned);
    assert_eq!(e.status, OrderStatus::Assigned);
    assert_eq!(e.previous_status, Some(OrderStatus::Created));
    assert_eq!(e.sequence, ASSIGNED_SEQUENCE);
    assert_eq!(
        e.event_id,
        derived_id(&[r.order_id.0.as_bytes(), b"assigned"])
    );
    assert_eq!(e.order_id, r.order_id);
    assert_eq!(e.store_id, STORE);
    assert_eq!(e.external_order_id, "ext-1");
    assert_eq!(e.direction, Direction::PayIn);
    assert_eq!(e.trader_id, Some(TRADER));
    assert_eq!(e.requisite_id, Some(requisite_id(1)));
    assert_eq!(e.fiat_amount, Some(d("5000")));
    assert_eq!(e.rate, Some(d("100")));
    assert_eq!(e.crypto_amount, Some(d("50")));
    assert_eq!(
        e.expires_at,
        Some(REQUESTED_AT + 900 * SEC),
        "the payment window runs from the request"
    );
    assert_eq!(e.occurred_at, T0);
    assert_eq!(e.candidates.len(), 1);
    assert_eq!(e.candidates[0].trader_id, TRADER);
    assert_eq!(e.candidates[0].outcome, CandidateOutcome::Chosen);

    let Emit::Capacity(c) = &out[1] else {
        panic!("capacity second: {out:?}")
    };
    assert_eq!(c.trader_id, TRADER);
    assert_eq!(c.free_deposit, d("950"));
    assert_eq!(c.updated_at, T0);
    let usage = c
        .requisites
        .iter()
        .find(|u| u.requisite_id == requisite_id(1))
        .expect("requisite 1 in capacity");
    assert_eq!((usage.daily_turnover, usage.daily_count), (d("5000"), 1));
    assert_eq!(
        (usage.monthly_turnover, usage.monthly_count),
        (d("5000"), 1)
    );
    assert_eq!(usage.last_order_at, Some(T0));
    assert_eq!(usage.open_amounts, vec![d("5000")]);
    assert!(
        c.requisites
            .iter()
            .any(|u| u.requisite_id == requisite_id(2)),
        "every requisite of the trader is published"
    );

    let s = b.trader_state().expect("state");
    assert_eq!(s.hold(r.order_id), Some(d("50")));
    assert_eq!(
        (s.balance(), s.held(), s.free_deposit()),
        (d("1000"), d("50"), d("950"))
    );
}

#[test]
fn the_assignment_lists_the_traders_refused_before() {
    let mut b = funded("1000");
    let mut r = routed(1, "500");
    let other = TraderId(Uuid::from_u128(0x999));
    r.excluded_traders = vec![other];
    let (out, _) = route(&mut b, r, T0);
    let e = events(&out)[0];
    assert_eq!(e.candidates.len(), 2);
    assert_eq!(e.candidates[0].trader_id, other);
    assert_eq!(e.candidates[0].outcome, CandidateOutcome::Refused);
    assert_eq!(
        e.candidates[0].reason_code.as_deref(),
        Some(REFUSED_BY_TRADER_BOOK)
    );
    assert_eq!(e.candidates[1].outcome, CandidateOutcome::Chosen);
}

#[test]
fn the_assignment_states_the_router_candidates_and_the_promised_expiry() {
    let mut b = funded("1000");
    let mut r = routed(1, "500");
    // The gateway promised 5 minutes; the book's window setting does not override it.
    r.expires_at = Some(REQUESTED_AT + 300 * SEC);
    r.candidates = vec![
        CandidateDecision {
            trader_id: TraderId(Uuid::from_u128(0x999)),
            requisite_id: Some(RequisiteId(Uuid::from_u128(0x998))),
            outcome: CandidateOutcome::Skipped,
            reason_code: Some("min_interval".into()),
        },
        CandidateDecision {
            trader_id: TRADER,
            requisite_id: Some(r.requisite_id),
            outcome: CandidateOutcome::Chosen,
            reason_code: None,
        },
    ];
    let (out, _) = route(&mut b, r.clone(), T0);
    let e = events(&out)[0];
    assert_eq!(e.candidates, r.candidates);
    assert_eq!(e.expires_at, Some(REQUESTED_AT + 300 * SEC));
    // The timer fires at that instant, not at the end of the configured window.
    assert!(b.tick(REQUESTED_AT + 300 * SEC - 1).is_empty());
    let out = b.tick(REQUESTED_AT + 300 * SEC);
    assert_eq!(events(&out)[0].kind, OrderEventKind::Expired, "{out:?}");
}

#[test]
fn capacity_versions_increase() {
    let mut b = funded("1000");
    let (out1, _) = route(&mut b, routed(1, "500"), T0);
    let (out2, _) = route(&mut b, routed(2, "600"), T0);
    let v1 = capacities(&out1)[0].version;
    let v2 = capacities(&out2)[0].version;
    assert!(v2 > v1, "{v1} then {v2}");
}

// ---------------------------------------------------------------------------------------
// Refusals: every eligibility rule can refuse

type Setup = fn(&mut Book) -> OrderRouted;

/// One scenario per rule: prepares the book (funded with 1000 USDT, order 10 possibly
/// accepted at T0) and returns the order routed at T0 + 30 s that the rule must refuse.
fn refusal_cases() -> Vec<(Refusal, Setup)> {
    vec![
        (Refusal::InvalidAmount, |_| {
            let mut r = routed(1, "500");
            r.fiat_amount = d("0");
            r
        }),
        (Refusal::TraderUnknown, |_| {
            let mut r = routed(1, "500");
            r.trader_id = TraderId(Uuid::from_u128(0x101));
            r
        }),
        (Refusal::TraderInactive, |b| {
            b.edit_trader(|t| t.is_active = false);
            routed(1, "500")
        }),
        (Refusal::TraderNotInWork, |b| {
            b.edit_trader(|t| t.is_in_work = false);
            routed(1, "500")
        }),
        (Refusal::TrafficDisabledByTeamlead, |b| {
            b.edit_trader(|t| t.is_traffic_enabled_by_teamlead = false);
            routed(1, "500")
        }),
        (Refusal::RequisiteUnknown, |_| {
            on_requisite(routed(1, "500"), 9)
        }),
        (Refusal::RequisiteNotApproved, |b| {
            b.edit_requisite(1, |r| r.moderation_status = ModerationStatus::Pending);
            routed(1, "500")
        }),
        (Refusal::RequisiteInactive, |b| {
            b.edit_requisite(1, |r| r.is_active = false);
            routed(1, "500")
        }),
        (Refusal::DirectionNotSupported, |_| {
            let mut r = routed(1, "500");
            r.direction = Direction::PayOut;
            r
        }),
        (Refusal::PayInDisabled, |b| {
            b.edit_requisite(1, |r| r.pay_in_enabled = false);
            routed(1, "500")
        }),
        (Refusal::RequisiteNotInPool, |b| {
            b.edit_requisite(1, |r| r.payment_method = "card".into());
            routed(1, "500")
        }),
        (Refusal::AmountBelowMin, |_| routed(1, "99.99")),
        (Refusal::AmountAboveMax, |_| routed(1, "100000.01")),
        (Refusal::DailyTurnoverExceeded, |b| {
            b.edit_requisite(1, |r| r.daily_turnover_limit = Some(d("1000")));
            accept(b, routed(10, "600"));
            routed(1, "400.01")
        }),
        (Refusal::MonthlyTurnoverExceeded, |b| {
            b.edit_requisite(1, |r| r.monthly_turnover_limit = Some(d("1000")));
            accept(b, routed(10, "600"));
            routed(1, "400.01")
        }),
        (Refusal::DailyCountExceeded, |b| {
            b.edit_requisite(1, |r| r.daily_count_limit = Some(1));
            accept(b, routed(10, "600"));
            routed(1, "500")
        }),
        (Refusal::MonthlyCountExceeded, |b| {
            b.edit_requisite(1, |r| r.monthly_count_limit = Some(1));
            accept(b, routed(10, "600"));
            routed(1, "500")
        }),
        (Refusal::MinIntervalNotElapsed, |b| {
            b.edit_requisite(1, |r| r.min_interval_secs = 31);
            accept(b, routed(10, "600"));
            routed(1, "500")
        }),
        (Refusal::DuplicateOpenAmount, |b| {
            accept(b, routed(10, "500"));
            routed(1, "500.00")
        }),
        (Refusal::InsufficientDeposit, |_| {
            let mut r = routed(1, "500");
            r.crypto_amount = d("1000.000001");
            r
        }),
    ]
}

pub(super) fn accept(b: &mut Book, r: OrderRouted) {
    let (out, outcome) = route(b, r, T0);
    assert_eq!(outcome, Outcome::Applied, "{out:?}");
}

#[test]
fn every_rule_refuses_with_its_code_and_sends_the_order_back() {
    let cases = refusal_cases();
    let covered: HashSet<Refusal> = cases.iter().map(|(r, _)| *r).collect();
    assert_eq!(covered.len(), Refusal::ALL.len(), "a case for every rule");

    for (refusal, setup) in cases {
        let mut b = funded("1000");
        let r = setup(&mut b);
        let free_before = b.free();
        let (out, outcome) = route(&mut b, r.clone(), T0 + 30 * SEC);
        assert_eq!(outcome, Outcome::Refused(refusal.code()), "{refusal:?}");
        assert_eq!(out.len(), 1, "{refusal:?}: only the refusal back: {out:?}");
        let s = screened(&out)[0];
        assert_eq!(s.order_id, r.order_id);
        assert_eq!(s.pool, POOL);
        assert_eq!(s.fiat_amount, r.fiat_amount);
        assert_eq!(s.attempt, r.attempt + 1);
        assert!(s.excluded_traders.contains(&r.trader_id), "{refusal:?}");
        let last = s.refusals.last().expect("the refusal travels back");
        assert_eq!(
            (last.trader_id, last.requisite_id, last.outcome),
            (r.trader_id, Some(r.requisite_id), CandidateOutcome::Refused)
        );
        assert_eq!(last.reason_code.as_deref(), Some(refusal.code()));
        assert_eq!(s.expires_at, r.expires_at);
        assert_eq!(s.screened_at, T0 + 30 * SEC);
        assert_eq!(s.requested_at, r.requested_at);
        let state = b
            .book
            .trader(r.trader_id)
            .expect("the refusal is remembered");
        assert_eq!(state.hold(r.order_id), None, "{refusal:?}: no hold");
        assert!(state.open_order(r.order_id).is_none());
        assert_eq!(b.free(), free_before, "{refusal:?}");
    }
}

#[test]
fn each_rule_lets_the_order_through_once_the_condition_is_gone() {
    let mut b = funded("1000");
    b.edit_requisite(1, |r| {
        r.daily_turnover_limit = Some(d("1000"));
        r.min_interval_secs = 60;
    });
    accept(&mut b, routed(10, "600"));
    // Exactly at the limit is allowed; one second short of the interval is not.
    let (_, o) = route(&mut b, routed(1, "400"), T0 + 59 * SEC);
    assert_eq!(o, Outcome::Refused("min_interval_not_elapsed"));
    let (out, o) = route(&mut b, routed(2, "400"), T0 + 60 * SEC);
    assert_eq!(o, Outcome::Applied);
    assert_assigned(&out);
    // The same amount on another requisite is unambiguous.
    b.edit_requisite(2, |r| r.min_interval_secs = 0);
    let (_, o) = route(&mut b, on_requisite(routed(3, "600"), 2), T0 + 60 * SEC);
    assert_eq!(o, Outcome::Applied);
}

#[test]
fn the_free_deposit_is_spent_exactly_and_never_overdrawn() {
    let mut b = funded("100");
    accept(&mut b, routed(1, "6000")); // 60 USDT
    let (_, o) = route(&mut b, routed(2, "4000.01"), T0);
    assert_eq!(o, Outcome::Refused("insufficient_deposit"));
    let (_, o) = route(&mut b, routed(3, "4000"), T0);
    assert_eq!(o, Outcome::Applied);
    assert_eq!(b.free(), d("0"));
    let (_, o) = route(&mut b, routed(4, "100"), T0);
    assert_eq!(o, Outcome::Refused("insufficient_deposit"));
}

#[test]
fn an_open_amount_is_free_again_when_its_order_completes() {
    let mut b = funded("1000");
    accept(&mut b, routed(1, "500"));
    b.apply(order_command(1, K::TraderConfirmed, 1), T0 + SEC);
    let (_, o) = route(&mut b, routed(2, "500"), T0 + 2 * SEC);
    assert_eq!(o, Outcome::Applied);
}

// ---------------------------------------------------------------------------------------
// Calendar windows

/// `r` as requested ten seconds before `now`, so its payment window is still open then.
fn fresh(r: OrderRouted, now: i64) -> OrderRouted {
    requested(r, now - 10 * SEC)
}

/// 2024-03-15T20:59:59Z, one second before midnight in Moscow.
const LATE_EVENING_MSK: i64 = 1_710_536_399_000;

#[test]
fn daily_turnover_resets_at_midnight_in_moscow_by_default() {
    let mut b = funded("1000");
    b.edit_requisite(1, |r| r.daily_turnover_limit = Some(d("1000")));
    let (_, o) = route(
        &mut b,
        fresh(routed(1, "1000"), LATE_EVENING_MSK),
        LATE_EVENING_MSK,
    );
    assert_eq!(o, Outcome::Applied);
    let (_, o) = route(
        &mut b,
        fresh(routed(2, "999"), LATE_EVENING_MSK + 500),
        LATE_EVENING_MSK + 500,
    );
    assert_eq!(o, Outcome::Refused("daily_turnover_exceeded"));
    let (_, o) = route(
        &mut b,
        fresh(routed(3, "999"), LATE_EVENING_MSK + SEC),
        LATE_EVENING_MSK + SEC,
    );
    assert_eq!(o, Outcome::Applied, "a new day in Moscow");
}

#[test]
fn the_time_zone_setting_moves_midnight() {
    let mut b = funded("1000");
    b.set("limits.time_zone", "\"UTC\"");
    b.edit_requisite(1, |r| r.daily_count_limit = Some(1));
    let (_, o) = route(
        &mut b,
        fresh(routed(1, "1000"), LATE_EVENING_MSK),
        LATE_EVENING_MSK,
    );
    assert_eq!(o, Outcome::Applied);
    let (_, o) = route(
        &mut b,
        fresh(routed(2, "999"), LATE_EVENING_MSK + SEC),
        LATE_EVENING_MSK + SEC,
    );
    assert_eq!(
        o,
        Outcome::Refused("daily_count_exceeded"),
        "still the same UTC day"
    );
}

#[test]
fn monthly_counters_reset_on_the_first_of_the_month_in_moscow() {
    // 2024-03-31T21:00:00Z = 2024-04-01T00:00 in Moscow.
    let april: i64 = 1_711_918_800_000;
    let mut b = funded("1000");
    b.edit_requisite(1, |r| {
        r.monthly_count_limit = Some(1);
        r.monthly_turnover_limit = Some(d("5000"));
    });
    let (_, o) = route(&mut b, fresh(routed(1, "1000"), april - SEC), april - SEC);
    assert_eq!(o, Outcome::Applied);
    let (_, o) = route(&mut b, fresh(routed(2, "999"), april - 1), april - 1);
    assert_eq!(o, Outcome::Refused("monthly_count_exceeded"));
    let (_, o) = route(&mut b, fresh(routed(3, "5000"), april), april);
    assert_eq!(o, Outcome::Applied, "April in Moscow");
    let (_, o) = route(&mut b, fresh(routed(4, "998"), april + SEC), april + SEC);
    assert_eq!(o, Outcome::Refused("monthly_turnover_exceeded"));
}

#[test]
fn a_new_day_republishes_the_capacity_once() {
    let mut b = funded("1000");
    b.set("orders.payment_window_secs", "86400");
    let (_, o) = route(
        &mut b,
        fresh(routed(1, "1000"), LATE_EVENING_MSK),
        LATE_EVENING_MSK,
    );
    assert_eq!(o, Outcome::Applied);
    assert!(b.tick(LATE_EVENING_MSK + 500).is_empty(), "same day");
    let out = b.tick(LATE_EVENING_MSK + SEC);
    let caps = capacities(&out);
    assert_eq!(caps.len(), 1, "{out:?}");
    let usage = &caps[0].requisites[0];
    assert_eq!((usage.daily_count, usage.monthly_count), (0, 1));
    assert_eq!(usage.open_amounts, vec![d("1000")]);
    assert!(b.tick(LATE_EVENING_MSK + 2 * SEC).is_empty(), "only once");
}

// ---------------------------------------------------------------------------------------
// Lifecycle

#[test]
fn a_paid_order_completes_and_its_hold_waits_for_the_capture() {
    let mut b = funded("1000");
    accept(&mut b, routed(1, "5000"));

    let out = b.apply(order_command(1, K::ClientConfirmed, 1), T0 + 60 * SEC);
    assert_eq!(out.len(), 1, "nothing for the router changed: {out:?}");
    let e = events(&out)[0];
    assert_eq!(e.kind, OrderEventKind::ClientConfirmed);
    assert_eq!(e.previous_status, Some(OrderStatus::Assigned));
    assert_eq!(e.sequence, 3);
    // The trader's 30 minutes run from when the page accepted the confirmation (`issued_at`),
    // not from when the book read it.
    assert_eq!(e.expires_at, Some(T0 + 1800 * SEC));
    assert_eq!(
        e.event_id,
        derived_id(&[order_id(1).0.as_bytes(), b"client_confirmed"])
    );

    let out = b.apply(order_command(2, K::TraderConfirmed, 1), T0 + 120 * SEC);
    let e = events(&out)[0];
    assert_eq!(e.kind, OrderEventKind::Completed);
    assert_eq!(e.status, OrderStatus::Completed);
    assert_eq!(e.previous_status, Some(OrderStatus::ClientConfirmed));
    assert_eq!(e.sequence, 4);
    assert_eq!(e.expires_at, None);
    assert_eq!(e.crypto_amount, Some(d("50")));
    let cap = capacities(&out)[0];
    assert!(cap.requisites.iter().all(|u| u.open_amounts.is_empty()));
    assert_eq!(
        cap.free_deposit,
        d("950"),
        "the hold stays until the capture"
    );

    let s = b.trader_state().expect("state");
    assert!(
        s.open_order(order_id(1)).is_none(),
        "closed orders leave the state"
    );
    assert_eq!(s.hold(order_id(1)), Some(d("50")));
    assert_eq!(
        s.usage_at(requisite_id(1), super::Window::at(T0, "Europe/Moscow"))
            .daily_count,
        1,
        "usage stays"
    );

    let capture = posting(1, PostingKind::Capture, Some(order_id(1)), "50");
    let out = b.apply(Input::TraderPosting(capture), T0 + 130 * SEC);
    assert!(out.is_empty(), "free deposit unchanged: {out:?}");
    let s = b.trader_state().expect("state");
    assert_eq!(
        (s.balance(), s.held(), s.free_deposit()),
        (d("950"), d("0"), d("950"))
    );

    let reward = posting(2, PostingKind::Credit, Some(order_id(1)), "0.5");
    let out = b.apply(Input::TraderPosting(reward), T0 + 130 * SEC);
    assert_eq!(capacities(&out)[0].free_deposit, d("950.5"));
}

#[test]
fn the_trader_may_confirm_without_the_customer() {
    let mut b = funded("1000");
    accept(&mut b, routed(1, "5000"));
    let out = b.apply(order_command(1, K::TraderConfirmed, 1), T0 + SEC);
    let e = events(&out)[0];
    assert_eq!(
        (e.kind, e.previous_status, e.sequence),
        (OrderEventKind::Completed, Some(OrderStatus::Assigned), 3)
    );
}

#[test]
fn cancelling_releases_the_hold_but_only_before_payment_is_claimed() {
    let mut b = funded("1000");
    accept(&mut b, routed(1, "5000"));
    let mut cancel = super::fixtures::command(1, K::CancelOrder, Some(order_id(1)), None);
    cancel.reason = Some("customer gave up".into());
    let out = b.apply(Input::Command(cancel), T0 + SEC);
    let e = events(&out)[0];
    assert_eq!((e.kind, e.sequence), (OrderEventKind::Cancelled, 3));
    assert_eq!(e.reason_code.as_deref(), Some("cancelled"));
    assert_eq!(e.reason_detail.as_deref(), Some("customer gave up"));
    assert_eq!(capacities(&out)[0].free_deposit, d("1000"));
    assert_eq!(b.trader_state().map(|s| s.held()), Some(d("0")));

    let (out, o) = b.explain(order_command(2, K::CancelOrder, 1), T0 + 2 * SEC);
    assert_eq!((out.len(), o), (0, Outcome::Refused("unknown_order")));

    accept(&mut b, routed(2, "600"));
    b.apply(order_command(3, K::ClientConfirmed, 2), T0 + 3 * SEC);
    let before = b.trader_state().cloned();
    let (out, o) = b.explain(order_command(4, K::CancelOrder, 2), T0 + 4 * SEC);
    assert_eq!((out.len(), o), (0, Outcome::Refused("illegal_transition")));
    let after = b.trader_state().cloned();
    assert_eq!(
        before.map(|s| (s.orders, s.holds, s.balance)),
        after.map(|s| (s.orders, s.holds, s.balance)),
        "an illegal command changes nothing"
    );
}

#[test]
fn non_payment_opens_a_dispute_and_releases_nothing() {
    let mut b = funded("1000");
    accept(&mut b, routed(1, "5000"));
    let (out, o) = b.explain(order_command(1, K::ReportNonPayment, 1), T0 + SEC);
    assert_eq!(
        (out.len(), o),
        (0, Outcome::Refused("illegal_transition")),
        "no dispute before the customer claims payment"
    );
    b.apply(order_command(2, K::ClientConfirmed, 1), T0 + 2 * SEC);
    let mut report = super::fixtures::command(3, K::ReportNonPayment, Some(order_id(1)), None);
    report.reason = Some("nothing on the statement".into());
    let out = b.apply(Input::Command(report), T0 + 3 * SEC);
    assert_eq!(out.len(), 1, "no capacity change: {out:?}");
    let e = events(&out)[0];
    assert_eq!(
        (e.kind, e.status),
        (OrderEventKind::Disputed, OrderStatus::Disputed)
    );
    assert_eq!(e.previous_status, Some(OrderStatus::ClientConfirmed));
    assert_eq!(
        e.reason_code.as_deref(),
        Some("trader_reported_non_payment")
    );
    assert_eq!(e.reason_detail.as_deref(), Some("nothing on the statement"));
    let s = b.trader_state().expect("state");
    assert_eq!(s.hold(order_id(1)), Some(d("50")));
    assert_eq!(
        s.open_order(order_id(1)).map(|o| o.state),
        Some(super::OrderState::Disputed)
    );

    // A disputed order accepts no command here and has no timer.
    let (_, o) = b.explain(order_command(4, K::TraderConfirmed, 1), T0 + 4 * SEC);
    assert_eq!(o, Outcome::Refused("illegal_transition"));
    // Its amount stays taken on the requisite: the payment may still turn up.
    let (_, o) = route(&mut b, routed(2, "5000"), T0 + 5 * SEC);
    assert_eq!(o, Outcome::Refused("duplicate_open_amount"));
    let later = b.tick(T0 + 10 * 86_400 * SEC);
    assert!(events(&later).is_empty(), "{later:?}");
    assert_eq!(b.trader_state().map(|s| s.held()), Some(d("50")));
}

#[test]
fn commands_without_an_order_or_for_an_unknown_one_are_refused() {
    let mut b = funded("1000");
    let c = super::fixtures::command(1, K::ClientConfirmed, None, None);
    let (out, o) = b.explain(Input::Command(c), T0);
    assert_eq!((out.len(), o), (0, Outcome::Refused("missing_order_id")));
    let (out, o) = b.explain(order_command(2, K::TraderConfirmed, 77), T0);
    assert_eq!((out.len(), o), (0, Outcome::Refused("unknown_order")));
    let c = super::fixtures::command(3, K::ResolveDispute, Some(order_id(1)), None);
    let (_, o) = b.explain(Input::Command(c), T0);
    assert_eq!(o, Outcome::Refused("not_supported"));
}

// ---------------------------------------------------------------------------------------
// Timers

#[test]
fn an_unconfirmed_order_expires_when_the_payment_window_passes() {
    let mut b = funded("1000");
    accept(&mut b, routed(1, "5000"));
    let expiry = REQUESTED_AT + 900 * SEC;
    assert!(b.tick(expiry - 1).is_empty());
    let out = b.tick(expiry);
    let e = events(&out)[0];
    assert_eq!(
        (e.kind, e.status),
        (OrderEventKind::Expired, OrderStatus::Expired)
    );
    assert_eq!(e.previous_status, Some(OrderStatus::Assigned));
    assert_eq!(e.sequence, 3);
    assert_eq!(e.reason_code.as_deref(), Some("payment_window_expired"));
    assert_eq!(e.occurred_at, expiry);
    assert_eq!(capacities(&out)[0].free_deposit, d("1000"));
    assert!(b.tick(T0 + 2000 * SEC).is_empty(), "fires once");
    let s = b.trader_state().expect("state");
    assert!(s.open_order(order_id(1)).is_none() && s.held().is_zero());
}

#[test]
fn the_payment_window_setting_is_used() {
    let mut b = funded("1000");
    b.set("orders.payment_window_secs", "120");
    let (out, _) = route(&mut b, routed(1, "5000"), T0);
    assert_eq!(events(&out)[0].expires_at, Some(REQUESTED_AT + 120 * SEC));
    assert!(b.tick(REQUESTED_AT + 120 * SEC - 1).is_empty());
    assert_eq!(events(&b.tick(REQUESTED_AT + 120 * SEC)).len(), 1);
}

#[test]
fn an_unanswered_client_confirmation_becomes_a_dispute() {
    let mut b = funded("1000");
    accept(&mut b, routed(1, "5000"));
    b.apply(
        order_command_at(1, K::ClientConfirmed, 1, T0 + 10 * SEC),
        T0 + 10 * SEC,
    );
    // The payment window no longer applies once the customer confirmed.
    assert!(b.tick(T0 + 900 * SEC).is_empty());
    assert!(b.tick(T0 + 10 * SEC + 1800 * SEC - 1).is_empty());
    let out = b.tick(T0 + 10 * SEC + 1800 * SEC);
    assert_eq!(out.len(), 1, "{out:?}");
    let e = events(&out)[0];
    assert_eq!((e.kind, e.sequence), (OrderEventKind::Disputed, 4));
    assert_eq!(e.previous_status, Some(OrderStatus::ClientConfirmed));
    assert_eq!(
        e.reason_code.as_deref(),
        Some("trader_confirmation_timeout")
    );
    assert_eq!(b.trader_state().map(|s| s.held()), Some(d("50")));
}

#[test]
fn a_late_command_finds_the_order_already_expired() {
    let mut b = funded("1000");
    accept(&mut b, routed(1, "5000"));
    let (out, o) = b.explain(order_command(1, K::ClientConfirmed, 1), T0 + 900 * SEC);
    assert_eq!(o, Outcome::Refused("unknown_order"));
    assert_eq!(
        events(&out)[0].kind,
        OrderEventKind::Expired,
        "timers first: {out:?}"
    );
    assert_eq!(capacities(&out).len(), 1);
}

// ---------------------------------------------------------------------------------------
// Deposits and postings

fn transfers(out: &[Emit]) -> Vec<&LedgerTransfer> {
    out.iter()
        .filter_map(|e| match e {
            Emit::Transfer(t) => Some(t),
            _ => None,
        })
        .collect()
}

/// (owner kind, owner id, account kind, amount) of each entry, in order.
fn legs(t: &LedgerTransfer) -> Vec<(AccountOwnerKind, Option<Uuid>, AccountKind, Decimal)> {
    t.entries
        .iter()
        .map(|e| {
            assert_eq!(e.currency, "USDT");
            (e.owner_kind, e.owner_id, e.account_kind, e.amount)
        })
        .collect()
}

#[test]
fn a_deposit_moves_the_balance_and_writes_its_ledger_transfer() {
    let mut b = Book::new();
    let c = super::fixtures::command(1, K::Deposit, None, Some(d("100.123456")));
    let (out, o) = b.explain(Input::Command(c.clone()), T0);
    assert_eq!(o, Outcome::Applied);
    assert_eq!(out.len(), 2, "the transfer, then the capacity: {out:?}");
    let Emit::Transfer(t) = &out[0] else {
        panic!("transfer first: {out:?}")
    };
    assert_eq!(
        t.transfer_id,
        derived_id(&[c.command_id.as_bytes(), b"deposit"])
    );
    assert_eq!(t.kind, TransferKind::Deposit);
    assert_eq!(t.order_id, None);
    assert_eq!(t.description.as_deref(), Some("deposit"));
    assert_eq!(t.created_at, T0);
    assert_eq!(
        legs(t),
        vec![
            (
                AccountOwnerKind::External,
                None,
                AccountKind::Settlement,
                d("-100.123456")
            ),
            (
                AccountOwnerKind::Trader,
                Some(TRADER.0),
                AccountKind::Available,
                d("100.123456")
            ),
        ]
    );
    assert!(t.is_balanced());
    assert_eq!(out[0].key(), t.transfer_id.to_string());
    assert_eq!(capacities(&out)[0].free_deposit, d("100.123456"));

    let (out, o) = b.explain(Input::Command(c), T0 + SEC);
    assert_eq!(
        (out.len(), o),
        (0, Outcome::Replay),
        "a replay writes nothing"
    );

    // Zero, negative or missing: refused, nothing written. (An amount finer than the ledger's
    // 6 places is no `UsdtAmount` and has no bytes on the topic.)
    for (n, amount) in [(2, Some(d("0"))), (3, Some(d("-1"))), (4, None)] {
        let c = super::fixtures::command(n, K::Deposit, None, amount);
        let (out, o) = b.explain(Input::Command(c), T0);
        assert_eq!((out.len(), o), (0, Outcome::Refused("invalid_amount")));
    }
    assert_eq!(b.trader_state().map(|s| s.balance()), Some(d("100.123456")));
    // Trailing zeros are not places: 1.5000000 is 1.5.
    let c = super::fixtures::command(6, K::Deposit, None, Some(d("1.5000000")));
    let (_, o) = b.explain(Input::Command(c), T0);
    assert_eq!(o, Outcome::Applied);
}

#[test]
fn a_withdrawal_of_free_deposit_writes_the_mirror_transfer_and_a_refused_one_nothing() {
    let mut b = Book::new();
    b.deposit("100", T0);
    accept(&mut b, routed(1, "4000")); // holds 40
    let c = super::fixtures::command(5, K::Withdraw, None, Some(d("60.000001")));
    let (out, o) = b.explain(Input::Command(c), T0);
    assert_eq!(
        (out.len(), o),
        (0, Outcome::Refused("insufficient_free_deposit"))
    );
    for (n, amount) in [(7, Some(d("0"))), (8, None)] {
        let c = super::fixtures::command(n, K::Withdraw, None, amount);
        let (out, o) = b.explain(Input::Command(c), T0);
        assert_eq!((out.len(), o), (0, Outcome::Refused("invalid_amount")));
    }

    let c = super::fixtures::command(6, K::Withdraw, None, Some(d("60")));
    let (out, o) = b.explain(Input::Command(c.clone()), T0 + SEC);
    assert_eq!(o, Outcome::Applied);
    assert_eq!(out.len(), 2, "{out:?}");
    let t = transfers(&out)[0];
    assert_eq!(
        t.transfer_id,
        derived_id(&[c.command_id.as_bytes(), b"withdrawal"])
    );
    assert_eq!(t.kind, TransferKind::Withdrawal);
    assert_eq!(t.order_id, None);
    assert_eq!(t.description.as_deref(), Some("withdrawal"));
    assert_eq!(t.created_at, T0 + SEC);
    assert_eq!(
        legs(t),
        vec![
            (
                AccountOwnerKind::Trader,
                Some(TRADER.0),
                AccountKind::Available,
                d("-60")
            ),
            (
                AccountOwnerKind::External,
                None,
                AccountKind::Settlement,
                d("60")
            ),
        ]
    );
    assert!(t.is_balanced());
    assert_eq!(capacities(&out)[0].free_deposit, d("0"));
    assert_eq!(b.trader_state().map(|s| s.balance()), Some(d("40")));

    let (out, o) = b.explain(Input::Command(c), T0 + 2 * SEC);
    assert_eq!(
        (out.len(), o),
        (0, Outcome::Replay),
        "a replay writes nothing"
    );
}

#[test]
fn order_commands_and_postings_write_no_transfer() {
    let mut b = funded("1000");
    let mut out = route(&mut b, routed(1, "500"), T0).0;
    out.extend(b.apply(order_command(1, K::ClientConfirmed, 1), T0 + SEC));
    out.extend(b.apply(order_command(2, K::TraderConfirmed, 1), T0 + 2 * SEC));
    out.extend(b.apply(
        Input::TraderPosting(posting(1, PostingKind::Capture, Some(order_id(1)), "5")),
        T0 + 3 * SEC,
    ));
    out.extend(b.tick(T0 + 10_000 * SEC));
    assert!(transfers(&out).is_empty(), "{out:?}");
}

#[test]
fn postings_mirror_the_ledger() {
    let mut b = funded("100");
    accept(&mut b, routed(1, "1000")); // holds 10
    let release = posting(1, PostingKind::Release, Some(order_id(1)), "10");
    b.apply(Input::TraderPosting(release), T0);
    let s = b.trader_state().expect("state");
    assert_eq!((s.balance(), s.held()), (d("100"), d("0")));

    b.apply(
        Input::TraderPosting(posting(2, PostingKind::Debit, None, "30")),
        T0,
    );
    b.apply(
        Input::TraderPosting(posting(3, PostingKind::Capture, None, "20")),
        T0,
    );
    b.apply(
        Input::TraderPosting(posting(4, PostingKind::Credit, None, "5")),
        T0,
    );
    assert_eq!(b.trader_state().map(|s| s.balance()), Some(d("55")));

    let mut wrong = posting(5, PostingKind::Credit, None, "5");
    wrong.currency = "RUB".into();
    for (p, code) in [
        (wrong, "wrong_currency"),
        (
            posting(6, PostingKind::Credit, None, "-5"),
            "invalid_amount",
        ),
        (
            posting(7, PostingKind::Hold, Some(order_id(1)), "5"),
            "not_supported",
        ),
        (
            posting(8, PostingKind::Release, None, "5"),
            "missing_order_id",
        ),
    ] {
        let (out, o) = b.explain(Input::TraderPosting(p), T0);
        assert_eq!((out.len(), o), (0, Outcome::Refused(code)));
    }
    assert_eq!(b.trader_state().map(|s| s.balance()), Some(d("55")));
}

// ---------------------------------------------------------------------------------------
// Replays

fn serialized(book: &TraderBookProcessor) -> Vec<u8> {
    serde_json::to_vec(&book.trader(TRADER)).unwrap_or_default()
}

/// Duplicates of routed orders are dropped by origin before the book (`runtime/origins.rs`,
/// `tests/dedup.rs`); an order routed again while it is open is refused all the same.
#[test]
fn an_open_order_routed_again_is_ignored() {
    let mut b = funded("10");
    accept(&mut b, routed(1, "500"));
    let before = serialized(&b.book);
    let (out, o) = route(&mut b, routed(1, "500"), T0 + SEC);
    assert_eq!((out.len(), o), (0, Outcome::Replay));
    assert_eq!(serialized(&b.book), before);
}

#[test]
fn a_command_seen_twice_is_applied_once() {
    let mut b = funded("1000");
    accept(&mut b, routed(1, "500"));
    let confirm = order_command(1, K::ClientConfirmed, 1);
    assert_eq!(events(&b.apply(confirm.clone(), T0 + SEC)).len(), 1);
    let before = serialized(&b.book);
    let (out, o) = b.explain(confirm, T0 + 2 * SEC);
    assert_eq!((out.len(), o), (0, Outcome::Replay));
    assert_eq!(serialized(&b.book), before);

    let deposit = Input::Command(super::fixtures::command(2, K::Deposit, None, Some(d("5"))));
    b.apply(deposit.clone(), T0);
    b.apply(deposit, T0);
    assert_eq!(b.trader_state().map(|s| s.balance()), Some(d("1005")));

    // A refused command is remembered too: replayed later it is still not applied.
    let early = super::fixtures::command(3, K::Withdraw, None, Some(d("2000")));
    let (_, o) = b.explain(Input::Command(early.clone()), T0);
    assert_eq!(o, Outcome::Refused("insufficient_free_deposit"));
    b.deposit("5000", T0);
    let (_, o) = b.explain(Input::Command(early), T0);
    assert_eq!(o, Outcome::Replay);
}

// ---------------------------------------------------------------------------------------
// State: changelog, restore, size

#[test]
fn restoring_the_changelog_gives_a_book_with_identical_outputs() {
    let mut b = funded("1000");
    accept(&mut b, routed(1, "500"));
    accept(&mut b, routed(2, "600"));
    accept(&mut b, routed(3, "700"));
    b.apply(order_command(1, K::ClientConfirmed, 1), T0 + SEC);
    b.apply(order_command(2, K::TraderConfirmed, 2), T0 + SEC);
    route(&mut b, routed(4, "600000"), T0 + SEC); // refused
    b.apply(
        Input::TraderPosting(posting(1, PostingKind::Credit, None, "1.5")),
        T0 + SEC,
    );

    let mut restored = b.fresh();
    for (key, state) in export(&mut b.book) {
        restored.restore(&key, state.as_deref());
    }

    let next: Vec<(Input, i64)> = vec![
        (Input::Routed(routed(5, "800")), T0 + 2 * SEC),
        (Input::Routed(routed(4, "600000")), T0 + 2 * SEC), // replay
        (order_command(1, K::ClientConfirmed, 1), T0 + 2 * SEC), // replay
        (order_command(3, K::TraderConfirmed, 1), T0 + 3 * SEC),
        (order_command(4, K::CancelOrder, 3), T0 + 3 * SEC),
        (
            Input::TraderPosting(posting(2, PostingKind::Capture, Some(order_id(2)), "6")),
            T0 + 4 * SEC,
        ),
        (
            Input::TraderPosting(posting(1, PostingKind::Credit, None, "1.5")),
            T0 + 4 * SEC,
        ),
    ];
    for (input, now) in next {
        assert_eq!(
            b.book.apply(input.clone(), now),
            restored.apply(input.clone(), now),
            "{input:?}"
        );
    }
    let at = T0 + 901 * SEC;
    let ours: Vec<Emit> = b
        .book
        .tick(at)
        .into_iter()
        .chain(b.book.finish_batch(at))
        .collect();
    let theirs: Vec<Emit> = (restored.tick(at).into_iter())
        .chain(restored.finish_batch(at))
        .collect();
    assert_eq!(ours, theirs);
    assert_eq!(export(&mut b.book), export(&mut restored));
}

#[test]
fn take_changes_returns_each_touched_trader_once_then_nothing() {
    let mut b = funded("1000");
    accept(&mut b, routed(1, "500"));
    let changes = export(&mut b.book);
    let keys: Vec<&str> = changes.iter().map(|(k, _)| k.as_str()).collect();
    let order_key = format!("{TRADER}/order/{}", order_id(1));
    assert_eq!(keys, [TRADER.to_string().as_str(), order_key.as_str()]);
    assert!(changes.iter().all(|(_, v)| v.is_some()));
    assert!(export(&mut b.book).is_empty());
    route(&mut b, routed(1, "500"), T0); // replay: nothing changes
    assert!(export(&mut b.book).is_empty());
}

#[test]
fn a_batch_writes_only_the_orders_it_changed_and_tombstones_closed_ones() {
    let mut b = funded("100000");
    for n in 1..=50 {
        accept(&mut b, routed(n, &format!("{}", 100 + n)));
    }
    let first = export(&mut b.book);
    assert_eq!(first.len(), 51, "the trader and fifty orders");
    b.apply(order_command(7, K::CancelOrder, 7), T0 + SEC);
    let changes = export(&mut b.book);
    let keys: Vec<&str> = changes.iter().map(|(k, _)| k.as_str()).collect();
    let order_key = format!("{TRADER}/order/{}", order_id(7));
    assert_eq!(keys, [TRADER.to_string().as_str(), order_key.as_str()]);
    assert_eq!(changes[1].1, None, "a closed order's record is deleted");
    // No record grows with the number of open orders.
    let largest = first
        .iter()
        .filter_map(|(_, v)| v.as_ref().map(Vec::len))
        .max();
    assert!(largest.unwrap() < 16 * 1024, "{largest:?}");
}

#[test]
fn a_state_written_whole_before_orders_had_records_is_restored_and_split() {
    let mut b = funded("1000");
    accept(&mut b, routed(1, "500"));
    let whole = serde_json::to_vec(b.trader_state().unwrap()).unwrap();
    let mut restored = b.fresh();
    restored.restore(&TRADER.to_string(), Some(&whole));
    assert_eq!(restored.trader(TRADER), b.trader_state());
    let keys: Vec<String> = restored
        .take_changes()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        keys,
        [
            TRADER.to_string(),
            format!("{TRADER}/order/{}", order_id(1))
        ]
    );
}

#[test]
fn restore_of_a_deleted_or_unreadable_key_does_not_panic() {
    let mut b = funded("1000");
    b.book.restore("not-a-uuid", Some(b"{}"));
    b.book.restore(&TRADER.to_string(), Some(b"not json"));
    assert_eq!(b.free(), d("1000"), "an unreadable state is skipped");
    b.book.restore(&TRADER.to_string(), None);
    assert!(b.trader_state().is_none());
}

#[test]
fn the_state_stays_small_and_closed_orders_leave_it() {
    let mut b = funded("100000");
    let empty = serialized(&b.book).len();
    for n in 0..20u128 {
        accept(&mut b, routed(n, &format!("{}", 1000 + n)));
    }
    let with_orders = serialized(&b.book).len();
    let per_order = (with_orders - empty) / 20;
    assert!(per_order < 600, "{per_order} bytes per open order");
    for n in 0..20u128 {
        b.apply(order_command(n, K::CancelOrder, n), T0 + SEC);
    }
    let s = b.trader_state().expect("state");
    assert_eq!(s.open_orders().count(), 0);
    assert!(s.held().is_zero());
}

#[test]
fn inputs_of_other_processors_are_not_for_the_book() {
    let mut b = funded("1000");
    let back = super::records::screened_back(&routed(1, "500"), "insufficient_deposit", T0);
    let (out, o) = b.explain(Input::Screened(back), T0);
    assert_eq!((out.len(), o), (0, Outcome::NotForThisBook));
    assert_eq!(b.book.name(), "trader-book");
}
