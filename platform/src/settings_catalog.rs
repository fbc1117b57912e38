//! The runtime settings every component reads (`configuration_settings`, published to the
//! `settings` topic): their keys, types, defaults and bounds. A write is validated here before
//! it reaches the database, so a component never sees a value outside these bounds.

use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Integer {
        min: i64,
        max: i64,
    },
    DurationSecs {
        min: i64,
        max: i64,
    },
    /// A decimal amount, sent as a string (never a float).
    Decimal {
        min: &'static str,
        max: &'static str,
    },
    Boolean,
    String {
        max_chars: usize,
    },
    /// Ascending non-negative seconds, e.g. a retry schedule.
    SecondsSchedule {
        max_items: usize,
        max_secs: i64,
    },
}

pub struct Definition {
    pub key: &'static str,
    pub kind: Kind,
    pub default: fn() -> Value,
    pub description: &'static str,
}

pub const SETTINGS: &[Definition] = &[
    Definition {
        key: "fraud.review_threshold",
        kind: Kind::Decimal { min: "0.01", max: "1000000000" },
        default: || json!("300000.00"),
        description: "Fiat amount from which an order goes to manual review",
    },
    Definition {
        key: "fraud.deny_threshold",
        kind: Kind::Decimal { min: "0.01", max: "1000000000" },
        default: || json!("1000000.00"),
        description: "Fiat amount from which an order is denied",
    },
    Definition {
        key: "fraud.velocity.store_orders_per_minute",
        kind: Kind::Integer { min: 1, max: 1_000_000 },
        default: || json!(6000),
        description: "Orders one store may create per minute before new ones go to review",
    },
    Definition {
        key: "fraud.velocity.customer_orders_per_hour",
        kind: Kind::Integer { min: 1, max: 10_000 },
        default: || json!(20),
        description: "Orders one customer of a store may create per hour before new ones go to review",
    },
    Definition {
        key: "orders.payment_window_secs",
        kind: Kind::DurationSecs { min: 60, max: 86_400 },
        default: || json!(900),
        description: "Time the customer has to pay and confirm a pay-in",
    },
    Definition {
        key: "orders.trader_confirmation_timeout_secs",
        kind: Kind::DurationSecs { min: 60, max: 172_800 },
        default: || json!(1800),
        description: "Time a trader has to confirm receipt after the customer confirmed; then a dispute opens",
    },
    Definition {
        key: "orders.dispute_sla_secs",
        kind: Kind::DurationSecs { min: 600, max: 2_592_000 },
        default: || json!(86_400),
        description: "Time support has to resolve a dispute",
    },
    Definition {
        key: "limits.time_zone",
        kind: Kind::String { max_chars: 64 },
        default: || json!("Europe/Moscow"),
        description: "IANA time zone in which daily and monthly requisite limits reset",
    },
    Definition {
        key: "rate_limits.gateway_requests_per_second",
        kind: Kind::Integer { min: 1, max: 100_000 },
        default: || json!(200),
        description: "Gateway requests one store may make per second",
    },
    Definition {
        key: "rate_limits.logins_per_minute",
        kind: Kind::Integer { min: 1, max: 10_000 },
        default: || json!(20),
        description: "Login attempts per client address and login per minute",
    },
    Definition {
        key: "callbacks.retry_schedule_secs",
        kind: Kind::SecondsSchedule { max_items: 20, max_secs: 86_400 },
        default: || json!([0, 5, 300, 1800, 7200, 18000, 36000, 36000]),
        description: "Delays before each callback attempt",
    },
    Definition {
        key: "callbacks.timeout_secs",
        kind: Kind::DurationSecs { min: 1, max: 60 },
        default: || json!(15),
        description: "Time a merchant's endpoint has to answer a callback",
    },
    Definition {
        key: "callbacks.disable_after_failing_secs",
        kind: Kind::DurationSecs { min: 3600, max: 2_592_000 },
        default: || json!(259_200),
        description: "Continuous failure after which a store's callback endpoint is disabled",
    },
    Definition {
        key: "callbacks.allow_private_addresses",
        kind: Kind::Boolean,
        default: || json!(false),
        description: "Allow callback URLs on loopback or private networks (development only)",
    },
];

pub fn definition(key: &str) -> Option<&'static Definition> {
    SETTINGS.iter().find(|d| d.key == key)
}

/// A setting every component reads: a key missing from the catalogue is a programming error,
/// caught by the tests of whoever reads it.
fn known(key: &str) -> &'static Definition {
    definition(key).unwrap_or_else(|| panic!("{key} is not in the settings catalogue"))
}

/// The default of a whole-number (or seconds) setting.
pub fn default_integer(key: &str) -> i64 {
    (known(key).default)()
        .as_i64()
        .unwrap_or_else(|| panic!("{key}'s default is not a whole number"))
}

/// The lower bound of a whole-number (or seconds) setting.
pub fn minimum_integer(key: &str) -> i64 {
    match known(key).kind {
        Kind::Integer { min, .. } | Kind::DurationSecs { min, .. } => min,
        _ => panic!("{key} is not a whole-number setting"),
    }
}

/// The default of a decimal setting.
pub fn default_decimal(key: &str) -> Decimal {
    (known(key).default)()
        .as_str()
        .and_then(|s| Decimal::from_str(s).ok())
        .unwrap_or_else(|| panic!("{key}'s default is not a decimal string"))
}

pub fn default_string(key: &str) -> String {
    (known(key).default)()
        .as_str()
        .unwrap_or_else(|| panic!("{key}'s default is not a string"))
        .to_owned()
}

pub fn default_boolean(key: &str) -> bool {
    (known(key).default)()
        .as_bool()
        .unwrap_or_else(|| panic!("{key}'s default is not a boolean"))
}

/// The default of a list of seconds (a retry schedule).
pub fn default_seconds_list(key: &str) -> Vec<u64> {
    (known(key).default)()
        .as_array()
        .and_then(|items| items.iter().map(serde_json::Value::as_u64).collect())
        .unwrap_or_else(|| panic!("{key}'s default is not a list of seconds"))
}

impl Kind {
    /// The `value_type` stored in the database and on the topic.
    pub fn value_type(&self) -> &'static str {
        match self {
            Kind::Integer { .. } => "integer",
            Kind::DurationSecs { .. } => "duration_seconds",
            Kind::Decimal { .. } => "decimal",
            Kind::Boolean => "boolean",
            Kind::String { .. } => "string",
            Kind::SecondsSchedule { .. } => "json",
        }
    }
}

/// Checks `value` against the definition; the error says what is expected.
pub fn validate(definition: &Definition, value: &Value) -> Result<Value, String> {
    let key = definition.key;
    match definition.kind {
        Kind::Integer { min, max } | Kind::DurationSecs { min, max } => match value.as_i64() {
            Some(n) if (min..=max).contains(&n) => Ok(json!(n)),
            _ => Err(format!("{key} must be a whole number from {min} to {max}")),
        },
        Kind::Decimal { min, max } => {
            let parsed = value.as_str().and_then(|s| Decimal::from_str(s).ok());
            let (min, max) = (
                Decimal::from_str(min).unwrap_or_default(),
                Decimal::from_str(max).unwrap_or_default(),
            );
            match parsed {
                Some(d) if d >= min && d <= max && d.scale() <= 2 => Ok(json!(d.to_string())),
                _ => Err(format!(
                    "{key} must be a decimal string from {min} to {max} with at most 2 places"
                )),
            }
        }
        Kind::Boolean => value
            .as_bool()
            .map(Value::Bool)
            .ok_or_else(|| format!("{key} must be true or false")),
        Kind::String { max_chars } => match value.as_str() {
            Some(s) if !s.trim().is_empty() && s.chars().count() <= max_chars => {
                Ok(json!(s.trim()))
            }
            _ => Err(format!(
                "{key} must be a non-empty string of at most {max_chars} characters"
            )),
        },
        Kind::SecondsSchedule {
            max_items,
            max_secs,
        } => {
            let items: Option<Vec<i64>> = value
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_i64).collect());
            let ok = match (&items, value.as_array()) {
                (Some(items), Some(raw)) => {
                    !items.is_empty()
                        && items.len() == raw.len()
                        && items.len() <= max_items
                        && items.iter().all(|s| (0..=max_secs).contains(s))
                }
                _ => false,
            };
            if ok {
                Ok(json!(items))
            } else {
                Err(format!("{key} must be a list of 1 to {max_items} delays in seconds, each from 0 to {max_secs}"))
            }
        }
    }
}

/// A runtime setting read from `configuration_settings` and kept for a few seconds, so a
/// change made in the management API applies without a restart and without a query per
/// request. Its default is the catalogue's.
pub struct CachedSetting<T> {
    key: &'static str,
    default: T,
    cached: std::sync::Mutex<Option<(std::time::Instant, T)>>,
}

/// How long a read value is used before the setting is read again.
const CACHED_FOR: std::time::Duration = std::time::Duration::from_secs(5);

impl<T: serde::de::DeserializeOwned + Clone> CachedSetting<T> {
    pub fn new(key: &'static str) -> Self {
        let default = serde_json::from_value((known(key).default)())
            .unwrap_or_else(|e| panic!("{key}'s default does not fit its reader: {e}"));
        Self {
            key,
            default,
            cached: std::sync::Mutex::new(None),
        }
    }

    pub async fn get(&self, pool: &sqlx::PgPool) -> T {
        let cached = self
            .cached
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some((at, value)) = cached {
            if at.elapsed() < CACHED_FOR {
                return value;
            }
        }
        let read: Result<Option<Value>, _> =
            sqlx::query_scalar("SELECT value FROM configuration_settings WHERE key = $1")
                .bind(self.key)
                .fetch_optional(pool)
                .await;
        let value = match read.map(|found| found.map(serde_json::from_value::<T>)) {
            Ok(Some(Ok(value))) => value,
            Ok(None) => self.default.clone(),
            Ok(Some(Err(e))) => {
                tracing::warn!(key = self.key, error = %e, "setting mistyped; default used");
                self.default.clone()
            }
            Err(e) => {
                tracing::warn!(key = self.key, error = %e, "setting unreadable; default used");
                self.default.clone()
            }
        };
        *self.cached.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((std::time::Instant::now(), value.clone()));
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_keys_unique() {
        let mut keys = std::collections::HashSet::new();
        for d in SETTINGS {
            assert!(keys.insert(d.key), "{} twice", d.key);
            validate(d, &(d.default)()).unwrap_or_else(|e| panic!("default of {}: {e}", d.key));
        }
    }

    #[test]
    fn values_outside_the_bounds_are_refused() {
        let window = definition("orders.payment_window_secs").unwrap();
        assert!(validate(window, &json!(900)).is_ok());
        assert!(validate(window, &json!(-5)).is_err());
        assert!(validate(window, &json!(10_000_000)).is_err());
        assert!(validate(window, &json!("900")).is_err());
        assert!(validate(window, &json!(9.5)).is_err());
        let threshold = definition("fraud.review_threshold").unwrap();
        assert!(validate(threshold, &json!("100.50")).is_ok());
        assert!(
            validate(threshold, &json!(100.5)).is_err(),
            "floats are not money"
        );
        assert!(validate(threshold, &json!("1.001")).is_err());
        let schedule = definition("callbacks.retry_schedule_secs").unwrap();
        assert!(validate(schedule, &json!([0, 5])).is_ok());
        assert!(validate(schedule, &json!([])).is_err());
        assert!(validate(schedule, &json!([0, "5"])).is_err());
        assert!(validate(schedule, &json!([-1])).is_err());
    }
}
