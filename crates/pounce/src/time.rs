//! Wall-clock formatting without a date crate: UTC civil time for log lines
//! (`2026-02-12 10:15:30`) and the HTTP `Date` header (IMF-fixdate,
//! `Thu, 12 Feb 2026 10:15:30 GMT`).
//!
//! Both only ever need "now, in UTC, to the second", so the whole job is the
//! days-to-civil conversion below (Howard Hinnant's algorithm), which is exact
//! for every date a server will see.

use std::time::{SystemTime, UNIX_EPOCH};

/// A UTC calendar time, to the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    /// 0 = Sunday.
    pub weekday: u32,
}

impl Civil {
    pub(crate) fn from_unix(secs: i64) -> Civil {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        Civil {
            year,
            month,
            day,
            hour: rem / 3600,
            minute: rem / 60 % 60,
            second: rem % 60,
            // 1970-01-01 was a Thursday (4).
            weekday: (days + 4).rem_euclid(7) as u32,
        }
    }

    pub(crate) fn now() -> Civil {
        Civil::from_unix(unix_now())
    }
}

pub(crate) fn unix_now() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32; // [1, 12]
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Seconds since the epoch of a UTC calendar time (the inverse of
/// [`Civil::from_unix`]; month 1-12, day 1-31), for dates read from
/// certificates.
pub(crate) fn unix_from_civil(year: i64, month: u32, day: u32, hour: u32, minute: u32, second: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400); // [0, 399]
    let mp = i64::from((month + 9) % 12); // March = 0
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second)
}

/// `YYYY-MM-DD HH:MM:SS`, the timestamp of every log line.
pub(crate) fn log_timestamp(c: &Civil) -> String {
    format!("{:04}-{:02}-{:02} {:02}:{:02}:{:02}", c.year, c.month, c.day, c.hour, c.minute, c.second)
}

/// Length of an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub(crate) const HTTP_DATE_LEN: usize = 29;

/// Writes the IMF-fixdate for `c` (RFC 9110 §5.6.7) into a fixed buffer.
pub(crate) fn http_date(c: &Civil) -> [u8; HTTP_DATE_LEN] {
    const DAYS: [&[u8; 3]; 7] = [b"Sun", b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat"];
    const MONTHS: [&[u8; 3]; 12] =
        [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"];
    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    out[0..3].copy_from_slice(DAYS[c.weekday as usize]);
    two(&mut out[5..7], c.day);
    out[8..11].copy_from_slice(MONTHS[c.month as usize - 1]);
    let y = c.year.clamp(0, 9999) as u32;
    two(&mut out[12..14], y / 100);
    two(&mut out[14..16], y % 100);
    two(&mut out[17..19], c.hour);
    two(&mut out[20..22], c.minute);
    two(&mut out[23..25], c.second);
    out
}

fn two(dst: &mut [u8], v: u32) {
    dst[0] = b'0' + (v / 10 % 10) as u8;
    dst[1] = b'0' + (v % 10) as u8;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch() {
        let c = Civil::from_unix(0);
        assert_eq!(&http_date(&c), b"Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(log_timestamp(&c), "1970-01-01 00:00:00");
    }

    #[test]
    fn rfc_example_and_leap_days() {
        // RFC 9110's example date.
        let c = Civil::from_unix(784_111_777);
        assert_eq!(&http_date(&c), b"Sun, 06 Nov 1994 08:49:37 GMT");
        // 2024-02-29 12:00:00 UTC, a leap day.
        let c = Civil::from_unix(1_709_208_000);
        assert_eq!(log_timestamp(&c), "2024-02-29 12:00:00");
        assert_eq!(&http_date(&c), b"Thu, 29 Feb 2024 12:00:00 GMT");
        // 2000-03-01, after the 400-year leap day.
        let c = Civil::from_unix(951_868_800);
        assert_eq!(log_timestamp(&c), "2000-03-01 00:00:00");
    }

    #[test]
    fn agrees_with_a_day_by_day_walk() {
        // Walk forward one day at a time from 1970 and check the calendar
        // rolls over exactly as a naive month table says it should.
        let mdays = |y: i64, m: u32| match m {
            2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        let (mut y, mut m, mut d, mut wd) = (1970i64, 1u32, 1u32, 4u32);
        for day in 0..(200 * 366) {
            let c = Civil::from_unix(day * 86_400 + 3_661);
            assert_eq!((c.year, c.month, c.day, c.weekday), (y, m, d, wd), "day {day}");
            assert_eq!(unix_from_civil(y, m, d, 1, 1, 1), day * 86_400 + 3_661, "day {day}");
            assert_eq!((c.hour, c.minute, c.second), (1, 1, 1));
            wd = (wd + 1) % 7;
            d += 1;
            if d > mdays(y, m) {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }
}
