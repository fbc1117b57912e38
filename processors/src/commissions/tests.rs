use super::*;
use crate::core::{derived_id, Emit, InMemoryMasterData, Input, MasterData, Millis, Processor};
use jivapay_domain::{OrderId, StoreId, TraderId};
use jivapay_schemas::records::{
    AccountKind, AccountOwnerKind, Direction, LedgerTransfer, OrderEvent, OrderEventKind,
    OrderStatus, PostingKind, StoreCommission, StorePosting, TraderCommandKind, TraderCommission,
    TraderPosting, TransferKind,
};
use jivapay_schemas::samples;
use proptest::prelude::*;
use rust_decimal::Decimal;
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use uuid::Uuid;

const T0: Millis = samples::AT;

fn dec<T: TryFrom<Decimal>>(s: &str) -> T
where
    T::Error: std::fmt::Debug,
{
    T::try_from(Decimal::from_str(s).unwrap()).unwrap()
}

fn store_id() -> StoreId {
    samples::order_event().store_id
}

fn trader_id() -> TraderId {
    samples::order_event().trader_id.unwrap()
}

/// The sample store and trader with pay-in commissions of `store`% and `trader`% for sbp.
fn master(store: &str, trader: &str) -> Arc<InMemoryMasterData> {
    let md = InMemoryMasterData::default();
    set_commissions(&md, store, trader);
    Arc::new(md)
}

fn set_commissions(md: &InMemoryMasterData, store: &str, trader: &str) {
    let mut s = samples::store();
    s.commissions = vec![
        StoreCommission {
            payment_method: "sbp".into(),
            direction: Direction::PayOut,
            percent: dec("9"),
        },
        StoreCommission {
            payment_method: "card2card".into(),
            direction: Direction::PayIn,
            percent: dec("8"),
        },
        StoreCommission {
            payment_method: "sbp".into(),
            direction: Direction::PayIn,
            percent: dec(store),
        },
    ];
    let mut t = samples::trader();
    t.commissions = vec![
        TraderCommission {
            payment_method: "sbp".into(),
            direction: Direction::PayOut,
            percent: dec("7"),
        },
        TraderCommission {
            payment_method: "sbp".into(),
            direction: Direction::PayIn,
            percent: dec(trader),
        },
    ];
    md.stores.lock().unwrap().insert(s.store_id, s);
    md.traders.lock().unwrap().insert(t.trader_id, t);
}

fn order_id(n: u128) -> OrderId {
    OrderId(Uuid::from_u128(0x0de0_0000 + n))
}

fn event(n: u128, status: OrderStatus, crypto: &str) -> OrderEvent {
    let kind = match status {
        OrderStatus::Assigned => OrderEventKind::Assigned,
        OrderStatus::Completed => OrderEventKind::Completed,
        OrderStatus::Expired => OrderEventKind::Expired,
        OrderStatus::Cancelled => OrderEventKind::Cancelled,
        OrderStatus::ClientConfirmed => OrderEventKind::ClientConfirmed,
        OrderStatus::Disputed => OrderEventKind::Disputed,
        OrderStatus::NoRequisite => OrderEventKind::NoRequisite,
        _ => OrderEventKind::Failed,
    };
    OrderEvent {
        event_id: derived_id(&[order_id(n).0.as_bytes(), format!("{kind:?}").as_bytes()]),
        order_id: order_id(n),
        kind,
        status,
        crypto_amount: Some(dec(crypto)),
        ..samples::order_event()
    }
}

fn apply(p: &mut CommissionsProcessor, e: OrderEvent, now: Millis) -> Vec<Emit> {
    p.apply(Input::Event(e), now)
}

fn transfer(out: &[Emit]) -> &LedgerTransfer {
    out.iter()
        .find_map(|e| match e {
            Emit::Transfer(t) => Some(t),
            _ => None,
        })
        .expect("a transfer")
}

fn trader_postings(out: &[Emit]) -> Vec<&TraderPosting> {
    out.iter()
        .filter_map(|e| match e {
            Emit::TraderPosting(p) => Some(p),
            _ => None,
        })
        .collect()
}

fn store_postings(out: &[Emit]) -> Vec<&StorePosting> {
    out.iter()
        .filter_map(|e| match e {
            Emit::StorePosting(p) => Some(p),
            _ => None,
        })
        .collect()
}

/// (owner kind, account kind) → amount.
fn legs(t: &LedgerTransfer) -> Vec<(AccountOwnerKind, AccountKind, Decimal)> {
    t.entries
        .iter()
        .map(|e| (e.owner_kind, e.account_kind, e.amount))
        .collect()
}

#[test]
fn the_split_of_the_sample_order_matches_the_sample_transfer() {
    let split = pay_in_split(dec("54.054054"), dec("3"), dec("2")).unwrap();
    let sample = samples::ledger_transfer();
    let amounts: Vec<Decimal> = sample.entries.iter().map(|e| e.amount).collect();
    assert_eq!(
        amounts,
        vec![
            -split.crypto_amount,
            split.trader_reward,
            split.store_share,
            split.platform_fee
        ]
    );
}

#[test]
fn rounding_is_absorbed_by_the_platform() {
    // Both legs round half up from 0.0000005: the platform pays the micro-USDT.
    let s = pay_in_split(dec("0.000001"), dec("50"), dec("50")).unwrap();
    assert_eq!(
        (s.trader_reward, s.store_share, s.platform_fee),
        (dec("0.000001"), dec("0.000001"), dec("-0.000001"))
    );
    let s = pay_in_split(dec("100"), dec("3.5"), dec("2.25")).unwrap();
    assert_eq!(
        (s.trader_reward, s.store_share, s.platform_fee),
        (dec("2.25"), dec("96.5"), dec("1.25"))
    );
    // Out-of-range percentages are clamped, never turning a credit into a debit.
    let s = pay_in_split(dec("10"), dec("150"), dec("-5")).unwrap();
    assert_eq!(
        (s.trader_reward, s.store_share, s.platform_fee),
        (dec("0"), dec("0"), dec("10"))
    );
}

#[test]
fn a_completed_pay_in_is_settled_at_the_assignment_commissions() {
    let md = master("3", "2");
    let mut p = CommissionsProcessor::new(md.clone());
    assert!(apply(&mut p, event(1, OrderStatus::Assigned, "54.054054"), T0).is_empty());
    // Commissions changed after assignment do not apply to this order.
    set_commissions(&md, "10", "1");
    assert!(apply(
        &mut p,
        event(1, OrderStatus::ClientConfirmed, "54.054054"),
        T0
    )
    .is_empty());
    let out = apply(
        &mut p,
        event(1, OrderStatus::Completed, "54.054054"),
        T0 + 9,
    );
    assert_eq!(out.len(), 4, "{out:?}");
    let t = transfer(&out);
    let transfer_id = derived_id(&[order_id(1).0.as_bytes(), b"pay_in"]);
    assert_eq!(t.transfer_id, transfer_id);
    assert_eq!(
        (t.kind, t.order_id, t.created_at),
        (TransferKind::PayIn, Some(order_id(1)), T0 + 9)
    );
    assert!(t.is_balanced());
    assert!(t.entries.iter().all(|e| e.currency == "USDT"));
    assert_eq!(
        legs(t),
        vec![
            (
                AccountOwnerKind::Trader,
                AccountKind::Hold,
                dec("-54.054054")
            ),
            (
                AccountOwnerKind::Trader,
                AccountKind::Available,
                dec("1.081081")
            ),
            (
                AccountOwnerKind::Store,
                AccountKind::Available,
                dec("52.432432")
            ),
            (
                AccountOwnerKind::Platform,
                AccountKind::Fees,
                dec("0.540541")
            ),
        ]
    );
    assert_eq!(t.entries[0].owner_id, Some(trader_id().0));
    assert_eq!(t.entries[2].owner_id, Some(store_id().0));
    assert_eq!(t.entries[3].owner_id, None);

    let tp = trader_postings(&out);
    assert_eq!(tp.len(), 2);
    assert_eq!(
        (tp[0].kind, tp[0].amount),
        (PostingKind::Capture, dec("54.054054"))
    );
    assert_eq!(
        (tp[1].kind, tp[1].amount),
        (PostingKind::Credit, dec("1.081081"))
    );
    let sp = store_postings(&out);
    assert_eq!(sp.len(), 1);
    assert_eq!(
        (sp[0].kind, sp[0].amount, sp[0].store_id),
        (PostingKind::Credit, dec("52.432432"), store_id())
    );
    let mut ids = vec![tp[0].posting_id, tp[1].posting_id, sp[0].posting_id];
    for posting in tp.iter() {
        assert_eq!(
            (posting.trader_id, posting.transfer_id, posting.order_id),
            (trader_id(), Some(transfer_id), Some(order_id(1)))
        );
        assert_eq!(posting.currency, "USDT");
    }
    assert_eq!(
        (sp[0].transfer_id, sp[0].order_id),
        (Some(transfer_id), Some(order_id(1)))
    );
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "posting ids are distinct");
    assert!(!ids.contains(&transfer_id));
}

#[test]
fn settlement_is_deterministic_across_instances() {
    let run = || {
        let mut p = CommissionsProcessor::new(master("3", "2"));
        apply(&mut p, event(1, OrderStatus::Assigned, "10"), T0);
        apply(&mut p, event(1, OrderStatus::Completed, "10"), T0 + 1)
    };
    assert_eq!(run(), run());
}

#[test]
fn an_order_is_settled_once_even_when_its_events_are_replayed() {
    let mut p = CommissionsProcessor::new(master("3", "2"));
    apply(&mut p, event(1, OrderStatus::Assigned, "10"), T0);
    assert_eq!(
        apply(&mut p, event(1, OrderStatus::Completed, "10"), T0).len(),
        4
    );
    assert!(apply(&mut p, event(1, OrderStatus::Completed, "10"), T0 + 1).is_empty());
    // The trader book replaying its last batch after a crash.
    assert!(apply(&mut p, event(1, OrderStatus::Assigned, "10"), T0 + 2).is_empty());
    assert!(apply(&mut p, event(1, OrderStatus::Completed, "10"), T0 + 3).is_empty());
    // Another order is its own.
    apply(&mut p, event(2, OrderStatus::Assigned, "10"), T0);
    assert_eq!(
        apply(&mut p, event(2, OrderStatus::Completed, "10"), T0).len(),
        4
    );
}

#[test]
fn an_order_ending_otherwise_after_assignment_settles_nothing() {
    for end in [
        OrderStatus::Expired,
        OrderStatus::Cancelled,
        OrderStatus::NoRequisite,
        OrderStatus::Rejected,
        OrderStatus::Failed,
    ] {
        let mut p = CommissionsProcessor::new(master("3", "2"));
        apply(&mut p, event(1, OrderStatus::Assigned, "10"), T0);
        assert!(apply(&mut p, event(1, OrderStatus::Disputed, "10"), T0).is_empty());
        assert!(apply(&mut p, event(1, end, "10"), T0).is_empty(), "{end:?}");
        let changes: HashMap<_, _> = p.take_changes().into_iter().collect();
        let closed = changes[&order_id(1).to_string()].clone().unwrap();
        assert!(
            String::from_utf8(closed).unwrap().contains("closed"),
            "{end:?}"
        );
        // A replayed completion later finds the order closed.
        assert!(apply(&mut p, event(1, OrderStatus::Completed, "10"), T0).is_empty());
    }
}

#[test]
fn orders_never_assigned_leave_no_state() {
    let mut p = CommissionsProcessor::new(master("3", "2"));
    for status in [
        OrderStatus::Created,
        OrderStatus::Review,
        OrderStatus::Rejected,
        OrderStatus::NoRequisite,
    ] {
        assert!(apply(&mut p, event(1, status, "10"), T0).is_empty());
    }
    assert!(p.take_changes().is_empty());
}

#[test]
fn a_completion_without_assignment_settles_at_current_commissions() {
    let mut p = CommissionsProcessor::new(master("4", "1"));
    let out = apply(&mut p, event(1, OrderStatus::Completed, "100"), T0);
    assert_eq!(
        legs(transfer(&out)).iter().map(|l| l.2).collect::<Vec<_>>(),
        vec![dec("-100"), dec("1"), dec("96"), dec("3")]
    );
    assert!(apply(&mut p, event(1, OrderStatus::Completed, "100"), T0).is_empty());
    // Without a trader on the event nothing can be settled.
    let mut bare = event(2, OrderStatus::Completed, "100");
    bare.trader_id = None;
    assert!(apply(&mut p, bare, T0).is_empty());
}

#[test]
fn zero_legs_are_left_out() {
    // Store and trader at the same rate: no platform leg.
    let mut p = CommissionsProcessor::new(master("2", "2"));
    apply(&mut p, event(1, OrderStatus::Assigned, "100"), T0);
    let out = apply(&mut p, event(1, OrderStatus::Completed, "100"), T0);
    assert_eq!(transfer(&out).entries.len(), 3);
    // Trader without reward: no reward leg, no reward posting.
    let mut p = CommissionsProcessor::new(master("2", "0"));
    apply(&mut p, event(1, OrderStatus::Assigned, "100"), T0);
    let out = apply(&mut p, event(1, OrderStatus::Completed, "100"), T0);
    assert_eq!(transfer(&out).entries.len(), 3);
    assert_eq!(trader_postings(&out).len(), 1);
    // A store paying 100 %: no store leg, no store posting.
    let mut p = CommissionsProcessor::new(master("100", "1"));
    apply(&mut p, event(1, OrderStatus::Assigned, "100"), T0);
    let out = apply(&mut p, event(1, OrderStatus::Completed, "100"), T0);
    assert_eq!(transfer(&out).entries.len(), 3);
    assert!(store_postings(&out).is_empty());
    assert!(transfer(&out).entries.iter().all(|e| !e.amount.is_zero()));
}

#[test]
fn missing_commissions_count_as_zero_percent() {
    let md = InMemoryMasterData::default();
    let mut p = CommissionsProcessor::new(Arc::new(md));
    apply(&mut p, event(1, OrderStatus::Assigned, "100"), T0);
    let out = apply(&mut p, event(1, OrderStatus::Completed, "100"), T0);
    assert_eq!(
        legs(transfer(&out)),
        vec![
            (AccountOwnerKind::Trader, AccountKind::Hold, dec("-100")),
            (AccountOwnerKind::Store, AccountKind::Available, dec("100")),
        ]
    );
}

#[test]
fn pay_outs_are_not_settled_here() {
    let mut p = CommissionsProcessor::new(master("3", "2"));
    let mut assigned = event(1, OrderStatus::Assigned, "10");
    assigned.direction = Direction::PayOut;
    let mut completed = event(1, OrderStatus::Completed, "10");
    completed.direction = Direction::PayOut;
    assert!(apply(&mut p, assigned, T0).is_empty());
    assert!(apply(&mut p, completed, T0).is_empty());
}

#[test]
fn closed_orders_are_forgotten_after_their_retention() {
    let mut p = CommissionsProcessor::new(master("3", "2"));
    apply(&mut p, event(1, OrderStatus::Assigned, "10"), T0);
    apply(&mut p, event(1, OrderStatus::Completed, "10"), T0);
    apply(&mut p, event(2, OrderStatus::Assigned, "10"), T0);
    p.take_changes();
    p.tick(T0 + CLOSED_RETENTION_MS - 1);
    assert!(p.take_changes().is_empty());
    p.tick(T0 + CLOSED_RETENTION_MS + 60_000);
    // Only the closed order goes; the open one is kept however old.
    assert_eq!(p.take_changes(), vec![(order_id(1).to_string(), None)]);
}

/// Amounts from 0.000001 to 1 000 000 USDT, percentages 0 to 100 with 4 places.
fn second_trader() -> TraderId {
    TraderId(Uuid::from_u128(0xb0b))
}

fn by(trader: TraderId, e: OrderEvent) -> OrderEvent {
    OrderEvent {
        event_id: derived_id(&[e.event_id.as_bytes(), trader.0.as_bytes()]),
        trader_id: Some(trader),
        ..e
    }
}

fn cancellations(out: &[Emit]) -> Vec<(TraderId, Option<OrderId>)> {
    out.iter()
        .filter_map(|e| match e {
            Emit::Command(c) if c.kind == TraderCommandKind::CancelOrder => {
                Some((c.trader_id, c.order_id))
            }
            _ => None,
        })
        .collect()
}

/// (a) A second trader's book assigned the order too. The first holder keeps it; the second
/// is told to cancel (his hold released); his copy expiring closes nothing; the holder's late
/// completion is settled — on the old rules the phantom's expiry closed the order and the
/// completion was never settled: the store never credited, the hold never released.
#[test]
fn a_second_holder_is_released_and_the_first_is_settled() {
    let mut p = CommissionsProcessor::new(master("3.5", "2.25"));
    let (one, two) = (trader_id(), second_trader());
    assert!(apply(&mut p, event(1, OrderStatus::Assigned, "50"), T0).is_empty());
    let out = apply(
        &mut p,
        by(two, event(1, OrderStatus::Assigned, "50")),
        T0 + 1,
    );
    assert_eq!(cancellations(&out), vec![(two, Some(order_id(1)))]);
    let again = apply(
        &mut p,
        by(two, event(1, OrderStatus::Assigned, "50")),
        T0 + 2,
    );
    assert_eq!(again, out, "the same command, for a replay to deduplicate");

    let expired = by(two, event(1, OrderStatus::Expired, "50"));
    assert!(apply(&mut p, expired, T0 + 3).is_empty());
    let out = apply(&mut p, event(1, OrderStatus::Completed, "50"), T0 + 4);
    assert_eq!(transfer(&out).order_id, Some(order_id(1)));
    assert!(trader_postings(&out).iter().all(|p| p.trader_id == one));

    // A second assignment read after the order closed is released all the same.
    let late = apply(
        &mut p,
        by(two, event(1, OrderStatus::Assigned, "50")),
        T0 + 5,
    );
    assert_eq!(cancellations(&late), vec![(two, Some(order_id(1)))]);
    assert!(apply(&mut p, event(1, OrderStatus::Completed, "50"), T0 + 6).is_empty());
}

fn amount() -> impl Strategy<Value = Decimal> {
    (1i64..=1_000_000_000_000).prop_map(|micros| Decimal::new(micros, 6))
}

fn percentage() -> impl Strategy<Value = Decimal> {
    (0i64..=1_000_000).prop_map(|p| Decimal::new(p, 4))
}

/// One generated event of one of a few orders.
fn step() -> impl Strategy<Value = (u8, u8, Decimal)> {
    (0u8..4, 0u8..6, amount())
}

fn status(n: u8) -> OrderStatus {
    [
        OrderStatus::Assigned,
        OrderStatus::Assigned,
        OrderStatus::Completed,
        OrderStatus::Completed,
        OrderStatus::Expired,
        OrderStatus::ClientConfirmed,
    ][n as usize]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Every split sums to exactly zero, has at most 6 places, and each leg is the formula
    /// rounded (the platform leg within the two roundings), whether the store pays more than
    /// the trader earns or, with allow-loss, less.
    #[test]
    fn the_split_balances_and_follows_the_formula(c in amount(), s in percentage(), t in percentage()) {
        let split = pay_in_split(c, s, t).unwrap();
        prop_assert_eq!(split.crypto_amount, c);
        prop_assert_eq!(-c + split.trader_reward + split.store_share + split.platform_fee, Decimal::ZERO);
        let half_micro = Decimal::new(5, 7);
        let hundred = Decimal::ONE_HUNDRED;
        let exact_reward = c * t / hundred;
        let exact_store = c * (hundred - s) / hundred;
        let exact_platform = c * (s - t) / hundred;
        prop_assert!((split.trader_reward - exact_reward).abs() <= half_micro);
        prop_assert!((split.store_share - exact_store).abs() <= half_micro);
        prop_assert!((split.platform_fee - exact_platform).abs() <= half_micro * Decimal::TWO);
        for leg in [split.trader_reward, split.store_share, split.platform_fee] {
            prop_assert!(leg.normalize().scale() <= 6, "{} has more than 6 places", leg);
        }
        prop_assert!(split.trader_reward >= Decimal::ZERO && split.store_share >= Decimal::ZERO);
        if s >= t {
            prop_assert!(split.platform_fee >= -Decimal::new(1, 6), "platform loses more than rounding");
        }
    }

    /// The transfer the processor writes is balanced for any amount and commissions, and its
    /// postings carry exactly its trader and store legs.
    #[test]
    fn every_transfer_is_balanced_and_matches_its_postings(c in amount(), s in percentage(), t in percentage()) {
        let md = master(&s.to_string(), &t.to_string());
        let mut p = CommissionsProcessor::new(md);
        apply(&mut p, event(1, OrderStatus::Assigned, &c.to_string()), T0);
        let out = apply(&mut p, event(1, OrderStatus::Completed, &c.to_string()), T0);
        let transfer = transfer(&out);
        prop_assert!(transfer.is_balanced());
        prop_assert!(transfer.entries.len() >= 2);
        prop_assert!(transfer.entries.iter().all(|e| !e.amount.is_zero()));
        let leg = |owner, account| transfer.entries.iter()
            .find(|e| e.owner_kind == owner && e.account_kind == account)
            .map(|e| e.amount).unwrap_or_default();
        let tp = trader_postings(&out);
        prop_assert_eq!(tp[0].amount, -leg(AccountOwnerKind::Trader, AccountKind::Hold));
        let reward: Decimal = tp.iter().filter(|p| p.kind == PostingKind::Credit).map(|p| p.amount).sum();
        prop_assert_eq!(reward, leg(AccountOwnerKind::Trader, AccountKind::Available));
        let store: Decimal = store_postings(&out).iter().map(|p| p.amount).sum();
        prop_assert_eq!(store, leg(AccountOwnerKind::Store, AccountKind::Available));
    }

    /// Restoring the exported state answers the next events exactly as the original.
    #[test]
    fn restore_round_trips(first in proptest::collection::vec(step(), 0..30), next in proptest::collection::vec(step(), 0..30)) {
        let md = master("3.5", "2.25");
        let drive = |p: &mut CommissionsProcessor, steps: &[(u8, u8, Decimal)]| -> Vec<Emit> {
            steps.iter().flat_map(|(n, s, c)| apply(p, event(*n as u128, status(*s), &c.to_string()), T0)).collect()
        };
        let mut original = CommissionsProcessor::new(md.clone());
        drive(&mut original, &first);
        let mut exported: HashMap<String, Option<Vec<u8>>> = HashMap::new();
        exported.extend(original.take_changes());
        let mut restored = CommissionsProcessor::new(md as Arc<dyn MasterData>);
        for (key, value) in &exported {
            restored.restore(key, value.as_deref());
        }
        prop_assert_eq!(drive(&mut original, &next), drive(&mut restored, &next));
    }
}
