use serde_json::Value;
use wasmgate_plugin_sdk::testing::{Harness, TestRequest};

use super::*;

/// SkyClust's roles: admin, user, viewer.
const CONFIG: &str = r#"{
  "roles": {"admin": ["*"], "user": ["user:read", "user:update", "workspace:*"],
            "viewer": ["user:read"]},
  "rules": [
    {"methods": ["GET"], "path_prefix": "/audit", "permissions": ["audit:read"]},
    {"methods": ["GET", "HEAD"], "permissions": ["user:read"]},
    {"methods": ["PUT", "patch"], "permissions": ["user:update"]},
    {"methods": ["POST"], "path_prefix": "/workspaces", "permissions": ["workspace:manage"]},
    {"methods": ["DELETE"], "roles": ["admin"]}
  ]
}"#;

/// Records a caller as an auth plugin before rbac would.
fn caller(h: &mut Harness<Rbac>, roles: &str, permissions: &str) {
    let vars = &mut h.ctx.vars;
    vars.clear();
    vars.push(("auth_method".into(), "jwt".into()));
    vars.push(("username".into(), "alice".into()));
    if !roles.is_empty() {
        vars.push(("role".into(), roles.into()));
    }
    if !permissions.is_empty() {
        vars.push(("permissions".into(), permissions.into()));
    }
}

/// `None` when let through, else (status, error message).
fn outcome(h: &mut Harness<Rbac>, method: &str, path: &str) -> Option<(u16, String)> {
    match h.on_request(TestRequest::method(method, path)).action {
        Action::Continue => None,
        Action::ContinueTo(target) => panic!("rbac never chooses a target: {target:?}"),
        Action::Respond(response) => {
            let body: Value = serde_json::from_slice(response.body.as_ref().unwrap()).unwrap();
            Some((response.status, body["error"].as_str().unwrap().to_string()))
        }
    }
}

#[test]
fn roles_and_methods_decide() {
    let mut h = Harness::<Rbac>::new(CONFIG).unwrap();
    let allowed = |status: &Option<(u16, String)>| status.is_none();
    let table: Vec<(&str, &str, &str, bool)> = vec![
        ("admin", "GET", "/users/1", true),
        ("admin", "DELETE", "/users/1", true),
        ("admin", "GET", "/audit/log", true),
        ("user", "GET", "/users/1", true),
        ("user", "PATCH", "/users/1", true),
        ("user", "POST", "/workspaces/w1", true),
        ("user", "DELETE", "/users/1", false),
        ("user", "GET", "/audit/log", false),
        ("viewer", "GET", "/users/1", true),
        ("viewer", "HEAD", "/users/1", true),
        ("viewer", "PUT", "/users/1", false),
        ("viewer", "POST", "/workspaces/w1", false),
        ("viewer", "POST", "/users", false),
        ("nobody", "GET", "/users/1", false),
    ];
    for (role, method, path, expected) in table {
        caller(&mut h, role, "");
        let result = outcome(&mut h, method, path);
        assert_eq!(
            allowed(&result),
            expected,
            "{role} {method} {path}: {result:?}"
        );
        if let Some((status, _)) = result {
            assert_eq!(status, 403);
        }
    }
}

#[test]
fn the_refusal_names_what_is_missing() {
    let mut h = Harness::<Rbac>::new(CONFIG).unwrap();
    caller(&mut h, "user", "");
    assert_eq!(
        outcome(&mut h, "GET", "/audit/x"),
        Some((403, "missing permission audit:read".into()))
    );
    assert_eq!(
        outcome(&mut h, "DELETE", "/users/1"),
        Some((403, "requires role admin".into()))
    );
    assert_eq!(
        outcome(&mut h, "POST", "/users"),
        Some((403, "no rule allows POST here".into()))
    );
    let (_, line) = h.logs().last().unwrap().clone();
    assert!(line.contains("for alice"), "{line}");
}

#[test]
fn permissions_carried_by_the_token_or_key_count_too() {
    let mut h = Harness::<Rbac>::new(CONFIG).unwrap();
    caller(&mut h, "viewer", "audit:read");
    assert_eq!(outcome(&mut h, "GET", "/audit/log"), None);
    caller(&mut h, "", "user:*");
    assert_eq!(outcome(&mut h, "PUT", "/users/1"), None);
    assert!(outcome(&mut h, "GET", "/audit/log").is_some());
    // `user:*` is not `users:read`, and `*` only as a whole.
    assert!(!grants("user:*", "users:read"));
    assert!(!grants("user*", "user:read"));
    assert!(grants("*", "anything:at:all"));
}

#[test]
fn several_roles_and_path_prefixes_by_whole_segments() {
    let mut h = Harness::<Rbac>::new(CONFIG).unwrap();
    caller(&mut h, "viewer,admin", "");
    assert_eq!(outcome(&mut h, "DELETE", "/users/1"), None);
    caller(&mut h, "user", "");
    // `/auditing` is not under `/audit`: the GET rule for user:read applies.
    assert_eq!(outcome(&mut h, "GET", "/auditing"), None);
}

#[test]
fn no_caller_is_a_401_and_unmatched_may_allow() {
    let mut h = Harness::<Rbac>::new(CONFIG).unwrap();
    h.ctx.vars.clear();
    assert_eq!(
        outcome(&mut h, "GET", "/users/1"),
        Some((401, "authentication required".into()))
    );
    let mut open = Harness::<Rbac>::new(
        r#"{"rules": [{"methods": ["DELETE"], "roles": ["admin"]}], "unmatched": "allow"}"#,
    )
    .unwrap();
    caller(&mut open, "viewer", "");
    assert_eq!(outcome(&mut open, "GET", "/x"), None);
    assert!(outcome(&mut open, "DELETE", "/x").is_some());
}

#[test]
fn configs_that_cannot_work_are_refused() {
    for (config, expected) in [
        (r#"{"rules": [{"methods": []}]}"#, "empty"),
        (
            r#"{"rules": [{"methods": ["GET"]}]}"#,
            "needs `roles`, `permissions` or both",
        ),
        (
            r#"{"rules": [{"path_prefix": "x", "roles": ["a"]}]}"#,
            "must start with '/'",
        ),
        (
            r#"{"roles": {"admin": ["*"]}, "rules": [{"roles": ["root"]}]}"#,
            "unknown role \"root\"",
        ),
        (r#"{"roles": {}}"#, "missing field `rules`"),
        (r#"{"rules": [], "unmatched": "maybe"}"#, "unknown variant"),
    ] {
        let error = Harness::<Rbac>::new(config)
            .err()
            .unwrap_or_else(|| panic!("{config}"));
        assert!(error.contains(expected), "{config}: {error}");
    }
}

#[test]
fn decides_on_the_method_and_path_as_received() {
    let mut h = Harness::<Rbac>::new(CONFIG).unwrap();
    caller(&mut h, "user", "");
    // An earlier plugin rewrote `/audit/log` to `/users/1` for the upstream: the
    // audit rule still applies.
    h.ctx.path = Some("/audit/log".into());
    assert_eq!(
        outcome(&mut h, "GET", "/users/1"),
        Some((403, "missing permission audit:read".into()))
    );
    let (level, line) = h.logs().last().unwrap().clone();
    assert_eq!(
        (level, line.as_str()),
        (
            wasmgate_plugin_sdk::log::Level::Info,
            "refused GET /audit/log for alice: missing permission audit:read"
        )
    );
    assert_eq!(h.settings(), Settings::REQUEST_ONLY);
}

#[test]
fn path_prefixes_hold_for_every_letter_case() {
    let mut h = Harness::<Rbac>::new(CONFIG).unwrap();
    caller(&mut h, "user", "");
    // `/AUDIT/log` is `/audit/log` to a case-insensitive upstream: audit:read is needed.
    for path in ["/audit/log", "/AUDIT/log", "/Audit"] {
        assert!(outcome(&mut h, "GET", path).is_some(), "{path}");
    }
    caller(&mut h, "user", "audit:read");
    assert_eq!(outcome(&mut h, "GET", "/AUDIT/log"), None);
}
