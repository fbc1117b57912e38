//! Runtime settings as every component reads them: the compacted `settings` topic held as a
//! table and kept current, so a change made through the management API takes effect in every
//! running process without a restart. Values are typed on read; a missing or mistyped value is
//! `None`, and the caller falls back to its documented default.

use crate::kafka::{Broker, Table, TableError};
use jivapay_schemas::records::Setting;
use jivapay_schemas::topics::SETTINGS;
use jivapay_schemas::SchemaRegistry;
use rust_decimal::Decimal;
use std::str::FromStr;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
pub struct RuntimeSettings {
    table: Table<Setting>,
}

impl RuntimeSettings {
    /// Starts following the `settings` topic until `stop`.
    pub async fn start(
        broker: &Broker,
        registry: SchemaRegistry,
        stop: CancellationToken,
    ) -> Result<Self, TableError> {
        Ok(Self {
            table: Table::start(broker, registry, SETTINGS, stop).await?,
        })
    }

    fn json(&self, key: &str) -> Option<serde_json::Value> {
        serde_json::from_str(&self.table.get(key)?.value_json).ok()
    }

    pub fn integer(&self, key: &str) -> Option<i64> {
        self.json(key)?.as_i64()
    }

    pub fn duration(&self, key: &str) -> Option<Duration> {
        u64::try_from(self.integer(key)?)
            .ok()
            .map(Duration::from_secs)
    }

    /// Decimal settings are JSON strings (money is never a float).
    pub fn decimal(&self, key: &str) -> Option<Decimal> {
        Decimal::from_str(self.json(key)?.as_str()?).ok()
    }

    pub fn boolean(&self, key: &str) -> Option<bool> {
        self.json(key)?.as_bool()
    }

    pub fn string(&self, key: &str) -> Option<String> {
        self.json(key)?.as_str().map(str::to_owned)
    }

    /// A list of whole seconds, e.g. a retry schedule.
    pub fn seconds_list(&self, key: &str) -> Option<Vec<Duration>> {
        self.json(key)?
            .as_array()?
            .iter()
            .map(|v| v.as_u64().map(Duration::from_secs))
            .collect()
    }

    /// Waits (bounded) until `ready` holds for this view of the settings.
    pub async fn wait_until(
        &self,
        key: &str,
        timeout: Duration,
        ready: impl Fn(&Self) -> bool,
    ) -> bool {
        self.table
            .wait_for(key, timeout, |_| ready(self))
            .await
            .is_some()
    }
}
