//! Rules on the request body: its content type, whether it must be there, and the
//! JSON Schema it must satisfy (compiled once, when the plugin is configured).

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
pub(crate) struct Schema {
    schemas: boon::Schemas,
    index: boon::SchemaIndex,
}

impl std::fmt::Debug for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Schema")
    }
}

/// Where the config's schema lives for the compiler: a name nothing can fetch.
const SCHEMA_URL: &str = "http://request-validator.invalid/schema.json";

/// Loads nothing: a `$ref` outside the schema (or to a `$schema` other than the
/// drafts the compiler embeds) fails the compilation instead of being fetched (on a
/// native build the compiler would otherwise read `file:` URLs).
struct NoLoader;

impl boon::UrlLoader for NoLoader {
    fn load(&self, url: &str) -> Result<Value, Box<dyn std::error::Error>> {
        Err(format!("{url} is outside the schema: a plugin fetches nothing").into())
    }
}

impl Schema {
    /// Compiles `schema` (its draft from `$schema`, else 2020-12), with `format`
    /// asserted. References must point inside the schema: nothing is fetched.
    pub(crate) fn compile(schema: &Value) -> Result<Self, String> {
        let mut compiler = boon::Compiler::new();
        compiler.set_default_draft(boon::Draft::V2020_12);
        compiler.enable_format_assertions();
        compiler.use_loader(Box::new(NoLoader));
        let mut schemas = boon::Schemas::new();
        let compiled = match compiler.add_resource(SCHEMA_URL, schema.clone()) {
            Ok(()) => compiler.compile(SCHEMA_URL, &mut schemas),
            Err(e) => Err(e),
        };
        match compiled {
            Ok(index) => Ok(Self { schemas, index }),
            Err(e) => Err(compile_error(&e)),
        }
    }

    /// Adds a problem for each way `body` fails the schema, at its JSON pointer.
    pub(crate) fn check(&self, body: &Value, problems: &mut Problems) {
        if let Err(error) = self.schemas.validate(body, self.index) {
            report(&error, problems);
        }
    }
}

/// A compile error, `schema at POINTER: what` where it has a place in the schema.
fn compile_error(error: &boon::CompileError) -> String {
    use boon::CompileError;
    let (at, what) = match error {
        // The schema fails its metaschema: the first innermost failure says where.
        CompileError::ValidationError { src, .. } => {
            let mut leaf = src;
            while let Some(cause) = leaf.causes.first() {
                leaf = cause;
            }
            (leaf.instance_location.to_string(), leaf.kind.to_string())
        }
        CompileError::InvalidRegex { url, regex, src } => (
            pointer_in(url),
            format!("invalid regular expression {regex:?}: {src}"),
        ),
        CompileError::LoadUrlError { url, .. } | CompileError::UnsupportedUrlScheme { url } => (
            String::new(),
            format!("cannot resolve {url}: references must point inside the schema"),
        ),
        other => (String::new(), other.to_string()),
    };
    // Relative references resolve against SCHEMA_URL: show them as they were written.
    let base = SCHEMA_URL.trim_end_matches("schema.json");
    let what = what.replace(SCHEMA_URL, "").replace(base, "");
    match at.as_str() {
        "" => format!("schema: {what}"),
        at => format!("schema at {at}: {what}"),
    }
}

/// The JSON pointer in the fragment of a URL of the schema (`…#/properties/a`).
fn pointer_in(url: &str) -> String {
    url.split_once('#')
        .map(|(_, fragment)| percent_decode(fragment))
        .unwrap_or_default()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Adds the innermost failures of `error` (a tree: a keyword that applies subschemas
/// lists their failures as causes) as problems. `anyOf`, `oneOf`, `not` and
/// `contains` fail as a whole: one problem, not one per alternative.
fn report(error: &boon::ValidationError<'_, '_>, problems: &mut Problems) {
    use boon::ErrorKind as K;
    let at = error.instance_location.to_string();
    match &error.kind {
        K::Group
        | K::Schema { .. }
        | K::Reference { .. }
        | K::AllOf
        | K::PropertyName { .. }
        | K::ContentSchema
            if !error.causes.is_empty() =>
        {
            for cause in &error.causes {
                report(cause, problems);
            }
        }
        // A missing property is named by its own pointer, not its parent's.
        K::Required { want: missing }
        | K::Dependency { missing, .. }
        | K::DependentRequired { missing, .. } => {
            for name in missing {
                let field = format!("{at}/{}", name.replace('~', "~0").replace('/', "~1"));
                problems.push(
                    body_field(field),
                    cut(&format!("{} is a required property", quoted(name))),
                );
            }
        }
        kind => problems.push(body_field(at), cut(&masked(kind))),
    }
}

fn quoted(text: &str) -> String {
    Value::from(text).to_string()
}

/// The message for a failure, with the client's values left out (the schema's are
/// kept: the operator wrote them).
fn masked(kind: &boon::ErrorKind<'_, '_>) -> String {
    use boon::ErrorKind as K;
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    match kind {
        K::Type { want, .. } => {
            let types: Vec<String> = want.iter().map(|t| format!("\"{t}\"")).collect();
            match types.as_slice() {
                [one] => format!("value is not of type {one}"),
                many => format!("value is not of types {}", many.join(", ")),
            }
        }
        K::Format { want, .. } => format!("value is not a \"{want}\""),
        K::Enum { want } => {
            let options: Vec<String> = want.iter().map(Value::to_string).collect();
            format!("value is not one of {}", options.join(", "))
        }
        K::Const { want } => format!("{want} was expected"),
        K::Minimum { want, .. } => format!("value is less than the minimum of {want}"),
        K::Maximum { want, .. } => format!("value is greater than the maximum of {want}"),
        K::ExclusiveMinimum { want, .. } => {
            format!("value is less than or equal to the minimum of {want}")
        }
        K::ExclusiveMaximum { want, .. } => {
            format!("value is greater than or equal to the maximum of {want}")
        }
        K::MultipleOf { want, .. } => format!("value is not a multiple of {want}"),
        K::MinLength { want, .. } => {
            format!(
                "value is shorter than {}",
                plural(*want, "character", "characters")
            )
        }
        K::MaxLength { want, .. } => {
            format!(
                "value is longer than {}",
                plural(*want, "character", "characters")
            )
        }
        K::MinItems { want, .. } => {
            format!("value has less than {}", plural(*want, "item", "items"))
        }
        K::MaxItems { want, .. } => {
            format!("value has more than {}", plural(*want, "item", "items"))
        }
        K::MinProperties { want, .. } => {
            format!(
                "value has less than {}",
                plural(*want, "property", "properties")
            )
        }
        K::MaxProperties { want, .. } => {
            format!(
                "value has more than {}",
                plural(*want, "property", "properties")
            )
        }
        K::MinContains { want, .. } => format!(
            "value has less than {} valid under the given schema",
            plural(*want, "item", "items")
        ),
        K::MaxContains { want, .. } => format!(
            "value has more than {} valid under the given schema",
            plural(*want, "item", "items")
        ),
        K::Pattern { want, .. } => format!("value does not match \"{want}\""),
        K::AdditionalProperties { got } => {
            let names: Vec<String> = got.iter().map(|name| format!("'{name}'")).collect();
            let verb = if names.len() == 1 { "was" } else { "were" };
            format!(
                "Additional properties are not allowed ({} {verb} unexpected)",
                names.join(", ")
            )
        }
        K::AdditionalItems { got } => format!(
            "Additional items are not allowed ({})",
            plural(*got, "item", "items")
        ),
        K::UniqueItems { .. } => "value has non-unique elements".into(),
        K::Contains => "None of value are valid under the given schema".into(),
        K::Not => "value is not allowed by the 'not' schema".into(),
        K::AnyOf => {
            "value is not valid under any of the schemas listed in the 'anyOf' keyword".into()
        }
        K::OneOf(Some(_)) => {
            "value is valid under more than one of the schemas listed in the 'oneOf' keyword".into()
        }
        K::OneOf(None) => {
            "value is not valid under any of the schemas listed in the 'oneOf' keyword".into()
        }
        K::FalseSchema => "False schema does not allow value".into(),
        K::ContentEncoding { want, .. } => {
            format!("value is not compliant with \"{want}\" content encoding")
        }
        K::ContentMediaType { want, .. } => {
            format!("value is not compliant with \"{want}\" media type")
        }
        // The rest carry no client value.
        other => other.to_string().replace(SCHEMA_URL, ""),
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
