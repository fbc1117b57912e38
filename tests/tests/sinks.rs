//! The ledger and projection sinks against a real broker and PostgreSQL: each transfer is
//! journaled once with its balances, each order event applied once and never over a newer
//! one, and the consumed offsets are stored in the same transactions — a restarted sink
//! writes nothing twice.

use jivapay_admin::auth::Role;
use jivapay_platform::health::Health;
use jivapay_platform::kafka::RecordProducer;
use jivapay_schemas::records::*;
use jivapay_schemas::samples;
use jivapay_schemas::topics::{LEDGER_TRANSFERS, ORDERS_EVENTS};
use jivapay_sinks::ledger::LedgerSink;
use jivapay_sinks::projection::ProjectionSink;
use jivapay_sinks::runtime::SinkLoop;
use jivapay_tests::admin::AdminApp;
use jivapay_tests::gateway::Gateway;
use rust_decimal::Decimal;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_sink_journals_each_transfer_once() {
    let app = AdminApp::start_with_relay(false).await;
    let store = Gateway::store(&app).await;
    let trader = app.person(Role::Trader, &[]).await;
    let producer = RecordProducer::new(&app.broker, app.state.schemas.clone(), "test").unwrap();
    let transfer = |amount: &str| {
        let c = d(amount);
        let entry = |owner_kind, owner_id, account_kind, amount: Decimal| LedgerEntry {
            owner_kind,
            owner_id,
            account_kind,
            currency: "USDT".into(),
            amount,
        };
        LedgerTransfer {
            transfer_id: Uuid::new_v4(),
            kind: TransferKind::PayIn,
            order_id: Some(Uuid::new_v4().into()),
            description: None,
            entries: vec![
                entry(
                    AccountOwnerKind::Trader,
                    trader.trader_id,
                    AccountKind::Hold,
                    -c,
                ),
                entry(
                    AccountOwnerKind::Trader,
                    trader.trader_id,
                    AccountKind::Available,
                    c * d("0.02"),
                ),
                entry(
                    AccountOwnerKind::Store,
                    Some(store.store_id),
                    AccountKind::Available,
                    c * d("0.97"),
                ),
                entry(
                    AccountOwnerKind::Platform,
                    None,
                    AccountKind::Fees,
                    c * d("0.01"),
                ),
            ],
            created_at: samples::AT,
        }
    };
    let (a, b) = (transfer("100.000000"), transfer("50.000000"));
    for t in [&a, &a, &b] {
        producer
            .send(LEDGER_TRANSFERS, &t.order_id.unwrap().to_string(), t)
            .await
            .unwrap();
    }
    let run = |stop: CancellationToken| {
        let (broker, schemas, pool) = (
            app.broker.clone(),
            app.state.schemas.clone(),
            app.db.pool.clone(),
        );
        tokio::spawn(async move {
            jivapay_sinks::runtime::run(
                SinkLoop {
                    broker: &broker,
                    registry: schemas,
                    pool,
                    topic: LEDGER_TRANSFERS,
                    group: "ledger",
                    health: Health::default().register("sink ledger"),
                },
                LedgerSink,
                stop,
            )
            .await
        })
    };
    let stop = CancellationToken::new();
    let sink = run(stop.clone());
    app.wait_for_count("SELECT count(*) FROM ledger_transfers", 2)
        .await;
    stop.cancel();
    sink.await.unwrap().unwrap();
    let balance = |kind: &str| {
        let pool = app.db.pool.clone();
        let kind = kind.to_owned();
        async move {
            sqlx::query_scalar::<_, Decimal>(
                "SELECT b.balance FROM ledger_balances b JOIN ledger_accounts a ON a.id = b.account_id WHERE a.owner_kind = $1 AND a.kind = $2",
            )
            .bind(kind.split(':').next().unwrap())
            .bind(kind.split(':').nth(1).unwrap())
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    assert_eq!(balance("store:available").await, d("145.500000"));
    assert_eq!(balance("trader:hold").await, d("-150.000000"));
    assert_eq!(balance("platform:fees").await, d("1.500000"));
    let total: Decimal = sqlx::query_scalar("SELECT sum(amount) FROM ledger_entries")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert!(total.is_zero());

    // A restarted sink, and the same transfer once more: nothing changes.
    producer
        .send(LEDGER_TRANSFERS, &b.order_id.unwrap().to_string(), &b)
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let sink = run(stop.clone());
    app.wait_for_count( "SELECT coalesce(sum(next_offset), 0)::bigint FROM sink_offsets WHERE consumer_group = 'ledger'", 4).await;
    stop.cancel();
    sink.await.unwrap().unwrap();
    assert_eq!(app.count("ledger_transfers").await, 2);
    assert_eq!(app.count("ledger_entries").await, 8);
    assert_eq!(balance("store:available").await, d("145.500000"));
    producer.close(Duration::from_secs(5)).ok();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_projection_applies_each_event_once_and_never_goes_back() {
    let app = AdminApp::start_with_relay(false).await;
    let store = Gateway::store(&app).await;
    let trader = app.person(Role::Trader, &[]).await;
    let requisite_id = app.sbp_requisite(&trader, "+79001234567").await;
    let order_id = Uuid::new_v4();
    let event = |sequence: i32,
                 kind: OrderEventKind,
                 status: OrderStatus,
                 previous: Option<OrderStatus>| OrderEvent {
        event_id: Uuid::new_v4(),
        order_id: order_id.into(),
        store_id: store.store_id.into(),
        external_order_id: "ext-42".into(),
        direction: Direction::PayIn,
        sequence,
        kind,
        status,
        previous_status: previous,
        trader_id: (sequence > 1).then_some(trader.trader_id.unwrap().into()),
        requisite_id: (sequence > 1).then_some(requisite_id.into()),
        rate: (sequence > 1).then(|| d("92.5")),
        crypto_amount: (sequence > 1).then(|| "54.054054".parse().unwrap()),
        payment_token: Some(format!("token-{order_id}")),
        callback_url: None,
        candidates: vec![],
        reason_code: None,
        ..samples::order_event()
    };
    let created = event(1, OrderEventKind::Created, OrderStatus::Created, None);
    let assigned = event(
        2,
        OrderEventKind::Assigned,
        OrderStatus::Assigned,
        Some(OrderStatus::Created),
    );
    let completed = event(
        3,
        OrderEventKind::Completed,
        OrderStatus::Completed,
        Some(OrderStatus::Assigned),
    );
    let producer = RecordProducer::new(&app.broker, app.state.schemas.clone(), "test").unwrap();
    for e in [&created, &assigned, &completed, &assigned] {
        producer
            .send(ORDERS_EVENTS, &order_id.to_string(), e)
            .await
            .unwrap();
    }
    let stop = CancellationToken::new();
    let (broker, schemas, pool) = (
        app.broker.clone(),
        app.state.schemas.clone(),
        app.db.pool.clone(),
    );
    let token = stop.clone();
    let sink = tokio::spawn(async move {
        jivapay_sinks::runtime::run(
            SinkLoop {
                broker: &broker,
                registry: schemas,
                pool,
                topic: ORDERS_EVENTS,
                group: "projection",
                health: Health::default().register("sink projection"),
            },
            ProjectionSink,
            token,
        )
        .await
    });
    app.wait_for_count( "SELECT coalesce(sum(next_offset), 0)::bigint FROM sink_offsets WHERE consumer_group = 'projection'", 4).await;
    stop.cancel();
    sink.await.unwrap().unwrap();
    let (status, version, closed): (String, i64, bool) =
        sqlx::query_as("SELECT status, version, closed_at IS NOT NULL FROM orders WHERE id = $1")
            .bind(order_id)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(
        (status.as_str(), version, closed),
        ("completed", 3, true),
        "the late replay of ASSIGNED changed nothing"
    );
    assert_eq!(app.count("order_events").await, 3);
    // The timeline states the assignment once, on the event that made it.
    let payloads: Vec<(String, serde_json::Value)> = sqlx::query_as(
        "SELECT event_type, payload FROM order_events WHERE order_id = $1 ORDER BY version",
    )
    .bind(order_id)
    .fetch_all(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(
        payloads,
        vec![
            ("created".to_owned(), serde_json::json!({})),
            (
                "assigned".to_owned(),
                serde_json::json!({
                    "trader_id": trader.trader_id.unwrap(),
                    "requisite_id": requisite_id,
                    "rate": "92.50000000",
                    "crypto_amount": "54.054054",
                })
            ),
            ("completed".to_owned(), serde_json::json!({})),
        ]
    );
    // The gateway's view of it follows the projection.
    producer.close(Duration::from_secs(5)).ok();
    app.stop().await;
}
