//! Tests of route matching and ordering.

use super::*;

fn matcher(host: Option<&str>, methods: Option<&[&str]>, pattern: PathPattern) -> RouteMatcher {
    RouteMatcher {
        host: host.map(str::to_string),
        methods: methods.map(|m| m.iter().map(|m| m.parse().unwrap()).collect()),
        pattern,
        case_insensitive: false,
        conditions: Vec::new(),
    }
}

fn folding(mut matcher: RouteMatcher) -> RouteMatcher {
    matcher.case_insensitive = true;
    matcher
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
    assert!(api.matches("/api", false).is_some());
    assert!(api.matches("/api/x", false).is_some());
    assert!(api.matches("/apix", false).is_none());
    assert_eq!(api.strip("/api"), "/");
    assert_eq!(api.strip("/api/v1/x"), "/v1/x");
    assert!(prefix("/").matches("/anything", false).is_some());
    assert_eq!(prefix("/").strip("/a"), "/a");
    // A path a plugin moved out from under the prefix goes as it is.
    assert_eq!(api.strip("/other/x"), "/other/x");
    assert_eq!(api.strip("/apix"), "/apix");
    // Even where the prefix's length of it ends at a `/`: `/abc` is not `/api`.
    assert_eq!(api.strip("/abc/x"), "/abc/x");
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
        "/a//b",
        "/a;b",
        "/a/..;/b",
        "/a<b",
        "/a>",
        "/a`b",
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
                let one = matcher(*host, methods[(i + j) % 3], pattern.clone());
                matchers.push(if (i + j) % 4 == 1 { folding(one) } else { one });
            }
        }
    }
    let table = RouteTable::new(matchers);
    let paths = [
        "/", "/a", "/a/", "/a/b", "/a/b/", "/a/b/c", "/a/c", "/ab", "/ab/c", "/abc", "/b", "/b/b",
        "/b/c", "/b/c/d", "/c", "/c/b", "/x/y/z", "//a", "/A", "/A/b", "/a/B", "/AB/c", "/B/C",
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

#[test]
fn a_case_insensitive_route_takes_every_case_variant() {
    let table = RouteTable::new(vec![
        matcher(None, None, prefix("/")),
        folding(matcher(None, None, prefix("/admin"))),
        folding(matcher(None, None, exact("/Users/{id}"))),
    ]);
    let find = |path| {
        table
            .lookup(None, &Method::GET, path)
            .map(|m| (m.index, m.params))
    };
    assert_eq!(find("/ADMIN").unwrap().0, 1);
    assert_eq!(find("/aDmIn/x").unwrap().0, 1);
    assert_eq!(find("/admin").unwrap().0, 1);
    assert_eq!(find("/administrator").unwrap().0, 0);
    assert_eq!(
        find("/users/AbC").unwrap(),
        (2, vec![("id".into(), "AbC".into())]),
        "parameters keep their case"
    );
    assert_eq!(prefix("/admin").strip("/ADMIN/x"), "/x");
}

#[test]
fn a_case_variant_of_a_case_sensitive_route_never_reaches_a_less_specific_one() {
    let table = RouteTable::new(vec![
        matcher(None, None, prefix("/")),
        matcher(None, None, prefix("/admin")),
        matcher(None, None, exact("/api/keys")),
        matcher(None, None, prefix("/api")),
        matcher(None, Some(&["POST"]), prefix("/upload")),
    ]);
    let find = |method: &str, path| table.lookup(None, &method.parse().unwrap(), path);
    for path in ["/ADMIN", "/Admin/users", "/API/keys", "/api/KEYS"] {
        assert_eq!(find("GET", path).unwrap_err(), Miss::CaseVariant, "{path}");
    }
    assert_eq!(find("GET", "/admin/x").unwrap().index, 1);
    assert_eq!(find("GET", "/api/keys").unwrap().index, 2);
    // `/api/Keys` is a case variant of `/api/keys`, but it is also under `/api`, which
    // is less specific: refused all the same.
    assert_eq!(find("GET", "/api/Keys").unwrap_err(), Miss::CaseVariant);
    // A route that would not take the method anyway shadows nothing.
    assert_eq!(find("GET", "/UPLOAD").unwrap().index, 0);
    assert_eq!(find("POST", "/UPLOAD").unwrap_err(), Miss::CaseVariant);
    // Without a less specific route to take it, a case variant is just not found.
    let alone = RouteTable::new(vec![matcher(None, None, prefix("/admin"))]);
    assert_eq!(
        alone.lookup(None, &Method::GET, "/ADMIN").unwrap_err(),
        Miss::NotFound
    );
}

#[test]
fn routes_that_differ_only_in_case_each_take_their_own_path() {
    let table = RouteTable::new(vec![
        matcher(None, None, prefix("/")),
        matcher(None, None, exact("/readme")),
        matcher(None, None, exact("/README")),
    ]);
    let find = |path| table.lookup(None, &Method::GET, path);
    assert_eq!(find("/readme").unwrap().index, 1);
    assert_eq!(find("/README").unwrap().index, 2);
    assert_eq!(find("/ReadMe").unwrap_err(), Miss::CaseVariant);
}

#[test]
fn an_exact_route_takes_its_path_with_one_trailing_slash() {
    // `/admin/` is `/admin` to Express or Spring: the exact route's plugins must run.
    let table = RouteTable::new(vec![
        matcher(None, None, prefix("/")),
        matcher(None, None, exact("/admin")),
        matcher(None, None, exact("/users/{id}")),
    ]);
    let find = |path| table.lookup(None, &Method::GET, path).unwrap();
    assert_eq!(find("/admin/").index, 1);
    assert!(matches!(
        table.lookup(None, &Method::GET, "/ADMIN/"),
        Err(Miss::CaseVariant)
    ));
    assert_eq!(find("/users/7/").index, 2);
    assert_eq!(
        find("/users/7/").params,
        [("id".to_string(), "7".to_string())]
    );
    assert_eq!(find("/admin/x").index, 0);
    assert_eq!(find("/admin//").index, 0);
}

/// Looks `path` up in tables built from `patterns` in every rotation of their config
/// order; all must agree. Returns the pattern (by its position in `patterns`) chosen.
fn chosen_in_every_order(patterns: &[PathPattern], path: &str) -> Option<usize> {
    let mut answers = Vec::new();
    for rotation in 0..patterns.len() {
        let order: Vec<usize> = (0..patterns.len())
            .map(|i| (i + rotation) % patterns.len())
            .collect();
        for order in [order.clone(), order.into_iter().rev().collect()] {
            let table = RouteTable::new(
                order
                    .iter()
                    .map(|&i| matcher(None, None, patterns[i].clone()))
                    .collect(),
            );
            let found = table
                .lookup(None, &Method::GET, path)
                .ok()
                .map(|found| order[found.index]);
            answers.push(found);
        }
    }
    assert!(
        answers.windows(2).all(|w| w[0] == w[1]),
        "{path}: the answer depends on the config order: {answers:?}"
    );
    answers[0]
}

#[test]
fn the_longest_of_nested_prefixes_wins_in_any_config_order() {
    let patterns = [
        prefix("/"),
        prefix("/api"),
        prefix("/api/admin"),
        prefix("/api/admin/keys"),
    ];
    assert_eq!(chosen_in_every_order(&patterns, "/x"), Some(0));
    assert_eq!(chosen_in_every_order(&patterns, "/api"), Some(1));
    assert_eq!(chosen_in_every_order(&patterns, "/api/users"), Some(1));
    assert_eq!(chosen_in_every_order(&patterns, "/api/admin"), Some(2));
    assert_eq!(chosen_in_every_order(&patterns, "/api/admin/x"), Some(2));
    assert_eq!(
        chosen_in_every_order(&patterns, "/api/admin/keys/1"),
        Some(3)
    );
    assert_eq!(chosen_in_every_order(&patterns, "/api/adminx"), Some(1));
}

#[test]
fn among_patterns_more_literal_segments_win_then_literal_paths_then_prefixes() {
    let patterns = [
        exact("/{a}/{b}/{c}"),
        exact("/api/{b}/{c}"),
        exact("/api/{b}/items"),
        exact("/api/v1/items"),
        prefix("/api/v1"),
        exact("/{a}"),
    ];
    assert_eq!(chosen_in_every_order(&patterns, "/api/v1/items"), Some(3));
    assert_eq!(chosen_in_every_order(&patterns, "/api/v2/items"), Some(2));
    assert_eq!(chosen_in_every_order(&patterns, "/api/v2/orders"), Some(1));
    assert_eq!(chosen_in_every_order(&patterns, "/web/v2/items"), Some(0));
    // A pattern with params still beats a prefix that also matches.
    assert_eq!(chosen_in_every_order(&patterns, "/api/v1/orders"), Some(1));
    assert_eq!(chosen_in_every_order(&patterns, "/api/v1/a/b"), Some(4));
    assert_eq!(chosen_in_every_order(&patterns, "/solo"), Some(5));
    assert_eq!(chosen_in_every_order(&patterns, "/a/b"), None);
}

#[test]
fn a_route_with_a_host_beats_any_route_without_and_ties_go_to_config_order() {
    let table = RouteTable::new(vec![
        matcher(None, None, exact("/api/v1/items")),
        matcher(Some("a.example"), None, prefix("/")),
        matcher(None, None, prefix("/api")),
        matcher(None, None, prefix("/api")),
    ]);
    let find = |host, path| table.lookup(host, &Method::GET, path).unwrap().index;
    assert_eq!(find(Some("a.example"), "/api/v1/items"), 1);
    assert_eq!(find(Some("b.example"), "/api/v1/items"), 0);
    assert_eq!(find(None, "/api/x"), 2, "the first of two equal routes");
}

#[test]
fn every_character_a_request_path_cannot_hold_raw_is_refused_in_patterns() {
    let mut refused: Vec<String> = (0u8..=0x20)
        .chain([0x7f])
        .map(|b| format!("/a{}b", b as char))
        .collect();
    refused.extend(["?", "#", "\\", ";", "<", ">", "`"].map(|c| format!("/a{c}b")));
    refused.extend(["/é", "/a\u{80}", "/日本"].map(str::to_string));
    for bad in &refused {
        let exact = PathPattern::parse_exact(bad);
        let prefix = PathPattern::parse_prefix(bad);
        assert!(exact.is_err(), "path {bad:?} accepted");
        assert!(prefix.is_err(), "prefix {bad:?} accepted");
        assert!(
            exact.unwrap_err().contains("not allowed in a path"),
            "{bad:?}: the message names the class"
        );
    }
    // The characters a path may hold raw (RFC 3986 pchar, less ';') are accepted.
    for good in ["/a-b_c.d~e", "/a!$&'()*+,=:@b", "/A/Z/0/9"] {
        assert!(PathPattern::parse_exact(good).is_ok(), "{good:?} refused");
        assert!(PathPattern::parse_prefix(good).is_ok(), "{good:?} refused");
    }
}

#[test]
fn parameter_names_are_letters_digits_and_underscores() {
    for good in ["/{id}", "/{user_id}", "/{ID2}", "/{_}"] {
        assert!(PathPattern::parse_exact(good).is_ok(), "{good} refused");
    }
    for bad in [
        "/{a-b}", "/{a.b}", "/{a b}", "/{é}", "/{a}b}", "/{{a}}", "/{a:int}",
    ] {
        let refused = PathPattern::parse_exact(bad);
        assert!(refused.is_err(), "{bad} accepted");
    }
    assert!(
        PathPattern::parse_exact("/{a-b}")
            .unwrap_err()
            .contains("letters, digits, _")
    );
}

#[test]
fn routes_with_conditions_are_tried_first_and_skipped_when_they_fail() {
    let mut canary = matcher(None, None, prefix("/api"));
    canary.conditions = vec![
        Condition::header("x-canary", Test::parse(Some("1"), None).unwrap()).unwrap(),
        Condition::query("v", Test::Present).unwrap(),
    ];
    let mut beta = matcher(None, Some(&["POST"]), prefix("/api"));
    beta.conditions = vec![Condition::header("x-beta", Test::Present).unwrap()];
    // Config order puts the plain route first; conditions still win.
    let table = RouteTable::new(vec![
        matcher(None, Some(&["GET"]), prefix("/api")),
        canary,
        beta,
    ]);
    let find = |headers: &[(&str, &str)], query: Option<&str>, method: Method| {
        let mut map = http::HeaderMap::new();
        for (name, value) in headers {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        table.lookup_request(
            None,
            &method,
            "/api/x",
            &RequestParts {
                headers: &map,
                query,
            },
        )
    };
    let index = |r: Result<RouteMatch, Miss>| r.unwrap().index;
    assert_eq!(
        index(find(&[("x-canary", "1")], Some("v=2"), Method::GET)),
        1
    );
    assert_eq!(index(find(&[("x-canary", "1")], None, Method::GET)), 0);
    assert_eq!(index(find(&[("x-canary", "2")], Some("v"), Method::GET)), 0);
    assert_eq!(index(find(&[("x-beta", "")], None, Method::POST)), 2);
    // Without the header, the beta route's POST is not there: only GET is allowed.
    assert_eq!(
        find(&[], None, Method::POST).unwrap_err(),
        Miss::MethodNotAllowed(vec![Method::GET])
    );
    // The plain lookup has no headers: conditions never hold.
    assert_eq!(table.lookup(None, &Method::GET, "/api/x").unwrap().index, 0);
}

/// The index a route goes in (module doc): a literal exact path by its whole
/// (lower-cased) path, a pattern or prefix by its literal first segment, the rest in
/// the list tried for every path.
#[test]
fn each_pattern_goes_in_its_index() {
    let cases = [
        (exact("/Users/Me"), Key::Path("/users/me".into())),
        (exact("/"), Key::Path("/".into())),
        (exact("/users/{id}"), Key::FirstSegment("users".into())),
        (exact("/{tenant}/users"), Key::Anywhere),
        (prefix("/API/v1"), Key::FirstSegment("api".into())),
        (prefix("/"), Key::Anywhere),
    ];
    for (pattern, key) in cases {
        assert_eq!(pattern.key(), key, "{pattern:?}");
    }
}

/// A half-written parameter is refused with the message that says what a parameter
/// is, whichever brace is missing.
#[test]
fn a_half_written_parameter_says_what_a_parameter_is() {
    for bad in ["/users/{id", "/users/id}", "/{}", "/{a-b}"] {
        let error = PathPattern::parse_exact(bad).unwrap_err();
        assert!(
            error.ends_with("a parameter is a whole segment like {id} (letters, digits, _)"),
            "{bad}: {error}"
        );
    }
    let error = PathPattern::parse_exact("/users/x{id").unwrap_err();
    assert!(
        error.ends_with("a parameter is a whole segment like {id}"),
        "{error}"
    );
}

#[test]
fn a_table_without_routes_is_empty() {
    assert!(RouteTable::new(Vec::new()).is_empty());
    assert!(!RouteTable::new(vec![matcher(None, None, prefix("/"))]).is_empty());
}

/// A route's `host`: a DNS name or an IPv4 literal, letters, digits, `-` and `.`
/// only, 1 to 253 bytes; no port, no wildcard, no space.
#[test]
fn a_route_host_is_a_plain_name() {
    let longest = format!("{}.example", "a".repeat(245));
    assert_eq!(longest.len(), 253);
    for good in [
        "example.com",
        "API-2.example",
        "127.0.0.1",
        "x",
        longest.as_str(),
    ] {
        assert!(is_valid_host(good), "{good} refused");
    }
    let too_long = format!("a{longest}");
    for bad in [
        "",
        "example.com:8080",
        "*.example.com",
        "a b",
        "under_score.example",
        "[::1]",
        "ex/ample",
        too_long.as_str(),
    ] {
        assert!(!is_valid_host(bad), "{bad:?} accepted");
    }
}
