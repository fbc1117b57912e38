//! Fencing (issue 14 (e)), against a real broker (embedded): an owner frozen in the middle of
//! a batch for longer than its session, whose partitions went to another instance meanwhile,
//! writes on when it resumes. Those late writes must not count: the owner notices that its
//! changelog record landed after someone else's and stops (no output of a batch it logged
//! late, no commit), the next restore ignores what it wrote after a newer owner's restore
//! marker, and writes again the keys it left on top, so compaction keeps the newer owner's.

mod support;

use jivapay_domain::OrderId;
use jivapay_domain::UsdtAmount;
use jivapay_platform::kafka::{DeadLetters, RecordConsumer};
use jivapay_processors::core::InMemoryMasterData;
use jivapay_processors::core::{Clock, ManualClock};
use jivapay_processors::runtime::{restore, Repairs};
use jivapay_processors::runtime::{CrashPoint, CrashPoints};
use jivapay_processors::ProcessorKind;
use jivapay_schemas::records::{
    LedgerTransfer, OrderEvent, OrderEventKind, OrderRouted, TraderCapacity, TraderCommand,
    TraderCommandKind,
};
use jivapay_schemas::samples;
use jivapay_schemas::topics::STREAM_PARTITIONS;
use jivapay_schemas::topics::TRADER_COMMANDS;
use jivapay_schemas::topics::{LEDGER_TRANSFERS, ORDERS_EVENTS, ORDERS_ROUTED, TRADER_CAPACITY};
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;

/// Steps of a book that freezes: once `armed`, it stops at `point` of its next batch until
/// `release` says go, then goes on — and dies when it notices it was disturbed.
fn freezing(point: CrashPoint, armed: Arc<AtomicBool>, release: mpsc::Receiver<()>) -> CrashPoints {
    let release = Mutex::new(release);
    CrashPoints::new(move |at| match at {
        at if at == point && armed.swap(false, Ordering::SeqCst) => {
            release.lock().unwrap().recv().ok();
            false
        }
        CrashPoint::Disturbed => true,
        _ => false,
    })
}

/// What a restore of the book's changelog would write again over a fenced owner's records,
/// per partition. (The probe's own restore marker fences nobody who matters here.)
async fn repairs(pipeline: &Pipeline, master: &Arc<InMemoryMasterData>) -> BTreeMap<i32, Repairs> {
    let kind = ProcessorKind::TraderBook;
    let dead_letters =
        DeadLetters::new(&pipeline.broker, pipeline.registry.clone(), "probe").unwrap();
    let partitions: Vec<i32> = (0..STREAM_PARTITIONS).collect();
    let restored = restore(
        &pipeline.broker,
        &pipeline.registry,
        &pipeline.producer,
        &dead_letters,
        kind.changelog(),
        &partitions,
        &book_maker(master),
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    restored.repairs
}

/// A book's world: a pipeline with the sample trader, a manual clock, and readers of what the
/// book writes.
struct Scene {
    pipeline: Pipeline,
    master: Arc<InMemoryMasterData>,
    clock: Arc<ManualClock>,
    key: String,
    events: RecordConsumer,
    capacities: RecordConsumer,
    transfers: RecordConsumer,
}

impl Scene {
    async fn new() -> Scene {
        let pipeline = Pipeline::new().await;
        let trader = samples::trader();
        let (events, capacities, transfers) = (
            pipeline.reader(ORDERS_EVENTS),
            pipeline.reader(TRADER_CAPACITY),
            pipeline.reader(LEDGER_TRANSFERS),
        );
        Scene {
            master: master_with(std::slice::from_ref(&trader)),
            clock: Arc::new(ManualClock::at(samples::AT + 1_000)),
            key: trader.trader_id.to_string(),
            pipeline,
            events,
            capacities,
            transfers,
        }
    }

    /// A trader book in consumer group `group`, asking `steps` at each crash point.
    fn start(&self, group: &str, steps: CrashPoints) -> Running {
        let clock: Arc<dyn Clock> = self.clock.clone();
        self.pipeline.start_with(
            ProcessorKind::TraderBook,
            book_maker(&self.master),
            clock,
            group,
            steps,
        )
    }

    /// Book X, in consumer group `group`, restores from the changelog and takes a deposit of
    /// 1 USDT: the capacity it publishes shows what it restored. Then everything is closed.
    async fn restored_by_x(self, group: &str) -> TraderCapacity {
        let x = self.start(group, CrashPoints::default());
        let top_up = trader_command(3, TraderCommandKind::Deposit, Some(1));
        self.pipeline
            .send(TRADER_COMMANDS, &self.key, &top_up)
            .await;
        let by_x = read_all::<TraderCapacity>(&self.capacities, 1).await;
        x.stop().await;
        for reader in [self.events, self.capacities, self.transfers] {
            reader.close().ok();
        }
        self.pipeline.close();
        by_x.last().unwrap().clone()
    }
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
    let scene = Scene::new().await;
    let (armed, (release, released)) = (Arc::new(AtomicBool::new(false)), mpsc::channel());
    let v = scene.start(
        "fencing.v",
        freezing(CrashPoint::AfterOutputs, armed.clone(), released),
    );
    let deposit = trader_command(1, TraderCommandKind::Deposit, Some(1_000));
    scene
        .pipeline
        .send(TRADER_COMMANDS, &scene.key, &deposit)
        .await;
    read_all::<LedgerTransfer>(&scene.transfers, 1).await;
    armed.store(true, Ordering::SeqCst);
    scene
        .pipeline
        .send(ORDERS_ROUTED, &scene.key, &samples::order_routed())
        .await;
    let assigned = read_all::<OrderEvent>(&scene.events, 1).await;
    assert!(assigned.iter().any(|e| e.kind == OrderEventKind::Assigned));

    // V is frozen; its partitions go to W, which completes the order.
    let w = scene.start("fencing.w", CrashPoints::default());
    let confirm = trader_command(2, TraderCommandKind::TraderConfirmed, None);
    scene
        .pipeline
        .send(TRADER_COMMANDS, &scene.key, &confirm)
        .await;
    let completed = read_all::<OrderEvent>(&scene.events, 1).await;
    assert!(
        completed
            .iter()
            .any(|e| e.kind == OrderEventKind::Completed),
        "W completed the order: {completed:?}"
    );
    // And a deposit: W's newest logged batch then no longer names the order, so a restore
    // takes the order's state from its newest state record.
    let more = trader_command(4, TraderCommandKind::Deposit, Some(2));
    scene
        .pipeline
        .send(TRADER_COMMANDS, &scene.key, &more)
        .await;
    read_all::<LedgerTransfer>(&scene.transfers, 1).await;
    w.stop().await;
    let by_w = read_all::<TraderCapacity>(&scene.capacities, 1).await;
    let by_w = by_w.last().unwrap().clone();
    assert_eq!(open_amounts(&by_w), 0, "W holds nothing open");

    // V resumes: its state records land after W's; it notices, and dies there.
    release.send(()).unwrap();
    v.crashed(CrashPoint::Disturbed).await;
    let repairs = repairs(&scene.pipeline, &scene.master).await;
    assert!(
        repairs.values().any(|r| !r.state.is_empty()),
        "V's late state records are on top of their keys: a restore writes them again"
    );
    assert!(
        repairs.values().all(|r| r.checkpoint.is_none()),
        "V logged nothing late"
    );

    let by_x = &scene.restored_by_x("fencing.x").await;
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

/// Book V logs a batch late: frozen before committing the batch that assigned order A, it
/// resumes after book W took over, assigned order B and stopped, reads B itself and logs its
/// decision — after W's records. It must notice before producing anything: B is assigned once
/// on the topic (before the ownership check V's copy went out too), V dies at the check, a
/// restore writes a checkpoint batch over V's late one, and book X continues from W's state.
#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn e_a_fenced_owners_late_batch_produces_nothing() {
    let scene = Scene::new().await;
    let (armed, (release, released)) = (Arc::new(AtomicBool::new(false)), mpsc::channel());
    let order_a = samples::order_routed();
    // Another amount: a requisite holds one open order per amount.
    let order_b = OrderRouted {
        order_id: OrderId::from(uuid::Uuid::from_u128(0xb)),
        external_order_id: "ext-b".into(),
        fiat_amount: "4000.00".parse().unwrap(),
        crypto_amount: "43.243243".parse().unwrap(),
        ..samples::order_routed()
    };

    let v = scene.start(
        "fencing.late.v",
        freezing(CrashPoint::AfterState, armed.clone(), released),
    );
    let deposit = trader_command(1, TraderCommandKind::Deposit, Some(1_000));
    scene
        .pipeline
        .send(TRADER_COMMANDS, &scene.key, &deposit)
        .await;
    read_all::<LedgerTransfer>(&scene.transfers, 1).await;
    armed.store(true, Ordering::SeqCst);
    scene
        .pipeline
        .send(ORDERS_ROUTED, &scene.key, &order_a)
        .await;
    read_all::<OrderEvent>(&scene.events, 1).await;

    // V is frozen before its commit; W takes over, assigns B, and stops.
    let w = scene.start("fencing.late.w", CrashPoints::default());
    scene.clock.advance(600_000); // past the requisite's minimum interval between orders
    scene
        .pipeline
        .send(ORDERS_ROUTED, &scene.key, &order_b)
        .await;
    let assigned_b =
        |e: &OrderEvent| e.order_id == order_b.order_id && e.kind == OrderEventKind::Assigned;
    let mut by_w = Vec::new();
    for _ in 0..20 {
        by_w.extend(read_all::<OrderEvent>(&scene.events, 0).await);
        if by_w.iter().any(assigned_b) {
            break;
        }
    }
    assert!(by_w.iter().any(assigned_b), "W assigned B: {by_w:?}");
    w.stop().await;
    let w_capacity = read_all::<TraderCapacity>(&scene.capacities, 1).await;
    let w_capacity = w_capacity.last().unwrap().clone();
    assert_eq!(open_amounts(&w_capacity), 2, "W holds A and B");

    // V resumes, reads B and logs its decision after W's records: it notices, and dies.
    release.send(()).unwrap();
    v.crashed(CrashPoint::Disturbed).await;
    let late = read_all::<OrderEvent>(&scene.events, 0).await;
    assert!(
        !late.iter().any(|e| e.order_id == order_b.order_id),
        "V produced its late decision on B: {late:?}"
    );
    let repairs = repairs(&scene.pipeline, &scene.master).await;
    assert!(
        repairs.values().any(|r| r.checkpoint.is_some()),
        "V's late batch is on top of its key: a restore writes a checkpoint over it"
    );

    let by_x = scene.restored_by_x("fencing.late.x").await;
    assert_eq!(open_amounts(&by_x), 2, "A and B held once each");
    assert_eq!(
        by_x.free_deposit.value(),
        w_capacity.free_deposit.value() + Decimal::ONE,
        "X continues from W's state"
    );
}
