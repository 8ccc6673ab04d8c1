//! Durations on the command line: a number and a unit (ms, s, m, h),
//! decimals and compounds allowed (`250ms`, `1.5s`, `1m30s`, `0`), and the
//! range each flag accepts.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Parse a duration: one or more `<number><unit>` parts, units ms, s, m, h;
/// a part's number may have a decimal fraction; `0` needs no unit. Exact to
/// the nanosecond; longer than 2^64 ms is an error.
pub fn parse(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let form = "write it like 250ms, 1.5s, 1m30s or 2h";
    if t.is_empty() {
        return Err(format!("an empty duration; {form}"));
    }
    if t.bytes().all(|b| b == b'0') {
        return Ok(Duration::ZERO);
    }
    let mut rest = t;
    let mut nanos: u128 = 0;
    while !rest.is_empty() {
        let num_len = rest
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        let (num, after) = rest.split_at(num_len);
        let unit_len = after.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, after) = after.split_at(unit_len);
        if num.is_empty() || num.starts_with('.') || num.ends_with('.') {
            return Err(format!("{text:?} is not a duration; {form}"));
        }
        let per: u128 = match unit {
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(format!("{text:?}: {num} has no unit; {form}")),
            _ => {
                return Err(format!(
                    "{text:?}: unknown unit {unit:?}; use ms, s, m or h"
                ))
            }
        };
        let (whole, frac) = num.split_once('.').unwrap_or((num, ""));
        if frac.contains('.') {
            return Err(format!("{text:?} is not a duration; {form}"));
        }
        let too_long = || format!("{text:?}: the duration is too long");
        let whole: u128 = whole.parse().map_err(|_| too_long())?;
        let mut part = whole.checked_mul(per).ok_or_else(too_long)?;
        // The fraction, digit by digit, exact to the nanosecond.
        let mut scale = per;
        for d in frac.bytes() {
            scale /= 10;
            if scale == 0 && d != b'0' {
                return Err(format!("{text:?}: finer than a nanosecond"));
            }
            part += u128::from(d - b'0') * scale;
        }
        nanos = nanos.checked_add(part).ok_or_else(too_long)?;
        rest = after;
    }
    if nanos / 1_000_000 > u128::from(u64::MAX) {
        return Err(format!("{text:?}: the duration is too long"));
    }
    let secs = (nanos / 1_000_000_000) as u64;
    Ok(Duration::new(secs, (nanos % 1_000_000_000) as u32))
}

/// 12 hours: the longest delay and lease (`shmq::MAX_DELAY`, `MAX_LEASE`).
pub const MAX: Duration = shmq::MAX_LEASE;

fn within(text: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    let d = parse(text)?;
    if d < min || d > max {
        return Err(format!(
            "{} is out of range; it must be {} ..= {}",
            text.trim(),
            human(min),
            human(max)
        ));
    }
    if d.subsec_nanos() % 1_000_000 != 0 {
        return Err(format!(
            "{}: the queue counts whole milliseconds; round it",
            text.trim()
        ));
    }
    Ok(d)
}

/// A lease length: visibility timeout, extension, claim timeout: 1ms ..= 12h.
pub fn lease(text: &str) -> Result<Duration, String> {
    within(text, Duration::from_millis(1), MAX)
}

/// A delay (send, nack): 0 ..= 12h.
pub fn delay(text: &str) -> Result<Duration, String> {
    within(text, Duration::ZERO, MAX)
}

/// How long to wait for a message: 0 ..= 12h.
pub fn wait(text: &str) -> Result<Duration, String> {
    within(text, Duration::ZERO, MAX)
}

/// A refresh interval: 10ms ..= 1h.
pub fn interval(text: &str) -> Result<Duration, String> {
    within(text, Duration::from_millis(10), Duration::from_secs(3600))
}

/// A duration in the form `parse` reads: `12h`, `1m30s`, `1.5s`, `250ms`.
pub fn human(d: Duration) -> String {
    let ms = millis(d);
    if ms == 0 {
        return "0".into();
    }
    let (h, m, s, r) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    let mut out = String::new();
    if h > 0 {
        out += &format!("{h}h");
    }
    if m > 0 {
        out += &format!("{m}m");
    }
    if s > 0 || (r > 0 && ms >= 1000) {
        if r > 0 && h == 0 && m == 0 {
            let frac = format!("{r:03}");
            out += &format!("{s}.{}s", frac.trim_end_matches('0'));
            return out;
        }
        out += &format!("{s}s");
    }
    if r > 0 && (h > 0 || m > 0 || s == 0) {
        out += &format!("{r}ms");
    }
    out
}

/// A short human form of milliseconds: `850ms`, `1.2s`, `5m03s`, `2h05m`.
pub fn human_ms(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms}ms"),
        1000..=59_999 if ms % 1000 == 0 => format!("{}s", ms / 1000),
        1000..=59_999 => format!("{}.{}s", ms / 1000, ms % 1000 / 100),
        60_000..=3_599_999 => format!("{}m{:02}s", ms / 60_000, ms % 60_000 / 1000),
        _ => format!("{}h{:02}m", ms / 3_600_000, ms % 3_600_000 / 60_000),
    }
}

/// A duration in whole milliseconds, saturating instead of truncating.
pub fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Milliseconds since a wall-clock time (0 if it is in the future).
pub fn ago_ms(t: SystemTime) -> u64 {
    t.elapsed()
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A wall-clock time as milliseconds since the Unix epoch.
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The wall-clock time of a CLOCK_MONOTONIC reading in ms (as the queue
/// file stores times), in Unix milliseconds.
pub fn mono_to_unix_ms(mono: u64) -> u64 {
    let now_mono = shmq::now_ms();
    let now = unix_ms(SystemTime::now());
    if mono <= now_mono {
        now.saturating_sub(now_mono - mono)
    } else {
        now.saturating_add(mono - now_mono)
    }
}

/// `time` (CLOCK_MONOTONIC ms) relative to `now`: `in 1.2s`, `3m05s ago`,
/// `now`.
pub fn relative(time: u64, now: u64) -> String {
    if time > now {
        format!("in {}", human_ms(time - now))
    } else if time == now {
        "now".into()
    } else {
        format!("{} ago", human_ms(now - time))
    }
}

/// Unix milliseconds as RFC 3339 UTC with milliseconds:
/// `2026-12-01T15:04:05.123Z`.
pub fn rfc3339(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let days = (secs / 86_400) as i64;
    let sod = secs % 86_400;
    // Days to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60,
        unix_ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_decimals_and_compounds() {
        let ms = Duration::from_millis;
        assert_eq!(parse("500ms"), Ok(ms(500)));
        assert_eq!(parse("30s"), Ok(ms(30_000)));
        assert_eq!(parse("5m"), Ok(ms(300_000)));
        assert_eq!(parse("2h"), Ok(ms(7_200_000)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
        assert_eq!(parse("1.5s"), Ok(ms(1500)));
        assert_eq!(parse("1m30s"), Ok(ms(90_000)));
        assert_eq!(parse("1h2m3s4ms"), Ok(ms(3_723_004)));
        assert_eq!(parse("0.25h"), Ok(ms(900_000)));
        assert_eq!(parse("1.5ms"), Ok(Duration::from_micros(1500)));
    }

    #[test]
    fn rejects_what_is_not_a_duration() {
        for bad in [
            "",
            "s",
            "5",
            "5x",
            "1.s",
            ".5s",
            "1..5s",
            "1.2.3s",
            "-1s",
            "5 s",
            "1m30",
            "99999999999999999999999999999999999999999h",
            "18446744073709551615h",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn ranges_are_errors_that_name_the_range() {
        assert_eq!(
            lease("13h"),
            Err("13h is out of range; it must be 1ms ..= 12h".into())
        );
        assert_eq!(lease("12h"), Ok(MAX));
        assert!(lease("0").is_err());
        assert_eq!(delay("0"), Ok(Duration::ZERO));
        assert!(delay("18446744073709551615ms").is_err());
        assert!(wait("1.5s").is_ok());
        assert!(wait("1.0005s").is_err(), "not whole milliseconds");
        assert!(interval("1ms").is_err());
    }

    #[test]
    fn formats_for_humans() {
        assert_eq!(human(Duration::from_millis(1)), "1ms");
        assert_eq!(human(Duration::from_millis(1500)), "1.5s");
        assert_eq!(human(Duration::from_secs(90)), "1m30s");
        assert_eq!(human(MAX), "12h");
        assert_eq!(human(Duration::from_millis(3_723_004)), "1h2m3s4ms");
        for d in [1, 10, 999, 1000, 1001, 61_001, 3_600_000, 43_200_000] {
            let d = Duration::from_millis(d);
            assert_eq!(parse(&human(d)), Ok(d), "{}", human(d));
        }
        assert_eq!(human_ms(850), "850ms");
        assert_eq!(human_ms(1234), "1.2s");
        assert_eq!(human_ms(303_000), "5m03s");
        assert_eq!(human_ms(7_500_000), "2h05m");
        assert_eq!(relative(10, 5), "in 5ms");
        assert_eq!(relative(5, 10), "5ms ago");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339(1_796_137_406_234), "2026-12-01T15:03:26.234Z");
    }
}
