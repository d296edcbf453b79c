//! Path normalisation, done once before routing: percent-escapes of unreserved
//! characters decoded, other escapes upper-cased, dot-segments resolved. Escapes that
//! would change the path's structure (`%2F`, `%5C`, `%00`), raw backslashes, and paths
//! that climb above the root are refused. The upstream receives exactly the path that
//! was routed.

/// Why a path was refused; the text is safe to show clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadPath(pub &'static str);

/// Normalises the raw path of a request target.
pub fn normalize_path(raw: &str) -> Result<String, BadPath> {
    if !raw.starts_with('/') {
        return Err(BadPath(
            "the request target must be a path starting with '/'",
        ));
    }
    let bytes = raw.as_bytes();
    let mut decoded = String::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or(BadPath("the path holds a malformed %-escape"))?;
                match hex {
                    b'/' | b'\\' => {
                        return Err(BadPath("encoded '/' or '\\' in the path is not allowed"));
                    }
                    0 => return Err(BadPath("encoded NUL in the path is not allowed")),
                    b if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') => {
                        decoded.push(b as char);
                    }
                    b => {
                        decoded.push('%');
                        decoded.push_str(&format!("{b:02X}"));
                    }
                }
                i += 3;
            }
            b'\\' => return Err(BadPath("'\\' in the path is not allowed")),
            b if b < 0x20 || b == 0x7f => {
                return Err(BadPath("control characters in the path are not allowed"));
            }
            b => {
                decoded.push(b as char);
                i += 1;
            }
        }
    }
    remove_dot_segments(&decoded)
}

fn remove_dot_segments(path: &str) -> Result<String, BadPath> {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path[1..].split('/').collect();
    let last = segments.len() - 1;
    let mut trailing_slash = false;
    for (index, segment) in segments.into_iter().enumerate() {
        match segment {
            "." => trailing_slash = index == last,
            ".." => {
                if out.pop().is_none() {
                    return Err(BadPath("the path climbs above the root"));
                }
                trailing_slash = index == last;
            }
            other => {
                out.push(other);
                trailing_slash = false;
            }
        }
    }
    let mut normalized = String::with_capacity(path.len());
    for segment in &out {
        normalized.push('/');
        normalized.push_str(segment);
    }
    if trailing_slash || normalized.is_empty() {
        normalized.push('/');
    }
    Ok(normalized)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_dot_segments() {
        for (raw, want) in [
            ("/", "/"),
            ("/a/b", "/a/b"),
            ("/a/./b", "/a/b"),
            ("/a/b/../c", "/a/c"),
            ("/a/b/..", "/a/"),
            ("/a/.", "/a/"),
            ("/a//b", "/a//b"),
            ("/a/%2e%2E/b", "/b"),
            ("/%7Euser/%41", "/~user/A"),
            ("/a%20b", "/a%20b"),
            ("/a%c3%a9", "/a%C3%A9"),
            ("/a/", "/a/"),
        ] {
            assert_eq!(normalize_path(raw).as_deref(), Ok(want), "{raw}");
        }
    }

    #[test]
    fn refuses_structural_escapes_and_escapes_above_root() {
        for raw in [
            "/a%2Fb", "/a%2fb", "/a%5Cb", "/a%00", "/a\\b", "/..", "/a/../..", "/%2e%2e", "/a%zz",
            "/a%2", "a/b", "*",
        ] {
            assert!(normalize_path(raw).is_err(), "{raw} was accepted");
        }
    }
}
