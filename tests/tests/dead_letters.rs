//! Dead letters from end to end: a ledger transfer PostgreSQL refuses (its currency is not
//! configured) is dead-lettered with its reason and a critical audit row while the transfer
//! behind it is journaled; an undecodable record on a processor's input is dead-lettered too;
//! an operator lists them through the management API and, after adding the currency, re-drives
//! the refused transfer, which is then journaled once.

use jivapay_admin::auth::Role;
use jivapay_platform::health::Health;
use jivapay_platform::kafka::RecordProducer;
use jivapay_processors::launch::{launch, master_data};
use jivapay_processors::ProcessorKind;
use jivapay_schemas::records::*;
use jivapay_schemas::samples;
use jivapay_schemas::topics::{DEAD_LETTERS, LEDGER_TRANSFERS, ORDERS_REQUESTED};
use jivapay_sinks::dead_letters::DeadLettersSink;
use jivapay_sinks::ledger::LedgerSink;
use jivapay_sinks::runtime::{run, SinkLoop};
use jivapay_tests::admin::AdminApp;
use jivapay_tests::gateway::Gateway;
use rust_decimal::Decimal;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// A pay-in-like transfer of `amount` from the store's hold to its available balance.
fn transfer(store: Uuid, currency: &str, amount: &str) -> LedgerTransfer {
    let amount: Decimal = amount.parse().unwrap();
    let entry = |account_kind, amount| LedgerEntry {
        owner_kind: AccountOwnerKind::Store,
        owner_id: Some(store),
        account_kind,
        currency: currency.into(),
        amount,
    };
    LedgerTransfer {
        transfer_id: Uuid::new_v4(),
        kind: TransferKind::Adjustment,
        order_id: None,
        description: None,
        entries: vec![
            entry(AccountKind::Hold, -amount),
            entry(AccountKind::Available, amount),
        ],
        created_at: samples::AT,
    }
}

fn spawn_sink<S: jivapay_sinks::runtime::Sink<T> + 'static, T>(
    app: &AdminApp,
    topic: &'static str,
    group: &'static str,
    sink: S,
    health: &Health,
    stop: &CancellationToken,
) -> tokio::task::JoinHandle<Result<(), jivapay_sinks::runtime::SinkError>>
where
    T: jivapay_schemas::Record + Send + Sync + 'static,
{
    let (broker, registry, pool) = (
        app.broker.clone(),
        app.state.schemas.clone(),
        app.db.pool.clone(),
    );
    let (health, stop) = (health.register(format!("sink {group}")), stop.clone());
    tokio::spawn(async move {
        run(
            SinkLoop {
                broker: &broker,
                registry,
                pool,
                topic,
                group,
                health,
            },
            sink,
            stop,
        )
        .await
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_and_undecodable_records_are_dead_lettered_listed_and_re_driven() {
    let app = AdminApp::start_with_relay(false).await;
    let store = Gateway::store(&app).await;
    let health = Health::default();
    let stop = CancellationToken::new();
    let ledger = spawn_sink(&app, LEDGER_TRANSFERS, "ledger", LedgerSink, &health, &stop);
    let letters = spawn_sink(
        &app,
        DEAD_LETTERS,
        "dead-letters",
        DeadLettersSink,
        &health,
        &stop,
    );
    let master = master_data(&app.broker, &app.state.schemas, stop.clone())
        .await
        .unwrap();
    let fraud = {
        let (broker, registry, kafka) = (
            app.broker.clone(),
            app.state.schemas.clone(),
            jivapay_tests::admin::settings().kafka,
        );
        let (health, stop) = (health.clone(), stop.clone());
        tokio::spawn(async move {
            launch(
                ProcessorKind::Fraud,
                &broker,
                registry,
                &kafka,
                master,
                health,
                stop,
            )
            .await
        })
    };

    // A transfer in a currency nobody configured, then a good one behind it.
    let producer = RecordProducer::new(&app.broker, app.state.schemas.clone(), "test").unwrap();
    let refused = transfer(store.store_id, "AMD", "10.000000");
    let good = transfer(store.store_id, "USDT", "5.000000");
    for t in [&refused, &good] {
        producer
            .send(LEDGER_TRANSFERS, &store.store_id.to_string(), t)
            .await
            .unwrap();
    }
    // Bytes that are no record at all, on the fraud stage's input.
    producer
        .send_bytes(
            ORDERS_REQUESTED,
            Some(&app.state.schemas.encode_key(&store.store_id.to_string())),
            Some(b"not avro"),
        )
        .await
        .unwrap();

    app.wait_for_count("SELECT count(*) FROM dead_letters", 2)
        .await;
    let journaled: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM ledger_transfers")
        .fetch_all(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(
        journaled,
        [good.transfer_id],
        "the record behind it is written"
    );
    let critical: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'dead_letter.record' AND level = 'critical'",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(critical, 2);
    assert!(
        health.not_running().is_empty(),
        "no loop stopped or retrying: {:?}",
        health.not_running()
    );

    // The operator's view.
    let operator = app
        .person(
            Role::Support,
            &["dead_letters:read:*", "dead_letters:replay:*"],
        )
        .await;
    let (status, listed) = app
        .get(&operator, "/api/dead-letters?component=ledger")
        .await;
    assert_eq!(status, 200, "{listed}");
    let listed = listed.as_array().unwrap().clone();
    assert_eq!(listed.len(), 1, "{listed:?}");
    let letter = &listed[0];
    assert_eq!(letter["source_topic"], LEDGER_TRANSFERS);
    assert!(
        letter["reason"].as_str().unwrap().contains("foreign key"),
        "{letter}"
    );
    let (status, listed) = app
        .get(&operator, "/api/dead-letters?topic=orders.requested")
        .await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed[0]["component"], "fraud", "{listed}");
    assert!(listed[0]["reason"]
        .as_str()
        .unwrap()
        .starts_with("undecodable"));
    assert_eq!(listed[0]["payload_base64"], "bm90IGF2cm8=");
    let (status, none) = app
        .get(&operator, "/api/dead-letters?reason=no-such-reason")
        .await;
    assert_eq!((status, none.as_array().unwrap().len()), (200, 0));
    let (status, bad) = app.get(&operator, "/api/dead-letters?limit=0").await;
    assert_eq!(
        (status, bad["error"]["code"].as_str()),
        (422, Some("validation_failed")),
        "{bad}"
    );

    // Without the grant, or with a grant short of global, nothing is shown or re-driven.
    let id = letter["id"].as_i64().unwrap();
    let bystander = app.person(Role::Support, &["audit:read:*"]).await;
    let scoped = app
        .person(Role::TeamLead, &["dead_letters:read:team"])
        .await;
    for who in [&bystander, &scoped] {
        let (status, _) = app.get(who, "/api/dead-letters").await;
        assert_eq!(status, 403);
        let (status, _) = app
            .post(who, &format!("/api/dead-letters/{id}/replay"), json!({}))
            .await;
        assert_eq!(status, 403);
    }

    // The fix, then the re-drive: journaled once, however often it is re-driven.
    let admin = app.person(Role::Admin, &["*:*:*"]).await;
    let (status, body) = app
        .post(
            &admin,
            "/api/reference/currencies",
            json!({"code": "AMD", "name": "Armenian dram", "scale": 2}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    for _ in 0..2 {
        let (status, body) = app
            .post(
                &operator,
                &format!("/api/dead-letters/{id}/replay"),
                json!({}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["replayed"], json!([id]));
    }
    app.wait_for_count(
        &format!(
            "SELECT count(*) FROM ledger_transfers WHERE id = '{}'",
            refused.transfer_id
        ),
        1,
    )
    .await;
    let (status, shown) = app.get(&operator, &format!("/api/dead-letters/{id}")).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["replay_count"], 2);
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'dead_letter.replay' AND entity_id = $1 AND actor_user_id = $2",
    )
    .bind(id.to_string())
    .bind(operator.user_id)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(audited, 2);
    let (status, missing) = app
        .post(&operator, "/api/dead-letters/999999/replay", json!({}))
        .await;
    assert_eq!(
        (status, missing["error"]["code"].as_str()),
        (404, Some("not_found"))
    );

    stop.cancel();
    ledger.await.unwrap().unwrap();
    letters.await.unwrap().unwrap();
    fraud.await.unwrap().unwrap();
    app.stop().await;
}
