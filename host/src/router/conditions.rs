//! Conditions on a request's headers and query parameters that a route adds to its
//! host, method and path (`headers = [...]`, `query = [...]` in the config). A route
//! with conditions takes a request only when every one holds; among routes with the
//! same host and path pattern, those with more conditions are tried first.
//!
//! A condition holds when the header or parameter is present, or when one of its
//! values equals the wanted value, or when one of them matches the regex as a whole
//! (the pattern is anchored, as `request-validator`'s are).
//! Exact values are compared as bytes; a regex sees a value that is not UTF-8 with
//! U+FFFD for each bad sequence (so it can still match, and never panics). Query
//! names and values are percent-decoded first (`+` is a space, as in forms).

use std::borrow::Cow;

use http::{HeaderMap, HeaderName};
use regex::{Regex, RegexBuilder};

/// The largest compiled regex allowed in a condition.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// What a condition asks of the values it looks at.
#[derive(Debug, Clone)]
pub enum Test {
    /// The header or parameter is there, whatever its value.
    Present,
    /// One value is exactly this.
    Exact(Vec<u8>),
    /// One value matches the regex as a whole.
    Regex(Regex),
}

impl Test {
    /// The test that `value` (exact) or `regex` describe, at most one of them given.
    pub fn parse(value: Option<&str>, regex: Option<&str>) -> Result<Self, String> {
        match (value, regex) {
            (Some(_), Some(_)) => Err("give `value` or `regex`, not both".into()),
            (Some(value), None) => Ok(Self::Exact(value.as_bytes().to_vec())),
            // Anchored: the whole value must match, as in `request-validator`. The
            // pattern is checked on its own first, so that one that only parses once
            // wrapped (`a)|(.*`) is refused rather than given another meaning.
            (None, Some(pattern)) => {
                let build = |source: &str| {
                    RegexBuilder::new(source)
                        .size_limit(REGEX_SIZE_LIMIT)
                        .build()
                        .map_err(|e| format!("regex {pattern:?}: {}", one_line(&e)))
                };
                build(pattern)?;
                build(&format!("^(?:{pattern})$")).map(Self::Regex)
            }
            (None, None) => Ok(Self::Present),
        }
    }

    fn accepts(&self, value: &[u8]) -> bool {
        match self {
            Self::Present => true,
            Self::Exact(want) => value == want.as_slice(),
            Self::Regex(regex) => regex.is_match(&String::from_utf8_lossy(value)),
        }
    }
}

/// Where a condition looks.
#[derive(Debug, Clone)]
enum Place {
    Header(HeaderName),
    Query(String),
}

/// One condition of a route.
#[derive(Debug, Clone)]
pub struct Condition {
    place: Place,
    test: Test,
}

impl Condition {
    /// A condition on header `name` (any letter case).
    pub fn header(name: &str, test: Test) -> Result<Self, String> {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("{name:?} is not a header name"))?;
        Ok(Self {
            place: Place::Header(name),
            test,
        })
    }

    /// A condition on query parameter `name` (compared after percent-decoding).
    pub fn query(name: &str, test: Test) -> Result<Self, String> {
        if name.is_empty() {
            return Err("a query parameter needs a name".into());
        }
        Ok(Self {
            place: Place::Query(name.to_string()),
            test,
        })
    }

    /// Whether the condition holds for `request`.
    pub fn holds(&self, request: &RequestParts<'_>) -> bool {
        match &self.place {
            Place::Header(name) => request
                .headers
                .get_all(name)
                .iter()
                .any(|value| self.test.accepts(value.as_bytes())),
            Place::Query(name) => query_pairs(request.query.unwrap_or(""))
                .any(|(key, value)| key.as_ref() == name.as_bytes() && self.test.accepts(&value)),
        }
    }
}

/// What conditions look at in a request.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    /// The request's headers, as the client sent them.
    pub headers: &'a HeaderMap,
    /// The query string, without `?`.
    pub query: Option<&'a str>,
}

impl RequestParts<'static> {
    /// A request with no headers and no query: no condition holds for it.
    pub fn bare() -> Self {
        static NO_HEADERS: std::sync::LazyLock<HeaderMap> =
            std::sync::LazyLock::new(HeaderMap::new);
        Self {
            headers: &NO_HEADERS,
            query: None,
        }
    }
}

/// The (name, value) pairs of a query string, percent-decoded, `+` as a space; a pair
/// without `=` has an empty value.
fn query_pairs(query: &str) -> impl Iterator<Item = (Cow<'_, [u8]>, Cow<'_, [u8]>)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(name), decode(value))
        })
}

fn decode(text: &str) -> Cow<'_, [u8]> {
    if !text.contains(['%', '+']) {
        return Cow::Borrowed(text.as_bytes());
    }
    let spaced = text.replace('+', " ");
    Cow::Owned(percent_encoding::percent_decode_str(&spaced).collect())
}

/// A regex error on one line: a syntax error's last line says what is wrong (the
/// lines above it draw the pattern with a caret, which a config error cannot show).
fn one_line(error: &regex::Error) -> String {
    match error {
        regex::Error::Syntax(text) => text
            .lines()
            .last()
            .unwrap_or_default()
            .trim_start_matches("error: ")
            .to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> RequestParts<'a> {
        RequestParts { headers, query }
    }

    #[test]
    fn header_conditions_look_at_every_value_in_any_case() {
        let mut headers = HeaderMap::new();
        headers.append("X-Canary", "no".parse().unwrap());
        headers.append("x-canary", "yes".parse().unwrap());
        headers.append(
            "user-agent",
            http::HeaderValue::from_bytes(b"Mozilla/5.0 (iPhone) Mobile \xff").unwrap(),
        );
        let holds = |name: &str, value: Option<&str>, regex: Option<&str>| {
            Condition::header(name, Test::parse(value, regex).unwrap())
                .unwrap()
                .holds(&request(&headers, None))
        };
        assert!(holds("x-canary", None, None));
        assert!(holds("X-CANARY", Some("yes"), None));
        assert!(!holds("x-canary", Some("YES"), None));
        assert!(holds("user-agent", None, Some(".*Mobile.*")));
        assert!(!holds("user-agent", None, Some("Mobile")), "anchored");
        assert!(
            holds("x-canary", None, Some("y.s|maybe")),
            "alternatives stay inside"
        );
        assert!(!holds("x-canary", None, Some("n|y")));
        assert!(!holds("x-absent", None, None));
    }

    #[test]
    fn query_conditions_compare_decoded_names_and_values() {
        let headers = HeaderMap::new();
        let query = Some("a=1&version=2&na%6De=x+y&flag&empty=");
        let holds = |name: &str, value: Option<&str>| {
            Condition::query(name, Test::parse(value, None).unwrap())
                .unwrap()
                .holds(&request(&headers, query))
        };
        assert!(holds("version", Some("2")));
        assert!(!holds("version", Some("1")));
        assert!(holds("name", Some("x y")));
        assert!(holds("flag", None));
        assert!(holds("flag", Some("")));
        assert!(holds("empty", None));
        assert!(!holds("missing", None));
        let none = Condition::query("a", Test::Present).unwrap();
        assert!(!none.holds(&request(&headers, None)));
    }

    #[test]
    fn bad_conditions_are_refused() {
        assert!(Test::parse(Some("a"), Some("b")).is_err());
        assert!(Test::parse(None, Some("(")).unwrap_err().contains("regex"));
        assert_eq!(
            Test::parse(None, Some("v(1|2")).unwrap_err(),
            r#"regex "v(1|2": unclosed group"#,
            "one line, about the pattern as written"
        );
        // Parses only once wrapped: refused, not read as "anything".
        assert!(Test::parse(None, Some("a)|(.*")).is_err());
        assert!(Condition::header("bad name", Test::Present).is_err());
        assert!(Condition::query("", Test::Present).is_err());
    }
}
