//! Requisites through the management API: ownership and scopes, masking, moderation, bad
//! input, and the way every edit reaches the `traders` topic through the outbox (within a
//! second; after a broker outage, without loss).

use jivapay_admin::auth::Role;
use jivapay_platform::kafka::{RecordProducer, Table};
use jivapay_schemas::records::{ModerationStatus, Trader};
use jivapay_schemas::topics::TRADERS;
use jivapay_tests::admin::{AdminApp, Person};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

fn card(number: &str) -> Value {
    json!({
        "payment_method": "card2card",
        "fiat_currency": "RUB",
        "bank_code": "sberbank",
        "kind": "card",
        "number": number,
        "holder_name": "Ivan Petrov",
        "min_amount": "100",
        "max_amount": "50000",
        "daily_turnover_limit": "500000",
        "monthly_turnover_limit": "5000000",
        "daily_count_limit": 50,
        "min_interval_secs": 60
    })
}

async fn create(app: &AdminApp, trader: &Person, number: &str) -> Value {
    let (status, body) = app.post(trader, "/api/requisites", card(number)).await;
    assert_eq!(status, 201, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_see_their_number_others_see_it_masked_or_not_at_all() {
    let app = AdminApp::start_with_relay(false).await;
    let trader = app.person(Role::Trader, &[]).await;
    let other_trader = app.person(Role::Trader, &[]).await;
    let admin = app.person(Role::Admin, &["*:*:*"]).await;
    let lead = app.person(Role::TeamLead, &["requisites:read:team"]).await;
    let merchant = app.person(Role::Merchant, &[]).await;

    let created = create(&app, &trader, "4111 1111 1111 1111").await;
    let id = created["id"].as_str().unwrap();
    let path = format!("/api/requisites/{id}");
    assert_eq!(created["number"], "4111111111111111");
    assert_eq!(created["number_masked"], "411111******1111");
    assert_eq!(created["moderation_status"], "pending");

    let (status, body) = app.get(&admin, &path).await;
    assert_eq!(status, 200);
    assert_eq!(body["number"], "411111******1111", "staff see it masked");
    assert_eq!(app.get(&other_trader, &path).await.0, 404, "another trader");
    assert_eq!(
        app.get(&lead, &path).await.0,
        404,
        "a team lead of another team"
    );
    app.join_team(&trader, lead.team_id.unwrap()).await;
    let (status, body) = app.get(&lead, &path).await;
    assert_eq!(
        (status, body["number"].as_str()),
        (200, Some("411111******1111")),
        "his team lead"
    );
    assert_eq!(
        app.get(&merchant, &path).await.0,
        403,
        "merchants have no access"
    );
    assert_eq!(app.call(Method::GET, &path, None, None).await.0, 401);

    let (status, list) = app.get(&other_trader, "/api/requisites").await;
    assert_eq!(
        (status, list.as_array().map(Vec::len)),
        (200, Some(0)),
        "lists are scoped too"
    );
    let (_, list) = app.get(&trader, "/api/requisites").await;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    let (status, body) = app
        .get(&trader, "/api/requisites?trader_id=not-a-uuid")
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_query")),
        "{body}"
    );

    // Nobody else can edit or archive it; the owner can.
    assert_eq!(
        app.patch(&other_trader, &path, json!({"max_amount": "1000"}))
            .await
            .0,
        404
    );
    assert_eq!(
        app.patch(&merchant, &path, json!({"max_amount": "1000"}))
            .await
            .0,
        403
    );
    assert_eq!(app.delete(&other_trader, &path).await.0, 404);
    let (status, body) = app
        .patch(&trader, &path, json!({"max_amount": "1000"}))
        .await;
    assert_eq!(
        (status, body["max_amount"].as_str()),
        (200, Some("1000.00")),
        "{body}"
    );
    // Staff cannot create on behalf of a trader outside their scope; a trader cannot for another.
    let mut for_other = card("5555 5555 5555 4444");
    for_other["trader_id"] = json!(other_trader.trader_id);
    assert_eq!(app.post(&trader, "/api/requisites", for_other).await.0, 404);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moderation_by_staff_only_with_reasons() {
    let app = AdminApp::start_with_relay(false).await;
    let trader = app.person(Role::Trader, &[]).await;
    let support = app
        .person(
            Role::Support,
            &["requisites:moderate:*", "requisites:read:*"],
        )
        .await;
    let reader = app.person(Role::Support, &["requisites:read:*"]).await;
    let created = create(&app, &trader, "4111111111111111").await;
    let path = format!(
        "/api/requisites/{}/moderation",
        created["id"].as_str().unwrap()
    );

    assert_eq!(
        app.post(&trader, &path, json!({"status": "approved"}))
            .await
            .0,
        403
    );
    assert_eq!(
        app.post(&reader, &path, json!({"status": "approved"}))
            .await
            .0,
        403
    );
    let (status, body) = app
        .post(&support, &path, json!({"status": "rejected"}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("validation_failed"))
    );
    let (status, body) = app.post(&support, &path, json!({"status": "maybe"})).await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = app
        .post(&support, &path, json!({"status": "approved"}))
        .await;
    assert_eq!(
        (status, body["moderation_status"].as_str()),
        (200, Some("approved")),
        "{body}"
    );
    let (status, body) = app
        .post(
            &support,
            &path,
            json!({"status": "blocked", "reason": "chargebacks"}),
        )
        .await;
    assert_eq!(
        (status, body["moderation_reason"].as_str()),
        (200, Some("chargebacks"))
    );

    // Editing the number sends it back to moderation.
    let edit = format!("/api/requisites/{}", created["id"].as_str().unwrap());
    let (status, body) = app
        .patch(&trader, &edit, json!({"number": "5555555555554444"}))
        .await;
    assert_eq!(
        (status, body["moderation_status"].as_str()),
        (200, Some("pending")),
        "{body}"
    );
    let audit: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE entity_type = 'requisite' AND entity_id = $1",
    )
    .bind(created["id"].as_str().unwrap())
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(audit, 4, "create, approve, block, update");
    let leaked: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE after::text LIKE '%5555555555554444%' OR before::text LIKE '%4111111111111111%'")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(leaked, 0, "the audit log never holds a full number");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_stable_codes_and_nothing_written() {
    let app = AdminApp::start_with_relay(false).await;
    let trader = app.person(Role::Trader, &[]).await;
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "unknown field",
            {
                let mut b = card("4111111111111111");
                b["colour"] = json!("red");
                b
            },
            422,
            "invalid_body",
        ),
        (
            "negative min",
            {
                let mut b = card("4111111111111111");
                b["min_amount"] = json!("-5");
                b
            },
            422,
            "validation_failed",
        ),
        (
            "min above max",
            {
                let mut b = card("4111111111111111");
                b["min_amount"] = json!("60000");
                b
            },
            422,
            "validation_failed",
        ),
        (
            "absurd max",
            {
                let mut b = card("4111111111111111");
                b["max_amount"] = json!("1000000000000");
                b
            },
            422,
            "validation_failed",
        ),
        (
            "three places",
            {
                let mut b = card("4111111111111111");
                b["max_amount"] = json!("10.001");
                b
            },
            422,
            "validation_failed",
        ),
        (
            "daily above monthly",
            {
                let mut b = card("4111111111111111");
                b["daily_turnover_limit"] = json!("9000000");
                b
            },
            422,
            "validation_failed",
        ),
        (
            "zero count",
            {
                let mut b = card("4111111111111111");
                b["daily_count_limit"] = json!(0);
                b
            },
            422,
            "validation_failed",
        ),
        (
            "negative interval",
            {
                let mut b = card("4111111111111111");
                b["min_interval_secs"] = json!(-1);
                b
            },
            422,
            "validation_failed",
        ),
        (
            "unknown bank",
            {
                let mut b = card("4111111111111111");
                b["bank_code"] = json!("nobank");
                b
            },
            422,
            "unknown_bank",
        ),
        (
            "unknown currency",
            {
                let mut b = card("4111111111111111");
                b["fiat_currency"] = json!("ZZZ");
                b
            },
            422,
            "unknown_payment_method",
        ),
        (
            "method not in pool",
            {
                let mut b = card("4111111111111111");
                b["fiat_currency"] = json!("UZS");
                b["payment_method"] = json!("sbp");
                b
            },
            422,
            "unknown_payment_method",
        ),
        (
            "bad card number",
            card("4111111111111112"),
            422,
            "validation_failed",
        ),
        (
            "wrong type",
            {
                let mut b = card("4111111111111111");
                b["min_amount"] = json!(true);
                b
            },
            422,
            "invalid_body",
        ),
    ];
    for (name, body, status, code) in cases {
        let (got, answer) = app.post(&trader, "/api/requisites", body).await;
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{name}: {answer}"
        );
    }
    let raw = app
        .client
        .post(format!("{}/api/requisites", app.base))
        .bearer_auth(&trader.token)
        .header("content-type", "application/json")
        .body("{\"payment_method\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status().as_u16(), 400);
    let body: Value = raw.json().await.unwrap();
    assert_eq!(body["error"]["code"], "malformed_json");
    let mut huge = card("4111111111111111");
    huge["holder_name"] = json!("x".repeat(100 * 1024));
    let (status, body) = app.post(&trader, "/api/requisites", huge).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("body_too_large"))
    );

    assert_eq!(app.count("requisites").await, 0);
    assert_eq!(app.count("outbox WHERE topic = 'traders'").await, 0);
    assert_eq!(
        app.count("audit_log WHERE entity_type = 'requisite'").await,
        0
    );
    // The same number twice for one method is a conflict.
    create(&app, &trader, "4111111111111111").await;
    let (status, body) = app
        .post(&trader, "/api/requisites", card("4111111111111111"))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("requisite_exists"))
    );
    assert_eq!(app.count("requisites").await, 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_reaches_the_traders_topic_within_a_second() {
    let app = AdminApp::start().await;
    let stop = CancellationToken::new();
    let table: Table<Trader> = Table::start(
        &app.broker,
        app.state.schemas.clone(),
        TRADERS,
        stop.clone(),
    )
    .await
    .unwrap();
    let trader = app.person(Role::Trader, &[]).await;
    let key = trader.trader_id.unwrap().to_string();
    let created = create(&app, &trader, "4111111111111111").await;
    let id = created["id"].as_str().unwrap();
    let seen = table
        .wait_for(&key, Duration::from_secs(5), |t| {
            t.is_some_and(|t| t.requisites.len() == 1)
        })
        .await;
    assert!(seen.is_some(), "the new requisite reached the topic");

    let started = Instant::now();
    let (status, _) = app
        .patch(
            &trader,
            &format!("/api/requisites/{id}"),
            json!({"max_amount": "1234.50", "daily_count_limit": null}),
        )
        .await;
    assert_eq!(status, 200);
    let updated = table
        .wait_for(&key, Duration::from_secs(1), |t| {
            t.is_some_and(|t| t.requisites[0].max_amount.to_string() == "1234.50")
        })
        .await
        .expect("the edit is on the topic within a second")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
    let requisite = &updated.requisites[0];
    assert_eq!(requisite.daily_count_limit, None);
    assert_eq!(
        requisite.number_masked, "411111******1111",
        "the topic carries the masked number only"
    );
    assert_eq!(requisite.moderation_status, ModerationStatus::Pending);
    let audit: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'requisite.update' AND entity_id = $1",
    )
    .bind(id)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(audit, 1);
    stop.cancel();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_delays_publication_but_loses_nothing() {
    let app = AdminApp::start_with_relay(false).await;
    let trader = app.person(Role::Trader, &[]).await;
    let key = trader.trader_id.unwrap().to_string();
    let embedded = app.broker.embedded_broker().unwrap();
    let producer = RecordProducer::with_message_timeout(
        &app.broker,
        app.state.schemas.clone(),
        "relay",
        Duration::from_secs(2),
    )
    .unwrap();

    embedded.set_up(false).unwrap();
    create(&app, &trader, "4111111111111111").await;
    let failed = jivapay_admin::outbox::relay::publish_batch(&app.db.pool, &producer).await;
    assert!(
        matches!(
            failed,
            Err(jivapay_admin::outbox::relay::RelayError::Publish { .. })
        ),
        "publishing fails while the broker is down: {failed:?}"
    );
    // Seeded reference data is queued ahead of it; the first row tried carries the failure.
    let (pending, attempts, error): (i64, i32, Option<String>) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE topic = 'traders'), max(attempts), max(last_error)
         FROM outbox WHERE published_at IS NULL",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(
        (pending, attempts),
        (1, 1),
        "the row stays, with its failure recorded"
    );
    assert!(error.is_some());

    embedded.set_up(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match jivapay_admin::outbox::relay::publish_batch(&app.db.pool, &producer).await {
            Ok(n) if n > 0 => break,
            other => assert!(
                Instant::now() < deadline,
                "not published after recovery: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(app.count("outbox WHERE published_at IS NULL").await, 0);
    // Published exactly once more: a table reader sees one trader with one requisite.
    let stop = CancellationToken::new();
    let table: Table<Trader> = Table::start(
        &app.broker,
        app.state.schemas.clone(),
        TRADERS,
        stop.clone(),
    )
    .await
    .unwrap();
    let seen = table
        .wait_for(&key, Duration::from_secs(10), |t| t.is_some())
        .await
        .flatten()
        .unwrap();
    assert_eq!(seen.requisites.len(), 1);
    assert_eq!(table.len(), 1);
    stop.cancel();
    producer.close(Duration::from_secs(2)).ok();
    app.stop().await;
}
