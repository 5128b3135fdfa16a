//! Time as the fusion core sees it: UTC nanoseconds passed in by the caller, never read from a clock.

use serde::{Deserialize, Serialize};

/// A point in time: nanoseconds since the Unix epoch, UTC. Every measurement carries the time it
/// was captured at; the core never asks a clock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// From nanoseconds since the Unix epoch.
    pub const fn from_nanos(ns: i64) -> Self {
        Timestamp(ns)
    }

    /// From seconds since the Unix epoch, rounded to the nearest nanosecond.
    pub fn from_secs_f64(s: f64) -> Self {
        Timestamp((s * 1e9).round() as i64)
    }

    /// Nanoseconds since the Unix epoch.
    pub const fn as_nanos(self) -> i64 {
        self.0
    }

    /// Seconds since the Unix epoch.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 * 1e-9
    }

    /// `self - earlier` [s]; negative when `earlier` is later.
    pub fn secs_since(self, earlier: Timestamp) -> f64 {
        (self.0 - earlier.0) as f64 * 1e-9
    }

    /// This time shifted by `dt_s` seconds (rounded to the nanosecond, saturating).
    pub fn add_secs(self, dt_s: f64) -> Self {
        Timestamp(self.0.saturating_add((dt_s * 1e9).round() as i64))
    }

    /// This time shifted by `dt_ns` nanoseconds (saturating).
    pub const fn add_nanos(self, dt_ns: i64) -> Self {
        Timestamp(self.0.saturating_add(dt_ns))
    }
}

/// Year, month (1..=12) and day (1..=31) of a day count since 1970-01-01 (proleptic Gregorian
/// calendar, Howard Hinnant's days-to-civil algorithm).
pub fn civil_from_days(days: i64) -> (i32, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (i32::try_from(year).unwrap_or(1970), month as u8, day as u8)
}

impl Timestamp {
    /// `yyyymmddThhmmssZ` (UTC, whole seconds), e.g. for file names.
    pub fn utc_stamp(self) -> String {
        let secs = self.0.div_euclid(1_000_000_000);
        let rem = secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
        format!("{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:09}s", self.0.div_euclid(1_000_000_000), self.0.rem_euclid(1_000_000_000))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_and_shifts() {
        let t = Timestamp::from_nanos(1_700_000_000_000_000_000);
        let later = t.add_secs(0.1);
        assert_eq!(later.as_nanos() - t.as_nanos(), 100_000_000);
        assert!((later.secs_since(t) - 0.1).abs() < 1e-12);
        assert!((t.secs_since(later) + 0.1).abs() < 1e-12);
        assert_eq!(t.add_nanos(5).as_nanos(), t.as_nanos() + 5);
        assert_eq!(Timestamp::from_nanos(1_500_000_000).to_string(), "1.500000000s");
    }

    #[test]
    fn calendar_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_786), (2026, 11, 29));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(Timestamp::from_nanos(1_795_940_530_000_000_000).utc_stamp(), "20261129T082210Z");
    }
}
