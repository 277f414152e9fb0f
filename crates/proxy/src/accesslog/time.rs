//! `%START_TIME%` rendering: Envoy's default (`2024-01-11T21:09:42.835Z`, UTC, milliseconds)
//! and the strftime subset custom formats use (`%START_TIME(%Y-%m-%dT%H:%M:%S.%3fZ)%`).

use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// Broken-down UTC time.
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    nanos: u32,
    epoch_seconds: i64,
}

fn civil(t: SystemTime) -> Civil {
    let (secs, nanos) = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            d.subsec_nanos(),
        ),
        Err(e) => {
            // Before 1970: count back, keeping nanos non-negative.
            let d = e.duration();
            let s = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            if d.subsec_nanos() == 0 {
                (-s, 0)
            } else {
                (-s - 1, 1_000_000_000 - d.subsec_nanos())
            }
        }
    };
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    Civil {
        year,
        month: u32::try_from(month).unwrap_or(1),
        day: u32::try_from(day).unwrap_or(1),
        hour: u32::try_from(rem / 3600).unwrap_or(0),
        minute: u32::try_from(rem % 3600 / 60).unwrap_or(0),
        second: u32::try_from(rem % 60).unwrap_or(0),
        nanos,
        epoch_seconds: secs,
    }
}

/// Renders `t` in UTC: Envoy's default `YYYY-MM-DDTHH:MM:SS.mmmZ` when `format` is `None`,
/// else the strftime subset `%Y %y %m %d %H %M %S %s %F %T %z %Z %f %3f %6f %9f %E3S %E6S %%`
/// (anything else is copied as is).
pub fn format_start_time(t: SystemTime, format: Option<&str>) -> String {
    let c = civil(t);
    let Some(format) = format else {
        return format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            c.year,
            c.month,
            c.day,
            c.hour,
            c.minute,
            c.second,
            c.nanos / 1_000_000
        );
    };
    let mut out = String::with_capacity(format.len() + 16);
    let mut chars = format.chars().peekable();
    while let Some(ch) = chars.next() {
        if ch != '%' {
            out.push(ch);
            continue;
        }
        let Some(spec) = chars.next() else {
            out.push('%');
            break;
        };
        // Writing to a String cannot fail.
        let _ = match spec {
            'Y' => write!(out, "{:04}", c.year),
            'y' => write!(out, "{:02}", c.year.rem_euclid(100)),
            'm' => write!(out, "{:02}", c.month),
            'd' => write!(out, "{:02}", c.day),
            'H' => write!(out, "{:02}", c.hour),
            'M' => write!(out, "{:02}", c.minute),
            'S' => write!(out, "{:02}", c.second),
            's' => write!(out, "{}", c.epoch_seconds),
            'F' => write!(out, "{:04}-{:02}-{:02}", c.year, c.month, c.day),
            'T' => write!(out, "{:02}:{:02}:{:02}", c.hour, c.minute, c.second),
            'z' => write!(out, "+0000"),
            'Z' => write!(out, "UTC"),
            'f' => write!(out, "{:09}", c.nanos),
            '%' => write!(out, "%"),
            '3' | '6' | '9' if chars.peek() == Some(&'f') => {
                chars.next();
                write_fraction(&mut out, c.nanos, spec)
            }
            'E' => {
                let digits = chars.next();
                if matches!(digits, Some('3' | '6' | '9')) && chars.peek() == Some(&'S') {
                    chars.next();
                    let _ = write!(out, "{:02}.", c.second);
                    write_fraction(&mut out, c.nanos, digits.unwrap_or('3'))
                } else {
                    out.push_str("%E");
                    if let Some(d) = digits {
                        out.push(d);
                    }
                    Ok(())
                }
            }
            other => {
                out.push('%');
                out.push(other);
                Ok(())
            }
        };
    }
    out
}

fn write_fraction(out: &mut String, nanos: u32, digits: char) -> std::fmt::Result {
    match digits {
        '3' => write!(out, "{:03}", nanos / 1_000_000),
        '6' => write!(out, "{:06}", nanos / 1_000),
        _ => write!(out, "{nanos:09}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64, millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis)
    }

    #[test]
    fn default_format_matches_envoy() {
        // 2024-01-11T21:09:42.835Z, the istio.io example.
        assert_eq!(
            format_start_time(at(1_705_007_382, 835), None),
            "2024-01-11T21:09:42.835Z"
        );
        assert_eq!(
            format_start_time(at(0, 0), None),
            "1970-01-01T00:00:00.000Z"
        );
        // A leap day.
        assert_eq!(
            format_start_time(at(951_782_400, 7), None),
            "2000-02-29T00:00:00.007Z"
        );
    }

    #[test]
    fn custom_formats() {
        let t = at(1_705_007_382, 835);
        assert_eq!(
            format_start_time(t, Some("%Y-%m-%dT%H:%M:%S.%3fZ")),
            "2024-01-11T21:09:42.835Z"
        );
        assert_eq!(
            format_start_time(t, Some("%F %T %z")),
            "2024-01-11 21:09:42 +0000"
        );
        assert_eq!(format_start_time(t, Some("%s")), "1705007382");
        assert_eq!(
            format_start_time(t, Some("%E3S|%6f|%%|%q")),
            "42.835|835000|%|%q"
        );
    }
}
