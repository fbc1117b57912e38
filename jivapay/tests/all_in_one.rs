//! `jivapay all` as a user runs it: migrations applied, topics created, every HTTP surface up
//! (health, readiness, metrics, schema registry), readiness following its dependencies, and a
//! clean exit on SIGTERM. Against the embedded broker and against Tansu.

use jivapay_tests::process::start_all;
use jivapay_tests::TestDatabase;
use std::path::Path;

fn start(database_url: &str, brokers: &str) -> jivapay_tests::process::Running {
    start_all(
        Path::new(env!("CARGO_BIN_EXE_jivapay")),
        &[
            ("JIVAPAY__DATABASE__URL", database_url),
            ("JIVAPAY__KAFKA__BROKERS", brokers),
        ],
    )
}

async fn get(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Waits (bounded) until `url` answers 200: right after start, loops are still starting
/// (joining their groups, restoring state) and readiness says so.
async fn ready(url: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (status, body) = get(url).await;
        if status == 200 {
            assert!(body.contains("\"state\":\"running\""), "{body}");
            return;
        }
        assert_eq!(status, 503, "{body}");
        assert!(
            std::time::Instant::now() < deadline,
            "{url} not ready within a minute: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn serves_everything(brokers: &str) {
    let db = TestDatabase::empty().await;
    let app = start(&db.url, brokers);

    assert_eq!(
        get(&format!("{}/healthz", app.ingest)).await,
        (200, "ok".into())
    );
    assert_eq!(
        get(&format!("{}/healthz", app.admin)).await,
        (200, "ok".into())
    );
    ready(&format!("{}/readyz", app.admin)).await;
    ready(&format!("{}/readyz", app.ingest)).await;
    // Every loop of the process reports, the helpers beside the Kafka loops included.
    let (_, readiness) = get(&format!("{}/readyz", app.admin)).await;
    for component in [
        "processor fraud",
        "processor router",
        "processor trader-book",
        "processor commissions",
        "sink ledger",
        "sink projection",
        "sink callbacks",
        "sink callbacks sender",
        "sink dead-letters",
        "outbox relay",
        "listener order changes",
        "listener gateway cache",
    ] {
        assert!(
            readiness.contains(&format!("\"component\":\"{component}\"")),
            "{component} missing: {readiness}"
        );
    }
    let (status, metrics) = get(&format!("{}/metrics", app.admin)).await;
    assert_eq!(status, 200);
    assert!(
        metrics.is_empty() || metrics.contains("# TYPE"),
        "{metrics}"
    );
    let (status, subjects) = get(&format!("{}/subjects", app.admin)).await;
    assert_eq!(status, 200);
    assert!(subjects.contains("orders.events-value"), "{subjects}");

    // Every migration was applied.
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        applied as usize,
        jivapay_platform::db::MIGRATOR.iter().count()
    );

    // Readiness follows the database: gone, and /readyz says so (liveness stays up).
    let name = db.name.clone();
    db.drop_database().await;
    let (status, body) = get(&format!("{}/readyz", app.admin)).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("postgres"), "{body}");
    assert!(
        !body.contains("jivapay:jivapay"),
        "credentials leaked: {body}"
    );
    assert_eq!(get(&format!("{}/healthz", app.admin)).await.0, 200);
    assert!(!name.is_empty());

    app.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_in_one_with_the_embedded_broker() {
    serves_everything("embedded").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_in_one_with_tansu() {
    let brokers = std::env::var("JIVAPAY_TEST_TANSU_BROKERS")
        .expect("JIVAPAY_TEST_TANSU_BROKERS is not set: run the tests with `scripts/test`");
    serves_everything(&brokers).await;
}
