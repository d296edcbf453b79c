//! Route matching: host, method and path (exact, `{param}` segments, or segment-wise
//! prefix) to a route index.
//!
//! Routes are tried from the most specific to the least: routes with a host before
//! those without, exact paths before patterns before prefixes, more literal segments
//! and longer prefixes first; ties keep config order. The router sees only normalised
//! paths (see `normalize`) and knows nothing of plugins or upstreams.

use http::Method;

/// One segment of an exact path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

/// A route's path matcher, built by [`PathPattern::parse_exact`] or
/// [`PathPattern::parse_prefix`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern(Kind);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// `path = "/users/{id}"`: the whole path, segment by segment.
    Exact(Vec<Segment>),
    /// `prefix = "/api"`: the path is the prefix or continues it with `/`.
    /// Stored without a trailing `/`; the empty string is the root prefix.
    Prefix(String),
}

impl PathPattern {
    /// Parses an exact path such as `/users/{id}/orders`.
    pub fn parse_exact(path: &str) -> Result<Self, String> {
        check_path_text(path)?;
        let mut names = Vec::new();
        let mut segments = Vec::new();
        for raw in path[1..].split('/') {
            if raw.starts_with('{') || raw.ends_with('}') {
                let name = raw
                    .strip_prefix('{')
                    .and_then(|r| r.strip_suffix('}'))
                    .filter(|n| {
                        !n.is_empty()
                            && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    })
                    .ok_or_else(|| {
                        format!(
                            "segment {raw:?}: a parameter is a whole segment like {{id}} (letters, digits, _)"
                        )
                    })?;
                if names.contains(&name) {
                    return Err(format!("parameter {{{name}}} appears twice"));
                }
                names.push(name);
                segments.push(Segment::Param(name.to_string()));
            } else if raw.contains(['{', '}']) {
                return Err(format!(
                    "segment {raw:?}: a parameter is a whole segment like {{id}}"
                ));
            } else {
                segments.push(Segment::Literal(raw.to_string()));
            }
        }
        Ok(Self(Kind::Exact(segments)))
    }

    /// Parses a prefix such as `/api/` (same as `/api`).
    pub fn parse_prefix(prefix: &str) -> Result<Self, String> {
        check_path_text(prefix)?;
        if prefix.contains(['{', '}']) {
            return Err("a prefix cannot hold {parameters}; use `path`".into());
        }
        Ok(Self(Kind::Prefix(prefix.trim_end_matches('/').to_string())))
    }

    /// Matches `path`, returning the captured parameters.
    fn matches(&self, path: &str) -> Option<Vec<(String, String)>> {
        match &self.0 {
            Kind::Prefix(prefix) => {
                let rest = path.strip_prefix(prefix.as_str())?;
                (rest.is_empty() || rest.starts_with('/')).then(Vec::new)
            }
            Kind::Exact(segments) => {
                let mut params = Vec::new();
                let mut parts = path.strip_prefix('/')?.split('/');
                for segment in segments {
                    let part = parts.next()?;
                    match segment {
                        Segment::Literal(literal) if literal == part => {}
                        Segment::Literal(_) => return None,
                        Segment::Param(_) if part.is_empty() => return None,
                        Segment::Param(name) => {
                            let value = percent_encoding::percent_decode_str(part)
                                .decode_utf8_lossy()
                                .into_owned();
                            params.push((name.clone(), value));
                        }
                    }
                }
                parts.next().is_none().then_some(params)
            }
        }
    }

    /// Sort key: smaller is more specific.
    fn rank(&self) -> (u8, usize) {
        match &self.0 {
            Kind::Exact(segments) => {
                let params = segments
                    .iter()
                    .filter(|s| matches!(s, Segment::Param(_)))
                    .count();
                if params == 0 {
                    (0, 0)
                } else {
                    (1, usize::MAX - (segments.len() - params))
                }
            }
            Kind::Prefix(prefix) => (2, usize::MAX - prefix.len()),
        }
    }

    /// The path the upstream gets when the route strips its prefix.
    pub fn strip<'a>(&self, path: &'a str) -> &'a str {
        match &self.0 {
            Kind::Prefix(prefix) => match &path[prefix.len().min(path.len())..] {
                "" => "/",
                rest => rest,
            },
            Kind::Exact(_) => path,
        }
    }
}

fn check_path_text(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("{path:?} must start with '/'"));
    }
    if path
        .split('/')
        .any(|s| s == "." || s == ".." || s.contains('%'))
    {
        return Err(format!(
            "{path:?} must be normalised: no '.' or '..' segments, no %-escapes"
        ));
    }
    if path
        .bytes()
        .any(|b| b <= b' ' || b == b'?' || b == b'#' || b == b'\\' || b >= 0x7f)
    {
        return Err(format!(
            "{path:?} holds a character not allowed in a path (space, '?', '#', '\\', control or non-ASCII)"
        ));
    }
    Ok(())
}

/// Whether `host` is a plain DNS name or IP literal (no port, no wildcard).
pub fn is_valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// What the router needs of a route.
#[derive(Debug, Clone)]
pub struct RouteMatcher {
    /// Lower-case host to match, if any.
    pub host: Option<String>,
    /// Methods to match; all when `None`.
    pub methods: Option<Vec<Method>>,
    /// The path matcher.
    pub pattern: PathPattern,
}

/// A successful lookup.
#[derive(Debug)]
pub struct RouteMatch {
    /// Index of the route in the order it was given to [`RouteTable::new`].
    pub index: usize,
    /// Captured `{param}` values.
    pub params: Vec<(String, String)>,
}

/// Why no route matched.
#[derive(Debug, PartialEq, Eq)]
pub enum Miss {
    /// No route takes this host and path.
    NotFound,
    /// Routes take this path, but not with this method; the allowed methods.
    MethodNotAllowed(Vec<Method>),
}

/// All routes, ordered for matching.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    /// (config index, matcher), most specific first.
    ordered: Vec<(usize, RouteMatcher)>,
}

impl RouteTable {
    /// Builds the table from matchers in config order.
    pub fn new(matchers: Vec<RouteMatcher>) -> Self {
        Self::with_indexes(matchers.into_iter().enumerate().collect())
    }

    /// Builds the table from (route index, matcher) pairs: a table of some of the
    /// routes, whose lookups still give indexes into all of them.
    pub fn with_indexes(mut ordered: Vec<(usize, RouteMatcher)>) -> Self {
        ordered.sort_by_key(|(index, m)| (m.host.is_none(), m.pattern.rank(), *index));
        Self { ordered }
    }

    /// Whether the table has no routes.
    pub fn is_empty(&self) -> bool {
        self.ordered.is_empty()
    }

    /// Finds the route for a request. `host` is the request's host without port.
    pub fn lookup(
        &self,
        host: Option<&str>,
        method: &Method,
        path: &str,
    ) -> Result<RouteMatch, Miss> {
        let mut allowed: Vec<Method> = Vec::new();
        for (index, matcher) in &self.ordered {
            if let Some(want) = &matcher.host
                && !host.is_some_and(|h| h.eq_ignore_ascii_case(want))
            {
                continue;
            }
            let Some(params) = matcher.pattern.matches(path) else {
                continue;
            };
            match &matcher.methods {
                Some(methods) if !methods.contains(method) => {
                    for m in methods {
                        if !allowed.contains(m) {
                            allowed.push(m.clone());
                        }
                    }
                }
                _ => {
                    return Ok(RouteMatch {
                        index: *index,
                        params,
                    });
                }
            }
        }
        if allowed.is_empty() {
            Err(Miss::NotFound)
        } else {
            Err(Miss::MethodNotAllowed(allowed))
        }
    }
}

#[cfg(test)]
mod tests;
