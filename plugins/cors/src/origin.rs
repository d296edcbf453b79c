//! Origins: the allowlist's entries, checked once when the route is loaded, and the
//! match of a request's `Origin` against them, on every request.
//!
//! An origin is compared the way the Fetch standard serialises it and browsers send
//! it: `scheme://host[:port]`, scheme and host in lower case, no default port, no
//! path, or the opaque `null`. Entries are refused unless they are written that way
//! (the message says what to write), so a request's `Origin` is compared with them
//! byte for byte and nothing is normalised on the request path. This file must not
//! read or change a message.

/// One entry of `origins`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OriginRule {
    /// This origin exactly (`https://app.example.com`, or `null`).
    Exact(String),
    /// `scheme://*.suffix[:port]`: one or more labels in place of `*`, the same scheme
    /// and the same port (or none).
    Subdomains {
        /// The scheme followed by `://`, e.g. `https://`.
        scheme: String,
        /// The host after the `*`, with its leading dot, e.g. `.example.com`.
        suffix: String,
        /// `:port` when the pattern has one, else empty.
        port: String,
    },
}

impl OriginRule {
    /// Checks one entry (not `*`, which the caller handles). The error says why and,
    /// when it can, what to write instead.
    pub(crate) fn parse(entry: &str) -> Result<Self, String> {
        if entry == "null" {
            return Ok(Self::Exact(entry.to_string()));
        }
        let canonical = canonical(entry)?;
        if canonical != entry {
            return Err(format!(
                "{entry:?} is not an origin as browsers send it (lower case, no path, no \
                 default port): write {canonical:?}"
            ));
        }
        let (scheme, host, port) = split(entry).expect("canonical() split it");
        match host.strip_prefix("*.") {
            Some(suffix) => {
                check_host(suffix, entry)?;
                if !suffix.contains('.') || suffix.starts_with('[') {
                    return Err(format!(
                        "{entry:?} would allow every host under {suffix:?}; a wildcard needs \
                         a domain of two labels or more, as in \"https://*.example.com\""
                    ));
                }
                Ok(Self::Subdomains {
                    scheme: format!("{scheme}://"),
                    suffix: format!(".{suffix}"),
                    port: port.map(|p| format!(":{p}")).unwrap_or_default(),
                })
            }
            None if host.contains('*') => Err(format!(
                "{entry:?}: `*` may only stand for the first labels of the host, as in \
                 \"https://*.example.com\""
            )),
            None => {
                check_host(host, entry)?;
                Ok(Self::Exact(entry.to_string()))
            }
        }
    }

    /// Whether `origin` (a request's `Origin`, as sent) is allowed by this entry.
    pub(crate) fn matches(&self, origin: &str) -> bool {
        match self {
            Self::Exact(exact) => origin == exact,
            Self::Subdomains {
                scheme,
                suffix,
                port,
            } => {
                let Some(rest) = origin.strip_prefix(scheme.as_str()) else {
                    return false;
                };
                let (host, rest_port) = match rest.find(':') {
                    Some(at) => rest.split_at(at),
                    None => (rest, ""),
                };
                rest_port == port
                    && host
                        .strip_suffix(suffix.as_str())
                        // One label or more, none empty: `https://.example.com` is refused.
                        .is_some_and(|labels| labels.split('.').all(is_label))
            }
        }
    }
}

/// A host label as browsers serialise it: lower-case letters, digits, `-`, `_`.
fn is_label(label: &str) -> bool {
    !label.is_empty()
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// `scheme`, `host` and `port` of `scheme://host[:port]`, with nothing after; `None`
/// when the shape is wrong.
fn split(entry: &str) -> Option<(&str, &str, Option<&str>)> {
    let (scheme, rest) = entry.split_once("://")?;
    if rest.contains(['/', '?', '#', '@']) {
        return None;
    }
    let (host, port) = if rest.starts_with('[') {
        let end = rest.find(']')?;
        match &rest[end + 1..] {
            "" => (rest, None),
            after => (&rest[..=end], Some(after.strip_prefix(':')?)),
        }
    } else {
        match rest.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        }
    };
    Some((scheme, host, port))
}

/// The port a browser leaves out of the origin for `scheme`.
fn default_port(scheme: &str) -> Option<&'static str> {
    match scheme {
        "http" | "ws" => Some("80"),
        "https" | "wss" => Some("443"),
        _ => None,
    }
}

/// `entry` written as browsers send it: lower case, no trailing `/`, no default port.
/// An error when it is no origin at all.
fn canonical(entry: &str) -> Result<String, String> {
    const SHAPE: &str = "write scheme://host[:port], e.g. \"https://app.example.com\"";
    let lower = entry.to_ascii_lowercase();
    let trimmed = lower.strip_suffix('/').unwrap_or(&lower);
    let Some((scheme, host, port)) = split(trimmed) else {
        return Err(format!(
            "{entry:?} is not an origin (an origin has no path, query or user): {SHAPE}"
        ));
    };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_lowercase())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b));
    if !scheme_ok || host.is_empty() {
        return Err(format!("{entry:?} is not an origin: {SHAPE}"));
    }
    let port = match port {
        None => None,
        Some(p) if p == default_port(scheme).unwrap_or("") => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => Some(n.to_string()),
            _ => return Err(format!("{entry:?}: {p:?} is not a port (1 to 65535)")),
        },
    };
    Ok(match port {
        Some(port) => format!("{scheme}://{host}:{port}"),
        None => format!("{scheme}://{host}"),
    })
}

/// Checks a host of an entry already in canonical form: lower-case DNS labels, or an
/// IPv6 address in brackets.
fn check_host(host: &str, entry: &str) -> Result<(), String> {
    let ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => {
            !v6.is_empty()
                && v6
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        }
        None => host.split('.').all(is_label),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{entry:?}: {host:?} is not a host name (letters, digits, '-', '_', labels \
             separated by single dots; international names in their xn-- form)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(entry: &str) -> OriginRule {
        OriginRule::parse(entry).unwrap_or_else(|e| panic!("{entry}: {e}"))
    }

    #[test]
    fn exact_origins_match_byte_for_byte() {
        let exact = rule("https://app.example.com");
        assert!(exact.matches("https://app.example.com"));
        for other in [
            "http://app.example.com",
            "https://app.example.com:8443",
            "https://APP.example.com",
            "https://app.example.com/",
            "https://app.example.co",
            "https://app.example.com.evil.org",
            "null",
            "",
        ] {
            assert!(!exact.matches(other), "{other}");
        }
        let ported = rule("http://localhost:3000");
        assert!(ported.matches("http://localhost:3000"));
        assert!(!ported.matches("http://localhost"));
        assert!(!ported.matches("http://localhost:30000"));
        assert!(rule("http://[::1]:8080").matches("http://[::1]:8080"));
        assert!(rule("null").matches("null"));
    }

    #[test]
    fn wildcards_take_one_label_or_more_and_the_same_scheme_and_port() {
        let wild = rule("https://*.example.com");
        for ok in [
            "https://a.example.com",
            "https://a.b.example.com",
            "https://x-1.example.com",
        ] {
            assert!(wild.matches(ok), "{ok}");
        }
        for no in [
            "https://example.com",
            "https://.example.com",
            "https://a..example.com",
            "https://evilexample.com",
            "https://a.evilexample.com",
            "https://example.com.evil.org",
            "https://a.example.com.evil.org",
            "http://a.example.com",
            "https://a.example.com:8443",
            "https://A.example.com",
            "https://a/b.example.com",
            "https://user@a.example.com",
            "https://a.example.com/",
            "null",
        ] {
            assert!(!wild.matches(no), "{no}");
        }
        let ported = rule("http://*.dev.test:8080");
        assert!(ported.matches("http://a.dev.test:8080"));
        assert!(!ported.matches("http://a.dev.test"));
        assert!(!ported.matches("http://a.dev.test:80801"));
    }

    #[test]
    fn entries_not_written_as_browsers_send_them_are_refused_with_the_fix() {
        for (entry, want) in [
            (
                "https://App.Example.com",
                r#"write "https://app.example.com""#,
            ),
            (
                "https://app.example.com/",
                r#"write "https://app.example.com""#,
            ),
            (
                "https://app.example.com:443",
                r#"write "https://app.example.com""#,
            ),
            (
                "http://app.example.com:80",
                r#"write "http://app.example.com""#,
            ),
            ("HTTPS://*.example.com", r#"write "https://*.example.com""#),
            ("app.example.com", "is not an origin"),
            ("https://app.example.com/path", "has no path"),
            ("https://user@app.example.com", "is not an origin"),
            ("https://", "is not an origin"),
            ("https://app.example.com:0", "is not a port"),
            ("https://app.example.com:99999", "is not a port"),
            ("https://app.example.com:+1", "is not a port"),
            ("https://a b.com", "is not a host name"),
            ("https://a..com", "is not a host name"),
            ("https://*.com", "two labels or more"),
            ("https://a.*.com", "first labels of the host"),
            ("https://*example.com", "first labels of the host"),
            ("*.example.com", "is not an origin"),
            ("https://*", "first labels"),
        ] {
            let error = OriginRule::parse(entry)
                .err()
                .unwrap_or_else(|| panic!("accepted: {entry}"));
            assert!(
                error.contains(want),
                "{entry}\n  got:  {error}\n  want: {want}"
            );
        }
    }

    #[test]
    fn non_default_ports_are_kept() {
        assert_eq!(
            rule("https://app.example.com:8443"),
            OriginRule::Exact("https://app.example.com:8443".into())
        );
        assert_eq!(
            rule("https://*.example.com:8443"),
            OriginRule::Subdomains {
                scheme: "https://".into(),
                suffix: ".example.com".into(),
                port: ":8443".into(),
            }
        );
    }
}
