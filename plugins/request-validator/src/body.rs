//! Rules on the request body: its content type, whether it must be there, and the
//! JSON Schema it must satisfy (compiled once, when the plugin is configured).

use jsonschema::error::ValidationErrorKind;
use serde_json::Value;

use crate::Problems;

/// The longest message taken from the schema validator, in characters; longer ones
/// are cut (they may quote the schema).
const MAX_MESSAGE_CHARS: usize = 200;

/// Content types a body may have: `type/subtype` or `type/*`, lower case.
#[derive(Debug)]
pub(crate) struct ContentTypes(Vec<String>);

impl ContentTypes {
    /// Checks the list from the config.
    pub(crate) fn new(types: Vec<String>) -> Result<Self, String> {
        if types.is_empty() {
            return Err(
                "content_types: empty, so no body would pass; leave it out to allow any".into(),
            );
        }
        let mut checked = Vec::with_capacity(types.len());
        for text in types {
            let lower = text.trim().to_ascii_lowercase();
            let valid = lower.split_once('/').is_some_and(|(kind, subtype)| {
                wasmgate_plugin_sdk::Headers::is_valid_name(kind)
                    && kind != "*"
                    && (subtype == "*" || wasmgate_plugin_sdk::Headers::is_valid_name(subtype))
            });
            if !valid {
                return Err(format!(
                    "content_types: {text:?} is not a media type like application/json or text/*"
                ));
            }
            checked.push(lower);
        }
        Ok(Self(checked))
    }

    /// What is wrong with the `Content-Type` values of a request that has a body.
    pub(crate) fn check(&self, values: &[String]) -> Option<String> {
        let expected = || self.0.join(", ");
        let [value] = values else {
            return Some(if values.is_empty() {
                format!("is required with a body; expected {}", expected())
            } else {
                "is given more than once".to_string()
            });
        };
        // Parameters (`; charset=utf-8`) do not matter.
        let media = value
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let allowed = self
            .0
            .iter()
            .any(|allowed| match allowed.strip_suffix("/*") {
                Some(kind) => media
                    .split_once('/')
                    .is_some_and(|(k, subtype)| k == kind && !subtype.is_empty()),
                None => *allowed == media,
            });
        (!allowed).then(|| {
            let shown: String = media.chars().take(100).collect();
            format!("{shown:?} is not allowed; expected {}", expected())
        })
    }
}

/// A JSON Schema, compiled.
pub(crate) struct Schema(jsonschema::Validator);

impl std::fmt::Debug for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Schema")
    }
}

impl Schema {
    /// Compiles `schema` (its draft from `$schema`, else 2020-12), with `format`
    /// asserted. References must point inside the schema: nothing is fetched.
    pub(crate) fn compile(schema: &Value) -> Result<Self, String> {
        jsonschema::options()
            .should_validate_formats(true)
            .build(schema)
            .map(Self)
            .map_err(|e| match e.instance_path().as_str() {
                "" => format!("schema: {e}"),
                at => format!("schema at {at}: {e}"),
            })
    }

    /// Adds a problem for each way `body` fails the schema, at its JSON pointer.
    pub(crate) fn check(&self, body: &Value, problems: &mut Problems) {
        for error in self.0.iter_errors(body) {
            let mut field = error.instance_path().as_str().to_string();
            // A missing property is named by its own pointer, not its parent's.
            if let ValidationErrorKind::Required { property } = error.kind()
                && let Some(name) = property.as_str()
            {
                field.push('/');
                field.push_str(&name.replace('~', "~0").replace('/', "~1"));
            }
            // The masked message leaves the client's values out.
            let message = error.masked().to_string();
            problems.push(body_field(field), cut(&message));
        }
    }
}

/// The name of a place in the body: its JSON pointer, or `body` for the whole.
pub(crate) fn body_field(pointer: String) -> String {
    if pointer.is_empty() {
        "body".into()
    } else {
        pointer
    }
}

fn cut(message: &str) -> String {
    match message.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((at, _)) => format!("{}…", &message[..at]),
        None => message.to_string(),
    }
}
