//! The gateway (ingest) served beside the management API of an [`AdminApp`], sharing its
//! database and broker; stores and their API keys are made through the management API.

use crate::admin::{AdminApp, Person, DATA_KEY};
use jivapay_admin::auth::Role;
use jivapay_ingest::payment_page::ReceiptStore;
use jivapay_platform::http::Readiness;
use jivapay_platform::kafka::RecordProducer;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

pub struct Gateway {
    pub base: String,
    pub client: reqwest::Client,
    /// Where the gateway stores receipts: a fresh local folder of its own.
    pub receipts: Arc<ReceiptStore>,
}

/// A store with an API key, owned by a merchant.
pub struct TestStore {
    pub merchant: Person,
    pub store_id: Uuid,
    pub api_key: String,
}

/// A pay-in the gateway accepted: its order and the token of its payment page.
pub struct Payin {
    pub order_id: Uuid,
    pub token: String,
}

impl Gateway {
    /// Creates a pay-in of `amount` RUB by SBP from `store` (201 expected).
    pub async fn payin(&self, store: &TestStore, external: &str, amount: &str) -> Payin {
        let (status, created) = self
            .post(
                Some(&store.api_key),
                "/api/v1/payins",
                serde_json::json!({"external_order_id": external, "amount": amount, "currency": "RUB", "payment_method": "sbp"}),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        Payin {
            order_id: created["order_id"].as_str().unwrap().parse().unwrap(),
            token: created["payment_url"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_owned(),
        }
    }

    pub async fn start(app: &AdminApp) -> Self {
        let receipts = Arc::new(
            ReceiptStore::local(
                std::env::temp_dir().join(format!("jivapay-receipts-{}", Uuid::new_v4())),
            )
            .unwrap(),
        );
        let cache = Arc::new(jivapay_ingest::cache::GatewayCache::default());
        tokio::spawn(jivapay_ingest::cache::listen(
            app.db.pool.clone(),
            cache.clone(),
            jivapay_platform::health::Health::default().register("listener gateway cache"),
            tokio_util::sync::CancellationToken::new(),
        ));
        let state = jivapay_ingest::IngestState {
            pool: app.db.pool.clone(),
            producer: RecordProducer::new(&app.broker, app.state.schemas.clone(), "test-ingest")
                .unwrap(),
            data_key: Arc::new(
                jivapay_core::crypto::DataKey::from_settings(Some(&DATA_KEY.to_owned().into()))
                    .unwrap(),
            ),
            public_url: "http://pay.test".into(),
            payment_window: Duration::from_secs(900),
            receipts: receipts.clone(),
            cache,
            limits: Default::default(),
            changes: app.state.changes.clone(),
            journal: jivapay_ingest::gateway::journal::Journal::start(
                app.db.pool.clone(),
                Duration::from_secs(900),
            ),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let router = jivapay_ingest::router(state, Readiness::default());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self {
            base,
            client: reqwest::Client::new(),
            receipts,
        }
    }

    /// Creates a merchant's store and an API key through the management API.
    pub async fn store(app: &AdminApp) -> TestStore {
        let merchant = app.person(Role::Merchant, &[]).await;
        let (status, store) = app
            .post(
                &merchant,
                "/api/stores",
                json!({"name": format!("store {}", Uuid::new_v4())}),
            )
            .await;
        assert_eq!(status, 201, "{store}");
        let store_id: Uuid = store["id"].as_str().unwrap().parse().unwrap();
        let (status, key) = app
            .post(
                &merchant,
                &format!("/api/stores/{store_id}/api-keys"),
                json!({"name": "gateway"}),
            )
            .await;
        assert_eq!(status, 201, "{key}");
        TestStore {
            merchant,
            store_id,
            api_key: key["key"].as_str().unwrap().to_owned(),
        }
    }

    pub async fn post(&self, api_key: Option<&str>, path: &str, body: Value) -> (u16, Value) {
        let mut request = self.client.post(format!("{}{path}", self.base)).json(&body);
        if let Some(key) = api_key {
            request = request.header("x-api-key", key);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, api_key: Option<&str>, path: &str) -> (u16, Value) {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(key) = api_key {
            request = request.header("x-api-key", key);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}
