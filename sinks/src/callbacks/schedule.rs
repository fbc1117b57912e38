//! When the next attempt goes out. The schedule is the runtime setting
//! `callbacks.retry_schedule_secs` (default: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h,
//! 10 h): element *k* is the delay before attempt *k + 1*, so after the last element's attempt a
//! delivery is `failed`. Every delay but an immediate one gets ±10 % jitter, so a merchant who
//! comes back is not hit by every retry at the same second. A `Retry-After` answer (seconds or
//! an HTTP date) can only postpone the next attempt, never bring it forward, and by at most
//! [`RETRY_AFTER_MAX`].

use chrono::{DateTime, Utc};
use rand::Rng;
use std::time::Duration;

/// The longest wait a `Retry-After` can ask for.
pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(6 * 3600);
/// Jitter, as a fraction of the delay.
pub const JITTER: f64 = 0.1;

/// The delay before the next attempt after `attempts_made` attempts of the current schedule,
/// or `None` when the schedule is used up.
pub fn next_delay(
    schedule: &[u64],
    attempts_made: usize,
    retry_after: Option<Duration>,
    rng: &mut impl Rng,
) -> Option<Duration> {
    let base = Duration::from_secs(*schedule.get(attempts_made)?);
    let jittered = if base.is_zero() {
        base
    } else {
        base.mul_f64(1.0 + rng.gen_range(-JITTER..=JITTER))
    };
    Some(match retry_after {
        Some(asked) => jittered.max(asked.min(RETRY_AFTER_MAX)),
        None => jittered,
    })
}

/// A `Retry-After` header: delay-seconds or an HTTP date (relative to `now`).
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    (at - now).to_std().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn the_schedule_is_followed_with_bounded_jitter_and_then_ends() {
        // The catalogue's default: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
        const DEFAULT_SCHEDULE: [u64; 8] = [0, 5, 300, 1800, 7200, 18000, 36000, 36000];
        assert_eq!(
            jivapay_platform::settings_catalog::default_seconds_list(
                "callbacks.retry_schedule_secs"
            ),
            DEFAULT_SCHEDULE
        );
        let mut rng = StdRng::seed_from_u64(7);
        assert_eq!(
            next_delay(&DEFAULT_SCHEDULE, 0, None, &mut rng),
            Some(Duration::ZERO)
        );
        for (i, secs) in DEFAULT_SCHEDULE.iter().enumerate().skip(1) {
            for _ in 0..50 {
                let d = next_delay(&DEFAULT_SCHEDULE, i, None, &mut rng).unwrap();
                let base = *secs as f64;
                assert!(
                    d.as_secs_f64() >= base * 0.9 - 1e-6 && d.as_secs_f64() <= base * 1.1 + 1e-6
                );
            }
        }
        assert_eq!(next_delay(&DEFAULT_SCHEDULE, 8, None, &mut rng), None);
    }

    #[test]
    fn retry_after_only_postpones_and_is_capped() {
        let mut rng = StdRng::seed_from_u64(1);
        let schedule = [0, 10];
        let d = |ra| next_delay(&schedule, 1, Some(ra), &mut StdRng::seed_from_u64(1)).unwrap();
        let plain = next_delay(&schedule, 1, None, &mut rng).unwrap();
        assert_eq!(
            d(Duration::from_secs(1)),
            plain,
            "never earlier than the schedule"
        );
        assert_eq!(d(Duration::from_secs(120)), Duration::from_secs(120));
        assert_eq!(d(Duration::from_secs(10 * 86400)), RETRY_AFTER_MAX);
        let now = DateTime::parse_from_rfc3339("2026-11-26T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_retry_after(" 30 ", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Thu, 26 Nov 2026 10:01:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
