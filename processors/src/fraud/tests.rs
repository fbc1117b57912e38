use super::state::{Seen, StateKey, SEEN_MAX_PER_STORE, SEEN_RETENTION_MS};
use super::*;
use crate::core::{derived_id, Emit, InMemoryMasterData, Input, MasterData, Millis, Processor};
use jivapay_domain::{FiatAmount, OrderId, StoreId};
use jivapay_schemas::records::{
    Direction, OrderEvent, OrderEventKind, OrderRequested, OrderScreened, OrderStatus, PostingKind,
    Setting, SettingType, Store, StorePosting,
};
use jivapay_schemas::samples;
use proptest::prelude::*;
use rust_decimal::Decimal;
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use uuid::Uuid;

const T0: Millis = samples::AT;
const STORE: StoreId = StoreId(Uuid::from_u128(0x5707e));
const OTHER_STORE: StoreId = StoreId(Uuid::from_u128(0x5707f));

fn dec<T: TryFrom<Decimal>>(s: &str) -> T
where
    T::Error: std::fmt::Debug,
{
    T::try_from(Decimal::from_str(s).unwrap()).unwrap()
}

fn store(id: StoreId, enabled: bool) -> Store {
    Store {
        store_id: id,
        is_enabled: enabled,
        ..samples::store()
    }
}

fn master() -> Arc<InMemoryMasterData> {
    let md = InMemoryMasterData::default();
    for id in [STORE, OTHER_STORE] {
        md.stores.lock().unwrap().insert(id, store(id, true));
    }
    Arc::new(md)
}

fn set(md: &InMemoryMasterData, key: &str, value_json: &str) {
    md.settings.lock().unwrap().insert(
        key.into(),
        Setting {
            key: key.into(),
            value_type: SettingType::Json,
            value_json: value_json.into(),
            updated_at: T0,
        },
    );
}

fn order(n: u128, amount: Option<&str>, customer: Option<&str>, at: Millis) -> OrderRequested {
    OrderRequested {
        order_id: OrderId(Uuid::from_u128(0x0de0_0000 + n)),
        store_id: STORE,
        external_order_id: format!("ext-{n}"),
        fiat_amount: amount.map(dec),
        customer_id: customer.map(str::to_string),
        payment_token: format!("tok-{n}"),
        // As a v1 record: the window runs from the request (a test of a carried expiry sets it).
        expires_at: None,
        requested_at: at,
        ..samples::order_requested()
    }
}

fn run(p: &mut FraudProcessor, o: OrderRequested, now: Millis) -> Vec<Emit> {
    p.apply(Input::Requested(o), now)
}

fn event(out: &[Emit]) -> &OrderEvent {
    match out.first() {
        Some(Emit::Event(e)) => e,
        other => panic!("expected an event first, got {other:?}"),
    }
}

fn screened(out: &[Emit]) -> Option<&OrderScreened> {
    out.iter().find_map(|e| match e {
        Emit::Screened(s) => Some(s),
        _ => None,
    })
}

/// (status, reason) of the single decision in `out`.
fn verdict(out: &[Emit]) -> (OrderStatus, Option<String>) {
    let e = event(out);
    (e.status, e.reason_code.clone())
}

#[test]
fn an_ordinary_order_is_created_and_screened_for_its_pool() {
    let md = master();
    let mut p = FraudProcessor::new(md);
    let o = order(1, Some("5000.00"), Some("c1"), T0);
    let out = run(&mut p, o.clone(), T0 + 7);
    assert_eq!(out.len(), 2);
    let e = event(&out);
    assert_eq!(
        e.event_id,
        derived_id(&[o.order_id.0.as_bytes(), b"created"])
    );
    assert_eq!(
        (e.kind, e.status, e.sequence),
        (OrderEventKind::Created, OrderStatus::Created, 1)
    );
    assert_eq!(e.previous_status, None);
    assert_eq!(e.fiat_amount, Some(dec("5000.00")));
    assert_eq!(e.payment_token.as_deref(), Some("tok-1"));
    assert_eq!(e.callback_url, o.callback_url);
    assert_eq!(e.customer_id.as_deref(), Some("c1"));
    assert_eq!(
        e.expires_at,
        Some(T0 + 900_000),
        "default payment window 900 s from the request, not from screening"
    );
    assert_eq!(e.reason_code, None);
    assert_eq!(e.occurred_at, T0 + 7);
    let s = screened(&out).expect("screened");
    assert_eq!(s.pool, "RUB:sbp");
    assert_eq!(s.order_id, o.order_id);
    assert_eq!(s.fiat_amount, dec("5000.00"));
    assert_eq!((s.attempt, s.excluded_traders.len()), (0, 0));
    assert_eq!((s.requested_at, s.screened_at), (T0, T0 + 7));
    assert_eq!(s.customer_id.as_deref(), Some("c1"));
}

#[test]
fn the_payment_window_comes_from_the_setting() {
    let md = master();
    set(&md, "orders.payment_window_secs", "120");
    let mut p = FraudProcessor::new(md.clone());
    let out = run(&mut p, order(1, Some("10.00"), None, T0), T0 + 5_000);
    assert_eq!(event(&out).expires_at, Some(T0 + 120_000));
    // Below the catalogue's minimum (admin refuses it; the gateway applies it too).
    set(&md, "orders.payment_window_secs", "-5");
    let out = run(&mut p, order(2, Some("10.00"), None, T0), T0);
    assert_eq!(event(&out).expires_at, Some(T0 + 60_000));
}

#[test]
fn the_expiry_the_gateway_promised_wins_over_the_current_setting() {
    // The window setting changed between the gateway's answer and screening: the merchant
    // keeps the expiry he was given, and it travels on to the router.
    let md = master();
    set(&md, "orders.payment_window_secs", "120");
    let mut o = order(1, Some("10.00"), None, T0);
    o.expires_at = Some(T0 + 900_000);
    let out = run(&mut FraudProcessor::new(md), o, T0 + 5);
    assert_eq!(event(&out).expires_at, Some(T0 + 900_000));
    let screened = out.iter().find_map(|e| match e {
        Emit::Screened(s) => Some(s),
        _ => None,
    });
    assert_eq!(screened.unwrap().expires_at, Some(T0 + 900_000));
}

#[test]
fn the_expiry_is_the_same_when_the_order_is_screened_again_later() {
    // Fraud crashed before its changelog covered the order: a fresh instance screens it again
    // from the input, minutes later. The merchant was promised one expiry; it must not move.
    let md = master();
    let o = order(1, Some("10.00"), None, T0);
    let first = run(&mut FraudProcessor::new(md.clone()), o.clone(), T0 + 10);
    let again = run(&mut FraudProcessor::new(md), o, T0 + 300_000);
    assert_eq!(event(&first).expires_at, Some(T0 + 900_000));
    assert_eq!(event(&again).expires_at, event(&first).expires_at);
    assert_eq!(event(&again).event_id, event(&first).event_id);
}

#[test]
fn without_its_own_callback_url_the_event_carries_the_stores() {
    let md = master();
    md.stores
        .lock()
        .unwrap()
        .get_mut(&STORE)
        .unwrap()
        .callback_url = Some("https://store.example/hook".into());
    let mut p = FraudProcessor::new(md);
    let mut o = order(1, Some("10.00"), None, T0);
    o.callback_url = None;
    let out = run(&mut p, o, T0);
    assert_eq!(
        event(&out).callback_url.as_deref(),
        Some("https://store.example/hook")
    );
}

#[test]
fn the_same_order_id_again_is_ignored_until_forgotten() {
    let mut p = FraudProcessor::new(master());
    let o = order(1, Some("10.00"), None, T0);
    assert_eq!(run(&mut p, o.clone(), T0).len(), 2);
    assert!(run(&mut p, o.clone(), T0 + 1).is_empty());
    // Even a changed copy: the order id is what identifies the order.
    let mut changed = o.clone();
    changed.fiat_amount = Some(dec("999999.00"));
    assert!(run(&mut p, changed, T0 + 2).is_empty());
    // Another order of the same store is not a duplicate.
    assert_eq!(
        run(&mut p, order(2, Some("10.00"), None, T0), T0 + 3).len(),
        2
    );
    // Just inside the retention: still a duplicate; past it: screened again (documented).
    assert!(run(&mut p, o.clone(), T0 + SEEN_RETENTION_MS - 1).is_empty());
    assert_eq!(run(&mut p, o, T0 + SEEN_RETENTION_MS).len(), 2);
}

#[test]
fn a_rejected_order_is_remembered_too() {
    let md = master();
    md.stores.lock().unwrap().insert(STORE, store(STORE, false));
    let mut p = FraudProcessor::new(md);
    let o = order(1, Some("10.00"), None, T0);
    assert_eq!(run(&mut p, o.clone(), T0).len(), 1);
    assert!(run(&mut p, o, T0 + 1).is_empty());
}

#[test]
fn the_dedup_memory_is_bounded_per_store() {
    let mut seen = Seen::default();
    for n in 0..SEEN_MAX_PER_STORE as u128 {
        assert!(seen.insert(Uuid::from_u128(n), T0 + n as i64).is_empty());
    }
    assert_eq!(
        seen.insert(Uuid::from_u128(u128::MAX), T0 + 10_000_000),
        vec![Uuid::from_u128(0)],
        "the oldest id is forgotten first"
    );
    assert_eq!(seen.len(), SEEN_MAX_PER_STORE);
    assert!(!seen.contains(Uuid::from_u128(0), T0 + 10_000_000));
    assert!(seen.contains(Uuid::from_u128(1), T0 + 10_000_000));
}

#[test]
fn an_unknown_or_disabled_store_is_rejected() {
    let md = master();
    md.stores.lock().unwrap().insert(STORE, store(STORE, false));
    let mut p = FraudProcessor::new(md.clone());
    let out = run(&mut p, order(1, Some("10.00"), None, T0), T0);
    assert_eq!(out.len(), 1, "no screened order: {out:?}");
    assert_eq!(
        verdict(&out),
        (OrderStatus::Rejected, Some("store_disabled".into()))
    );
    let e = event(&out);
    assert_eq!(
        (e.kind, e.sequence, e.expires_at),
        (OrderEventKind::Rejected, 1, None)
    );
    assert_eq!(
        e.event_id,
        derived_id(&[e.order_id.0.as_bytes(), b"rejected"])
    );
    assert_eq!(e.reason_detail.as_deref(), Some("the store is disabled"));

    md.stores.lock().unwrap().remove(&STORE);
    let out = run(&mut p, order(2, Some("10.00"), None, T0), T0);
    assert_eq!(
        verdict(&out),
        (OrderStatus::Rejected, Some("store_disabled".into()))
    );
    assert_eq!(
        event(&out).reason_detail.as_deref(),
        Some("the store is unknown")
    );
}

#[test]
fn a_pay_out_is_refused_until_pay_outs_exist() {
    let mut p = FraudProcessor::new(master());
    let mut o = order(1, Some("10.00"), None, T0);
    o.direction = Direction::PayOut;
    let out = run(&mut p, o, T0);
    assert_eq!(
        verdict(&out),
        (
            OrderStatus::Rejected,
            Some("direction_not_supported".into())
        )
    );
}

#[test]
fn a_missing_amount_goes_to_review_and_a_non_positive_one_is_rejected() {
    let mut p = FraudProcessor::new(master());
    let out = run(&mut p, order(1, None, None, T0), T0);
    assert_eq!(out.len(), 1);
    assert_eq!(
        verdict(&out),
        (OrderStatus::Review, Some("amount_missing".into()))
    );
    let e = event(&out);
    assert_eq!((e.kind, e.sequence), (OrderEventKind::Review, 1));
    assert_eq!(
        e.event_id,
        derived_id(&[e.order_id.0.as_bytes(), b"review"])
    );
    let out = run(&mut p, order(2, Some("0.00"), None, T0), T0);
    assert_eq!(
        verdict(&out),
        (OrderStatus::Rejected, Some("amount_not_positive".into()))
    );
}

#[test]
fn thresholds_come_from_settings_and_are_inclusive() {
    let md = master();
    set(&md, "fraud.review_threshold", "\"1000.00\"");
    set(&md, "fraud.deny_threshold", "\"5000.00\"");
    let mut p = FraudProcessor::new(md);
    let cases = [
        ("999.99", OrderStatus::Created, None),
        (
            "1000.00",
            OrderStatus::Review,
            Some("amount_above_review_threshold"),
        ),
        (
            "4999.99",
            OrderStatus::Review,
            Some("amount_above_review_threshold"),
        ),
        (
            "5000.00",
            OrderStatus::Rejected,
            Some("amount_above_deny_threshold"),
        ),
        (
            "7000000.00",
            OrderStatus::Rejected,
            Some("amount_above_deny_threshold"),
        ),
    ];
    for (n, (amount, status, reason)) in cases.into_iter().enumerate() {
        let out = run(&mut p, order(n as u128, Some(amount), None, T0), T0);
        assert_eq!(
            verdict(&out),
            (status, reason.map(String::from)),
            "{amount}"
        );
        assert_eq!(
            screened(&out).is_some(),
            status == OrderStatus::Created,
            "{amount}"
        );
    }
}

#[test]
fn default_thresholds_apply_without_settings_or_with_unreadable_ones() {
    let md = master();
    set(&md, "fraud.review_threshold", "not json");
    set(&md, "fraud.deny_threshold", "[1]");
    let mut p = FraudProcessor::new(md);
    let out = run(&mut p, order(1, Some("299999.99"), None, T0), T0);
    assert_eq!(verdict(&out).0, OrderStatus::Created);
    let out = run(&mut p, order(2, Some("300000.00"), None, T0), T0);
    assert_eq!(verdict(&out).0, OrderStatus::Review);
    let out = run(&mut p, order(3, Some("1000000.00"), None, T0), T0);
    assert_eq!(verdict(&out).0, OrderStatus::Rejected);
}

#[test]
fn more_than_the_store_limit_within_a_minute_goes_to_review() {
    let md = master();
    set(&md, "fraud.velocity.store_orders_per_minute", "3");
    let mut p = FraudProcessor::new(md);
    for n in 0..3 {
        let at = T0 + n * 1000;
        let out = run(&mut p, order(n as u128, Some("10.00"), None, at), at);
        assert_eq!(verdict(&out).0, OrderStatus::Created, "order {n}");
    }
    let out = run(&mut p, order(3, Some("10.00"), None, T0 + 3000), T0 + 3000);
    assert_eq!(
        verdict(&out),
        (OrderStatus::Review, Some("velocity_store".into()))
    );
    // Another store has its own window.
    let mut other = order(4, Some("10.00"), None, T0 + 3000);
    other.store_id = OTHER_STORE;
    assert_eq!(
        verdict(&run(&mut p, other, T0 + 3000)).0,
        OrderStatus::Created
    );
    // 60 s after the first order it has left the window; but the review above still counts.
    let at = T0 + 60_000;
    let out = run(&mut p, order(5, Some("10.00"), None, at), at);
    assert_eq!(verdict(&out).0, OrderStatus::Review);
    // The window counts whole seconds (`window.rs`): at 62 s the second of the order at 2 s
    // would still count, the window's edge cutting it; at 63 s it has left.
    let at = T0 + 63_000;
    let out = run(&mut p, order(6, Some("10.00"), None, at), at);
    assert_eq!(verdict(&out).0, OrderStatus::Created);
}

#[test]
fn velocity_counts_from_the_request_time_not_the_processing_time() {
    let md = master();
    set(&md, "fraud.velocity.store_orders_per_minute", "2");
    let mut p = FraudProcessor::new(md);
    // A backlog worked off at once: requested 40 s apart, processed together.
    let now = T0 + 200_000;
    for n in 0..4 {
        let out = run(
            &mut p,
            order(n, Some("10.00"), None, T0 + n as i64 * 40_000),
            now,
        );
        assert_eq!(verdict(&out).0, OrderStatus::Created, "order {n}");
    }
}

#[test]
fn more_than_the_customer_limit_within_an_hour_goes_to_review() {
    let md = master();
    set(&md, "fraud.velocity.customer_orders_per_hour", "2");
    let mut p = FraudProcessor::new(md);
    let at = |m: i64| T0 + m * 60_000;
    assert_eq!(
        verdict(&run(
            &mut p,
            order(1, Some("1.00"), Some("c"), at(0)),
            at(0)
        ))
        .0,
        OrderStatus::Created
    );
    assert_eq!(
        verdict(&run(
            &mut p,
            order(2, Some("1.00"), Some("c"), at(10)),
            at(10)
        ))
        .0,
        OrderStatus::Created
    );
    assert_eq!(
        verdict(&run(
            &mut p,
            order(3, Some("1.00"), Some("c"), at(20)),
            at(20)
        )),
        (OrderStatus::Review, Some("velocity_customer".into()))
    );
    // Another customer, no customer, and the same customer id at another store are free.
    assert_eq!(
        verdict(&run(
            &mut p,
            order(4, Some("1.00"), Some("d"), at(20)),
            at(20)
        ))
        .0,
        OrderStatus::Created
    );
    assert_eq!(
        verdict(&run(&mut p, order(5, Some("1.00"), None, at(20)), at(20))).0,
        OrderStatus::Created
    );
    let mut elsewhere = order(6, Some("1.00"), Some("c"), at(20));
    elsewhere.store_id = OTHER_STORE;
    assert_eq!(
        verdict(&run(&mut p, elsewhere, at(20))).0,
        OrderStatus::Created
    );
    // An hour after the first two, the customer is free again... except for the review at 20.
    // The window counts whole minutes: the one of the order at 10 counts until 71.
    assert_eq!(
        verdict(&run(
            &mut p,
            order(7, Some("1.00"), Some("c"), at(71)),
            at(71)
        ))
        .0,
        OrderStatus::Created
    );
}

#[test]
fn the_amount_rules_win_over_velocity() {
    let md = master();
    set(&md, "fraud.velocity.store_orders_per_minute", "1");
    set(&md, "fraud.deny_threshold", "\"100.00\"");
    let mut p = FraudProcessor::new(md);
    run(&mut p, order(1, Some("1.00"), None, T0), T0);
    let out = run(&mut p, order(2, Some("100.00"), None, T0), T0);
    assert_eq!(
        verdict(&out).1.as_deref(),
        Some("amount_above_deny_threshold")
    );
}

fn posting(n: u128, kind: PostingKind, amount: &str) -> StorePosting {
    StorePosting {
        posting_id: Uuid::from_u128(0x9057_0000 + n),
        store_id: STORE,
        kind,
        currency: "USDT".into(),
        amount: dec(amount),
        ..samples::store_posting()
    }
}

#[test]
fn postings_build_the_store_balance_each_once() {
    let mut p = FraudProcessor::new(master());
    let steps = [
        (posting(1, PostingKind::Credit, "100.000000"), "100", "0"),
        (posting(2, PostingKind::Hold, "30.000000"), "70", "30"),
        (posting(3, PostingKind::Release, "10.000000"), "80", "20"),
        (posting(4, PostingKind::Capture, "20.000000"), "80", "0"),
        (posting(5, PostingKind::Debit, "5.500000"), "74.5", "0"),
        // Replayed: applied once.
        (posting(1, PostingKind::Credit, "100.000000"), "74.5", "0"),
    ];
    for (posting, available, held) in steps {
        assert!(p.apply(Input::StorePosting(posting), T0).is_empty());
        let b = p.store_balance(STORE, "USDT");
        assert_eq!((b.available, b.held), (dec(available), dec(held)));
    }
    assert_eq!(p.store_balance(STORE, "EUR"), StoreBalance::default());
    assert_eq!(
        p.store_balance(OTHER_STORE, "USDT"),
        StoreBalance::default()
    );
}

#[test]
fn state_keys_round_trip_through_text() {
    let keys = [
        StateKey::Store(STORE),
        StateKey::Order(STORE, OrderId(Uuid::from_u128(7))),
        StateKey::Posting(STORE, Uuid::from_u128(8)),
        StateKey::Customer(STORE, "a/b c".into()),
    ];
    for key in keys {
        assert_eq!(StateKey::parse(&key.to_string()), Some(key.clone()));
        assert!(key.to_string().starts_with(&STORE.to_string()));
    }
    assert_eq!(StateKey::parse("nope"), None);
    assert_eq!(StateKey::parse(&format!("{STORE}/what/1")), None);
}

#[test]
fn sweeps_forget_old_ids_and_idle_customers() {
    let mut p = FraudProcessor::new(master());
    run(&mut p, order(1, Some("1.00"), Some("c"), T0), T0);
    p.apply(
        Input::StorePosting(posting(1, PostingKind::Credit, "1")),
        T0,
    );
    let first = p.take_changes();
    assert_eq!(first.len(), 4, "{first:?}");
    assert!(first.iter().all(|(_, v)| v.is_some()));

    // A customer's window is kept while a late order could still count it.
    p.tick(T0 + 2 * 3_600_000 - 1);
    assert!(p.take_changes().is_empty());
    // The next sweep waits for its interval.
    p.tick(T0 + 2 * 3_600_000 + 59_000);
    assert!(p.take_changes().is_empty());
    p.tick(T0 + 2 * 3_600_000 + 60_000);
    let changes: HashMap<_, _> = p.take_changes().into_iter().collect();
    assert_eq!(changes.get(&format!("{STORE}/customer/c")), Some(&None));
    assert_eq!(changes.len(), 1, "{changes:?}");

    p.tick(T0 + SEEN_RETENTION_MS);
    let changes: HashMap<_, _> = p.take_changes().into_iter().collect();
    let order_key = format!("{STORE}/order/{}", order(1, None, None, T0).order_id);
    let posting_key = format!(
        "{STORE}/posting/{}",
        posting(1, PostingKind::Credit, "1").posting_id
    );
    assert_eq!(changes.get(&order_key), Some(&None));
    assert_eq!(changes.get(&posting_key), Some(&None));
    // The balance stays.
    assert_eq!(p.store_balance(STORE, "USDT").available, dec("1"));
}

/// One step of a generated run.
#[derive(Debug, Clone)]
enum Step {
    Order {
        n: u8,
        other_store: bool,
        amount_cents: Option<u64>,
        customer: Option<u8>,
        late_ms: u32,
    },
    Posting {
        n: u8,
        kind: u8,
        micros: u64,
    },
    Wait(u32),
    Tick,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0u8..40, any::<bool>(), proptest::option::weighted(0.9, 1u64..200_000_000), proptest::option::of(0u8..4), 0u32..5_000)
            .prop_map(|(n, other_store, amount_cents, customer, late_ms)| Step::Order { n, other_store, amount_cents, customer, late_ms }),
        2 => (0u8..10, 0u8..5, 1u64..10_000_000_000).prop_map(|(n, kind, micros)| Step::Posting { n, kind, micros }),
        2 => (0u32..900_000).prop_map(Step::Wait),
        1 => Just(Step::Tick),
    ]
}

fn input(step: &Step, now: Millis) -> Option<Input> {
    match step {
        Step::Order {
            n,
            other_store,
            amount_cents,
            customer,
            late_ms,
        } => {
            let mut o = order(*n as u128, None, None, now - *late_ms as i64);
            o.fiat_amount = amount_cents.map(|c| FiatAmount::rounded(Decimal::new(c as i64, 2)));
            o.customer_id = customer.map(|c| format!("c{c}"));
            if *other_store {
                o.store_id = OTHER_STORE;
                o.order_id = OrderId(Uuid::from_u128(0xa000_0000 + *n as u128));
            }
            Some(Input::Requested(o))
        }
        Step::Posting { n, kind, micros } => {
            let kind = [
                PostingKind::Credit,
                PostingKind::Debit,
                PostingKind::Hold,
                PostingKind::Release,
                PostingKind::Capture,
            ][*kind as usize];
            let mut p = posting(*n as u128, kind, "0");
            p.amount = Decimal::new(*micros as i64, 6);
            Some(Input::StorePosting(p))
        }
        Step::Wait(_) | Step::Tick => None,
    }
}

/// Runs `steps` on `p` from `now`; returns every output and the time reached.
fn drive(p: &mut FraudProcessor, steps: &[Step], mut now: Millis) -> (Vec<Emit>, Millis) {
    let mut out = Vec::new();
    for s in steps {
        match s {
            Step::Wait(ms) => now += *ms as i64,
            Step::Tick => out.extend(p.tick(now)),
            _ => {
                if let Some(i) = input(s, now) {
                    out.extend(p.apply(i, now));
                }
            }
        }
    }
    (out, now)
}

fn limited_master() -> Arc<InMemoryMasterData> {
    let md = master();
    set(&md, "fraud.velocity.store_orders_per_minute", "5");
    set(&md, "fraud.velocity.customer_orders_per_hour", "3");
    set(&md, "fraud.review_threshold", "\"500000.00\"");
    set(&md, "fraud.deny_threshold", "\"1000000.00\"");
    md
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Restoring everything a processor exported gives a processor that answers the next
    /// inputs exactly as the original does.
    #[test]
    fn restore_round_trips(first in proptest::collection::vec(step(), 0..60), next in proptest::collection::vec(step(), 0..60)) {
        let md = limited_master();
        let mut original = FraudProcessor::new(md.clone());
        let (_, now) = drive(&mut original, &first, T0);
        let mut exported: HashMap<String, Option<Vec<u8>>> = HashMap::new();
        exported.extend(original.take_changes());
        let mut restored = FraudProcessor::new(md.clone() as Arc<dyn MasterData>);
        for (key, value) in &exported {
            restored.restore(key, value.as_deref());
        }
        for store in [STORE, OTHER_STORE] {
            prop_assert_eq!(restored.store_balance(store, "USDT"), original.store_balance(store, "USDT"));
        }
        let (a, _) = drive(&mut original, &next, now);
        let (b, _) = drive(&mut restored, &next, now);
        prop_assert_eq!(a, b);
    }

    /// However orders arrive, no more than the limit of a store's orders requested within any
    /// 60 s are let through, and every order gets exactly one decision.
    #[test]
    fn velocity_never_lets_more_than_the_limit_through(gaps in proptest::collection::vec(0u32..30_000, 1..80)) {
        let md = master();
        set(&md, "fraud.velocity.store_orders_per_minute", "4");
        let mut p = FraudProcessor::new(md);
        let mut at = T0;
        let mut created = Vec::new();
        for (n, gap) in gaps.iter().enumerate() {
            at += *gap as i64;
            let out = run(&mut p, order(n as u128, Some("1.00"), None, at), at);
            prop_assert!(!out.is_empty());
            if verdict(&out).0 == OrderStatus::Created {
                created.push(at);
            }
        }
        for (i, start) in created.iter().enumerate() {
            let within = created[i..].iter().take_while(|t| **t < start + 60_000).count();
            prop_assert!(within <= 4, "{} created within 60 s from {}", within, start);
        }
    }

    /// A CREATED order expires `orders.payment_window_secs` after its request, however late
    /// it is screened.
    #[test]
    fn created_expires_a_window_after_the_request(late_ms in 0i64..3_600_000, window_secs in 60i64..86_400) {
        let md = master();
        set(&md, "orders.payment_window_secs", &window_secs.to_string());
        let mut p = FraudProcessor::new(md);
        let out = run(&mut p, order(1, Some("10.00"), None, T0), T0 + late_ms);
        prop_assert_eq!(verdict(&out).0, OrderStatus::Created);
        prop_assert_eq!(event(&out).expires_at, Some(T0 + window_secs * 1000));
    }

    /// The amount rules alone, against a direct statement of them.
    #[test]
    fn amount_rules_match_their_statement(cents in 1i64..200_000_000, review in 1i64..100_000_000, deny in 1i64..100_000_000) {
        let md = master();
        let (review, deny) = (Decimal::new(review, 2), Decimal::new(deny, 2));
        set(&md, "fraud.review_threshold", &format!("\"{review}\""));
        set(&md, "fraud.deny_threshold", &format!("\"{deny}\""));
        let mut p = FraudProcessor::new(md);
        let amount = Decimal::new(cents, 2);
        let out = run(&mut p, order(1, Some(&amount.to_string()), None, T0), T0);
        let expected = if amount >= deny {
            OrderStatus::Rejected
        } else if amount >= review {
            OrderStatus::Review
        } else {
            OrderStatus::Created
        };
        prop_assert_eq!(verdict(&out).0, expected);
    }
}

#[test]
fn a_posting_beyond_the_decimal_range_is_refused_not_a_panic() {
    let mut p = FraudProcessor::new(master());
    let mut big = posting(1, PostingKind::Credit, "0");
    big.amount = Decimal::MAX;
    p.apply(Input::StorePosting(big.clone()), T0);
    big.posting_id = Uuid::from_u128(77);
    p.apply(Input::StorePosting(big), T0);
    assert_eq!(p.store_balance(STORE, "USDT").available, Decimal::MAX);
}
