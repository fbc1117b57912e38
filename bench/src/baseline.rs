//! The baseline: the seed's synchronous design, in PostgreSQL on the same server, with the same
//! data shape as the demo (3 stores, 6 traders by priority, 13 requisites in 5 pools) and the
//! same arrivals (`jivapay_loadgen::Plan`, open loop), at the SQL level through a connection
//! pool. Per order: one transaction that picks a requisite (`FOR UPDATE SKIP LOCKED`, trader
//! priority then least recently used), updates its usage and inserts the order; then, the
//! confirmations being immediate, one transaction that completes it: lock and update the
//! trader's, the store's and the platform's balances and insert three history rows.

use crate::cluster::Database;
use crate::procfs;
use crate::step::{cores, new_histogram, StepResult};
use jivapay_loadgen::{Percentiles, Plan};
use rust_decimal::Decimal;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::time::Instant as TokioInstant;
use uuid::Uuid;

const SCHEMA: &str = "
CREATE TABLE traders (id int PRIMARY KEY, priority int NOT NULL, deposit numeric(24,6) NOT NULL,
    rewards numeric(24,6) NOT NULL DEFAULT 0, updated_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE stores (id int PRIMARY KEY, balance numeric(24,6) NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE platform (id int PRIMARY KEY, balance numeric(24,6) NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE requisites (id int PRIMARY KEY, trader_id int NOT NULL REFERENCES traders,
    fiat text NOT NULL, method text NOT NULL, is_active boolean NOT NULL DEFAULT true,
    last_used_at timestamptz, daily_count int NOT NULL DEFAULT 0,
    daily_turnover numeric(20,2) NOT NULL DEFAULT 0);
CREATE INDEX requisites_pool_idx ON requisites (fiat, method);
CREATE TABLE orders (id uuid PRIMARY KEY, store_id int NOT NULL REFERENCES stores,
    requisite_id int NOT NULL REFERENCES requisites, trader_id int NOT NULL REFERENCES traders,
    fiat_amount numeric(20,2) NOT NULL, fiat text NOT NULL, method text NOT NULL,
    rate numeric(20,8) NOT NULL, crypto_amount numeric(24,6) NOT NULL, status text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(), completed_at timestamptz);
CREATE INDEX orders_trader_idx ON orders (trader_id, created_at);
CREATE TABLE balance_history (id bigserial PRIMARY KEY, owner_kind text NOT NULL, owner_id int,
    order_id uuid NOT NULL, delta numeric(24,6) NOT NULL, balance_after numeric(24,6) NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX balance_history_order_idx ON balance_history (order_id);
";

/// (fiat, method, store %, trader %) as in the demo seed.
const COMMISSIONS: &[(&str, &str, &str, &str)] = &[
    ("RUB", "sbp", "3.0", "2.0"),
    ("RUB", "card2card", "3.5", "2.5"),
    ("RUB", "account", "2.5", "1.5"),
    ("KZT", "card2card", "3.5", "2.5"),
    ("KZT", "account", "2.5", "1.5"),
];

pub struct Baseline {
    pub db: Database,
    pub pool: PgPool,
}

impl Baseline {
    pub async fn create(server_url: &str, connections: u32) -> anyhow::Result<Self> {
        let db = Database::create(server_url, "bench_baseline").await?;
        sqlx::raw_sql(SCHEMA).execute(&db.pool).await?;
        // The demo's shape: traders 1–3 (priorities 1, 2, 3) hold RUB requisites in three
        // pools, traders 4–6 (priorities 1, 2, 5) KZT requisites in two.
        let mut tx = db.pool.begin().await?;
        for (id, priority) in [(1, 1), (2, 2), (3, 3), (4, 1), (5, 2), (6, 5)] {
            sqlx::query("INSERT INTO traders (id, priority, deposit) VALUES ($1, $2, 100005000)")
                .bind(id)
                .bind(priority)
                .execute(&mut *tx)
                .await?;
        }
        for store in 1..=3 {
            sqlx::query("INSERT INTO stores (id) VALUES ($1)")
                .bind(store)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("INSERT INTO platform (id) VALUES (1)")
            .execute(&mut *tx)
            .await?;
        let mut requisite = 0;
        for trader in 1..=6 {
            let pools: &[(&str, &str)] = if trader <= 3 {
                &[("RUB", "sbp"), ("RUB", "card2card"), ("RUB", "account")]
            } else {
                &[("KZT", "card2card"), ("KZT", "account")]
            };
            for (fiat, method) in pools {
                requisite += 1;
                sqlx::query(
                    "INSERT INTO requisites (id, trader_id, fiat, method) VALUES ($1, $2, $3, $4)",
                )
                .bind(requisite)
                .bind(trader)
                .bind(fiat)
                .bind(method)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        let pool = PgPoolOptions::new()
            .max_connections(connections)
            .min_connections(connections)
            .acquire_timeout(Duration::from_secs(60))
            .connect(&db.url)
            .await?;
        Ok(Self { db, pool })
    }

    /// One open-loop step: `rate` orders/s for `secs` seconds, the same arrivals as the
    /// pipeline's.
    pub async fn step(&self, label: &str, rate: f64, secs: f64) -> anyhow::Result<StepResult> {
        let orders = (rate * secs).round().max(1.0) as u64;
        let plan = Plan::benchmark(orders, rate, "baseline");
        let done: Arc<Mutex<Vec<(i64, i64)>>> = Arc::new(Mutex::new(Vec::new()));
        let create = Arc::new(Mutex::new(new_histogram()));
        let cpu_before = (
            procfs::postgres_backends_cpu(&self.db.name),
            procfs::own_threads_cpu().0,
        );
        let started = Instant::now();
        let start = TokioInstant::now() + Duration::from_millis(20);
        let interval = Duration::from_secs_f64(1.0 / rate);
        let mut tasks = Vec::with_capacity(orders as usize);
        for n in 0..orders {
            let due = start + interval.mul_f64(n as f64);
            tokio::time::sleep_until(due).await;
            let (pool, done, create) = (self.pool.clone(), done.clone(), create.clone());
            let due_ms =
                unix_ms() + (due.saturating_duration_since(TokioInstant::now())).as_millis() as i64;
            let (p, amount) = plan.order(n);
            let (fiat, method, amount) = (p.fiat, p.method, amount.parse::<Decimal>()?);
            tasks.push(tokio::spawn(async move {
                let store = (n % 3 + 1) as i32;
                let Ok(Some(order)) = create_order(&pool, store, fiat, method, amount).await else {
                    return;
                };
                record(&create, due.elapsed());
                if complete_order(&pool, order).await.is_ok() {
                    if let Ok(mut done) = done.lock() {
                        done.push((due_ms, due_ms + due.elapsed().as_millis() as i64));
                    }
                }
            }));
        }
        for task in tasks {
            task.await.ok();
        }
        let wall = started.elapsed().as_secs_f64();
        let cpu_after = (
            procfs::postgres_backends_cpu(&self.db.name),
            procfs::own_threads_cpu().0,
        );
        let snapshot = |h: &Arc<Mutex<hdrhistogram::Histogram<u64>>>| {
            h.lock().map(|h| Percentiles::of(&h)).unwrap_or_default()
        };
        let mut result = StepResult {
            system: "baseline",
            label: label.to_owned(),
            offered_rate: rate,
            orders,
            completed: 0,
            not_completed: orders,
            duration_s: wall,
            completed_per_s: 0.0,
            e2e: Percentiles::default(),
            create: snapshot(&create),
            cpu_cores: vec![
                (
                    "postgres (backends)".into(),
                    cores(cpu_before.0, cpu_after.0, wall),
                ),
                (
                    "load generator + pool".into(),
                    cores(cpu_before.1, cpu_after.1, wall),
                ),
            ],
            peak_rss_mib: Vec::new(),
            stages: Vec::new(),
            sustainable: false,
        };
        let done = done.lock().map(|d| d.clone()).unwrap_or_default();
        crate::step::completions(&mut result, done);
        Ok(result)
    }

    pub async fn stop(self) {
        self.pool.close().await;
        self.db.drop().await;
    }
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
}

fn record(h: &Mutex<hdrhistogram::Histogram<u64>>, latency: Duration) {
    if let Ok(mut h) = h.lock() {
        h.saturating_record((latency.as_micros() as u64).max(1));
    }
}

/// The rate of a fiat currency in the demo seed (fiat per USDT).
fn rate_of(fiat: &str) -> Decimal {
    match fiat {
        "RUB" => Decimal::new(9250, 2),
        _ => Decimal::new(47800, 2),
    }
}

/// Transaction 1: pick a requisite, update its usage, insert the order. `None`: no requisite
/// was free (every candidate locked or none eligible), which the seed reports as no_requisite.
async fn create_order(
    pool: &PgPool,
    store: i32,
    fiat: &str,
    method: &str,
    amount: Decimal,
) -> anyhow::Result<Option<Uuid>> {
    let rate = rate_of(fiat);
    let crypto = (amount / rate).round_dp(6);
    let mut tx = pool.begin().await?;
    let picked: Option<(i32, i32)> = sqlx::query_as(
        "SELECT r.id, r.trader_id FROM requisites r JOIN traders t ON t.id = r.trader_id
         WHERE r.fiat = $1 AND r.method = $2 AND r.is_active AND t.deposit >= $3
         ORDER BY t.priority, r.last_used_at NULLS FIRST
         LIMIT 1 FOR UPDATE OF r SKIP LOCKED",
    )
    .bind(fiat)
    .bind(method)
    .bind(crypto)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((requisite, trader)) = picked else {
        tx.rollback().await?;
        return Ok(None);
    };
    sqlx::query(
        "UPDATE requisites SET last_used_at = now(), daily_count = daily_count + 1,
             daily_turnover = daily_turnover + $2 WHERE id = $1",
    )
    .bind(requisite)
    .bind(amount)
    .execute(&mut *tx)
    .await?;
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO orders (id, store_id, requisite_id, trader_id, fiat_amount, fiat, method, rate,
             crypto_amount, status) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'assigned')",
    )
    .bind(id)
    .bind(store)
    .bind(requisite)
    .bind(trader)
    .bind(amount)
    .bind(fiat)
    .bind(method)
    .bind(rate)
    .bind(crypto)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(id))
}

/// Transaction 2: complete the order — lock and update the trader's, the store's and the
/// platform's balances (always in that order, so no deadlock), three history rows.
async fn complete_order(pool: &PgPool, order: Uuid) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    let (store, trader, fiat, method, crypto): (i32, i32, String, String, Decimal) =
        sqlx::query_as(
            "SELECT store_id, trader_id, fiat, method, crypto_amount FROM orders
             WHERE id = $1 AND status = 'assigned' FOR UPDATE",
        )
        .bind(order)
        .fetch_one(&mut *tx)
        .await?;
    let (_, _, s, t) = COMMISSIONS
        .iter()
        .find(|c| c.0 == fiat && c.1 == method)
        .ok_or_else(|| anyhow::anyhow!("no commission"))?;
    let (s, t): (Decimal, Decimal) = (s.parse()?, t.parse()?);
    let hundred = Decimal::from(100);
    let reward = (crypto * t / hundred).round_dp(6);
    let store_share = (crypto * (hundred - s) / hundred).round_dp(6);
    let fee = crypto - store_share - reward;
    let trader_after: Decimal = sqlx::query_scalar(
        "UPDATE traders SET deposit = deposit - $2, rewards = rewards + $3, updated_at = now()
         WHERE id = $1 RETURNING deposit",
    )
    .bind(trader)
    .bind(crypto)
    .bind(reward)
    .fetch_one(&mut *tx)
    .await?;
    let store_after: Decimal = sqlx::query_scalar(
        "UPDATE stores SET balance = balance + $2, updated_at = now() WHERE id = $1 RETURNING balance",
    )
    .bind(store)
    .bind(store_share)
    .fetch_one(&mut *tx)
    .await?;
    let platform_after: Decimal = sqlx::query_scalar(
        "UPDATE platform SET balance = balance + $1, updated_at = now() WHERE id = 1 RETURNING balance",
    )
    .bind(fee)
    .fetch_one(&mut *tx)
    .await?;
    for (kind, owner, delta, after) in [
        ("trader", Some(trader), reward - crypto, trader_after),
        ("store", Some(store), store_share, store_after),
        ("platform", None, fee, platform_after),
    ] {
        sqlx::query(
            "INSERT INTO balance_history (owner_kind, owner_id, order_id, delta, balance_after)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(kind)
        .bind(owner)
        .bind(order)
        .bind(delta)
        .bind(after)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query("UPDATE orders SET status = 'completed', completed_at = now() WHERE id = $1")
        .bind(order)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}
