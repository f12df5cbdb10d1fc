//! Datetimes as Optuna stores them: naive `YYYY-MM-DD HH:MM:SS.ffffff` text (SQLite) or
//! `timestamp without time zone` (PostgreSQL, read back as the same text). tabtune writes UTC.

use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch, now.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count since 1970-01-01 (`civil_from_days`).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// `us` (since the epoch, UTC) in Optuna's text form, e.g. `2026-11-26 10:50:32.521795`.
pub fn format_us(us: i64) -> String {
    let secs = us.div_euclid(1_000_000);
    let micros = us.rem_euclid(1_000_000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{micros:06}",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

/// Parses `YYYY-MM-DD HH:MM:SS[.f{1,6}]` (a `T` separator is accepted too) into microseconds
/// since the epoch; `None` when the text has another shape.
pub fn parse_us(text: &str) -> Option<i64> {
    let t = text.trim();
    let (date, time) = t.split_once([' ', 'T'])?;
    let mut dp = date.split('-');
    let y: i64 = dp.next()?.parse().ok()?;
    let m: i64 = dp.next()?.parse().ok()?;
    let d: i64 = dp.next()?.parse().ok()?;
    let (hms, frac) = match time.split_once('.') {
        Some((a, b)) => (a, b),
        None => (time, ""),
    };
    let mut tp = hms.split(':');
    let h: i64 = tp.next()?.parse().ok()?;
    let mi: i64 = tp.next()?.parse().ok()?;
    let s: i64 = tp.next()?.parse().ok()?;
    let frac = frac.trim_end_matches(|c: char| !c.is_ascii_digit());
    let micros = if frac.is_empty() {
        0
    } else {
        let digits: String = frac.chars().take(6).collect();
        let v: i64 = digits.parse().ok()?;
        v * 10_i64.pow(6 - u32::try_from(digits.len()).ok()?)
    };
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    Some(((days_from_civil(y, m, d) * 86_400 + h * 3600 + mi * 60 + s) * 1_000_000) + micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_optunas_datetimes() {
        let t = parse_us("2026-11-26 10:50:32.521795").unwrap();
        assert_eq!(format_us(t), "2026-11-26 10:50:32.521795");
        assert_eq!(parse_us("1970-01-01 00:00:01"), Some(1_000_000));
        assert_eq!(
            parse_us("2000-02-29 12:00:00.5"),
            parse_us("2000-02-29T12:00:00.500000")
        );
        assert_eq!(format_us(0), "1970-01-01 00:00:00.000000");
        assert_eq!(parse_us("yesterday"), None);
        let now = now_us();
        assert_eq!(parse_us(&format_us(now)), Some(now));
    }
}
