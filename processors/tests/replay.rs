//! Replays never decide again (ARCHITECTURE §2, principle 4), against a real broker
//! (embedded): a processor stopped at each step of a batch, as if its process died there,
//! and restarted after its clock or master data moved on, emits what it had decided — never
//! a second, different decision. And time is judged by when things happened (principle 8): a
//! confirmation accepted before the deadline wins over the timer however late it is read.

mod support;

use jivapay_domain::{OrderId, UsdtAmount};
use jivapay_platform::kafka::RecordConsumer;
use jivapay_processors::core::{Clock, InMemoryMasterData, ManualClock, MasterData};
use jivapay_processors::router::RouterProcessor;
use jivapay_processors::runtime::CrashPoint;
use jivapay_processors::ProcessorKind;
use jivapay_schemas::records::{
    LedgerTransfer, OrderEvent, OrderEventKind, OrderRouted, TraderCommand, TraderCommandKind,
};
use jivapay_schemas::samples;
use jivapay_schemas::topics::{LEDGER_TRANSFERS, ORDERS_EVENTS, ORDERS_ROUTED, TRADER_COMMANDS};
use rust_decimal::Decimal;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use support::*;
use uuid::Uuid;

// ----- the router: a replay never routes an order to another trader -----

/// Traders 1 (first by priority) and 2 in pool `RUB:sbp`, both with room, and a RUB rate.
fn two_traders() -> Arc<InMemoryMasterData> {
    master_with(&[trader(1, 1), trader(2, 2)])
}

/// Per order, every routing read, which must all be one and the same record.
fn one_routing_each(routed: &[OrderRouted]) -> BTreeMap<OrderId, OrderRouted> {
    let mut by_order: BTreeMap<OrderId, OrderRouted> = BTreeMap::new();
    for r in routed {
        let first = by_order.entry(r.order_id).or_insert_with(|| r.clone());
        assert_eq!(first, r, "order {} routed twice, differently", r.order_id);
    }
    by_order
}

/// The router stops at `point` of its first batch; trader 1 then leaves work, so a router
/// deciding again would send the orders to trader 2. Returns each order's routing.
async fn router_restarted_after_a_crash(point: CrashPoint) -> BTreeMap<OrderId, OrderRouted> {
    let pipeline = Pipeline::new().await;
    let master = two_traders();
    let routed = pipeline.reader(ORDERS_ROUTED);
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::at(samples::AT));
    let make = {
        let master = master.clone();
        move || RouterProcessor::new(master.clone() as Arc<dyn MasterData>)
    };

    screen(&pipeline, 0..20).await;
    let first = pipeline.start(
        ProcessorKind::Router,
        make.clone(),
        clock.clone(),
        Some(point),
    );
    first.crashed(point).await;
    let sent_before_restart = read_all::<OrderRouted>(&routed, 0).await;
    if point == CrashPoint::AfterLog {
        assert!(
            sent_before_restart.is_empty(),
            "nothing is sent before the log"
        );
    } else {
        assert!(!sent_before_restart.is_empty(), "the outputs went out");
    }

    master
        .traders
        .lock()
        .unwrap()
        .get_mut(&trader(1, 1).trader_id)
        .unwrap()
        .is_in_work = false;
    let second = pipeline.start(ProcessorKind::Router, make, clock, None);
    screen(&pipeline, 20..25).await;
    let mut all = sent_before_restart;
    all.extend(read_all::<OrderRouted>(&routed, 25).await);
    second.stop().await;
    routed.close().ok();
    pipeline.close();
    let by_order = one_routing_each(&all);
    assert_eq!(by_order.len(), 25, "every order routed");
    by_order
}

fn traders_of(
    by_order: &BTreeMap<OrderId, OrderRouted>,
    orders: std::ops::Range<u128>,
) -> Vec<Uuid> {
    let mut traders: Vec<Uuid> = orders
        .map(|n| by_order[&screened(n).order_id].trader_id.0)
        .collect();
    traders.dedup();
    traders
}

/// (a) On the old order of steps (outputs, then changelog) the orders of the batch were
/// routed again after the restart — to trader 2, while trader 1's book held them too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_stopped_after_its_outputs_never_routes_an_order_again() {
    let by_order = router_restarted_after_a_crash(CrashPoint::AfterOutputs).await;
    let (one, two) = (trader(1, 1).trader_id.0, trader(2, 2).trader_id.0);
    assert_eq!(
        traders_of(&by_order, 20..25),
        vec![two],
        "orders after the restart see trader 1 out of work"
    );
    let before: Vec<Uuid> = by_order
        .values()
        .filter(|r| r.trader_id.0 == one)
        .map(|r| r.order_id.0)
        .collect();
    assert!(!before.is_empty(), "the crashed batch stays with trader 1");
}

/// A batch whose decisions were logged but never sent goes out after the restart as it was
/// decided — to trader 1, though he is out of work by then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_stopped_after_its_log_sends_what_it_had_decided() {
    let by_order = router_restarted_after_a_crash(CrashPoint::AfterLog).await;
    let one = trader(1, 1).trader_id.0;
    assert_eq!(traders_of(&by_order, 0..1), vec![one], "the logged batch");
    assert_ne!(traders_of(&by_order, 20..25), vec![one]);
}

// ----- the trader book: a replay at a later clock gives no second final answer -----

/// Every event of `order`, by sequence: two different events under one sequence fail.
fn events_by_sequence(events: &[OrderEvent], order: OrderId) -> BTreeMap<i32, OrderEventKind> {
    let mut by_sequence: HashMap<i32, &OrderEvent> = HashMap::new();
    for e in events.iter().filter(|e| e.order_id == order) {
        let first = by_sequence.entry(e.sequence).or_insert(e);
        assert_eq!(
            (first.event_id, first.kind),
            (e.event_id, e.kind),
            "two events with sequence {}",
            e.sequence
        );
    }
    by_sequence.into_iter().map(|(s, e)| (s, e.kind)).collect()
}

/// A pipeline whose book has the sample order assigned and is stopped again.
struct Scene {
    pipeline: Pipeline,
    master: Arc<InMemoryMasterData>,
    events: RecordConsumer,
    clock: ManualClock,
    /// The events read so far.
    seen: Vec<OrderEvent>,
}

impl Scene {
    async fn with_an_assigned_order() -> Scene {
        let pipeline = Pipeline::new().await;
        let master = master_with(&[samples::trader()]);
        let events = pipeline.reader(ORDERS_EVENTS);
        let clock = ManualClock::at(samples::AT + 1_000);
        let seen = book_with_an_assigned_order(&pipeline, &master, &events, &clock).await;
        Scene {
            pipeline,
            master,
            events,
            clock,
            seen,
        }
    }
}

/// A book with the sample trader of `master`, funded, with the sample order assigned
/// at `clock`; the book is stopped again. Returns the events read so far.
async fn book_with_an_assigned_order(
    pipeline: &Pipeline,
    master: &Arc<InMemoryMasterData>,
    events: &RecordConsumer,
    clock: &ManualClock,
) -> Vec<OrderEvent> {
    let key = samples::trader().trader_id.to_string();
    let deposit = TraderCommand {
        amount: Some(UsdtAmount::try_from(Decimal::from(1_000)).unwrap()),
        ..command(1, TraderCommandKind::Deposit, None)
    };
    let book = pipeline.start(
        ProcessorKind::TraderBook,
        book_maker(master),
        Arc::new(clock.clone()),
        None,
    );
    // The deposit first: an order routed to a trader without one is refused.
    let transfers = pipeline.reader(LEDGER_TRANSFERS);
    pipeline.send(TRADER_COMMANDS, &key, &deposit).await;
    read_all::<LedgerTransfer>(&transfers, 1).await;
    transfers.close().ok();
    pipeline
        .send(ORDERS_ROUTED, &key, &samples::order_routed())
        .await;
    let assigned = read_all::<OrderEvent>(events, 1).await;
    assert!(assigned.iter().any(|e| e.kind == OrderEventKind::Assigned));
    book.stop().await;
    assigned
}

/// (b) The customer's confirmation was accepted a second before the payment window closed,
/// but the book reads it only after the window (it was down): the confirmation wins. Before
/// time markers the book fired the expiry first — the timer ran on processing time — and then
/// refused the confirmation the customer had been answered 202 for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b_a_confirmation_accepted_in_time_wins_however_late_the_book_reads_it() {
    let scene = Scene::with_an_assigned_order().await;

    let order = samples::order_routed();
    let deadline = order.expires_at.unwrap();
    let confirmed = TraderCommand {
        issued_at: deadline - 1_000,
        ..command(2, TraderCommandKind::ClientConfirmed, Some(order.order_id))
    };
    let key = order.trader_id.to_string();
    scene.pipeline.send(TRADER_COMMANDS, &key, &confirmed).await;
    scene.clock.set(deadline + 60_000);
    scene.restarted_late_confirms().await;
}

/// (c) On the old order of steps the restarted book, restored to ASSIGNED at a clock past
/// the payment window, expired the order with the sequence CLIENT_CONFIRMED had already used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_book_stopped_after_its_outputs_gives_no_second_final_answer() {
    let scene = Scene::with_an_assigned_order().await;
    let order = samples::order_routed();
    let key = order.trader_id.to_string();

    let confirmed = command(2, TraderCommandKind::ClientConfirmed, Some(order.order_id));
    scene.pipeline.send(TRADER_COMMANDS, &key, &confirmed).await;
    let crash = CrashPoint::AfterOutputs;
    let second = scene.pipeline.start(
        ProcessorKind::TraderBook,
        book_maker(&scene.master),
        Arc::new(scene.clock.clone()),
        Some(crash),
    );
    second.crashed(crash).await;

    // The restart comes after the payment window: only the logged state says "confirmed".
    scene.clock.set(order.expires_at.unwrap() + 60_000);
    scene.restarted_late_confirms().await;
}

impl Scene {
    /// Starts the book once more at the scene's clock (past the sample order's payment
    /// window) and checks that, with the events seen before, the order was confirmed and
    /// never expired.
    async fn restarted_late_confirms(self) {
        let book = self.pipeline.start(
            ProcessorKind::TraderBook,
            book_maker(&self.master),
            Arc::new(self.clock.clone()),
            None,
        );
        let mut all = self.seen;
        all.extend(read_all::<OrderEvent>(&self.events, 1).await);
        book.stop().await;
        self.events.close().ok();
        self.pipeline.close();

        let kinds: Vec<OrderEventKind> = events_by_sequence(&all, samples::order_routed().order_id)
            .into_values()
            .collect();
        assert_eq!(
            kinds,
            vec![OrderEventKind::Assigned, OrderEventKind::ClientConfirmed],
            "confirmed, and never expired"
        );
    }
}
