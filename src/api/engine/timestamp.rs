//! Docker's time values in queries (`since`, `until` of events; `until` of image filters and prune), as moby's
//! `api/types/time.GetTimestamp` reads them: a Go duration before now (`24h`, `1h30m`, `1.5s`), an RFC 3339
//! date or date-time (UTC when it has no zone; moby takes local time), or unix `seconds[.nanoseconds]`.

/// Nanoseconds of a Go duration string (`300ms`, `-1.5h`, `2h45m`); `None` if it is not one.
pub fn go_duration(s: &str) -> Option<i128> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        if num_len == 0 {
            return None;
        }
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += n * scale;
        rest = &rest[unit_len..];
    }
    Some(if neg { -(total as i128) } else { total as i128 })
}

/// Unix nanoseconds of a time value, relative to `now` (unix nanoseconds) for durations.
pub fn parse(value: &str, now: i64) -> Result<i64, String> {
    let v = value.trim();
    // "0" is the epoch, not a zero duration (as in moby)
    if let Some(d) = go_duration(v).filter(|_| v != "0") {
        return Ok((now as i128 - d) as i64);
    }
    if let Some(t) = rfc3339ish(v) {
        return Ok(t);
    }
    // unix seconds, optionally with up to 9 digits of nanoseconds
    let (secs, frac) = v.split_once('.').unwrap_or((v, ""));
    let ok = !secs.is_empty()
        && secs.trim_start_matches('-').bytes().all(|b| b.is_ascii_digit())
        && frac.len() <= 9
        && frac.bytes().all(|b| b.is_ascii_digit());
    if ok {
        let s: i64 = secs.parse().map_err(|_| format!("invalid timestamp {value:?}"))?;
        let ns: i64 = if frac.is_empty() {
            0
        } else {
            format!("{frac:0<9}").parse().unwrap_or(0)
        };
        return Ok(s.saturating_mul(1_000_000_000).saturating_add(ns));
    }
    Err(format!("failed to parse value as time or duration: {value:?}"))
}

/// RFC 3339 and the shorter forms moby accepts: `2006-01-02`, `2006-01-02T15:04`, `2006-01-02T15:04:05`, each
/// with optional fraction; without a zone, UTC.
fn rfc3339ish(v: &str) -> Option<i64> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(v, &Rfc3339) {
        return Some(t.unix_timestamp_nanos() as i64);
    }
    // moby reads a zone-less time as local time; a static binary cannot read the NAS's zone safely from a
    // threaded process, so it is taken as UTC (the CLI sends unix seconds anyway).
    let local = time::UtcOffset::UTC;
    let forms: [&[time::format_description::FormatItem<'_>]; 4] = [
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond]"),
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]"),
        time::macros::format_description!("[year]-[month]-[day]"),
    ];
    for (i, f) in forms.iter().enumerate() {
        if i == 3 {
            if let Ok(d) = time::Date::parse(v, f) {
                return Some(d.midnight().assume_offset(local).unix_timestamp_nanos() as i64);
            }
        } else if let Ok(t) = time::PrimitiveDateTime::parse(v, f) {
            return Some(t.assume_offset(local).unix_timestamp_nanos() as i64);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let now = 1_700_000_000_000_000_000i64;
        assert_eq!(parse("24h", now).unwrap(), now - 24 * 3600 * 1_000_000_000);
        assert_eq!(parse("1h30m", now).unwrap(), now - 5400 * 1_000_000_000);
        assert_eq!(parse("1.5s", now).unwrap(), now - 1_500_000_000);
        assert_eq!(
            parse("-10m", now).unwrap(),
            now + 600 * 1_000_000_000,
            "a negative duration is later"
        );
        assert_eq!(parse("1795385052", now).unwrap(), 1_795_385_052_000_000_000);
        assert_eq!(parse("1795385052.5", now).unwrap(), 1_795_385_052_500_000_000);
        assert_eq!(parse("2023-11-14T22:13:20Z", now).unwrap(), now);
        assert_eq!(parse("2023-11-14T23:13:20+01:00", now).unwrap(), now);
        for bad in ["soon", "1x", "", "2023-13-40", "1.2.3"] {
            assert!(parse(bad, now).is_err(), "{bad}");
        }
        assert!(parse("2023-11-14", now).is_ok());
        assert!(parse("2023-11-14T22:13", now).is_ok());
        assert_eq!(go_duration("0"), Some(0));
        assert_eq!(parse("0", now).unwrap(), 0, "the epoch");
        assert_eq!(go_duration("300ms"), Some(300_000_000));
    }
}
