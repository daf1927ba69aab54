//! `Accept-Encoding` negotiation (RFC 9110 §12.5.3) for precompressed
//! siblings, as a pure function.
//!
//! pounce never compresses on the fly: it picks `file.br` or `file.gz` when
//! one exists beside `file` and the client accepts that coding. This module
//! only orders the codings the client accepts; the handler then takes the
//! first whose sibling exists. `q=0` means "not acceptable", `*` stands for
//! every coding not named, and without the header nothing is compressed
//! (as nginx's `gzip_static` does: an old client that sends no
//! `Accept-Encoding` may still not understand gzip).

/// A coding we may find a precompressed sibling for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Br,
    Gzip,
}

impl Coding {
    /// The `Content-Encoding` token.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Br => "br",
            Coding::Gzip => "gzip",
        }
    }

    /// Its bit in a set of codings (which siblings a file has).
    pub fn bit(self) -> u8 {
        match self {
            Coding::Br => 1,
            Coding::Gzip => 2,
        }
    }

    /// The sibling's file-name suffix.
    pub fn suffix(self) -> &'static [u8] {
        match self {
            Coding::Br => b".br",
            Coding::Gzip => b".gz",
        }
    }
}

/// All codings we look for, in our order of preference on equal `q`.
pub const ALL: [Coding; 2] = [Coding::Br, Coding::Gzip];

/// The codings `accept_encoding` allows, best first (by `q`, then br before
/// gzip). Empty without the header.
pub fn preferred(accept_encoding: Option<&str>) -> Vec<Coding> {
    let Some(h) = accept_encoding else {
        return Vec::new();
    };
    // q in thousandths; None = not mentioned.
    let (mut br, mut gzip, mut star): (Option<u16>, Option<u16>, Option<u16>) = (None, None, None);
    for item in h.split(',') {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or("").trim();
        if name.is_empty() {
            continue;
        }
        let mut q = Some(1000);
        for param in parts {
            if let Some((k, v)) = param.split_once('=') {
                if k.trim().eq_ignore_ascii_case("q") {
                    q = parse_q(v.trim());
                }
            }
        }
        // An unparsable weight: ignore the item rather than guess.
        let Some(q) = q else { continue };
        let slot = if name.eq_ignore_ascii_case("br") {
            &mut br
        } else if name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip") {
            &mut gzip
        } else if name == "*" {
            &mut star
        } else {
            continue;
        };
        // Repeated names: the highest weight stands.
        *slot = Some(slot.map_or(q, |old| old.max(q)));
    }
    let mut out: Vec<(Coding, u16)> = [(Coding::Br, br), (Coding::Gzip, gzip)]
        .into_iter()
        .filter_map(|(c, q)| q.or(star).filter(|&q| q > 0).map(|q| (c, q)))
        .collect();
    // Stable: br stays ahead of gzip on equal weights.
    out.sort_by_key(|&(_, q)| std::cmp::Reverse(q));
    out.into_iter().map(|(c, _)| c).collect()
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in
/// thousandths.
fn parse_q(s: &str) -> Option<u16> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_val: u16 = format!("{frac:0<3}").parse().ok()?;
    match int {
        "0" => Some(frac_val),
        "1" if frac_val == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::Coding::*;
    use super::*;

    fn p(h: &str) -> Vec<Coding> {
        preferred(Some(h))
    }

    #[test]
    fn basics() {
        assert_eq!(preferred(None), vec![]);
        assert_eq!(p(""), vec![]);
        assert_eq!(p("identity"), vec![]);
        assert_eq!(p("gzip"), vec![Gzip]);
        assert_eq!(p("br"), vec![Br]);
        assert_eq!(p("gzip, deflate, br"), vec![Br, Gzip]);
        assert_eq!(p("gzip, deflate, br, zstd"), vec![Br, Gzip]);
        assert_eq!(p("GZIP"), vec![Gzip]);
        assert_eq!(p("x-gzip"), vec![Gzip]);
    }

    #[test]
    fn weights() {
        assert_eq!(p("br;q=0.5, gzip"), vec![Gzip, Br]);
        assert_eq!(p("br;q=0.5, gzip;q=0.8"), vec![Gzip, Br]);
        assert_eq!(p("br;q=1.0, gzip;q=1"), vec![Br, Gzip]);
        assert_eq!(p("br ; q=0.001"), vec![Br]);
        assert_eq!(p("gzip;Q=0.9"), vec![Gzip]);
    }

    #[test]
    fn q_zero_refuses() {
        assert_eq!(p("br;q=0, gzip"), vec![Gzip]);
        assert_eq!(p("br;q=0.000, gzip;q=0"), vec![]);
        assert_eq!(p("gzip;q=0, *"), vec![Br]);
    }

    #[test]
    fn star() {
        assert_eq!(p("*"), vec![Br, Gzip]);
        assert_eq!(p("*;q=0"), vec![]);
        assert_eq!(p("gzip, *;q=0"), vec![Gzip]);
        assert_eq!(p("br;q=0.2, *;q=0.5"), vec![Gzip, Br]);
    }

    #[test]
    fn bad_weights_ignore_the_item() {
        assert_eq!(p("br;q=2, gzip"), vec![Gzip]);
        assert_eq!(p("br;q=abc"), vec![]);
        assert_eq!(p("br;q=0.5555"), vec![]);
        assert_eq!(p("br;q=1.5"), vec![]);
        assert_eq!(parse_q("0.5"), Some(500));
        assert_eq!(parse_q("0.05"), Some(50));
        assert_eq!(parse_q("1."), Some(1000));
        assert_eq!(parse_q("0"), Some(0));
        assert_eq!(parse_q(".5"), None);
    }

    #[test]
    fn tokens_and_suffixes() {
        assert_eq!(Br.token(), "br");
        assert_eq!(Gzip.suffix(), b".gz");
        assert_eq!(ALL, [Br, Gzip]);
    }
}
