//! The pay-in pipeline as far as it is wired: `jivapay seed --demo` and `jivapay all`, a demo
//! merchant makes an API key, posts pay-ins through the gateway, and each order is screened,
//! routed and assigned to a demo trader's requisite by the processors (or sent to review, or
//! left without a requisite), as the order status endpoint shows.

use jivapay_tests::demo::{self, DEMO_PASSWORD};
use jivapay_tests::process::start_all;
use jivapay_tests::TestDatabase;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_jivapay"))
}

async fn status_of(client: &reqwest::Client, ingest: &str, key: &str, external: &str) -> Value {
    let response = client
        .get(format!("{ingest}/api/v1/orders/external/{external}"))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap();
    response.json().await.unwrap()
}

/// Waits until the order leaves `created`; returns its status record.
async fn settled(client: &reqwest::Client, ingest: &str, key: &str, external: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = status_of(client, ingest, key, external).await;
        if status["status"] != "created" {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "{external} still created: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pay_ins_are_screened_routed_and_assigned() {
    let db = TestDatabase::empty().await;
    let url = db.url.clone();
    demo::seed(binary(), &url);
    let app = start_all(
        binary(),
        &[
            ("JIVAPAY__DATABASE__URL", url.as_str()),
            ("JIVAPAY__KAFKA__BROKERS", "embedded"),
        ],
    );
    let merchant = demo::Merchant::sign_in(&app, "demo-merchant-1").await;
    let client = merchant.client.clone();
    let store = merchant.store.as_str();
    let key = merchant.api_key().await;
    let key = key.as_str();

    let post = |external: String, amount: &str, method: &str| {
        let body = json!({"external_order_id": external, "amount": amount, "currency": "RUB", "payment_method": method});
        let request = client
            .post(format!("{}/api/v1/payins", app.ingest))
            .header("x-api-key", key)
            .json(&body);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status().as_u16(), 201);
            let body: Value = response.json().await.unwrap();
            body["payment_url"].as_str().unwrap().to_owned()
        }
    };
    // The demo deposits reach the trader books (and their capacity the router) through the
    // outbox a moment after start: wait until an order can be assigned.
    let deadline = Instant::now() + Duration::from_secs(60);
    for attempt in 0.. {
        let external = format!("warm-up-{attempt}");
        post(external.clone(), "777", "account").await;
        if settled(&client, &app.ingest, key, &external).await["status"] == "assigned" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no order could be assigned within a minute"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Distinct amounts per method: one requisite cannot hold two open orders of one amount.
    let mut payment_tokens = std::collections::HashMap::new();
    for n in 0..12 {
        let method = if n % 2 == 0 { "sbp" } else { "card2card" };
        let url = post(format!("ok-{n}"), &format!("{}", 1000 + n * 10), method).await;
        payment_tokens.insert(
            format!("ok-{n}"),
            url.rsplit('/').next().unwrap().to_owned(),
        );
    }
    post("too-big".into(), "150000", "sbp").await; // above every requisite's maximum
    post("review".into(), "400000", "sbp").await; // above the review threshold

    let mut requisite_amounts = HashSet::new();
    for n in 0..12 {
        let status = settled(&client, &app.ingest, key, &format!("ok-{n}")).await;
        assert_eq!(status["status"], "assigned", "{status}");
        assert_eq!(status["rate"], "92.50000000");
        let amount: rust_decimal::Decimal = status["amount"].as_str().unwrap().parse().unwrap();
        let crypto: rust_decimal::Decimal =
            status["crypto_amount"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            crypto,
            (amount / rust_decimal::Decimal::new(925, 1)).round_dp(6)
        );
        requisite_amounts.insert(status["amount"].to_string());
    }
    assert_eq!(requisite_amounts.len(), 12);
    let status = settled(&client, &app.ingest, key, "too-big").await;
    assert_eq!(
        (status["status"].as_str(), status["reason_code"].as_str()),
        (Some("no_requisite"), Some("no_eligible_requisite")),
        "{status}"
    );
    // Support's answer to "why did my order fail": the event lists every requisite of the
    // pool with the rule it failed; an assignment names the chosen one among the considered.
    let candidates = |external: &'static str, event_type: &'static str| {
        sqlx::query_scalar::<_, Value>(
            "SELECT e.payload -> 'candidates' FROM order_events e JOIN orders o ON o.id = e.order_id
             WHERE o.external_order_id = $1 AND e.event_type = $2",
        )
        .bind(external)
        .bind(event_type)
        .fetch_one(&db.pool)
    };
    let refused = candidates("too-big", "no_requisite").await.unwrap();
    let refused = refused.as_array().unwrap();
    assert!(!refused.is_empty());
    assert!(
        refused
            .iter()
            .all(|c| c["outcome"] == "skipped" && c["reason_code"].is_string()),
        "{refused:?}"
    );
    assert!(refused
        .iter()
        .any(|c| c["reason_code"] == "above_max_amount"));
    let assigned = candidates("ok-0", "assigned").await.unwrap();
    let chosen: Vec<&Value> = assigned
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["outcome"] == "chosen")
        .collect();
    assert_eq!(chosen.len(), 1, "{assigned}");
    assert!(assigned.as_array().unwrap().len() > 1, "{assigned}");
    let status = settled(&client, &app.ingest, key, "review").await;
    assert_eq!(
        (status["status"].as_str(), status["reason_code"].as_str()),
        (Some("review"), Some("amount_above_review_threshold")),
        "{status}"
    );

    // Every assignment holds the trader's deposit: the trader book's capacity is below 5000.
    let assigned: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM orders WHERE status = 'assigned' AND requisite_id IS NOT NULL",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(assigned, 13, "twelve orders and the warm-up");

    // Customers of the first six confirm on the payment page (its JSON variant); they see the
    // full number they must pay to.
    for n in 0..6 {
        let token = &payment_tokens[&format!("ok-{n}")];
        let page: Value = client
            .get(format!("{}/api/v1/payment/{token}", app.ingest))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            (page["status"].as_str(), page["can_confirm"].as_bool()),
            (Some("assigned"), Some(true)),
            "{page}"
        );
        assert!(
            !page["requisite"]["number"].as_str().unwrap().contains('*'),
            "the payer sees the whole number"
        );
        let confirmed = client
            .post(format!("{}/api/v1/payment/{token}/confirm", app.ingest))
            .send()
            .await
            .unwrap();
        assert_eq!(confirmed.status().as_u16(), 202);
    }
    for n in 0..6 {
        let deadline = Instant::now() + Duration::from_secs(30);
        while status_of(&client, &app.ingest, key, &format!("ok-{n}")).await["status"]
            != "client_confirmed"
        {
            assert!(Instant::now() < deadline, "ok-{n} not client_confirmed");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // Every demo trader confirms the money arrived for each of his open orders.
    let mut confirmed = 0;
    for n in 1..=6 {
        let login: Value = client
            .post(format!("{}/api/auth/trader/login", app.admin))
            .json(&json!({"login": format!("demo-trader-{n}"), "password": DEMO_PASSWORD}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = login["token"].as_str().unwrap();
        let open: Value = client
            .get(format!("{}/api/trader/orders", app.admin))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for order in open.as_array().unwrap() {
            let id = order["order_id"].as_str().unwrap();
            let answer = client
                .post(format!("{}/api/trader/orders/{id}/confirm", app.admin))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status().as_u16(), 202);
            confirmed += 1;
        }
    }
    assert_eq!(confirmed, 13, "twelve orders and the warm-up");
    for n in 0..12 {
        let deadline = Instant::now() + Duration::from_secs(30);
        while status_of(&client, &app.ingest, key, &format!("ok-{n}")).await["status"]
            != "completed"
        {
            assert!(Instant::now() < deadline, "ok-{n} not completed");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // The ledger: one balanced pay-in transfer per completed order, the store credited
    // C·(1 − s) for each (s = 3.0 % for sbp, 3.5 % for card to card in the demo).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n: i64 =
            sqlx::query_scalar("SELECT count(*) FROM ledger_transfers WHERE kind = 'pay_in'")
                .fetch_one(&db.pool)
                .await
                .unwrap();
        if n == 13 {
            break;
        }
        assert!(Instant::now() < deadline, "{n} of 13 transfers journaled");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let unbalanced: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT transfer_id FROM ledger_entries GROUP BY transfer_id, currency HAVING sum(amount) <> 0) t",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(unbalanced, 0);
    let store_balance: rust_decimal::Decimal = sqlx::query_scalar(
        "SELECT b.balance FROM ledger_balances b JOIN ledger_accounts a ON a.id = b.account_id
         WHERE a.owner_kind = 'store' AND a.owner_id = $1::uuid AND a.kind = 'available'",
    )
    .bind(store)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let mut expected = rust_decimal::Decimal::ZERO;
    for n in 0..12 {
        let fiat = rust_decimal::Decimal::from(1000 + n * 10);
        let c = (fiat / rust_decimal::Decimal::new(925, 1)).round_dp(6);
        let s = if n % 2 == 0 {
            rust_decimal::Decimal::new(30, 3)
        } else {
            rust_decimal::Decimal::new(35, 3)
        };
        expected += c * (rust_decimal::Decimal::ONE - s);
    }
    // The warm-up order: 777 RUB by account transfer, s = 2.5 %.
    let warm_up =
        (rust_decimal::Decimal::from(777) / rust_decimal::Decimal::new(925, 1)).round_dp(6);
    expected += warm_up * (rust_decimal::Decimal::ONE - rust_decimal::Decimal::new(25, 3));
    let difference = (store_balance - expected).abs();
    assert!(
        difference <= rust_decimal::Decimal::new(13, 6),
        "store balance {store_balance}, expected about {expected}"
    );

    // The first scrape counts every record processed since the start (the recorder used to be
    // installed by the first scrape, and everything before it was lost).
    let scrape = || async {
        client
            .get(format!("{}/metrics", app.admin))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let metrics = scrape().await;
    let fraud_in: f64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with("jivapay_processor_records_in_total{")
                && l.contains("stage=\"fraud\"")
                && l.contains("topic=\"orders.requested\"")
        })
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert!(
        fraud_in >= 13.0,
        "{fraud_in} pay-ins counted before the first scrape, not 13"
    );

    // The processors publish their consumer lag (from librdkafka's statistics, every 2 s).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let metrics = scrape().await;
        let lag = metrics.lines().find(|l| {
            l.starts_with("jivapay_processor_consumer_lag{") && l.contains("stage=\"fraud\"")
        });
        if let Some(line) = lag {
            let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
            assert!(value >= 0.0, "{line}");
            break;
        }
        assert!(Instant::now() < deadline, "no consumer lag published");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    app.terminate();
    db.drop_database().await;
}
