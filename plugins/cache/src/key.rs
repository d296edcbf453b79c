//! The `kv` keys: one text key per cached response, path first, so that a purge by
//! path prefix is a `scan` by key prefix.
//!
//! ```text
//! /api/products api.example.com GET ?page=2 vary     the vary spec of the primary key
//! /api/products api.example.com GET ?page=2 =-       the entry, when nothing varies
//! /api/products api.example.com GET ?page=2 =9f1c…   one variant (32 hex digits)
//! #bytes  #seq  #i:00000000000000000042              the size ledger and its index
//! ```
//!
//! The **primary key** is four fields joined by one space: the normalised path as the
//! gateway received it, the `Host` (lower-case; bytes outside `[a-z0-9.:_[]-]`
//! percent-encoded, absent: `-`), the method (`GET`: HEAD is answered from it) and the
//! query (`?` and the query, or `-` when there is none, so that no query and an empty
//! one differ). No field can hold a space (a path or query with one, or a control
//! character, is never cached), so the fields split one way only, and a purge of
//! `/api` scans `"/api "` and `"/api/"`, never `/apiary`. The fifth field says what the
//! key holds: `vary` (the header names the stored response varies on) or `=` and the
//! variant. Bookkeeping keys start with `#`, which no path does.

use sha2::{Digest, Sha256};

/// The longest primary key cached: a longer URL is served but never stored (its key
/// also travels in a chain variable, which the gateway caps at 8 KiB).
pub const MAX_KEY_BYTES: usize = 2048;

/// The size ledger: the bytes of every entry the index holds (see `store`).
pub const LEDGER: &str = "#bytes";
/// The sequence that orders the index.
pub const SEQUENCE: &str = "#seq";
/// The index's prefix: `#i:` and a 20-digit sequence number, oldest first.
pub const INDEX: &str = "#i:";

/// The primary key of a request, or `None` when it cannot be cached (a space or a
/// control character in a field, or over [`MAX_KEY_BYTES`]).
pub fn primary(path: &str, host: Option<&[u8]>, query: Option<&str>) -> Option<String> {
    let clean = |s: &str| s.bytes().all(|b| b > b' ' && b != 0x7f);
    if !path.starts_with('/') || !clean(path) || !query.is_none_or(clean) {
        return None;
    }
    let mut key = String::with_capacity(path.len() + 64);
    key.push_str(path);
    key.push(' ');
    match host {
        None => key.push('-'),
        Some(b"-") => key.push_str("%2D"),
        Some(host) => {
            for &b in host {
                let b = b.to_ascii_lowercase();
                if b.is_ascii_lowercase() || b.is_ascii_digit() || b".:_[]-".contains(&b) {
                    key.push(b as char);
                } else {
                    key.push_str(&format!("%{b:02X}"));
                }
            }
        }
    }
    key.push_str(" GET ");
    match query {
        Some(query) => {
            key.push('?');
            key.push_str(query);
        }
        None => key.push('-'),
    }
    (key.len() <= MAX_KEY_BYTES).then_some(key)
}

/// The key of the vary spec of `primary`.
pub fn spec(primary: &str) -> String {
    format!("{primary} vary")
}

/// The key of the entry of `primary` for `variant` (`-`: nothing varies).
pub fn entry(primary: &str, variant: &str) -> String {
    format!("{primary} ={variant}")
}

/// Whether `key` is an entry's key (not a spec, not bookkeeping).
pub fn is_entry(key: &str) -> bool {
    key.starts_with('/') && key.rsplit(' ').next().is_some_and(|f| f.starts_with('='))
}

/// The index key of sequence number `seq`: zero-padded so key order is age order.
pub fn index(seq: i64) -> String {
    format!("{INDEX}{seq:020}")
}

/// The digest of one request header's values (joined with `, ` as one field line):
/// 16 bytes of SHA-256, in hex. Only digests are kept (in a chain variable, between
/// the phases), never the values themselves: a `Vary: Authorization` or `Cookie`
/// leaves no secret in the log phase's variables.
pub fn value_digest(values: &[Vec<u8>]) -> String {
    let mut hasher = Sha256::new();
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            hasher.update(b", ");
        }
        hasher.update(value.trim_ascii());
    }
    hex(&hasher.finalize()[..16])
}

/// The variant for the header names `names` (sorted, lower-case), given each one's
/// digest (`None`: the request lacks it, which is a variant of its own); `-` when the
/// response varies on nothing.
pub fn variant<'a>(names: &[String], mut digest: impl FnMut(&str) -> Option<&'a str>) -> String {
    if names.is_empty() {
        return "-".into();
    }
    let mut hasher = Sha256::new();
    for name in names {
        hasher.update(name.as_bytes());
        match digest(name) {
            Some(d) => {
                hasher.update(b"\x01");
                hasher.update(d.as_bytes());
            }
            None => hasher.update(b"\x00"),
        }
        hasher.update(b"\n");
    }
    hex(&hasher.finalize()[..16])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_cannot_run_into_each_other() {
        let k = |p, h: Option<&str>, q| primary(p, h.map(str::as_bytes), q);
        assert_eq!(
            k("/a", Some("Example.COM:8080"), Some("x=1")).as_deref(),
            Some("/a example.com:8080 GET ?x=1")
        );
        assert_ne!(k("/a", None, None), k("/a", Some("-"), None));
        assert_ne!(k("/a", Some("h"), None), k("/a", Some("h"), Some("")));
        assert_eq!(
            k("/a", Some("h st%"), None).as_deref(),
            Some("/a h%20st%25 GET -")
        );
        assert_eq!(k("/a b", None, None), None);
        assert_eq!(k("/a", None, Some("x y")), None);
        assert_eq!(k("/a", None, Some("x\ty")), None);
        assert_eq!(
            k(&format!("/{}", "a".repeat(MAX_KEY_BYTES)), None, None),
            None
        );
    }

    #[test]
    fn kinds_of_keys() {
        let p = primary("/a", Some(b"h"), None).unwrap();
        assert!(is_entry(&entry(&p, "-")));
        assert!(!is_entry(&spec(&p)));
        assert!(!is_entry(&index(3)));
        assert!(index(9) < index(10));
    }

    #[test]
    fn variants_differ_by_value_and_by_absence() {
        let names = vec!["accept-language".to_string()];
        let en = value_digest(&[b"en".to_vec()]);
        let de = value_digest(&[b"de".to_vec()]);
        assert_eq!(variant(&[], |_| None), "-");
        let v_en = variant(&names, |_| Some(en.as_str()));
        assert_ne!(v_en, variant(&names, |_| Some(de.as_str())));
        assert_ne!(v_en, variant(&names, |_| None));
        assert_eq!(v_en.len(), 32);
        assert_eq!(value_digest(&[b" en ".to_vec()]), en);
    }
}
