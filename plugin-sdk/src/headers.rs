//! [`Headers`]: an ordered list of header fields with case-insensitive names.

/// HTTP header fields in order. Names are stored lower-case and compared without
/// regard to case; values are bytes (usually ASCII text). Repeated fields are
/// separate entries.
///
/// ```
/// # use wasmgate_plugin_sdk::Headers;
/// let mut headers = Headers::new();
/// headers.append("X-Tag", "a");
/// headers.append("x-tag", "b");
/// assert_eq!(headers.get("X-TAG"), Some("a"));
/// assert_eq!(headers.get_all("x-tag").collect::<Vec<_>>(), ["a", "b"]);
/// headers.set("x-tag", "c");
/// assert!(headers.rename("x-tag", "x-label"));
/// assert_eq!(headers.iter().collect::<Vec<_>>(), [("x-label", &b"c"[..])]);
/// ```
///
/// Nothing is checked on the way in; the gateway refuses a plugin's output with an
/// invalid name or value ([`Headers::is_valid_name`], [`Headers::is_valid_value`]),
/// and so does the [`crate::testing`] harness.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, Vec<u8>)>);

impl Headers {
    /// No headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// The first value of `name` as text, if present and valid UTF-8.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.get_bytes(name)
            .and_then(|value| std::str::from_utf8(value).ok())
    }

    /// The first value of `name` as bytes.
    pub fn get_bytes(&self, name: &str) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// Every value of `name`, in order, as text (values that are not UTF-8 are skipped).
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .filter_map(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// Whether `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    /// Replaces every value of `name` with `value`.
    pub fn set(&mut self, name: &str, value: impl Into<Vec<u8>>) {
        self.remove(name);
        self.append(name, value);
    }

    /// Adds a value for `name`, keeping existing ones.
    pub fn append(&mut self, name: &str, value: impl Into<Vec<u8>>) {
        self.0.push((name.to_ascii_lowercase(), value.into()));
    }

    /// Removes every value of `name`; whether there was one.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.0.len();
        self.0.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.0.len() != before
    }

    /// Renames every `from` field to `to`, keeping values and order; whether there was one.
    pub fn rename(&mut self, from: &str, to: &str) -> bool {
        let to = to.to_ascii_lowercase();
        let mut renamed = false;
        for (name, _) in &mut self.0 {
            if name.eq_ignore_ascii_case(from) {
                name.clone_from(&to);
                renamed = true;
            }
        }
        renamed
    }

    /// The number of fields.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The fields in order, as (lower-case name, value bytes).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_slice()))
    }

    /// Whether `name` is a valid header field name (an HTTP token).
    pub fn is_valid_name(name: &str) -> bool {
        !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    }

    /// Whether `value` is a valid header field value (no control characters but tab).
    pub fn is_valid_value(value: &[u8]) -> bool {
        value
            .iter()
            .all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
    }

    pub(crate) fn from_list(list: Vec<(String, Vec<u8>)>) -> Self {
        Self(list)
    }

    pub(crate) fn into_list(self) -> Vec<(String, Vec<u8>)> {
        self.0
    }
}

/// Shows values as text (lossily), so test failures are readable.
impl std::fmt::Debug for Headers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(
                self.0
                    .iter()
                    .map(|(name, value)| (name, String::from_utf8_lossy(value))),
            )
            .finish()
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = (&'a str, &'a [u8]);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (String, Vec<u8>)>,
        fn(&'a (String, Vec<u8>)) -> (&'a str, &'a [u8]),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_slice()))
    }
}

impl<N: AsRef<str>, V: Into<Vec<u8>>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        let mut headers = Self::new();
        for (name, value) in iter {
            headers.append(name.as_ref(), value);
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_case_insensitive() {
        let mut headers = Headers::new();
        headers.append("X-Token", "a");
        headers.append("x-token", "b");
        assert_eq!(headers.get("X-TOKEN"), Some("a"));
        assert_eq!(headers.get_all("x-token").collect::<Vec<_>>(), ["a", "b"]);
        assert!(headers.contains("x-ToKeN"));
        assert_eq!(headers.iter().next().unwrap().0, "x-token");
    }

    #[test]
    fn set_remove_rename() {
        let mut headers: Headers = [("a", "1"), ("b", "2"), ("a", "3")].into_iter().collect();
        headers.set("A", "9");
        assert_eq!(headers.get_all("a").collect::<Vec<_>>(), ["9"]);
        assert!(headers.rename("b", "C"));
        assert_eq!(headers.get("c"), Some("2"));
        assert!(!headers.contains("b"));
        assert!(headers.remove("c"));
        assert!(!headers.remove("c"));
        assert_eq!(headers.len(), 1);
    }

    #[test]
    fn rename_keeps_order_and_values_and_debug_shows_text() {
        let mut headers: Headers = [("a", "1"), ("b", "2"), ("A", "3")].into_iter().collect();
        assert!(headers.rename("a", "z"));
        assert!(!headers.rename("missing", "y"));
        let fields: Vec<_> = (&headers).into_iter().collect();
        assert_eq!(fields, [("z", &b"1"[..]), ("b", b"2"), ("z", b"3")]);
        assert_eq!(
            format!("{headers:?}"),
            r#"[("z", "1"), ("b", "2"), ("z", "3")]"#
        );
    }

    #[test]
    fn values_that_are_not_text() {
        let mut headers = Headers::new();
        headers.append("bin", vec![0xff, 0x41]);
        headers.append("bin", "ok");
        assert_eq!(headers.get("bin"), None, "the first value is not UTF-8");
        assert_eq!(headers.get_bytes("bin"), Some(&[0xff, 0x41][..]));
        assert_eq!(headers.get_all("bin").collect::<Vec<_>>(), ["ok"]);
        assert!(headers.get("absent").is_none());
    }

    #[test]
    fn validity() {
        assert!(Headers::is_valid_name("x-ok_1"));
        assert!(!Headers::is_valid_name("bad header"));
        assert!(!Headers::is_valid_name(""));
        assert!(Headers::is_valid_value(b"text\twith tab"));
        assert!(!Headers::is_valid_value(b"line\nbreak"));
    }
}
