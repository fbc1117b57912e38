//! The pay-in pipeline as far as it is wired: `jivapay seed --demo` and `jivapay all`, a demo
//! merchant makes an API key, posts pay-ins through the gateway, and each order is screened,
//! routed and assigned to a demo trader's requisite by the processors (or sent to review, or
//! left without a requisite), as the order status endpoint shows.

use jivapay_tests::process::{command, start_all};
use jivapay_tests::TestDatabase;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

const DEMO_PASSWORD: &str = "demo-password-123";

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
    let env = [
        ("JIVAPAY__DATABASE__URL", url.as_str()),
        ("JIVAPAY__SEED__DEMO_PASSWORD", DEMO_PASSWORD),
    ];
    let seeded = command(binary(), &["seed", "--demo"], &env)
        .output()
        .unwrap();
    assert!(
        seeded.status.success(),
        "{}",
        String::from_utf8_lossy(&seeded.stderr)
    );
    let app = start_all(
        binary(),
        &[
            ("JIVAPAY__DATABASE__URL", url.as_str()),
            ("JIVAPAY__KAFKA__BROKERS", "embedded"),
        ],
    );
    let client = reqwest::Client::new();

    let login: Value = client
        .post(format!("{}/api/auth/merchant/login", app.admin))
        .json(&json!({"login": "demo-merchant-1", "password": DEMO_PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["token"].as_str().unwrap();
    let stores: Value = client
        .get(format!("{}/api/stores", app.admin))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let store = stores[0]["id"].as_str().unwrap();
    let key: Value = client
        .post(format!("{}/api/stores/{store}/api-keys", app.admin))
        .bearer_auth(token)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = key["key"].as_str().unwrap();

    let post = |external: String, amount: &str, method: &str| {
        let body = json!({"external_order_id": external, "amount": amount, "currency": "RUB", "payment_method": method});
        let request = client
            .post(format!("{}/api/v1/payins", app.ingest))
            .header("x-api-key", key)
            .json(&body);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(
                response.status().as_u16(),
                201,
                "{:?}",
                response.text().await
            );
        }
    };
    // Distinct amounts per method: one requisite cannot hold two open orders of one amount.
    for n in 0..12 {
        let method = if n % 2 == 0 { "sbp" } else { "card2card" };
        post(format!("ok-{n}"), &format!("{}", 1000 + n * 10), method).await;
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
    assert_eq!(assigned, 12);
    app.terminate();
    db.drop_database().await;
}
