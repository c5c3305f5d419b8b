//! The three date formats the agent reads or writes, without the `time`
//! crate's generic format-description machinery (a size budget, see the
//! README's footprint section): RFC 3339 (ARI windows, RFC 9773 §4.2;
//! `status`; log lines) and the HTTP `Date` (IMF-fixdate, RFC 9110 §5.6.7).
//! All times are UTC Unix seconds.

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of day `z` since 1970-01-01 (`civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Unix seconds of a date and time, if it is a valid one (a leap second,
/// `:60`, counts as the next second's start, as in RFC 3339 §5.7).
fn unix(y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Option<i64> {
    let ok = (1..=12).contains(&mo)
        && (1..=days_in_month(y, mo)).contains(&d)
        && h < 24
        && mi < 60
        && s <= 60;
    ok.then(|| days_from_civil(y, mo, d) * 86_400 + i64::from(h * 3600 + mi * 60 + s))
}

/// A run of exactly `n` ASCII digits at the start of `s`.
fn digits(s: &[u8], n: usize) -> Option<u32> {
    let part = s.get(..n)?;
    part.iter().try_fold(0u32, |acc, b| {
        b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
    })
}

/// Formats Unix seconds as RFC 3339 in UTC, `YYYY-MM-DDTHH:MM:SSZ`, with
/// `nanos` as a fraction when non-zero (trailing zeros dropped). Years
/// outside 0..=9999 have no RFC 3339 form: the plain number is returned.
pub fn rfc3339(t: i64, nanos: u32) -> String {
    let (y, mo, d) = civil_from_days(t.div_euclid(86_400));
    if !(0..=9999).contains(&y) {
        return t.to_string();
    }
    let s = t.rem_euclid(86_400);
    let mut out = format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}",
        s / 3600,
        s / 60 % 60,
        s % 60
    );
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// Parses an RFC 3339 date-time (§5.6: `T`/`t`, fraction optional, `Z` or
/// a `±HH:MM` offset) to Unix seconds; the fraction is dropped.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let sep = |i: usize, c: &[u8]| b.get(i).is_some_and(|x| c.contains(x));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let t = unix(
        i64::from(digits(b, 4)?),
        digits(&b[5..], 2)?,
        digits(&b[8..], 2)?,
        digits(&b[11..], 2)?,
        digits(&b[14..], 2)?,
        digits(&b[17..], 2)?,
    )?;
    let mut rest = &b[19..];
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        rest = &frac[n..];
    }
    let offset = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (h, m) = (digits(&rest[1..], 2)?, digits(&rest[4..], 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let o = i64::from(h * 3600 + m * 60);
            if *sign == b'-' {
                -o
            } else {
                o
            }
        }
        _ => return None,
    };
    Some(t - offset)
}

/// Parses an IMF-fixdate (RFC 9110 §5.6.7), `Sun, 06 Nov 1994 08:49:37 GMT`,
/// to Unix seconds. The weekday is checked for form only.
pub fn parse_http_date(s: &str) -> Option<i64> {
    const MONTHS: [&[u8]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let b = s.trim().as_bytes();
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    if b.len() != 29
        || !(at(3, b',') && at(4, b' ') && at(7, b' ') && at(11, b' ') && at(16, b' '))
        || !(at(19, b':') && at(22, b':') && &b[25..] == b" GMT")
        || !b[..3].iter().all(u8::is_ascii_alphabetic)
    {
        return None;
    }
    let mo = MONTHS.iter().position(|m| *m == &b[8..11])? as u32 + 1;
    unix(
        i64::from(digits(&b[12..], 4)?),
        mo,
        digits(&b[5..], 2)?,
        digits(&b[17..], 2)?,
        digits(&b[20..], 2)?,
        digits(&b[23..], 2)?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::time::format_description::well_known::Rfc3339;
    use ::time::OffsetDateTime;

    #[test]
    fn agrees_with_the_time_crate() {
        let mut t = -62_135_596_800i64; // 0001-01-01
        while t < 253_402_300_799 {
            let want = OffsetDateTime::from_unix_timestamp(t)
                .unwrap()
                .format(&Rfc3339)
                .unwrap();
            assert_eq!(rfc3339(t, 0), want, "{t}");
            assert_eq!(parse_rfc3339(&want), Some(t), "{want}");
            t += 7_919 * 3_607 + 13;
        }
        assert_eq!(rfc3339(-1, 0), "1969-12-31T23:59:59Z");
        assert_eq!(rfc3339(0, 500_000_000), "1970-01-01T00:00:00.5Z");
        assert_eq!(rfc3339(253_402_300_800, 0), "253402300800");
    }

    #[test]
    fn rfc3339_forms() {
        let t = 1_700_000_000;
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20Z"), Some(t));
        assert_eq!(parse_rfc3339("2023-11-14t22:13:20.123456z"), Some(t));
        assert_eq!(parse_rfc3339("2023-11-15T00:13:20+02:00"), Some(t));
        assert_eq!(parse_rfc3339("2023-11-14T21:43:20-00:30"), Some(t));
        assert_eq!(parse_rfc3339("2024-02-29T00:00:00Z"), Some(1_709_164_800));
        for bad in [
            "",
            "2023-11-14",
            "2023-11-14T22:13:20",
            "2023-11-14 22:13:20Z",
            "2023-02-29T00:00:00Z",
            "2023-13-01T00:00:00Z",
            "2023-11-14T24:00:00Z",
            "2023-11-14T22:13:20.Z",
            "2023-11-14T22:13:20+2:00",
            "2023-11-14T22:13:20Zjunk",
            "+023-11-14T22:13:20Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn http_dates() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(
            parse_http_date(" Thu, 03 Dec 2026 08:00:00 GMT "),
            Some(1_796_284_800)
        );
        for bad in [
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Sun, 31 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nox 1994 08:49:37 GMT",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }
}
