//! Path rules for policy plugins (`deny`, `rbac` and the like): a path is under a
//! prefix segment-wise, and letters compare whatever their ASCII case, so that a rule
//! for `/admin` also covers `/ADMIN/x`, which a case-insensitive upstream (IIS, a
//! Windows file server, Spring with case-insensitive matching) serves as `/admin/x`.
//! The gateway hands plugins normalised paths (no dot-segments, no `//`, unreserved
//! escapes decoded), so these rules need nothing else.

/// Whether `path` is `prefix` or below it, segment by segment, ignoring ASCII case:
/// `/admin` is under `/admin` and `/Admin/`, `/ADMIN/x` under `/admin`, and
/// `/administrator` under neither. Every path is under `/` (and under `""`).
pub fn is_under(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    let Some(head) = path.get(..prefix.len()) else {
        return false;
    };
    let rest = &path[prefix.len()..];
    head.eq_ignore_ascii_case(prefix) && (rest.is_empty() || rest.starts_with('/'))
}

/// Whether `path` is `other`, ignoring ASCII case and one trailing slash (`/admin/`
/// is `/admin` to most frameworks, and the gateway routes them alike).
pub fn is_same(path: &str, other: &str) -> bool {
    fn trim(p: &str) -> &str {
        match p.strip_suffix('/') {
            Some(trimmed) if !trimmed.is_empty() => trimmed,
            _ => p,
        }
    }
    trim(path).eq_ignore_ascii_case(trim(other))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_covers_its_segments_in_any_case() {
        assert!(is_under("/admin", "/admin"));
        assert!(is_under("/admin/", "/admin"));
        assert!(is_under("/ADMIN/x", "/admin"));
        assert!(is_under("/Admin/users/1", "/admin/"));
        assert!(is_under("/anything", "/"));
        assert!(is_under("/anything", ""));
        assert!(!is_under("/administrator", "/admin"));
        assert!(!is_under("/adm", "/admin"));
        assert!(!is_under("/other/admin", "/admin"));
        // A multi-byte character where the prefix ends is not a match, nor a panic.
        assert!(!is_under("/adm\u{e9}", "/admi"));
        assert!(is_same("/Login", "/login"));
        assert!(is_same("/login/", "/login"));
        assert!(is_same("/", "/"));
        assert!(!is_same("/login//", "/login"));
        assert!(!is_same("/loginx", "/login"));
    }
}
