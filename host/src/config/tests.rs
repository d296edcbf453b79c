//! Tests of config loading: defaults, resolution of paths, and error places.

use std::path::Path;

use super::*;

fn parse(text: &str) -> Result<LoadedConfig, ConfigError> {
    LoadedConfig::parse(Path::new("/etc/wasmgate/gw.toml"), text)
}

#[test]
fn an_empty_file_takes_the_defaults() {
    let loaded = parse("").unwrap();
    let config = &loaded.config;
    assert_eq!(config.gateway.listen.get_ref(), "127.0.0.1:8080");
    assert_eq!(
        config.gateway.plugin_dir,
        Path::new("/etc/wasmgate/plugins")
    );
    assert_eq!(config.gateway.data_dir, Path::new("/etc/wasmgate/data"));
    assert_eq!(config.limits.max_body_bytes, 1 << 20);
    assert!(config.routes.is_empty());
}

#[test]
fn errors_name_file_and_line() {
    let error = parse("[gateway]\nlisten = 5\n").unwrap_err().to_string();
    assert!(error.starts_with("/etc/wasmgate/gw.toml:2: "), "{error}");
    let error = parse("\n\n[[routes]]\nname = \"a\"\nprefix = \"/\"\nservice = \"none\"\n")
        .unwrap_err()
        .to_string();
    assert!(error.starts_with("/etc/wasmgate/gw.toml:6: "), "{error}");
    assert!(error.contains("unknown service \"none\""), "{error}");
}

/// Settings without spans of their own (plain numbers) are reported at their key's
/// line, or at their section's when the key is not on a line of its own, never at
/// line 1 of an unrelated file head.
#[test]
fn range_errors_name_the_line_of_their_key() {
    let cases = [
        (
            "health",
            "interval_ms = 99",
            "[health] interval_ms must be at least 100",
        ),
        (
            "health",
            "timeout_ms = 0",
            "[health] timeout_ms must be above 0",
        ),
        (
            "log",
            "file_max_bytes = 1023",
            "[log] file_max_bytes must be at least 1024",
        ),
        (
            "reload",
            "debounce_ms = 60001",
            "[reload] debounce_ms must be at most 60000",
        ),
        (
            "limits",
            "body_read_timeout_ms = 0",
            "[limits] body_read_timeout_ms must be above 0",
        ),
        (
            "limits",
            "send_timeout_ms = 0",
            "[limits] send_timeout_ms must be above 0",
        ),
        (
            "limits",
            "max_connections = 0",
            "[limits] max_connections must be at least 1",
        ),
        (
            "limits",
            "http2_max_concurrent_streams = 0",
            "[limits] http2_max_concurrent_streams must be at least 1",
        ),
        (
            "limits",
            "http2_max_resets = 0",
            "[limits] http2_max_resets must be at least 1",
        ),
        (
            "limits",
            "max_header_bytes = 1023",
            "[limits] max_header_bytes must be at least 1024",
        ),
        (
            "limits",
            "max_uri_bytes = 63",
            "[limits] max_uri_bytes must be at least 64",
        ),
    ];
    for (section, line, message) in cases {
        // After another section, and a commented-out copy of the line: line 6.
        let text = format!(
            "[gateway]\nlisten = \"127.0.0.1:0\"\n\n[{section}] # the one\n# {line}\n{line}\n"
        );
        let error = parse(&text).unwrap_err().to_string();
        assert_eq!(
            error,
            format!("/etc/wasmgate/gw.toml:6: {message}"),
            "{text}"
        );
    }
    // A longer key with the same start is another key.
    let error = parse("[limits]\nmax_connections_per_client = 0\nmax_connections = 0\n")
        .unwrap_err()
        .to_string();
    assert!(error.starts_with("/etc/wasmgate/gw.toml:3: "), "{error}");
    // Not a plain `key =` line (a quoted key): its section's line.
    let error = parse("\n[limits]\n\"max_connections\" = 0\n")
        .unwrap_err()
        .to_string();
    assert!(error.starts_with("/etc/wasmgate/gw.toml:2: "), "{error}");
    let error = parse("[health]\ninterval_ms = 100 # fine\n\n[metrics]\npath = \"m\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("/etc/wasmgate/gw.toml:5: [metrics] path"),
        "{error}"
    );
}

#[test]
fn route_rules_are_checked() {
    let cases = [
        (
            "[[routes]]\nname = \"a\"\nservice = \"s\"\n",
            "needs a `path` or a `prefix`",
        ),
        (
            "[[routes]]\nname = \"a\"\npath = \"/x\"\nprefix = \"/y\"\nservice = \"s\"\n",
            "not both",
        ),
        (
            "[[routes]]\nname = \"a\"\npath = \"/x\"\nstrip_prefix = true\nservice = \"s\"\n",
            "strip_prefix needs",
        ),
        (
            "[[routes]]\nname = \"a\"\nprefix = \"/\"\n",
            "needs a `service`",
        ),
        (
            "[[routes]]\nname = \"a\"\nprefix = \"/\"\nservice = \"s\"\nmethods = [\"G T\"]\n",
            "not an HTTP method",
        ),
        (
            "[[routes]]\nname = \"a\"\nprefix = \"/\"\nservice = \"s\"\nhost = \"a b\"\n",
            "not a host name",
        ),
        (
            "[[routes]]\nname = \"a\"\nprefix = \"/\"\nservice = \"s\"\n[[routes.plugins]]\nname = \"Bad!\"\n",
            "not a plugin name",
        ),
    ];
    let services = "[services.s]\nendpoints = [\"http://127.0.0.1:1\"]\n";
    for (route, want) in cases {
        let error = parse(&format!("{services}{route}"))
            .unwrap_err()
            .to_string();
        assert!(error.contains(want), "{route}: {error}");
    }
}

#[test]
fn service_and_plugin_sections_are_checked() {
    let error = parse("[services.s]\nendpoints = []\n")
        .unwrap_err()
        .to_string();
    assert!(error.contains("has no endpoints"), "{error}");
    let error = parse("[services.s]\nendpoints = [\"ftp://x:1\"]\n")
        .unwrap_err()
        .to_string();
    assert!(error.contains("only http:// and https://"), "{error}");
    assert!(parse("[services.s]\nendpoints = [\"https://x:1\"]\n").is_ok());
    let error = parse("[plugins.p]\nhttp = [\"nowhere\"]\n")
        .unwrap_err()
        .to_string();
    assert!(error.contains("unknown service \"nowhere\""), "{error}");
    let error = parse("[plugins.p]\nmemory_limit_mb = 0\n")
        .unwrap_err()
        .to_string();
    assert!(error.contains("memory_limit_mb"), "{error}");
}

#[test]
fn secrets_need_one_source_and_files_resolve_against_the_config() {
    for (text, want) in [
        ("[plugins.p]\nsecrets = { k = {} }\n", "exactly one of"),
        (
            "[plugins.p]\nsecrets = { k = { env = \"A\", file = \"b\" } }\n",
            "exactly one of",
        ),
        (
            "[plugins.p]\nsecrets = { k = { env = \"\" } }\n",
            "exactly one of",
        ),
        (
            "[plugins.p]\nsecrets = { K = { env = \"A\" } }\n",
            "secret name \"K\"",
        ),
        (
            "[plugins.p]\nsecrets = { k = { path = \"x\" } }\n",
            "unknown field",
        ),
    ] {
        let error = parse(text).unwrap_err().to_string();
        assert!(error.starts_with("/etc/wasmgate/gw.toml:2: "), "{error}");
        assert!(error.contains(want), "{text}: {error}");
    }
    let loaded = parse("[plugins.p]\nsecrets = { k = { file = \"keys/k.pem\" } }\n").unwrap();
    let source = loaded.config.plugins["p"].get_ref().secrets["k"]
        .get_ref()
        .clone();
    assert_eq!(source.file.unwrap(), Path::new("/etc/wasmgate/keys/k.pem"));
}

#[test]
fn admin_routes_need_the_admin_api() {
    let route = "[[routes]]\nname = \"keys\"\nlistener = \"admin\"\nprefix = \"/k\"\nservice = \"s\"\n[services.s]\nendpoints = [\"http://127.0.0.1:1\"]\n";
    parse(route).unwrap();
    let error = parse(&format!("[admin]\nenabled = false\n{route}"))
        .unwrap_err()
        .to_string();
    assert!(error.contains("the admin API is off"), "{error}");
    let error = parse(&route.replace("\"admin\"", "\"public\""))
        .unwrap_err()
        .to_string();
    assert!(error.contains("unknown variant"), "{error}");
}

#[test]
fn case_insensitive_routes_must_not_collide_with_a_case_variant() {
    let services = "[services.s]\nendpoints = [\"http://127.0.0.1:1\"]\n";
    let route = |name: &str, prefix: &str, fold: bool| {
        format!(
            "[[routes]]\nname = \"{name}\"\nprefix = \"{prefix}\"\nservice = \"s\"\ncase_insensitive = {fold}\n"
        )
    };
    // Two case-sensitive routes may differ only in case; so may routes that differ
    // otherwise, or that are on different hosts.
    parse(&format!(
        "{services}{}{}",
        route("a", "/admin", false),
        route("b", "/Admin", false)
    ))
    .unwrap();
    parse(&format!(
        "{services}{}{}",
        route("a", "/admin", true),
        route("b", "/admins", false)
    ))
    .unwrap();
    for (first, second) in [(true, false), (false, true), (true, true)] {
        let text = format!(
            "{services}{}{}",
            route("a", "/admin", first),
            route("b", "/ADMIN/", second)
        );
        let error = parse(&text).unwrap_err().to_string();
        assert!(error.starts_with("/etc/wasmgate/gw.toml:10: "), "{error}");
        assert!(error.contains("only in letter case"), "{error}");
    }
    let text = format!("{services}{}", route("a", "/", false)).replace("false", "\"yes\"");
    assert!(parse(&text).is_err(), "case_insensitive takes a boolean");
}

#[test]
fn route_paths_must_be_normalised() {
    let services = "[services.s]\nendpoints = [\"http://127.0.0.1:1\"]\n";
    for path in ["//admin", "/a//b", "/admin;x", "/a/..;/b"] {
        let error = parse(&format!(
            "{services}[[routes]]\nname = \"a\"\nprefix = \"{path}\"\nservice = \"s\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(error.contains("route \"a\": prefix"), "{path}: {error}");
    }
}

#[test]
fn compression_tables_are_checked_with_their_lines() {
    let route = "[services.s]\nendpoints = [\"http://127.0.0.1:1\"]\n\n[[routes]]\nname = \"a\"\nprefix = \"/\"\nservice = \"s\"\n\n[routes.compression]\n";
    // Lines 1-9 are the route; what follows starts on line 10.
    let error = |extra: &str| parse(&format!("{route}{extra}")).unwrap_err().to_string();
    let cases = [
        (
            "encodings = [\"gzip\",\n  \"deflate\"]\n",
            ":11: route \"a\": unknown encoding \"deflate\" (known: br, zstd, gzip)",
        ),
        (
            "encodings = [\"gzip\", \"gzip\"]\n",
            ":10: route \"a\": encoding \"gzip\" is listed twice",
        ),
        ("encodings = []\n", "encodings is empty"),
        (
            "content_types = [\"text/*\", \"json\"]\n",
            ":10: route \"a\": content_types: \"json\" is not a media type",
        ),
        ("content_types = [\"*/json\"]\n", "is not a media type"),
        ("content_types = [\"text/x*\"]\n", "is not a media type"),
        (
            "min_bytes = 0\nlevels = { gzip = 10 }\n",
            ":11: route \"a\": levels: gzip level 10 is outside 1-9",
        ),
        ("levels = { zstd = 20 }\n", "zstd level 20 is outside 1-19"),
        ("levels = { lz4 = 1 }\n", "unknown encoding \"lz4\""),
        ("level = 3\n", "unknown field `level`"),
    ];
    for (extra, want) in cases {
        let error = error(extra);
        assert!(error.contains(want), "{extra:?}: {error}");
    }

    let loaded = parse(route).unwrap();
    let compression = loaded.config.routes[0]
        .compression
        .as_ref()
        .unwrap()
        .get_ref();
    assert!(compression.enabled, "the table alone turns it on");
    let names: Vec<&str> = compression
        .encodings
        .iter()
        .map(|e| e.get_ref().as_str())
        .collect();
    assert_eq!(names, ["br", "zstd", "gzip"]);
    assert_eq!(compression.min_bytes, 1024);
    assert_eq!(compression.content_types.len(), 5);
    let loaded = parse(&format!("{route}enabled = false\ncontent_types = [\"TEXT/*\", \"*/*\", \"Application/Json\"]\nlevels = {{ br = 11, zstd = 19, gzip = 1 }}\n")).unwrap();
    assert!(
        !loaded.config.routes[0]
            .compression
            .as_ref()
            .unwrap()
            .get_ref()
            .enabled
    );
}

#[test]
fn a_redis_state_backend_is_checked_with_its_line() {
    let loaded = parse(
        "[state]\nbackend = \"redis\"\n[state.redis]\nurl = \"redis://127.0.0.1:6379\"\n\
         password = { file = \"redis.pass\" }\n",
    )
    .unwrap();
    let redis = loaded.config.state.redis.as_ref().unwrap().get_ref();
    assert_eq!(redis.key_prefix, "wasmgate:");
    assert_eq!(redis.timeout_ms, 50);
    assert_eq!(
        redis.password.as_ref().unwrap().file.as_deref(),
        Some(Path::new("/etc/wasmgate/redis.pass"))
    );
    for (text, place, want) in [
        ("[state]\nbackend = \"redis\"\n", "", "needs [state.redis]"),
        (
            "[state]\nbackend = \"redis\"\n[state.redis]\nurl = \"http://x:1\"\n",
            "gw.toml:3: ",
            "must start with redis://",
        ),
        (
            "[state.redis]\nurl = \"redis://x:1\"\npool_size = 0\n",
            "gw.toml:1: ",
            "pool_size must be 1 to 64",
        ),
        (
            "[state.redis]\nurl = \"redis://x:1\"\ntimeout_ms = 100\n",
            "gw.toml:1: ",
            "below the plugins' timeout_ms ((default): 100)",
        ),
        (
            "[state.redis]\nurl = \"redis://x:1\"\n[plugins.fast]\ntimeout_ms = 20\n",
            "gw.toml:1: ",
            "(fast: 20)",
        ),
        (
            "[state.redis]\nurl = \"redis://x:1\"\npassword = { env = \"\" }\n",
            "gw.toml:1: ",
            "password needs exactly one of",
        ),
        (
            "[state]\nbackend = \"mysql\"\n",
            "gw.toml:2: ",
            "unknown variant",
        ),
    ] {
        let error = parse(text).unwrap_err().to_string();
        assert!(error.contains(place), "{text}: {error}");
        assert!(error.contains(want), "{text}: {error}");
    }
}

#[test]
fn a_routes_chain_is_its_listeners_global_plugins_around_its_own() {
    let loaded = parse(
        r#"
[admin]
listen = "127.0.0.1:0"
[services.s]
endpoints = ["http://127.0.0.1:1"]
[[global.plugins]]
name = "after"
position = "after"
[[global.plugins]]
name = "first"
[[global.plugins]]
name = "ops"
listener = "admin"
[[global.plugins]]
name = "second"
[[routes]]
name = "a"
prefix = "/"
service = "s"
[[routes.plugins]]
name = "own"
[[routes]]
name = "b"
path = "/b"
service = "s"
skip_global = ["second", "after"]
[[routes]]
name = "c"
path = "/c"
service = "s"
skip_global = ["*"]
[[routes]]
name = "d"
path = "/d"
service = "s"
listener = "admin"
"#,
    )
    .unwrap();
    let config = &loaded.config;
    let chain = |route: usize| -> Vec<(String, bool)> {
        config
            .chain(&config.routes[route])
            .iter()
            .map(|e| (e.name.get_ref().clone(), e.global))
            .collect()
    };
    let names = |list: &[(&str, bool)]| -> Vec<(String, bool)> {
        list.iter().map(|(n, g)| (n.to_string(), *g)).collect()
    };
    assert_eq!(
        chain(0),
        names(&[
            ("first", true),
            ("second", true),
            ("own", false),
            ("after", true)
        ])
    );
    assert_eq!(chain(1), names(&[("first", true)]));
    assert!(chain(2).is_empty());
    assert_eq!(chain(3), names(&[("ops", true)]));
}
