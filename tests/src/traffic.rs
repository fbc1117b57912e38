//! Traffic for the fault tests, through the real HTTP APIs of a running system seeded with the
//! demo data: the demo stores post pay-ins, every customer confirms on the payment page, the
//! demo traders confirm through their API. Requests that fail (a component retrying through an
//! outage) are simply tried again on the next round; only a 201 counts as accepted. At the end
//! [`check_books`] asserts the pipeline's invariants against PostgreSQL.

use crate::demo::DEMO_PASSWORD;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use sqlx::PgPool;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// (fiat, method, store commission %, trader commission %, typical amount) of the demo pools.
pub const POOLS: &[(&str, &str, &str, &str, i64)] = &[
    ("RUB", "sbp", "3.0", "2.0", 1500),
    ("RUB", "card2card", "3.5", "2.5", 2000),
    ("RUB", "account", "2.5", "1.5", 2500),
    ("KZT", "card2card", "3.5", "2.5", 9000),
    ("KZT", "account", "2.5", "1.5", 12000),
];

/// Whether an order in `status` will not change any more in a test: a terminal status, or
/// `review`, which waits for a person the tests do not play.
pub fn is_final(status: &str) -> bool {
    jivapay_domain::order::OrderStatus::is_terminal_name(status) || status == "review"
}

/// What each demo trader deposited (USDT).
const DEMO_DEPOSIT: i64 = 5000;

pub struct Traffic {
    client: reqwest::Client,
    ingest: String,
    admin: String,
    /// API keys of the demo stores.
    keys: Vec<String>,
    /// Tokens of the demo traders.
    traders: Vec<String>,
    /// Accepted pay-ins: external id → (store key, payment token).
    pub accepted: HashMap<String, (String, String)>,
    pub refused: usize,
    customer_confirmed: HashSet<String>,
    trader_confirmed: HashSet<String>,
    posted: usize,
    prefix: String,
}

impl Traffic {
    /// Signs in the demo merchants (a new API key per store) and traders.
    pub async fn sign_in(ingest: &str, admin: &str, prefix: &str) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let login = |role: &'static str, login: String| {
            let (client, admin) = (client.clone(), admin.to_owned());
            async move {
                let body: Value = client
                    .post(format!("{admin}/api/auth/{role}/login"))
                    .json(&json!({"login": login, "password": DEMO_PASSWORD}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                body["token"].as_str().expect("signed in").to_owned()
            }
        };
        let mut keys = Vec::new();
        for merchant in ["demo-merchant-1", "demo-merchant-2"] {
            let token = login("merchant", merchant.into()).await;
            let stores: Value = client
                .get(format!("{admin}/api/stores"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            for store in stores.as_array().unwrap() {
                let id = store["id"].as_str().unwrap();
                let key: Value = client
                    .post(format!("{admin}/api/stores/{id}/api-keys"))
                    .bearer_auth(&token)
                    .json(&json!({}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                keys.push(key["key"].as_str().unwrap().to_owned());
            }
        }
        let mut traders = Vec::new();
        for n in 1..=6 {
            traders.push(login("trader", format!("demo-trader-{n}")).await);
        }
        Self {
            client,
            ingest: ingest.to_owned(),
            admin: admin.to_owned(),
            keys,
            traders,
            accepted: HashMap::new(),
            refused: 0,
            customer_confirmed: HashSet::new(),
            trader_confirmed: HashSet::new(),
            posted: 0,
            prefix: prefix.to_owned(),
        }
    }

    /// Waits (bounded) until the trader books hold the demo deposits: a pay-in of every pool
    /// gets assigned.
    pub async fn wait_until_assigning(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(90);
        let mut ready = HashSet::new();
        while ready.len() < POOLS.len() {
            for pool in 0..POOLS.len() {
                if ready.contains(&pool) {
                    continue;
                }
                if let Some(external) = self.post_to(pool).await {
                    let status = self.wait_past_created(&external).await;
                    if status == "assigned" {
                        ready.insert(pool);
                    }
                }
            }
            assert!(Instant::now() < deadline, "pools cannot assign orders");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    async fn wait_past_created(&self, external: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let status = self.status(external).await.unwrap_or_default();
            if (!status.is_empty() && status != "created") || Instant::now() > deadline {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Posts one pay-in (pools in turn); whether it was accepted.
    pub async fn post(&mut self) -> bool {
        self.post_to(self.posted % POOLS.len()).await.is_some()
    }

    async fn post_to(&mut self, pool: usize) -> Option<String> {
        let n = self.posted;
        self.posted += 1;
        let key = self.keys[n % self.keys.len()].clone();
        let (fiat, method, _, _, base) = POOLS[pool];
        let external = format!("{}-{n}", self.prefix);
        let amount = format!("{}.{:02}", base + (n as i64 % 97), n % 100);
        let response = self
            .client
            .post(format!("{}/api/v1/payins", self.ingest))
            .header("x-api-key", &key)
            .json(&json!({"external_order_id": external, "amount": amount, "currency": fiat, "payment_method": method}))
            .send()
            .await;
        let body: Option<Value> = match response {
            Ok(r) if r.status().as_u16() == 201 => r.json().await.ok(),
            _ => None,
        };
        let Some(token) = body.and_then(|b| {
            b["payment_url"]
                .as_str()
                .and_then(|u| u.rsplit('/').next())
                .map(str::to_owned)
        }) else {
            self.refused += 1;
            return None;
        };
        self.accepted.insert(external.clone(), (key, token));
        Some(external)
    }

    async fn status(&self, external: &str) -> Option<String> {
        let (key, _) = self.accepted.get(external)?;
        let body: Value = self
            .client
            .get(format!("{}/api/v1/orders/external/{external}", self.ingest))
            .header("x-api-key", key)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        body["status"].as_str().map(str::to_owned)
    }

    /// One round of customers and traders acting on what they see; returns how many accepted
    /// orders are not final yet (unknown counts as not final).
    pub async fn act(&mut self) -> usize {
        self.act_and_list().await.values().map(Vec::len).sum()
    }

    /// [`Self::act`], listing the orders that are not final by status (`""`: unknown).
    async fn act_and_list(&mut self) -> std::collections::BTreeMap<String, Vec<String>> {
        let mut pending: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        let externals: Vec<String> = self.accepted.keys().cloned().collect();
        for external in &externals {
            let status = self.status(external).await.unwrap_or_default();
            if status == "assigned" && !self.customer_confirmed.contains(external) {
                let token = &self.accepted[external].1;
                let answer = self
                    .client
                    .post(format!("{}/api/v1/payment/{token}/confirm", self.ingest))
                    .send()
                    .await;
                if answer.is_ok_and(|a| a.status().as_u16() == 202) {
                    self.customer_confirmed.insert(external.clone());
                }
            }
            if !is_final(&status) {
                pending.entry(status).or_default().push(external.clone());
            }
        }
        self.traders_act().await;
        pending
    }

    /// Every demo trader confirms the orders whose customer says he paid.
    async fn traders_act(&mut self) {
        for token in self.traders.clone() {
            let open: Option<Value> = match self
                .client
                .get(format!("{}/api/trader/orders", self.admin))
                .bearer_auth(&token)
                .send()
                .await
            {
                Ok(r) => r.json().await.ok(),
                Err(_) => None,
            };
            for order in open.and_then(|o| o.as_array().cloned()).unwrap_or_default() {
                let id = order["order_id"].as_str().unwrap_or_default().to_owned();
                if order["status"] == "client_confirmed" && !self.trader_confirmed.contains(&id) {
                    let answer = self
                        .client
                        .post(format!("{}/api/trader/orders/{id}/confirm", self.admin))
                        .bearer_auth(&token)
                        .send()
                        .await;
                    if answer.is_ok_and(|a| a.status().as_u16() == 202) {
                        self.trader_confirmed.insert(id);
                    }
                }
            }
        }
    }

    /// Acts until every accepted order is final, bounded by `within`; when time runs out, the
    /// external ids of the orders still open, by status.
    pub async fn until_final(
        &mut self,
        within: Duration,
    ) -> Result<(), std::collections::BTreeMap<String, Vec<String>>> {
        let deadline = Instant::now() + within;
        loop {
            let pending = self.act_and_list().await;
            if pending.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(pending);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// What PostgreSQL knows of a few of `pending` (from [`Self::until_final`]): whether the
    /// gateway journaled each, its projected status and its events, and whether the customer's
    /// and the trader's confirmations were answered 202 — for a failure message.
    pub async fn explain(
        &self,
        db: &PgPool,
        pending: &std::collections::BTreeMap<String, Vec<String>>,
    ) -> String {
        let mut out = String::new();
        for (status, externals) in pending {
            out += &format!("{} pending as {status:?}\n", externals.len());
            for external in externals.iter().take(3) {
                let journaled: Option<(uuid::Uuid, chrono::DateTime<chrono::Utc>)> =
                    sqlx::query_as(
                        "SELECT order_id, created_at FROM gateway_requests WHERE external_order_id = $1",
                    )
                    .bind(external)
                    .fetch_optional(db)
                    .await
                    .unwrap_or_default();
                let events: Vec<(String, String, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
                    "SELECT e.event_type, e.status, e.occurred_at FROM order_events e \
                         JOIN orders o ON o.id = e.order_id \
                         WHERE o.external_order_id = $1 ORDER BY e.version",
                )
                .bind(external)
                .fetch_all(db)
                .await
                .unwrap_or_default();
                let trader_confirmed = journaled
                    .is_some_and(|(id, _)| self.trader_confirmed.contains(&id.to_string()));
                out += &format!(
                    "  {external}: journaled {journaled:?}, customer confirmed (202) {}, \
                     trader confirmed (202) {trader_confirmed}, events {events:?}\n",
                    self.customer_confirmed.contains(external)
                );
            }
        }
        out
    }
}

/// The invariants of the books after a run: every accepted order is in the projection once, in
/// a final state; every transfer sums to zero; no order is settled twice; every completed order
/// is journaled; store and trader balances equal what this computes from the completed orders.
pub async fn check_books(pool: &PgPool, accepted: &HashMap<String, (String, String)>) {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT external_order_id, status::text FROM orders")
            .fetch_all(pool)
            .await
            .unwrap();
    let projected: HashMap<String, String> = rows.into_iter().collect();
    for external in accepted.keys() {
        let status = projected
            .get(external)
            .unwrap_or_else(|| panic!("accepted order {external} is not in the projection"));
        assert!(is_final(status), "{external}: {status}");
    }
    let unbalanced: i64 = sqlx::query_scalar("SELECT count(*) FROM (SELECT 1 FROM ledger_entries GROUP BY transfer_id, currency HAVING sum(amount) <> 0) t")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(unbalanced, 0, "every transfer sums to zero");
    let settled_twice: i64 = sqlx::query_scalar("SELECT count(*) FROM (SELECT order_id FROM ledger_transfers WHERE kind = 'pay_in' GROUP BY order_id HAVING count(*) > 1) t")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(settled_twice, 0, "no order settled twice");
    let completed: Vec<(uuid::Uuid, uuid::Uuid, String, String, Decimal)> = sqlx::query_as(
        "SELECT store_id, trader_id, fiat_currency, payment_method, crypto_amount FROM orders WHERE status = 'completed'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    // The ledger sink may still be catching up with the last completions.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let journaled: i64 =
            sqlx::query_scalar("SELECT count(*) FROM ledger_transfers WHERE kind = 'pay_in'")
                .fetch_one(pool)
                .await
                .unwrap();
        if journaled == completed.len() as i64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{journaled} of {} completed pay-ins journaled",
            completed.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let percent = |s: &str| s.parse::<Decimal>().unwrap() / Decimal::from(100);
    let mut expected: HashMap<(&str, uuid::Uuid), Decimal> = HashMap::new();
    for (store, trader, fiat, method, c) in &completed {
        let (_, _, s, t, _) = POOLS.iter().find(|p| p.0 == fiat && p.1 == method).unwrap();
        *expected.entry(("store", *store)).or_default() += c * (Decimal::ONE - percent(s));
        *expected.entry(("trader", *trader)).or_default() += c * percent(t) - c;
    }
    let tolerance = Decimal::new(completed.len() as i64 + 1, 6);
    let balances: Vec<(String, uuid::Uuid, Decimal)> = sqlx::query_as(
        "SELECT a.owner_kind, a.owner_id, sum(b.balance) FROM ledger_balances b JOIN ledger_accounts a ON a.id = b.account_id
         WHERE a.owner_kind IN ('store', 'trader') GROUP BY a.owner_kind, a.owner_id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for (kind, owner, balance) in balances {
        let mut want = expected
            .get(&(kind.as_str(), owner))
            .copied()
            .unwrap_or_default();
        if kind == "trader" {
            want += Decimal::from(DEMO_DEPOSIT);
            assert!(balance >= Decimal::ZERO, "trader {owner} below zero");
        }
        assert!(
            (balance - want).abs() <= tolerance,
            "{kind} {owner}: {balance}, computed {want}"
        );
    }
}

/// Polls `/readyz` of one or more processes every 200 ms until stopped, keeping (time,
/// status) of each round: 200 when every process answered 200, 503 when any answered 503,
/// else 0 (no answer).
pub struct ReadyzProbe {
    pub seen: std::sync::Arc<std::sync::Mutex<Vec<(Instant, u16)>>>,
    /// The last body that was not ready, for a failure's message.
    last: std::sync::Arc<std::sync::Mutex<String>>,
    task: tokio::task::JoinHandle<()>,
}

impl ReadyzProbe {
    /// Polls the `/readyz` of the management API at `admin`.
    pub fn start(admin: &str) -> Self {
        Self::start_all(vec![format!("{admin}/readyz")])
    }

    /// Polls every one of `urls`.
    pub fn start_all(urls: Vec<String>) -> Self {
        let seen: std::sync::Arc<std::sync::Mutex<Vec<(Instant, u16)>>> = Default::default();
        let log = seen.clone();
        let last: std::sync::Arc<std::sync::Mutex<String>> = Default::default();
        let last_body = last.clone();
        let task = tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap();
            loop {
                let mut round = Vec::new();
                for url in &urls {
                    let status = match client.get(url).send().await {
                        Ok(r) => {
                            let status = r.status().as_u16();
                            let body = r.text().await.unwrap_or_default();
                            if status != 200 {
                                *last_body.lock().unwrap() = format!("{url}: {body}");
                            }
                            status
                        }
                        Err(_) => 0,
                    };
                    round.push(status);
                }
                let status = if round.iter().all(|s| *s == 200) {
                    200
                } else if round.contains(&503) {
                    503
                } else {
                    0
                };
                log.lock().unwrap().push((Instant::now(), status));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        Self { seen, last, task }
    }

    /// Whether `/readyz` answered `status` at some point in `from..to`.
    pub fn answered(&self, status: u16, from: Instant, to: Instant) -> bool {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .any(|(at, s)| *s == status && *at >= from && *at <= to)
    }

    /// Waits (bounded) until `/readyz` answers `status`.
    pub async fn wait_for(&self, status: u16, within: Duration) -> Instant {
        let since = Instant::now();
        loop {
            if let Some((at, _)) = self
                .seen
                .lock()
                .unwrap()
                .iter()
                .find(|(at, s)| *s == status && *at >= since)
            {
                return *at;
            }
            assert!(
                since.elapsed() < within,
                "/readyz did not answer {status} within {within:?}; last: {}",
                self.last.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for ReadyzProbe {
    fn drop(&mut self) {
        self.task.abort();
    }
}
