//! The TOML schema: every section and field an operator may write, with its default.
//! Unknown fields are errors. Values that validation must point at keep their span.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use serde_spanned::Spanned;

/// The whole config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[gateway]`: listener and directories.
    #[serde(default)]
    pub gateway: GatewaySettings,
    /// `[admin]`: the admin API listener.
    #[serde(default)]
    pub admin: AdminSettings,
    /// `[reload]`: how changes to plugins and this file are picked up.
    #[serde(default)]
    pub reload: ReloadSettings,
    /// `[limits]`: request size and time limits.
    #[serde(default)]
    pub limits: Limits,
    /// `[log]`: log level, format and file.
    #[serde(default)]
    pub log: LogSettings,
    /// `[health]`: upstream probes and the health endpoints.
    #[serde(default)]
    pub health: HealthSettings,
    /// `[metrics]`: the Prometheus endpoint.
    #[serde(default)]
    pub metrics: MetricsSettings,
    /// `[state]`: the store behind the plugins' `kv`.
    #[serde(default)]
    pub state: StateSettings,
    /// `[plugins.NAME]`: per-plugin grants and limits (optional; a plugin used by a
    /// route without a section gets the defaults and no grants).
    #[serde(default)]
    pub plugins: BTreeMap<String, Spanned<PluginSettings>>,
    /// `[services.NAME]`: upstream services.
    #[serde(default)]
    pub services: BTreeMap<String, Spanned<ServiceConfig>>,
    /// `[global]`: what applies to every route.
    #[serde(default)]
    pub global: GlobalSettings,
    /// `[[routes]]`: the routes, each with its plugin chain.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
}

impl Config {
    /// The plugins `route` runs, in request order: the global plugins of its listener
    /// placed `before` (less those it skips), its own, then the global ones placed
    /// `after`.
    pub fn chain<'a>(&'a self, route: &'a RouteConfig) -> Vec<ChainEntry<'a>> {
        let skips = |name: &str| {
            route
                .skip_global
                .iter()
                .any(|s| s.get_ref() == "*" || s.get_ref() == name)
        };
        let global = |position: Position| {
            self.global
                .plugins
                .iter()
                .filter(move |g| {
                    g.position == position
                        && g.listener == route.listener
                        && !skips(g.name.get_ref())
                })
                .map(|g| ChainEntry {
                    name: &g.name,
                    config: g.config.as_ref(),
                    on_error: g.on_error,
                    global: true,
                })
        };
        let own = route.plugins.iter().map(|p| ChainEntry {
            name: &p.name,
            config: p.config.as_ref(),
            on_error: p.on_error,
            global: false,
        });
        global(Position::Before)
            .chain(own)
            .chain(global(Position::After))
            .collect()
    }
}

/// One plugin of a route's whole chain: its own or a global one.
#[derive(Debug, Clone, Copy)]
pub struct ChainEntry<'a> {
    /// The plugin's name, where it is written.
    pub name: &'a Spanned<String>,
    /// Its `config` table.
    pub config: Option<&'a toml::Table>,
    /// Its own `on_error`, if set.
    pub on_error: Option<OnError>,
    /// It comes from `[[global.plugins]]`.
    pub global: bool,
}

/// `[global]`: plugins that run on every route, so that a policy meant for all
/// (CORS, authentication, an access log) is written once.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalSettings {
    /// `[[global.plugins]]`: in order; each runs before (or after) every route's own
    /// chain on its listener, unless the route opts out with `skip_global`.
    #[serde(default)]
    pub plugins: Vec<GlobalPluginRef>,
}

/// `[[global.plugins]]`: one plugin on every route of a listener.
///
/// ```toml
/// [[global.plugins]]
/// name = "jwt-auth"
/// position = "before"      # or "after": around each route's own plugins
/// listener = "gateway"     # whose routes get it
/// config = { keys = [{ alg = "HS256", secret = "jwt" }] }
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalPluginRef {
    /// `name = "cors"`: the plugin, file `NAME.wasm` in the plugin directory.
    pub name: Spanned<String>,
    /// `config = { … }`: handed to the plugin's `configure` as JSON (once per route).
    #[serde(default)]
    pub config: Option<toml::Table>,
    /// `on_error = "skip"`: overrides each route's `on_error` for this plugin.
    #[serde(default)]
    pub on_error: Option<OnError>,
    /// `position = "before"`: `"before"` runs it ahead of the route's own plugins on
    /// requests (and after them on responses); `"after"` behind them.
    #[serde(default)]
    pub position: Position,
    /// `listener = "gateway"`: the routes of which listener get it (`"gateway"` or
    /// `"admin"`).
    #[serde(default)]
    pub listener: Listener,
}

/// Where a global plugin sits in a route's chain.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Position {
    /// Ahead of the route's own plugins.
    #[default]
    Before,
    /// Behind the route's own plugins.
    After,
}

/// `[gateway]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewaySettings {
    /// `listen = "127.0.0.1:8080"`: the address the gateway serves clients on.
    pub listen: Spanned<String>,
    /// `plugin_dir = "plugins"`: where `NAME.wasm` plugins are loaded from, relative to
    /// the config file.
    pub plugin_dir: PathBuf,
    /// `data_dir = "data"`: where state (sled) and the compiled-plugin cache live,
    /// relative to the config file.
    pub data_dir: PathBuf,
    /// `shutdown_grace_ms = 10000`: how long in-flight requests may take to finish
    /// after SIGTERM / Ctrl-C.
    pub shutdown_grace_ms: u64,
    /// `plugin_cache = true`: keep compiled plugins in `data_dir/plugin-cache` so a
    /// restart does not compile them again.
    pub plugin_cache: bool,
    /// `[gateway.tls]`: serve clients over TLS; absent, the listener is plain TCP.
    pub tls: Option<Spanned<TlsSettings>>,
}

/// `[gateway.tls]`: TLS termination on the gateway listener (TLS 1.2 and 1.3, ALPN
/// `h2` and `http/1.1`). Whether the listener is TLS is fixed at start; the files are
/// read again on every reload, and a reload with a bad one is refused.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// `certificates = [{ cert = "site.pem", key = "site.key" }, …]`: certificate
    /// chains and their keys (PEM), relative to the config file. A client gets the
    /// first whose certificate covers the name it asks for (SNI), else the first.
    pub certificates: Vec<Spanned<CertificateSettings>>,
    /// `client_ca = "clients-ca.pem"`: ask clients for a certificate and verify it
    /// against these CA certificates (PEM, relative to the config file); the verified
    /// certificate's subject, names and hash reach plugins and the upstream in
    /// `X-Forwarded-Client-Cert`. Absent: no client certificates are asked for.
    #[serde(default)]
    pub client_ca: Option<Spanned<PathBuf>>,
    /// `client_certificates = "required"`: with `client_ca`, a client without a
    /// certificate fails its handshake (`"required"`) or is served without one
    /// (`"optional"`); a certificate that does not verify fails it either way.
    #[serde(default)]
    pub client_certificates: ClientCertificates,
}

/// `[gateway.tls] client_certificates`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientCertificates {
    /// A client must present a certificate that verifies.
    #[default]
    Required,
    /// A client may present one (which must then verify).
    Optional,
}

/// One entry of `[gateway.tls] certificates`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateSettings {
    /// `cert = "site.pem"`: the certificate, then any intermediates.
    pub cert: PathBuf,
    /// `key = "site.key"`: its private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl Config {
    /// The TLS files read again on every reload, so a change to one reloads: the
    /// certificates, keys and client CA of `[gateway.tls]`, and each service's
    /// `ca_file`, `client_cert` and `client_key`.
    pub fn tls_files(&self) -> Vec<PathBuf> {
        let listener = self.gateway.tls.iter().flat_map(|tls| {
            let tls = tls.get_ref();
            tls.certificates
                .iter()
                .flat_map(|entry| [&entry.get_ref().cert, &entry.get_ref().key])
                .chain(tls.client_ca.iter().map(Spanned::get_ref))
        });
        let services = self.services.values().flat_map(|service| {
            let service = service.get_ref();
            [&service.ca_file, &service.client_cert, &service.client_key]
                .into_iter()
                .flatten()
                .map(Spanned::get_ref)
        });
        listener.chain(services).cloned().collect()
    }
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            listen: Spanned::new(0..0, "127.0.0.1:8080".to_string()),
            plugin_dir: PathBuf::from("plugins"),
            data_dir: PathBuf::from("data"),
            shutdown_grace_ms: 10_000,
            plugin_cache: true,
            tls: None,
        }
    }
}

/// `[log]`: environment variables override each field (`LOG_LEVEL` or `RUST_LOG`,
/// `LOG_FORMAT`, `LOG_TO_FILE`, `LOG_FILE_PATH`, `LOG_FILE_MAX_BYTES`,
/// `LOG_FILE_BACKUP_COUNT`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// `level = "info"`: a level or a filter like `"info,wasmgate=debug"`.
    pub level: String,
    /// `format = "console"`: `"console"` (human-readable, coloured on a terminal) or
    /// `"json"` (one JSON object per line).
    pub format: LogFormat,
    /// `file = "logs/wasmgate.log"`: also write the log to this file (relative to the
    /// config file), rotated by size; no file when absent.
    pub file: Option<PathBuf>,
    /// `file_max_bytes = 10485760`: rotate the file when it would grow past this.
    pub file_max_bytes: u64,
    /// `file_backups = 5`: rotated files kept (`FILE.1` newest … `FILE.N`).
    pub file_backups: usize,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Console,
            file: None,
            file_max_bytes: 10 * 1024 * 1024,
            file_backups: 5,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable, coloured when writing to a terminal.
    #[default]
    Console,
    /// One JSON object per line.
    Json,
}

/// `[health]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthSettings {
    /// `path = "/health"`: where the gateway listener answers health checks (also
    /// `PATH/live` and `PATH/ready`); `""` answers them on the admin listener only.
    pub path: String,
    /// `interval_ms = 10000`: time between probes of each upstream endpoint.
    pub interval_ms: u64,
    /// `timeout_ms = 2000`: time one probe may take.
    pub timeout_ms: u64,
}

impl Default for HealthSettings {
    fn default() -> Self {
        Self {
            path: "/health".into(),
            interval_ms: 10_000,
            timeout_ms: 2_000,
        }
    }
}

/// `[metrics]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// `path = "/metrics"`: where the gateway listener serves Prometheus metrics;
    /// `""` serves them on the admin listener only.
    pub path: String,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            path: "/metrics".into(),
        }
    }
}

/// `[admin]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSettings {
    /// `enabled = true`: serve the admin API.
    pub enabled: bool,
    /// `listen = "127.0.0.1:9901"`: its address. The admin API has no authentication,
    /// so it must be a loopback address unless `allow_remote` is set.
    pub listen: Spanned<String>,
    /// `allow_remote = false`: allow a non-loopback `listen` (put it behind something
    /// that authenticates), and requests addressed (`Host`) to other names than
    /// `localhost` or a loopback address (refused otherwise: DNS rebinding).
    pub allow_remote: bool,
}

impl Default for AdminSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: Spanned::new(0..0, "127.0.0.1:9901".to_string()),
            allow_remote: false,
        }
    }
}

/// `[state]` (read at start only)
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateSettings {
    /// `backend = "sled"`: where plugins' `kv` data lives: `"sled"` (embedded, in
    /// `data_dir/state`: one process) or `"redis"` (shared by every gateway process
    /// pointed at the same server and `key_prefix`: see `[state.redis]`).
    pub backend: StateBackend,
    /// `sweep_interval_ms = 10000`: how often expired `kv` entries are removed from the
    /// store (and each namespace's size counted for `/admin/state` and `/metrics`);
    /// `0` turns the sweep off (expired entries then go only when read).
    pub sweep_interval_ms: u64,
    /// `[state.redis]`: the server of `backend = "redis"`.
    pub redis: Option<Spanned<RedisSettings>>,
}

impl Default for StateSettings {
    fn default() -> Self {
        Self {
            backend: StateBackend::Sled,
            sweep_interval_ms: 10_000,
            redis: None,
        }
    }
}

/// `[state] backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateBackend {
    /// Embedded sled, one process.
    Sled,
    /// A Redis server, shared by replicas.
    Redis,
}

/// `[state.redis]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// `url = "redis://127.0.0.1:6379/0"`: the server (`rediss://` for TLS, verified
    /// against the system's roots); a password may be in it, or in `password`.
    pub url: String,
    /// `password = { env = "REDIS_PASSWORD" }` (or `{ file = "…" }`): the server's
    /// password, kept out of the config file.
    #[serde(default)]
    pub password: Option<SecretSource>,
    /// `key_prefix = "wasmgate:"`: before every key the gateway writes, so that
    /// several deployments can share a server (replicas of one share it).
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
    /// `pool_size = 4`: multiplexed connections per gateway process (1 to 64).
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// `timeout_ms = 50`: most time one `kv` call (or a connection attempt) may
    /// take; past it the call fails with a store error, which each plugin handles
    /// (rate-limit's `on_store_error`; auth plugins refuse). Below every plugin's
    /// `timeout_ms`, so a plugin has time left to answer the failure itself.
    #[serde(default = "default_redis_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_key_prefix() -> String {
    "wasmgate:".into()
}

fn default_pool_size() -> usize {
    4
}

fn default_redis_timeout_ms() -> u64 {
    50
}

/// `[reload]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReloadSettings {
    /// `watch = true`: reload when a plugin file or this config file changes
    /// (`SIGHUP` and `POST /admin/reload` always work).
    pub watch: bool,
    /// `debounce_ms = 200`: wait for this long without further changes before
    /// reloading, so that a burst of writes makes one reload.
    pub debounce_ms: u64,
}

impl Default for ReloadSettings {
    fn default() -> Self {
        Self {
            watch: true,
            debounce_ms: 200,
        }
    }
}

/// `[limits]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// `max_header_bytes = 16384`: total size of the request headers; larger gets 431.
    pub max_header_bytes: usize,
    /// `max_uri_bytes = 8192`: length of the request target; longer gets 414.
    pub max_uri_bytes: usize,
    /// `header_read_timeout_ms = 10000`: time a client has to send a request's headers.
    pub header_read_timeout_ms: u64,
    /// `idle_timeout_ms = 60000`: a keep-alive connection with no request in flight for
    /// this long is closed.
    pub idle_timeout_ms: u64,
    /// `max_body_bytes = 1048576`: default cap on a body the gateway buffers for a
    /// plugin (413 beyond it); routes may override. Streamed bodies are not capped.
    pub max_body_bytes: usize,
    /// `body_read_timeout_ms = 30000`: a request body of which no byte arrives for this
    /// long, while the gateway waits for it, gets 408 and its connection is closed.
    pub body_read_timeout_ms: u64,
    /// `send_timeout_ms = 30000`: a client that takes none of its response for this
    /// long (the gateway's writes to it blocked) is disconnected.
    pub send_timeout_ms: u64,
    /// `max_connections = 10000`: client connections open at once on the gateway
    /// listener; one over it is answered 503 and closed.
    pub max_connections: usize,
    /// `max_connections_per_client = 0`: client connections open at once from one IP
    /// address (0: no cap); one over it is answered 429 and closed. Behind a load
    /// balancer every client has its address: leave it 0 there.
    pub max_connections_per_client: usize,
    /// `http2_max_concurrent_streams = 100`: requests one HTTP/2 connection may have
    /// in flight at once (announced to the client in its settings).
    pub http2_max_concurrent_streams: u32,
    /// `http2_max_resets = 100`: requests a client may cancel (HTTP/2 `RST_STREAM`
    /// before the answer) on one connection within 10 seconds; one more closes the
    /// connection, so a rapid-reset flood (CVE-2023-44487) costs the attacker its
    /// connection within a bounded amount of the gateway's work.
    pub http2_max_resets: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_header_bytes: 16 * 1024,
            max_uri_bytes: 8 * 1024,
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            max_body_bytes: 1024 * 1024,
            body_read_timeout_ms: 30_000,
            send_timeout_ms: 30_000,
            max_connections: 10_000,
            max_connections_per_client: 0,
            http2_max_concurrent_streams: 100,
            http2_max_resets: 100,
        }
    }
}

/// `[plugins.NAME]`: what the operator grants plugin `NAME` (file `NAME.wasm`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginSettings {
    /// `timeout_ms = 100`: deadline for one call into the plugin.
    pub timeout_ms: u64,
    /// `memory_limit_mb = 64`: the most linear memory one instance may grow to.
    pub memory_limit_mb: u64,
    /// `http = ["keystone"]`: services the plugin may call through the `http` import.
    pub http: Vec<Spanned<String>>,
    /// `kv_namespace = "auth"`: the `kv` namespace; defaults to the plugin's name.
    /// Plugins given the same namespace share data.
    pub kv_namespace: Option<String>,
    /// `kv_durable = true`: every `kv` write of this plugin is on disk before the call
    /// returns (a plugin can also ask for it per write). Off by default: writes reach
    /// the disk within a fraction of a second.
    pub kv_durable: bool,
    /// `services = ["orders-v2"]`: services the plugin may send a request to instead
    /// of the route's own (`continue-to(service)`).
    pub services: Vec<Spanned<String>>,
    /// `upstreams = ["http://127.0.0.1:*", "http://10.0.0.0/8:8080"]`: endpoints the
    /// plugin may send a request to (`continue-to(endpoint)`): `http://` then a host
    /// name, an IP address or an IPv4/IPv6 network in CIDR form, then `:PORT` or `:*`
    /// for any port (no port means port 80).
    pub upstreams: Vec<Spanned<String>>,
    /// `instances = 64`: most idle, configured instances kept per route for reuse;
    /// `0` makes a fresh instance for every call.
    pub instances: usize,
    /// `secrets = { jwt = { env = "JWT_SECRET" }, signing = { file = "keys/sign.pem" } }`:
    /// secrets the plugin reads by name through the `secrets` import, each from an
    /// environment variable or a file (relative to the config file), read when the
    /// config is loaded or reloaded.
    pub secrets: BTreeMap<String, Spanned<SecretSource>>,
}

/// Where a granted secret comes from: exactly one of `env` and `file`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSource {
    /// `env = "JWT_SECRET"`: the value of this environment variable.
    #[serde(default)]
    pub env: Option<String>,
    /// `file = "keys/jwt.pem"`: the contents of this file (a trailing newline is kept).
    #[serde(default)]
    pub file: Option<PathBuf>,
}

impl SecretSource {
    /// What a config must say about a source that names neither or both of `env` and
    /// `file` (or an empty one).
    pub const NEEDS_ONE: &'static str =
        "needs exactly one of `env = \"VAR\"` and `file = \"PATH\"`";

    /// Whether it names exactly one of `env` and `file`, and that one is not empty.
    pub fn is_valid(&self) -> bool {
        match (&self.env, &self.file) {
            (Some(var), None) => !var.is_empty(),
            (None, Some(file)) => !file.as_os_str().is_empty(),
            _ => false,
        }
    }

    /// The secret: the variable's value or the file's bytes, as they are; why not
    /// when the variable is unset or the file unreadable.
    pub fn read(&self) -> Result<Vec<u8>, String> {
        match (&self.env, &self.file) {
            (Some(var), _) => std::env::var_os(var)
                .map(std::ffi::OsString::into_encoded_bytes)
                .ok_or_else(|| format!("environment variable {var} is not set")),
            (None, Some(file)) => {
                std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))
            }
            (None, None) => Err(Self::NEEDS_ONE.into()),
        }
    }
}

impl Default for PluginSettings {
    fn default() -> Self {
        Self {
            timeout_ms: 100,
            memory_limit_mb: 64,
            http: Vec::new(),
            kv_namespace: None,
            kv_durable: false,
            services: Vec::new(),
            upstreams: Vec::new(),
            instances: 64,
            secrets: BTreeMap::new(),
        }
    }
}

/// `[services.NAME]`: an upstream service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// `endpoints = ["http://127.0.0.1:9000", { url = "http://127.0.0.1:9001", weight = 3 }]`:
    /// one or more `http://host:port` or `https://host:port` base URLs, each with a
    /// weight (default 1).
    pub endpoints: Vec<Spanned<EndpointConfig>>,
    /// `ca_file = "certs/internal-ca.pem"`: `https://` endpoints are verified against
    /// the CA certificates in this PEM file (relative to the config file) instead of
    /// the system's roots.
    pub ca_file: Option<Spanned<PathBuf>>,
    /// `client_cert = "certs/gateway.pem"`: the certificate (then any intermediates)
    /// the gateway shows `https://` endpoints that ask for one (mutual TLS), relative
    /// to the config file; with `client_key`.
    pub client_cert: Option<Spanned<PathBuf>>,
    /// `client_key = "certs/gateway.key"`: the private key of `client_cert` (PEM:
    /// PKCS#8, PKCS#1 or SEC1).
    pub client_key: Option<Spanned<PathBuf>>,
    /// `connect_timeout_ms = 2000`: time allowed to open a connection to an endpoint.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// `health_path = "/health"`: probe each endpoint with `GET` here (2xx or 3xx is
    /// up); without it, a probe only opens a TCP connection.
    #[serde(default)]
    pub health_path: Option<String>,
    /// `balance = "round_robin"`: how an endpoint is chosen: `"round_robin"` (by
    /// weight), `"weighted"` (the same, named for what it does with weights),
    /// `"least_request"` (the less busy of two picked at random, by weight) or
    /// `"consistent_hash"` (the same key goes to the same endpoint: see `hash_on`).
    #[serde(default)]
    pub balance: Balance,
    /// `hash_on = "client"`: the key of `consistent_hash`: `"client"` (the client's
    /// address), `"header:NAME"` or `"cookie:NAME"`; a request without that header or
    /// cookie is keyed by its client address.
    #[serde(default)]
    pub hash_on: Option<Spanned<String>>,
    /// `[services.NAME.outlier]`: passive outlier detection (on by default).
    #[serde(default)]
    pub outlier: OutlierConfig,
    /// `[services.NAME.breaker]`: a circuit breaker for the service and each of its
    /// endpoints (off unless the table is given).
    #[serde(default)]
    pub breaker: Option<Spanned<BreakerConfig>>,
}

/// One entry of `endpoints`: a URL, or a table with a weight.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    untagged,
    expecting = "an endpoint: \"http://host:port\" or { url = \"http://host:port\", weight = N }"
)]
pub enum EndpointConfig {
    /// `"http://127.0.0.1:9000"` (weight 1).
    Url(String),
    /// `{ url = "http://127.0.0.1:9000", weight = 3 }`.
    Weighted(WeightedEndpoint),
}

/// `{ url = "http://127.0.0.1:9000", weight = 3 }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedEndpoint {
    /// The base URL.
    pub url: String,
    /// Its share of the traffic relative to the others, 1 to 1000 (default 1).
    #[serde(default = "one")]
    pub weight: u32,
}

fn one() -> u32 {
    1
}

impl EndpointConfig {
    /// The base URL.
    pub fn url(&self) -> &str {
        match self {
            Self::Url(url) | Self::Weighted(WeightedEndpoint { url, .. }) => url,
        }
    }

    /// The weight (1 when not given).
    pub fn weight(&self) -> u32 {
        match self {
            Self::Url(_) => 1,
            Self::Weighted(endpoint) => endpoint.weight,
        }
    }
}

/// How a service chooses an endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// In turn, each endpoint as often as its weight says.
    #[default]
    RoundRobin,
    /// The same as `round_robin`.
    Weighted,
    /// Power of two choices: the fewer requests in flight per unit of weight.
    LeastRequest,
    /// Rendezvous hashing of `hash_on`: a key keeps its endpoint while it is up.
    ConsistentHash,
}

/// `[services.NAME.outlier]`: endpoints that keep failing are ejected for a while.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutlierConfig {
    /// `consecutive_failures = 5`: failures in a row (connect errors, timeouts,
    /// resets, 5xx) that eject an endpoint; 0 turns detection off.
    pub consecutive_failures: u32,
    /// `base_ejection_ms = 10000`: the first ejection's length; it doubles with each
    /// ejection in a row, up to `max_ejection_ms`.
    pub base_ejection_ms: u64,
    /// `max_ejection_ms = 300000`: the longest ejection.
    pub max_ejection_ms: u64,
    /// `max_ejected_percent = 50`: the most of a service's endpoints ejected at once
    /// (at least one may always be).
    pub max_ejected_percent: u32,
}

impl Default for OutlierConfig {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            base_ejection_ms: 10_000,
            max_ejection_ms: 300_000,
            max_ejected_percent: 50,
        }
    }
}

/// `[services.NAME.breaker]`: a circuit breaker, judged on the failure ratio.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// `failure_ratio = 0.5`: the share of failed requests in the window that opens it.
    pub failure_ratio: f64,
    /// `min_requests = 20`: fewer requests than this in the window never open it.
    pub min_requests: u32,
    /// `window_ms = 10000`: the window failures are counted over.
    pub window_ms: u64,
    /// `open_ms = 5000`: how long it stays open (503 at once) before half-opening.
    pub open_ms: u64,
    /// `half_open_requests = 3`: requests let through to probe when half-open; all
    /// must succeed to close it, one failure opens it again.
    pub half_open_requests: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_ratio: 0.5,
            min_requests: 20,
            window_ms: 10_000,
            open_ms: 5_000,
            half_open_requests: 3,
        }
    }
}

pub fn default_connect_timeout_ms() -> u64 {
    2_000
}

/// `[[routes]]`: which requests a route takes and what happens to them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// `name = "users"`: unique; appears in logs, metrics and plugin contexts.
    pub name: Spanned<String>,
    /// `host = "api.example.com"`: match only this `Host` (port ignored, case-insensitive).
    #[serde(default)]
    pub host: Option<Spanned<String>>,
    /// `methods = ["GET", "POST"]`: match only these methods; all when absent.
    #[serde(default)]
    pub methods: Option<Spanned<Vec<String>>>,
    /// `path = "/users/{id}"`: match this exact path; `{name}` segments capture one
    /// segment each. Exactly one of `path` and `prefix` is required.
    #[serde(default)]
    pub path: Option<Spanned<String>>,
    /// `prefix = "/api/"`: match every path under this prefix (segment-wise: `/api`
    /// matches `/api` and `/api/x`, not `/apix`).
    #[serde(default)]
    pub prefix: Option<Spanned<String>>,
    /// `case_insensitive = true`: match the path's letters whatever their case
    /// (`/ADMIN/x` takes a `prefix = "/admin"` route), for upstreams that read paths
    /// that way; the upstream gets the path as the client wrote it. Default `false`:
    /// letters match exactly, and a path that matches this route only when case is
    /// ignored is refused (400) rather than given to a less specific route.
    #[serde(default)]
    pub case_insensitive: bool,
    /// `strip_prefix = true`: remove the prefix before calling the upstream.
    #[serde(default)]
    pub strip_prefix: bool,
    /// `headers = [{ name = "x-canary", value = "1" }]`: match only requests whose
    /// headers meet every condition (see [`MatchCondition`]).
    #[serde(default)]
    pub headers: Vec<Spanned<MatchCondition>>,
    /// `query = [{ name = "version", value = "2" }]`: match only requests whose query
    /// parameters meet every condition.
    #[serde(default)]
    pub query: Vec<Spanned<MatchCondition>>,
    /// `service = "users"`: the upstream service; optional when a plugin answers.
    #[serde(default)]
    pub service: Option<Spanned<String>>,
    /// `services = [{ name = "v1", weight = 90 }, { name = "v2", weight = 10 }]`: split
    /// the route's requests between services by weight, each request drawn at random
    /// (a canary); instead of `service`.
    #[serde(default)]
    pub services: Option<Spanned<Vec<WeightedService>>>,
    /// `timeout_ms = 30000`: time allowed for the upstream's response headers (504).
    #[serde(default = "default_route_timeout_ms")]
    pub timeout_ms: u64,
    /// `max_body_bytes = 1048576`: cap on a buffered body for this route (413);
    /// defaults to `[limits] max_body_bytes`.
    #[serde(default)]
    pub max_body_bytes: Option<usize>,
    /// `large_responses = "fail"`: what happens to a response body over
    /// `max_body_bytes` when a plugin of the chain reads response bodies: `"fail"`
    /// answers 502, `"stream"` sends it to the client as it comes, unread (those
    /// plugins see no body: a cache stores nothing, a transform changes nothing).
    #[serde(default)]
    pub large_responses: LargeResponses,
    /// `preserve_host = false`: send the client's `Host` upstream instead of the
    /// endpoint's.
    #[serde(default)]
    pub preserve_host: bool,
    /// `listener = "gateway"`: where the route is served: `"gateway"`, or `"admin"`
    /// for operator-only endpoints made by plugins (an API-key manager, say) on the
    /// admin listener, behind the admin API's own paths.
    #[serde(default)]
    pub listener: Listener,
    /// `on_error = "fail"`: the default for this route's plugins: `"fail"` answers a
    /// plugin failure with a 500 `PLUGIN_ERROR`, `"skip"` carries on without the plugin.
    #[serde(default)]
    pub on_error: OnError,
    /// `[[routes.plugins]]`: the chain, run in order on requests and in reverse on
    /// responses (between the global plugins placed `before` and `after` it).
    #[serde(default)]
    pub plugins: Vec<PluginRef>,
    /// `skip_global = ["jwt-auth"]`: global plugins this route goes without, by name;
    /// `["*"]` skips them all.
    #[serde(default)]
    pub skip_global: Vec<Spanned<String>>,
    /// `[routes.retry]`: when a failed upstream call is tried again. Without the
    /// table: one more try on another endpoint after a connect failure or a reset, for
    /// idempotent methods.
    #[serde(default)]
    pub retry: Option<Spanned<RetryConfig>>,
    /// `[routes.compression]`: compress this route's responses for clients that
    /// accept it (off without the table).
    #[serde(default)]
    pub compression: Option<Spanned<CompressionConfig>>,
    /// `[routes.websocket]`: relay WebSocket connections (`Upgrade: websocket`) on
    /// this route after its request phase (off without the table: the upgrade
    /// headers are dropped and the request goes upstream as a plain one).
    #[serde(default)]
    pub websocket: Option<Spanned<WebSocketSettings>>,
}

/// One condition of a route's `headers` or `query`: the header or parameter `name`
/// is present (with neither `value` nor `regex`), has one value equal to `value`, or
/// one value that `regex` matches as a whole (it is anchored). Header names are compared in any letter case; parameter names and values
/// after percent-decoding.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchCondition {
    /// `name = "x-canary"`: the header or query parameter.
    pub name: String,
    /// `value = "1"`: one of its values is exactly this.
    #[serde(default)]
    pub value: Option<String>,
    /// `regex = "Mozilla/.*Mobile.*"`: one of its values matches this as a whole (Rust's
    /// `regex` syntax: linear time, no look-around or back-references).
    #[serde(default)]
    pub regex: Option<String>,
}

/// One entry of a route's `services`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedService {
    /// `name = "users-v2"`: a `[services.NAME]`.
    pub name: Spanned<String>,
    /// `weight = 10`: its share of the requests against the others' weights (0 to
    /// 1000; 0 sends it nothing).
    pub weight: u32,
}

/// `[routes.websocket]`: the route relays WebSockets; the table alone turns it on:
///
/// ```toml
/// [routes.websocket]
/// idle_timeout_ms = 300000
/// max_message_bytes = 1048576
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebSocketSettings {
    /// `enabled = true`: `false` turns it off and keeps the table.
    pub enabled: bool,
    /// `idle_timeout_ms = 300000`: no message either way (pings count) for this long
    /// closes both sides with `1001`.
    pub idle_timeout_ms: u64,
    /// `max_message_bytes = 1048576`: a message over this size closes its sender with
    /// `1009` (and the other side with `1001`); it is never passed on.
    pub max_message_bytes: usize,
}

impl Default for WebSocketSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            idle_timeout_ms: 300_000,
            max_message_bytes: 1 << 20,
        }
    }
}

/// `[routes.retry]`: retries of failed upstream calls, each on another endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// `attempts = 2`: tries in all, the first included (1 turns retries off).
    pub attempts: u32,
    /// `on = ["connect", "reset"]`: what is retried: `"connect"` (no connection was
    /// made), `"reset"` (the connection failed before a response), `"timeout"` (no
    /// response within `per_try_timeout_ms`), `"5xx"` (a 5xx response).
    pub on: Vec<String>,
    /// `methods = ["GET", "HEAD", "OPTIONS", "PUT", "DELETE"]`: methods that may be
    /// retried (the idempotent ones by default; add `"POST"` only for upstreams that
    /// make it safe).
    pub methods: Vec<String>,
    /// `backoff_ms = 25`: the first wait before a retry; it doubles with each, up to
    /// `max_backoff_ms`, and each wait is drawn at random below it (full jitter).
    pub backoff_ms: u64,
    /// `max_backoff_ms = 250`: the longest wait before a retry.
    pub max_backoff_ms: u64,
    /// `per_try_timeout_ms = 0`: time allowed for each try's response headers; 0 means
    /// the route's `timeout_ms`, which always bounds all tries together.
    pub per_try_timeout_ms: u64,
    /// `budget_percent = 20`: retries may be at most this share of the route's
    /// requests over the last 10 seconds, so a failing service is not hammered.
    pub budget_percent: u32,
    /// `budget_min = 3`: retries allowed in any 10 seconds whatever the share, so a
    /// quiet route still retries.
    pub budget_min: u32,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            attempts: 2,
            on: vec!["connect".into(), "reset".into()],
            methods: ["GET", "HEAD", "OPTIONS", "PUT", "DELETE"]
                .map(String::from)
                .to_vec(),
            backoff_ms: 25,
            max_backoff_ms: 250,
            per_try_timeout_ms: 0,
            budget_percent: 20,
            budget_min: 3,
        }
    }
}

/// `[routes.compression]`: the route's responses compressed as the client's
/// `Accept-Encoding` allows, streamed; the table alone turns it on:
///
/// ```toml
/// [routes.compression]
/// encodings = ["br", "zstd", "gzip"]
/// min_bytes = 1024
/// content_types = ["text/*", "application/json"]
/// levels = { gzip = 6 }
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompressionConfig {
    /// `enabled = true`: `false` turns it off and keeps the table.
    pub enabled: bool,
    /// `encodings = ["br", "zstd", "gzip"]`: the codings offered, in the route's order
    /// of preference (it breaks ties between the client's q-values).
    pub encodings: Vec<Spanned<String>>,
    /// `min_bytes = 1024`: a response whose length is known and below this is sent as
    /// it is (a streamed one of unknown length is compressed).
    pub min_bytes: u64,
    /// `content_types = ["text/*", "application/json", "application/javascript",
    /// "application/xml", "image/svg+xml"]`: the media types compressed (parameters
    /// ignored, any letter case); `type/*` and `*/*` take every subtype but
    /// `text/event-stream`, which must be named to be compressed.
    pub content_types: Vec<Spanned<String>>,
    /// `levels = { br = 3, zstd = 3, gzip = 4 }`: the level of each coding (gzip 1-9,
    /// br 0-11, zstd 1-19); these are the defaults.
    pub levels: BTreeMap<String, Spanned<i32>>,
}

impl Default for CompressionConfig {
    fn default() -> Self {
        let spanned = |names: &[&str]| {
            names
                .iter()
                .map(|n| Spanned::new(0..0, n.to_string()))
                .collect()
        };
        Self {
            enabled: true,
            encodings: spanned(&["br", "zstd", "gzip"]),
            min_bytes: 1024,
            content_types: spanned(&[
                "text/*",
                "application/json",
                "application/javascript",
                "application/xml",
                "image/svg+xml",
            ]),
            levels: BTreeMap::new(),
        }
    }
}

fn default_route_timeout_ms() -> u64 {
    30_000
}

/// `[[routes.plugins]]`: one plugin in a route's chain.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginRef {
    /// `name = "headers"`: the plugin, file `NAME.wasm` in the plugin directory.
    pub name: Spanned<String>,
    /// `config = { … }`: handed to the plugin's `configure` as JSON.
    #[serde(default)]
    pub config: Option<toml::Table>,
    /// `on_error = "skip"`: overrides the route's `on_error` for this plugin.
    #[serde(default)]
    pub on_error: Option<OnError>,
}

/// What happens to a response body too large to buffer for the chain's plugins.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LargeResponses {
    /// 502 `BAD_GATEWAY`: no response leaves unread by a plugin that asked to read it.
    #[default]
    Fail,
    /// Stream it to the client; the plugins see no body.
    Stream,
}

/// What a plugin failure does to the request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Fail closed: the request gets a 500 `PLUGIN_ERROR` envelope.
    #[default]
    Fail,
    /// Fail open: skip the plugin and carry on.
    Skip,
}

/// Which listener serves a route.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Listener {
    /// The client-facing listener (`[gateway] listen`).
    #[default]
    Gateway,
    /// The admin listener (`[admin] listen`).
    Admin,
}
