//! Fencing (issue 14 (e)), against a real broker (embedded): an owner frozen in the middle of
//! a batch for longer than its session, whose partitions went to another instance meanwhile,
//! writes the rest of its batch when it resumes. Those late writes must not count: the next
//! restore ignores what an owner wrote after a newer owner's restore marker.

mod support;

use jivapay_domain::UsdtAmount;
use jivapay_processors::core::{Clock, ManualClock};
use jivapay_processors::runtime::{CrashPoint, CrashPoints};
use jivapay_processors::ProcessorKind;
use jivapay_schemas::records::{
    LedgerTransfer, OrderEvent, OrderEventKind, TraderCapacity, TraderCommand, TraderCommandKind,
};
use jivapay_schemas::samples;
use jivapay_schemas::topics::TRADER_COMMANDS;
use jivapay_schemas::topics::{LEDGER_TRANSFERS, ORDERS_EVENTS, ORDERS_ROUTED, TRADER_CAPACITY};
use rust_decimal::Decimal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use support::*;

/// Steps of a book that freezes: once `armed`, it stops after the outputs of its next batch
/// until `release` says go, then writes its state records and dies before committing.
fn freezing(armed: Arc<AtomicBool>, release: mpsc::Receiver<()>) -> CrashPoints {
    let release = Mutex::new(release);
    let frozen = AtomicBool::new(false);
    CrashPoints::new(move |at| match at {
        CrashPoint::AfterOutputs if armed.load(Ordering::SeqCst) => {
            frozen.store(true, Ordering::SeqCst);
            release.lock().unwrap().recv().ok();
            false
        }
        CrashPoint::AfterState => frozen.load(Ordering::SeqCst),
        _ => false,
    })
}

fn trader_command(n: u128, kind: TraderCommandKind, amount: Option<i64>) -> TraderCommand {
    let order =
        (kind == TraderCommandKind::TraderConfirmed).then(|| samples::order_routed().order_id);
    TraderCommand {
        amount: amount.map(|a| UsdtAmount::try_from(Decimal::from(a)).unwrap()),
        ..command(n, kind, order)
    }
}

fn open_amounts(capacity: &TraderCapacity) -> usize {
    capacity
        .requisites
        .iter()
        .map(|r| r.open_amounts.len())
        .sum()
}

/// Book V assigns the sample order and freezes before writing its state records; its
/// partitions go to book W (V's session expired), which completes the order and takes a
/// deposit. V resumes and
/// writes its state records — the order open, its amount held — after W's. A book X restored
/// from the changelog then must be W's: before fencing it took V's late records as the
/// newest and brought the completed order back as open, its amount held for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn e_an_owner_frozen_past_its_session_cannot_bring_its_state_back() {
    let pipeline = Pipeline::new().await;
    let trader = samples::trader();
    let master = master_with(std::slice::from_ref(&trader));
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::at(samples::AT + 1_000));
    let key = trader.trader_id.to_string();
    let (events, capacities, transfers) = (
        pipeline.reader(ORDERS_EVENTS),
        pipeline.reader(TRADER_CAPACITY),
        pipeline.reader(LEDGER_TRANSFERS),
    );

    let (armed, (release, released)) = (Arc::new(AtomicBool::new(false)), mpsc::channel());
    let start = |group: &str, steps: CrashPoints| {
        pipeline.start_with(
            ProcessorKind::TraderBook,
            book_maker(&master),
            clock.clone(),
            group,
            steps,
        )
    };
    let v = start("fencing.v", freezing(armed.clone(), released));
    let deposit = trader_command(1, TraderCommandKind::Deposit, Some(1_000));
    pipeline.send(TRADER_COMMANDS, &key, &deposit).await;
    read_all::<LedgerTransfer>(&transfers, 1).await;
    armed.store(true, Ordering::SeqCst);
    pipeline
        .send(ORDERS_ROUTED, &key, &samples::order_routed())
        .await;
    let assigned = read_all::<OrderEvent>(&events, 1).await;
    assert!(assigned.iter().any(|e| e.kind == OrderEventKind::Assigned));

    // V is frozen; its partitions go to W, which completes the order.
    let w = start("fencing.w", CrashPoints::default());
    let confirm = trader_command(2, TraderCommandKind::TraderConfirmed, None);
    pipeline.send(TRADER_COMMANDS, &key, &confirm).await;
    let completed = read_all::<OrderEvent>(&events, 1).await;
    assert!(
        completed
            .iter()
            .any(|e| e.kind == OrderEventKind::Completed),
        "W completed the order: {completed:?}"
    );
    // And a deposit: W's newest logged batch then no longer names the order, so a restore
    // takes the order's state from its newest state record.
    let more = trader_command(4, TraderCommandKind::Deposit, Some(2));
    pipeline.send(TRADER_COMMANDS, &key, &more).await;
    read_all::<LedgerTransfer>(&transfers, 1).await;
    w.stop().await;
    let by_w = read_all::<TraderCapacity>(&capacities, 1).await;
    let by_w = by_w.last().unwrap().clone();
    assert_eq!(open_amounts(&by_w), 0, "W holds nothing open");

    // V resumes: its state records land after W's, and it dies.
    release.send(()).unwrap();
    v.crashed(CrashPoint::AfterState).await;

    // X restores and is touched by a deposit of 1 USDT: it publishes what it restored.
    let x = start("fencing.x", CrashPoints::default());
    let top_up = trader_command(3, TraderCommandKind::Deposit, Some(1));
    pipeline.send(TRADER_COMMANDS, &key, &top_up).await;
    let by_x = read_all::<TraderCapacity>(&capacities, 1).await;
    x.stop().await;
    for reader in [events, capacities, transfers] {
        reader.close().ok();
    }
    pipeline.close();

    let by_x = by_x.last().unwrap();
    assert_eq!(
        open_amounts(by_x),
        0,
        "the completed order came back open from V's late records"
    );
    assert_eq!(
        by_x.free_deposit.value(),
        by_w.free_deposit.value() + Decimal::ONE,
        "X continues from W's state"
    );
}
