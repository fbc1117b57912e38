//! The system under test: a fresh database, an embedded broker hosted by this process, and every
//! component as its own `jivapay` process (so CPU and memory are per component), seeded with the
//! demo data and opened up for load (no daily limits, large deposits, no velocity review).

use crate::procfs;
use jivapay_platform::kafka::Broker;
use jivapay_schemas::records::{TraderCommand, TraderCommandKind};
use jivapay_schemas::topics::TRADER_COMMANDS;
use jivapay_schemas::TOPICS;
use jivapay_tests::tansu::OwnTansu;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use uuid::Uuid;

pub const DEMO_PASSWORD: &str = "bench-demo-password";
const ADMIN_PASSWORD: &str = "bench-admin-password";
const JWT_SECRET: &str = "bench-jwt-secret-0123456789abcdef0123456789";
/// 32 bytes, base64.
const DATA_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
/// USDT each trader gets on top of the demo deposit: no run here exhausts it.
const BENCH_DEPOSIT_USDT: &str = "100000000.000000";
const BENCH_NAMESPACE: Uuid = Uuid::from_u128(0xbe4c_0000_5eed_4c0d_9d3e_0000_0000_0002);

/// The components, as `jivapay` arguments.
pub const COMPONENTS: &[&str] = &[
    "admin",
    "ingest",
    "processor fraud",
    "processor router",
    "processor trader-book",
    "processor commissions",
    "sink ledger",
    "sink projection",
];

/// Every component in one process (`jivapay all`: also the callback sender and the outbox
/// relay, idle here: the demo stores have no callback URL and nobody edits reference data).
pub const ONE_PROCESS: &[&str] = &["all"];

pub struct Component {
    pub name: &'static str,
    pub child: Child,
}

/// A database of our own on the server behind `server_url` (any database URL of it).
pub struct Database {
    pub name: String,
    pub url: String,
    pub pool: PgPool,
    server_url: String,
}

impl Database {
    pub async fn create(server_url: &str, prefix: &str) -> anyhow::Result<Self> {
        let name = format!("{prefix}_{}", &Uuid::new_v4().simple().to_string()[..12]);
        let (server, _) = server_url
            .rsplit_once('/')
            .ok_or_else(|| anyhow::anyhow!("the database URL has no database part"))?;
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&format!("{server}/postgres"))
            .await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await?;
        admin.close().await;
        let url = format!("{server}/{name}");
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect(&url)
            .await?;
        Ok(Self {
            name,
            url,
            pool,
            server_url: format!("{server}/postgres"),
        })
    }

    pub async fn size_bytes(&self) -> anyhow::Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT pg_database_size(current_database())")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    pub async fn drop(self) {
        self.pool.close().await;
        if let Ok(admin) = PgPoolOptions::new()
            .max_connections(1)
            .connect(&self.server_url)
            .await
        {
            let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
            if let Err(e) = sqlx::query(&drop).execute(&admin).await {
                eprintln!("database {} left behind: {e}", self.name);
            }
            admin.close().await;
        }
    }
}

pub struct Cluster {
    pub db: Database,
    pub broker: Broker,
    /// The Tansu broker of this run, when the run uses one instead of the embedded broker.
    pub tansu: Option<OwnTansu>,
    pub components: Vec<Component>,
    pub ingest: String,
    pub admin: String,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Cluster {
    pub async fn start(
        jivapay: &PathBuf,
        server_url: &str,
        fetch_wait_ms: u64,
        processes: &[&'static str],
        tansu: bool,
    ) -> anyhow::Result<Self> {
        let db = Database::create(server_url, "bench_pipeline").await?;
        let (broker, tansu) = if tansu {
            let own = OwnTansu::start();
            let broker = Broker::external(&own.bootstrap, Duration::from_secs(10)).await?;
            (broker, Some(own))
        } else {
            (Broker::embedded(Duration::from_secs(10))?, None)
        };
        broker.ensure_topics(TOPICS).await?;
        let (admin_port, ingest_port) = (free_port()?, free_port()?);
        let receipts = std::env::temp_dir().join(format!("{}-receipts", db.name));
        let env: Vec<(String, String)> = vec![
            ("JIVAPAY__DATABASE__URL".into(), db.url.clone()),
            (
                "JIVAPAY__KAFKA__BROKERS".into(),
                broker.bootstrap_servers().to_owned(),
            ),
            (
                "JIVAPAY__SEED__ADMIN_PASSWORD".into(),
                ADMIN_PASSWORD.into(),
            ),
            ("JIVAPAY__SEED__DEMO_PASSWORD".into(), DEMO_PASSWORD.into()),
            (
                "JIVAPAY__HTTP__ADMIN_ADDR".into(),
                format!("127.0.0.1:{admin_port}"),
            ),
            (
                "JIVAPAY__HTTP__INGEST_ADDR".into(),
                format!("127.0.0.1:{ingest_port}"),
            ),
            ("JIVAPAY__HTTP__OPS_ADDR".into(), "127.0.0.1:0".into()),
            ("JIVAPAY__AUTH__JWT_SECRET".into(), JWT_SECRET.into()),
            ("JIVAPAY__SECURITY__DATA_KEY".into(), DATA_KEY.into()),
            (
                // Components log warnings only, unless asked for more to diagnose a run.
                "JIVAPAY__LOG__FILTER".into(),
                std::env::var("JIVAPAY_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
            ),
            (
                "JIVAPAY__KAFKA__FETCH_WAIT_MAX_MS".into(),
                fetch_wait_ms.to_string(),
            ),
            (
                "JIVAPAY__RECEIPTS__STORE_URL".into(),
                format!("file://{}", receipts.display()),
            ),
        ];
        let run = |args: &[&str]| -> anyhow::Result<Command> {
            let mut command = Command::new(jivapay);
            for (key, _) in std::env::vars() {
                if key.starts_with("JIVAPAY__") {
                    command.env_remove(key);
                }
            }
            command.args(args).envs(env.iter().map(|(k, v)| (k, v)));
            Ok(command)
        };
        let seeded = run(&["seed", "--demo"])?.stdout(Stdio::null()).status()?;
        anyhow::ensure!(seeded.success(), "jivapay seed --demo failed");
        open_up_for_load(&db.pool).await?;
        let mut components = Vec::new();
        for name in processes {
            let args: Vec<&str> = name.split(' ').collect();
            let child = run(&args)?
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()?;
            components.push(Component { name, child });
        }
        let cluster = Self {
            db,
            broker,
            tansu,
            components,
            ingest: format!("http://127.0.0.1:{ingest_port}"),
            admin: format!("http://127.0.0.1:{admin_port}"),
        };
        for base in [&cluster.admin, &cluster.ingest] {
            wait_healthy(&format!("{base}/readyz")).await?;
        }
        Ok(cluster)
    }

    /// (component, CPU seconds so far, peak RSS bytes) of every component process, and of the
    /// Tansu broker if the run has one.
    pub fn usage(&self) -> Vec<(&'static str, f64, u64)> {
        let measure = |name: &'static str, pid: u32| {
            (
                name,
                procfs::cpu_seconds(&PathBuf::from(format!("/proc/{pid}"))).unwrap_or(0.0),
                procfs::peak_rss_bytes(pid).unwrap_or(0),
            )
        };
        self.components
            .iter()
            .map(|c| measure(c.name, c.child.id()))
            .chain(
                self.tansu
                    .as_ref()
                    .map(|t| measure("broker (tansu)", t.pid())),
            )
            .collect()
    }

    /// SIGTERM to every component, a bounded wait, then the database is dropped.
    pub async fn stop(mut self) {
        for c in &self.components {
            Command::new("kill")
                .args(["-TERM", &c.child.id().to_string()])
                .status()
                .ok();
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        for c in &mut self.components {
            while c.child.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    c.child.kill().ok();
                    c.child.wait().ok();
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        drop(self.broker);
        drop(self.tansu);
        self.db.drop().await;
    }
}

/// Components left running by an early error are killed, not leaked.
impl Drop for Component {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.child.kill().ok();
            self.child.wait().ok();
        }
    }
}

async fn wait_healthy(url: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = reqwest_get(url).await {
            if r {
                return Ok(());
            }
        }
        anyhow::ensure!(Instant::now() < deadline, "{url} not ready within a minute");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn reqwest_get(url: &str) -> anyhow::Result<bool> {
    Ok(reqwest::get(url).await?.status().is_success())
}

/// The demo data as seeded, opened up so that a benchmark measures the pipeline rather than
/// the demo's limits: requisites without daily/monthly limits, a large extra deposit per
/// trader, and the store velocity rule out of the way. Written like the management API writes
/// (the rows, and their records through the outbox), before the components start.
async fn open_up_for_load(pool: &PgPool) -> anyhow::Result<()> {
    let schemas = jivapay_platform::schema_registry::load(
        &jivapay_platform::Settings::default().schema_registry,
    )
    .await?;
    let mut admin_settings = jivapay_platform::Settings::default();
    admin_settings.auth.jwt_secret = Some(secrecy::SecretString::from(JWT_SECRET.to_owned()));
    admin_settings.security.data_key = Some(secrecy::SecretString::from(DATA_KEY.to_owned()));
    let state = jivapay_admin::AppState::new(&admin_settings, pool.clone(), schemas.clone())?;
    jivapay_admin::seed::set_setting(
        &state,
        "fraud.velocity.store_orders_per_minute",
        serde_json::json!(1_000_000),
    )
    .await?;
    // Three stores carry the whole load: their gateway budget must not be what is measured.
    jivapay_admin::seed::set_setting(
        &state,
        "rate_limits.gateway_requests_per_second",
        serde_json::json!(100_000),
    )
    .await?;
    let mut tx = pool.begin().await?;
    sqlx::query(
        "UPDATE requisites SET daily_count_limit = NULL, monthly_count_limit = NULL,
             daily_turnover_limit = NULL, monthly_turnover_limit = NULL, max_amount = 1000000",
    )
    .execute(&mut *tx)
    .await?;
    let traders: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM traders ORDER BY id")
        .fetch_all(&mut *tx)
        .await?;
    for trader_id in &traders {
        jivapay_admin::outbox::snapshots::publish_trader(&mut tx, &schemas, *trader_id).await?;
        let deposit = TraderCommand {
            command_id: Uuid::new_v5(&BENCH_NAMESPACE, trader_id.as_bytes()),
            trader_id: (*trader_id).into(),
            order_id: None,
            kind: TraderCommandKind::Deposit,
            amount: Some(BENCH_DEPOSIT_USDT.parse()?),
            resolution: None,
            receipt_key: None,
            actor_id: None,
            actor_role: Some("system".into()),
            reason: Some("benchmark deposit".into()),
            issued_at: chrono::Utc::now().timestamp_millis(),
        };
        jivapay_admin::outbox::enqueue(
            &mut tx,
            &schemas,
            TRADER_COMMANDS,
            &trader_id.to_string(),
            Some(&deposit),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Waits until both deposits of every trader are in the ledger (then the router can assign).
pub async fn wait_for_deposits(pool: &PgPool) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let n: i64 =
            sqlx::query_scalar("SELECT count(*) FROM ledger_transfers WHERE kind = 'deposit'")
                .fetch_one(pool)
                .await?;
        let traders: i64 = sqlx::query_scalar("SELECT count(*) FROM traders")
            .fetch_one(pool)
            .await?;
        if n >= 2 * traders {
            tokio::time::sleep(Duration::from_secs(2)).await;
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "deposits not in the ledger within 2 min"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
