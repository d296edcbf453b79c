//! Rules on headers and query parameters: present when required, and every value
//! matching a regular expression (the whole value: the pattern is anchored).

use std::collections::BTreeMap;
use std::fmt;

use regex::Regex;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

/// A rule as written in the config: a pattern (`"^v[12]$"`, and the parameter is
/// required), or a table `{pattern?, required?}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Every value must match this regular expression, as a whole. Default: any value.
    #[serde(default)]
    pattern: Option<String>,
    /// Whether the parameter must be present. Default true.
    #[serde(default = "yes")]
    required: bool,
}

fn yes() -> bool {
    true
}

impl<'de> Deserialize<'de> for ParamRule {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RuleVisitor;

        impl<'de> Visitor<'de> for RuleVisitor {
            type Value = ParamRule;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a pattern string or a table {pattern, required}")
            }

            fn visit_str<E: de::Error>(self, pattern: &str) -> Result<ParamRule, E> {
                Ok(ParamRule(RuleConfig {
                    pattern: Some(pattern.to_string()),
                    required: true,
                }))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ParamRule, A::Error> {
                RuleConfig::deserialize(de::value::MapAccessDeserializer::new(map)).map(ParamRule)
            }
        }

        deserializer.deserialize_any(RuleVisitor)
    }
}

/// One parameter's rule in the config ([`RuleConfig`] from a string or a table).
#[derive(Debug)]
pub struct ParamRule(RuleConfig);

/// Where a parameter is: a header or a query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    Header,
    Query,
}

impl Place {
    fn prefix(self) -> &'static str {
        match self {
            Self::Header => "header",
            Self::Query => "query",
        }
    }
}

/// A checked rule on one parameter.
#[derive(Debug)]
pub(crate) struct Param {
    /// The header name (lower case) or the query parameter's name.
    pub name: String,
    place: Place,
    /// The pattern as written, for messages; `None` for any value.
    source: Option<String>,
    regex: Option<Regex>,
    required: bool,
}

impl Param {
    /// Checks the rules of `place` from the config (`field` is the config's name for
    /// them, for errors).
    pub(crate) fn compile(
        rules: BTreeMap<String, ParamRule>,
        place: Place,
        field: &str,
    ) -> Result<Vec<Self>, String> {
        let mut params: Vec<Self> = Vec::with_capacity(rules.len());
        for (name, ParamRule(rule)) in rules {
            let name = match place {
                Place::Header => {
                    if !wasmgate_plugin_sdk::Headers::is_valid_name(&name) {
                        return Err(format!("{field}: {name:?} is not a valid header name"));
                    }
                    name.to_ascii_lowercase()
                }
                Place::Query if name.is_empty() => {
                    return Err(format!("{field}: a parameter name is empty"));
                }
                Place::Query => name,
            };
            if params.iter().any(|p| p.name == name) {
                return Err(format!(
                    "{field}: {name} is given twice (names ignore case)"
                ));
            }
            let regex = match &rule.pattern {
                Some(pattern) => Some(
                    Regex::new(&format!("^(?:{pattern})$"))
                        .map_err(|e| format!("{field}.{name}: invalid pattern {pattern:?}: {e}"))?,
                ),
                None => None,
            };
            params.push(Self {
                name,
                place,
                source: rule.pattern,
                regex,
                required: rule.required,
            });
        }
        Ok(params)
    }

    /// The field name in a failure: `header:x-api-version`, `query:page`.
    pub(crate) fn field(&self) -> String {
        format!("{}:{}", self.place.prefix(), self.name)
    }

    /// What is wrong with `values`, the parameter's values in the request (none when
    /// absent); `None` when nothing is.
    pub(crate) fn check(&self, values: &[String]) -> Option<String> {
        if values.is_empty() {
            return self.required.then(|| "is required".to_string());
        }
        let regex = self.regex.as_ref()?;
        let source = self.source.as_deref().unwrap_or_default();
        values
            .iter()
            .any(|value| !regex.is_match(value))
            .then(|| format!("does not match the pattern {source}"))
    }
}

/// The values of query parameter `name` in `query` (without `?`), decoded as a form
/// is: `%XX` escapes, and `+` for a space.
pub(crate) fn query_values(query: &str, name: &str) -> Vec<String> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key) == name).then(|| decode(value))
        })
        .collect()
}

/// Decodes `%XX` escapes and `+`; a `%` that starts no escape stays as it is, and
/// bytes that are not UTF-8 become U+FFFD.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(high), Some(low)) => {
                    out.push(high << 4 | low);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(byte: u8) -> Option<u8> {
    (byte as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_decoded_as_a_form() {
        let query = "page=2&tag=a+b&tag=%41%zz%&x&=y&p%61ge=3&page";
        assert_eq!(query_values(query, "page"), ["2", "3", ""]);
        assert_eq!(query_values(query, "tag"), ["a b", "A%zz%"]);
        assert_eq!(query_values(query, "x"), [""]);
        assert_eq!(query_values(query, ""), ["y"]);
        assert!(query_values(query, "nope").is_empty());
        assert_eq!(decode("%"), "%");
        assert_eq!(decode("%4"), "%4");
        assert_eq!(decode("%ff"), "\u{fffd}");
    }
}
