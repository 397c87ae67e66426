//! Wall-clock time and the little UTC calendar arithmetic the bench needs.
//!
//! Latencies inside one process use `Instant` (monotonic). Only quantities that cross the
//! broker use the wall clock: the born timestamp in the send header, the microsecond stamp
//! in the message body, and the store timestamp of pulled records. The calendar helpers
//! give the start of the month for UNIQ_KEY (Java uses the local zone; UTC is as unique)
//! and the ISO-8601 date of a report, without a date crate.

use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch.
pub fn now_us() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_micros()).unwrap_or(i64::MAX)
}

/// Milliseconds since the Unix epoch (Java `System.currentTimeMillis()`).
pub fn now_ms() -> i64 {
    now_us() / 1000
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    assert!((1..=12).contains(&month) && (1..=31).contains(&day));
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let month_shifted = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * month_shifted + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The (year, month, day) of a day count since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_shifted = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_shifted + 2) / 5 + 1) as u32;
    let month = if month_shifted < 10 {
        month_shifted + 3
    } else {
        month_shifted - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Milliseconds since the epoch of 00:00 UTC on the first day of the month holding `ms`.
pub fn month_start_ms(ms: i64) -> i64 {
    let (year, month, _) = civil_from_days(ms.div_euclid(86_400_000));
    days_from_civil(year, month, 1) * 86_400_000
}

/// `ms` as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn iso8601_utc(ms: i64) -> String {
    let (year, month, day) = civil_from_days(ms.div_euclid(86_400_000));
    let secs_of_day = ms.rem_euclid(86_400_000) / 1000;
    let (hour, minute, second) = (secs_of_day / 3600, secs_of_day / 60 % 60, secs_of_day % 60);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_round_trips() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
        for days in (-800_000..800_000).step_by(997) {
            let (year, month, day) = civil_from_days(days);
            assert_eq!(days_from_civil(year, month, day), days);
        }
    }

    #[test]
    fn month_start_and_iso_date() {
        // 2024-02-29T13:14:15.678Z
        let ms = days_from_civil(2024, 2, 29) * 86_400_000 + 47_655_678;
        assert_eq!(iso8601_utc(ms), "2024-02-29T13:14:15Z");
        assert_eq!(month_start_ms(ms), days_from_civil(2024, 2, 1) * 86_400_000);
        assert_eq!(month_start_ms(0), 0);
        assert!(now_ms() > days_from_civil(2024, 1, 1) * 86_400_000);
    }
}
