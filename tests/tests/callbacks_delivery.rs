//! Merchant callbacks end to end (sink in-process, real broker and PostgreSQL, a local HTTP
//! receiver): signatures verified by the reference `standardwebhooks` library, the retry
//! schedule on a test clock (failure, hang, redirect, final `failed`), per-order order while
//! a slow merchant does not hold up another, disabling after continuous failure.

use jivapay_admin::auth::Role;
use jivapay_schemas::records::OrderEventKind;
use jivapay_sinks::callbacks::signing;
use jivapay_tests::admin::{AdminApp, Person};
use jivapay_tests::callbacks::*;
use serde_json::{json, Value};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;
use uuid::Uuid;

fn python() -> String {
    std::env::var("JIVAPAY_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("JIVAPAY_TEST_PYTHON is not set: run the tests with `scripts/test`")
    })
}

/// Runs the reference library on one request; `true` when it verifies.
fn reference_verifies(
    secret: &str,
    id: &str,
    timestamp: &str,
    signature: &str,
    body: &str,
) -> bool {
    let script = jivapay_tests::package_file("python/verify_webhook.py");
    let mut child = Command::new(python())
        .arg(script)
        .arg(secret)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python runs");
    let request = json!({
        "headers": {"webhook-id": id, "webhook-timestamp": timestamp, "webhook-signature": signature},
        "body": body,
    });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() || text.contains("rejected"),
        "the verifier failed to run: {text}"
    );
    out.status.success()
}

/// A merchant's store calling `url`; returns the merchant, the store id and its secret.
async fn store(app: &AdminApp, url: &str) -> (Person, Uuid, String) {
    let merchant = app.person(Role::Merchant, &[]).await;
    let (status, body) = app
        .post(
            &merchant,
            "/api/stores",
            json!({"name": format!("s-{}", Uuid::new_v4()), "callback_url": url}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().parse().unwrap();
    (
        merchant,
        id,
        body["signing_secret"].as_str().unwrap().to_owned(),
    )
}

async fn app_for_callbacks() -> AdminApp {
    let app = AdminApp::start_with_relay(false).await;
    set_setting(&app, "callbacks.allow_private_addresses", json!(true)).await;
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_verify_with_the_reference_library_also_during_a_rotation() {
    let app = app_for_callbacks().await;
    let receiver = Receiver::start().await;
    let (merchant, store_id, secret) = store(&app, &receiver.url).await;
    let sink = RunningSink::start(&app, jivapay_sinks::callbacks::system_clock());
    let order = Uuid::new_v4();
    let created = event(store_id, order, 1, OrderEventKind::Created, None);
    produce(&app, std::slice::from_ref(&created)).await;
    let got = receiver.wait_for(1, Duration::from_secs(30)).await;
    let r = &got[0];
    assert_eq!(r.id, created.event_id.to_string());
    assert!(reference_verifies(
        &secret,
        &r.id,
        &r.timestamp,
        &r.signature,
        &r.body
    ));
    // One byte of the body, or the timestamp, changed: rejected.
    let tampered = r.body.replacen("5000.00", "5000.01", 1);
    assert_ne!(tampered, r.body);
    assert!(!reference_verifies(
        &secret,
        &r.id,
        &r.timestamp,
        &r.signature,
        &tampered
    ));
    let later = (r.timestamp.parse::<i64>().unwrap() + 1).to_string();
    assert!(!reference_verifies(
        &secret,
        &r.id,
        &later,
        &r.signature,
        &r.body
    ));
    // The payload: decimal strings, the payment URL, the store and order ids.
    let body = r.json();
    assert_eq!(body["type"], "order.created");
    assert_eq!(body["data"]["fiat_amount"], "5000.00");
    assert_eq!(body["data"]["crypto_amount"], "54.054054");
    assert_eq!(body["data"]["rate"], "92.50000000");
    assert_eq!(body["data"]["payment_url"], "http://pay.test/pay/tok");
    assert_eq!(body["data"]["store_id"], store_id.to_string());

    // Rotation: both the new and the previous secret verify the next callback.
    let (status, rotated) = app
        .post(
            &merchant,
            &format!("/api/stores/{store_id}/signing-secret/rotate"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let new_secret = rotated["signing_secret"].as_str().unwrap().to_owned();
    let completed = event(store_id, order, 2, OrderEventKind::Completed, None);
    produce(&app, std::slice::from_ref(&completed)).await;
    let got = receiver.wait_for(2, Duration::from_secs(30)).await;
    let r = &got[1];
    assert_eq!(r.signature.split(' ').count(), 2, "{}", r.signature);
    assert_eq!(r.json()["data"]["store_commission"], "1.621622");
    assert!(reference_verifies(
        &new_secret,
        &r.id,
        &r.timestamp,
        &r.signature,
        &r.body
    ));
    assert!(reference_verifies(
        &secret,
        &r.id,
        &r.timestamp,
        &r.signature,
        &r.body
    ));
    sink.stop().await;
    app.stop().await;
}

/// attempt_no, status_code, error, response_excerpt
type AttemptRow = (i32, Option<i32>, Option<String>, Option<String>);

/// Delivery state, for assertions.
async fn delivery(app: &AdminApp, event_id: Uuid) -> (String, i32) {
    sqlx::query_as("SELECT status, attempt_count FROM callback_deliveries WHERE event_id = $1")
        .bind(event_id)
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_hangs_and_redirects_are_retried_on_schedule_then_failed() {
    let app = app_for_callbacks().await;
    set_setting(
        &app,
        "callbacks.retry_schedule_secs",
        json!([0, 5, 300, 1800]),
    )
    .await;
    set_setting(&app, "callbacks.timeout_secs", json!(1)).await;
    let receiver = Receiver::start().await;
    receiver.script(|_, before| match before {
        0 => Answer::Status(500),
        1 => Answer::Hang,
        2 => Answer::Redirect,
        _ => Answer::RetryAfter(503, 30),
    });
    let (_, store_id, secret) = store(&app, &receiver.url).await;
    let clock = TestClock::default();
    let sink = RunningSink::start(&app, clock.as_clock());
    let e = event(store_id, Uuid::new_v4(), 1, OrderEventKind::Created, None);
    produce(&app, std::slice::from_ref(&e)).await;

    // Attempt 1 at once (500).
    receiver.wait_for(1, Duration::from_secs(30)).await;
    wait_count(
        &app,
        "SELECT count(*) FROM callback_attempts",
        1,
        Duration::from_secs(10),
    )
    .await;
    // Nothing before the 5 s (−10 %) are up on the test clock.
    clock.advance(Duration::from_secs(4));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(receiver.received().len(), 1);
    // Attempt 2 (hangs; cut by the 1 s timeout).
    clock.advance(Duration::from_secs(3));
    receiver.wait_for(2, Duration::from_secs(10)).await;
    wait_count(
        &app,
        "SELECT count(*) FROM callback_attempts",
        2,
        Duration::from_secs(10),
    )
    .await;
    // Attempt 3 after 300 s (±10 %).
    clock.advance(Duration::from_secs(250));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(receiver.received().len(), 2);
    clock.advance(Duration::from_secs(90));
    receiver.wait_for(3, Duration::from_secs(10)).await;
    wait_count(
        &app,
        "SELECT count(*) FROM callback_attempts",
        3,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(delivery(&app, e.event_id).await, ("pending".into(), 3));
    // Attempt 4 after 1800 s (±10 %), the last: 503 → failed.
    clock.advance(Duration::from_secs(1600));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(receiver.received().len(), 3);
    clock.advance(Duration::from_secs(400));
    receiver.wait_for(4, Duration::from_secs(10)).await;
    wait_count(
        &app,
        "SELECT count(*) FROM callback_deliveries WHERE status = 'failed' AND completed_at IS NOT NULL",
        1,
        Duration::from_secs(10),
    )
    .await;
    clock.advance(Duration::from_secs(36_000));
    tokio::time::sleep(Duration::from_millis(600)).await;
    let got = receiver.received();
    assert_eq!(got.len(), 4, "nothing after the last attempt");
    assert!(
        got.iter().all(|r| r.path == "/callbacks"),
        "the redirect was not followed"
    );
    // The same id every time; a fresh timestamp and signature per attempt, each valid.
    assert!(got.iter().all(|r| r.id == e.event_id.to_string()));
    let timestamps: Vec<i64> = got.iter().map(|r| r.timestamp.parse().unwrap()).collect();
    assert!(timestamps.windows(2).all(|w| w[1] > w[0]), "{timestamps:?}");
    let signatures: std::collections::HashSet<_> = got.iter().map(|r| &r.signature).collect();
    assert_eq!(signatures.len(), 4);
    for r in &got {
        assert!(signing::verify(
            &secret,
            &r.id,
            r.timestamp.parse().unwrap(),
            r.body.as_bytes(),
            &r.signature
        ));
    }
    // The attempt log.
    let attempts: Vec<AttemptRow> = sqlx::query_as(
        "SELECT attempt_no, status_code, error, response_excerpt FROM callback_attempts ORDER BY attempt_no",
    )
    .fetch_all(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(attempts[0].1, Some(500));
    assert!(attempts[0].3.as_deref().unwrap().starts_with("answer 500"));
    assert_eq!(attempts[1].1, None);
    assert!(
        attempts[1].2.as_deref().unwrap().starts_with("timeout"),
        "{attempts:?}"
    );
    assert_eq!(attempts[2].1, Some(302));
    assert!(
        attempts[2].2.as_deref().unwrap().starts_with("redirect"),
        "{attempts:?}"
    );
    assert_eq!(attempts[3].1, Some(503));
    sink.stop().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orders_callbacks_go_in_order_and_a_slow_merchant_does_not_hold_up_others() {
    let app = app_for_callbacks().await;
    set_setting(
        &app,
        "callbacks.retry_schedule_secs",
        json!([0, 1, 1, 1, 1]),
    )
    .await;
    set_setting(&app, "callbacks.timeout_secs", json!(3)).await;
    let slow = Receiver::start().await;
    slow.script(|_, _| Answer::Hang);
    let fine = Receiver::start().await;
    // The first attempt of every first event fails: the order's later events must wait.
    fine.script(|r, before| {
        if before == 0 && r.json()["data"]["sequence"] == 1 {
            Answer::Status(500)
        } else {
            Answer::Status(204)
        }
    });
    let (_, slow_store, _) = store(&app, &slow.url).await;
    let (_, fine_store, _) = store(&app, &fine.url).await;
    // A big backlog of the slow store, all long overdue: it must not crowd the other out.
    sqlx::query(
        "INSERT INTO callback_deliveries (event_id, order_id, store_id, event_type, order_version, url,
             payload, status, next_attempt_at)
         SELECT gen_random_uuid(), gen_random_uuid(), $1, 'order.created', 1, $2, '{}', 'pending',
             now() - interval '1 hour'
         FROM generate_series(1, 1500)",
    )
    .bind(slow_store)
    .bind(&slow.url)
    .execute(&app.db.pool)
    .await
    .unwrap();
    let sink = RunningSink::start(&app, jivapay_sinks::callbacks::system_clock());
    let kinds = [
        OrderEventKind::Created,
        OrderEventKind::Assigned,
        OrderEventKind::ClientConfirmed,
        OrderEventKind::Completed,
    ];
    let mut events = Vec::new();
    for _ in 0..10 {
        let order = Uuid::new_v4();
        events.push(event(slow_store, order, 1, OrderEventKind::Created, None));
    }
    let fine_orders: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
    for order in &fine_orders {
        for (i, kind) in kinds.iter().enumerate() {
            // Only the first event carries the URL (as fraud's does); the store's own is another.
            let url = (i == 0).then_some(fine.url.as_str());
            events.push(event(fine_store, *order, i as i32 + 1, *kind, url));
        }
    }
    produce(&app, &events).await;
    // 5 orders × 4 events, plus one failed first attempt each; the slow store's endpoint hangs
    // (every attempt bounded by 3 s) and holds only its own slots.
    let got = fine.wait_for(25, Duration::from_secs(20)).await;
    for order in &fine_orders {
        let sequence: Vec<i64> = got
            .iter()
            .map(|r| r.json())
            .filter(|b| b["data"]["order_id"] == order.to_string())
            .map(|b| b["data"]["sequence"].as_i64().unwrap())
            .collect();
        assert_eq!(sequence, [1, 1, 2, 3, 4], "order {order}");
    }
    // The slow store's endpoint never answers: within its 3 s timeout at most 4 attempts of it
    // are in flight at once.
    let slow_got = slow.received();
    let first = slow_got.first().expect("the slow store was called").at;
    let early = slow_got
        .iter()
        .filter(|r| r.at < first + Duration::from_millis(2000))
        .count();
    assert!(early <= 4, "{early} attempts in flight for one store");
    sink.stop().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_failing_for_long_is_disabled_and_re_enabled_by_its_merchant() {
    let app = app_for_callbacks().await;
    set_setting(
        &app,
        "callbacks.retry_schedule_secs",
        json!([0, 3600, 3600, 3600]),
    )
    .await;
    set_setting(&app, "callbacks.disable_after_failing_secs", json!(3600)).await;
    let receiver = Receiver::start().await;
    receiver.script(|_, _| Answer::Status(500));
    let (merchant, store_id, _) = store(&app, &receiver.url).await;
    let clock = TestClock::default();
    let sink = RunningSink::start(&app, clock.as_clock());
    let first = event(store_id, Uuid::new_v4(), 1, OrderEventKind::Created, None);
    produce(&app, std::slice::from_ref(&first)).await;
    receiver.wait_for(1, Duration::from_secs(30)).await;
    wait_count(
        &app,
        "SELECT count(*) FROM callback_attempts",
        1,
        Duration::from_secs(10),
    )
    .await;
    clock.advance(Duration::from_secs(4000));
    receiver.wait_for(2, Duration::from_secs(10)).await;
    wait_count(
        &app,
        "SELECT count(*) FROM stores WHERE callbacks_disabled_at IS NOT NULL",
        1,
        Duration::from_secs(10),
    )
    .await;
    wait_count(
        &app,
        "SELECT count(*) FROM audit_log WHERE action = 'store.callbacks.disable' AND actor_role = 'system'",
        1,
        Duration::from_secs(5),
    )
    .await;
    let (status, view) = app.get(&merchant, &format!("/api/stores/{store_id}")).await;
    assert_eq!(status, 200);
    assert!(
        view["callbacks_disabled_reason"]
            .as_str()
            .unwrap()
            .contains("/callbacks/enable"),
        "{view}"
    );
    // While disabled nothing is attempted, a new event waits.
    let second = event(store_id, Uuid::new_v4(), 1, OrderEventKind::Created, None);
    produce(&app, std::slice::from_ref(&second)).await;
    clock.advance(Duration::from_secs(8000));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(receiver.received().len(), 2);
    // The merchant fixes the endpoint and re-enables: the waiting deliveries go out.
    receiver.script(|_, _| Answer::Status(200));
    let (status, body) = app
        .post(
            &merchant,
            &format!("/api/stores/{store_id}/callbacks/enable"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["callbacks_disabled_at"], Value::Null);
    let got = receiver.wait_for(4, Duration::from_secs(10)).await;
    let ids: std::collections::HashSet<_> = got[2..].iter().map(|r| r.id.clone()).collect();
    assert!(
        ids.contains(&second.event_id.to_string()) && ids.contains(&first.event_id.to_string())
    );
    sink.stop().await;
    app.stop().await;
}

/// One holder per order (issue 14): a second trader's book assigned the order too, and
/// cancelled its copy when commissions told it to. The merchant hears the holder's events
/// only — never "assigned" twice, nor the copy's "cancelled".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_holders_events_never_reach_the_merchant() {
    let app = app_for_callbacks().await;
    let receiver = Receiver::start().await;
    let (_, store_id, _) = store(&app, &receiver.url).await;
    let sink = RunningSink::start(&app, jivapay_sinks::callbacks::system_clock());
    let order = Uuid::new_v4();
    let of = |trader: u128, sequence: i32, kind: OrderEventKind| {
        let mut e = event(store_id, order, sequence, kind, None);
        e.trader_id = Some(Uuid::from_u128(trader).into());
        e.event_id = Uuid::new_v5(&e.event_id, &trader.to_be_bytes());
        e
    };
    let holder = of(1, 2, OrderEventKind::Assigned);
    let copy = of(2, 2, OrderEventKind::Assigned);
    let copy_cancelled = of(2, 3, OrderEventKind::Cancelled);
    let completed = of(1, 3, OrderEventKind::Completed);
    let created = event(store_id, order, 1, OrderEventKind::Created, None);
    produce(&app, &[created, holder.clone(), copy]).await;
    produce(&app, &[copy_cancelled, completed.clone()]).await;
    let got = receiver.wait_for(3, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ids: Vec<String> = receiver.received().iter().map(|r| r.id.clone()).collect();
    assert_eq!(got.len(), 3);
    assert_eq!(
        ids[1..],
        [holder.event_id.to_string(), completed.event_id.to_string()],
        "the holder's events only"
    );
    sink.stop().await;
    app.stop().await;
}
