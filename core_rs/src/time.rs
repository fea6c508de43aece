//! RFC 3339 timestamps of the trust list, to Unix milliseconds, without a
//! calendar dependency.

use crate::error::CoreError;

/// Parse `YYYY-MM-DDTHH:MM:SS[.fff]` followed by `Z` or `±HH:MM`.
///
/// # Errors
/// `TrustList` naming the field and the text.
pub fn parse_rfc3339_ms(field: &str, text: &str) -> Result<i64, CoreError> {
    let bad = || CoreError::TrustList(format!("{field} {text:?} is not an RFC 3339 time such as 2026-01-01T00:00:00Z"));
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') || b[13] != b':' || b[16] != b':' {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| -> Result<i64, CoreError> {
        let s = &b[r];
        if s.iter().all(u8::is_ascii_digit) {
            Ok(s.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
        } else {
            Err(bad())
        }
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(bad());
    }
    let mut rest = &b[19..];
    let mut millis = 0i64;
    if let Some(frac) = rest.strip_prefix(b".") {
        let digits = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return Err(bad());
        }
        for (i, d) in frac[..digits].iter().enumerate().take(3) {
            millis += i64::from(d - b'0') * [100, 10, 1][i];
        }
        rest = &frac[digits..];
    }
    let offset_s = match rest {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hm = [*h1, *h2, *m1, *m2];
            if !hm.iter().all(u8::is_ascii_digit) {
                return Err(bad());
            }
            let h = i64::from(h1 - b'0') * 10 + i64::from(h2 - b'0');
            let m = i64::from(m1 - b'0') * 10 + i64::from(m2 - b'0');
            if h > 23 || m > 59 {
                return Err(bad());
            }
            (h * 3600 + m * 60) * if *sign == b'+' { 1 } else { -1 }
        }
        _ => return Err(bad()),
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_s;
    Ok(secs * 1000 + millis)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::parse_rfc3339_ms as p;

    #[test]
    fn known_instants() {
        assert_eq!(p("t", "1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(p("t", "2026-01-01T00:00:00Z").unwrap(), 1_767_225_600_000);
        assert_eq!(p("t", "2027-07-01T00:00:00Z").unwrap(), 1_814_400_000_000);
        assert_eq!(p("t", "2026-01-01T08:00:00+08:00").unwrap(), 1_767_225_600_000);
        assert_eq!(p("t", "2024-02-29T00:00:00.250Z").unwrap(), 1_709_164_800_250);
    }

    #[test]
    fn refuses_other_forms() {
        for s in [
            "2026-01-01",
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-01-01T00:00:00",
            "2026-01-01 00:00:00Z",
            "２026-01-01T00:00:00Z",
        ] {
            assert!(p("not_before", s).is_err(), "{s}");
        }
    }
}
