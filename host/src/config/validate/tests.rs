//! Each rule of the validator at its bounds: the last value it accepts, the first it
//! refuses, and for each refusal the whole message with its line, as an operator
//! reads it (`wasmgate check` prints `FILE:` before it).

use std::path::Path;

use crate::config::LoadedConfig;

/// A service `s` (lines 1-2).
const S: &str = "[services.s]\nendpoints = [\"http://127.0.0.1:1\"]\n";
/// A route `r` to it (4 lines).
const R: &str = "[[routes]]\nname = \"r\"\nprefix = \"/\"\nservice = \"s\"\n";

/// `ok`, or the error as `LINE: message`.
fn verdict(text: &str) -> String {
    match LoadedConfig::parse(Path::new("gw.toml"), text) {
        Ok(_) => "ok".into(),
        Err(error) => {
            let error = error.to_string();
            error
                .strip_prefix("gw.toml:")
                .unwrap_or_else(|| panic!("no place: {error}"))
                .to_string()
        }
    }
}

/// Checks each `(config, verdict)`; a verdict ending in `…` is a prefix.
fn check(cases: &[(String, &str)]) {
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|(text, want)| {
            let got = verdict(text);
            let right = match want.strip_suffix('…') {
                Some(prefix) => got.starts_with(prefix),
                None => got == *want,
            };
            (!right).then(|| format!("{text}\n  want: {want}\n  got:  {got}\n"))
        })
        .collect();
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

fn cases<const N: usize>(cases: [(&str, &'static str); N]) -> Vec<(String, &'static str)> {
    cases
        .into_iter()
        .map(|(text, want)| (text.to_string(), want))
        .collect()
}

#[test]
fn listeners_and_the_admin_api() {
    check(&cases([
        ("[gateway]\nlisten = \"[::1]:8080\"\n", "ok"),
        (
            "[gateway]\nlisten = \"nope\"\n",
            "2: listen = \"nope\" is not an address like \"127.0.0.1:8080\"",
        ),
        (
            "[gateway.tls]\ncertificates = []\n",
            "1: [gateway.tls] needs at least one entry in certificates = [{ cert = \"…\", key = \"…\" }]",
        ),
        (
            "[admin]\nlisten = \"admin\"\n",
            "2: [admin] listen = \"admin\" is not an address like \"127.0.0.1:9901\"",
        ),
        // An admin API that is off is not listened on: its address is not read.
        ("[admin]\nenabled = false\nlisten = \"admin\"\n", "ok"),
        (
            "[admin]\nlisten = \"0.0.0.0:9901\"\n",
            "2: [admin] listen = \"0.0.0.0:9901\" is not a loopback address; the admin API has \
             no authentication of its own, so set allow_remote = true only behind a proxy that \
             authenticates",
        ),
        (
            "[admin]\nlisten = \"0.0.0.0:9901\"\nallow_remote = true\n",
            "ok",
        ),
        ("[admin]\nlisten = \"[::1]:9901\"\n", "ok"),
        ("[health]\npath = \"\"\n[metrics]\npath = \"/m/x\"\n", "ok"),
        (
            "[health]\npath = \"h\"\n",
            "2: [health] path = \"h\" must be a normalised path starting with '/', or \"\"",
        ),
        (
            "\n[metrics]\npath = \"/a/../m\"\n",
            "3: [metrics] path = \"/a/../m\" must be a normalised path starting with '/', or \"\"",
        ),
    ]));
}

#[test]
fn numbers_at_the_edges_of_their_ranges_are_accepted() {
    check(&cases([(
        "[health]\ninterval_ms = 100\ntimeout_ms = 1\n[log]\nfile_max_bytes = 1024\n\
         [reload]\ndebounce_ms = 60000\n[limits]\nbody_read_timeout_ms = 1\n\
         send_timeout_ms = 1\nmax_connections = 1\nhttp2_max_concurrent_streams = 1\n\
         http2_max_resets = 1\nmax_header_bytes = 1024\nmax_uri_bytes = 64\n",
        "ok",
    )]));
}

/// Where a number without a span of its own is reported when its key has no line
/// of its own in its section.
#[test]
fn numbers_without_a_line_of_their_own_are_reported_at_their_section_or_the_top() {
    check(&cases([
        // The same key in the next section is not this one's.
        (
            "[health]\n\"timeout_ms\" = 0\n[state.redis]\nurl = \"redis://x:1\"\ntimeout_ms = 5\n",
            "1: [health] timeout_ms must be above 0",
        ),
        (
            "\nlimits = { max_connections = 0 }\n",
            "1: [limits] max_connections must be at least 1",
        ),
    ]));
}

#[test]
fn the_state_backend() {
    check(&cases([
        ("[state]\nbackend = \"sled\"\n", "ok"),
        (
            "[state.redis]\nurl = \"rediss://x:1\"\npool_size = 1\ntimeout_ms = 1\n",
            "ok",
        ),
        (
            "[state.redis]\nurl = \"redis://x:1\"\npool_size = 64\ntimeout_ms = 99\n\
             password = { env = \"P\" }\n",
            "ok",
        ),
        (
            "[state.redis]\nurl = \"redis://x:1\"\npool_size = 65\n",
            "1: [state.redis] pool_size must be 1 to 64",
        ),
        (
            "[state.redis]\nurl = \"redis://x:1\"\ntimeout_ms = 0\n",
            "1: [state.redis] timeout_ms must be 1 to 60000",
        ),
        (
            "[state.redis]\nurl = \"redis://x:1\"\ntimeout_ms = 40\n[plugins.p]\ntimeout_ms = 41\n",
            "ok",
        ),
        (
            "[state.redis]\nurl = \"redis://x:1\"\ntimeout_ms = 40\n[plugins.p]\ntimeout_ms = 40\n",
            "1: [state.redis] timeout_ms = 40 must be below the plugins' timeout_ms (p: 40), so \
             a plugin has time to answer a store failure itself",
        ),
    ]));
}

#[test]
fn services_their_endpoints_and_their_resilience() {
    let t = "[services.t]\nendpoints = [\"http://127.0.0.1:2\"]\n";
    let weighted = |weight: u32| {
        format!(
            "[services.t]\nendpoints = [{{ url = \"http://127.0.0.1:2\", weight = {weight} }}]\n"
        )
    };
    let weight_error =
        "2: service \"t\": endpoint \"http://127.0.0.1:2\": weight must be 1 to 1000";
    let outlier_error = "1: service \"t\": [outlier] max_ejected_percent must be 0 to 100 and \
                         base_ejection_ms above 0";
    let breaker_error = "3: service \"t\": [breaker] failure_ratio must be above 0 and at most 1; \
                         min_requests, open_ms and half_open_requests above 0; window_ms at least 10";
    let cases = [
        (format!("{t}health_path = \"/h?x=1\"\n"), "ok"),
        (
            format!("{t}health_path = \"h\"\n"),
            "1: service \"t\": health_path \"h\" must be a path starting with '/'",
        ),
        (
            format!("{t}health_path = \"/a b\"\n"),
            "1: service \"t\": health_path \"/a b\" must be a path starting with '/'",
        ),
        (
            format!("{t}client_cert = \"c.pem\"\n"),
            "3: service \"t\": client_cert needs client_key (its private key)",
        ),
        (
            format!("{t}client_key = \"k.pem\"\n"),
            "3: service \"t\": client_key needs client_cert (its certificate)",
        ),
        (
            format!("{t}client_cert = \"c.pem\"\nclient_key = \"k.pem\"\n"),
            "ok",
        ),
        (weighted(1), "ok"),
        (weighted(1000), "ok"),
        (weighted(0), weight_error),
        (weighted(1001), weight_error),
        (
            format!("{t}balance = \"consistent_hash\"\nhash_on = \"header:x-user\"\n"),
            "ok",
        ),
        (
            format!("{t}balance = \"consistent_hash\"\nhash_on = \"nope\"\n"),
            "4: service \"t\": hash_on = \"nope\": expected \"client\", \"header:NAME\" or \"cookie:NAME\"",
        ),
        (
            format!("{t}hash_on = \"client\"\n"),
            "3: service \"t\": hash_on needs balance = \"consistent_hash\"",
        ),
        (
            format!("{t}[services.t.outlier]\nmax_ejected_percent = 100\n"),
            "ok",
        ),
        (
            format!("{t}[services.t.outlier]\nconsecutive_failures = 0\nbase_ejection_ms = 0\n"),
            "ok",
        ),
        (
            format!("{t}[services.t.outlier]\nmax_ejected_percent = 101\n"),
            outlier_error,
        ),
        (
            format!("{t}[services.t.outlier]\nbase_ejection_ms = 0\n"),
            outlier_error,
        ),
        (format!("{t}[services.t.breaker]\n"), "ok"),
        (
            format!(
                "{t}[services.t.breaker]\nfailure_ratio = 1.0\nwindow_ms = 10\nmin_requests = 1\nopen_ms = 1\nhalf_open_requests = 1\n"
            ),
            "ok",
        ),
        (
            format!("{t}[services.t.breaker]\nfailure_ratio = 0.0\n"),
            breaker_error,
        ),
        (
            format!("{t}[services.t.breaker]\nfailure_ratio = 1.01\n"),
            breaker_error,
        ),
        (
            format!("{t}[services.t.breaker]\nmin_requests = 0\n"),
            breaker_error,
        ),
        (
            format!("{t}[services.t.breaker]\nwindow_ms = 9\n"),
            breaker_error,
        ),
        (
            format!("{t}[services.t.breaker]\nopen_ms = 0\n"),
            breaker_error,
        ),
        (
            format!("{t}[services.t.breaker]\nhalf_open_requests = 0\n"),
            breaker_error,
        ),
    ];
    check(&cases);
}

#[test]
fn plugin_settings_and_grants() {
    let longest = "p".repeat(64);
    let too_long = "p".repeat(65);
    check(&[
        (format!("[plugins.{longest}]\n"), "ok"),
        (
            format!("[plugins.{too_long}]\n"),
            &format!(
                "1: {too_long:?} is not a plugin name (lower-case letters, digits, '-' and '_')"
            ),
        ),
        (
            "[plugins.P]\n".into(),
            "1: \"P\" is not a plugin name (lower-case letters, digits, '-' and '_')",
        ),
        ("[plugins.a-b_9]\n".into(), "ok"),
        (
            "[plugins.p]\ntimeout_ms = 1\nmemory_limit_mb = 4096\n".into(),
            "ok",
        ),
        (
            "[plugins.p]\ntimeout_ms = 0\n".into(),
            "1: plugin \"p\": timeout_ms must be > 0 and memory_limit_mb between 1 and 4096",
        ),
        (
            "[plugins.p]\nmemory_limit_mb = 4097\n".into(),
            "1: plugin \"p\": timeout_ms must be > 0 and memory_limit_mb between 1 and 4096",
        ),
        (
            format!("{S}[plugins.p]\nservices = [\"s\"]\nhttp = [\"s\"]\n"),
            "ok",
        ),
        (
            format!("{S}[plugins.p]\nservices = [\"u\"]\n"),
            "4: plugin \"p\" is granted unknown service \"u\" (known: s)",
        ),
        (
            "[plugins.p]\nhttp = [\"u\"]\n".into(),
            "2: plugin \"p\" is granted unknown service \"u\"",
        ),
        (
            "[plugins.p]\nupstreams = [\"http://x:*\", \"http://10.0.0.0/8\"]\n".into(),
            "ok",
        ),
        (
            "[plugins.p]\nupstreams = [\"ftp://x\"]\n".into(),
            "2: plugin \"p\": upstream \"ftp://x\": an upstream pattern starts with http://",
        ),
        (
            "[plugins.p]\nsecrets = { k-1_a = { env = \"K\" } }\n".into(),
            "ok",
        ),
    ]);
}

#[test]
fn routes_names_methods_and_targets() {
    let u = "[services.u]\nendpoints = [\"http://127.0.0.1:3\"]\n";
    // S and u on lines 1-4, the route on 5-8, its `services` on 8.
    let split = |entries: &str| {
        format!("{S}{u}[[routes]]\nname = \"r\"\nprefix = \"/\"\nservices = [{entries}]\n")
    };
    check(&[
        (format!("{S}{R}"), "ok"),
        (
            format!("{S}[[routes]]\nname = \"\"\nprefix = \"/\"\nservice = \"s\"\n"),
            "4: route name must not be empty",
        ),
        (format!("{S}{R}{R}"), "8: duplicate route name \"r\""),
        (
            format!("{S}{R}methods = []\n"),
            "7: route \"r\": methods is empty",
        ),
        (format!("{S}{R}methods = [\"GET\", \"PURGE\"]\n"), "ok"),
        (
            format!("{S}{R}methods = [\"GET\", \"\"]\n"),
            "7: route \"r\": \"\" is not an HTTP method",
        ),
        (
            format!("{S}{R}timeout_ms = 0\n"),
            "4: route \"r\": timeout_ms must be > 0",
        ),
        // Plugins alone may answer.
        (
            "[[routes]]\nname = \"r\"\nprefix = \"/\"\n[[routes.plugins]]\nname = \"p\"\n".into(),
            "ok",
        ),
        (
            split("{ name = \"s\", weight = 0 }, { name = \"u\", weight = 1000 }"),
            "ok",
        ),
        (
            split("{ name = \"s\", weight = 1 }, { name = \"u\", weight = 1001 }"),
            "8: route \"r\": service \"u\": weight must be 0 to 1000",
        ),
        (
            split("{ name = \"s\", weight = 1 }, { name = \"s\", weight = 1 }"),
            "8: route \"r\": service \"s\" is listed twice in `services`",
        ),
        (
            split("{ name = \"x\", weight = 1 }"),
            "8: route \"r\": unknown service \"x\" (known: s, u)",
        ),
        (
            split("{ name = \"s\", weight = 0 }, { name = \"u\", weight = 0 }"),
            "8: route \"r\": `services` needs at least one weight above 0",
        ),
        (
            format!("{S}{R}services = [{{ name = \"s\", weight = 1 }}]\n"),
            "7: route \"r\": give either `service` or `services`, not both",
        ),
        (
            format!("{S}{R}[[routes.headers]]\nname = \"x\"\nregex = \"(\"\n"),
            "7: route \"r\": headers: regex \"(\": …",
        ),
        (
            format!("{S}{R}[[routes.query]]\nname = \"q\"\nvalue = \"1\"\nregex = \"1\"\n"),
            "7: route \"r\": query: give `value` or `regex`, not both",
        ),
        (
            format!("{S}{R}[[routes.query]]\nname = \"q\"\nregex = \"[0-9]+\"\n"),
            "ok",
        ),
        // Header conditions name a header; query conditions any parameter.
        (
            format!("{S}{R}[[routes.headers]]\nname = \"x y\"\nvalue = \"1\"\n"),
            "7: route \"r\": headers: \"x y\" is not a header name",
        ),
        (
            format!("{S}{R}[[routes.query]]\nname = \"x y\"\nvalue = \"1\"\n"),
            "ok",
        ),
    ]);
}

#[test]
fn retries_websockets_and_compression_levels() {
    let retry = |settings: &str| format!("{S}{R}timeout_ms = 1000\n[routes.retry]\n{settings}");
    let websocket = |settings: &str| format!("{S}{R}[routes.websocket]\n{settings}");
    check(&[
        (retry("attempts = 1\nbudget_percent = 100\n"), "ok"),
        (
            retry(
                "attempts = 10\non = [\"connect\", \"reset\", \"timeout\", \"5xx\"]\nmethods = [\"POST\"]\n",
            ),
            "ok",
        ),
        (
            retry("backoff_ms = 250\nmax_backoff_ms = 250\nper_try_timeout_ms = 1000\n"),
            "ok",
        ),
        (
            retry("attempts = 0\n"),
            "8: route \"r\": [routes.retry] attempts must be 1 to 10",
        ),
        (
            retry("attempts = 11\n"),
            "8: route \"r\": [routes.retry] attempts must be 1 to 10",
        ),
        (
            retry("on = [\"reset\", \"sometimes\"]\n"),
            "8: route \"r\": [routes.retry] on: \"sometimes\" is not one of \"connect\", \"reset\", \
             \"timeout\", \"5xx\"",
        ),
        (
            retry("methods = [\"GET\", \"G T\"]\n"),
            "8: route \"r\": [routes.retry] methods: \"G T\" is not an HTTP method",
        ),
        (
            retry("budget_percent = 101\n"),
            "8: route \"r\": [routes.retry] budget_percent must be 0 to 100",
        ),
        (
            retry("backoff_ms = 251\n"),
            "8: route \"r\": [routes.retry] max_backoff_ms must be at least backoff_ms",
        ),
        (
            retry("per_try_timeout_ms = 1001\n"),
            "8: route \"r\": [routes.retry] per_try_timeout_ms must not exceed the route's \
             timeout_ms (1000)",
        ),
        (
            websocket("idle_timeout_ms = 1\nmax_message_bytes = 67108864\n"),
            "ok",
        ),
        (
            websocket("idle_timeout_ms = 0\n"),
            "7: route \"r\": [routes.websocket] idle_timeout_ms must be above 0",
        ),
        (
            websocket("max_message_bytes = 0\n"),
            "7: route \"r\": [routes.websocket] max_message_bytes must be 1 to 67108864",
        ),
        (
            websocket("max_message_bytes = 67108865\n"),
            "7: route \"r\": [routes.websocket] max_message_bytes must be 1 to 67108864",
        ),
        (
            format!("{S}{R}listener = \"admin\"\n[routes.websocket]\n"),
            "8: route \"r\": [routes.websocket] is for gateway routes (listener = \"gateway\")",
        ),
        (
            format!("{S}{R}[routes.compression]\nlevels = {{ br = 0, zstd = 19, gzip = 9 }}\n"),
            "ok",
        ),
        (
            format!("{S}{R}[routes.compression]\nlevels = {{ gzip = 0 }}\n"),
            "8: route \"r\": levels: gzip level 0 is outside 1-9",
        ),
    ]);
}

#[test]
fn global_plugins_and_the_routes_that_skip_them() {
    // Globals on lines 1-2 (and 3-5), then S, then R.
    let g = "[[global.plugins]]\nname = \"g\"\n";
    let admin = "[[global.plugins]]\nname = \"a\"\nlistener = \"admin\"\n";
    check(&[
        (format!("{g}{S}{R}skip_global = [\"g\", \"*\"]\n"), "ok"),
        (format!("{S}{R}skip_global = [\"*\"]\n"), "ok"),
        (
            format!("{g}{S}{R}skip_global = [\"h\"]\n"),
            "9: route \"r\": skip_global names \"h\", which is not a global plugin of this \
             route's listener (known: g)",
        ),
        // A global plugin of the admin listener is not one of a gateway route's.
        (
            format!("{g}{admin}{S}{R}skip_global = [\"a\"]\n"),
            "12: route \"r\": skip_global names \"a\", which is not a global plugin of this \
             route's listener (known: g)",
        ),
        (
            format!("{S}{R}skip_global = [\"h\"]\n"),
            "7: route \"r\": skip_global names \"h\", which is not a global plugin of this \
             route's listener",
        ),
        (
            format!("{admin}{S}{R}listener = \"admin\"\nskip_global = [\"a\"]\n"),
            "ok",
        ),
        (
            "[[global.plugins]]\nname = \"G\"\n".into(),
            "2: [[global.plugins]]: \"G\" is not a plugin name (lower-case letters, digits, '-' \
             and '_')",
        ),
        (
            format!("[admin]\nenabled = false\n{admin}"),
            "4: [[global.plugins]] \"a\": listener = \"admin\", but the admin API is off ([admin] \
             enabled = false)",
        ),
    ]);
}

#[test]
fn case_variants_of_a_route_path() {
    // The service, then each (name, host, prefix, case_insensitive) as a route of six
    // lines, the first on line 3.
    let routes = |list: &[(&str, &str, &str, bool)]| {
        let routes: String = list
            .iter()
            .map(|(name, host, prefix, fold)| {
                format!(
                    "[[routes]]\nname = \"{name}\"\nhost = \"{host}\"\nprefix = \"{prefix}\"\n\
                     service = \"s\"\ncase_insensitive = {fold}\n"
                )
            })
            .collect();
        format!("{S}{routes}")
    };
    let collision = "route \"c\": \"/X\" differs from \"/x\" only in letter case, and one of them \
                     is case_insensitive: no request could tell them apart";
    check(&[
        // Another host, or the same path written again: no collision.
        (
            routes(&[("a", "a.test", "/x", true), ("b", "b.test", "/X", false)]),
            "ok",
        ),
        (
            routes(&[("a", "a.test", "/x", true), ("b", "a.test", "/x/", false)]),
            "ok",
        ),
        // Routes of the admin listener are not the gateway's.
        (
            routes(&[("a", "a.test", "/x", true), ("b", "a.test", "/X", false)])
                + "listener = \"admin\"\n",
            "ok",
        ),
        // Host names are compared without case.
        (
            routes(&[("a", "a.test", "/x", true), ("c", "A.test", "/X", false)]),
            &format!("12: {collision}"),
        ),
        // The second of two routes on one path folds; the third differs only in case.
        (
            routes(&[
                ("a", "a.test", "/x", false),
                ("b", "a.test", "/x", true),
                ("c", "a.test", "/X", false),
            ]),
            &format!("18: {collision}"),
        ),
    ]);
}
