//! Timestamps are i64 milliseconds since the Unix epoch inside the engine and RFC 3339 with
//! milliseconds in UTC (`2026-11-24T09:00:00.000Z`) in JSON.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// RFC 3339 UTC with milliseconds: always 24 ASCII bytes.
type Formatted = [u8; 24];

/// Format epoch milliseconds as RFC 3339 UTC with milliseconds.
pub fn format_ms(ms: i64) -> String {
    let out = format_ms_bytes(ms);
    as_str(&out).to_string()
}

/// The text of a [`Formatted`] (ASCII digits and separators only).
fn as_str(out: &Formatted) -> &str {
    std::str::from_utf8(out).unwrap_or("0000-01-01T00:00:00.000Z")
}

/// [`format_ms`] on the stack: the serde adapters below write it without allocating.
fn format_ms_bytes(ms: i64) -> Formatted {
    let dt = OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let Ok(year) = u32::try_from(dt.year()).map(|y| y.min(9999)) else {
        return *b"0000-01-01T00:00:00.000Z";
    };
    // Digits written into a fixed template rather than `format!` with widths (or `time`'s
    // format descriptions): every record carries several timestamps, and `format!` was ~4% of
    // `wf dev`'s CPU under webhook load (perf, scripts/bench-webhooks).
    let mut out = *b"0000-00-00T00:00:00.000Z";
    for (at, width, value) in [
        (0, 4, year),
        (5, 2, dt.month() as u32),
        (8, 2, dt.day() as u32),
        (11, 2, dt.hour() as u32),
        (14, 2, dt.minute() as u32),
        (17, 2, dt.second() as u32),
        (20, 3, dt.millisecond() as u32),
    ] {
        let mut n = value;
        for digit in out[at..at + width].iter_mut().rev() {
            *digit = b'0' + (n % 10) as u8;
            n /= 10;
        }
    }
    out
}

/// Parse an RFC 3339 timestamp into epoch milliseconds.
pub fn parse_ms(s: &str) -> Option<i64> {
    let dt = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    Some((dt.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// serde adapter: `i64` ms <-> RFC 3339 string.
pub mod rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(super::as_str(&super::format_ms_bytes(*ms)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_ms(&s).ok_or_else(|| serde::de::Error::custom(format!("bad timestamp {s:?}")))
    }
}

/// serde adapter: `Option<i64>` ms <-> RFC 3339 string or null.
pub mod rfc3339_opt {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ms: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        match ms {
            Some(ms) => s.serialize_str(super::as_str(&super::format_ms_bytes(*ms))),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) => super::parse_ms(&s)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom(format!("bad timestamp {s:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_milliseconds() {
        let ms = 1_795_510_800_123;
        let s = format_ms(ms);
        assert_eq!(s, "2026-11-24T09:00:00.123Z");
        assert_eq!(parse_ms(&s), Some(ms));
    }

    #[test]
    fn formats_as_the_padded_rfc3339_of_time() {
        for ms in [
            0,
            1,
            -1,
            -86_400_001,
            951_782_400_000,     // 2000-02-29
            1_798_761_599_999,   // 2026-12-31T23:59:59.999
            253_402_300_799_999, // 9999-12-31T23:59:59.999
            -62_135_596_800_000, // 0001-01-01
        ] {
            let dt = OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).unwrap();
            let expected = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                dt.year(),
                dt.month() as u8,
                dt.day(),
                dt.hour(),
                dt.minute(),
                dt.second(),
                dt.millisecond()
            );
            assert_eq!(format_ms(ms), expected, "{ms}");
            assert_eq!(parse_ms(&expected), Some(ms), "{ms}");
        }
    }
}
