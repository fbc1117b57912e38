//! The gateway's pay-in API as a store uses it: create (201), repeat (200, same answer),
//! conflicting repeat (409), status by id and external id, scoping to the store, and bad input
//! refused with stable codes while nothing is created.

use jivapay_admin::auth::Role;
use jivapay_domain::{OrderId, StoreId};
use jivapay_platform::kafka::RecordConsumer;
use jivapay_schemas::records::{Direction, OrderRequested};
use jivapay_schemas::topics::ORDERS_REQUESTED;
use jivapay_tests::admin::AdminApp;
use jivapay_tests::gateway::Gateway;
use jivapay_tests::unique_group;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

fn payin(external: &str, amount: &str) -> Value {
    json!({
        "external_order_id": external,
        "amount": amount,
        "currency": "RUB",
        "payment_method": "sbp",
        "customer_id": "customer-1",
        "callback_url": "https://shop.example/callbacks"
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payin_is_created_once_and_repeats_are_recognised() {
    let app = AdminApp::start_with_relay(false).await;
    let gateway = Gateway::start(&app).await;
    let store = Gateway::store(&app).await;
    let key = Some(store.api_key.as_str());

    let (status, created) = gateway
        .post(key, "/api/v1/payins", payin("order-1", "5000"))
        .await;
    assert_eq!(status, 201, "{created}");
    let order_id = OrderId::derive(StoreId(store.store_id), "order-1").to_string();
    assert_eq!(created["order_id"], order_id);
    assert_eq!(created["status"], "created");
    assert_eq!(created["amount"], "5000.00");
    let payment_url = created["payment_url"].as_str().unwrap();
    assert!(
        payment_url.starts_with("http://pay.test/pay/") && payment_url.len() > 40,
        "{payment_url}"
    );

    let (status, again) = gateway
        .post(key, "/api/v1/payins", payin("order-1", "5000.00"))
        .await;
    assert_eq!(status, 200, "a repeat is the same order");
    assert_eq!(again, created);

    let (status, conflict) = gateway
        .post(key, "/api/v1/payins", payin("order-1", "5001"))
        .await;
    assert_eq!(
        (status, conflict["error"]["code"].as_str()),
        (409, Some("idempotency_conflict"))
    );
    let mut other_method = payin("order-1", "5000");
    other_method["payment_method"] = json!("card2card");
    assert_eq!(
        gateway.post(key, "/api/v1/payins", other_method).await.0,
        409
    );

    let token = payment_url.rsplit('/').next().unwrap();
    let (status, page) = gateway.get(None, &format!("/api/v1/payment/{token}")).await;
    assert_eq!(
        (
            status,
            page["status"].as_str(),
            page["can_confirm"].as_bool()
        ),
        (200, Some("created"), Some(false)),
        "{page}"
    );
    assert!(
        page["requisite"].is_null(),
        "no requisite before assignment"
    );
    let (status, page) = gateway
        .get(None, "/api/v1/payment/not-a-real-token-at-all")
        .await;
    assert_eq!(
        (status, page["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, page) = gateway
        .post(None, &format!("/api/v1/payment/{token}/confirm"), json!({}))
        .await;
    assert_eq!(
        (status, page["error"]["code"].as_str()),
        (409, Some("not_confirmable")),
        "only an assigned order"
    );
    let html = gateway
        .client
        .get(format!("{}/pay/{token}", gateway.base))
        .send()
        .await
        .unwrap();
    assert_eq!(html.status().as_u16(), 200);
    assert!(html
        .text()
        .await
        .unwrap()
        .contains("Preparing your payment"));
    let (status, by_id) = gateway
        .get(key, &format!("/api/v1/orders/{order_id}"))
        .await;
    assert_eq!(
        (status, by_id["status"].as_str()),
        (200, Some("created")),
        "{by_id}"
    );
    let (status, by_external) = gateway.get(key, "/api/v1/orders/external/order-1").await;
    assert_eq!(
        (status, by_external["order_id"].as_str()),
        (200, Some(order_id.as_str()))
    );

    // Another store sees nothing of it.
    let other = Gateway::store(&app).await;
    let (status, _) = gateway
        .get(Some(&other.api_key), &format!("/api/v1/orders/{order_id}"))
        .await;
    assert_eq!(status, 404);

    // The order is on orders.requested, keyed by store, exactly as accepted.
    let consumer = RecordConsumer::subscribe(
        &app.broker,
        app.state.schemas.clone(),
        &unique_group("gw"),
        &[ORDERS_REQUESTED],
    )
    .unwrap();
    let record = tokio::time::timeout(Duration::from_secs(30), consumer.next::<OrderRequested>())
        .await
        .unwrap()
        .unwrap();
    consumer.close().ok();
    assert_eq!(record.key, store.store_id.to_string());
    let order = record.value.unwrap();
    assert_eq!(order.order_id.to_string(), order_id);
    assert_eq!(order.direction, Direction::PayIn);
    assert_eq!(
        order.fiat_amount.map(|a| a.to_string()),
        Some("5000.00".into())
    );
    assert_eq!(order.customer_id.as_deref(), Some("customer-1"));
    assert!(payment_url.ends_with(&order.payment_token));
    // The expiry the store was given travels with the order, so every stage keeps it.
    let promised = chrono::DateTime::parse_from_rfc3339(created["expires_at"].as_str().unwrap())
        .unwrap()
        .timestamp_millis();
    assert_eq!(order.expires_at, Some(promised));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_and_bad_keys_create_nothing() {
    let app = AdminApp::start_with_relay(false).await;
    let gateway = Gateway::start(&app).await;
    let store = Gateway::store(&app).await;
    let key = Some(store.api_key.as_str());
    let with = |field: &str, value: Value| {
        let mut body = payin("bad-1", "100");
        body[field] = value;
        body
    };
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "number amount",
            with("amount", json!(100.5)),
            422,
            "invalid_body",
        ),
        (
            "zero amount",
            with("amount", json!("0")),
            422,
            "invalid_amount",
        ),
        (
            "negative amount",
            with("amount", json!("-10")),
            422,
            "invalid_amount",
        ),
        (
            "three decimals",
            with("amount", json!("10.001")),
            422,
            "invalid_amount",
        ),
        (
            "not a number",
            with("amount", json!("ten")),
            422,
            "invalid_amount",
        ),
        (
            "absurd amount",
            with("amount", json!("99999999999999")),
            422,
            "invalid_amount",
        ),
        (
            "unknown currency",
            with("currency", json!("XYZ")),
            422,
            "unknown_currency",
        ),
        (
            "crypto is not fiat",
            with("currency", json!("USDT")),
            422,
            "unknown_currency",
        ),
        (
            "unknown method",
            with("payment_method", json!("pigeon")),
            422,
            "unknown_payment_method",
        ),
        (
            "method not for currency",
            {
                let mut b = with("currency", json!("UZS"));
                b["payment_method"] = json!("sbp");
                b
            },
            422,
            "unknown_payment_method",
        ),
        (
            "empty external id",
            with("external_order_id", json!("  ")),
            422,
            "invalid_external_order_id",
        ),
        (
            "bad callback",
            with("callback_url", json!("ftp://x")),
            422,
            "validation_failed",
        ),
        (
            "unknown field",
            with("colour", json!("red")),
            422,
            "invalid_body",
        ),
        (
            "missing field",
            {
                let mut b = payin("bad-1", "100");
                b.as_object_mut().unwrap().remove("currency");
                b
            },
            422,
            "invalid_body",
        ),
    ];
    for (name, body, status, code) in cases {
        let (got, answer) = gateway.post(key, "/api/v1/payins", body).await;
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{name}: {answer}"
        );
    }
    let huge = with("customer_id", json!("x".repeat(64 * 1024)));
    let (status, answer) = gateway.post(key, "/api/v1/payins", huge).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (413, Some("body_too_large"))
    );
    for bad_key in [
        None,
        Some("jp_nothing_here"),
        Some("jp_abcdefgh_0123456789abcdefghijABCDEFGHIJ"),
    ] {
        let (status, answer) = gateway
            .post(bad_key, "/api/v1/payins", payin("bad-2", "100"))
            .await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (401, Some("unauthenticated")),
            "{bad_key:?}"
        );
    }
    // Lookups with a malformed or unknown id or token, and a token of another store's order
    // guessed by changing one character: a stable 4xx, never another order's data.
    let (status, answer) = gateway.get(key, "/api/v1/orders/not-a-uuid").await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("invalid_path")),
        "{answer}"
    );
    let unknown = uuid::Uuid::new_v4();
    for path in [
        format!("/api/v1/orders/{unknown}"),
        "/api/v1/orders/external/nothing-here".to_string(),
        "/api/v1/payment/not-a-token".to_string(),
        format!("/api/v1/payment/{}", "A".repeat(43)),
    ] {
        let (status, answer) = gateway.get(key, &path).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (404, Some("not_found")),
            "{path}: {answer}"
        );
    }
    let (status, answer) = gateway
        .post(None, "/api/v1/payment/not-a-token/confirm", json!({}))
        .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{answer}"
    );
    let page = gateway
        .client
        .get(format!("{}/pay/not-a-token", gateway.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 404);
    assert_eq!(
        app.count("gateway_requests").await,
        0,
        "nothing was created"
    );
    app.stop().await;
}

/// The gateway keeps keys and pool checks in memory; a revoked key, disabled pay-ins or a
/// deactivated pool still take effect at once (a database notification drops the cache).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_and_switches_reach_the_gateway_at_once() {
    let app = AdminApp::start_with_relay(false).await;
    let gateway = Gateway::start(&app).await;
    let store = Gateway::store(&app).await;
    let key = Some(store.api_key.as_str());
    // Each answer below comes within a short bound, not after the cache's time to live.
    async fn within(
        what: &str,
        mut attempt: impl AsyncFnMut() -> (u16, Value),
        wanted: (u16, &str),
    ) {
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        loop {
            let (status, body) = attempt().await;
            if (status, body["error"]["code"].as_str()) == (wanted.0, Some(wanted.1)) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{what}: still {status} {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // Warm the cache: twice the same answer.
    for n in 0..2 {
        let (status, _) = gateway
            .post(key, "/api/v1/payins", payin(&format!("warm-{n}"), "100"))
            .await;
        assert_eq!(status, 201);
    }

    let path = format!("/api/stores/{}", store.store_id);
    let (status, _) = app
        .patch(&store.merchant, &path, json!({"pay_in_enabled": false}))
        .await;
    assert_eq!(status, 200);
    within(
        "pay-ins disabled",
        async || {
            gateway
                .post(key, "/api/v1/payins", payin("after-off", "100"))
                .await
        },
        (403, "pay_in_disabled"),
    )
    .await;
    let (status, _) = app
        .patch(&store.merchant, &path, json!({"pay_in_enabled": true}))
        .await;
    assert_eq!(status, 200);

    let admin = app.person(Role::Admin, &["*:*:*"]).await;
    let (status, body) = app
        .patch(
            &admin,
            "/api/reference/pools/sbp/RUB",
            json!({"is_active": false}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    within(
        "pool deactivated",
        async || {
            gateway
                .post(key, "/api/v1/payins", payin("after-pool", "100"))
                .await
        },
        (422, "unknown_payment_method"),
    )
    .await;

    let (_, keys) = app
        .get(
            &store.merchant,
            &format!("/api/stores/{}/api-keys", store.store_id),
        )
        .await;
    let key_id = keys[0]["id"].as_str().unwrap().to_owned();
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/stores/{}/api-keys/{key_id}", store.store_id),
            Some(&store.merchant.token),
            None,
        )
        .await;
    assert!(status == 200 || status == 204, "{status}");
    within(
        "key revoked",
        async || {
            gateway
                .post(key, "/api/v1/payins", payin("after-revoke", "100"))
                .await
        },
        (401, "unauthenticated"),
    )
    .await;
    app.stop().await;
}

/// A store over `rate_limits.gateway_requests_per_second` gets 429 with `Retry-After` and
/// nothing is created for it; another store is not held up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_over_its_request_budget_is_told_to_wait() {
    let app = AdminApp::start_with_relay(false).await;
    let admin = app.person(Role::Admin, &["*:*:*"]).await;
    let (status, body) = app
        .put(
            &admin,
            "/api/settings/rate_limits.gateway_requests_per_second",
            json!({"value": 3}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // Started after the change: its first request reads the setting.
    let gateway = Gateway::start(&app).await;
    let (busy, calm) = (Gateway::store(&app).await, Gateway::store(&app).await);
    let mut answers = Vec::new();
    for n in 0..6 {
        let response = gateway
            .client
            .post(format!("{}/api/v1/payins", gateway.base))
            .header("x-api-key", &busy.api_key)
            .json(&payin(&format!("burst-{n}"), "100"))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let retry_after = response.headers().get("retry-after").cloned();
        let body: Value = response.json().await.unwrap();
        answers.push((
            status,
            body["error"]["code"].as_str().map(str::to_owned),
            retry_after,
        ));
    }
    let created = answers.iter().filter(|a| a.0 == 201).count();
    assert!(
        (3..=4).contains(&created),
        "a budget of 3 per second: {answers:?}"
    );
    let refused: Vec<_> = answers.iter().filter(|a| a.0 == 429).collect();
    assert_eq!(refused.len(), 6 - created, "{answers:?}");
    assert!(refused
        .iter()
        .all(|a| a.1.as_deref() == Some("rate_limited") && a.2.is_some()));
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM gateway_requests WHERE store_id = $1")
        .bind(busy.store_id)
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(
        rows as usize, created,
        "nothing is created for a refused request"
    );
    let (status, _) = gateway
        .post(
            Some(&calm.api_key),
            "/api/v1/payins",
            payin("calm-1", "100"),
        )
        .await;
    assert_eq!(status, 201, "another store has its own budget");
    app.stop().await;
}

/// Pay-ins arriving together are journaled together (one statement per batch): each distinct
/// order is created once, simultaneous repeats of one order get one 201 and 200s with the same
/// order, and a simultaneous conflicting repeat is refused — as if they had come one by one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_payins_are_each_created_once() {
    let app = AdminApp::start_with_relay(false).await;
    let gateway = Gateway::start(&app).await;
    let store = Gateway::store(&app).await;
    let body = |external: &str, amount: &str| json!({"external_order_id": external, "amount": amount, "currency": "RUB", "payment_method": "sbp"});
    let mut requests: Vec<Value> = (0..60)
        .map(|n| body(&format!("burst-{n}"), "1500"))
        .collect();
    requests.extend((0..10).map(|_| body("burst-repeated", "2500")));
    let answers = futures::future::join_all(
        requests
            .iter()
            .map(|b| gateway.post(Some(&store.api_key), "/api/v1/payins", b.clone())),
    )
    .await;
    assert!(
        answers[..60].iter().all(|(status, _)| *status == 201),
        "every distinct pay-in is created: {:?}",
        answers[..60].iter().map(|a| a.0).collect::<Vec<_>>()
    );
    let repeated: Vec<u16> = answers[60..].iter().map(|(status, _)| *status).collect();
    assert_eq!(
        (
            repeated.iter().filter(|s| **s == 201).count(),
            repeated.iter().filter(|s| **s == 200).count()
        ),
        (1, 9),
        "{repeated:?}"
    );
    let order = &answers[60].1["order_id"];
    assert!(answers[60..].iter().all(|(_, a)| &a["order_id"] == order));
    let (status, conflict) = gateway
        .post(
            Some(&store.api_key),
            "/api/v1/payins",
            body("burst-repeated", "2600"),
        )
        .await;
    assert_eq!(
        (status, conflict["error"]["code"].as_str()),
        (409, Some("idempotency_conflict"))
    );
    let (rows,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM gateway_requests WHERE store_id = $1 AND external_order_id LIKE 'burst-%'",
    )
    .bind(store.store_id)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(rows, 61);
    app.stop().await;
}

/// Many payment pages loaded at once (with repeats and an unknown token among them) each get
/// their own order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_payment_views_each_show_their_own_order() {
    let app = AdminApp::start_with_relay(false).await;
    let gateway = Gateway::start(&app).await;
    let store = Gateway::store(&app).await;
    let mut payins = Vec::new();
    for n in 0..20 {
        payins.push(
            gateway
                .payin(&store, &format!("view-{n}"), &format!("{}", 1000 + n))
                .await,
        );
    }
    // Every page asked for three times, and one token nobody was given.
    let mut tokens: Vec<String> = payins
        .iter()
        .flat_map(|p| std::iter::repeat_n(p.token.clone(), 3))
        .collect();
    tokens.push("A".repeat(43));
    let paths: Vec<String> = tokens
        .iter()
        .map(|token| format!("/api/v1/payment/{token}"))
        .collect();
    let answers = futures::future::join_all(paths.iter().map(|path| gateway.get(None, path))).await;
    for (n, payin) in payins.iter().enumerate() {
        for (status, view) in &answers[n * 3..n * 3 + 3] {
            assert_eq!(*status, 200, "{view}");
            assert_eq!(view["order_id"], json!(payin.order_id.to_string()));
            assert_eq!(view["amount"], json!(format!("{}.00", 1000 + n)), "{view}");
        }
    }
    let (status, unknown) = answers.last().unwrap();
    assert_eq!(
        (*status, unknown["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{unknown}"
    );
    app.stop().await;
}
