//! What every component shares: settings, telemetry, PostgreSQL, Kafka clients, and the
//! operational HTTP endpoints (`/healthz`, `/readyz`, `/metrics`).

pub mod db;
pub mod failure;
pub mod group;
pub mod health;
pub mod http;
pub mod kafka;
pub mod order_changes;
pub mod pg_notifications;
pub mod runtime_settings;
pub mod schema_registry;
pub mod settings;
pub mod settings_catalog;
pub mod startup;
pub mod telemetry;
pub mod trader_commands;

pub use settings::Settings;
pub use startup::StartupError;
