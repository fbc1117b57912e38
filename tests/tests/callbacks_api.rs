//! Merchant callbacks in the management API and the gateway: callback URLs pointing at
//! loopback, private or metadata addresses are refused when saved and when sent (unless the
//! development allowance is on); the delivery log, replay of one delivery and of a store's
//! failed deliveries, and who may see and replay what.

use jivapay_admin::auth::Role;
use jivapay_schemas::records::OrderEventKind;
use jivapay_tests::admin::{AdminApp, Person};
use jivapay_tests::callbacks::*;
use jivapay_tests::gateway::Gateway;
use serde_json::{json, Value};
use std::time::Duration;
use uuid::Uuid;

const FORBIDDEN: [&str; 6] = [
    "http://127.0.0.1:8080/cb",
    "http://[::1]:8080/cb",
    "http://10.0.0.1/cb",
    "http://169.254.169.254/latest/meta-data/",
    "http://localhost:8080/cb",
    "http://[::ffff:127.0.0.1]/cb",
];

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_callback_urls_are_refused_when_saved_and_when_sent() {
    let app = AdminApp::start_with_relay(false).await;
    let gateway = Gateway::start(&app).await;
    let store = Gateway::store(&app).await;
    let merchant = &store.merchant;
    for url in FORBIDDEN {
        let (status, body) = app
            .post(
                merchant,
                "/api/stores",
                json!({"name": format!("s-{}", Uuid::new_v4()), "callback_url": url}),
            )
            .await;
        assert_eq!(
            (status, code(&body)),
            (422, "callback_url_forbidden"),
            "{url}: {body}"
        );
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("public addresses"), "{message}");
        let (status, body) = app
            .patch(
                merchant,
                &format!("/api/stores/{}", store.store_id),
                json!({"callback_url": url}),
            )
            .await;
        assert_eq!(
            (status, code(&body)),
            (422, "callback_url_forbidden"),
            "{url}: {body}"
        );
        let (status, body) = gateway
            .post(
                Some(&store.api_key),
                "/api/v1/payins",
                json!({
                    "external_order_id": format!("o-{}", Uuid::new_v4()),
                    "amount": "5000",
                    "currency": "RUB",
                    "payment_method": "sbp",
                    "callback_url": url,
                }),
            )
            .await;
        assert_eq!(
            (status, code(&body)),
            (422, "callback_url_forbidden"),
            "{url}: {body}"
        );
    }
    assert_eq!(
        app.count("callback_order_targets").await + app.count("gateway_requests").await,
        0,
        "nothing was saved"
    );
    // A public name that does not resolve yet is accepted (it is checked again at every send).
    let (status, body) = app
        .patch(
            merchant,
            &format!("/api/stores/{}", store.store_id),
            json!({"callback_url": "https://shop.invalid/cb"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // The development allowance lets a local receiver in.
    let receiver = Receiver::start().await;
    set_setting(&app, "callbacks.allow_private_addresses", json!(true)).await;
    let (status, body) = app
        .patch(
            merchant,
            &format!("/api/stores/{}", store.store_id),
            json!({"callback_url": receiver.url}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // Without it, the sender refuses to call the same URL: at send time, not only when saved.
    set_setting(&app, "callbacks.allow_private_addresses", json!(false)).await;
    set_setting(&app, "callbacks.retry_schedule_secs", json!([0])).await;
    let sink = RunningSink::start(&app, jivapay_sinks::callbacks::system_clock());
    produce(
        &app,
        &[event(
            store.store_id,
            Uuid::new_v4(),
            1,
            OrderEventKind::Created,
            None,
        )],
    )
    .await;
    wait_count(
        &app,
        "SELECT count(*) FROM callback_attempts WHERE error LIKE 'callback_url_forbidden: 127.0.0.1 is 127.0.0.1, a loopback address%'",
        1,
        Duration::from_secs(30),
    )
    .await;
    wait_count(
        &app,
        "SELECT count(*) FROM callback_deliveries WHERE status = 'failed'",
        1,
        Duration::from_secs(10),
    )
    .await;
    assert!(receiver.received().is_empty());
    sink.stop().await;
    app.stop().await;
}

/// A merchant's store calling `url`.
async fn store(app: &AdminApp, merchant: &Person, url: &str) -> Uuid {
    let (status, body) = app
        .post(
            merchant,
            "/api/stores",
            json!({"name": format!("s-{}", Uuid::new_v4()), "callback_url": url}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merchants_see_and_replay_only_their_own_deliveries() {
    let app = AdminApp::start_with_relay(false).await;
    set_setting(&app, "callbacks.allow_private_addresses", json!(true)).await;
    set_setting(&app, "callbacks.retry_schedule_secs", json!([0])).await;
    let receiver = Receiver::start().await;
    receiver.script(|_, _| Answer::Status(500));
    let alice = app.person(Role::Merchant, &[]).await;
    let bob = app.person(Role::Merchant, &[]).await;
    let store_a = store(&app, &alice, &receiver.url).await;
    let store_b = store(&app, &bob, &receiver.url).await;
    let sink = RunningSink::start(&app, jivapay_sinks::callbacks::system_clock());
    let (order_1, order_2) = (Uuid::new_v4(), Uuid::new_v4());
    let e1 = event(store_a, order_1, 1, OrderEventKind::Created, None);
    let e2 = event(store_a, order_2, 1, OrderEventKind::Created, None);
    produce(&app, &[e1.clone(), e2.clone()]).await;
    wait_count(
        &app,
        "SELECT count(*) FROM callback_deliveries WHERE status = 'failed'",
        2,
        Duration::from_secs(30),
    )
    .await;

    // The log, per store, per order, by status.
    let (status, list) = app
        .get(
            &alice,
            &format!("/api/callback-deliveries?store_id={store_a}"),
        )
        .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list.as_array().unwrap().len(), 2);
    let (_, list) = app
        .get(
            &alice,
            &format!("/api/callback-deliveries?order_id={order_1}&status=failed"),
        )
        .await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let delivery = list[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(list[0]["event_id"], e1.event_id.to_string());
    assert_eq!(list[0]["last_status_code"], 500);
    let (status, detail) = app
        .get(&alice, &format!("/api/callback-deliveries/{delivery}"))
        .await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["payload"]["data"]["order_id"], order_1.to_string());
    let attempt = &detail["attempts"][0];
    assert_eq!(attempt["status_code"], 500);
    assert!(attempt["response_excerpt"]
        .as_str()
        .unwrap()
        .starts_with("answer 500"));
    assert!(attempt["latency_ms"].is_number());
    let (_, list) = app
        .get(&alice, "/api/callback-deliveries?from=2999-01-01T00:00:00Z")
        .await;
    assert_eq!(list, json!([]), "the time filter");
    let (_, list) = app
        .get(
            &alice,
            "/api/callback-deliveries?to=2999-01-01T00:00:00Z&event_type=order.created&limit=1",
        )
        .await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let (status, body) = app.get(&alice, "/api/callback-deliveries/not-a-uuid").await;
    assert_eq!((status, code(&body)), (400, "invalid_path"), "{body}");
    let (status, _) = app
        .get(&alice, "/api/callback-deliveries?status=bogus")
        .await;
    assert_eq!(status, 422);

    // Bob sees nothing of Alice's, and can replay nothing of hers.
    let (_, list) = app.get(&bob, "/api/callback-deliveries").await;
    assert_eq!(list, json!([]));
    let (_, list) = app
        .get(
            &bob,
            &format!("/api/callback-deliveries?store_id={store_a}"),
        )
        .await;
    assert_eq!(list, json!([]));
    let (status, _) = app
        .get(&bob, &format!("/api/callback-deliveries/{delivery}"))
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .post(
            &bob,
            &format!("/api/callback-deliveries/{delivery}/replay"),
            json!({}),
        )
        .await;
    assert_eq!(status, 404);
    let range = json!({"from": "2000-01-01T00:00:00Z", "to": "2000-01-20T00:00:00Z"});
    let (status, _) = app
        .post(
            &bob,
            &format!("/api/stores/{store_a}/callback-deliveries/replay"),
            range.clone(),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .post(
            &bob,
            &format!("/api/stores/{store_a}/callbacks/enable"),
            json!({}),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .post(
            &bob,
            &format!("/api/stores/{store_b}/callback-deliveries/replay"),
            range,
        )
        .await;
    assert_eq!(status, 202, "his own store");

    // Staff by permission.
    let nobody = app.person(Role::Support, &["stores:read:*"]).await;
    let (status, _) = app.get(&nobody, "/api/callback-deliveries").await;
    assert_eq!(status, 403);
    let reader = app.person(Role::Support, &["callbacks:read:*"]).await;
    let (_, list) = app.get(&reader, "/api/callback-deliveries").await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    let (status, _) = app
        .post(
            &reader,
            &format!("/api/callback-deliveries/{delivery}/replay"),
            json!({}),
        )
        .await;
    assert_eq!(status, 403);

    // A disabled store's deliveries are not replayed until it is re-enabled.
    sqlx::query("UPDATE stores SET callbacks_disabled_at = now(), callbacks_disabled_reason = 'test' WHERE id = $1")
        .bind(store_a)
        .execute(&app.db.pool)
        .await
        .unwrap();
    let (status, body) = app
        .post(
            &alice,
            &format!("/api/callback-deliveries/{delivery}/replay"),
            json!({}),
        )
        .await;
    assert_eq!((status, code(&body)), (409, "callbacks_disabled"), "{body}");
    let (status, _) = app
        .post(
            &alice,
            &format!("/api/stores/{store_a}/callbacks/enable"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);

    // Alice replays one: the same event id goes out again and now succeeds.
    receiver.script(|_, _| Answer::Status(200));
    let (status, body) = app
        .post(
            &alice,
            &format!("/api/callback-deliveries/{delivery}/replay"),
            json!({}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["replay_count"], 1);
    wait_count(
        &app,
        "SELECT count(*) FROM callback_deliveries WHERE status = 'succeeded'",
        1,
        Duration::from_secs(30),
    )
    .await;
    let (_, detail) = app
        .get(&alice, &format!("/api/callback-deliveries/{delivery}"))
        .await;
    assert_eq!(detail["attempts"].as_array().unwrap().len(), 2);
    assert_eq!(detail["attempts"][1]["status_code"], 200);
    let sent_e1 = receiver
        .received()
        .iter()
        .filter(|r| r.id == e1.event_id.to_string())
        .count();
    assert_eq!(sent_e1, 2, "the replay carries the same webhook-id");

    // And the rest of her failed deliveries in a time range.
    let now = chrono::Utc::now();
    let (status, body) = app
        .post(
            &alice,
            &format!("/api/stores/{store_a}/callback-deliveries/replay"),
            json!({"from": now - chrono::Duration::hours(1), "to": now + chrono::Duration::hours(1)}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["replayed"], 1);
    wait_count(
        &app,
        "SELECT count(*) FROM callback_deliveries WHERE status = 'succeeded'",
        2,
        Duration::from_secs(30),
    )
    .await;
    let (status, body) = app
        .post(
            &alice,
            &format!("/api/stores/{store_a}/callback-deliveries/replay"),
            json!({"from": now, "to": now - chrono::Duration::hours(1)}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action IN ('callback_delivery.replay', 'callback_delivery.replay_failed')",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(audited, 3);
    sink.stop().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_store_url_takes_over_undelivered_callbacks() {
    let app = AdminApp::start_with_relay(false).await;
    set_setting(&app, "callbacks.allow_private_addresses", json!(true)).await;
    set_setting(&app, "callbacks.retry_schedule_secs", json!([0])).await;
    let (old, new) = (Receiver::start().await, Receiver::start().await);
    old.script(|_, _| Answer::Status(404));
    let merchant = app.person(Role::Merchant, &[]).await;
    let store_id = store(&app, &merchant, &old.url).await;
    let sink = RunningSink::start(&app, jivapay_sinks::callbacks::system_clock());
    let order = Uuid::new_v4();
    // The first event carries the store's default URL, as fraud sets it.
    let created = event(store_id, order, 1, OrderEventKind::Created, Some(&old.url));
    produce(&app, std::slice::from_ref(&created)).await;
    wait_count(
        &app,
        "SELECT count(*) FROM callback_deliveries WHERE status = 'failed'",
        1,
        Duration::from_secs(30),
    )
    .await;
    let (status, body) = app
        .patch(
            &merchant,
            &format!("/api/stores/{store_id}"),
            json!({"callback_url": new.url}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // The failed one, replayed, and the order's next event reach the new URL.
    let (_, list) = app
        .get(
            &merchant,
            &format!("/api/callback-deliveries?order_id={order}"),
        )
        .await;
    let id = list[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(list[0]["url"], new.url);
    let (status, _) = app
        .post(
            &merchant,
            &format!("/api/callback-deliveries/{id}/replay"),
            json!({}),
        )
        .await;
    assert_eq!(status, 202);
    produce(
        &app,
        &[event(store_id, order, 2, OrderEventKind::Completed, None)],
    )
    .await;
    let got = new.wait_for(2, Duration::from_secs(30)).await;
    assert_eq!(got[0].id, created.event_id.to_string());
    let (_, detail) = app
        .get(&merchant, &format!("/api/callback-deliveries/{id}"))
        .await;
    assert_eq!(
        detail["attempts"][0]["url"], old.url,
        "attempts keep the URL they went to"
    );
    assert_eq!(detail["attempts"][1]["url"], new.url);
    sink.stop().await;
    app.stop().await;
}
