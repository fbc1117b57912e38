//! Timers judged by when things happened (ARCHITECTURE principle 8): with a watermark held
//! (`Processor::hold_timers_until`), a timer fires only up to it, so a customer's confirmation
//! accepted before the payment window closed wins however late the book reads it; one stamped
//! at the deadline or after it loses however early it is read.

use super::fixtures::*;
use super::tests::{accept, funded};
use super::Outcome;
use crate::core::{Emit, Input, Millis, Processor};
use jivapay_schemas::records::{OrderEventKind, TraderCommandKind as K};

const EXPIRY: Millis = REQUESTED_AT + 900 * SEC;

/// The customer's confirmation of order 1, stamped `issued_at` by the payment page.
fn confirmation(issued_at: Millis) -> Input {
    order_command_at(1, K::ClientConfirmed, 1, issued_at)
}

fn kinds(out: &[Emit]) -> Vec<OrderEventKind> {
    events(out).iter().map(|e| e.kind).collect()
}

/// A book with order 1 assigned, its timers held as after a restore.
fn held() -> Book {
    let mut b = funded("1000");
    accept(&mut b, routed(1, "5000"));
    b.book.hold_timers_until(Millis::MIN);
    b
}

#[test]
fn a_timer_fires_only_once_the_watermark_passes_its_deadline() {
    let mut b = held();
    let late = EXPIRY + 120 * SEC;
    assert!(kinds(&b.tick(late)).is_empty(), "held");
    b.book.hold_timers_until(EXPIRY - 1);
    assert!(kinds(&b.tick(late)).is_empty(), "not yet known to be past");
    // Another input of the trader fires nothing either.
    b.deposit("1", late);
    b.book.hold_timers_until(EXPIRY);
    assert_eq!(kinds(&b.tick(late)), vec![OrderEventKind::Expired]);
}

#[test]
fn a_confirmation_accepted_in_time_wins_however_late_it_is_read() {
    let mut b = held();
    let read_at = EXPIRY + 60 * SEC;
    assert!(kinds(&b.tick(read_at)).is_empty());
    let (out, outcome) = b.explain(confirmation(EXPIRY - 1), read_at);
    assert_eq!(outcome, Outcome::Applied);
    assert_eq!(kinds(&out), vec![OrderEventKind::ClientConfirmed]);
    // The trader's confirmation timeout runs from the confirmation, not from the reading.
    assert_eq!(events(&out)[0].expires_at, Some(EXPIRY - 1 + 1800 * SEC));
    b.book.hold_timers_until(read_at);
    assert!(kinds(&b.tick(read_at)).is_empty(), "never expired");
    let s = b.trader_state().expect("state");
    assert!(s.open_order(order_id(1)).is_some());
}

#[test]
fn a_confirmation_stamped_at_the_deadline_loses_however_early_it_is_read() {
    let mut b = held();
    let (out, outcome) = b.explain(confirmation(EXPIRY), EXPIRY - 10 * SEC);
    assert_eq!(outcome, Outcome::Refused("payment_window_elapsed"));
    assert!(kinds(&out).is_empty());
    b.book.hold_timers_until(EXPIRY);
    assert_eq!(kinds(&b.tick(EXPIRY)), vec![OrderEventKind::Expired]);
}

#[test]
fn the_watermark_only_moves_forward() {
    let mut b = held();
    b.book.hold_timers_until(EXPIRY);
    b.book.hold_timers_until(EXPIRY - 60 * SEC);
    assert_eq!(
        kinds(&b.tick(EXPIRY + SEC)),
        vec![OrderEventKind::Expired],
        "an older marker read later does not take it back"
    );
}
