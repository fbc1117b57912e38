//! `jivapay demo` as a user runs it (with a small --orders and the shortest payment window):
//! it seeds, drives traffic, prints a summary whose checks all pass, then keeps serving until
//! SIGTERM, and exits cleanly. No timing is asserted beyond the harness's limits.

use jivapay_tests::process::command;
use jivapay_tests::TestDatabase;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_demo_drives_traffic_prints_a_checked_summary_and_keeps_serving() {
    let db = TestDatabase::empty().await;
    let receipts = std::env::temp_dir().join(format!("{}-receipts", db.name));
    let receipts_url = format!("file://{}", receipts.display());
    let mut child = command(
        Path::new(env!("CARGO_BIN_EXE_jivapay")),
        &[
            "demo",
            "--orders",
            "20",
            "--rate",
            "10",
            "--payment-window",
            "60",
        ],
        &[
            ("JIVAPAY__DATABASE__URL", db.url.as_str()),
            ("JIVAPAY__SEED__ADMIN_PASSWORD", "admin-password-123"),
            ("JIVAPAY__SEED__DEMO_PASSWORD", "demo-password-123"),
            ("JIVAPAY__HTTP__INGEST_ADDR", "127.0.0.1:0"),
            ("JIVAPAY__HTTP__ADMIN_ADDR", "127.0.0.1:0"),
            ("JIVAPAY__RECEIPTS__STORE_URL", receipts_url.as_str()),
        ],
    )
    .current_dir(std::env::temp_dir())
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit())
    .spawn()
    .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            tx.send(line).ok();
        }
    });
    // 20 orders at 10/s, two expire after the 60 s window: well within four minutes.
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut output = Vec::new();
    while !output
        .iter()
        .any(|l: &String| l.contains("Ctrl-C stops it."))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => output.push(line),
            Err(_) => {
                child.kill().ok();
                panic!(
                    "no summary within the limit; output so far:\n{}",
                    output.join("\n")
                );
            }
        }
    }
    let text = output.join("\n");
    let count = |status: &str| -> i64 {
        output
            .iter()
            .filter_map(|l| l.trim().strip_prefix(status))
            .filter_map(|rest| rest.trim().parse().ok())
            .next()
            .unwrap_or(0)
    };
    assert!(text.contains("=== JivaPay demo: summary ==="), "{text}");
    assert!(
        text.contains("All checks passed: the ledger sums to zero and matches the projections."),
        "{text}"
    );
    assert!(!text.contains("FAILED"), "{text}");
    assert!(count("completed ") > 0, "{text}");
    assert_eq!(
        count("completed ") + count("expired ") + count("no_requisite "),
        20,
        "every order final: {text}"
    );
    assert!(
        text.contains("pay-ins accepted                  20"),
        "{text}"
    );
    for line in [
        "a payment page",
        "management API",
        "schema registry",
        "metrics",
    ] {
        assert!(text.contains(line), "{line} missing: {text}");
    }

    // Still serving after the summary.
    let health = output
        .iter()
        .find_map(|l| l.trim().strip_prefix("health"))
        .map(|rest| rest.trim().to_owned())
        .expect("health URL printed");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let answer = reqwest::get(&health).await.unwrap();
    assert!(
        answer.status().is_success(),
        "{health}: {}",
        answer.status()
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "the demo keeps running"
    );

    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let stop = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > stop {
            child.kill().ok();
            panic!("the demo did not stop within 20 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "exit status {status}");
    assert!(receipts.exists(), "some customers uploaded a receipt");
    std::fs::remove_dir_all(&receipts).ok();
    db.drop_database().await;
}
