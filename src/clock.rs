//! Wall-clock timestamps as RFC 3339 strings in UTC with microseconds, the form every
//! event and envelope carries.

use std::time::{SystemTime, UNIX_EPOCH};
use time::OffsetDateTime;

/// Microseconds since the Unix epoch.
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Now, as `2026-11-23T14:17:00.123456Z`.
pub fn now_rfc3339() -> String {
    rfc3339_micros(now_micros())
}

/// Formats microseconds since the epoch as RFC 3339 in UTC.
pub fn rfc3339_micros(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let Ok(t) = OffsetDateTime::from_unix_timestamp(secs) else {
        return "1970-01-01T00:00:00.000000Z".to_string();
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        frac
    )
}

/// Parses an RFC 3339 timestamp into microseconds since the epoch.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    Some((t.unix_timestamp_nanos() / 1000) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_back_the_same_instant() {
        let micros = 1_795_000_000_123_456;
        let s = rfc3339_micros(micros);
        assert_eq!(s, "2026-11-18T11:06:40.123456Z");
        assert_eq!(parse_rfc3339(&s), Some(micros));
    }
}
