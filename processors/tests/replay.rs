//! Replays never decide again (ARCHITECTURE §2, principle 4), against a real broker
//! (embedded): a processor stopped at each step of a batch, as if its process died there,
//! and restarted after its clock or master data moved on, emits what it had decided — never
//! a second, different decision. And time is judged by when things happened (principle 8): a
//! confirmation accepted before the deadline wins over the timer however late it is read.

use jivapay_domain::{OrderId, UsdtAmount};
use jivapay_platform::kafka::{Broker, RecordConsumer, RecordProducer};
use jivapay_processors::core::{Clock, InMemoryMasterData, ManualClock, MasterData, Processor};
use jivapay_processors::router::RouterProcessor;
use jivapay_processors::runtime::{run, CrashPoint, CrashPoints, RuntimeConfig, RuntimeError};
use jivapay_processors::trader_book::TraderBookProcessor;
use jivapay_processors::ProcessorKind;
use jivapay_schemas::records::{
    LedgerTransfer, OrderEvent, OrderEventKind, OrderRouted, OrderScreened, Setting, SettingType,
    Trader, TraderCapacity, TraderCommand, TraderCommandKind,
};
use jivapay_schemas::topics::{
    LEDGER_TRANSFERS, ORDERS_EVENTS, ORDERS_ROUTED, ORDERS_SCREENED, TRADER_COMMANDS,
};
use jivapay_schemas::{samples, Record, SchemaRegistry, TOPICS};
use rust_decimal::Decimal;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How long a topic must stay silent before a reader takes it as fully read.
const QUIET: Duration = Duration::from_secs(3);

struct Pipeline {
    broker: Broker,
    registry: SchemaRegistry,
    producer: RecordProducer,
}

impl Pipeline {
    async fn new() -> Pipeline {
        let broker = Broker::embedded(Duration::from_secs(10)).unwrap();
        broker.ensure_topics(TOPICS).await.unwrap();
        let registry = SchemaRegistry::builtin().unwrap();
        let producer = RecordProducer::new(&broker, registry.clone(), "replay-test").unwrap();
        Pipeline {
            broker,
            registry,
            producer,
        }
    }

    async fn send<T: Record>(&self, topic: &str, key: &str, record: &T) {
        self.producer.send(topic, key, record).await.unwrap();
    }

    fn reader(&self, topic: &str) -> RecordConsumer {
        let group = format!("reader-{}", Uuid::new_v4());
        RecordConsumer::subscribe(&self.broker, self.registry.clone(), &group, &[topic]).unwrap()
    }

    /// Runs processor `kind` made by `make` until `stop`, or until `crash_at` says to stop at
    /// a crash point (once).
    fn start<P: Processor + Sync>(
        &self,
        kind: ProcessorKind,
        make: impl Fn() -> P + Send + Sync + 'static,
        clock: Arc<dyn Clock>,
        crash_at: Option<CrashPoint>,
    ) -> Running {
        let stop = CancellationToken::new();
        let mut config = RuntimeConfig {
            tick_interval_ms: 100,
            time_markers: kind.time_markers(),
            ..RuntimeConfig::new(format!("replay.{}", kind.name()))
        };
        if let Some(point) = crash_at {
            let crashed = AtomicBool::new(false);
            config.crash_points =
                CrashPoints::new(move |at| at == point && !crashed.swap(true, Ordering::SeqCst));
        }
        let (broker, registry, token) = (self.broker.clone(), self.registry.clone(), stop.clone());
        let handle = tokio::spawn(async move {
            run(
                &broker,
                registry,
                kind.inputs(),
                kind.changelog(),
                make,
                clock,
                config,
                token,
            )
            .await
        });
        Running { stop, handle }
    }

    fn close(self) {
        self.producer.close(Duration::from_secs(5)).ok();
    }
}

struct Running {
    stop: CancellationToken,
    handle: tokio::task::JoinHandle<Result<(), RuntimeError>>,
}

impl Running {
    /// Waits for the loop to stop at its crash point.
    async fn crashed(self, point: CrashPoint) {
        let ended = tokio::time::timeout(Duration::from_secs(60), self.handle)
            .await
            .expect("the loop reaches its crash point in time")
            .unwrap();
        match ended {
            Err(RuntimeError::Crashed(at)) => assert_eq!(at, point),
            other => panic!("expected a crash at {point:?}, got {other:?}"),
        }
    }

    async fn stop(self) {
        self.stop.cancel();
        self.handle.await.unwrap().expect("the loop stops cleanly");
    }
}

/// Every record of `reader`'s topic until it stays quiet for [`QUIET`], waiting at most a
/// minute for the first `at_least`.
async fn read_all<T: Record>(reader: &RecordConsumer, at_least: usize) -> Vec<T> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut read = Vec::new();
    loop {
        let wait = if read.len() < at_least {
            deadline.saturating_duration_since(tokio::time::Instant::now())
        } else {
            QUIET
        };
        match tokio::time::timeout(wait, reader.next::<T>()).await {
            Ok(next) => read.push(next.unwrap().value.unwrap()),
            Err(_) if read.len() < at_least => {
                panic!("only {} of {at_least} records in time", read.len())
            }
            Err(_) => return read,
        }
    }
}

// ----- the router: a replay never routes an order to another trader -----

fn trader(n: u128, priority: i32) -> Trader {
    let mut requisite = samples::trader().requisites[0].clone();
    requisite.requisite_id = Uuid::from_u128(0x8000 + n).into();
    requisite.min_interval_secs = 0;
    requisite.daily_count_limit = None;
    requisite.daily_turnover_limit = None;
    Trader {
        trader_id: Uuid::from_u128(0x7000 + n).into(),
        priority,
        requisites: vec![requisite],
        ..samples::trader()
    }
}

/// Traders 1 (first by priority) and 2 in pool `RUB:sbp`, both with room, and a RUB rate.
fn two_traders() -> Arc<InMemoryMasterData> {
    let master = InMemoryMasterData::default();
    for t in [trader(1, 1), trader(2, 2)] {
        let capacity = TraderCapacity {
            trader_id: t.trader_id,
            free_deposit: UsdtAmount::try_from(Decimal::from(1_000_000)).unwrap(),
            requisites: Vec::new(),
            ..samples::trader_capacity()
        };
        master
            .capacities
            .lock()
            .unwrap()
            .insert(t.trader_id, capacity);
        master.traders.lock().unwrap().insert(t.trader_id, t);
    }
    master
        .rates
        .lock()
        .unwrap()
        .insert("RUB".into(), samples::rate());
    Arc::new(master)
}

fn screened(n: u128) -> OrderScreened {
    OrderScreened {
        order_id: OrderId(Uuid::from_u128(0x0de0_0000 + n)),
        excluded_traders: Vec::new(),
        refusals: Vec::new(),
        attempt: 0,
        ..samples::order_screened()
    }
}

async fn screen(pipeline: &Pipeline, orders: std::ops::Range<u128>) {
    for n in orders {
        let order = screened(n);
        pipeline.send(ORDERS_SCREENED, &order.pool, &order).await;
    }
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

fn setting(key: &str, value: &str) -> Setting {
    Setting {
        key: key.into(),
        value_type: SettingType::Integer,
        value_json: value.into(),
        updated_at: 0,
    }
}

fn command(n: u128, kind: TraderCommandKind, order: Option<OrderId>) -> TraderCommand {
    TraderCommand {
        command_id: Uuid::from_u128(0x2000 + n),
        order_id: order,
        kind,
        amount: None,
        resolution: None,
        receipt_key: None,
        ..samples::trader_command()
    }
}

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
        let master = Arc::new(InMemoryMasterData::default());
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

/// A book with the sample trader (a day to confirm), funded, with the sample order assigned
/// at `clock`; the book is stopped again. Returns the events read so far.
async fn book_with_an_assigned_order(
    pipeline: &Pipeline,
    master: &Arc<InMemoryMasterData>,
    events: &RecordConsumer,
    clock: &ManualClock,
) -> Vec<OrderEvent> {
    let trader = samples::trader();
    master
        .traders
        .lock()
        .unwrap()
        .insert(trader.trader_id, trader.clone());
    let timeout = "orders.trader_confirmation_timeout_secs";
    master
        .settings
        .lock()
        .unwrap()
        .insert(timeout.into(), setting(timeout, "86400"));
    let key = trader.trader_id.to_string();
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

fn book_maker(
    master: &Arc<InMemoryMasterData>,
) -> impl Fn() -> TraderBookProcessor + Clone + Send + Sync + 'static {
    let master = master.clone();
    move || TraderBookProcessor::new(master.clone() as Arc<dyn MasterData>)
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
