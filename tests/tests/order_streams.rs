//! The pushed views of an order: the payment's event stream (`/api/v1/payment/{token}/events`)
//! and the trader's (`/api/trader/orders/events`). Changes come from the real projection sink
//! writing order events to PostgreSQL; the streams must show each committed status change,
//! only to whom it concerns, and end a payment's stream at its final status.

use jivapay_admin::auth::Role;
use jivapay_loadgen::EventStream;
use jivapay_schemas::records::{OrderEvent, OrderEventKind, OrderStatus};
use jivapay_schemas::samples;
use jivapay_sinks::projection::ProjectionSink;
use jivapay_sinks::runtime::Sink;
use jivapay_tests::admin::{AdminApp, Person};
use jivapay_tests::gateway::Gateway;
use serde_json::{json, Value};
use std::time::Duration;
use uuid::Uuid;

/// Longest wait for an event that must come.
const PATIENCE: Duration = Duration::from_secs(20);

async fn next(stream: &mut EventStream) -> (String, Value) {
    tokio::time::timeout(PATIENCE, stream.next())
        .await
        .expect("an event in time")
        .expect("the stream is open")
        .expect("a readable event")
}

/// Nothing arrives on `stream` for a while (a change that is not its business).
async fn quiet(stream: &mut EventStream) {
    if let Ok(event) = tokio::time::timeout(Duration::from_millis(700), stream.next()).await {
        panic!("unexpected event: {event:?}");
    }
}

/// What the projection sink commits for `order` reaching `status` at `sequence`.
async fn project(app: &AdminApp, order: &Order, sequence: i32, status: OrderStatus) {
    let kind = match status {
        OrderStatus::Created => OrderEventKind::Created,
        OrderStatus::Assigned => OrderEventKind::Assigned,
        OrderStatus::ClientConfirmed => OrderEventKind::ClientConfirmed,
        OrderStatus::Completed => OrderEventKind::Completed,
        other => panic!("not used here: {other:?}"),
    };
    let assigned = status != OrderStatus::Created;
    let event = OrderEvent {
        event_id: Uuid::new_v4(),
        order_id: order.id.into(),
        store_id: order.store_id.into(),
        external_order_id: order.external.clone(),
        sequence,
        kind,
        status,
        previous_status: None,
        fiat_amount: Some("4250.50".parse().unwrap()),
        trader_id: assigned.then_some(order.trader_id.into()),
        requisite_id: assigned.then_some(order.requisite_id.into()),
        payment_token: Some(order.token.clone()),
        expires_at: Some(chrono::Utc::now().timestamp_millis() + 900_000),
        candidates: vec![],
        occurred_at: chrono::Utc::now().timestamp_millis(),
        ..samples::order_event()
    };
    let mut tx = app.db.pool.begin().await.unwrap();
    ProjectionSink
        .write_batch(&mut tx, &[&event])
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

struct Order {
    id: Uuid,
    store_id: Uuid,
    external: String,
    token: String,
    trader_id: Uuid,
    requisite_id: Uuid,
}

/// A pay-in accepted by the gateway, and a requisite of `trader` to assign it to.
async fn payin(app: &AdminApp, gateway: &Gateway, trader: &Person, number: &str) -> Order {
    let store = Gateway::store(app).await;
    let external = format!("stream-{}", Uuid::new_v4().simple());
    let payin = gateway.payin(&store, &external, "4250.50").await;
    Order {
        id: payin.order_id,
        store_id: store.store_id,
        external,
        token: payin.token,
        trader_id: trader.trader_id.unwrap(),
        requisite_id: app.sbp_requisite(trader, number).await,
    }
}

fn payment_stream(gateway: &Gateway, token: &str) -> reqwest::RequestBuilder {
    gateway
        .client
        .get(format!("{}/api/v1/payment/{token}/events", gateway.base))
}

fn trader_stream(app: &AdminApp, who: &Person) -> reqwest::RequestBuilder {
    app.client
        .get(format!("{}/api/trader/orders/events", app.base))
        .bearer_auth(&who.token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_payment_stream_shows_each_status_and_ends_when_the_payment_is_final() {
    let app = AdminApp::start_with_relay(false).await;
    let gateway = Gateway::start(&app).await;
    let trader = app.person(Role::Trader, &[]).await;
    let order = payin(&app, &gateway, &trader, "+79161112233").await;

    let mut stream = EventStream::open(payment_stream(&gateway, &order.token))
        .await
        .unwrap();
    let (name, view) = next(&mut stream).await;
    assert_eq!(
        (name.as_str(), &view["status"]),
        ("payment", &json!("created"))
    );
    assert_eq!(view["requisite"], Value::Null);

    project(&app, &order, 1, OrderStatus::Created).await;
    quiet(&mut stream).await; // the payer already sees "created"
    project(&app, &order, 2, OrderStatus::Assigned).await;
    let (_, view) = next(&mut stream).await;
    assert_eq!(view["status"], "assigned");
    assert_eq!(view["can_confirm"], true);
    assert_eq!(
        view["requisite"]["number"], "+79161112233",
        "the payer sees the full number to pay to"
    );

    project(&app, &order, 3, OrderStatus::Completed).await;
    let (_, view) = next(&mut stream).await;
    assert_eq!(view["status"], "completed");
    assert_eq!(view["requisite"], Value::Null);
    let end = tokio::time::timeout(PATIENCE, stream.next()).await;
    assert!(
        matches!(end, Ok(None)),
        "the stream ends at a final status: {end:?}"
    );

    // Opened after the end, it shows the final state once and ends.
    let mut late = EventStream::open(payment_stream(&gateway, &order.token))
        .await
        .unwrap();
    assert_eq!(next(&mut late).await.1["status"], "completed");
    assert!(matches!(
        tokio::time::timeout(PATIENCE, late.next()).await,
        Ok(None)
    ));

    let unknown = payment_stream(&gateway, "not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trader_stream_shows_his_own_orders_as_they_change() {
    let app = AdminApp::start_with_relay(false).await;
    let gateway = Gateway::start(&app).await;
    let trader = app.person(Role::Trader, &[]).await;
    let other = app.person(Role::Trader, &[]).await;
    let earlier = payin(&app, &gateway, &trader, "+79161110001").await;
    project(&app, &earlier, 2, OrderStatus::Assigned).await;

    let mut mine = EventStream::open(trader_stream(&app, &trader))
        .await
        .unwrap();
    let mut theirs = EventStream::open(trader_stream(&app, &other))
        .await
        .unwrap();
    let (name, snapshot) = next(&mut mine).await;
    assert_eq!(name, "snapshot");
    assert_eq!(snapshot.as_array().map(Vec::len), Some(1), "{snapshot}");
    assert_eq!(snapshot[0]["order_id"], json!(earlier.id));
    assert_eq!(snapshot[0]["requisite_masked"], "****0001");
    assert_eq!(next(&mut theirs).await, ("snapshot".to_owned(), json!([])));

    let order = payin(&app, &gateway, &trader, "+79161110002").await;
    project(&app, &order, 1, OrderStatus::Created).await;
    project(&app, &order, 2, OrderStatus::Assigned).await;
    let (name, assigned) = next(&mut mine).await;
    assert_eq!(name, "order");
    assert_eq!(
        (&assigned["order_id"], &assigned["status"]),
        (&json!(order.id), &json!("assigned"))
    );
    assert_eq!(
        assigned["requisite_masked"], "****0002",
        "masked for the trader"
    );
    assert_eq!(assigned["amount"], "4250.50");

    project(&app, &order, 3, OrderStatus::ClientConfirmed).await;
    assert_eq!(next(&mut mine).await.1["status"], "client_confirmed");
    project(&app, &order, 4, OrderStatus::Completed).await;
    let (_, completed) = next(&mut mine).await;
    assert_eq!(
        (&completed["order_id"], &completed["status"]),
        (&json!(order.id), &json!("completed")),
        "a closed order is sent once, so the app drops it"
    );
    quiet(&mut theirs).await;

    let merchant = app.person(Role::Merchant, &[]).await;
    let refused = trader_stream(&app, &merchant).send().await.unwrap();
    assert_eq!(refused.status(), 403);
    let anonymous = app
        .client
        .get(format!("{}/api/trader/orders/events", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    app.stop().await;
}
