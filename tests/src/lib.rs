//! The test harness: real PostgreSQL, real brokers (embedded mock cluster and Tansu), real HTTP.
//!
//! `scripts/test` starts the local stack and exports `JIVAPAY_TEST_DATABASE_URL` and
//! `JIVAPAY_TEST_TANSU_BROKERS`. A test that needs one of them and does not find it fails with a
//! message saying how to start it: nothing is silently skipped.

pub mod admin;
pub mod black_hole;
pub mod callbacks;
pub mod demo;
pub mod fault_proxy;
pub mod fleet;
pub mod gateway;
pub mod murmur2;
pub mod postgres;
pub mod process;
pub mod tansu;
pub mod traffic;

use jivapay_platform::kafka::Broker;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use std::time::Duration;
use uuid::Uuid;

const HOW_TO_START: &str = "run the tests with `scripts/test`, or start the stack with \
    `scripts/stack start` and `eval \"$(scripts/stack env)\"`";

/// The URL of the test cluster's maintenance database.
/// A file of this package, found from the package's folder at run time: a test binary reused
/// from a shared target folder may have been built in another checkout of the same sources.
pub fn package_file(relative: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or(env!("CARGO_MANIFEST_DIR").into()),
    )
    .join(relative)
}

pub fn database_url() -> String {
    std::env::var("JIVAPAY_TEST_DATABASE_URL")
        .unwrap_or_else(|_| panic!("JIVAPAY_TEST_DATABASE_URL is not set: {HOW_TO_START}"))
}

/// A fresh, empty database of its own for one test, dropped when the value is.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
    pub pool: PgPool,
    admin_url: String,
}

impl TestDatabase {
    /// Creates an empty database (no migrations applied).
    pub async fn empty() -> Self {
        let admin_url = database_url();
        let name = format!("test_{}", Uuid::new_v4().simple());
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&admin_url)
            .await
            .unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        let url = match admin_url.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{name}"),
            None => panic!("database URL has no database part"),
        };
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect(&url)
            .await
            .unwrap();
        Self {
            name,
            url,
            pool,
            admin_url,
        }
    }

    /// Creates a database with every migration applied.
    pub async fn migrated() -> Self {
        let db = Self::empty().await;
        jivapay_platform::db::migrate(&db.pool)
            .await
            .expect("migrations apply");
        db
    }

    /// Closes the pool and drops the database.
    pub async fn drop_database(self) {
        self.pool.close().await;
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&self.admin_url)
            .await
            .unwrap();
        // Cleanup only: a database left behind (a session we may not end) fails no test.
        let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        for attempt in 0..5 {
            match sqlx::query(&drop).execute(&admin).await {
                Ok(_) => break,
                Err(e) if attempt == 4 => eprintln!("test database {} left behind: {e}", self.name),
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
            }
        }
        admin.close().await;
    }
}

/// Which broker a test runs against.
#[derive(Debug, Clone, Copy)]
pub enum BrokerKind {
    Embedded,
    Tansu,
}

/// A broker of the given kind: a fresh embedded one, or the stack's Tansu.
pub async fn broker(kind: BrokerKind) -> Broker {
    match kind {
        BrokerKind::Embedded => Broker::embedded(Duration::from_secs(10)).expect("mock cluster"),
        BrokerKind::Tansu => {
            let bootstrap = std::env::var("JIVAPAY_TEST_TANSU_BROKERS").unwrap_or_else(|_| {
                panic!("JIVAPAY_TEST_TANSU_BROKERS is not set: {HOW_TO_START}")
            });
            Broker::external(&bootstrap, Duration::from_secs(30))
                .await
                .expect("Tansu is reachable")
        }
    }
}

/// A topic name no other test uses.
pub fn unique_topic(prefix: &str) -> String {
    format!("{prefix}-{}", Uuid::new_v4().simple())
}

/// A consumer group id no other test uses.
pub fn unique_group(prefix: &str) -> String {
    format!("{prefix}-{}", Uuid::new_v4().simple())
}
