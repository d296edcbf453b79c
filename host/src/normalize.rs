//! Path normalisation, done once before routing, so that the path the router sees is
//! the path the upstream gets and no upstream framework can read it as another one.
//!
//! In order:
//! 1. Percent-escapes of unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded,
//!    other escapes upper-cased, raw bytes outside ASCII escaped, and so are the raw
//!    characters no request target holds in its path (space, `#`, `<`, `>`, `?`,
//!    `` ` ``): a path a plugin sets holding them would reach the upstream as another
//!    path, or not at all. Escapes must spell UTF-8 (no overlong `%C0%AE`, which old
//!    decoders read as `.`).
//! 2. Refused (400): escapes that would change the path's structure (`%2F`, `%5C`,
//!    `%00`), raw `\` and control characters, double-encoded escapes (`%252F`, `%2561`:
//!    an upstream that decodes twice would read `/`, `a`), and `;` raw or as `%3B`
//!    anywhere in the path: servlet containers strip `;params` from segments, so
//!    `/admin;x=1` is `/admin` and `/public/..;/admin` climbs to `/admin` there.
//! 3. Repeated slashes are merged (`//admin` is `/admin`, as nginx and most
//!    frameworks read it).
//! 4. Dot-segments are resolved; a path that climbs above the root is refused.
//!
//! The result is a fixed point: normalising it again changes nothing. Letter case is
//! left alone here; the router decides what a case variant of a route's path means.

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
    let decoded = decode_unreserved(raw.as_bytes())?;
    remove_dot_segments(&merge_slashes(&decoded))
}

/// The value of the two hex digits at `bytes[at..at + 2]`.
fn hex_at(bytes: &[u8], at: usize) -> Option<u8> {
    let digits = bytes.get(at..at + 2)?;
    if !digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u8::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
}

/// Step 1 and 2: decodes what may be decoded, refuses what hides structure.
fn decode_unreserved(bytes: &[u8]) -> Result<String, BadPath> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut decoded = String::with_capacity(bytes.len());
    // The bytes of consecutive non-ASCII escapes, checked to be UTF-8 as a run.
    let mut run: Vec<u8> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let byte = match bytes[i] {
            b'%' => {
                let byte =
                    hex_at(bytes, i + 1).ok_or(BadPath("the path holds a malformed %-escape"))?;
                i += 3;
                match byte {
                    b'/' | b'\\' => {
                        return Err(BadPath("encoded '/' or '\\' in the path is not allowed"));
                    }
                    0 => return Err(BadPath("encoded NUL in the path is not allowed")),
                    b if b < 0x20 || b == 0x7f => {
                        return Err(BadPath("control characters in the path are not allowed"));
                    }
                    b => Escaped::Yes(b),
                }
            }
            b'\\' => return Err(BadPath("'\\' in the path is not allowed")),
            b if b < 0x20 || b == 0x7f => {
                return Err(BadPath("control characters in the path are not allowed"));
            }
            b => {
                i += 1;
                Escaped::No(b)
            }
        };
        let b = match byte {
            Escaped::Yes(b) | Escaped::No(b) => b,
        };
        if b == b';' {
            return Err(BadPath(
                "';' in the path is not allowed (servers that strip ;parameters would read another path)",
            ));
        }
        if b >= 0x80 {
            run.push(b);
            continue;
        }
        flush_utf8(&mut run, &mut decoded)?;
        let escape = match byte {
            Escaped::Yes(b) => {
                !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
            }
            Escaped::No(b) => b" #<>?`".contains(&b),
        };
        if escape {
            decoded.push('%');
            decoded.push(HEX[usize::from(b >> 4)] as char);
            decoded.push(HEX[usize::from(b & 15)] as char);
        } else {
            decoded.push(b as char);
        }
    }
    flush_utf8(&mut run, &mut decoded)?;
    // Looked for in the result, where `%25%41%42` has become `%25AB`.
    let out = decoded.as_bytes();
    if (0..out.len()).any(|at| out[at..].starts_with(b"%25") && hex_at(out, at + 3).is_some()) {
        return Err(BadPath(
            "double-encoded escapes in the path are not allowed",
        ));
    }
    Ok(decoded)
}

/// A byte of the path and whether it came as a %-escape.
#[derive(Clone, Copy)]
enum Escaped {
    Yes(u8),
    No(u8),
}

/// Writes a run of non-ASCII bytes as upper-case escapes, if they are UTF-8.
fn flush_utf8(run: &mut Vec<u8>, out: &mut String) -> Result<(), BadPath> {
    if run.is_empty() {
        return Ok(());
    }
    if std::str::from_utf8(run).is_err() {
        return Err(BadPath("the path's %-escapes do not spell UTF-8"));
    }
    for b in run.drain(..) {
        out.push_str(&format!("%{b:02X}"));
    }
    Ok(())
}

/// Step 3: `//` and longer runs of `/` become one.
fn merge_slashes(path: &str) -> String {
    let mut merged = String::with_capacity(path.len());
    for c in path.chars() {
        if !(c == '/' && merged.ends_with('/')) {
            merged.push(c);
        }
    }
    merged
}

/// Step 4, on a path that starts with `/` and has no empty segment but the last.
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
            "" => trailing_slash = true,
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

// A path relative to this file's folder, so that the SDK's harness, which includes
// this file by path, finds the tests too.
#[cfg(test)]
#[path = "normalize/tests.rs"]
mod tests;
