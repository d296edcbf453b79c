//! Route matching: host, method, path (exact, `{param}` segments, or segment-wise
//! prefix) and the route's header and query conditions (`conditions.rs`) to a route
//! index.
//!
//! Routes are tried from the most specific to the least: routes with a host before
//! those without, exact paths before patterns before prefixes, more literal segments
//! and longer prefixes first, then more conditions first; ties keep config order. A lookup tries only the routes
//! that can match the path: a hash index of literal exact paths and one of first
//! path segments narrow 1,000 routes to a handful. The router sees only normalised
//! paths (see `normalize`) and knows nothing of plugins or upstreams.
//!
//! Letter case: a route matches its path's letters exactly unless it is
//! `case_insensitive` (then any case matches). A path that matches a case-sensitive
//! route only when case is ignored is never given to a less specific route (a
//! catch-all behind `/admin` would otherwise forward `/ADMIN` to an upstream that may
//! read it as `/admin`): the lookup answers [`Miss::CaseVariant`] instead.
//!
//! Trailing slash: an exact route (`path = "/admin"`) also takes its path with one
//! trailing slash (`/admin/`), which most frameworks serve as the same resource; the
//! upstream receives the path as sent.

mod conditions;

use std::borrow::Cow;
use std::collections::HashMap;

use http::Method;

pub use conditions::{Condition, RequestParts, Test};

/// One segment of an exact path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

impl Segment {
    /// The text of a literal segment.
    fn literal(&self) -> Option<&str> {
        match self {
            Self::Literal(text) => Some(text),
            Self::Param(_) => None,
        }
    }
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

    /// Matches `path`, returning the captured parameters. With `fold`, letters match
    /// whatever their case (ASCII: normalised paths escape everything else).
    fn matches(&self, path: &str, fold: bool) -> Option<Vec<(String, String)>> {
        let same = |literal: &str, part: &str| {
            if fold {
                literal.eq_ignore_ascii_case(part)
            } else {
                literal == part
            }
        };
        match &self.0 {
            Kind::Prefix(prefix) => {
                // `prefix` is ASCII, so a match ends on a character boundary.
                let head = path.as_bytes().get(..prefix.len())?;
                if !(head == prefix.as_bytes()
                    || fold && head.eq_ignore_ascii_case(prefix.as_bytes()))
                {
                    return None;
                }
                let rest = &path[prefix.len()..];
                (rest.is_empty() || rest.starts_with('/')).then(Vec::new)
            }
            Kind::Exact(segments) => {
                let mut params = Vec::new();
                let mut parts = path.strip_prefix('/')?.split('/');
                for segment in segments {
                    let part = parts.next()?;
                    match segment {
                        Segment::Literal(literal) if same(literal, part) => {}
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
                match (parts.next(), parts.next()) {
                    (None, _) => Some(params),
                    // One trailing slash: Express, Spring before 6 and the like serve
                    // `/admin/` as `/admin`, so it is the same route (and its plugins
                    // run), never a less specific one's.
                    (Some(""), None) => Some(params),
                    _ => None,
                }
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

    /// Where the route goes in the table's indexes.
    fn key(&self) -> Key {
        match &self.0 {
            Kind::Exact(segments) => {
                match segments
                    .iter()
                    .map(Segment::literal)
                    .collect::<Option<Vec<_>>>()
                {
                    Some(texts) => Key::Path(format!("/{}", texts.join("/")).to_ascii_lowercase()),
                    None => match segments.first().and_then(Segment::literal) {
                        Some(first) => Key::FirstSegment(first.to_ascii_lowercase()),
                        None => Key::Anywhere,
                    },
                }
            }
            Kind::Prefix(prefix) if prefix.is_empty() => Key::Anywhere,
            Kind::Prefix(prefix) => Key::FirstSegment(first_segment(prefix).to_ascii_lowercase()),
        }
    }

    /// The path the upstream gets when the route strips its prefix; a path a plugin
    /// moved out from under the prefix is sent as it is.
    pub fn strip<'a>(&self, path: &'a str) -> &'a str {
        match &self.0 {
            Kind::Prefix(prefix) => {
                let prefix = prefix.trim_end_matches('/');
                match path.get(..prefix.len()) {
                    Some(head) if head.eq_ignore_ascii_case(prefix) => {
                        match &path[prefix.len()..] {
                            "" => "/",
                            rest if rest.starts_with('/') => rest,
                            _ => path,
                        }
                    }
                    _ => path,
                }
            }
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
        || path.contains("//")
    {
        return Err(format!(
            "{path:?} must be normalised: no '.' or '..' segments, no '//', no %-escapes"
        ));
    }
    if path
        .bytes()
        .any(|b| b <= b' ' || b"?#\\;<>`".contains(&b) || b >= 0x7f)
    {
        // `<`, `>` and `` ` `` too: no request target holds them raw, so such a route
        // could never match.
        return Err(format!(
            "{path:?} holds a character not allowed in a path (space, '?', '#', '\\', ';', '<', '>', '`', control or non-ASCII)"
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
    /// Whether the path's letters match whatever their case.
    pub case_insensitive: bool,
    /// Conditions on headers and query parameters, all of which must hold.
    pub conditions: Vec<Condition>,
}

impl RouteMatcher {
    /// Sort key: smaller is more specific (a host, then the pattern's rank, then more
    /// conditions).
    fn specificity(&self) -> (bool, (u8, usize), usize) {
        (
            self.host.is_none(),
            self.pattern.rank(),
            usize::MAX - self.conditions.len(),
        )
    }
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
    /// The path differs only in letter case from the path of a case-sensitive route
    /// more specific than the route that would take it: refused, since the upstream
    /// behind that other route may read it as the first route's path.
    CaseVariant,
}

/// All routes, ordered for matching, with indexes that narrow a lookup to the routes
/// that can match a path.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    /// (config index, matcher), most specific first.
    ordered: Vec<(usize, RouteMatcher)>,
    /// Positions in `ordered` of the routes with a literal exact path, by that path
    /// in lower case (so a lookup also finds the routes its case variants match).
    exact: HashMap<String, Vec<usize>>,
    /// Positions of the other routes whose path begins with a literal segment, by
    /// that segment in lower case: a path can only match them if it begins with the
    /// same one, ignoring case.
    by_segment: HashMap<String, Vec<usize>>,
    /// Positions of the routes any path may match (`prefix = "/"`, a leading
    /// `{param}`).
    anywhere: Vec<usize>,
}

impl RouteTable {
    /// Builds the table from matchers in config order.
    pub fn new(matchers: Vec<RouteMatcher>) -> Self {
        Self::with_indexes(matchers.into_iter().enumerate().collect())
    }

    /// Builds the table from (route index, matcher) pairs: a table of some of the
    /// routes, whose lookups still give indexes into all of them.
    pub fn with_indexes(mut ordered: Vec<(usize, RouteMatcher)>) -> Self {
        ordered.sort_by_key(|(index, m)| (m.specificity(), *index));
        let mut table = Self {
            ordered,
            ..Self::default()
        };
        for (position, (_, matcher)) in table.ordered.iter().enumerate() {
            let list = match matcher.pattern.key() {
                Key::Path(path) => table.exact.entry(path).or_default(),
                Key::FirstSegment(segment) => table.by_segment.entry(segment).or_default(),
                Key::Anywhere => &mut table.anywhere,
            };
            list.push(position);
        }
        table
    }

    /// Whether the table has no routes.
    pub fn is_empty(&self) -> bool {
        self.ordered.is_empty()
    }

    /// Finds the route for a request without headers or query (routes with
    /// conditions never match it). `host` is the request's host without port.
    pub fn lookup(
        &self,
        host: Option<&str>,
        method: &Method,
        path: &str,
    ) -> Result<RouteMatch, Miss> {
        self.lookup_request(host, method, path, &RequestParts::bare())
    }

    /// Finds the route for a request. `host` is the request's host without port;
    /// `request` is what routes' conditions look at.
    ///
    /// Only the routes the indexes name are tried, in the table's order, so the
    /// answer is the one a walk over every route would give.
    pub fn lookup_request(
        &self,
        host: Option<&str>,
        method: &Method,
        path: &str,
        request: &RequestParts<'_>,
    ) -> Result<RouteMatch, Miss> {
        const NONE: &[usize] = &[];
        let folded = if path.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(path.to_ascii_lowercase())
        } else {
            Cow::Borrowed(path)
        };
        let exact = self.exact.get(folded.as_ref()).map_or(NONE, Vec::as_slice);
        // An exact route takes its path with one trailing slash too.
        let slashed = match folded.strip_suffix('/') {
            Some(trimmed) if !trimmed.is_empty() => {
                self.exact.get(trimmed).map_or(NONE, Vec::as_slice)
            }
            _ => NONE,
        };
        let segment = self
            .by_segment
            .get(first_segment(&folded))
            .map_or(NONE, Vec::as_slice);
        self.try_in_order(
            merged([exact, slashed, segment, &self.anywhere]),
            host,
            method,
            path,
            request,
        )
    }

    /// [`lookup`](Self::lookup) without the indexes: every route, in order.
    #[cfg(test)]
    fn lookup_every_route(
        &self,
        host: Option<&str>,
        method: &Method,
        path: &str,
    ) -> Result<RouteMatch, Miss> {
        self.try_in_order(
            0..self.ordered.len(),
            host,
            method,
            path,
            &RequestParts::bare(),
        )
    }

    /// Tries the routes at `positions` (ascending) and takes the first that matches,
    /// unless a more specific case-sensitive route matched a case variant of the path.
    fn try_in_order(
        &self,
        positions: impl Iterator<Item = usize>,
        host: Option<&str>,
        method: &Method,
        path: &str,
        request: &RequestParts<'_>,
    ) -> Result<RouteMatch, Miss> {
        let mut allowed: Vec<Method> = Vec::new();
        // The first (most specific) case-sensitive route a case variant matched.
        let mut shadowing = None;
        for (index, matcher) in positions.map(|p| &self.ordered[p]) {
            if let Some(want) = &matcher.host
                && !host.is_some_and(|h| h.eq_ignore_ascii_case(want))
            {
                continue;
            }
            let (params, takes_it) = match matcher.pattern.matches(path, false) {
                Some(params) => (params, true),
                None => match matcher.pattern.matches(path, true) {
                    Some(params) => (params, matcher.case_insensitive),
                    None => continue,
                },
            };
            // A route whose conditions fail is not there for this request: it neither
            // takes it, nor answers 405, nor shadows a case variant.
            if !matcher.conditions.iter().all(|c| c.holds(request)) {
                continue;
            }
            match &matcher.methods {
                Some(methods) if !methods.contains(method) => {
                    if takes_it {
                        for m in methods {
                            if !allowed.contains(m) {
                                allowed.push(m.clone());
                            }
                        }
                    }
                }
                _ if !takes_it => {
                    if shadowing.is_none() {
                        shadowing = Some(matcher.specificity());
                    }
                }
                _ => {
                    if shadowing.is_some_and(|s| s < matcher.specificity()) {
                        return Err(Miss::CaseVariant);
                    }
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

/// Which index a pattern goes in.
#[derive(Debug, PartialEq, Eq)]
enum Key {
    /// A literal exact path matches only itself.
    Path(String),
    /// A pattern or prefix whose first segment is literal.
    FirstSegment(String),
    /// A pattern whose first segment is a `{param}`, or the root prefix.
    Anywhere,
}

/// The first segment of a normalised path: `"a"` for `/a/b`, `""` for `/`.
fn first_segment(path: &str) -> &str {
    let rest = path.strip_prefix('/').unwrap_or(path);
    rest.split('/').next().unwrap_or("")
}

/// The ascending merge of ascending lists that share no element.
fn merged<const N: usize>(mut lists: [&[usize]; N]) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        let (list, &next) = lists
            .iter()
            .enumerate()
            .filter_map(|(i, list)| list.first().map(|first| (i, first)))
            .min_by_key(|(_, first)| **first)?;
        lists[list] = &lists[list][1..];
        Some(next)
    })
}

#[cfg(test)]
mod tests;
