//! One holder per order (issue 14, item 3), against a real broker (embedded), with the trader
//! book and commissions running: should a second trader's book ever assign an order already
//! held (a duplicate no stage caught), commissions has it cancel its copy — his hold comes
//! back — and the holder's completion is settled.

mod support;

use jivapay_domain::UsdtAmount;
use jivapay_processors::commissions::CommissionsProcessor;
use jivapay_processors::core::{Clock, InMemoryMasterData, ManualClock, MasterData};
use jivapay_processors::ProcessorKind;
use jivapay_schemas::records::{
    AccountKind, LedgerTransfer, OrderEvent, OrderEventKind, OrderRouted, TraderCapacity,
    TraderCommand, TraderCommandKind, TransferKind,
};
use jivapay_schemas::samples;
use jivapay_schemas::topics::TRADER_COMMANDS;
use jivapay_schemas::topics::{LEDGER_TRANSFERS, ORDERS_EVENTS, ORDERS_ROUTED, TRADER_CAPACITY};
use rust_decimal::Decimal;
use std::sync::Arc;
use support::*;

fn deposit(n: u128, trader: &jivapay_schemas::records::Trader) -> TraderCommand {
    TraderCommand {
        trader_id: trader.trader_id,
        amount: Some(UsdtAmount::try_from(Decimal::from(1_000)).unwrap()),
        ..command(n, TraderCommandKind::Deposit, None)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_assignment_is_released_and_the_holder_settled() {
    let pipeline = Pipeline::new().await;
    let master = Arc::new(InMemoryMasterData::default());
    let (holder, copy) = (samples::trader(), trader(2, 2));
    for t in [&holder, &copy] {
        master
            .traders
            .lock()
            .unwrap()
            .insert(t.trader_id, t.clone());
    }
    let timeout = "orders.trader_confirmation_timeout_secs";
    master
        .settings
        .lock()
        .unwrap()
        .insert(timeout.into(), setting(timeout, "86400"));
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::at(samples::AT + 1_000));
    let (events, transfers, capacities) = (
        pipeline.reader(ORDERS_EVENTS),
        pipeline.reader(LEDGER_TRANSFERS),
        pipeline.reader(TRADER_CAPACITY),
    );
    let book = pipeline.start(
        ProcessorKind::TraderBook,
        book_maker(&master),
        clock.clone(),
        None,
    );
    let commissions = {
        let master = master.clone();
        move || CommissionsProcessor::new(master.clone() as Arc<dyn MasterData>)
    };
    let settle = pipeline.start(ProcessorKind::Commissions, commissions, clock, None);
    for (n, t) in [(1, &holder), (2, &copy)] {
        let key = t.trader_id.to_string();
        pipeline.send(TRADER_COMMANDS, &key, &deposit(n, t)).await;
    }
    read_all::<LedgerTransfer>(&transfers, 2).await;

    let order = samples::order_routed();
    let key = holder.trader_id.to_string();
    pipeline.send(ORDERS_ROUTED, &key, &order).await;
    let mut seen = read_all::<OrderEvent>(&events, 1).await;
    let duplicate = OrderRouted {
        trader_id: copy.trader_id,
        requisite_id: copy.requisites[0].requisite_id,
        ..order.clone()
    };
    pipeline
        .send(ORDERS_ROUTED, &copy.trader_id.to_string(), &duplicate)
        .await;
    // The copy is assigned, then cancelled on commissions' word.
    seen.extend(read_all::<OrderEvent>(&events, 2).await);
    let confirm = command(3, TraderCommandKind::TraderConfirmed, Some(order.order_id));
    pipeline.send(TRADER_COMMANDS, &key, &confirm).await;
    seen.extend(read_all::<OrderEvent>(&events, 1).await);
    let settled = read_all::<LedgerTransfer>(&transfers, 1).await;
    let copy_capacity = read_all::<TraderCapacity>(&capacities, 3)
        .await
        .into_iter()
        .rfind(|c| c.trader_id == copy.trader_id)
        .expect("the copy's capacity");
    settle.stop().await;
    book.stop().await;
    for reader in [events, transfers, capacities] {
        reader.close().ok();
    }
    pipeline.close();

    let by = |trader: &jivapay_schemas::records::Trader| -> Vec<OrderEventKind> {
        seen.iter()
            .filter(|e| e.trader_id == Some(trader.trader_id))
            .map(|e| e.kind)
            .collect()
    };
    assert_eq!(
        by(&copy),
        [OrderEventKind::Assigned, OrderEventKind::Cancelled]
    );
    let cancelled = seen
        .iter()
        .find(|e| e.kind == OrderEventKind::Cancelled)
        .unwrap();
    assert_eq!(
        cancelled.reason_detail.as_deref(),
        Some("duplicate_assignment")
    );
    assert_eq!(
        copy_capacity.free_deposit.value(),
        Decimal::from(1_000),
        "the copy's hold came back"
    );
    assert!(by(&holder).contains(&OrderEventKind::Completed));
    let pay_in = settled
        .iter()
        .find(|t| t.kind == TransferKind::PayIn)
        .expect("the holder's completion is settled");
    let hold = pay_in
        .entries
        .iter()
        .find(|e| e.account_kind == AccountKind::Hold)
        .unwrap();
    assert_eq!(hold.owner_id, Some(holder.trader_id.into()));
}
