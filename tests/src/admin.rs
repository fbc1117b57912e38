//! An in-process management API on a free port, over a fresh migrated and seeded database and
//! an embedded broker with the catalogue's topics, the outbox relay running. Helpers create
//! people of every role directly in PostgreSQL and log them in through the real endpoint.

use crate::{broker, BrokerKind, TestDatabase};
use jivapay_admin::auth::Role;
use jivapay_admin::AppState;
use jivapay_platform::http::Readiness;
use jivapay_platform::kafka::{Broker, RecordProducer};
use jivapay_platform::order_changes::OrderChanges;
use jivapay_platform::Settings;
use jivapay_schemas::{SchemaRegistry, TOPICS};
use reqwest::Method;
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123";
/// 32 bytes of 0x07, base64.
pub const DATA_KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
pub const PASSWORD: &str = "correct horse battery staple";

/// The settings the harness runs the API with.
pub fn settings() -> Settings {
    let env: HashMap<String, String> = [
        ("JIVAPAY__AUTH__JWT_SECRET", JWT_SECRET),
        ("JIVAPAY__SECURITY__DATA_KEY", DATA_KEY),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    Settings::load_from(None, Some(env)).expect("test settings are valid")
}

pub struct AdminApp {
    pub base: String,
    pub db: TestDatabase,
    pub broker: Broker,
    pub state: AppState,
    pub client: reqwest::Client,
    stop: CancellationToken,
}

/// A person who can call the API.
#[derive(Debug, Clone)]
pub struct Person {
    pub user_id: Uuid,
    pub login: String,
    pub role: Role,
    pub token: String,
    pub merchant_id: Option<Uuid>,
    pub trader_id: Option<Uuid>,
    pub team_id: Option<Uuid>,
}

impl AdminApp {
    /// Starts the API with the outbox relay publishing to an embedded broker.
    pub async fn start() -> Self {
        Self::start_with_relay(true).await
    }

    pub async fn start_with_relay(relay: bool) -> Self {
        let db = TestDatabase::migrated().await;
        let broker = broker(BrokerKind::Embedded).await;
        broker.ensure_topics(TOPICS).await.expect("topics");
        let schemas = SchemaRegistry::builtin().unwrap();
        let stop = CancellationToken::new();
        let health = jivapay_platform::health::Health::default();
        let state = AppState::new(&settings(), db.pool.clone(), schemas.clone())
            .expect("state")
            .with_commands(RecordProducer::new(&broker, schemas.clone(), "test-admin").unwrap())
            .with_changes(OrderChanges::listening(&db.pool, &health, &stop));
        jivapay_admin::seed::reference(&state)
            .await
            .expect("reference data");
        if relay {
            let producer = RecordProducer::new(&broker, schemas.clone(), "test-relay").unwrap();
            tokio::spawn(jivapay_admin::outbox::relay::run(
                db.pool.clone(),
                producer,
                health.register("outbox relay"),
                stop.clone(),
            ));
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let router = jivapay_admin::router(state.clone(), Readiness::default());
        let shutdown = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await
        });
        Self {
            base,
            db,
            broker,
            state,
            client: reqwest::Client::new(),
            stop,
        }
    }

    /// Sends a request; returns the status and the JSON body (`Null` when there is none).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the API answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, who: &Person, path: &str) -> (u16, Value) {
        self.call(Method::GET, path, Some(&who.token), None).await
    }

    pub async fn post(&self, who: &Person, path: &str, body: Value) -> (u16, Value) {
        self.call(Method::POST, path, Some(&who.token), Some(body))
            .await
    }

    pub async fn patch(&self, who: &Person, path: &str, body: Value) -> (u16, Value) {
        self.call(Method::PATCH, path, Some(&who.token), Some(body))
            .await
    }

    pub async fn put(&self, who: &Person, path: &str, body: Value) -> (u16, Value) {
        self.call(Method::PUT, path, Some(&who.token), Some(body))
            .await
    }

    pub async fn delete(&self, who: &Person, path: &str) -> (u16, Value) {
        self.call(Method::DELETE, path, Some(&who.token), None)
            .await
    }

    /// Logs in through the real endpoint; panics unless it succeeds.
    pub async fn login(&self, role: Role, login: &str, password: &str) -> String {
        let (status, body) = self
            .call(
                Method::POST,
                &format!("/api/auth/{}/login", role.as_str()),
                None,
                Some(serde_json::json!({ "login": login, "password": password })),
            )
            .await;
        assert_eq!(status, 200, "login of {login}: {body}");
        body["token"].as_str().unwrap().to_owned()
    }

    /// Creates a person of `role` (with `grants` if staff; a merchant gets a merchant, a trader
    /// a trader row, a team lead a team of his own) and logs them in.
    /// A new SBP phone requisite of `trader` (RUB, 100–10 000, Sberbank, holder Ivan Petrov).
    pub async fn sbp_requisite(&self, trader: &Person, number: &str) -> Uuid {
        let (status, requisite) = self
            .post(
                trader,
                "/api/requisites",
                serde_json::json!({"payment_method": "sbp", "fiat_currency": "RUB", "kind": "phone", "number": number,
                       "holder_name": "Ivan Petrov", "bank_code": "sberbank", "min_amount": "100", "max_amount": "10000"}),
            )
            .await;
        assert_eq!(status, 201, "{requisite}");
        requisite["id"].as_str().unwrap().parse().unwrap()
    }

    pub async fn person(&self, role: Role, grants: &[&str]) -> Person {
        let login = format!("{}-{}", role.as_str(), Uuid::new_v4().simple());
        let hash = jivapay_admin::auth::password::hash(PASSWORD).unwrap();
        let pool = &self.db.pool;
        let user_id: Uuid = sqlx::query_scalar(
            "INSERT INTO users (login, password_hash, role) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(&login)
        .bind(hash)
        .bind(role.as_str())
        .fetch_one(pool)
        .await
        .unwrap();
        let (mut merchant_id, mut trader_id, mut team_id) = (None, None, None);
        if role.is_staff() {
            let grants: Vec<String> = grants.iter().map(|g| g.to_string()).collect();
            sqlx::query("INSERT INTO staff_profiles (user_id, user_role, granted_permissions) VALUES ($1, $2, $3)")
                .bind(user_id)
                .bind(role.as_str())
                .bind(grants)
                .execute(pool)
                .await
                .unwrap();
        }
        match role {
            Role::Merchant => {
                merchant_id = Some(
                    sqlx::query_scalar(
                        "INSERT INTO merchants (user_id, name) VALUES ($1, $2) RETURNING id",
                    )
                    .bind(user_id)
                    .bind(&login)
                    .fetch_one(pool)
                    .await
                    .unwrap(),
                );
            }
            Role::Trader => {
                trader_id = Some(
                    sqlx::query_scalar("INSERT INTO traders (user_id) VALUES ($1) RETURNING id")
                        .bind(user_id)
                        .fetch_one(pool)
                        .await
                        .unwrap(),
                );
            }
            Role::TeamLead => {
                team_id = Some(
                    sqlx::query_scalar(
                        "INSERT INTO teams (name, team_lead_user_id) VALUES ($1, $2) RETURNING id",
                    )
                    .bind(&login)
                    .bind(user_id)
                    .fetch_one(pool)
                    .await
                    .unwrap(),
                );
            }
            _ => {}
        }
        let token = self.login(role, &login, PASSWORD).await;
        Person {
            user_id,
            login,
            role,
            token,
            merchant_id,
            trader_id,
            team_id,
        }
    }

    /// Puts a trader into a team.
    pub async fn join_team(&self, trader: &Person, team_id: Uuid) {
        sqlx::query("UPDATE traders SET team_id = $2 WHERE id = $1")
            .bind(trader.trader_id.unwrap())
            .bind(team_id)
            .execute(&self.db.pool)
            .await
            .unwrap();
    }

    /// Rows in a table (for "nothing was written" checks).
    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&self.db.pool)
            .await
            .unwrap()
    }

    /// Waits (bounded, 30 s) until the count `sql` returns is `expected`.
    pub async fn wait_for_count(&self, sql: &str, expected: i64) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let n: i64 = sqlx::query_scalar(sql)
                .fetch_one(&self.db.pool)
                .await
                .unwrap();
            if n == expected {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{sql}: {n}, expected {expected}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn stop(self) {
        self.stop.cancel();
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.db.drop_database().await;
    }
}
