//! The rules a plugin's changes to a request or response must follow: header names
//! and values, the headers that are the gateway's own, queries, methods and statuses.
//! One file for the gateway (the `exchange` resource, which enforces them) and the
//! plugin SDK (which includes this file, so that its harness refuses what the gateway
//! would). Plain `std` only.

/// Hop-by-hop headers: the gateway removes them from what it forwards, and a plugin
/// may not set them.
pub const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Whether `name` is a valid header field name (an HTTP token).
pub fn is_valid_name(name: &str) -> bool {
    is_token(name)
}

/// Whether `value` is a valid header field value: no control characters but tab.
pub fn is_valid_value(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// Whether `name` (any case) is a header only the gateway sets.
pub fn is_reserved(name: &str) -> bool {
    HOP_BY_HOP.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// Whether `name` is an identity header, set only by the gateway's auth plugins:
/// `X-User-*` and `X-Username*` in any case, also spelled with `_` for `-` (CGI and
/// WSGI servers read `X_User_Id` as `X-User-Id`). The gateway removes a client's own
/// from every request before any plugin runs.
pub fn is_identity_header(name: &str) -> bool {
    let starts_with = |prefix: &str| {
        name.len() >= prefix.len()
            && name
                .bytes()
                .zip(prefix.bytes())
                .all(|(n, p)| n.to_ascii_lowercase() == p || (n == b'_' && p == b'-'))
    };
    starts_with("x-user-") || starts_with("x-username")
}

/// Whether `text` is an HTTP token (a method or a header name).
pub fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Checks a query string (without `?`): visible ASCII but `#` (which would end it) and
/// `"`, `<`, `>` (which no request target holds raw). Like a client's query, a `%`
/// need not start an escape: a plugin may set back what it read.
pub fn check_query(query: &str) -> Result<(), &'static str> {
    if query
        .bytes()
        .all(|b| (0x21..=0x7e).contains(&b) && !b"#\"<>".contains(&b))
    {
        Ok(())
    } else {
        Err("a query holds only visible ASCII characters other than '#', '\"', '<' and '>'")
    }
}

/// Whether `status` is a status a response may have.
pub fn is_valid_status(status: u16) -> bool {
    (100..=599).contains(&status)
}

/// Whether `status` is a status a plugin's own answer may have (no 1xx).
pub fn is_valid_answer_status(status: u16) -> bool {
    (200..=599).contains(&status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_values_and_reserved_headers() {
        assert!(is_valid_name("x-ok_1"));
        assert!(!is_valid_name("bad header"));
        assert!(!is_valid_name(""));
        assert!(is_valid_value(b"text\twith tab"));
        assert!(!is_valid_value(b"line\nbreak"));
        assert!(!is_valid_value(b"del\x7f"));
        assert!(is_reserved("Transfer-Encoding"));
        assert!(!is_reserved("x-user-id"));
    }

    #[test]
    fn identity_headers_in_every_spelling() {
        for name in [
            "x-user-id",
            "X-User-Role",
            "X_User_Id",
            "x_USER-permissions",
            "X-Username",
            "x_username",
        ] {
            assert!(is_identity_header(name), "{name}");
        }
        for name in [
            "x-user",
            "x-users",
            "user-id",
            "x-forwarded-user",
            "x-userid",
        ] {
            assert!(!is_identity_header(name), "{name}");
        }
    }

    #[test]
    fn queries() {
        assert!(check_query("a=1&b=%2F").is_ok());
        assert!(check_query("").is_ok());
        assert!(check_query("a b").is_err());
        assert!(check_query("a#b").is_err());
        // The upstream request could not carry them: a 502 instead of a refused edit.
        for raw in ["a=<b>", "a=\"b\"", "<", ">"] {
            assert!(check_query(raw).is_err(), "{raw}");
        }
        assert!(check_query("a=`{|}^~'").is_ok());
        // As a client may send them.
        assert!(check_query("a=%zz").is_ok());
        assert!(check_query("a=100%").is_ok());
    }

    #[test]
    fn a_plugins_own_answer_has_a_final_status() {
        for good in [200, 204, 404, 599] {
            assert!(is_valid_answer_status(good), "{good}");
        }
        for bad in [0, 100, 101, 199, 600, 1000] {
            assert!(!is_valid_answer_status(bad), "{bad}");
        }
    }
}
