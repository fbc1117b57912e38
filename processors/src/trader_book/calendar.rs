//! Calendar windows of the requisite limits: daily and monthly counters reset at local
//! midnight in the time zone of the `limits.time_zone` setting.
//!
//! Only [`local_date`] knows about time zones: it looks the zone up in the IANA database
//! (`chrono-tz`), so daylight saving time and historical changes are right; an unknown zone
//! falls back to the catalogue default.

use crate::core::Millis;
use chrono::{DateTime, Datelike, NaiveDate};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// The catalogue default of `limits.time_zone`.
pub const DEFAULT_TIME_ZONE: &str = "Europe/Moscow";

/// Where an instant falls in the local calendar: the keys the windows reset on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Window {
    /// Local days since 0001-01-01.
    pub day: i32,
    /// Local months since year 0: `year * 12 + month0`.
    pub month: i32,
}

impl Window {
    pub fn at(now: Millis, time_zone: &str) -> Window {
        match local_date(now, time_zone) {
            Some(date) => Window {
                day: date.num_days_from_ce(),
                month: date.year() * 12 + date.month0() as i32,
            },
            // Only for instants chrono cannot represent (±262 000 years): one window for all.
            None => Window { day: 0, month: 0 },
        }
    }
}

/// The local date of `now` in `time_zone`. Unknown zones fall back to the catalogue default.
pub fn local_date(now: Millis, time_zone: &str) -> Option<NaiveDate> {
    let zone: Tz = time_zone.parse().unwrap_or(chrono_tz::Europe::Moscow);
    DateTime::from_timestamp_millis(now).map(|t| t.with_timezone(&zone).date_naive())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-03-15T20:59:59.999Z = 23:59:59.999 in Moscow.
    const BEFORE_MOSCOW_MIDNIGHT: Millis = 1_710_536_399_999;

    #[test]
    fn zones_come_from_the_time_zone_database() {
        // 2024-07-01T03:30Z: still June 30 in New York (UTC−4 in summer), July 1 in Almaty.
        let instant: Millis = 1_719_804_600_000;
        assert_eq!(
            local_date(instant, "America/New_York"),
            NaiveDate::from_ymd_opt(2024, 6, 30)
        );
        assert_eq!(
            local_date(instant, "Asia/Almaty"),
            NaiveDate::from_ymd_opt(2024, 7, 1)
        );
        // An unknown zone is the default (Moscow, UTC+3): July 1, 06:30.
        assert_eq!(
            local_date(instant, "Mars/Olympus"),
            NaiveDate::from_ymd_opt(2024, 7, 1)
        );
        assert_eq!(
            local_date(1_719_780_000_000, "Mars/Olympus"),
            local_date(1_719_780_000_000, "Europe/Moscow")
        );
    }

    #[test]
    fn a_moscow_day_ends_at_21_utc() {
        let before = Window::at(BEFORE_MOSCOW_MIDNIGHT, DEFAULT_TIME_ZONE);
        let after = Window::at(BEFORE_MOSCOW_MIDNIGHT + 1, DEFAULT_TIME_ZONE);
        assert_eq!(after.day, before.day + 1);
        assert_eq!(after.month, before.month);
        // In UTC the same two instants are on the same day.
        assert_eq!(
            Window::at(BEFORE_MOSCOW_MIDNIGHT, "UTC"),
            Window::at(BEFORE_MOSCOW_MIDNIGHT + 1, "UTC")
        );
    }

    #[test]
    fn a_moscow_month_ends_at_21_utc_on_its_last_day() {
        // 2024-03-31T21:00:00Z = 2024-04-01T00:00 in Moscow.
        let april_in_moscow: Millis = 1_711_918_800_000;
        let march = Window::at(april_in_moscow - 1, DEFAULT_TIME_ZONE);
        let april = Window::at(april_in_moscow, DEFAULT_TIME_ZONE);
        assert_eq!(april.month, march.month + 1);
        assert_eq!(april.month, 2024 * 12 + 3);
        // December → January moves to the next year's first month.
        let new_year_moscow: Millis = 1_704_056_400_000; // 2023-12-31T21:00Z
        assert_eq!(
            Window::at(new_year_moscow, DEFAULT_TIME_ZONE).month,
            Window::at(new_year_moscow - 1, DEFAULT_TIME_ZONE).month + 1
        );
    }

    #[test]
    fn unknown_zones_use_the_default() {
        assert_eq!(
            DEFAULT_TIME_ZONE,
            jivapay_platform::settings_catalog::default_string("limits.time_zone"),
            "the fallback is the catalogue's default"
        );
        assert_eq!(
            Window::at(BEFORE_MOSCOW_MIDNIGHT + 1, "Mars/Olympus"),
            Window::at(BEFORE_MOSCOW_MIDNIGHT + 1, DEFAULT_TIME_ZONE)
        );
    }

    #[test]
    fn extreme_instants_do_not_panic() {
        let _ = Window::at(Millis::MAX, DEFAULT_TIME_ZONE);
        let _ = Window::at(Millis::MIN, "UTC");
    }
}
