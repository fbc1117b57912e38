//! PostgreSQL: the connection pool and the migrations in `migrations/`.

use crate::settings::DatabaseSettings;
use crate::startup::StartupError;
use secrecy::ExposeSecret;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use std::str::FromStr;
use std::time::Duration;

/// The migrations compiled into the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// `host:port/database` of a URL, without the user and password, for messages.
pub fn describe(url: &str) -> String {
    match PgConnectOptions::from_str(url) {
        Ok(o) => format!(
            "{}:{}/{}",
            o.get_host(),
            o.get_port(),
            o.get_database().unwrap_or("")
        ),
        Err(_) => "an unparsable URL".into(),
    }
}

/// Connects, failing with an actionable error when the server is missing or unreachable.
pub async fn connect(settings: &DatabaseSettings) -> Result<PgPool, StartupError> {
    let url = settings
        .url
        .as_ref()
        .ok_or(StartupError::DatabaseNotConfigured)?
        .expose_secret();
    let target = describe(url);
    let options =
        PgConnectOptions::from_str(url).map_err(|e| StartupError::DatabaseUnreachable {
            target: target.clone(),
            reason: e.to_string(),
        })?;
    PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(Duration::from_secs(settings.connect_timeout_secs))
        // No ping before every acquire (sqlx's default): it doubled the round trips of every
        // query on the hot paths. A connection that died is found by the query itself, which
        // fails with an error the caller already handles, and is not returned to the pool.
        .test_before_acquire(false)
        .connect_with(options)
        .await
        .map_err(|e| StartupError::DatabaseUnreachable {
            target,
            reason: root_cause(&e),
        })
}

/// Applies every pending migration (idempotent).
pub async fn migrate(pool: &PgPool) -> Result<(), StartupError> {
    MIGRATOR
        .run(pool)
        .await
        .map_err(|e| StartupError::Migrations(e.to_string()))
}

fn root_cause(e: &sqlx::Error) -> String {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message = s.to_string();
        source = s.source();
    }
    message
}
