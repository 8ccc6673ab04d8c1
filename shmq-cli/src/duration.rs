//! Durations on the command line: `500ms`, `30s`, `5m`, `2h` (and `0`).

use std::time::Duration;

/// Parse a whole number followed by a unit: ms, s, m or h. `0` needs no unit.
pub fn parse(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    let (num, unit) = t.split_at(digits);
    if num.is_empty() {
        return Err(format!(
            "{text:?} is not a duration; write it like 500ms, 30s, 5m or 2h"
        ));
    }
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{text:?}: the number is too large"))?;
    let ms_per = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60 * 1000,
        "h" => 3600 * 1000,
        "" if n == 0 => 1,
        "" => {
            return Err(format!(
                "{text:?} has no unit; write {n}ms, {n}s, {n}m or {n}h"
            ))
        }
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?}; use ms, s, m or h"
            ))
        }
    };
    let ms = n
        .checked_mul(ms_per)
        .ok_or_else(|| format!("{text:?}: the duration is too long"))?;
    Ok(Duration::from_millis(ms))
}

/// A short human form: `850ms`, `1.2s`, `5m03s`, `2h05m`.
pub fn human_ms(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms}ms"),
        1000..=59_999 if ms % 1000 == 0 => format!("{}s", ms / 1000),
        1000..=59_999 => format!("{}.{}s", ms / 1000, ms % 1000 / 100),
        60_000..=3_599_999 => format!("{}m{:02}s", ms / 60_000, ms % 60_000 / 1000),
        _ => format!("{}h{:02}m", ms / 3_600_000, ms % 3_600_000 / 60_000),
    }
}

/// `time` (host clock ms) relative to `now`: `in 1.2s`, `3m05s ago`, `now`.
/// Milliseconds since a wall-clock time (0 if it is in the future).
pub fn ago_ms(t: std::time::SystemTime) -> u64 {
    t.elapsed()
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A wall-clock time as milliseconds since the Unix epoch.
pub fn unix_ms(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

pub fn relative(time: u64, now: u64) -> String {
    if time > now {
        format!("in {}", human_ms(time - now))
    } else if time == now {
        "now".into()
    } else {
        format!("{} ago", human_ms(now - time))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_what_is_not_a_duration() {
        for bad in [
            "",
            "s",
            "5",
            "5x",
            "1.5s",
            "-1s",
            "99999999999999999999s",
            "5 s",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
        assert!(parse("18446744073709551615h").is_err(), "overflow");
    }

    #[test]
    fn formats_for_humans() {
        assert_eq!(human_ms(850), "850ms");
        assert_eq!(human_ms(1234), "1.2s");
        assert_eq!(human_ms(30_000), "30s");
        assert_eq!(human_ms(303_000), "5m03s");
        assert_eq!(human_ms(7_500_000), "2h05m");
        assert_eq!(relative(10, 5), "in 5ms");
        assert_eq!(relative(5, 10), "5ms ago");
    }
}
