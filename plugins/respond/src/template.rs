//! Text with placeholders, cut into pieces once when the plugin is configured and
//! filled in per request: `{request_id}`, `{method}` and `{path}`. Anything else,
//! braces included (`{id}`, `{"a": 1}`), is literal text.

/// A value a template can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placeholder {
    /// `{request_id}`: the id the client sees in `X-Request-Id`.
    RequestId,
    /// `{method}`: the request's method, e.g. `GET`.
    Method,
    /// `{path}`: the request's normalised path, without the query.
    Path,
}

impl Placeholder {
    const ALL: [(&'static str, Self); 3] = [
        ("{request_id}", Self::RequestId),
        ("{method}", Self::Method),
        ("{path}", Self::Path),
    ];
}

/// The values of one request, read from the gateway only when a template needs them.
#[derive(Debug, Default)]
pub(crate) struct Values {
    pub request_id: String,
    pub method: String,
    pub path: String,
}

impl Values {
    fn get(&self, placeholder: Placeholder) -> &str {
        match placeholder {
            Placeholder::RequestId => &self.request_id,
            Placeholder::Method => &self.method,
            Placeholder::Path => &self.path,
        }
    }
}

/// How a value is written into the text around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Escape {
    /// As it is (text bodies, header values).
    None,
    /// Inside a JSON string: `"`, `\` and control characters escaped, so that a value
    /// (a path the client chose) can never end the string or add JSON of its own.
    JsonString,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Value(Placeholder),
}

/// Text cut into literal pieces and placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    pieces: Vec<Piece>,
}

impl Template {
    /// Cuts `text` at its placeholders.
    pub(crate) fn parse(text: &str) -> Self {
        let mut pieces = Vec::new();
        let mut rest = text;
        let mut literal = String::new();
        while let Some(at) = rest.find('{') {
            literal.push_str(&rest[..at]);
            rest = &rest[at..];
            match Placeholder::ALL
                .iter()
                .find(|(name, _)| rest.starts_with(name))
            {
                Some((name, placeholder)) => {
                    if !literal.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut literal)));
                    }
                    pieces.push(Piece::Value(*placeholder));
                    rest = &rest[name.len()..];
                }
                None => {
                    literal.push('{');
                    rest = &rest[1..];
                }
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Self { pieces }
    }

    /// Whether the template holds `placeholder`.
    pub(crate) fn uses(&self, placeholder: Placeholder) -> bool {
        self.pieces.contains(&Piece::Value(placeholder))
    }

    /// The literal text with every placeholder left out (for checking a header value).
    pub(crate) fn literal_text(&self) -> String {
        self.pieces
            .iter()
            .filter_map(|piece| match piece {
                Piece::Text(text) => Some(text.as_str()),
                Piece::Value(_) => None,
            })
            .collect()
    }

    /// The text with `values` filled in.
    pub(crate) fn render(&self, values: &Values, escape: Escape) -> String {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Value(placeholder) => {
                    let value = values.get(*placeholder);
                    match escape {
                        Escape::None => out.push_str(value),
                        Escape::JsonString => push_json_escaped(&mut out, value),
                    }
                }
            }
        }
        out
    }
}

/// Appends `value` as the inside of a JSON string (without the quotes).
fn push_json_escaped(out: &mut String, value: &str) {
    let quoted = serde_json::to_string(value).expect("a string serialises");
    out.push_str(&quoted[1..quoted.len() - 1]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Values {
        Values {
            request_id: "r-1".into(),
            method: "GET".into(),
            path: "/a\"b\\c".into(),
        }
    }

    #[test]
    fn placeholders_are_filled_and_other_braces_kept() {
        let template = Template::parse("{method} {path} {id} {{request_id}} {");
        assert_eq!(
            template.render(&values(), Escape::None),
            "GET /a\"b\\c {id} {r-1} {"
        );
        assert!(template.uses(Placeholder::Path));
        assert!(!Template::parse("{id}").uses(Placeholder::RequestId));
        assert_eq!(template.literal_text(), "  {id} {} {");
        assert_eq!(Template::parse("").render(&values(), Escape::None), "");
    }

    #[test]
    fn json_strings_escape_the_values_only() {
        let template = Template::parse(r#"{"p":"{path}","x":"\""}"#);
        let text = template.render(&values(), Escape::JsonString);
        assert_eq!(text, r#"{"p":"/a\"b\\c","x":"\""}"#);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["p"], "/a\"b\\c");
    }
}
