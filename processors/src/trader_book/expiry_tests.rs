//! One expiry per order: the gateway promises the merchant `requested_at + payment window`;
//! fraud's CREATED, the book's ASSIGNED and the book's timer state that same instant, however
//! late each stage processes the order and however often it is replayed.

use super::fixtures::*;
use super::Outcome;
use crate::core::{Emit, Input, Millis, Processor};
use crate::fraud::FraudProcessor;
use jivapay_schemas::records::{OrderEventKind, OrderRequested, OrderRouted, OrderScreened};
use jivapay_schemas::samples;
use proptest::prelude::*;
use rust_decimal::Decimal;

/// The order of `routed(n, fiat)` as ingest wrote it, requested at `at`.
fn request(n: u128, fiat: &str, at: Millis) -> OrderRequested {
    let r = routed(n, fiat);
    OrderRequested {
        order_id: r.order_id,
        store_id: STORE,
        external_order_id: r.external_order_id,
        direction: r.direction,
        fiat_amount: Some(r.fiat_amount),
        fiat_currency: r.fiat_currency,
        payment_method: r.payment_method,
        customer_id: None,
        expires_at: None,
        requested_at: at,
        ..samples::order_requested()
    }
}

/// What the router makes of a screened order: this trader, requisite 1, at 100 RUB/USDT.
fn route_screened(s: &OrderScreened, now: Millis) -> OrderRouted {
    let mut r = routed(1, "100");
    r.order_id = s.order_id;
    r.store_id = s.store_id;
    r.external_order_id = s.external_order_id.clone();
    r.fiat_amount = s.fiat_amount;
    r.crypto_amount = UsdtAmount::rounded(s.fiat_amount.value() / Decimal::ONE_HUNDRED);
    r.requested_at = s.requested_at;
    r.routed_at = now;
    r
}

fn expiry_of(out: &[Emit], kind: OrderEventKind) -> Option<Millis> {
    events(out)
        .into_iter()
        .find(|e| e.kind == kind)
        .and_then(|e| e.expires_at)
}

/// Runs one order through fraud and the book with the given delays; returns the CREATED and
/// ASSIGNED expiries and the book (funded, with the order assigned).
fn through_the_pipeline(
    window_secs: i64,
    requested_at: Millis,
    screen_delay_ms: Millis,
    route_delay_ms: Millis,
) -> (Option<Millis>, Option<Millis>, Book, Millis) {
    let mut b = Book::new();
    b.set("orders.payment_window_secs", &window_secs.to_string());
    let mut store = samples::store();
    store.store_id = STORE;
    b.master.stores.lock().expect("lock").insert(STORE, store);
    b.deposit("1000", requested_at);

    let mut fraud = FraudProcessor::new(b.master.clone());
    let screened_at = requested_at + screen_delay_ms;
    let out = fraud.apply(
        Input::Requested(request(1, "5000", requested_at)),
        screened_at,
    );
    let created = expiry_of(&out, OrderEventKind::Created);
    let screened = screened(&out)[0].clone();

    let routed_at = screened_at + route_delay_ms;
    let (out, outcome) = b.explain(
        Input::Routed(route_screened(&screened, routed_at)),
        routed_at,
    );
    assert_eq!(outcome, Outcome::Applied, "{out:?}");
    (
        created,
        expiry_of(&out, OrderEventKind::Assigned),
        b,
        routed_at,
    )
}

#[test]
fn fraud_and_the_book_state_the_expiry_the_gateway_promised() {
    let (created, assigned, mut b, routed_at) = through_the_pipeline(900, T0, 3 * SEC, 40 * SEC);
    let promised = T0 + 900 * SEC;
    assert_eq!(created, Some(promised));
    assert_eq!(assigned, Some(promised));
    assert!(routed_at < promised);
    assert!(b.tick(promised - 1).is_empty(), "not a moment early");
    let out = b.tick(promised);
    let expired = events(&out);
    assert_eq!(expired.len(), 1, "{out:?}");
    assert_eq!(
        (expired[0].kind, expired[0].occurred_at),
        (OrderEventKind::Expired, promised)
    );
}

#[test]
fn an_assignment_replayed_after_a_crash_states_the_same_expiry() {
    // The book assigned the order, then crashed before its changelog covered it: a fresh book
    // gets the same routed order again, a minute later.
    let r = routed(1, "5000");
    let mut first = Book::new();
    first.deposit("1000", T0);
    let (out, _) = first.explain(Input::Routed(r.clone()), T0);
    let mut again = Book::new();
    again.deposit("1000", T0);
    let (replayed, _) = again.explain(Input::Routed(r), T0 + 60 * SEC);
    let expected = Some(REQUESTED_AT + 900 * SEC);
    assert_eq!(expiry_of(&out, OrderEventKind::Assigned), expected);
    assert_eq!(expiry_of(&replayed, OrderEventKind::Assigned), expected);
    assert_eq!(
        events(&out)[0].event_id,
        events(&replayed)[0].event_id,
        "the same event, deduplicated downstream"
    );
}

#[test]
fn an_order_routed_after_its_window_expires_in_the_same_step() {
    let mut b = Book::new();
    b.deposit("1000", T0);
    let late = REQUESTED_AT + 900 * SEC + 5 * SEC;
    let (out, outcome) = b.explain(Input::Routed(routed(1, "5000")), late);
    assert_eq!(outcome, Outcome::Applied);
    let kinds: Vec<OrderEventKind> = events(&out).iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        vec![OrderEventKind::Assigned, OrderEventKind::Expired],
        "{out:?}"
    );
    assert_eq!(events(&out)[0].expires_at, Some(REQUESTED_AT + 900 * SEC));
    assert_eq!(
        capacities(&out).last().map(|c| c.free_deposit),
        Some(d("1000"))
    );
    let s = b.trader_state().expect("state");
    assert!(s.held().is_zero() && s.open_order(order_id(1)).is_none());
}

#[test]
fn the_confirmation_timeout_still_runs_from_the_customers_confirmation() {
    let mut b = Book::new();
    b.deposit("1000", T0);
    b.set("orders.trader_confirmation_timeout_secs", "600");
    b.apply(Input::Routed(routed(1, "5000")), T0);
    let confirmed_at = T0 + 100 * SEC;
    let out = b.apply(
        order_command_at(
            1,
            jivapay_schemas::records::TraderCommandKind::ClientConfirmed,
            1,
            confirmed_at,
        ),
        confirmed_at,
    );
    assert_eq!(
        expiry_of(&out, OrderEventKind::ClientConfirmed),
        Some(confirmed_at + 600 * SEC)
    );
    assert!(b.tick(confirmed_at + 600 * SEC - 1).is_empty());
    assert_eq!(
        events(&b.tick(confirmed_at + 600 * SEC))[0].kind,
        OrderEventKind::Disputed
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the window and the delays of screening and routing (within the window), the
    /// CREATED and ASSIGNED expiries are both `requested_at + window`, and the order expires
    /// exactly then.
    #[test]
    fn every_stage_states_requested_at_plus_the_window(
        window_secs in 60i64..86_400,
        requested_offset_ms in 0i64..86_400_000,
        screen_delay_ms in 0i64..60_000,
        route_fraction in 0u32..1000,
    ) {
        let requested_at = T0 + requested_offset_ms;
        let window_ms = window_secs * 1000;
        // Routed before the window ends (at least 1 ms left).
        let room = (window_ms - screen_delay_ms - 1).max(0);
        let route_delay_ms = room * i64::from(route_fraction) / 1000;
        let (created, assigned, mut b, _) =
            through_the_pipeline(window_secs, requested_at, screen_delay_ms, route_delay_ms);
        let promised = requested_at + window_ms;
        prop_assert_eq!(created, Some(promised));
        prop_assert_eq!(assigned, Some(promised));
        // A tick may republish the capacity on a new day; it must not expire the order.
        prop_assert!(events(&b.tick(promised - 1)).is_empty());
        let out = b.tick(promised);
        prop_assert_eq!(events(&out).first().map(|e| e.kind), Some(OrderEventKind::Expired));
    }
}
