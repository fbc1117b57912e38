//! Calendar windows of the requisite limits: daily and monthly counters reset at local
//! midnight in the time zone of the `limits.time_zone` setting.
//!
//! Only [`local_date`] knows about time zones. It uses fixed offsets for now (Moscow has had
//! no daylight saving time since 2014); with the `chrono-tz` crate it becomes a real zone
//! lookup and nothing else changes.

use crate::core::Millis;
use chrono::{DateTime, Datelike, NaiveDate};
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
    let offset_ms = i64::from(fixed_offset_secs(time_zone)) * 1000;
    DateTime::from_timestamp_millis(now.checked_add(offset_ms)?).map(|t| t.date_naive())
}

/// UTC offsets of the zones known without a time-zone database.
fn fixed_offset_secs(time_zone: &str) -> i32 {
    match time_zone {
        "UTC" | "Etc/UTC" | "GMT" | "Etc/GMT" | "Z" => 0,
        // "Europe/Moscow" and anything unknown.
        _ => 3 * 3600,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-03-15T20:59:59.999Z = 23:59:59.999 in Moscow.
    const BEFORE_MOSCOW_MIDNIGHT: Millis = 1_710_536_399_999;

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
