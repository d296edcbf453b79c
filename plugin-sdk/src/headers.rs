//! [`Headers`]: the header fields of a message, with case-insensitive names. Those of
//! the request or response being served live in the gateway and are read and changed
//! through calls (a plugin pays only for what it touches); those of a response the
//! plugin makes itself ([`crate::Response`]) or of an outbound call live in the plugin.

use crate::exchange::{EditError, Ex, Part, remember};

/// HTTP header fields. Names are compared without regard to case (and come back
/// lower-case); values are bytes, usually ASCII text. Repeated fields are separate
/// entries, in order.
///
/// ```
/// # use wasmgate_plugin_sdk::Headers;
/// let mut headers = Headers::new();
/// headers.append("X-Tag", "a");
/// headers.append("x-tag", "b");
/// assert_eq!(headers.get("X-TAG").as_deref(), Some("a"));
/// assert_eq!(headers.get_all("x-tag"), ["a", "b"]);
/// headers.set("x-tag", "c");
/// assert!(headers.rename("x-tag", "x-label"));
/// assert_eq!(headers.entries(), [("x-label".to_string(), b"c".to_vec())]);
/// ```
///
/// Text getters never hide a value: one that is not UTF-8 comes back with U+FFFD in
/// place of each bad byte (use [`Headers::get_bytes`] for the exact bytes), so a
/// present header never reads as absent.
///
/// Changes to the request or response being served are checked by the gateway when
/// they are made: an invalid name or value, or a hop-by-hop header (the gateway's to
/// set), is refused. [`Headers::set`], [`Headers::append`] and [`Headers::remove`]
/// then fail the request with `PLUGIN_ERROR` once the hook returns, as invalid output
/// would; [`Headers::try_set`] and [`Headers::try_append`] hand the error back
/// instead. The headers of a [`crate::Response`] the plugin makes are checked when it
/// is returned.
pub struct Headers<'a>(Inner<'a>);

enum Inner<'a> {
    Owned(Vec<(String, Vec<u8>)>),
    Exchange(Ex<'a>, Part),
}

fn text(value: Vec<u8>) -> String {
    String::from_utf8(value).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

impl Headers<'static> {
    /// No headers (for a response or outbound request the plugin builds).
    pub fn new() -> Self {
        Self(Inner::Owned(Vec::new()))
    }

    pub(crate) fn from_list(list: Vec<(String, Vec<u8>)>) -> Self {
        Self(Inner::Owned(list))
    }

    /// The fields as (lower-case name, value) pairs, for handing to the host.
    pub(crate) fn into_list(self) -> Vec<(String, Vec<u8>)> {
        match self.0 {
            Inner::Owned(list) => list,
            Inner::Exchange(ex, part) => ex.header_entries(part),
        }
    }
}

impl Default for Headers<'static> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a> Headers<'a> {
    pub(crate) fn exchange(ex: Ex<'a>, part: Part) -> Self {
        Self(Inner::Exchange(ex, part))
    }

    /// The first value of `name` as text, if present.
    pub fn get(&self, name: &str) -> Option<String> {
        self.get_bytes(name).map(text)
    }

    /// The first value of `name` as bytes, if present.
    pub fn get_bytes(&self, name: &str) -> Option<Vec<u8>> {
        match &self.0 {
            Inner::Owned(list) => list
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone()),
            Inner::Exchange(ex, part) => ex.header(*part, name),
        }
    }

    /// Every value of `name`, in order, as text.
    pub fn get_all(&self, name: &str) -> Vec<String> {
        self.get_all_bytes(name).into_iter().map(text).collect()
    }

    /// Every value of `name`, in order, as bytes.
    pub fn get_all_bytes(&self, name: &str) -> Vec<Vec<u8>> {
        match &self.0 {
            Inner::Owned(list) => list
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
                .collect(),
            Inner::Exchange(ex, part) => ex.header_all(*part, name),
        }
    }

    /// The first value of each of `names`, as text, in one call to the gateway: cheaper
    /// than one [`Headers::get`] per name when a plugin reads several.
    pub fn get_many(&self, names: &[&str]) -> Vec<Option<String>> {
        match &self.0 {
            Inner::Owned(_) => names.iter().map(|name| self.get(name)).collect(),
            Inner::Exchange(ex, part) => {
                let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
                ex.headers(*part, &names)
                    .into_iter()
                    .map(|v| v.map(text))
                    .collect()
            }
        }
    }

    /// Whether `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        match &self.0 {
            Inner::Owned(list) => list.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)),
            Inner::Exchange(ex, part) => ex.has_header(*part, name),
        }
    }

    /// Replaces every value of `name` with `value`. A change the gateway refuses fails
    /// the request once the hook returns (see [`Headers`]).
    pub fn set(&mut self, name: &str, value: impl AsRef<[u8]>) {
        remember(self.try_set(name, value));
    }

    /// Replaces every value of `name` with `value`, or says why the gateway refused.
    pub fn try_set(&mut self, name: &str, value: impl AsRef<[u8]>) -> Result<(), EditError> {
        match &mut self.0 {
            Inner::Owned(list) => {
                list.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
                list.push((name.to_ascii_lowercase(), value.as_ref().to_vec()));
                Ok(())
            }
            Inner::Exchange(ex, part) => ex.set_header(*part, name, value.as_ref()),
        }
    }

    /// Adds a value for `name`, keeping existing ones. A change the gateway refuses
    /// fails the request once the hook returns.
    pub fn append(&mut self, name: &str, value: impl AsRef<[u8]>) {
        remember(self.try_append(name, value));
    }

    /// Adds a value for `name`, or says why the gateway refused.
    pub fn try_append(&mut self, name: &str, value: impl AsRef<[u8]>) -> Result<(), EditError> {
        match &mut self.0 {
            Inner::Owned(list) => {
                list.push((name.to_ascii_lowercase(), value.as_ref().to_vec()));
                Ok(())
            }
            Inner::Exchange(ex, part) => ex.append_header(*part, name, value.as_ref()),
        }
    }

    /// Removes every value of `name`; whether there was one.
    pub fn remove(&mut self, name: &str) -> bool {
        match &mut self.0 {
            Inner::Owned(list) => {
                let before = list.len();
                list.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
                list.len() != before
            }
            Inner::Exchange(ex, part) => match ex.remove_header(*part, name) {
                Ok(removed) => removed,
                Err(error) => {
                    remember(Err(error));
                    false
                }
            },
        }
    }

    /// Renames every `from` field to `to`, keeping values and their order; whether
    /// there was one.
    pub fn rename(&mut self, from: &str, to: &str) -> bool {
        if let Inner::Owned(list) = &mut self.0 {
            let to = to.to_ascii_lowercase();
            let mut renamed = false;
            for (name, _) in list.iter_mut() {
                if name.eq_ignore_ascii_case(from) {
                    name.clone_from(&to);
                    renamed = true;
                }
            }
            return renamed;
        }
        let values = self.get_all_bytes(from);
        if values.is_empty() {
            return false;
        }
        self.remove(from);
        for value in values {
            self.append(to, value);
        }
        true
    }

    /// Every field in order, as (lower-case name, value bytes).
    pub fn entries(&self) -> Vec<(String, Vec<u8>)> {
        match &self.0 {
            Inner::Owned(list) => list.clone(),
            Inner::Exchange(ex, part) => ex.header_entries(*part),
        }
    }

    /// The number of fields.
    pub fn len(&self) -> usize {
        match &self.0 {
            Inner::Owned(list) => list.len(),
            Inner::Exchange(..) => self.entries().len(),
        }
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `name` is a valid header field name (an HTTP token).
    pub fn is_valid_name(name: &str) -> bool {
        crate::rules::is_valid_name(name)
    }

    /// Whether `value` is a valid header field value (no control characters but tab).
    pub fn is_valid_value(value: &[u8]) -> bool {
        crate::rules::is_valid_value(value)
    }

    /// Whether `name` (any case) is a header only the gateway sets: a hop-by-hop
    /// header such as `connection` or `transfer-encoding`. Setting or adding one is
    /// refused (check names from a config with this in [`crate::Plugin::new`]).
    pub fn is_reserved(name: &str) -> bool {
        crate::rules::is_reserved(name)
    }
}

impl Clone for Headers<'static> {
    fn clone(&self) -> Self {
        Self(Inner::Owned(self.entries()))
    }
}

impl PartialEq for Headers<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.entries() == other.entries()
    }
}

impl Eq for Headers<'_> {}

/// Shows values as text (lossily), so test failures are readable.
impl std::fmt::Debug for Headers<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(
                self.entries()
                    .into_iter()
                    .map(|(name, value)| (name, String::from_utf8_lossy(&value).into_owned())),
            )
            .finish()
    }
}

impl<N: AsRef<str>, V: AsRef<[u8]>> FromIterator<(N, V)> for Headers<'static> {
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
        assert_eq!(headers.get("X-TOKEN").as_deref(), Some("a"));
        assert_eq!(headers.get_all("x-token"), ["a", "b"]);
        assert!(headers.contains("x-ToKeN"));
        assert_eq!(headers.entries()[0].0, "x-token");
    }

    #[test]
    fn set_remove_rename() {
        let mut headers: Headers = [("a", "1"), ("b", "2"), ("a", "3")].into_iter().collect();
        headers.set("A", "9");
        assert_eq!(headers.get_all("a"), ["9"]);
        assert!(headers.rename("b", "C"));
        assert_eq!(headers.get("c").as_deref(), Some("2"));
        assert!(!headers.contains("b"));
        assert!(headers.remove("c"));
        assert!(!headers.remove("c"));
        assert_eq!(headers.len(), 1);
        assert_eq!(
            headers.get_many(&["a", "zz"]),
            [Some("9".to_string()), None]
        );
    }

    #[test]
    fn rename_keeps_order_and_values_and_debug_shows_text() {
        let mut headers: Headers = [("a", "1"), ("b", "2"), ("A", "3")].into_iter().collect();
        assert!(headers.rename("a", "z"));
        assert!(!headers.rename("missing", "y"));
        let names: Vec<String> = headers.entries().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["z", "b", "z"]);
        assert_eq!(
            format!("{headers:?}"),
            r#"[("z", "1"), ("b", "2"), ("z", "3")]"#
        );
    }

    #[test]
    fn values_that_are_not_text_are_never_hidden() {
        let mut headers = Headers::new();
        headers.append("bin", vec![0xff, 0x41]);
        headers.append("bin", "ok");
        assert_eq!(headers.get("bin").as_deref(), Some("\u{fffd}A"));
        assert_eq!(headers.get_bytes("bin"), Some(vec![0xff, 0x41]));
        assert_eq!(headers.get_all("bin"), ["\u{fffd}A", "ok"]);
        assert!(headers.get("absent").is_none());
    }

    #[test]
    fn validity() {
        assert!(Headers::is_valid_name("x-ok_1"));
        assert!(!Headers::is_valid_name("bad header"));
        assert!(!Headers::is_valid_name(""));
        assert!(Headers::is_valid_value(b"text\twith tab"));
        assert!(!Headers::is_valid_value(b"line\nbreak"));
        assert!(Headers::is_reserved("Connection"));
        assert!(!Headers::is_reserved("x-connection"));
    }
}
