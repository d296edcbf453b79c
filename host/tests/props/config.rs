//! Properties of the config loader (`wasmgate::config`): on any text, valid configs
//! with lines deleted, duplicated, swapped, cut or garbled, and schema-shaped configs
//! with arbitrary values, it never panics, and every error names the file and a line
//! of it. What it accepts has route paths the normaliser leaves as they are.

use std::path::Path;

use proptest::prelude::*;
use proptest::sample::Index;
use wasmgate::config::{ConfigError, LoadedConfig};
use wasmgate::normalize::normalize_path;

const FILE: &str = "/etc/wasmgate/gw.toml";

const QUICKSTART: &str = include_str!("../../../examples/quickstart/wasmgate.toml");

/// A valid config that sets every section (after the README's config reference).
const EVERYTHING: &str = r#"# A config that sets every section.
[gateway]
listen = "127.0.0.1:8080"
plugin_dir = "plugins"
data_dir = "data"
shutdown_grace_ms = 10000
plugin_cache = true

[admin]
enabled = true
listen = "127.0.0.1:9901"
allow_remote = false

[reload]
watch = true
debounce_ms = 200

[log]
level = "info"
format = "json"
file = "logs/wasmgate.log"
file_max_bytes = 10485760
file_backups = 5

[health]
path = "/health"
interval_ms = 10000
timeout_ms = 2000

[metrics]
path = "/metrics"

[limits]
max_header_bytes = 16384
max_uri_bytes = 8192
header_read_timeout_ms = 10000
idle_timeout_ms = 60000
max_body_bytes = 1048576

[plugins.auth]
timeout_ms = 100
memory_limit_mb = 64
http = ["keystone"]
kv_namespace = "auth"
kv_durable = false
services = ["users"]
upstreams = ["http://127.0.0.1:*", "http://10.0.0.0/8:8080"]
instances = 64
secrets = { jwt = { env = "JWT_SECRET" }, sign = { file = "keys/sign.pem" } }

[services.users]
endpoints = ["http://127.0.0.1:9001", "http://127.0.0.1:9002"]
connect_timeout_ms = 2000
health_path = "/health"

[services.keystone]
endpoints = ["http://127.0.0.1:9100"]

[[routes]]
name = "users"
host = "api.example.com"
methods = ["GET", "POST"]
path = "/users/{id}"
case_insensitive = false
service = "users"
timeout_ms = 30000
max_body_bytes = 1048576
preserve_host = false
listener = "gateway"
on_error = "fail"

[[routes.plugins]]
name = "auth"
on_error = "skip"
config = { request = { set = { "x-hello" = "world" } } }

[[routes]]
name = "api"
prefix = "/api/"
strip_prefix = true
case_insensitive = true
service = "users"

[[routes]]
name = "keys"
listener = "admin"
prefix = "/keys"
service = "keystone"
"#;

/// Lines that are plausible in a config, many of them wrong.
const LINES: &[&str] = &[
    "[gateway]",
    "[admin]",
    "[limits]",
    "[health]",
    "[services.s]",
    "[plugins.auth]",
    "[plugins.Bad]",
    "[[routes]]",
    "[[routes.plugins]]",
    "name = \"x\"",
    "name = \"\"",
    "name = \"users\"",
    "prefix = \"/\"",
    "prefix = \"/a/../b\"",
    "path = \"/{a}/{a}\"",
    "path = \"/a%2Fb\"",
    "service = \"nowhere\"",
    "host = \"a b\"",
    "methods = []",
    "methods = [\"G T\"]",
    "listen = \"nope\"",
    "listen = \"0.0.0.0:9901\"",
    "listen = \"[::1]:99999\"",
    "endpoints = []",
    "endpoints = [\"http://:0\"]",
    "endpoints = [\"https://x:1\"]",
    "endpoints = [\"http://u@x:1/p?q\"]",
    "upstreams = [\"http://[::1\"]",
    "upstreams = [\"http://10.0.0.0/99:1\"]",
    "upstreams = [\"http://*:*\"]",
    "upstreams = [\"\"]",
    "health_path = \"no-slash\"",
    "timeout_ms = 0",
    "timeout_ms = -1",
    "timeout_ms = 18446744073709551616",
    "memory_limit_mb = 99999",
    "interval_ms = 1",
    "max_uri_bytes = 1",
    "case_insensitive = \"yes\"",
    "listener = \"admin\"",
    "enabled = false",
    "secrets = { k = {} }",
    "secrets = { K = { env = \"A\" } }",
    "strip_prefix = true",
    "x = ",
    "= 1",
    "\"",
    "'''",
    "[",
    "]]",
    "a.b.c = 1",
    "routes = 5",
    "\u{feff}",
];

fn parse(text: &str) -> Result<LoadedConfig, ConfigError> {
    LoadedConfig::parse(Path::new(FILE), text)
}

/// Loads `text` and checks the promises: no panic, an error names the file and a line
/// of the text, a loaded config's route paths are normalised paths.
fn check(text: &str) {
    let lines = text.bytes().filter(|&b| b == b'\n').count() + 1;
    match parse(text) {
        Ok(loaded) => {
            for route in &loaded.config.routes {
                let written = route.path.as_ref().or(route.prefix.as_ref()).unwrap();
                let written = written.get_ref();
                assert_eq!(
                    normalize_path(written).as_ref(),
                    Ok(written),
                    "route {:?}: a path no request could have",
                    route.name.get_ref()
                );
                let target = http::uri::PathAndQuery::try_from(written.as_str());
                assert!(
                    target
                        .as_ref()
                        .is_ok_and(|t| t.path() == written && t.query().is_none()),
                    "route {:?}: {written:?} is no request target's path ({target:?})",
                    route.name.get_ref()
                );
            }
        }
        Err(error @ ConfigError::Read { .. }) => panic!("parse read a file: {error}"),
        Err(
            ref error @ (ConfigError::Parse {
                ref file,
                line,
                ref message,
            }
            | ConfigError::Invalid {
                ref file,
                line,
                ref message,
            }),
        ) => {
            assert_eq!(file, Path::new(FILE), "{error}");
            assert!(
                (1..=lines).contains(&line),
                "line {line} of {lines}: {error}"
            );
            assert!(!message.trim().is_empty(), "{error}");
            assert_eq!(error.to_string(), format!("{FILE}:{line}: {message}"));
        }
    }
}

/// One change to a config's lines; indexes are taken modulo the line count.
#[derive(Debug, Clone)]
enum Mutation {
    Delete(Index),
    Duplicate(Index),
    Swap(Index, Index),
    /// Cut the line short at a character.
    Cut(Index, Index),
    /// Put a character into the line.
    Garble(Index, Index, char),
    Insert(Index, String),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let garbage = prop_oneof![
        Just('"'),
        Just('\''),
        Just('['),
        Just(']'),
        Just('='),
        Just('{'),
        Just('}'),
        Just(','),
        Just('.'),
        Just('#'),
        Just('\\'),
        Just('\n'),
        any::<char>(),
    ];
    let line = prop_oneof![
        3 => proptest::sample::select(LINES).prop_map(str::to_string),
        1 => "[a-z_]{1,12} = .{0,12}",
        1 => ".{0,20}",
    ];
    prop_oneof![
        any::<Index>().prop_map(Mutation::Delete),
        any::<Index>().prop_map(Mutation::Duplicate),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::Swap(a, b)),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::Cut(a, b)),
        (any::<Index>(), any::<Index>(), garbage).prop_map(|(a, b, c)| Mutation::Garble(a, b, c)),
        (any::<Index>(), line).prop_map(|(a, l)| Mutation::Insert(a, l)),
    ]
}

fn mutate(text: &str, mutations: &[Mutation]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for mutation in mutations {
        if lines.is_empty() {
            lines.push(String::new());
        }
        let n = lines.len();
        match mutation {
            Mutation::Delete(at) => {
                lines.remove(at.index(n));
            }
            Mutation::Duplicate(at) => {
                let at = at.index(n);
                lines.insert(at, lines[at].clone());
            }
            Mutation::Swap(a, b) => lines.swap(a.index(n), b.index(n)),
            Mutation::Cut(at, to) => {
                let line = &mut lines[at.index(n)];
                let chars = line.chars().count();
                *line = line.chars().take(to.index(chars + 1)).collect();
            }
            Mutation::Garble(at, to, c) => {
                let line = &mut lines[at.index(n)];
                let mut chars: Vec<char> = line.chars().collect();
                chars.insert(to.index(chars.len() + 1), *c);
                *line = chars.into_iter().collect();
            }
            Mutation::Insert(at, new) => lines.insert(at.index(n + 1), new.clone()),
        }
    }
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

/// A TOML value for a generated config: often of the right kind, anything inside.
fn value() -> impl Strategy<Value = String> {
    let string = prop_oneof![
        3 => proptest::sample::select(vec![
            "/", "/a", "/a/", "/{id}", "/a/{b}/c", "/A", "//a", "/a;b", "/%41", "/a b", "/é",
            "127.0.0.1:0", "[::1]:8080", "0.0.0.0:80", "::1", "localhost:80",
            "http://127.0.0.1:1", "http://[::1]:80", "http://x", "http://x:99999",
            "http://10.0.0.0/8:*", "http://*:80", "http://a.b:*", "http://0.0.0.0/0:1",
            "http://[::]/0:1", "http://1.2.3.4/33:1",
            "GET", "get", "s", "auth", "a.example", "", " ",
        ])
        .prop_map(str::to_string),
        1 => any::<String>(),
        1 => "(http://)?[a-z0-9.:/\\[\\]*%-]{0,24}",
        1 => "/[!-~]{0,8}",
    ]
    .prop_map(|s| toml::Value::String(s).to_string());
    prop_oneof![
        4 => string.clone(),
        2 => prop_oneof![
            Just(0i64),
            Just(1),
            Just(100),
            Just(4097),
            Just(-1),
            Just(i64::MAX),
            any::<i64>(),
        ]
        .prop_map(|n| n.to_string()),
        1 => any::<bool>().prop_map(|b| b.to_string()),
        2 => proptest::collection::vec(string, 0..3)
            .prop_map(|items| format!("[{}]", items.join(", "))),
    ]
}

/// Sections and their keys, as the schema has them.
const SECTIONS: &[(&str, &[&str])] = &[
    (
        "[gateway]",
        &[
            "listen",
            "plugin_dir",
            "data_dir",
            "shutdown_grace_ms",
            "plugin_cache",
        ],
    ),
    ("[admin]", &["enabled", "listen", "allow_remote"]),
    ("[reload]", &["watch", "debounce_ms"]),
    (
        "[log]",
        &["level", "format", "file", "file_max_bytes", "file_backups"],
    ),
    ("[health]", &["path", "interval_ms", "timeout_ms"]),
    ("[metrics]", &["path"]),
    (
        "[limits]",
        &[
            "max_header_bytes",
            "max_uri_bytes",
            "header_read_timeout_ms",
            "idle_timeout_ms",
            "max_body_bytes",
        ],
    ),
    (
        "[plugins.auth]",
        &[
            "timeout_ms",
            "memory_limit_mb",
            "http",
            "kv_namespace",
            "kv_durable",
            "services",
            "upstreams",
            "instances",
        ],
    ),
    (
        "[services.s]",
        &["endpoints", "connect_timeout_ms", "health_path"],
    ),
    (
        "[[routes]]",
        &[
            "name",
            "host",
            "methods",
            "path",
            "prefix",
            "case_insensitive",
            "strip_prefix",
            "service",
            "timeout_ms",
            "max_body_bytes",
            "preserve_host",
            "listener",
            "on_error",
        ],
    ),
    ("[[routes.plugins]]", &["name", "on_error"]),
];

/// A route to the service `ok` with a generated path or prefix, host, methods and
/// case rule: valid often enough to reach the checks between routes.
fn route() -> impl Strategy<Value = String> {
    let text = prop_oneof![
        3 => "(/[a-zA-Z{}]{1,4}){1,3}/?",
        1 => "/[!-~]{0,8}",
        1 => any::<String>(),
    ];
    (
        any::<bool>(),
        text,
        proptest::option::of(proptest::sample::select(vec![
            "a.example",
            "A.example",
            "a b",
        ])),
        proptest::option::of(proptest::sample::select(vec![
            "[\"GET\"]",
            "[]",
            "[\"G T\"]",
        ])),
        any::<bool>(),
    )
        .prop_map(|(exact, text, host, methods, fold)| {
            let kind = if exact { "path" } else { "prefix" };
            let text = toml::Value::String(text);
            let mut route = format!(
                "[[routes]]\nname = \"r\"\nservice = \"ok\"\n{kind} = {text}\n\
                 case_insensitive = {fold}\n"
            );
            if let Some(host) = host {
                route.push_str(&format!("host = \"{host}\"\n"));
            }
            if let Some(methods) = methods {
                route.push_str(&format!("methods = {methods}\n"));
            }
            route
        })
}

/// A config of schema sections with some of their keys, each with a generated value,
/// and some routes.
fn shaped_config() -> impl Strategy<Value = String> {
    let key_values = proptest::collection::vec((any::<Index>(), value()), 0..6);
    let section = (proptest::sample::select(SECTIONS), key_values);
    let sections = proptest::collection::vec(section, 0..7);
    (sections, proptest::collection::vec(route(), 0..4)).prop_map(|(sections, routes)| {
        let mut text = String::from("[services.ok]\nendpoints = [\"http://127.0.0.1:1\"]\n");
        // Route names must differ.
        for (i, route) in routes.iter().enumerate() {
            text.push_str(&route.replace("name = \"r\"", &format!("name = \"r{i}\"")));
        }
        for ((header, keys), values) in sections {
            text.push_str(header);
            text.push('\n');
            let mut seen = Vec::new();
            for (key, value) in values {
                let key = keys[key.index(keys.len())];
                if !seen.contains(&key) {
                    seen.push(key);
                    text.push_str(&format!("{key} = {value}\n"));
                }
            }
        }
        text
    })
}

#[test]
fn prop_config_the_base_configs_are_valid() {
    for base in [QUICKSTART, EVERYTHING] {
        parse(base).unwrap();
    }
}

proptest! {
    #![proptest_config(crate::cases(1024))]

    #[test]
    fn prop_config_never_panics_on_arbitrary_text(
        text in any::<String>(),
        bytes in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        check(&text);
        check(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn prop_config_mutated_valid_configs_fail_with_a_file_and_line(
        everything in any::<bool>(),
        mutations in proptest::collection::vec(mutation(), 1..5),
    ) {
        let base = if everything { EVERYTHING } else { QUICKSTART };
        check(&mutate(base, &mutations));
    }

    #[test]
    fn prop_config_schema_shaped_configs_fail_with_a_file_and_line(text in shaped_config()) {
        check(&text);
    }
}
