//! Callbacks from the real pipeline: `jivapay all` over the demo data; a demo store's pay-ins
//! carry a callback URL on a local receiver, and the processors' order events come back to it
//! as signed callbacks — `order.created` with the payment URL the gateway answered, then
//! `order.assigned` (or `order.no_requisite`), never the internal `review`.

use jivapay_sinks::callbacks::signing;
use jivapay_tests::callbacks::Receiver;
use jivapay_tests::demo;
use jivapay_tests::process::start_all;
use jivapay_tests::TestDatabase;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_jivapay"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipelines_order_events_reach_the_merchant_as_signed_callbacks() {
    let db = TestDatabase::empty().await;
    let url = db.url.clone();
    demo::seed(binary(), &url);
    // The receiver is on 127.0.0.1: the development allowance.
    sqlx::query("UPDATE configuration_settings SET value = 'true' WHERE key = 'callbacks.allow_private_addresses'")
        .execute(&db.pool)
        .await
        .unwrap();
    let receiver = Receiver::start().await;
    let app = start_all(
        binary(),
        &[
            ("JIVAPAY__DATABASE__URL", url.as_str()),
            ("JIVAPAY__KAFKA__BROKERS", "embedded"),
        ],
    );
    let merchant = demo::Merchant::sign_in(&app, "demo-merchant-1").await;
    let client = merchant.client.clone();
    let store = merchant.store.clone();
    let rotate = format!("/api/stores/{store}/signing-secret/rotate");
    let rotated = merchant.post(&rotate, json!({})).await;
    let secret = rotated["signing_secret"].as_str().unwrap().to_owned();
    let key = merchant.api_key().await;
    let post = |external: String, amount: &str| {
        let body = json!({"external_order_id": external, "amount": amount, "currency": "RUB",
            "payment_method": "sbp", "callback_url": receiver.url});
        let request = client
            .post(format!("{}/api/v1/payins", app.ingest))
            .header("x-api-key", &key)
            .json(&body);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status().as_u16(), 201);
            let body: Value = response.json().await.unwrap();
            (
                body["order_id"].as_str().unwrap().to_owned(),
                body["payment_url"].as_str().unwrap().to_owned(),
            )
        }
    };
    // The demo deposits reach the trader books through the outbox a moment after start: post
    // until an order is assigned.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut orders = Vec::new();
    let assigned = 'found: loop {
        let (order, payment_url) = post(
            format!("cb-{}", orders.len()),
            &format!("{}", 1000 + orders.len() * 10),
        )
        .await;
        orders.push((order.clone(), payment_url));
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            for r in receiver.received() {
                let body = r.json();
                if body["type"] == "order.assigned" && body["data"]["order_id"] == order {
                    break 'found order;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            Instant::now() < deadline,
            "no order was assigned within a minute: {:?}",
            receiver.received().len()
        );
    };
    let (review_order, _) = post("cb-review".into(), "400000").await;
    let (big_order, _) = post("cb-too-big".into(), "150000").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let got = loop {
        let got = receiver.received();
        if got.iter().any(|r| {
            r.json()["data"]["order_id"] == big_order && r.json()["type"] == "order.no_requisite"
        }) {
            break got;
        }
        assert!(Instant::now() < deadline, "no order.no_requisite callback");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let of = |order: &str| -> Vec<Value> {
        got.iter()
            .map(|r| r.json())
            .filter(|b| b["data"]["order_id"] == order)
            .collect()
    };
    let assigned_callbacks = of(&assigned);
    let types: Vec<&str> = assigned_callbacks
        .iter()
        .map(|b| b["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["order.created", "order.assigned"]);
    let payment_url = &orders.iter().find(|(o, _)| *o == assigned).unwrap().1;
    assert_eq!(
        assigned_callbacks[0]["data"]["payment_url"],
        payment_url.as_str()
    );
    assert_eq!(assigned_callbacks[1]["data"]["previous_status"], "created");
    assert!(assigned_callbacks[1]["data"]["crypto_amount"].is_string());
    assert!(
        of(&review_order).is_empty(),
        "review is not a merchant-visible status"
    );
    for r in &got {
        assert!(signing::verify(
            &secret,
            &r.id,
            r.timestamp.parse().unwrap(),
            r.body.as_bytes(),
            &r.signature
        ));
    }
    app.terminate();
    db.drop_database().await;
}
