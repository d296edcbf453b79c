//! Tests of route matching and ordering.

use super::*;

fn matcher(host: Option<&str>, methods: Option<&[&str]>, pattern: PathPattern) -> RouteMatcher {
    RouteMatcher {
        host: host.map(str::to_string),
        methods: methods.map(|m| m.iter().map(|m| m.parse().unwrap()).collect()),
        pattern,
    }
}

fn exact(path: &str) -> PathPattern {
    PathPattern::parse_exact(path).unwrap()
}

fn prefix(path: &str) -> PathPattern {
    PathPattern::parse_prefix(path).unwrap()
}

#[test]
fn the_most_specific_route_wins_whatever_the_config_order() {
    let table = RouteTable::new(vec![
        matcher(None, None, prefix("/")),
        matcher(None, None, prefix("/api")),
        matcher(None, None, exact("/api/users/{id}")),
        matcher(None, None, exact("/api/users/me")),
        matcher(Some("a.example"), None, prefix("/")),
    ]);
    let find = |host, path| table.lookup(host, &Method::GET, path).unwrap().index;
    assert_eq!(find(None, "/x"), 0);
    assert_eq!(find(None, "/api/x"), 1);
    assert_eq!(find(None, "/api/users/7"), 2);
    assert_eq!(find(None, "/api/users/me"), 3);
    assert_eq!(find(Some("a.example"), "/api/users/me"), 4);
    assert_eq!(find(Some("A.Example"), "/x"), 4);
}

#[test]
fn params_are_captured_and_decoded() {
    let table = RouteTable::new(vec![matcher(None, None, exact("/u/{id}/o/{order}"))]);
    let found = table.lookup(None, &Method::GET, "/u/a%20b/o/9").unwrap();
    assert_eq!(
        found.params,
        [("id".into(), "a b".into()), ("order".into(), "9".into())]
    );
    assert_eq!(
        table.lookup(None, &Method::GET, "/u//o/9").unwrap_err(),
        Miss::NotFound
    );
    assert_eq!(
        table.lookup(None, &Method::GET, "/u/1/o/9/x").unwrap_err(),
        Miss::NotFound
    );
}

#[test]
fn prefixes_match_whole_segments_and_strip() {
    let api = prefix("/api/");
    assert!(api.matches("/api").is_some());
    assert!(api.matches("/api/x").is_some());
    assert!(api.matches("/apix").is_none());
    assert_eq!(api.strip("/api"), "/");
    assert_eq!(api.strip("/api/v1/x"), "/v1/x");
    assert!(prefix("/").matches("/anything").is_some());
    assert_eq!(prefix("/").strip("/a"), "/a");
}

#[test]
fn a_method_mismatch_lists_the_allowed_methods() {
    let table = RouteTable::new(vec![
        matcher(None, Some(&["POST"]), exact("/x")),
        matcher(None, Some(&["PUT", "POST"]), prefix("/x")),
    ]);
    assert_eq!(
        table.lookup(None, &Method::GET, "/x").unwrap_err(),
        Miss::MethodNotAllowed(vec![Method::POST, Method::PUT])
    );
    assert_eq!(table.lookup(None, &Method::PUT, "/x").unwrap().index, 1);
}

#[test]
fn bad_patterns_are_refused() {
    for bad in [
        "users",
        "/users/{id",
        "/users/{}",
        "/a/{x}/{x}",
        "/a/b{x}",
        "/a/../b",
        "/a%2F",
        "/a b",
    ] {
        assert!(PathPattern::parse_exact(bad).is_err(), "{bad} accepted");
    }
    assert!(PathPattern::parse_prefix("/api/{x}").is_err());
}

#[test]
fn the_indexes_give_the_answer_of_a_walk_over_every_route() {
    // Routes that overlap in every way the indexes care about: literal paths,
    // params first and later, nested and root prefixes, hosts and methods.
    let patterns = [
        exact("/"),
        exact("/a"),
        exact("/a/b"),
        exact("/a/{x}"),
        exact("/{x}/b"),
        exact("/{x}"),
        exact("/a/b/{y}"),
        exact("/b"),
        prefix("/"),
        prefix("/a"),
        prefix("/a/b"),
        prefix("/b/c"),
        prefix("/ab"),
    ];
    let hosts = [None, Some("h.example")];
    let methods: [Option<&[&str]>; 3] = [None, Some(&["GET"]), Some(&["POST", "PUT"])];
    let mut matchers = Vec::new();
    for (i, pattern) in patterns.iter().enumerate() {
        for (j, host) in hosts.iter().enumerate() {
            // Not every combination: some paths are left to fewer routes.
            if (i + j) % 3 != 2 {
                matchers.push(matcher(*host, methods[(i + j) % 3], pattern.clone()));
            }
        }
    }
    let table = RouteTable::new(matchers);
    let paths = [
        "/", "/a", "/a/", "/a/b", "/a/b/", "/a/b/c", "/a/c", "/ab", "/ab/c", "/abc", "/b", "/b/b",
        "/b/c", "/b/c/d", "/c", "/c/b", "/x/y/z", "//a",
    ];
    let mut found = 0;
    for path in paths {
        for host in [None, Some("h.example"), Some("other.example")] {
            for method in [Method::GET, Method::POST, Method::DELETE] {
                let indexed = table.lookup(host, &method, path);
                let walked = table.lookup_every_route(host, &method, path);
                let same = match (&indexed, &walked) {
                    (Ok(a), Ok(b)) => a.index == b.index && a.params == b.params,
                    (Err(a), Err(b)) => a == b,
                    _ => false,
                };
                assert!(same, "{method} {host:?} {path}: {indexed:?} != {walked:?}");
                found += usize::from(indexed.is_ok());
            }
        }
    }
    assert!(
        found > 50,
        "only {found} lookups matched: the table is too thin"
    );
}
