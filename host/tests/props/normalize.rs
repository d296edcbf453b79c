//! Properties of the path normaliser (`wasmgate::normalize`): it never panics, what it
//! accepts is in the safe form its docs promise and is a fixed point, it refuses what
//! would hide structure, and on paths it may decode it agrees with a plain reference.

use proptest::prelude::*;
use wasmgate::normalize::normalize_path;

/// The characters a %-escape of which is decoded.
const UNRESERVED: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";

fn is_unreserved(byte: u8) -> bool {
    UNRESERVED.as_bytes().contains(&byte)
}

/// Asserts what the module promises of every path it accepts.
fn assert_safe(raw: &str, path: &str) {
    let context = format!("{raw:?} -> {path:?}");
    assert!(path.starts_with('/') && path.is_ascii(), "{context}");
    assert!(!path.contains("//"), "{context}: '//' left");
    for segment in path[1..].split('/') {
        assert!(
            segment != "." && segment != "..",
            "{context}: a dot-segment"
        );
    }
    for &byte in path.as_bytes() {
        assert!(
            !(byte <= 0x20 || byte == 0x7f || b"\\;#<>?`".contains(&byte)),
            "{context}: byte {byte:#04x} left raw"
        );
    }
    // What a request target would carry: the same path, no query, no fragment.
    let target = http::uri::PathAndQuery::try_from(path);
    assert!(
        target
            .as_ref()
            .is_ok_and(|t| t.path() == path && t.query().is_none()),
        "{context}: a request target reads it as {target:?}"
    );
    let bytes = path.as_bytes();
    for (at, _) in path.match_indices('%') {
        let digits = &bytes[at + 1..(at + 3).min(bytes.len())];
        assert!(
            digits.len() == 2
                && digits
                    .iter()
                    .all(|d| d.is_ascii_digit() || (b'A'..=b'F').contains(d)),
            "{context}: '%' at {at} does not start an upper-case escape"
        );
        let byte = u8::from_str_radix(std::str::from_utf8(digits).unwrap(), 16).unwrap();
        assert!(
            !is_unreserved(byte),
            "{context}: an escape of unreserved {:?} left encoded",
            byte as char
        );
        assert!(
            !(byte < 0x20 || byte == 0x7f || b"/\\;".contains(&byte)),
            "{context}: escape of {byte:#04x} accepted"
        );
        if byte == b'%' {
            let next = &bytes[(at + 3).min(bytes.len())..(at + 5).min(bytes.len())];
            assert!(
                !(next.len() == 2 && next.iter().all(u8::is_ascii_hexdigit)),
                "{context}: a double-encoded escape"
            );
        }
    }
    assert!(
        percent_encoding::percent_decode_str(path)
            .decode_utf8()
            .is_ok(),
        "{context}: escapes that do not spell UTF-8"
    );
    assert_eq!(
        normalize_path(path).as_deref(),
        Ok(path),
        "{context}: not a fixed point"
    );
}

/// Checks whatever `normalize_path` makes of `raw`.
fn check_any(raw: &str) {
    if let Ok(path) = normalize_path(raw) {
        assert_safe(raw, &path);
    }
}

/// Pieces chosen to collide: separators, dots, escapes of both, `;`, double encoding,
/// overlong UTF-8, malformed escapes, and any character or escape at all.
fn colliding_piece() -> impl Strategy<Value = String> {
    const PIECES: &[&str] = &[
        "/", "//", "a", "admin", "A", ".", "..", "%2e", "%2E", "%2e%2e", ";", ";x=1", "%3B", "%3b",
        "%2F", "%2f", "%5C", "%25", "%2561", "%41", "%c3%a9", "%C0%AE", "~", "%7e", "%20",
        "\u{e9}", "\\", "%", "%zz", "-", "_", "%2", "x", ".;", "%00", "%0a", "%7f", "%ff",
        "%e2%82", "%ac", "?", "#", " ", "\t",
    ];
    prop_oneof![
        4 => proptest::sample::select(PIECES).prop_map(str::to_string),
        1 => any::<char>().prop_map(String::from),
        1 => "%[0-9a-fA-F]{2}",
    ]
}

fn colliding_path() -> impl Strategy<Value = String> {
    proptest::collection::vec(colliding_piece(), 0..12).prop_map(|pieces| {
        let mut path = String::from("/");
        path.extend(pieces);
        path
    })
}

/// A piece of a path the normaliser accepts, as written (`raw`) and as it must come
/// out before slashes are merged and dot-segments resolved (`decoded`).
#[derive(Debug, Clone)]
struct Piece {
    raw: String,
    decoded: String,
}

impl Piece {
    fn same(text: impl Into<String>) -> Self {
        let text = text.into();
        Self {
            raw: text.clone(),
            decoded: text,
        }
    }
}

fn escape(bytes: &[u8], upper: bool) -> String {
    bytes
        .iter()
        .map(|b| {
            if upper {
                format!("%{b:02X}")
            } else {
                format!("%{b:02x}")
            }
        })
        .collect()
}

/// Pieces of paths that hide nothing: unreserved text, sub-delimiters, runs of `/`,
/// dot-segments (raw or escaped), escapes of unreserved characters (decoded), of other
/// printable ASCII (kept, upper-cased) and of UTF-8 (kept, upper-cased), raw non-ASCII
/// and raw characters a request target cannot hold in a path (escaped).
fn safe_piece() -> impl Strategy<Value = Piece> {
    let unreserved: Vec<char> = UNRESERVED.chars().collect();
    let other_ascii: Vec<char> = " !\"#$&'()*+,:=?@[]<>^`{|}".chars().collect();
    prop_oneof![
        4 => "[A-Za-z0-9._~-]{1,4}".prop_map(Piece::same),
        1 => proptest::sample::select("!$&'()*+,=:@".chars().collect::<Vec<_>>())
            .prop_map(Piece::same),
        3 => proptest::sample::select(vec!["/", "//", "///"]).prop_map(Piece::same),
        2 => proptest::sample::select(vec!["/.", "/..", "/./", "/../", "."]).prop_map(Piece::same),
        2 => (proptest::sample::select(unreserved), any::<bool>()).prop_map(|(c, upper)| Piece {
            raw: escape(&[c as u8], upper),
            decoded: c.to_string(),
        }),
        1 => (proptest::sample::select(other_ascii), any::<bool>()).prop_map(|(c, upper)| Piece {
            raw: escape(&[c as u8], upper),
            decoded: escape(&[c as u8], true),
        }),
        1 => proptest::sample::select(" #<>?`".chars().collect::<Vec<_>>()).prop_map(|c| Piece {
            raw: c.to_string(),
            decoded: escape(&[c as u8], true),
        }),
        1 => (any::<char>().prop_filter("non-ASCII", |c| !c.is_ascii()), 0..3u8).prop_map(
            |(c, how)| {
                let mut utf8 = [0; 4];
                let bytes = c.encode_utf8(&mut utf8).as_bytes();
                Piece {
                    raw: match how {
                        0 => c.to_string(),
                        n => escape(bytes, n == 1),
                    },
                    decoded: escape(bytes, true),
                }
            }
        ),
    ]
}

/// The reference: merge `/` runs, then resolve `.` and `..` segments as RFC 3986 does,
/// refusing (`None`) a climb above the root. `path` starts with `/`.
fn resolve(path: &str) -> Option<String> {
    let parts: Vec<&str> = path[1..].split('/').collect();
    let mut kept: Vec<&str> = Vec::new();
    for part in &parts {
        match *part {
            "" | "." => {}
            ".." => {
                kept.pop()?;
            }
            segment => kept.push(segment),
        }
    }
    // The path names a directory when it ends in `/`, `/.` or `/..`.
    let directory = matches!(parts.last(), Some(&("" | "." | "..")));
    let mut out = String::new();
    for segment in &kept {
        out.push('/');
        out.push_str(segment);
    }
    if directory || kept.is_empty() {
        out.push('/');
    }
    Some(out)
}

/// Pieces that are refused wherever they stand among safe pieces.
const POISON: &[&str] = &[
    "%2F",
    "%2f",
    "%5C",
    "%5c",
    "%00",
    "\\",
    ";",
    "%3B",
    "%3b",
    ";x=1",
    "%0A",
    "%0d",
    "\t",
    "\r",
    "\n",
    "\u{7f}",
    "%7F",
    "%1b",
    "%C0%AE",
    "%c0%ae",
    "%ff",
    "%FE",
    "%2561",
    "%252F",
    "%252e",
    "%25%32%65",
    "%zz",
    "%g1",
    "%%",
    "%-1",
];

proptest! {
    #![proptest_config(crate::cases(2048))]

    #[test]
    fn prop_normalize_never_panics_on_arbitrary_input(
        text in any::<String>(),
        bytes in proptest::collection::vec(any::<u8>(), 0..48),
    ) {
        check_any(&text);
        check_any(&format!("/{text}"));
        check_any(&String::from_utf8_lossy(&bytes));
        check_any(&format!("/{}", String::from_utf8_lossy(&bytes)));
    }

    #[test]
    fn prop_normalize_accepted_paths_are_safe_fixed_points(raw in colliding_path()) {
        check_any(&raw);
    }

    #[test]
    fn prop_normalize_agrees_with_a_reference_on_safe_paths(
        pieces in proptest::collection::vec(safe_piece(), 0..12),
    ) {
        let raw = format!("/{}", pieces.iter().map(|p| p.raw.as_str()).collect::<String>());
        let decoded = format!("/{}", pieces.iter().map(|p| p.decoded.as_str()).collect::<String>());
        let want = resolve(&decoded);
        let got = normalize_path(&raw).ok();
        prop_assert_eq!(&got, &want, "{:?} (decoded {:?})", raw, decoded);
        if let Some(path) = got {
            assert_safe(&raw, &path);
        }
    }

    #[test]
    fn prop_normalize_refuses_what_would_hide_structure(
        pieces in proptest::collection::vec(safe_piece(), 0..10),
        poison in proptest::sample::select(POISON),
        at in any::<proptest::sample::Index>(),
    ) {
        let mut raw: Vec<&str> = pieces.iter().map(|p| p.raw.as_str()).collect();
        raw.insert(at.index(raw.len() + 1), poison);
        let raw = format!("/{}", raw.concat());
        let normal = normalize_path(&raw);
        prop_assert!(normal.is_err(), "{:?} accepted as {:?}", raw, normal);
    }

    #[test]
    fn prop_normalize_refuses_paths_that_climb_above_the_root(
        pieces in proptest::collection::vec(safe_piece(), 0..10),
        depth in 0..4usize,
    ) {
        // `depth` segments, then one `..` more than that.
        let rest: String = pieces.iter().map(|p| p.raw.as_str()).collect();
        let raw = format!("{}{}/{rest}", "/d".repeat(depth), "/..".repeat(depth + 1));
        let normal = normalize_path(&raw);
        prop_assert!(normal.is_err(), "{:?} accepted as {:?}", raw, normal);
    }

    #[test]
    fn prop_normalize_refuses_anything_not_starting_with_a_slash(text in "[^/].*") {
        prop_assert!(normalize_path(&text).is_err());
    }
}
