//! Reading a query string (`a=1&b=x%20y`) as HTML forms write it: `&`-separated
//! `name=value` pairs, values percent-decoded once, `+` read as a space.

/// The value of the first `name=…` pair in `query` (the raw query, without `?`),
/// percent-decoded once; `None` when there is no such pair or its value is not UTF-8
/// once decoded. A `%` not followed by two hex digits stays as it is.
///
/// ```
/// use wasmgate_plugin_sdk::query;
/// assert_eq!(query::param("x=1&token=a%2Eb", "token").as_deref(), Some("a.b"));
/// assert_eq!(query::param("tokens=1", "token"), None);
/// ```
pub fn param(query: &str, name: &str) -> Option<String> {
    let raw = query
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))?;
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_decoded_once_and_names_match_whole() {
        assert_eq!(
            param("x=1&prefix=%2Fapi%2Fv1", "prefix").as_deref(),
            Some("/api/v1")
        );
        assert_eq!(param("prefix=/a%2525", "prefix").as_deref(), Some("/a%25"));
        assert_eq!(param("prefix=/a%", "prefix").as_deref(), Some("/a%"));
        assert_eq!(param("q=a+b%41", "q").as_deref(), Some("a bA"));
        assert_eq!(param("prefixes=/a", "prefix"), None);
        assert_eq!(param("prefix", "prefix"), None);
        assert_eq!(param("a=%ff", "a"), None, "not UTF-8");
        assert_eq!(param("a=1&a=2", "a").as_deref(), Some("1"));
    }
}
