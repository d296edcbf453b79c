//! `Accept-Encoding` negotiation (RFC 9110 §12.5.3): which of the codings a route
//! offers a client takes, by the client's q-values, the route's order breaking ties.
//! Pure parsing; it knows nothing of bodies or routes.

use http::HeaderValue;

use super::Encoding;

/// The coding to answer with: the one of `offered` (in the route's order of
/// preference) with the highest q-value in the client's `Accept-Encoding` header
/// lines, the first of those on a tie; `None` when none has a q-value above 0.
///
/// A coding not named takes the q-value of `*`, if given, else it is not acceptable;
/// `x-gzip` is `gzip`; names are case-insensitive; an entry with a malformed q-value
/// is ignored. No header at all means no compression: a client that does not ask is
/// not assumed to decode.
pub fn negotiate<'a>(
    accept: impl IntoIterator<Item = &'a HeaderValue>,
    offered: &[Encoding],
) -> Option<Encoding> {
    // The q-value of each offered coding, in thousandths; None while not named.
    let mut named: Vec<Option<u16>> = vec![None; offered.len()];
    let mut star = None;
    for line in accept {
        let Ok(line) = line.to_str() else { continue };
        for entry in line.split(',') {
            let Some((coding, q)) = parse_entry(entry) else {
                continue;
            };
            if coding == "*" {
                star = Some(star.map_or(q, |s: u16| s.max(q)));
                continue;
            }
            let coding = if coding.eq_ignore_ascii_case("x-gzip") {
                "gzip"
            } else {
                coding
            };
            if let Some(i) = offered
                .iter()
                .position(|e| e.as_str().eq_ignore_ascii_case(coding))
            {
                // Named twice: the higher q-value wins.
                named[i] = Some(named[i].map_or(q, |earlier| earlier.max(q)));
            }
        }
    }
    let mut best: Option<(Encoding, u16)> = None;
    for (encoding, q) in offered.iter().zip(named) {
        let q = q.or(star).unwrap_or(0);
        if q > 0 && best.is_none_or(|(_, top)| q > top) {
            best = Some((*encoding, q));
        }
    }
    best.map(|(encoding, _)| encoding)
}

/// One `coding;q=VALUE` entry: the coding and its q-value in thousandths (1000 when
/// absent). `None` for an empty entry or a malformed q-value.
fn parse_entry(entry: &str) -> Option<(&str, u16)> {
    let mut parts = entry.split(';');
    let coding = parts.next()?.trim();
    if coding.is_empty() {
        return None;
    }
    let mut q = 1000;
    for param in parts {
        let (name, value) = param.split_once('=')?;
        if name.trim().eq_ignore_ascii_case("q") {
            q = parse_qvalue(value.trim())?;
        }
    }
    Some((coding, q))
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in thousandths.
fn parse_qvalue(text: &str) -> Option<u16> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths: u16 = format!("{fraction:0<3}").parse().ok()?;
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Encoding::{Brotli, Gzip, Zstd};

    const ALL: [Encoding; 3] = [Brotli, Zstd, Gzip];

    fn pick(accept: &str) -> Option<Encoding> {
        negotiate([&HeaderValue::from_str(accept).unwrap()], &ALL)
    }

    #[test]
    fn the_route_order_breaks_ties() {
        assert_eq!(pick("gzip, deflate, br, zstd"), Some(Brotli));
        assert_eq!(pick("gzip, zstd"), Some(Zstd));
        assert_eq!(pick("gzip"), Some(Gzip));
        assert_eq!(
            negotiate([&HeaderValue::from_static("br, gzip")], &[Gzip, Brotli]),
            Some(Gzip)
        );
    }

    #[test]
    fn q_values_are_honoured() {
        assert_eq!(pick("gzip;q=1.0, br;q=0.5"), Some(Gzip));
        assert_eq!(pick("gzip;q=0.5, br;q=1.0, *;q=0"), Some(Brotli));
        assert_eq!(pick("br;q=0, gzip"), Some(Gzip));
        assert_eq!(pick("gzip;q=0"), None);
        assert_eq!(pick("br;q=0.001, zstd;q=0.002"), Some(Zstd));
        assert_eq!(pick("gzip ; Q=0.8 , br ; q=0.7"), Some(Gzip));
    }

    #[test]
    fn star_covers_the_codings_not_named() {
        assert_eq!(pick("*"), Some(Brotli));
        assert_eq!(pick("br;q=0, *"), Some(Zstd));
        assert_eq!(pick("*;q=0"), None);
        assert_eq!(pick("gzip;q=0.4, *;q=0.5"), Some(Brotli));
        assert_eq!(pick("gzip, *;q=0"), Some(Gzip));
    }

    #[test]
    fn identity_and_unknown_codings_compress_nothing() {
        assert_eq!(pick("identity"), None);
        assert_eq!(pick("identity;q=0"), None);
        assert_eq!(pick("deflate, compress"), None);
        assert_eq!(pick(""), None);
        assert_eq!(negotiate([], &ALL), None, "no header: no compression");
    }

    #[test]
    fn names_are_case_insensitive_and_x_gzip_is_gzip() {
        assert_eq!(pick("GZIP"), Some(Gzip));
        assert_eq!(pick("Br"), Some(Brotli));
        assert_eq!(pick("x-gzip"), Some(Gzip));
        assert_eq!(pick("X-GZip;q=0.5, zstd;q=0.4"), Some(Gzip));
    }

    #[test]
    fn malformed_entries_are_ignored() {
        assert_eq!(pick("br;q=2, gzip"), Some(Gzip), "q above 1");
        assert_eq!(pick("br;q=1.5, gzip"), Some(Gzip));
        assert_eq!(pick("br;q=0.0001, gzip;q=0.1"), Some(Gzip), "4 decimals");
        assert_eq!(pick("br;q=abc, gzip;q=0.1"), Some(Gzip));
        assert_eq!(pick("br;q, gzip;q=0.1"), Some(Gzip));
        assert_eq!(pick(",,, ;q=1, gzip"), Some(Gzip));
        assert_eq!(pick("gzip;level=9"), Some(Gzip), "other parameters ignored");
    }

    #[test]
    fn a_coding_named_twice_or_over_several_lines_keeps_its_best_q() {
        assert_eq!(pick("gzip;q=0, gzip;q=0.5"), Some(Gzip));
        let lines = [
            HeaderValue::from_static("gzip;q=0.2"),
            HeaderValue::from_static("zstd;q=0.3"),
        ];
        assert_eq!(negotiate(&lines, &ALL), Some(Zstd));
    }
}
