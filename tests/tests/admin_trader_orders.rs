//! The trader's order API: his open orders only, confirmation and non-payment reports as
//! commands on `trader.commands` (one command id per order and action, however often the button
//! is pressed), and refusals for other roles, other traders' orders and orders in the wrong state.

use jivapay_admin::auth::Role;
use jivapay_platform::kafka::RecordConsumer;
use jivapay_schemas::records::{TraderCommand, TraderCommandKind};
use jivapay_schemas::topics::TRADER_COMMANDS;
use jivapay_tests::admin::{AdminApp, Person};
use jivapay_tests::gateway::Gateway;
use jivapay_tests::unique_group;
use reqwest::Method;
use serde_json::json;
use std::time::Duration;
use uuid::Uuid;

/// An order in the projection, assigned to `trader`'s new requisite, in `status`.
async fn order(app: &AdminApp, store: Uuid, trader: &Person, status: &str, number: &str) -> Uuid {
    let requisite = app.sbp_requisite(trader, number).await;
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO orders (id, store_id, external_order_id, direction, status, fiat_amount, fiat_currency, crypto_amount,
             rate, payment_method, trader_id, requisite_id, created_at, updated_at, last_event_id, version)
         VALUES ($1, $2, $3, 'pay_in', $4, 1000, 'RUB', 10.810811, 92.5, 'sbp', $5, $6, now(), now(), $7, 2)",
    )
    .bind(id)
    .bind(store)
    .bind(id.to_string())
    .bind(status)
    .bind(trader.trader_id)
    .bind(requisite)
    .bind(Uuid::new_v4())
    .execute(&app.db.pool)
    .await
    .unwrap();
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traders_act_on_their_own_open_orders_only() {
    let app = AdminApp::start_with_relay(false).await;
    let store = Gateway::store(&app).await;
    let trader = app.person(Role::Trader, &[]).await;
    let other = app.person(Role::Trader, &[]).await;
    let admin = app.person(Role::Admin, &["*:*:*"]).await;
    let assigned = order(&app, store.store_id, &trader, "assigned", "+79001110001").await;
    let confirmed = order(
        &app,
        store.store_id,
        &trader,
        "client_confirmed",
        "+79001110002",
    )
    .await;

    let (status, open) = app.get(&trader, "/api/trader/orders").await;
    assert_eq!(
        (status, open.as_array().map(Vec::len)),
        (200, Some(2)),
        "{open}"
    );
    assert_eq!(open[0]["requisite_masked"], "****0001");
    let (_, none) = app.get(&other, "/api/trader/orders").await;
    assert_eq!(none.as_array().map(Vec::len), Some(0));

    let confirm = |id: Uuid| format!("/api/trader/orders/{id}/confirm");
    assert_eq!(
        app.post(&other, &confirm(assigned), json!({})).await.0,
        404,
        "another trader's order"
    );
    assert_eq!(
        app.post(&admin, &confirm(assigned), json!({})).await.0,
        403,
        "staff do not confirm for traders"
    );
    assert_eq!(
        app.post(&store.merchant, &confirm(assigned), json!({}))
            .await
            .0,
        403
    );
    assert_eq!(
        app.call(Method::POST, &confirm(assigned), None, Some(json!({})))
            .await
            .0,
        401
    );
    let (status, body) = app
        .post(&trader, "/api/trader/orders/not-a-uuid/confirm", json!({}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_path")),
        "{body}"
    );
    let (status, body) = app.post(&trader, &confirm(Uuid::new_v4()), json!({})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found")),
        "an order that does not exist"
    );
    let report = |id: Uuid| format!("/api/trader/orders/{id}/report-non-payment");
    let (status, body) = app
        .post(
            &trader,
            &report(assigned),
            json!({"reason": "nothing came"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("invalid_order_state")),
        "only after the customer confirmed"
    );
    let (status, body) = app
        .post(&trader, &report(confirmed), json!({"reason": 5}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("invalid_body"))
    );

    assert_eq!(
        app.post(&trader, &confirm(assigned), json!({})).await.0,
        202
    );
    assert_eq!(
        app.post(&trader, &confirm(assigned), json!({})).await.0,
        202,
        "pressed twice"
    );
    assert_eq!(
        app.post(
            &trader,
            &report(confirmed),
            json!({"reason": "nothing came"})
        )
        .await
        .0,
        202
    );

    let commands = RecordConsumer::subscribe(
        &app.broker,
        app.state.schemas.clone(),
        &unique_group("cmd"),
        &[TRADER_COMMANDS],
    )
    .unwrap();
    let mut seen: Vec<TraderCommand> = Vec::new();
    while seen.len() < 3 {
        let next = tokio::time::timeout(Duration::from_secs(30), commands.next::<TraderCommand>())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            next.key,
            trader.trader_id.unwrap().to_string(),
            "keyed by trader"
        );
        seen.push(next.value.unwrap());
    }
    commands.close().ok();
    assert_eq!(seen[0].kind, TraderCommandKind::TraderConfirmed);
    assert_eq!(
        seen[0].command_id, seen[1].command_id,
        "one command id per order and action"
    );
    assert_eq!(seen[2].kind, TraderCommandKind::ReportNonPayment);
    assert_eq!(seen[2].reason.as_deref(), Some("nothing came"));
    assert_eq!(seen[2].order_id, Some(confirmed.into()));
    app.stop().await;
}
