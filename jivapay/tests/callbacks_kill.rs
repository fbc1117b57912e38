//! The callback sink as its own process (`jivapay sink callbacks`), killed with SIGKILL while it
//! delivers and started again: every event is still delivered at least once, a duplicate
//! carries the same `webhook-id`, and each order's callbacks arrive in order.

use jivapay_admin::auth::Role;
use jivapay_schemas::records::OrderEventKind;
use jivapay_tests::admin::AdminApp;
use jivapay_tests::callbacks::*;
use jivapay_tests::process::command;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use uuid::Uuid;

const ORDERS: usize = 30;

fn spawn_sink(env: &[(&str, &str)]) -> Child {
    command(
        Path::new(env!("CARGO_BIN_EXE_jivapay")),
        &["sink", "callbacks"],
        env,
    )
    .stdout(Stdio::null())
    .stderr(Stdio::inherit())
    .spawn()
    .expect("jivapay sink callbacks starts")
}

/// Kills a child left running by a failing test.
struct Guard(Option<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            child.kill().ok();
            child.wait().ok();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_callback_sink_delivers_everything_at_least_once_in_order() {
    let app = AdminApp::start_with_relay(false).await;
    set_setting(&app, "callbacks.allow_private_addresses", json!(true)).await;
    set_setting(&app, "callbacks.timeout_secs", json!(1)).await;
    set_setting(
        &app,
        "callbacks.retry_schedule_secs",
        json!([0, 1, 1, 1, 1, 1, 1, 1, 1, 1]),
    )
    .await;
    let receiver = Receiver::start().await;
    // Some first attempts fail; every answer takes a little while, so the kill lands mid-run.
    receiver.script(|r, before| {
        if before == 0 && r.id.as_bytes().last().is_some_and(|b| b % 4 == 0) {
            Answer::Status(500)
        } else {
            Answer::Delayed(20, 200)
        }
    });
    let merchant = app.person(Role::Merchant, &[]).await;
    let (status, body) = app
        .post(
            &merchant,
            "/api/stores",
            json!({"name": "kill", "callback_url": receiver.url}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let store_id: Uuid = body["id"].as_str().unwrap().parse().unwrap();
    let kinds = [
        OrderEventKind::Created,
        OrderEventKind::Assigned,
        OrderEventKind::Completed,
    ];
    let mut events = Vec::new();
    for _ in 0..ORDERS {
        let order = Uuid::new_v4();
        for (i, kind) in kinds.iter().enumerate() {
            events.push(event(store_id, order, i as i32 + 1, *kind, None));
        }
    }
    produce(&app, &events).await;

    let env = [
        ("JIVAPAY__DATABASE__URL", app.db.url.as_str()),
        ("JIVAPAY__KAFKA__BROKERS", app.broker.bootstrap_servers()),
        ("JIVAPAY__HTTP__OPS_ADDR", "127.0.0.1:0"),
    ];
    let mut sink = Guard(Some(spawn_sink(&env)));
    receiver.wait_for(ORDERS, Duration::from_secs(60)).await;
    let mut child = sink.0.take().unwrap();
    child.kill().unwrap(); // SIGKILL, mid-run
    child.wait().unwrap();
    let at_kill = receiver.received().len();
    assert!(at_kill < events.len() + 10, "the kill came before the end");
    sink.0 = Some(spawn_sink(&env));
    // Deliveries claimed by the killed process are due again when their lease ends (2 × 1 s + 5 s).
    wait_count(
        &app,
        "SELECT count(*) FROM callback_deliveries WHERE status = 'succeeded'",
        events.len() as i64,
        Duration::from_secs(60),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while sink.0.as_mut().unwrap().try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::process::Command::new("kill")
            .args(["-TERM", &sink.0.as_ref().unwrap().id().to_string()])
            .status()
            .ok();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let got = receiver.received();
    let produced: HashMap<String, (Uuid, i64)> = events
        .iter()
        .map(|e| {
            (
                e.event_id.to_string(),
                (e.order_id.0, i64::from(e.sequence)),
            )
        })
        .collect();
    // At least once: every event id was answered 2xx at least once (the receiver answers 200
    // to everything but some first attempts).
    let ids: HashSet<&str> = got.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), events.len(), "every event arrived");
    // Duplicates carry the same id: the body's event id is always the header's.
    for r in &got {
        assert_eq!(r.json()["data"]["event_id"].as_str(), Some(r.id.as_str()));
        assert!(produced.contains_key(&r.id));
    }
    // Per-order order: the sequence each order's callbacks arrived in never goes back.
    let mut per_order: HashMap<Uuid, Vec<i64>> = HashMap::new();
    for r in &got {
        let (order, sequence) = produced[&r.id];
        per_order.entry(order).or_default().push(sequence);
    }
    for (order, sequence) in &per_order {
        assert!(
            sequence.windows(2).all(|w| w[0] <= w[1]),
            "order {order} got {sequence:?}"
        );
    }
    // Claims whose attempt the kill cut short (claimed, never recorded), for the log.
    let cut: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM callback_deliveries d
         WHERE d.attempt_count > (SELECT count(*) FROM callback_attempts a WHERE a.delivery_id = d.id)",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    eprintln!(
        "{} requests for {} events ({at_kill} at the kill, {cut} attempts cut short)",
        got.len(),
        events.len(),
    );
    drop(sink);
    app.stop().await;
}
