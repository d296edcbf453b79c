//! Properties of the router (`wasmgate::router`): it never panics; its answer is the
//! one its documented rules give (a model of them below, walking every route); a
//! route that cannot match a path does not change that path's answer; a
//! case-insensitive route takes every case variant of its paths, and a case variant of
//! a case-sensitive route's path never reaches a less specific route.

use http::Method;
use proptest::prelude::*;
use wasmgate::router::{Miss, PathPattern, RouteMatch, RouteMatcher, RouteTable};

/// Few literals, in two cases, so that routes and paths overlap often.
const LITERALS: &[&str] = &["a", "b", "A", "ab", "aB", "users"];
const HOSTS: &[&str] = &["h.example", "g.example"];

/// One segment of a generated exact path.
#[derive(Debug, Clone)]
enum Seg {
    Lit(&'static str),
    Param,
}

#[derive(Debug, Clone)]
enum Shape {
    Exact(Vec<Seg>),
    /// The literals, and whether it was written with a trailing `/`.
    Prefix(Vec<&'static str>, bool),
}

/// A generated route, as the config would give it.
#[derive(Debug, Clone)]
struct Route {
    host: Option<&'static str>,
    methods: Option<Vec<Method>>,
    shape: Shape,
    case_insensitive: bool,
}

impl Shape {
    fn text(&self) -> String {
        match self {
            Shape::Exact(segments) => {
                let mut text = String::new();
                for (i, segment) in segments.iter().enumerate() {
                    text.push('/');
                    match segment {
                        Seg::Lit(literal) => text.push_str(literal),
                        Seg::Param => text.push_str(&format!("{{p{i}}}")),
                    }
                }
                if text.is_empty() {
                    text.push('/');
                }
                text
            }
            Shape::Prefix(literals, slash) => {
                let mut text: String = literals.iter().map(|l| format!("/{l}")).collect();
                if *slash || text.is_empty() {
                    text.push('/');
                }
                text
            }
        }
    }

    fn pattern(&self) -> PathPattern {
        match self {
            Shape::Exact(_) => PathPattern::parse_exact(&self.text()),
            Shape::Prefix(..) => PathPattern::parse_prefix(&self.text()),
        }
        .expect("generated patterns are valid")
    }
}

impl Route {
    fn matcher(&self) -> RouteMatcher {
        RouteMatcher {
            host: self.host.map(str::to_string),
            methods: self.methods.clone(),
            pattern: self.shape.pattern(),
            case_insensitive: self.case_insensitive,
            conditions: Vec::new(),
        }
    }

    /// The documented order: a host before none; exact paths, then patterns with
    /// more literal segments first, then prefixes, longer first. Smaller sorts first.
    fn specificity(&self) -> (bool, u8, usize) {
        let (kind, size) = match &self.shape {
            Shape::Exact(segments) => {
                let literals = segments.iter().filter(|s| matches!(s, Seg::Lit(_))).count();
                if literals == segments.len() {
                    (0, 0)
                } else {
                    (1, usize::MAX - literals)
                }
            }
            Shape::Prefix(..) => (
                2,
                usize::MAX - self.shape.text().trim_end_matches('/').len(),
            ),
        };
        (self.host.is_none(), kind, size)
    }

    /// The parameters, if the route's path matches `path` (letters compared as
    /// `fold` says).
    fn matches(&self, path: &str, fold: bool) -> Option<Vec<(String, String)>> {
        let same = |a: &str, b: &str| {
            if fold {
                a.eq_ignore_ascii_case(b)
            } else {
                a == b
            }
        };
        match &self.shape {
            Shape::Exact(segments) => {
                let mut parts: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
                let wanted = segments.len().max(1);
                // One trailing slash is the same path.
                if parts.len() == wanted + 1 && parts.last() == Some(&"") {
                    parts.pop();
                }
                if parts.len() != wanted {
                    return None;
                }
                if segments.is_empty() {
                    return parts[0].is_empty().then(Vec::new);
                }
                let mut params = Vec::new();
                for (i, (segment, part)) in segments.iter().zip(&parts).enumerate() {
                    match segment {
                        Seg::Lit(literal) if same(literal, part) => {}
                        Seg::Lit(_) => return None,
                        Seg::Param if part.is_empty() => return None,
                        Seg::Param => params.push((
                            format!("p{i}"),
                            percent_encoding::percent_decode_str(part)
                                .decode_utf8_lossy()
                                .into_owned(),
                        )),
                    }
                }
                Some(params)
            }
            Shape::Prefix(..) => {
                let text = self.shape.text();
                let prefix = text.trim_end_matches('/');
                let head = path.get(..prefix.len())?;
                let rest = &path[prefix.len()..];
                (same(prefix, head) && (rest.is_empty() || rest.starts_with('/'))).then(Vec::new)
            }
        }
    }
}

/// A case-sensitive catch-all `/`, then a route of `shape` for any method and host.
fn behind_catch_all(shape: &Shape, case_insensitive: bool) -> [Route; 2] {
    let route = |shape: Shape, case_insensitive| Route {
        host: None,
        methods: None,
        shape,
        case_insensitive,
    };
    [
        route(Shape::Prefix(Vec::new(), true), false),
        route(shape.clone(), case_insensitive),
    ]
}

/// The documented answer, from a walk over every route in order of specificity (ties
/// in config order): the first route that takes the path and the method; a method
/// mismatch lists the methods of the routes that took the path; a case variant of a
/// case-sensitive route's path is refused rather than given to a less specific route.
fn model(
    routes: &[Route],
    host: Option<&str>,
    method: &Method,
    path: &str,
) -> Result<(usize, Vec<(String, String)>), Miss> {
    let mut order: Vec<usize> = (0..routes.len()).collect();
    order.sort_by_key(|&i| (routes[i].specificity(), i));
    let mut allowed: Vec<Method> = Vec::new();
    let mut shadowing = None;
    for i in order {
        let route = &routes[i];
        if let Some(want) = route.host
            && !host.is_some_and(|h| h.eq_ignore_ascii_case(want))
        {
            continue;
        }
        let (params, takes_it) = match route.matches(path, false) {
            Some(params) => (params, true),
            None => match route.matches(path, true) {
                Some(params) => (params, route.case_insensitive),
                None => continue,
            },
        };
        let method_ok = route.methods.as_ref().is_none_or(|m| m.contains(method));
        if !method_ok {
            if takes_it {
                for m in route.methods.iter().flatten() {
                    if !allowed.contains(m) {
                        allowed.push(m.clone());
                    }
                }
            }
        } else if !takes_it {
            shadowing.get_or_insert(route.specificity());
        } else if shadowing.is_some_and(|s| s < route.specificity()) {
            return Err(Miss::CaseVariant);
        } else {
            return Ok((i, params));
        }
    }
    if allowed.is_empty() {
        Err(Miss::NotFound)
    } else {
        Err(Miss::MethodNotAllowed(allowed))
    }
}

fn found(result: Result<RouteMatch, Miss>) -> Result<(usize, Vec<(String, String)>), Miss> {
    result.map(|m| (m.index, m.params))
}

fn table(routes: &[Route]) -> RouteTable {
    RouteTable::new(routes.iter().map(Route::matcher).collect())
}

fn literal() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(LITERALS)
}

fn shape() -> impl Strategy<Value = Shape> {
    let segment = prop_oneof![3 => literal().prop_map(Seg::Lit), 1 => Just(Seg::Param)];
    prop_oneof![
        proptest::collection::vec(segment, 0..4).prop_map(Shape::Exact),
        (proptest::collection::vec(literal(), 0..3), any::<bool>())
            .prop_map(|(literals, slash)| Shape::Prefix(literals, slash)),
    ]
}

fn methods() -> impl Strategy<Value = Option<Vec<Method>>> {
    prop_oneof![
        2 => Just(None),
        1 => Just(Some(vec![Method::GET])),
        1 => Just(Some(vec![Method::POST, Method::PUT])),
    ]
}

fn route() -> impl Strategy<Value = Route> {
    (
        proptest::option::weighted(0.25, proptest::sample::select(HOSTS)),
        methods(),
        shape(),
        proptest::bool::weighted(0.3),
    )
        .prop_map(|(host, methods, shape, case_insensitive)| Route {
            host,
            methods,
            shape,
            case_insensitive,
        })
}

/// Normalised paths over the same literals, with other segments, escapes and
/// trailing slashes.
fn path() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        4 => literal().prop_map(str::to_string),
        1 => proptest::sample::select(vec!["x", "7", "AB", "USERS", "a%20b", "%C3%A9"])
            .prop_map(str::to_string),
    ];
    (proptest::collection::vec(segment, 0..5), any::<bool>()).prop_map(|(segments, slash)| {
        let mut path: String = segments.iter().map(|s| format!("/{s}")).collect();
        if slash || path.is_empty() {
            path.push('/');
        }
        path
    })
}

fn request_host() -> impl Strategy<Value = Option<&'static str>> {
    proptest::option::of(proptest::sample::select(vec![
        "h.example",
        "H.Example",
        "g.example",
        "other.example",
    ]))
}

fn method() -> impl Strategy<Value = Method> {
    proptest::sample::select(vec![Method::GET, Method::POST, Method::DELETE])
}

/// `path` with the case of the letters at the positions `flips` picks flipped.
fn flip_case(path: &str, flips: &[bool]) -> String {
    path.chars()
        .zip(flips.iter().cycle())
        .map(|(c, &flip)| match (flip, c) {
            (true, c) if c.is_ascii_lowercase() => c.to_ascii_uppercase(),
            (true, c) if c.is_ascii_uppercase() => c.to_ascii_lowercase(),
            (_, c) => c,
        })
        .collect()
}

/// A path the route's own path matches: its literals as written, `value` for params.
fn path_of(shape: &Shape, values: &[&str], tail: &[&str]) -> String {
    let mut path = String::new();
    match shape {
        Shape::Exact(segments) => {
            for (i, segment) in segments.iter().enumerate() {
                path.push('/');
                match segment {
                    Seg::Lit(literal) => path.push_str(literal),
                    Seg::Param => path.push_str(values[i % values.len()]),
                }
            }
        }
        Shape::Prefix(literals, _) => {
            for segment in literals.iter().chain(tail) {
                path.push('/');
                path.push_str(segment);
            }
        }
    }
    if path.is_empty() {
        path.push('/');
    }
    path
}

proptest! {
    #![proptest_config(crate::cases(1024))]

    #[test]
    fn prop_router_never_panics_on_arbitrary_patterns_and_paths(
        patterns in proptest::collection::vec((any::<bool>(), ".*"), 0..6),
        paths in proptest::collection::vec(".*", 1..6),
        fold in any::<bool>(),
    ) {
        let matchers: Vec<RouteMatcher> = patterns
            .iter()
            .filter_map(|(exact, text)| {
                let pattern = if *exact {
                    PathPattern::parse_exact(text)
                } else {
                    PathPattern::parse_prefix(text)
                };
                Some(RouteMatcher {
                    host: None,
                    methods: None,
                    pattern: pattern.ok()?,
                    case_insensitive: fold,
                    conditions: Vec::new(),
                })
            })
            .collect();
        let patterns: Vec<PathPattern> = matchers.iter().map(|m| m.pattern.clone()).collect();
        let table = RouteTable::new(matchers);
        for path in &paths {
            for path in [path.clone(), format!("/{path}")] {
                if let Ok(found) = table.lookup(Some("h.example"), &Method::GET, &path) {
                    patterns[found.index].strip(&path);
                }
            }
        }
    }

    #[test]
    fn prop_router_answers_as_the_documented_rules_do(
        routes in proptest::collection::vec(route(), 0..10),
        requests in proptest::collection::vec((request_host(), method(), path()), 1..16),
    ) {
        let table = table(&routes);
        for (host, method, path) in &requests {
            let got = found(table.lookup(*host, method, path));
            let want = model(&routes, *host, method, path);
            prop_assert_eq!(&got, &want, "{} {:?} {}", method, host, path);
            if let Ok((index, _)) = got {
                let rest = routes[index].shape.pattern().strip(path);
                prop_assert!(rest.starts_with('/'), "{} stripped to {}", path, rest);
            }
        }
    }

    #[test]
    fn prop_router_a_route_that_cannot_match_changes_nothing(
        routes in proptest::collection::vec(route(), 0..8),
        extra in route(),
        at in any::<proptest::sample::Index>(),
        requests in proptest::collection::vec((request_host(), method(), path()), 1..12),
    ) {
        let position = at.index(routes.len() + 1);
        let mut with_extra = routes.clone();
        with_extra.insert(position, extra.clone());
        let (before, after) = (table(&routes), table(&with_extra));
        // The extra route, taking any case and method: whether it could match at all.
        let mut anything = extra.clone();
        anything.case_insensitive = true;
        anything.methods = None;
        let alone = table(&[anything]);
        for (host, method, path) in &requests {
            if alone.lookup(*host, method, path).is_ok() {
                continue;
            }
            let old = found(before.lookup(*host, method, path));
            let new = found(after.lookup(*host, method, path));
            prop_assert_ne!(new.as_ref().map(|(i, _)| *i).ok(), Some(position));
            let new = new.map(|(i, params)| (if i > position { i - 1 } else { i }, params));
            prop_assert_eq!(old, new, "{} {:?} {}", method, host, path);
        }
    }

    #[test]
    fn prop_router_case_insensitive_routes_take_every_case_variant(
        shape in shape(),
        values in proptest::collection::vec("[a-zA-Z0-9]{1,3}", 1..4),
        tail in proptest::collection::vec("[a-zA-Z]{1,3}", 0..3),
        flips in proptest::collection::vec(any::<bool>(), 1..16),
    ) {
        // The route, behind a case-sensitive catch-all that would take any path.
        let table = table(&behind_catch_all(&shape, true));
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        let tail: Vec<&str> = tail.iter().map(String::as_str).collect();
        let path = path_of(&shape, &values, &tail);
        let variant = flip_case(&path, &flips);
        let at_path = table.lookup(None, &Method::GET, &path).map(|m| m.index);
        let found = table.lookup(None, &Method::GET, &variant);
        if at_path == Ok(0) {
            // Only the root prefix, which is the catch-all's own path.
            prop_assert!(matches!(&shape, Shape::Prefix(l, _) if l.is_empty()));
            return Ok(());
        }
        prop_assert_eq!(at_path, Ok(1), "{}", path);
        let found = found.map_err(|miss| format!("{miss:?}"));
        let index = found.as_ref().map(|m| m.index);
        prop_assert_eq!(index, Ok(1), "{} (variant of {})", variant, path);
        // Parameters are the variant's own text, case kept.
        let params = &found.unwrap().params;
        for (name, value) in params {
            let in_variant = variant.split('/').any(|part| part == value);
            prop_assert!(in_variant, "{} = {} not in {}", name, value, variant);
        }
    }

    #[test]
    fn prop_router_case_variants_of_case_sensitive_routes_reach_no_less_specific_route(
        shape in shape(),
        values in proptest::collection::vec("[a-z0-9]{1,3}", 1..4),
        tail in proptest::collection::vec("[a-z]{1,3}", 0..3),
        flips in proptest::collection::vec(any::<bool>(), 1..16),
    ) {
        let routes = behind_catch_all(&shape, false);
        let exact_case = routes[1].clone();
        let table = table(&routes);
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        let tail: Vec<&str> = tail.iter().map(String::as_str).collect();
        let path = path_of(&shape, &values, &tail);
        let variant = flip_case(&path, &flips);
        if exact_case.matches(&variant, false).is_some() {
            // Only parameters or the prefix's tail changed case: still the route's path.
            if exact_case.specificity() < routes[0].specificity() {
                prop_assert_eq!(table.lookup(None, &Method::GET, &variant).map(|m| m.index), Ok(1));
            }
        } else {
            prop_assert_eq!(
                table.lookup(None, &Method::GET, &variant).map(|m| m.index),
                Err(Miss::CaseVariant),
                "{} (variant of {})", variant, path
            );
        }
    }
}
