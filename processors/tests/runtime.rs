//! The runtime against a real broker (embedded): a processor's outputs, changelog and commits
//! keep its state exact across a crash and a restart — every order gets exactly one sequence
//! number, none is skipped or given twice, and replays carry the same event ids.

use jivapay_domain::{OrderId, StoreId};
use jivapay_platform::kafka::{Broker, RecordConsumer, RecordProducer};
use jivapay_processors::core::{derived_id, Emit, Input, Millis, Processor, SystemClock};
use jivapay_processors::runtime::{run, RuntimeConfig};
use jivapay_schemas::records::{OrderEvent, OrderEventKind, OrderStatus};
use jivapay_schemas::topics::{ORDERS_EVENTS, ORDERS_REQUESTED, STORE_POSTINGS};
use jivapay_schemas::{samples, SchemaRegistry, TOPICS};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Numbers each store's orders 1, 2, 3, … in arrival order — wrong if state is lost or
/// applied twice.
#[derive(Default)]
struct Numbering {
    stores: HashMap<String, StoreState>,
    dirty: BTreeSet<String>,
}

#[derive(Default, Clone, Serialize, Deserialize)]
struct StoreState {
    next: i32,
    seen: BTreeSet<OrderId>,
}

impl Processor for Numbering {
    fn name(&self) -> &'static str {
        "numbering"
    }

    fn apply(&mut self, input: Input, now: Millis) -> Vec<Emit> {
        let Input::Requested(order) = input else {
            return vec![];
        };
        let key = order.store_id.to_string();
        let state = self.stores.entry(key.clone()).or_default();
        if !state.seen.insert(order.order_id) {
            return vec![];
        }
        state.next += 1;
        self.dirty.insert(key);
        vec![Emit::Event(OrderEvent {
            event_id: derived_id(&[order.order_id.0.as_bytes(), b"numbered"]),
            order_id: order.order_id,
            store_id: order.store_id,
            external_order_id: order.external_order_id,
            sequence: state.next,
            kind: OrderEventKind::Created,
            status: OrderStatus::Created,
            occurred_at: now,
            ..samples::order_event()
        })]
    }

    fn tick(&mut self, _now: Millis) -> Vec<Emit> {
        vec![]
    }

    fn take_changes(&mut self) -> Vec<(String, Option<Vec<u8>>)> {
        std::mem::take(&mut self.dirty)
            .into_iter()
            .map(|key| {
                let state = serde_json::to_vec(&self.stores[&key]).expect("serializable");
                (key, Some(state))
            })
            .collect()
    }

    fn restore(&mut self, key: &str, state: Option<&[u8]>) {
        match state.and_then(|s| serde_json::from_slice(s).ok()) {
            Some(state) => {
                self.stores.insert(key.to_owned(), state);
            }
            None => {
                self.stores.remove(key);
            }
        }
    }
}

fn start(
    broker: &Broker,
    registry: &SchemaRegistry,
    group: &str,
) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let stop = CancellationToken::new();
    let (broker, registry, group, token) = (
        broker.clone(),
        registry.clone(),
        group.to_owned(),
        stop.clone(),
    );
    let handle = tokio::spawn(async move {
        let config = RuntimeConfig {
            tick_interval_ms: 100,
            ..RuntimeConfig::new(group)
        };
        run(
            &broker,
            registry,
            &[ORDERS_REQUESTED, STORE_POSTINGS],
            "fraud.changelog",
            Numbering::default,
            Arc::new(SystemClock),
            config,
            token,
        )
        .await
        .expect("runtime runs");
    });
    (stop, handle)
}

async fn produce_orders(producer: &RecordProducer, stores: &[StoreId], from: usize, to: usize) {
    for n in from..to {
        let store = stores[n % stores.len()];
        let order = jivapay_schemas::records::OrderRequested {
            order_id: OrderId(Uuid::new_v4()),
            store_id: store,
            external_order_id: format!("ext-{n}"),
            ..samples::order_requested()
        };
        producer
            .send(ORDERS_REQUESTED, &store.to_string(), &order)
            .await
            .unwrap();
    }
}

/// Reads events until `orders` distinct orders have one; returns every event read.
async fn collect(consumer: &RecordConsumer, orders: usize, into: &mut Vec<OrderEvent>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let distinct: BTreeSet<OrderId> = into.iter().map(|e| e.order_id).collect();
        if distinct.len() >= orders {
            return;
        }
        let next = tokio::time::timeout_at(deadline, consumer.next::<OrderEvent>())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "only {} of {orders} orders numbered in time",
                    distinct.len()
                )
            })
            .unwrap();
        into.push(next.value.unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_survives_a_crash_and_a_restart() {
    let broker = Broker::embedded(Duration::from_secs(10)).unwrap();
    broker.ensure_topics(TOPICS).await.unwrap();
    let registry = SchemaRegistry::builtin().unwrap();
    let producer = RecordProducer::new(&broker, registry.clone(), "orders").unwrap();
    let stores: Vec<StoreId> = (0..5).map(|_| StoreId(Uuid::new_v4())).collect();
    let events =
        RecordConsumer::subscribe(&broker, registry.clone(), "reader", &[ORDERS_EVENTS]).unwrap();
    let mut seen = Vec::new();

    produce_orders(&producer, &stores, 0, 150).await;
    let (_, first) = start(&broker, &registry, "numbering");
    collect(&events, 60, &mut seen).await;
    // A crash: the task dies wherever it is, without closing anything.
    first.abort();
    let _ = first.await;

    produce_orders(&producer, &stores, 150, 250).await;
    let (stop, second) = start(&broker, &registry, "numbering");
    collect(&events, 250, &mut seen).await;
    stop.cancel();
    second.await.unwrap();
    events.close().ok();

    // Replays repeat an event with the same id and sequence, never a different one.
    let mut by_order: HashMap<OrderId, (Uuid, i32)> = HashMap::new();
    for event in &seen {
        let first_seen = by_order
            .entry(event.order_id)
            .or_insert((event.event_id, event.sequence));
        assert_eq!(
            *first_seen,
            (event.event_id, event.sequence),
            "order {} renumbered",
            event.order_id
        );
    }
    for store in &stores {
        let mut numbers: Vec<i32> = seen
            .iter()
            .filter(|e| e.store_id == *store)
            .map(|e| (e.order_id, e.sequence))
            .collect::<HashMap<_, _>>()
            .into_values()
            .collect();
        numbers.sort_unstable();
        assert_eq!(
            numbers,
            (1..=50).collect::<Vec<i32>>(),
            "store {store}: no gap, no double"
        );
    }
    producer.close(Duration::from_secs(5)).ok();
}
