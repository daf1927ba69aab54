//! A certificate's validity period (`notBefore`, `notAfter`), read from its
//! DER encoding, so that start-up can warn about an expired certificate.
//!
//! pounce serves an expired certificate rather than refusing to start (as
//! nginx does: refusing would turn a missed renewal into an outage), but says
//! so once, loudly. That needs only these two dates, so instead of an X.509
//! parser this walks the few DER elements in front of them:
//! `Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL,
//! serialNumber, signature, issuer, validity SEQUENCE { notBefore, notAfter
//! }, ... }, ... }`. rustls has already parsed the certificate fully when it
//! loaded the key (it checks that they match), so a certificate this cannot
//! read is only a missing warning, never a refused one.

use crate::time::{Civil, log_timestamp, unix_from_civil};

/// When a certificate may be used, in seconds since the epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Validity {
    pub not_before: i64,
    pub not_after: i64,
}

/// Where `now` falls against a [`Validity`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Standing {
    Valid,
    Expired { since_days: i64 },
    NotYetValid,
}

impl Validity {
    /// Reads the validity of a DER-encoded X.509 certificate.
    pub(crate) fn of(der: &[u8]) -> Option<Validity> {
        let (cert, _) = element(der, SEQUENCE)?;
        let (tbs, _) = element(cert, SEQUENCE)?;
        let mut rest = tbs;
        if rest.first() == Some(&0xa0) {
            rest = skip(rest)?; // [0] version
        }
        rest = skip(rest)?; // serialNumber
        rest = skip(rest)?; // signature algorithm
        rest = skip(rest)?; // issuer
        let (validity, _) = element(rest, SEQUENCE)?;
        let (tag, not_before, rest) = tlv(validity)?;
        let not_before = time(tag, not_before)?;
        let (tag, not_after, _) = tlv(rest)?;
        let not_after = time(tag, not_after)?;
        Some(Validity { not_before, not_after })
    }

    pub(crate) fn standing(&self, now: i64) -> Standing {
        if now > self.not_after {
            Standing::Expired { since_days: (now - self.not_after) / 86_400 }
        } else if now < self.not_before {
            Standing::NotYetValid
        } else {
            Standing::Valid
        }
    }
}

/// `YYYY-MM-DD HH:MM:SS UTC`.
pub(crate) fn format_time(unix: i64) -> String {
    format!("{} UTC", log_timestamp(&Civil::from_unix(unix)))
}

const SEQUENCE: u8 = 0x30;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// One DER element: (tag, contents, what follows it).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

fn element(input: &[u8], want: u8) -> Option<(&[u8], &[u8])> {
    let (tag, body, rest) = tlv(input)?;
    (tag == want).then_some((body, rest))
}

fn skip(input: &[u8]) -> Option<&[u8]> {
    tlv(input).map(|(_, _, rest)| rest)
}

/// UTCTime `YYMMDDHHMMSSZ` (years 1950-2049) or GeneralizedTime
/// `YYYYMMDDHHMMSSZ`, as DER requires them.
fn time(tag: u8, s: &[u8]) -> Option<i64> {
    let digits = |s: &[u8]| -> Option<u32> {
        s.iter().try_fold(0u32, |acc, &b| b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0')))
    };
    let (year, rest) = match (tag, s.len()) {
        (UTC_TIME, 13) => {
            let yy = i64::from(digits(&s[..2])?);
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &s[2..])
        }
        (GENERALIZED_TIME, 15) => (i64::from(digits(&s[..4])?), &s[4..]),
        _ => return None,
    };
    if rest[10] != b'Z' {
        return None;
    }
    let field = |i: usize| digits(&rest[i..i + 2]);
    let (month, day, hour, minute, second) = (field(0)?, field(2)?, field(4)?, field(6)?, field(8)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    Some(unix_from_civil(year, month, day, hour, minute, second))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal certificate-shaped DER value around `validity`.
    fn cert(validity: &[u8]) -> Vec<u8> {
        let seq = |tag: u8, body: &[u8]| {
            let mut v = vec![tag];
            if body.len() < 0x80 {
                v.push(body.len() as u8);
            } else {
                v.extend_from_slice(&[0x82, (body.len() >> 8) as u8, body.len() as u8]);
            }
            v.extend_from_slice(body);
            v
        };
        let mut tbs = seq(0xa0, &[0x02, 0x01, 0x02]);
        tbs.extend(seq(0x02, &[0x01]));
        tbs.extend(seq(0x30, &[0x06, 0x01, 0x00]));
        tbs.extend(seq(0x30, &[0u8; 200])); // a long-form length
        tbs.extend(seq(0x30, validity));
        tbs.extend(seq(0x30, &[]));
        let mut c = seq(0x30, &tbs);
        c.extend(seq(0x30, &[]));
        seq(0x30, &c)
    }

    fn times(a: (u8, &str), b: (u8, &str)) -> Vec<u8> {
        let mut v = vec![a.0, a.1.len() as u8];
        v.extend_from_slice(a.1.as_bytes());
        v.extend_from_slice(&[b.0, b.1.len() as u8]);
        v.extend_from_slice(b.1.as_bytes());
        v
    }

    #[test]
    fn reads_utc_and_generalized_times() {
        let v =
            Validity::of(&cert(&times((UTC_TIME, "240229120000Z"), (GENERALIZED_TIME, "20510101000000Z"))))
                .unwrap();
        assert_eq!(v.not_before, 1_709_208_000);
        assert_eq!(format_time(v.not_after), "2051-01-01 00:00:00 UTC");
        let v =
            Validity::of(&cert(&times((UTC_TIME, "991231235959Z"), (UTC_TIME, "490101000000Z")))).unwrap();
        assert_eq!(format_time(v.not_before), "1999-12-31 23:59:59 UTC");
        assert_eq!(format_time(v.not_after), "2049-01-01 00:00:00 UTC");
    }

    #[test]
    fn standing() {
        let v = Validity { not_before: 1000, not_after: 2000 };
        assert_eq!(v.standing(1500), Standing::Valid);
        assert_eq!(v.standing(999), Standing::NotYetValid);
        assert_eq!(v.standing(2000 + 3 * 86_400 + 5), Standing::Expired { since_days: 3 });
    }

    #[test]
    fn malformed_input_is_none_not_a_panic() {
        assert_eq!(Validity::of(b""), None);
        assert_eq!(Validity::of(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(Validity::of(&cert(&times((UTC_TIME, "2402291200Z"), (UTC_TIME, "240229120000Z")))), None);
        assert_eq!(
            Validity::of(&cert(&times((UTC_TIME, "241329120000Z"), (UTC_TIME, "240229120000Z")))),
            None
        );
        let good = cert(&times((UTC_TIME, "240229120000Z"), (UTC_TIME, "250229120000Z")));
        for cut in 0..good.len() {
            let _ = Validity::of(&good[..cut]);
        }
    }
}
