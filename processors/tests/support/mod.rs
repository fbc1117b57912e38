//! What the broker tests of the runtime share: a pipeline on an embedded broker, processors
//! started on it (stopped at a crash point, or by hand), and readers of its topics.

#![allow(dead_code)] // each test file uses its own part

use jivapay_domain::OrderId;
use jivapay_domain::UsdtAmount;
use jivapay_platform::kafka::{Broker, RecordConsumer, RecordProducer};
use jivapay_processors::core::{Clock, InMemoryMasterData, MasterData, Processor};
use jivapay_processors::runtime::{run, CrashPoint, CrashPoints, RuntimeConfig, RuntimeError};
use jivapay_processors::trader_book::TraderBookProcessor;
use jivapay_processors::ProcessorKind;
use jivapay_schemas::records::{
    OrderScreened, Setting, SettingType, Trader, TraderCapacity, TraderCommand, TraderCommandKind,
};
use jivapay_schemas::samples;
use jivapay_schemas::topics::ORDERS_SCREENED;
use jivapay_schemas::{Record, SchemaRegistry, TOPICS};
use rust_decimal::Decimal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How long a topic must stay silent before a reader takes it as fully read.
pub const QUIET: Duration = Duration::from_secs(3);

pub struct Pipeline {
    pub broker: Broker,
    pub registry: SchemaRegistry,
    pub producer: RecordProducer,
}

impl Pipeline {
    pub async fn new() -> Pipeline {
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

    pub async fn send<T: Record>(&self, topic: &str, key: &str, record: &T) {
        self.producer.send(topic, key, record).await.unwrap();
    }

    pub fn reader(&self, topic: &str) -> RecordConsumer {
        let group = format!("reader-{}", Uuid::new_v4());
        RecordConsumer::subscribe(&self.broker, self.registry.clone(), &group, &[topic]).unwrap()
    }

    /// Runs processor `kind` made by `make` until `stop`, or until `crash_at` says to stop at
    /// a crash point (once).
    pub fn start<P: Processor + Sync>(
        &self,
        kind: ProcessorKind,
        make: impl Fn() -> P + Send + Sync + 'static,
        clock: Arc<dyn Clock>,
        crash_at: Option<CrashPoint>,
    ) -> Running {
        let crash_points = match crash_at {
            Some(point) => {
                let crashed = AtomicBool::new(false);
                CrashPoints::new(move |at| at == point && !crashed.swap(true, Ordering::SeqCst))
            }
            None => CrashPoints::default(),
        };
        let group = format!("replay.{}", kind.name());
        self.start_with(kind, make, clock, &group, crash_points)
    }

    /// Runs processor `kind` in consumer group `group`, asking `crash_points` at each step.
    pub fn start_with<P: Processor + Sync>(
        &self,
        kind: ProcessorKind,
        make: impl Fn() -> P + Send + Sync + 'static,
        clock: Arc<dyn Clock>,
        group: &str,
        crash_points: CrashPoints,
    ) -> Running {
        let stop = CancellationToken::new();
        let config = RuntimeConfig {
            tick_interval_ms: 100,
            time_markers: kind.time_markers(),
            crash_points,
            ..RuntimeConfig::new(group)
        };
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

    pub fn close(self) {
        self.producer.close(Duration::from_secs(5)).ok();
    }
}

pub struct Running {
    stop: CancellationToken,
    handle: tokio::task::JoinHandle<Result<(), RuntimeError>>,
}

impl Running {
    /// Waits for the loop to stop at its crash point.
    pub async fn crashed(self, point: CrashPoint) {
        let ended = tokio::time::timeout(Duration::from_secs(60), self.handle)
            .await
            .expect("the loop reaches its crash point in time")
            .unwrap();
        match ended {
            Err(RuntimeError::Crashed(at)) => assert_eq!(at, point),
            other => panic!("expected a crash at {point:?}, got {other:?}"),
        }
    }

    pub async fn stop(self) {
        self.stop.cancel();
        self.handle.await.unwrap().expect("the loop stops cleanly");
    }
}

/// Every record of `reader`'s topic until it stays quiet for [`QUIET`], waiting at most a
/// minute for the first `at_least`.
pub async fn read_all<T: Record>(reader: &RecordConsumer, at_least: usize) -> Vec<T> {
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

// ----- records and processors the tests share -----

/// Trader `n` with one requisite in pool `RUB:sbp`, without interval or daily limits.
pub fn trader(n: u128, priority: i32) -> Trader {
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

/// Screened order `n` of the sample store in pool `RUB:sbp`.
pub fn screened(n: u128) -> OrderScreened {
    OrderScreened {
        order_id: OrderId(Uuid::from_u128(0x0de0_0000 + n)),
        excluded_traders: Vec::new(),
        refusals: Vec::new(),
        attempt: 0,
        ..samples::order_screened()
    }
}

pub async fn screen(pipeline: &Pipeline, orders: std::ops::Range<u128>) {
    for n in orders {
        let order = screened(n);
        pipeline.send(ORDERS_SCREENED, &order.pool, &order).await;
    }
}

pub fn setting(key: &str, value: &str) -> Setting {
    Setting {
        key: key.into(),
        value_type: SettingType::Integer,
        value_json: value.into(),
        updated_at: 0,
    }
}

pub fn command(n: u128, kind: TraderCommandKind, order: Option<OrderId>) -> TraderCommand {
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

pub fn book_maker(
    master: &Arc<InMemoryMasterData>,
) -> impl Fn() -> TraderBookProcessor + Clone + Send + Sync + 'static {
    let master = master.clone();
    move || TraderBookProcessor::new(master.clone() as Arc<dyn MasterData>)
}

/// Master data with `traders` — each with room for any order in the router's view — the
/// sample RUB rate, and a day for traders to confirm.
pub fn master_with(traders: &[Trader]) -> Arc<InMemoryMasterData> {
    let master = InMemoryMasterData::default();
    for t in traders {
        let capacity = TraderCapacity {
            trader_id: t.trader_id,
            free_deposit: UsdtAmount::try_from(Decimal::from(100_000_000)).unwrap(),
            requisites: Vec::new(),
            ..samples::trader_capacity()
        };
        master
            .capacities
            .lock()
            .unwrap()
            .insert(t.trader_id, capacity);
        master
            .traders
            .lock()
            .unwrap()
            .insert(t.trader_id, t.clone());
    }
    master
        .rates
        .lock()
        .unwrap()
        .insert("RUB".into(), samples::rate());
    let timeout = "orders.trader_confirmation_timeout_secs";
    master
        .settings
        .lock()
        .unwrap()
        .insert(timeout.into(), setting(timeout, "86400"));
    Arc::new(master)
}
