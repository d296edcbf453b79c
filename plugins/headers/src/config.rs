//! The plugin's config as written on a route, and its checks. Maps keep the order
//! they are written in (no `serde_json/preserve_order` needed), and a value may be
//! one string or a list of them.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use wasmgate_plugin_sdk::Headers;

use crate::Edits;

/// The plugin's config: `{"request": {…}, "response": {…}}`, both optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Changes to the request before it goes upstream.
    #[serde(default)]
    pub(crate) request: EditsConfig,
    /// Changes to the response before it goes to the client.
    #[serde(default)]
    pub(crate) response: EditsConfig,
}

/// The changes for one direction, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EditsConfig {
    /// `"remove": ["x-a"]`: drop every value.
    #[serde(default)]
    remove: Vec<String>,
    /// `"rename": {"x-old": "x-new"}`: rename, keeping the values in order.
    #[serde(default)]
    rename: Pairs<String>,
    /// `"set": {"x-b": "2"}`: replace every value (a list sets several).
    #[serde(default)]
    set: Pairs<Values>,
    /// `"add": {"x-c": "3"}`: append, keeping existing values (a list adds several).
    #[serde(default)]
    add: Pairs<Values>,
}

impl EditsConfig {
    /// Checks names and values; `side` (`request` / `response`) prefixes messages.
    pub(crate) fn check(self, side: &str) -> Result<Edits, String> {
        let mut seen = Seen::new(side);
        let remove = self
            .remove
            .iter()
            .map(|name| seen.name("remove", name))
            .collect::<Result<Vec<_>, _>>()?;
        let mut seen = Seen::new(side);
        let mut rename = Vec::new();
        for (from, to) in &self.rename.0 {
            rename.push((seen.name("rename", from)?, settable(side, "rename", to)?));
        }
        if let Some((_, to)) = rename
            .iter()
            .find(|(_, to)| rename.iter().any(|(from, _)| from == to))
        {
            return Err(format!(
                "{side}.rename: {to:?} is both renamed and a rename target; \
                 rename chains are refused because their result would depend on order"
            ));
        }
        let mut seen = Seen::new(side);
        let set = seen.values("set", self.set)?;
        let mut seen = Seen::new(side);
        let add = seen.values("add", self.add)?;
        Ok(Edits {
            remove,
            rename,
            set,
            add,
        })
    }
}

/// The names already given in one operation, to refuse a name given twice
/// (`X-A` and `x-a` are the same header).
struct Seen<'a> {
    side: &'a str,
    names: Vec<String>,
}

impl<'a> Seen<'a> {
    fn new(side: &'a str) -> Self {
        Self {
            side,
            names: Vec::new(),
        }
    }

    fn name(&mut self, op: &str, name: &str) -> Result<String, String> {
        let name = checked_name(self.side, op, name)?;
        if self.names.contains(&name) {
            return Err(format!("{}.{op}: {name:?} is given twice", self.side));
        }
        self.names.push(name.clone());
        Ok(name)
    }

    fn values(
        &mut self,
        op: &str,
        pairs: Pairs<Values>,
    ) -> Result<Vec<(String, Vec<String>)>, String> {
        pairs
            .0
            .into_iter()
            .map(|(name, Values(values))| {
                let name = self.name(op, &name)?;
                settable(self.side, op, &name)?;
                if let Some(bad) = values
                    .iter()
                    .find(|v| !Headers::is_valid_value(v.as_bytes()))
                {
                    return Err(format!(
                        "{}.{op}.{name}: {bad:?} is not a valid header value",
                        self.side
                    ));
                }
                Ok((name, values))
            })
            .collect()
    }
}

fn checked_name(side: &str, op: &str, name: &str) -> Result<String, String> {
    if Headers::is_valid_name(name) {
        Ok(name.to_ascii_lowercase())
    } else {
        Err(format!("{side}.{op}: {name:?} is not a valid header name"))
    }
}

/// A name the plugin may give a value to: valid, and not a hop-by-hop header, which
/// the gateway would refuse on every request.
fn settable(side: &str, op: &str, name: &str) -> Result<String, String> {
    let name = checked_name(side, op, name)?;
    if Headers::is_reserved(&name) {
        return Err(format!(
            "{side}.{op}: {name:?} is a hop-by-hop header, which only the gateway sets"
        ));
    }
    Ok(name)
}

/// A JSON object read as (key, value) pairs in the order written.
#[derive(Debug)]
pub(crate) struct Pairs<V>(Vec<(String, V)>);

impl<V> Default for Pairs<V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Pairs<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PairsVisitor<V>(PhantomData<V>);

        impl<'de, V: Deserialize<'de>> Visitor<'de> for PairsVisitor<V> {
            type Value = Pairs<V>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map from header names")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut pairs = Vec::new();
                while let Some(pair) = map.next_entry()? {
                    pairs.push(pair);
                }
                Ok(Pairs(pairs))
            }
        }

        deserializer.deserialize_map(PairsVisitor(PhantomData))
    }
}

/// One header value or a list of them.
#[derive(Debug)]
pub(crate) struct Values(Vec<String>);

impl<'de> Deserialize<'de> for Values {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ValuesVisitor;

        impl<'de> Visitor<'de> for ValuesVisitor {
            type Value = Values;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a header value (a string) or a list of them")
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<Values, E> {
                Ok(Values(vec![value.to_string()]))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Values, A::Error> {
                let mut values = Vec::new();
                while let Some(value) = seq.next_element::<String>()? {
                    values.push(value);
                }
                Ok(Values(values))
            }
        }

        deserializer.deserialize_any(ValuesVisitor)
    }
}
