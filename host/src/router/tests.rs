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
