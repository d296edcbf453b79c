//! Checks that go beyond the schema: references between sections, patterns, addresses.
//! Each failure carries the byte offset of the offending value so that the caller can
//! report its line.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

use serde_spanned::Spanned;

use super::schema::{Balance, Config, PluginSettings, RouteConfig, SecretSource, ServiceConfig};
use crate::router::{PathPattern, is_valid_host};
use crate::upstream::HashOn;
use crate::upstream::retry::{MAX_ATTEMPTS, TryFailure};

/// A validation failure: the byte offset of the value and what is wrong with it.
pub type Invalid = (usize, String);

fn at<T>(value: &Spanned<T>, message: String) -> Invalid {
    (value.span().start, message)
}

/// The offset of the line `key = …` directly under `[section]` in `text`, else of the
/// `[section]` header, else 0: the place to report for settings that carry no span
/// of their own (the plain numbers of `[limits]`, `[health]` …).
fn key_offset(text: &str, section: &str, key: &str) -> usize {
    let header = format!("[{section}]");
    let mut section_at = None;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let code = line.split('#').next().unwrap_or_default().trim();
        if code.starts_with('[') {
            if section_at.is_some() {
                break;
            }
            if code == header {
                section_at = Some(offset);
            }
        } else if section_at.is_some()
            && code
                .strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        {
            return offset;
        }
        offset += line.len();
    }
    section_at.unwrap_or(0)
}

/// Validates `config`, read from `text` (for the lines of settings without spans).
pub fn validate(config: &Config, text: &str) -> Result<(), Invalid> {
    let place = |section: &str, key: &str| key_offset(text, section, key);
    let listen = &config.gateway.listen;
    listen.get_ref().parse::<SocketAddr>().map_err(|_| {
        at(
            listen,
            format!(
                "listen = {:?} is not an address like \"127.0.0.1:8080\"",
                listen.get_ref()
            ),
        )
    })?;
    if let Some(tls) = &config.gateway.tls
        && tls.get_ref().certificates.is_empty()
    {
        return Err(at(
            tls,
            "[gateway.tls] needs at least one entry in certificates = [{ cert = \"…\", \
             key = \"…\" }]"
                .into(),
        ));
    }
    let admin = &config.admin;
    if admin.enabled {
        let address = admin.listen.get_ref().parse::<SocketAddr>().map_err(|_| {
            at(
                &admin.listen,
                format!(
                    "[admin] listen = {:?} is not an address like \"127.0.0.1:9901\"",
                    admin.listen.get_ref()
                ),
            )
        })?;
        if !address.ip().is_loopback() && !admin.allow_remote {
            return Err(at(
                &admin.listen,
                format!(
                    "[admin] listen = {:?} is not a loopback address; the admin API has no \
                     authentication of its own, so set allow_remote = true only behind a proxy \
                     that authenticates",
                    admin.listen.get_ref()
                ),
            ));
        }
    }
    for (section, path) in [
        ("health", &config.health.path),
        ("metrics", &config.metrics.path),
    ] {
        if !path.is_empty()
            && (!path.starts_with('/')
                || crate::normalize::normalize_path(path).ok().as_deref() != Some(path.as_str()))
        {
            return Err((
                place(section, "path"),
                format!(
                    "[{section}] path = {path:?} must be a normalised path starting with '/', or \"\""
                ),
            ));
        }
    }
    let limits = &config.limits;
    // (section, key, whether its value is out of range, the range)
    let ranges = [
        (
            "health",
            "interval_ms",
            config.health.interval_ms < 100,
            "at least 100",
        ),
        (
            "health",
            "timeout_ms",
            config.health.timeout_ms == 0,
            "above 0",
        ),
        (
            "log",
            "file_max_bytes",
            config.log.file_max_bytes < 1024,
            "at least 1024",
        ),
        (
            "reload",
            "debounce_ms",
            config.reload.debounce_ms > 60_000,
            "at most 60000",
        ),
        (
            "limits",
            "body_read_timeout_ms",
            limits.body_read_timeout_ms == 0,
            "above 0",
        ),
        (
            "limits",
            "send_timeout_ms",
            limits.send_timeout_ms == 0,
            "above 0",
        ),
        (
            "limits",
            "max_connections",
            limits.max_connections == 0,
            "at least 1",
        ),
        (
            "limits",
            "http2_max_concurrent_streams",
            limits.http2_max_concurrent_streams == 0,
            "at least 1",
        ),
        (
            "limits",
            "http2_max_resets",
            limits.http2_max_resets == 0,
            "at least 1",
        ),
        (
            "limits",
            "max_header_bytes",
            limits.max_header_bytes < 1024,
            "at least 1024",
        ),
        (
            "limits",
            "max_uri_bytes",
            limits.max_uri_bytes < 64,
            "at least 64",
        ),
    ];
    if let Some((section, key, _, range)) = ranges.into_iter().find(|(_, _, bad, _)| *bad) {
        return Err((
            place(section, key),
            format!("[{section}] {key} must be {range}"),
        ));
    }

    check_state(config)?;

    for (name, service) in &config.services {
        if service.get_ref().endpoints.is_empty() {
            return Err(at(
                service,
                format!("service {name:?} has no endpoints; give at least one"),
            ));
        }
        if let Some(path) = &service.get_ref().health_path
            && (!path.starts_with('/') || http::uri::PathAndQuery::try_from(path.as_str()).is_err())
        {
            return Err(at(
                service,
                format!("service {name:?}: health_path {path:?} must be a path starting with '/'"),
            ));
        }
        match (
            &service.get_ref().client_cert,
            &service.get_ref().client_key,
        ) {
            (Some(cert), None) => {
                return Err(at(
                    cert,
                    format!("service {name:?}: client_cert needs client_key (its private key)"),
                ));
            }
            (None, Some(key)) => {
                return Err(at(
                    key,
                    format!("service {name:?}: client_key needs client_cert (its certificate)"),
                ));
            }
            _ => {}
        }
        for endpoint in &service.get_ref().endpoints {
            let url = endpoint.get_ref().url();
            crate::upstream::Endpoint::parse(url).map_err(|why| {
                at(
                    endpoint,
                    format!("service {name:?}: endpoint {url:?}: {why}"),
                )
            })?;
            if !(1..=1000).contains(&endpoint.get_ref().weight()) {
                return Err(at(
                    endpoint,
                    format!("service {name:?}: endpoint {url:?}: weight must be 1 to 1000"),
                ));
            }
        }
        check_resilience(name, service)?;
    }

    for (name, settings) in &config.plugins {
        check_plugin_name(name).map_err(|why| at(settings, why))?;
        let s = settings.get_ref();
        if s.timeout_ms == 0 || s.memory_limit_mb == 0 || s.memory_limit_mb > 4096 {
            return Err(at(
                settings,
                format!(
                    "plugin {name:?}: timeout_ms must be > 0 and memory_limit_mb between 1 and 4096"
                ),
            ));
        }
        for (secret, source) in &s.secrets {
            if !is_plugin_name(secret) {
                return Err(at(
                    source,
                    format!(
                        "plugin {name:?}: secret name {secret:?} must be lower-case letters, digits, '-' or '_'"
                    ),
                ));
            }
            if !source.get_ref().is_valid() {
                return Err(at(
                    source,
                    format!(
                        "plugin {name:?}: secret {secret:?} {}",
                        SecretSource::NEEDS_ONE
                    ),
                ));
            }
        }
        for service in s.http.iter().chain(&s.services) {
            if !config.services.contains_key(service.get_ref()) {
                return Err(at(
                    service,
                    format!(
                        "plugin {name:?} is granted unknown service {:?}{}",
                        service.get_ref(),
                        known(config.services.keys())
                    ),
                ));
            }
        }
        for pattern in &s.upstreams {
            if let Err(why) = crate::allowlist::EndpointPattern::parse(pattern.get_ref()) {
                return Err(at(
                    pattern,
                    format!("plugin {name:?}: upstream {:?}: {why}", pattern.get_ref()),
                ));
            }
        }
    }

    let mut names = HashSet::new();
    // Where each route's path, folded to lower case, was first seen, with the path as
    // written and whether any route with that folded path is case-insensitive.
    let mut folded: HashMap<FoldedPath, (&str, bool)> = HashMap::new();
    validate_global(config)?;
    for route in &config.routes {
        let name = &route.name;
        if name.get_ref().is_empty() {
            return Err(at(name, "route name must not be empty".into()));
        }
        if !names.insert(name.get_ref().as_str()) {
            return Err(at(
                name,
                format!("duplicate route name {:?}", name.get_ref()),
            ));
        }
        validate_route(config, route)?;
        let (is_prefix, text) = match (&route.path, &route.prefix) {
            (Some(path), _) => (false, path),
            (None, Some(prefix)) => (true, prefix),
            (None, None) => unreachable!("validate_route checked"),
        };
        let written = text.get_ref().as_str();
        let key = (
            route.listener,
            route
                .host
                .as_ref()
                .map(|h| h.get_ref().to_ascii_lowercase()),
            is_prefix,
            written.trim_end_matches('/').to_ascii_lowercase(),
        );
        if let Some(&(earlier, earlier_folds)) = folded.get(&key)
            && (earlier_folds || route.case_insensitive)
            && earlier.trim_end_matches('/') != written.trim_end_matches('/')
        {
            return Err(at(
                text,
                format!(
                    "route {:?}: {written:?} differs from {earlier:?} only in letter case, and one \
                     of them is case_insensitive: no request could tell them apart",
                    name.get_ref()
                ),
            ));
        }
        folded
            .entry(key)
            .and_modify(|seen| seen.1 |= route.case_insensitive)
            .or_insert((written, route.case_insensitive));
    }
    Ok(())
}

/// A route's place with its path folded to lower case: (listener, host, prefix,
/// folded path without a trailing `/`).
type FoldedPath = (super::schema::Listener, Option<String>, bool, String);

fn validate_route(config: &Config, route: &RouteConfig) -> Result<(), Invalid> {
    let name = route.name.get_ref();
    match (&route.path, &route.prefix) {
        (Some(path), None) => {
            PathPattern::parse_exact(path.get_ref())
                .map_err(|why| at(path, format!("route {name:?}: path: {why}")))?;
            if route.strip_prefix {
                return Err(at(
                    &route.name,
                    format!("route {name:?}: strip_prefix needs `prefix`, not `path`"),
                ));
            }
        }
        (None, Some(prefix)) => {
            PathPattern::parse_prefix(prefix.get_ref())
                .map_err(|why| at(prefix, format!("route {name:?}: prefix: {why}")))?;
        }
        (Some(path), Some(_)) => {
            return Err(at(
                path,
                format!("route {name:?}: give either `path` or `prefix`, not both"),
            ));
        }
        (None, None) => {
            return Err(at(
                &route.name,
                format!("route {name:?}: needs a `path` or a `prefix`"),
            ));
        }
    }
    if let Some(host) = &route.host
        && !is_valid_host(host.get_ref())
    {
        return Err(at(
            host,
            format!("route {name:?}: {:?} is not a host name", host.get_ref()),
        ));
    }
    if let Some(methods) = &route.methods {
        if methods.get_ref().is_empty() {
            return Err(at(methods, format!("route {name:?}: methods is empty")));
        }
        for method in methods.get_ref() {
            if http::Method::from_bytes(method.as_bytes()).is_err() || method.is_empty() {
                return Err(at(
                    methods,
                    format!("route {name:?}: {method:?} is not an HTTP method"),
                ));
            }
        }
    }
    if route.listener == super::schema::Listener::Admin && !config.admin.enabled {
        return Err(at(
            &route.name,
            format!(
                "route {name:?}: listener = \"admin\", but the admin API is off ([admin] enabled = false)"
            ),
        ));
    }
    if let Some(service) = &route.service
        && !config.services.contains_key(service.get_ref())
    {
        return Err(at(
            service,
            format!(
                "route {name:?}: unknown service {:?}{}",
                service.get_ref(),
                known(config.services.keys())
            ),
        ));
    }
    for condition in route_conditions(route) {
        condition?;
    }
    if let Some(split) = &route.services {
        if route.service.is_some() {
            return Err(at(
                split,
                format!("route {name:?}: give either `service` or `services`, not both"),
            ));
        }
        let mut seen = HashSet::new();
        for entry in split.get_ref() {
            let service = entry.name.get_ref();
            if !config.services.contains_key(service) {
                return Err(at(
                    &entry.name,
                    format!(
                        "route {name:?}: unknown service {service:?}{}",
                        known(config.services.keys())
                    ),
                ));
            }
            if !seen.insert(service) {
                return Err(at(
                    &entry.name,
                    format!("route {name:?}: service {service:?} is listed twice in `services`"),
                ));
            }
            if entry.weight > 1000 {
                return Err(at(
                    &entry.name,
                    format!("route {name:?}: service {service:?}: weight must be 0 to 1000"),
                ));
            }
        }
        if split.get_ref().iter().all(|entry| entry.weight == 0) {
            return Err(at(
                split,
                format!("route {name:?}: `services` needs at least one weight above 0"),
            ));
        }
    }
    if route.service.is_none() && route.services.is_none() && route.plugins.is_empty() {
        return Err(at(
            &route.name,
            format!("route {name:?}: needs a `service`, or plugins that answer the requests"),
        ));
    }
    if route.timeout_ms == 0 {
        return Err(at(
            &route.name,
            format!("route {name:?}: timeout_ms must be > 0"),
        ));
    }
    if let Some(retry) = &route.retry {
        let r = retry.get_ref();
        let fail = |what: String| Err(at(retry, format!("route {name:?}: [routes.retry] {what}")));
        if !(1..=MAX_ATTEMPTS).contains(&r.attempts) {
            return fail(format!("attempts must be 1 to {MAX_ATTEMPTS}"));
        }
        if let Some(word) = r.on.iter().find(|w| TryFailure::parse(w).is_none()) {
            return fail(format!(
                "on: {word:?} is not one of \"connect\", \"reset\", \"timeout\", \"5xx\""
            ));
        }
        if let Some(method) = r
            .methods
            .iter()
            .find(|m| http::Method::from_bytes(m.as_bytes()).is_err())
        {
            return fail(format!("methods: {method:?} is not an HTTP method"));
        }
        if r.budget_percent > 100 {
            return fail("budget_percent must be 0 to 100".into());
        }
        if r.max_backoff_ms < r.backoff_ms {
            return fail("max_backoff_ms must be at least backoff_ms".into());
        }
        if r.per_try_timeout_ms > route.timeout_ms {
            return fail(format!(
                "per_try_timeout_ms must not exceed the route's timeout_ms ({})",
                route.timeout_ms
            ));
        }
    }
    if let Some(compression) = &route.compression {
        validate_compression(name, compression)?;
    }
    if let Some(table) = &route.websocket {
        let websocket = table.get_ref();
        if websocket.idle_timeout_ms == 0 {
            return Err(at(
                table,
                format!("route {name:?}: [routes.websocket] idle_timeout_ms must be above 0"),
            ));
        }
        if websocket.max_message_bytes == 0 || websocket.max_message_bytes > MAX_WEBSOCKET_MESSAGE {
            return Err(at(
                table,
                format!(
                    "route {name:?}: [routes.websocket] max_message_bytes must be 1 to {MAX_WEBSOCKET_MESSAGE}"
                ),
            ));
        }
        if route.listener == super::schema::Listener::Admin {
            return Err(at(
                table,
                format!(
                    "route {name:?}: [routes.websocket] is for gateway routes (listener = \"gateway\")"
                ),
            ));
        }
    }
    for skip in &route.skip_global {
        let skipped = skip.get_ref();
        if skipped != "*"
            && !config
                .global
                .plugins
                .iter()
                .any(|g| g.name.get_ref() == skipped && g.listener == route.listener)
        {
            let global = config
                .global
                .plugins
                .iter()
                .filter(|g| g.listener == route.listener)
                .map(|g| g.name.get_ref());
            return Err(at(
                skip,
                format!(
                    "route {name:?}: skip_global names {skipped:?}, which is not a global plugin \
                     of this route's listener{}",
                    known(global)
                ),
            ));
        }
    }
    for plugin in &route.plugins {
        let plugin_name = plugin.name.get_ref();
        // Whether NAME.wasm exists is checked when the snapshot is built, against the
        // plugin files read at the same moment.
        check_plugin_name(plugin_name)
            .map_err(|why| at(&plugin.name, format!("route {name:?}: {why}")))?;
    }
    Ok(())
}

/// A route's `headers` and `query` conditions, each built for the router or refused
/// at its entry.
pub fn route_conditions(
    route: &RouteConfig,
) -> impl Iterator<Item = Result<crate::router::Condition, Invalid>> + '_ {
    use crate::router::{Condition, Test};
    let name = route.name.get_ref();
    let build = move |kind: &'static str, entry: &Spanned<super::schema::MatchCondition>| {
        let condition = entry.get_ref();
        Test::parse(condition.value.as_deref(), condition.regex.as_deref())
            .and_then(|test| match kind {
                "headers" => Condition::header(&condition.name, test),
                _ => Condition::query(&condition.name, test),
            })
            .map_err(|why| at(entry, format!("route {name:?}: {kind}: {why}")))
    };
    route
        .headers
        .iter()
        .map(move |entry| build("headers", entry))
        .chain(route.query.iter().map(move |entry| build("query", entry)))
}

/// `[[global.plugins]]`: plugin names, and a listener that is on.
fn validate_global(config: &Config) -> Result<(), Invalid> {
    for plugin in &config.global.plugins {
        check_plugin_name(plugin.name.get_ref())
            .map_err(|why| at(&plugin.name, format!("[[global.plugins]]: {why}")))?;
        if plugin.listener == super::schema::Listener::Admin && !config.admin.enabled {
            return Err(at(
                &plugin.name,
                format!(
                    "[[global.plugins]] {:?}: listener = \"admin\", but the admin API is off \
                     ([admin] enabled = false)",
                    plugin.name.get_ref()
                ),
            ));
        }
    }
    Ok(())
}

/// The largest `[routes.websocket] max_message_bytes`: 64 MiB.
const MAX_WEBSOCKET_MESSAGE: usize = 64 << 20;

fn validate_compression(
    route: &str,
    table: &Spanned<super::schema::CompressionConfig>,
) -> Result<(), Invalid> {
    use crate::compress::{Encoding, MediaRange};
    let compression = table.get_ref();
    if compression.encodings.is_empty() {
        return Err(at(
            table,
            format!("route {route:?}: [routes.compression] encodings is empty"),
        ));
    }
    let mut seen = HashSet::new();
    for name in &compression.encodings {
        if Encoding::parse(name.get_ref()).is_none() {
            return Err(at(
                name,
                format!(
                    "route {route:?}: unknown encoding {:?} (known: br, zstd, gzip)",
                    name.get_ref()
                ),
            ));
        }
        if !seen.insert(name.get_ref()) {
            return Err(at(
                name,
                format!(
                    "route {route:?}: encoding {:?} is listed twice",
                    name.get_ref()
                ),
            ));
        }
    }
    if compression.content_types.is_empty() {
        return Err(at(
            table,
            format!("route {route:?}: [routes.compression] content_types is empty"),
        ));
    }
    for pattern in &compression.content_types {
        MediaRange::parse(pattern.get_ref())
            .map_err(|why| at(pattern, format!("route {route:?}: content_types: {why}")))?;
    }
    for (name, level) in &compression.levels {
        let Some(encoding) = Encoding::parse(name) else {
            return Err(at(
                level,
                format!(
                    "route {route:?}: levels: unknown encoding {name:?} (known: br, zstd, gzip)"
                ),
            ));
        };
        let range = encoding.levels();
        if !range.contains(level.get_ref()) {
            return Err(at(
                level,
                format!(
                    "route {route:?}: levels: {name} level {} is outside {}-{}",
                    level.get_ref(),
                    range.start(),
                    range.end()
                ),
            ));
        }
    }
    Ok(())
}

/// A service's balancing, outlier detection and breaker settings.
fn check_resilience(name: &str, service: &Spanned<ServiceConfig>) -> Result<(), Invalid> {
    let s = service.get_ref();
    match (&s.hash_on, s.balance) {
        (Some(hash_on), Balance::ConsistentHash) => {
            HashOn::parse(hash_on.get_ref())
                .map_err(|why| at(hash_on, format!("service {name:?}: {why}")))?;
        }
        (Some(hash_on), _) => {
            return Err(at(
                hash_on,
                format!("service {name:?}: hash_on needs balance = \"consistent_hash\""),
            ));
        }
        (None, _) => {}
    }
    let outlier = &s.outlier;
    if outlier.max_ejected_percent > 100
        || (outlier.consecutive_failures > 0 && outlier.base_ejection_ms == 0)
    {
        return Err(at(
            service,
            format!(
                "service {name:?}: [outlier] max_ejected_percent must be 0 to 100 and \
                 base_ejection_ms above 0"
            ),
        ));
    }
    if let Some(breaker) = &s.breaker {
        let b = breaker.get_ref();
        if !(b.failure_ratio > 0.0 && b.failure_ratio <= 1.0)
            || b.min_requests == 0
            || b.window_ms < 10
            || b.open_ms == 0
            || b.half_open_requests == 0
        {
            return Err(at(
                breaker,
                format!(
                    "service {name:?}: [breaker] failure_ratio must be above 0 and at most 1; \
                     min_requests, open_ms and half_open_requests above 0; window_ms at least 10"
                ),
            ));
        }
    }
    Ok(())
}

/// Plugin names are file stems: lower-case letters, digits, `-` and `_`.
pub fn is_plugin_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn check_plugin_name(name: &str) -> Result<(), String> {
    if is_plugin_name(name) {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a plugin name (lower-case letters, digits, '-' and '_')"
        ))
    }
}

fn known<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<&str> = names.map(String::as_str).collect();
    if names.is_empty() {
        String::new()
    } else {
        format!(" (known: {})", names.join(", "))
    }
}

/// `[state]`: a Redis backend needs a usable `[state.redis]`, whose timeout leaves
/// every plugin time to answer a store failure itself.
fn check_state(config: &Config) -> Result<(), Invalid> {
    use crate::config::StateBackend;
    let state = &config.state;
    let Some(redis) = &state.redis else {
        return match state.backend {
            StateBackend::Redis => Err((
                0,
                "[state] backend = \"redis\" needs [state.redis] with url = \"redis://host:port\""
                    .into(),
            )),
            StateBackend::Sled => Ok(()),
        };
    };
    let settings = redis.get_ref();
    let problem =
        if !(settings.url.starts_with("redis://") || settings.url.starts_with("rediss://")) {
            Some(format!(
                "url = {:?} must start with redis:// (or rediss:// for TLS)",
                settings.url
            ))
        } else if !(1..=64).contains(&settings.pool_size) {
            Some("pool_size must be 1 to 64".into())
        } else if !(1..=60_000).contains(&settings.timeout_ms) {
            Some("timeout_ms must be 1 to 60000".into())
        } else if let Some((plugin, timeout)) =
            std::iter::once(("(default)", PluginSettings::default().timeout_ms))
                .chain(
                    config
                        .plugins
                        .iter()
                        .map(|(name, p)| (name.as_str(), p.get_ref().timeout_ms)),
                )
                .find(|(_, timeout)| settings.timeout_ms >= *timeout)
        {
            Some(format!(
                "timeout_ms = {} must be below the plugins' timeout_ms ({plugin}: {timeout}), so a \
             plugin has time to answer a store failure itself",
                settings.timeout_ms
            ))
        } else {
            match &settings.password {
                Some(source) if !source.is_valid() => {
                    Some(format!("password {}", SecretSource::NEEDS_ONE))
                }
                _ => None,
            }
        };
    match problem {
        Some(problem) => Err(at(redis, format!("[state.redis] {problem}"))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;
