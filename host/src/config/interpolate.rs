//! Environment variables in the config file: `${NAME}` is the variable's value and
//! `${NAME:-default}` the default when it is unset or empty (as in a shell), so one
//! file serves every environment and a seed's own variables (`PORT`,
//! `JWT_SECRET_KEY`, `RATE_LIMIT_REQUESTS` …) keep working. `$${` is a literal `${`.
//!
//! Substitution is done on the text before it is parsed, knowing TOML's lexical
//! structure: inside a `"…"` string the value is escaped as a string's contents (a
//! quote or backslash in it cannot end the string or start an escape); inside a
//! `'…'` string, where nothing can be escaped, a value holding `'` or a control
//! character is an error; outside strings (`requests = ${RATE_LIMIT:-100}`) it goes in
//! as it is, without line breaks. Comments are left alone. No value ever adds a line,
//! so every error still names the file's own line.

/// A `${…}` that cannot be substituted: the byte offset of its `$` and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unresolved {
    /// Byte offset of the `$` in the file.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Bare,
    Comment,
    Basic,
    MultiBasic,
    Literal,
    MultiLiteral,
}

/// `text` with every `${…}` replaced by what `var` gives for its name.
pub fn interpolate(text: &str, var: impl Fn(&str) -> Option<String>) -> Result<String, Unresolved> {
    if !text.contains('$') {
        return Ok(text.to_string());
    }
    let mut out = String::with_capacity(text.len());
    let mut place = Place::Bare;
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        let c = rest.chars().next().expect("not at the end");
        // Where strings and comments start and end.
        let token = match (place, c) {
            (Place::Bare, '#') => Some((Place::Comment, 1)),
            (Place::Bare, '"') if rest.starts_with("\"\"\"") => Some((Place::MultiBasic, 3)),
            (Place::Bare, '"') => Some((Place::Basic, 1)),
            (Place::Bare, '\'') if rest.starts_with("'''") => Some((Place::MultiLiteral, 3)),
            (Place::Bare, '\'') => Some((Place::Literal, 1)),
            (Place::Comment, '\n') => Some((Place::Bare, 1)),
            (Place::Basic | Place::MultiBasic, '\\') => {
                // An escape: the backslash and the character after it stay as they are.
                let next = rest[1..].chars().next().map_or(0, char::len_utf8);
                Some((place, 1 + next))
            }
            (Place::Basic, '"' | '\n') | (Place::Literal, '\'' | '\n') => Some((Place::Bare, 1)),
            (Place::MultiBasic, '"') if rest.starts_with("\"\"\"") => {
                Some((Place::Bare, closing_run(rest, '"')))
            }
            (Place::MultiLiteral, '\'') if rest.starts_with("'''") => {
                Some((Place::Bare, closing_run(rest, '\'')))
            }
            _ => None,
        };
        if let Some((next, len)) = token {
            out.push_str(&rest[..len]);
            place = next;
            i += len;
            continue;
        }
        if c == '$' && place != Place::Comment {
            if rest.starts_with("$${") {
                out.push_str("${");
                i += 3;
                continue;
            }
            if rest.starts_with("${") {
                let (value, len) = resolve(rest, i, &var)?;
                push_value(&mut out, &value, place, rest, i)?;
                i += len;
                continue;
            }
        }
        out.push(c);
        i += c.len_utf8();
    }
    Ok(out)
}

/// The length of the quotes that close a multi-line string at the start of `rest`:
/// three, or up to five when the string's last characters are quotes too.
fn closing_run(rest: &str, quote: char) -> usize {
    rest.chars().take_while(|&c| c == quote).count().min(5)
}

/// The value of the `${…}` at the start of `rest` (at `offset` in the file), and the
/// length of the `${…}`.
fn resolve(
    rest: &str,
    offset: usize,
    var: &impl Fn(&str) -> Option<String>,
) -> Result<(String, usize), Unresolved> {
    let fail = |message: String| Unresolved { offset, message };
    let Some(end) = rest.find('}').filter(|&end| !rest[..end].contains('\n')) else {
        return Err(fail("`${` without its `}` on the same line".into()));
    };
    let inner = &rest[2..end];
    let (name, default) = match inner.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (inner, None),
    };
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(fail(format!(
            "`${{{inner}}}`: a variable name is letters, digits and '_', not starting with a \
             digit (`${{NAME}}` or `${{NAME:-default}}`; `$${{` for a literal `${{`)"
        )));
    }
    let value = match (var(name).filter(|v| !v.is_empty()), default) {
        (Some(value), _) => value,
        (None, Some(default)) => default.to_string(),
        (None, None) => {
            return Err(fail(format!(
                "environment variable {name} is not set (write `${{{name}:-default}}` for a \
                 default)"
            )));
        }
    };
    Ok((value, end + 1))
}

/// Appends `value` where a `${…}` was, as `place` needs it.
fn push_value(
    out: &mut String,
    value: &str,
    place: Place,
    rest: &str,
    offset: usize,
) -> Result<(), Unresolved> {
    let name = &rest[2..rest.find('}').unwrap_or(2)];
    let fail = |why: &str| {
        Err(Unresolved {
            offset,
            message: format!("`${{{name}}}`: its value {why}"),
        })
    };
    match place {
        Place::Basic | Place::MultiBasic => {
            for c in value.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\t' => out.push_str("\\t"),
                    c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
                    c => out.push(c),
                }
            }
        }
        Place::Literal | Place::MultiLiteral => {
            if value.contains('\'') || value.chars().any(char::is_control) {
                return fail(
                    "holds a ' or a control character, which a '…' string cannot hold: \
                     use a \"…\" string",
                );
            }
            out.push_str(value);
        }
        Place::Bare => {
            if value.chars().any(char::is_control) {
                return fail("holds a line break or a control character");
            }
            out.push_str(value);
        }
        Place::Comment => unreachable!("comments are left alone"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        }
    }

    const ENV: &[(&str, &str)] = &[
        ("PORT", "9000"),
        ("EMPTY", ""),
        ("QUOTED", r#"a "b" \c"#),
        ("LINES", "one\ntwo"),
        ("APOS", "it's"),
    ];

    fn sub(text: &str) -> Result<String, Unresolved> {
        interpolate(text, env(ENV))
    }

    #[test]
    fn variables_and_defaults() {
        assert_eq!(
            sub("listen = \"0.0.0.0:${PORT}\"").unwrap(),
            "listen = \"0.0.0.0:9000\""
        );
        assert_eq!(
            sub("requests = ${LIMIT:-100}\nper = \"${PER:-1m}\"").unwrap(),
            "requests = 100\nper = \"1m\""
        );
        // An empty value takes the default, as in a shell.
        assert_eq!(sub("x = \"${EMPTY:-d}\"").unwrap(), "x = \"d\"");
        assert_eq!(sub("x = \"${EMPTY:-}\"").unwrap(), "x = \"\"");
        assert_eq!(sub("x = \"${PORT:-1}\"").unwrap(), "x = \"9000\"");
        assert_eq!(
            sub("x = \"$${PORT} $PORT $\"").unwrap(),
            "x = \"${PORT} $PORT $\""
        );
    }

    #[test]
    fn values_stay_inside_their_strings() {
        assert_eq!(sub(r#"x = "${QUOTED}""#).unwrap(), r#"x = "a \"b\" \\c""#);
        assert_eq!(sub(r#"x = "${LINES}""#).unwrap(), r#"x = "one\ntwo""#);
        assert_eq!(sub("x = '${PORT}'").unwrap(), "x = '9000'");
        assert!(
            sub("x = '${APOS}'")
                .unwrap_err()
                .message
                .contains("\"…\" string")
        );
        assert!(
            sub("x = ${LINES}")
                .unwrap_err()
                .message
                .contains("line break")
        );
        // The substituted text parses back to the value.
        let parsed: toml::Table = toml::from_str(&sub(r#"x = "${QUOTED}""#).unwrap()).unwrap();
        assert_eq!(parsed["x"].as_str(), Some(r#"a "b" \c"#));
    }

    #[test]
    fn comments_and_escapes_are_left_alone() {
        assert_eq!(
            sub("# ${UNSET} is fine here\nx = 1 # ${UNSET}").unwrap(),
            "# ${UNSET} is fine here\nx = 1 # ${UNSET}"
        );
        // A `#` or an escaped quote inside a string does not end it.
        assert_eq!(
            sub(r##"x = "\"#${PORT}" # ${UNSET}"##).unwrap(),
            r##"x = "\"#9000" # ${UNSET}"##
        );
        assert_eq!(
            sub("x = \"\"\"\n${PORT}\"\"\"\ny = '''${PORT}'''").unwrap(),
            "x = \"\"\"\n9000\"\"\"\ny = '''9000'''"
        );
    }

    #[test]
    fn errors_name_the_variable_and_where() {
        let text = "a = 1\nb = \"${NOPE}\"";
        let error = sub(text).unwrap_err();
        assert_eq!(error.offset, text.find('$').unwrap());
        assert!(
            error.message.contains("NOPE is not set"),
            "{}",
            error.message
        );
        for (bad, says) in [
            ("x = \"${1X}\"", "variable name"),
            ("x = \"${A B}\"", "variable name"),
            ("x = \"${}\"", "variable name"),
            ("x = \"${PORT\"\ny = 1 }", "without its `}`"),
        ] {
            let error = sub(bad).unwrap_err();
            assert!(error.message.contains(says), "{bad}: {}", error.message);
        }
    }
}
