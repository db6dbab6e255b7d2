//! Timestamps: output as ISO-8601 UTC with exactly three fractional digits and `Z`; input as
//! RFC 3339 with an explicit offset (spec README §2 "Timestamps").

use chrono::{DateTime, Datelike, NaiveDate, SubsecRound, Timelike, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A UTC instant with millisecond precision that serialises as `2026-03-01T09:30:00.123Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    /// The current instant, truncated to milliseconds.
    pub fn now() -> Self {
        Self::from_datetime(Utc::now())
    }

    /// Wraps a chrono instant, truncated to milliseconds.
    pub fn from_datetime(at: DateTime<Utc>) -> Self {
        Self(at.trunc_subsecs(3))
    }

    /// Milliseconds since the Unix epoch.
    pub fn from_millis(ms: i64) -> Option<Self> {
        DateTime::from_timestamp_millis(ms).map(Self)
    }

    /// The wrapped chrono value.
    pub fn as_datetime(&self) -> DateTime<Utc> {
        self.0
    }

    /// Seconds since the Unix epoch.
    pub fn unix_seconds(&self) -> i64 {
        self.0.timestamp()
    }

    /// Milliseconds since the Unix epoch.
    pub fn unix_millis(&self) -> i64 {
        self.0.timestamp_millis()
    }

    /// Parses RFC 3339 with an explicit offset; a timestamp without one is rejected.
    pub fn parse_rfc3339(raw: &str) -> Option<Self> {
        DateTime::parse_from_rfc3339(raw.trim())
            .ok()
            .map(|d| Self::from_datetime(d.with_timezone(&Utc)))
    }

    /// Parses a query date: RFC 3339 with offset, or `YYYY-MM-DD` (midnight UTC).
    pub fn parse_query_date(raw: &str) -> Option<Self> {
        Self::parse_rfc3339(raw).or_else(|| {
            NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|d| Self(d.and_utc()))
        })
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Written digit by digit: every stored record carries several timestamps, and chrono's
        // format strings are parsed again on each call (a tenth of a campaign fan-out's CPU).
        let d = self.0;
        let (year, millis) = (d.year(), d.timestamp_subsec_millis());
        if !(0..=9999).contains(&year) || millis > 999 {
            return write!(f, "{}", d.format("%Y-%m-%dT%H:%M:%S%.3fZ"));
        }
        let mut out = *b"0000-00-00T00:00:00.000Z";
        let mut put = |at: usize, width: usize, mut value: u32| {
            for i in (at..at + width).rev() {
                out[i] = b'0' + (value % 10) as u8;
                value /= 10;
            }
        };
        put(0, 4, year as u32);
        put(5, 2, d.month());
        put(8, 2, d.day());
        put(11, 2, d.hour());
        put(14, 2, d.minute());
        put(17, 2, d.second());
        put(20, 3, millis);
        f.write_str(std::str::from_utf8(&out).expect("ASCII digits"))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse_rfc3339(&raw).ok_or_else(|| serde::de::Error::custom("invalid timestamp"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digit_writer_matches_the_format_string_everywhere() {
        let mut ms: i64 = -62_167_219_200_000; // 0000-01-01
        let end: i64 = 253_402_300_799_999; // 9999-12-31T23:59:59.999
        let step = 7_777_777_777_777; // odd, so every field runs through its values
        while ms <= end {
            let t = Timestamp::from_millis(ms).unwrap();
            assert_eq!(
                t.to_string(),
                t.0.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
            );
            ms += step / 1_000 + 1;
            if ms > end {
                break;
            }
        }
        for ms in [0, 1, 999, 1_000, 1_764_950_400_123, end] {
            let t = Timestamp::from_millis(ms).unwrap();
            assert_eq!(
                t.to_string(),
                t.0.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
            );
        }
        // Outside four-digit years the format string writes them.
        let far = Timestamp::from_millis(end + 1).unwrap();
        assert_eq!(
            far.to_string(),
            far.0.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
        );
    }

    #[test]
    fn output_has_exactly_three_fraction_digits_and_z() {
        let t = Timestamp::parse_rfc3339("2026-03-01T10:30:00.1234+01:00").unwrap();
        assert_eq!(t.to_string(), "2026-03-01T09:30:00.123Z");
        let whole = Timestamp::parse_rfc3339("2026-03-01T09:30:00Z").unwrap();
        assert_eq!(whole.to_string(), "2026-03-01T09:30:00.000Z");
    }

    #[test]
    fn timestamps_without_offset_are_rejected() {
        assert!(Timestamp::parse_rfc3339("2026-03-01T09:30:00").is_none());
    }

    #[test]
    fn query_dates_accept_plain_days() {
        let t = Timestamp::parse_query_date("2026-03-01").unwrap();
        assert_eq!(t.to_string(), "2026-03-01T00:00:00.000Z");
    }
}
