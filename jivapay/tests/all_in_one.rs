//! `jivapay all` as a user runs it: migrations applied, topics created, every HTTP surface up
//! (health, readiness, metrics, schema registry), readiness following its dependencies, and a
//! clean exit on SIGTERM. Against the embedded broker and against Tansu.

use jivapay_tests::TestDatabase;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Running {
    child: Child,
    ingest: String,
    admin: String,
}

/// Starts `jivapay all` and waits (bounded) until it prints where it serves.
fn start(database_url: &str, brokers: &str) -> Running {
    let mut command = Command::new(env!("CARGO_BIN_EXE_jivapay"));
    for (key, _) in std::env::vars() {
        if key.starts_with("JIVAPAY__") {
            command.env_remove(key);
        }
    }
    let mut child = command
        .arg("all")
        .env("JIVAPAY__DATABASE__URL", database_url)
        .env("JIVAPAY__KAFKA__BROKERS", brokers)
        .env("JIVAPAY__HTTP__INGEST_ADDR", "127.0.0.1:0")
        .env("JIVAPAY__HTTP__ADMIN_ADDR", "127.0.0.1:0")
        .env("JIVAPAY__LOG__FILTER", "warn")
        .env(
            "JIVAPAY__AUTH__JWT_SECRET",
            jivapay_tests::admin::JWT_SECRET,
        )
        .env(
            "JIVAPAY__SECURITY__DATA_KEY",
            jivapay_tests::admin::DATA_KEY,
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("jivapay starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Read to the end even after the test stops listening, so the pipe never closes
        // under the running process.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            tx.send(line).ok();
        }
    });
    let url_after = |line: &str, label: &str| -> Option<String> {
        let rest = line.trim().strip_prefix(label)?.trim();
        let url = rest.split_whitespace().next()?;
        Some(
            url.trim_end_matches('/')
                .trim_end_matches("/subjects")
                .trim_end_matches("/api")
                .to_owned(),
        )
    };
    let (mut ingest, mut admin) = (None, None);
    let deadline = Instant::now() + Duration::from_secs(60);
    while ingest.is_none() || admin.is_none() {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("jivapay all prints its addresses within a minute");
        ingest = ingest.or_else(|| url_after(&line, "gateway and payment pages"));
        admin = admin.or_else(|| url_after(&line, "management API"));
    }
    Running {
        child,
        ingest: ingest.unwrap(),
        admin: admin.unwrap(),
    }
}

impl Running {
    /// SIGTERM, then a bounded wait for a clean exit.
    fn terminate(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        assert!(status.unwrap().success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "exit status {status}");
                return;
            }
            if Instant::now() > deadline {
                drop(self.child.kill());
                panic!("jivapay all did not stop within 20 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

async fn get(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
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
    let (status, body) = get(&format!("{}/readyz", app.admin)).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = get(&format!("{}/readyz", app.ingest)).await;
    assert_eq!(status, 200, "{body}");
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
