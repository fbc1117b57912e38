//! Helpers for the merchant callback tests: a local HTTP receiver whose answers a test scripts
//! (fail, hang, redirect, succeed), a hand-moved clock, order events to produce, and the
//! callback sink run in-process.

use crate::admin::{AdminApp, DATA_KEY};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use chrono::{DateTime, Utc};
use jivapay_schemas::records::{Direction, OrderEvent, OrderEventKind, OrderStatus};
use jivapay_sinks::callbacks::sender::SenderConfig;
use jivapay_sinks::callbacks::{Clock, Options};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// What the receiver answers to one request.
#[derive(Debug, Clone)]
pub enum Answer {
    Status(u16),
    /// A status with a `Retry-After` header (seconds).
    RetryAfter(u16, u64),
    /// Never answers (the sender's timeout must cut it).
    Hang,
    /// 302 to another path of the receiver (which must never be requested).
    Redirect,
    /// A status after a delay (milliseconds).
    Delayed(u64, u16),
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: String,
    pub at: Instant,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("the body is JSON")
    }
}

type Script = Arc<dyn Fn(&Received, usize) -> Answer + Send + Sync>;

#[derive(Clone)]
struct ReceiverState {
    received: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<Script>>,
}

/// A local HTTP endpoint on 127.0.0.1 that records every request and answers per its script
/// (given the request and how many requests with the same `webhook-id` came before it).
pub struct Receiver {
    pub url: String,
    state: ReceiverState,
}

async fn receive(
    State(state): State<ReceiverState>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: String,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let request = Received {
        path: uri.path().to_owned(),
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body,
        at: Instant::now(),
    };
    let answer = {
        let mut received = state.received.lock().unwrap();
        let before = received.iter().filter(|r| r.id == request.id).count();
        received.push(request.clone());
        let script = state.script.lock().unwrap().clone();
        script(&request, before)
    };
    match answer {
        Answer::Status(code) => (
            StatusCode::from_u16(code).unwrap(),
            format!("answer {code} to {}", request.id),
        )
            .into_response(),
        Answer::RetryAfter(code, secs) => (
            StatusCode::from_u16(code).unwrap(),
            [("retry-after", secs.to_string())],
            "later",
        )
            .into_response(),
        Answer::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::OK.into_response()
        }
        Answer::Delayed(ms, code) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            (StatusCode::from_u16(code).unwrap(), "later").into_response()
        }
        Answer::Redirect => {
            (StatusCode::FOUND, [("location", "/elsewhere")], "moved").into_response()
        }
    }
}

impl Receiver {
    /// A receiver answering 200 to everything until [`Receiver::script`] says otherwise.
    pub async fn start() -> Self {
        let state = ReceiverState {
            received: Arc::default(),
            script: Arc::new(Mutex::new(Arc::new(|_: &Received, _| Answer::Status(200)))),
        };
        let router = Router::new()
            .fallback(post(receive))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/callbacks", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { url, state }
    }

    pub fn script(&self, script: impl Fn(&Received, usize) -> Answer + Send + Sync + 'static) {
        *self.state.script.lock().unwrap() = Arc::new(script);
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// Waits (bounded) until at least `n` requests arrived.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let received = self.received();
            if received.len() >= n {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "{} requests received, expected {n}",
                received.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A clock the test moves by hand, starting at the real time.
#[derive(Clone)]
pub struct TestClock(Arc<Mutex<DateTime<Utc>>>);

impl Default for TestClock {
    fn default() -> Self {
        Self(Arc::new(Mutex::new(Utc::now())))
    }
}

impl TestClock {
    pub fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += chrono::Duration::from_std(by).unwrap();
    }

    pub fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }

    pub fn as_clock(&self) -> Clock {
        let inner = self.0.clone();
        Arc::new(move || *inner.lock().unwrap())
    }
}

/// The harness's data key, with which the stores' signing secrets are sealed.
pub fn data_key() -> Arc<jivapay_core::crypto::DataKey> {
    Arc::new(
        jivapay_core::crypto::DataKey::from_settings(Some(&DATA_KEY.to_owned().into())).unwrap(),
    )
}

/// Sets a runtime setting directly in PostgreSQL (the sink reads them from there).
pub async fn set_setting(app: &AdminApp, key: &str, value: serde_json::Value) {
    let updated = sqlx::query("UPDATE configuration_settings SET value = $2 WHERE key = $1")
        .bind(key)
        .bind(value)
        .execute(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(updated.rows_affected(), 1, "setting {key} exists");
}

/// The callback sink running in-process on the app's broker and database.
pub struct RunningSink {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl RunningSink {
    pub fn start(app: &AdminApp, clock: Clock) -> Self {
        let stop = CancellationToken::new();
        let task = tokio::spawn(jivapay_sinks::callbacks::run(
            app.broker.clone(),
            app.state.schemas.clone(),
            app.db.pool.clone(),
            format!("callbacks-{}", Uuid::new_v4().simple()),
            Options {
                public_url: "http://pay.test".into(),
                data_key: data_key(),
                clock,
                sender: SenderConfig {
                    poll: Duration::from_millis(50),
                    ..SenderConfig::default()
                },
            },
            jivapay_platform::health::Health::default().register("sink callbacks"),
            stop.clone(),
        ));
        Self { stop, task }
    }

    pub async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("the sink stops")
            .unwrap()
            .unwrap();
    }
}

/// An order event of `store_id`'s order `order_id`, at position `sequence` of its life.
pub fn event(
    store_id: Uuid,
    order_id: Uuid,
    sequence: i32,
    kind: OrderEventKind,
    callback_url: Option<&str>,
) -> OrderEvent {
    let status = match kind {
        OrderEventKind::Created => OrderStatus::Created,
        OrderEventKind::Assigned => OrderStatus::Assigned,
        OrderEventKind::ClientConfirmed => OrderStatus::ClientConfirmed,
        OrderEventKind::Completed => OrderStatus::Completed,
        OrderEventKind::Cancelled => OrderStatus::Cancelled,
        OrderEventKind::Expired => OrderStatus::Expired,
        _ => OrderStatus::Review,
    };
    OrderEvent {
        event_id: Uuid::new_v5(&order_id, &sequence.to_be_bytes()),
        order_id: order_id.into(),
        store_id: store_id.into(),
        external_order_id: format!("ext-{order_id}"),
        direction: Direction::PayIn,
        sequence,
        kind,
        status,
        previous_status: None,
        fiat_amount: Some("5000.00".parse().unwrap()),
        fiat_currency: "RUB".into(),
        payment_method: "sbp".into(),
        rate: Some("92.50000000".parse().unwrap()),
        crypto_amount: Some("54.054054".parse().unwrap()),
        store_commission: (kind == OrderEventKind::Completed).then(|| "1.621622".parse().unwrap()),
        trader_reward: None,
        trader_id: None,
        requisite_id: None,
        customer_id: None,
        callback_url: callback_url.map(str::to_owned),
        payment_token: (kind == OrderEventKind::Created).then(|| "tok".to_owned()),
        expires_at: None,
        reason_code: None,
        reason_detail: None,
        candidates: vec![],
        occurred_at: Utc::now().timestamp_millis(),
    }
}

/// Produces events to `orders.events` (key = order id).
pub async fn produce(app: &AdminApp, events: &[OrderEvent]) {
    let producer = jivapay_platform::kafka::RecordProducer::new(
        &app.broker,
        app.state.schemas.clone(),
        "test-events",
    )
    .unwrap();
    for e in events {
        producer
            .send(
                jivapay_schemas::topics::ORDERS_EVENTS,
                &e.order_id.to_string(),
                e,
            )
            .await
            .unwrap();
    }
}

/// Polls `sql` (one bigint) until it equals `expected`.
pub async fn wait_count(app: &AdminApp, sql: &str, expected: i64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let n: i64 = sqlx::query_scalar(sql)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
        if n == expected {
            return;
        }
        assert!(Instant::now() < deadline, "{sql}: {n}, expected {expected}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
