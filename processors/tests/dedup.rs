//! Exact deduplication (issue 14 (d)), against a real broker (embedded): a processor that
//! sends its newest logged batch again after a crash sends every record of it a second time,
//! however many there are; the processors reading them apply each once.

mod support;

use jivapay_domain::{FiatAmount, TraderId, UsdtAmount};
use jivapay_processors::core::{Clock, ManualClock, MasterData};
use jivapay_processors::router::RouterProcessor;
use jivapay_processors::runtime::CrashPoint;
use jivapay_processors::ProcessorKind;
use jivapay_schemas::records::{
    LedgerTransfer, OrderEvent, OrderEventKind, OrderRouted, OrderScreened, TraderCommand,
    TraderCommandKind,
};
use jivapay_schemas::samples;
use jivapay_schemas::topics::{
    LEDGER_TRANSFERS, ORDERS_EVENTS, ORDERS_ROUTED, ORDERS_SCREENED, TRADER_COMMANDS,
};
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::sync::Arc;
use support::*;

/// More orders for one trader than the book's id windows held (128).
const ORDERS: u128 = 300;

/// Order `n`, each of its own amount (one requisite holds one open order per amount).
fn order(n: u128) -> OrderScreened {
    let amount = Decimal::from(1_000 + n as i64);
    OrderScreened {
        fiat_amount: FiatAmount::try_from(amount).unwrap(),
        ..screened(n)
    }
}

fn trader_command(trader_id: TraderId, command: TraderCommand) -> TraderCommand {
    TraderCommand {
        trader_id,
        ..command
    }
}

/// How many ASSIGNED records each order has on the topic, sent again or not.
fn assignments(events: &[OrderEvent]) -> BTreeMap<uuid::Uuid, usize> {
    let mut count = BTreeMap::new();
    for e in events.iter().filter(|e| e.kind == OrderEventKind::Assigned) {
        *count.entry(e.order_id.0).or_insert(0) += 1;
    }
    count
}

/// (d) The router stops after producing a batch of 300 orders for one trader, whose book
/// assigns them all; the trader completes every one. The restarted router sends the whole
/// batch again. On the book's windows of the last 128 ids, the 172 oldest came back as new
/// orders — assigned a second time, their amounts held again; read by origin, none does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d_a_batch_sent_again_longer_than_any_window_is_applied_once() {
    let pipeline = Pipeline::new().await;
    let master = master_with(&[trader(1, 1)]);
    let trader_id = trader(1, 1).trader_id;
    let clock = ManualClock::at(samples::AT + 1_000);
    let (events, routed, transfers) = (
        pipeline.reader(ORDERS_EVENTS),
        pipeline.reader(ORDERS_ROUTED),
        pipeline.reader(LEDGER_TRANSFERS),
    );
    let book = pipeline.start(
        ProcessorKind::TraderBook,
        book_maker(&master),
        Arc::new(clock.clone()),
        None,
    );
    let deposit = TraderCommand {
        amount: Some(UsdtAmount::try_from(Decimal::from(100_000_000)).unwrap()),
        ..command(1, TraderCommandKind::Deposit, None)
    };
    let key = trader_id.to_string();
    pipeline
        .send(TRADER_COMMANDS, &key, &trader_command(trader_id, deposit))
        .await;
    read_all::<LedgerTransfer>(&transfers, 1).await;
    transfers.close().ok();

    for n in 0..ORDERS {
        let order = order(n);
        pipeline.send(ORDERS_SCREENED, &order.pool, &order).await;
    }
    let router = {
        let master = master.clone();
        move || RouterProcessor::new(master.clone() as Arc<dyn MasterData>)
    };
    let clock: Arc<dyn Clock> = Arc::new(clock);
    let crash = CrashPoint::AfterOutputs;
    let first = pipeline.start(
        ProcessorKind::Router,
        router.clone(),
        clock.clone(),
        Some(crash),
    );
    first.crashed(crash).await;
    let in_crashed_batch = read_all::<OrderRouted>(&routed, 1).await.len();
    assert!(
        in_crashed_batch > 128,
        "the crashed batch routed {in_crashed_batch} orders: more than a window's 128"
    );

    let mut seen = read_all::<OrderEvent>(&events, in_crashed_batch).await;
    let assigned: Vec<_> = assignments(&seen).into_keys().collect();
    assert_eq!(
        assigned.len(),
        in_crashed_batch,
        "every routed order assigned"
    );
    for (n, order_id) in (0..).zip(&assigned) {
        let confirm = command(
            10_000 + n,
            TraderCommandKind::TraderConfirmed,
            Some((*order_id).into()),
        );
        pipeline
            .send(TRADER_COMMANDS, &key, &trader_command(trader_id, confirm))
            .await;
    }
    seen.extend(read_all::<OrderEvent>(&events, assigned.len()).await);
    let completed = seen
        .iter()
        .filter(|e| e.kind == OrderEventKind::Completed)
        .count();
    assert_eq!(
        completed,
        assigned.len(),
        "the trader completed every order"
    );

    // The restarted router sends its logged batch again, then routes the rest.
    let second = pipeline.start(ProcessorKind::Router, router, clock, None);
    let sent_again_and_rest = read_all::<OrderRouted>(&routed, ORDERS as usize).await;
    assert!(
        sent_again_and_rest.len() >= ORDERS as usize,
        "the batch went out again"
    );
    seen.extend(read_all::<OrderEvent>(&events, ORDERS as usize - in_crashed_batch).await);
    second.stop().await;
    book.stop().await;
    for reader in [events, routed] {
        reader.close().ok();
    }
    pipeline.close();

    let twice: Vec<_> = assignments(&seen)
        .into_iter()
        .filter(|(_, count)| *count > 1)
        .collect();
    assert!(twice.is_empty(), "{} orders assigned twice", twice.len());
    assert_eq!(
        assignments(&seen).len(),
        ORDERS as usize,
        "every order assigned"
    );
}
