//! The runtime settings the trader book reads, with the catalogue's defaults
//! (`platform/src/settings_catalog.rs`) when a key is missing or unreadable.

use crate::core::MasterData;
use crate::fraud::settings::payment_window_secs;
use jivapay_platform::settings_catalog as catalogue;

const CONFIRMATION_TIMEOUT: &str = "orders.trader_confirmation_timeout_secs";
const TIME_ZONE: &str = "limits.time_zone";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookSettings {
    /// Time the customer has to pay and confirm, from the order's `requested_at`.
    pub payment_window_ms: i64,
    /// Time the trader has to confirm, from the customer's confirmation.
    pub confirmation_timeout_ms: i64,
    /// IANA zone in which daily and monthly limits reset.
    pub time_zone: String,
}

impl BookSettings {
    pub fn read(master: &dyn MasterData) -> BookSettings {
        BookSettings {
            // Read exactly as fraud reads it: both state the order's expiry.
            payment_window_ms: payment_window_secs(master).saturating_mul(1000),
            confirmation_timeout_ms: secs(master, CONFIRMATION_TIMEOUT).saturating_mul(1000),
            time_zone: master
                .setting(TIME_ZONE)
                .and_then(|s| serde_json::from_str::<String>(&s.value_json).ok())
                .filter(|z| !z.trim().is_empty())
                .unwrap_or_else(|| catalogue::default_string(TIME_ZONE)),
        }
    }
}

/// A positive duration in seconds; admin validates the bounds before publishing.
fn secs(master: &dyn MasterData, key: &str) -> i64 {
    let default = catalogue::default_integer(key);
    master
        .setting(key)
        .and_then(|s| serde_json::from_str::<i64>(&s.value_json).ok())
        .filter(|secs| *secs > 0)
        .unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::InMemoryMasterData;
    use jivapay_schemas::records::{Setting, SettingType};

    fn with(settings: &[(&str, &str)]) -> InMemoryMasterData {
        let master = InMemoryMasterData::default();
        for (key, value) in settings {
            master.settings.lock().expect("lock").insert(
                key.to_string(),
                Setting {
                    key: key.to_string(),
                    value_type: SettingType::Integer,
                    value_json: value.to_string(),
                    updated_at: 0,
                },
            );
        }
        master
    }

    #[test]
    fn missing_settings_take_the_catalogue_defaults() {
        let s = BookSettings::read(&with(&[]));
        assert_eq!(s.payment_window_ms, 900_000);
        assert_eq!(s.confirmation_timeout_ms, 1_800_000);
        assert_eq!(s.time_zone, "Europe/Moscow");
    }

    #[test]
    fn present_settings_are_read() {
        let s = BookSettings::read(&with(&[
            ("orders.payment_window_secs", "120"),
            ("orders.trader_confirmation_timeout_secs", "600"),
            ("limits.time_zone", "\"UTC\""),
        ]));
        assert_eq!(s.payment_window_ms, 120_000);
        assert_eq!(s.confirmation_timeout_ms, 600_000);
        assert_eq!(s.time_zone, "UTC");
    }

    #[test]
    fn the_payment_window_is_read_as_fraud_reads_it() {
        for value in ["120", "-5", "0", "59", "\"soon\"", "86400"] {
            let master = with(&[("orders.payment_window_secs", value)]);
            let fraud = crate::fraud::FraudSettings::load(&master);
            assert_eq!(
                BookSettings::read(&master).payment_window_ms,
                fraud.payment_window_secs * 1000,
                "{value}"
            );
        }
        let below = BookSettings::read(&with(&[("orders.payment_window_secs", "-5")]));
        assert_eq!(below.payment_window_ms, 60_000, "the catalogue's minimum");
    }

    #[test]
    fn unreadable_settings_fall_back() {
        let s = BookSettings::read(&with(&[
            ("orders.payment_window_secs", "\"soon\""),
            ("orders.trader_confirmation_timeout_secs", "-5"),
            ("limits.time_zone", "42"),
        ]));
        assert_eq!(s.payment_window_ms, 900_000);
        assert_eq!(s.confirmation_timeout_ms, 1_800_000);
        assert_eq!(s.time_zone, "Europe/Moscow");
    }
}
