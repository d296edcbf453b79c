//! The runtime snapshot: everything a request needs (route table, routes with their
//! configured plugin chains, services, every plugin in the plugin directory), built
//! whole from a validated config and the plugin files, off the request path. A request
//! holds the snapshot it started with until it finishes; a reload builds a new one and
//! swaps it in.
//!
//! [`Sources`] are the inputs as read from disk (the config and the bytes of every
//! plugin file); their fingerprint tells a reload whether anything changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use crate::allowlist::{Allowlist, EndpointPattern};
use crate::compress::CompressionPolicy;
use crate::config::{
    CertificateSettings, Config, ConfigError, Limits, Listener, LoadedConfig, OnError,
    PluginSettings,
};
use crate::plugin::{
    FailureKind, Grants, InstancePool, LoadError, LoadedPlugin, OutboundCalls, PluginFailure,
    PluginRuntime, Secrets, Targets, content_hash,
};
use crate::router::{PathPattern, RouteMatcher, RouteTable};
use crate::state::{StateError, StateStore};
use crate::tls::{CaFile, CertificateFiles, ClientCaFile, UpstreamTlsFiles};
use crate::upstream::Service;
use crate::upstream::retry::RetryPolicy;
use serde_spanned::Spanned;

/// Why a snapshot could not be built. Each names the file (and line) it comes from.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The config file is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The plugin directory could not be listed.
    #[error("plugin_dir {dir}: cannot list it: {source}")]
    PluginDir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A plugin file could not be loaded.
    #[error("{place}: plugin {plugin:?} cannot be loaded: {source}")]
    Load {
        /// The plugin file.
        place: String,
        /// The plugin.
        plugin: String,
        /// Why.
        source: LoadError,
    },
    /// A plugin refused a route's config, or failed (trapped, ran out of time or
    /// memory, could not be instantiated) while being configured.
    #[error(
        "{place}: route {route:?}: plugin {plugin:?} {}",
        configure_failure(source)
    )]
    Configure {
        /// `file:line` of the plugin entry.
        place: String,
        /// The route.
        route: String,
        /// The plugin.
        plugin: String,
        /// What happened, with the plugin's message.
        source: Box<PluginFailure>,
    },
    /// A granted secret could not be read.
    #[error("{place}: plugin {plugin:?}: secret {name:?}: {reason}")]
    Secret {
        /// `file:line` of the secret's grant.
        place: String,
        /// The plugin.
        plugin: String,
        /// The secret's name.
        name: String,
        /// Why.
        reason: String,
    },
    /// A route uses a plugin that is not in the plugin directory (any more).
    #[error("{place}: route {route:?}: unknown plugin {plugin:?}: there is no {plugin}.wasm in {dir}", dir = dir.display())]
    Missing {
        /// `file:line` of the route's reference to the plugin.
        place: String,
        /// The plugin directory.
        dir: PathBuf,
        /// The route.
        route: String,
        /// The plugin.
        plugin: String,
    },
    /// The state store failed.
    #[error("state store: {0}")]
    State(#[from] StateError),
    /// A certificate, key or CA file (`[gateway.tls]`, or a service's) could not be
    /// read or used.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

impl SnapshotError {
    /// The plugin this error is about, if it is about one.
    pub fn plugin(&self) -> Option<&str> {
        match self {
            Self::Load { plugin, .. }
            | Self::Configure { plugin, .. }
            | Self::Missing { plugin, .. }
            | Self::Secret { plugin, .. } => Some(plugin),
            Self::Config(_) | Self::PluginDir { .. } | Self::State(_) | Self::Tls(_) => None,
        }
    }
}

/// How a failed `configure` reads to the operator: a refusal is the plugin's verdict
/// on the config; anything else is the plugin failing, and says how.
fn configure_failure(failure: &PluginFailure) -> String {
    match failure.kind {
        FailureKind::Configure => format!("refused its config: {}", failure.detail),
        kind => format!(
            "failed while being configured ({}): {}",
            kind.as_str(),
            failure.detail
        ),
    }
}

/// One plugin file as read from the plugin directory.
pub struct PluginFile {
    /// The plugin's name: the file stem.
    pub name: String,
    /// The file.
    pub path: PathBuf,
    /// SHA-256 of the bytes, hex.
    pub hash: String,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// What a snapshot is built from, read from disk in one go.
pub struct Sources {
    /// The validated config.
    pub config: LoadedConfig,
    /// Every plugin file in the plugin directory, by name.
    pub plugins: BTreeMap<String, PluginFile>,
    /// The secrets granted to each plugin (`[plugins.NAME] secrets`), read now.
    pub secrets: BTreeMap<String, Arc<Secrets>>,
    /// The `[gateway.tls]` certificates and keys, read now.
    pub tls: Option<Vec<CertificateFiles>>,
    /// The `[gateway.tls] client_ca` file, read now.
    pub client_ca: Option<ClientCaFile>,
    /// Each service's `ca_file`, `client_cert` and `client_key`, read now, by service
    /// name (only services that set one).
    pub upstream_tls: BTreeMap<String, UpstreamTlsFiles>,
}

impl Sources {
    /// Reads and validates the config at `file`, lets `settle` adjust it (a reload
    /// puts back the sections that only a restart changes), then reads what it names:
    /// every plugin file in its plugin directory, the granted secrets, the TLS
    /// certificates and keys, and the services' CA files. Names that are not `NAME.wasm` with a valid plugin name are
    /// ignored (so `.x.wasm.tmp` while an upload is in progress is never loaded).
    pub fn read(file: &Path, settle: impl FnOnce(&mut Config)) -> Result<Self, SnapshotError> {
        let mut config = LoadedConfig::load(file)?;
        settle(&mut config.config);
        let dir = config.config.gateway.plugin_dir.clone();
        let plugins =
            read_plugin_dir(&dir).map_err(|source| SnapshotError::PluginDir { dir, source })?;
        let secrets = read_secrets(&config)?;
        let tls = read_tls(&config)?;
        let client_ca = read_client_ca(&config)?;
        let upstream_tls = read_upstream_tls(&config)?;
        Ok(Self {
            config,
            plugins,
            secrets,
            tls,
            client_ca,
            upstream_tls,
        })
    }

    /// A digest of the config text, every plugin's name and hash, and every granted
    /// secret: equal fingerprints build equal snapshots.
    pub fn fingerprint(&self) -> String {
        let mut digest = Sha256::new();
        digest.update(self.config.text.as_bytes());
        for (name, file) in &self.plugins {
            digest.update([0]);
            digest.update(name.as_bytes());
            digest.update([0]);
            digest.update(file.hash.as_bytes());
        }
        for (plugin, secrets) in &self.secrets {
            for (name, value) in secrets.iter() {
                digest.update([1]);
                digest.update(plugin.as_bytes());
                digest.update([0]);
                digest.update(name.as_bytes());
                digest.update([0]);
                digest.update(Sha256::digest(value));
            }
        }
        for files in self.tls.iter().flatten() {
            digest.update([2]);
            digest.update(Sha256::digest(&files.cert_pem));
            digest.update(Sha256::digest(&files.key_pem));
        }
        if let Some(ca) = &self.client_ca {
            digest.update([4]);
            digest.update([u8::from(ca.required)]);
            digest.update(Sha256::digest(&ca.file.pem));
        }
        for (service, files) in &self.upstream_tls {
            digest.update([3]);
            digest.update(service.as_bytes());
            for pem in [
                files.ca.as_ref().map(|ca| &ca.pem),
                files.identity.as_ref().map(|i| &i.cert_pem),
                files.identity.as_ref().map(|i| &i.key_pem),
            ] {
                digest.update([0]);
                digest.update(pem.map(Sha256::digest).unwrap_or_default());
            }
        }
        hex::encode(digest.finalize())
    }
}

/// Reads every secret granted in `[plugins.NAME] secrets`: a missing environment
/// variable or an unreadable file is an error at the secret's line.
fn read_secrets(loaded: &LoadedConfig) -> Result<BTreeMap<String, Arc<Secrets>>, SnapshotError> {
    let mut all = BTreeMap::new();
    for (plugin, settings) in &loaded.config.plugins {
        let mut secrets = Secrets::new();
        for (name, source) in &settings.get_ref().secrets {
            let fail = |reason: String| SnapshotError::Secret {
                place: loaded.place(source.span().start),
                plugin: plugin.clone(),
                name: name.clone(),
                reason,
            };
            let value = source.get_ref().read().map_err(fail)?;
            if value.is_empty() {
                return Err(fail("it is empty".into()));
            }
            secrets.insert(name.clone(), value.into());
        }
        all.insert(plugin.clone(), Arc::new(secrets));
    }
    Ok(all)
}

/// Reads the certificate and key files of `[gateway.tls]`; an unreadable one is an
/// error at its entry's line.
fn read_tls(loaded: &LoadedConfig) -> Result<Option<Vec<CertificateFiles>>, SnapshotError> {
    let Some(tls) = &loaded.config.gateway.tls else {
        return Ok(None);
    };
    let mut all = Vec::new();
    for entry in &tls.get_ref().certificates {
        let CertificateSettings { cert, key } = entry.get_ref();
        all.push(CertificateFiles::read(
            loaded.place(entry.span().start),
            "gateway.tls".into(),
            ["certificate"; 2],
            cert.clone(),
            key.clone(),
        )?);
    }
    Ok(Some(all))
}

/// Reads `[gateway.tls] client_ca`; an unreadable file is an error at its line.
fn read_client_ca(loaded: &LoadedConfig) -> Result<Option<ClientCaFile>, SnapshotError> {
    let Some(tls) = &loaded.config.gateway.tls else {
        return Ok(None);
    };
    let tls = tls.get_ref();
    let Some(file) = &tls.client_ca else {
        return Ok(None);
    };
    Ok(Some(ClientCaFile {
        file: CaFile::read(
            loaded.place(file.span().start),
            "gateway.tls".into(),
            "client_ca",
            file.get_ref().clone(),
        )?,
        required: tls.client_certificates == crate::config::ClientCertificates::Required,
    }))
}

/// Reads each service's `ca_file`, `client_cert` and `client_key` (services without
/// them are left out); an unreadable one is an error at its line.
fn read_upstream_tls(
    loaded: &LoadedConfig,
) -> Result<BTreeMap<String, UpstreamTlsFiles>, SnapshotError> {
    let mut all = BTreeMap::new();
    for (name, service) in &loaded.config.services {
        let service = service.get_ref();
        let section = format!("services.{name}");
        let ca = service
            .ca_file
            .as_ref()
            .map(|file| {
                let place = loaded.place(file.span().start);
                CaFile::read(place, section.clone(), "ca_file", file.get_ref().clone())
            })
            .transpose()?;
        let identity = match (&service.client_cert, &service.client_key) {
            (Some(cert), Some(key)) => Some(CertificateFiles::read(
                loaded.place(cert.span().start),
                section.clone(),
                ["client_cert", "client_key"],
                cert.get_ref().clone(),
                key.get_ref().clone(),
            )?),
            _ => None,
        };
        if ca.is_some() || identity.is_some() {
            all.insert(name.clone(), UpstreamTlsFiles { ca, identity });
        }
    }
    Ok(all)
}

/// Whether `name` is a file the plugin directory loads, and the plugin name if so.
pub fn plugin_file_name(name: &str) -> Option<&str> {
    let stem = name.strip_suffix(".wasm")?;
    crate::config::is_plugin_name(stem).then_some(stem)
}

fn read_plugin_dir(dir: &Path) -> std::io::Result<BTreeMap<String, PluginFile>> {
    let mut plugins = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let file_name = entry.file_name();
        let Some(name) = file_name.to_str().and_then(plugin_file_name) else {
            continue;
        };
        let path = entry.path();
        if !path.is_file() {
            continue;
        }
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            // Removed between listing and reading: it is gone.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => return Err(error),
        };
        plugins.insert(
            name.to_string(),
            PluginFile {
                name: name.to_string(),
                path,
                hash: content_hash(&bytes),
                bytes,
            },
        );
    }
    Ok(plugins)
}

/// One plugin in a route's chain.
pub struct ChainPlugin {
    /// Instances configured for this route.
    pub pool: InstancePool,
    /// What a failure of this plugin does.
    pub on_error: OnError,
    /// The plugin buffers request bodies.
    pub request_body: bool,
    /// The plugin buffers response bodies.
    pub response_body: bool,
    /// The plugin is not called in the response phase.
    pub request_only: bool,
    /// The plugin is called in the log phase.
    pub log: bool,
    /// It comes from `[[global.plugins]]`, not the route's own chain.
    pub global: bool,
}

/// A route ready to serve.
pub struct Route {
    /// The route's name.
    pub name: Arc<str>,
    /// Its path matcher (also used to strip the prefix).
    pub pattern: PathPattern,
    /// Remove the prefix before calling the upstream.
    pub strip_prefix: bool,
    /// The upstream service and its weight: one (`service`), several that share the
    /// requests by weight (`services`), or none.
    pub services: Vec<(Arc<Service>, u32)>,
    /// Time allowed for the upstream's response headers.
    pub timeout: Duration,
    /// Cap on buffered bodies.
    pub max_body_bytes: usize,
    /// What a response body over the cap does (when a plugin reads response bodies).
    pub large_responses: crate::config::LargeResponses,
    /// Send the client's `Host` upstream.
    pub preserve_host: bool,
    /// When failed upstream calls are tried again.
    pub retry: Arc<RetryPolicy>,
    /// The listener that serves it.
    pub listener: Listener,
    /// The plugin chain, in request order.
    pub chain: Vec<ChainPlugin>,
    /// Some plugin in the chain reads request bodies.
    pub needs_request_body: bool,
    /// Some plugin in the chain has a log phase.
    pub logs: bool,
    /// How its responses are compressed, when they are.
    pub compression: Option<CompressionPolicy>,
    /// How it relays WebSockets, when it does.
    pub websocket: Option<crate::websocket::Policy>,
}

impl Route {
    /// The service for one request: the route's own, or one of its `services` drawn
    /// at random by weight.
    pub fn pick_service(&self) -> Option<&Arc<Service>> {
        match self.services.as_slice() {
            [] => None,
            [(one, _)] => Some(one),
            split => {
                let total: u32 = split.iter().map(|(_, weight)| weight).sum();
                let mut ticket = fastrand::u32(0..total.max(1));
                split
                    .iter()
                    .find(|(_, weight)| {
                        let here = ticket < *weight;
                        ticket = ticket.saturating_sub(*weight);
                        here
                    })
                    .map(|(service, _)| service)
            }
        }
    }
}

/// Everything a request needs, swapped whole on reload.
pub struct Snapshot {
    /// Counts up from 1 with each applied config.
    pub generation: u64,
    /// When it was built.
    pub loaded_at: SystemTime,
    /// The [`Sources::fingerprint`] it was built from.
    pub fingerprint: String,
    /// The config it was built from.
    pub config: LoadedConfig,
    /// Route lookup for the gateway listener.
    pub table: RouteTable,
    /// Route lookup for the admin listener (`listener = "admin"` routes).
    pub admin_table: RouteTable,
    /// Routes in config order (the table's indexes).
    pub routes: Vec<Route>,
    /// Request limits.
    pub limits: Limits,
    /// Every plugin in the plugin directory, by name.
    pub plugins: BTreeMap<String, LoadedPlugin>,
    /// The upstream services, by name.
    pub services: BTreeMap<String, Arc<Service>>,
    /// The gateway listener's TLS config, when `[gateway.tls]` is set.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Snapshot {
    /// Builds a snapshot from `sources`: loads every plugin file (taking those whose
    /// hash is unchanged from `previous` as they are), configures each for the routes
    /// that use it, and makes the services. Compilation runs on a blocking thread.
    pub async fn build(
        sources: Sources,
        runtime: &PluginRuntime,
        state: &StateStore,
        generation: u64,
        previous: Option<&Snapshot>,
    ) -> Result<Self, SnapshotError> {
        let fingerprint = sources.fingerprint();
        let Sources {
            config: loaded,
            plugins: files,
            secrets,
            tls,
            client_ca,
            upstream_tls,
        } = sources;
        // Before the plugins: a bad certificate refuses the build at once.
        let tls = tls
            .as_deref()
            .map(|certificates| crate::tls::server_config(certificates, client_ca.as_ref()))
            .transpose()?;
        let plugins = load_plugins(files, runtime, previous).await?;
        let config = &loaded.config;
        // The pooled client for endpoints that plugins choose (`continue-to`).
        let direct = Arc::new(Service::new(
            "",
            Vec::new(),
            Duration::from_millis(crate::config::default_connect_timeout_ms()),
            None,
            runtime.metrics().clone(),
        ));
        let mut services: BTreeMap<String, Arc<Service>> = BTreeMap::new();
        for (name, service) in &config.services {
            let tls = crate::tls::upstream_config(
                upstream_tls
                    .get(name)
                    .unwrap_or(&UpstreamTlsFiles::default()),
            )?;
            let before = previous.and_then(|p| p.services.get(name)).map(|s| &**s);
            let service = Service::from_config(
                name,
                service.get_ref(),
                runtime.metrics().clone(),
                before,
                tls,
            );
            services.insert(name.clone(), Arc::new(service));
        }

        let mut routes = Vec::with_capacity(config.routes.len());
        let mut matchers = Vec::with_capacity(config.routes.len());
        let mut admin_matchers = Vec::new();
        for route in &config.routes {
            let name: Arc<str> = route.name.get_ref().as_str().into();
            let entries = config.chain(route);
            let mut chain = Vec::with_capacity(entries.len());
            for entry in entries {
                let plugin_name = entry.name.get_ref();
                let place = loaded.place(entry.name.span().start);
                let Some(plugin) = plugins.get(plugin_name) else {
                    return Err(SnapshotError::Missing {
                        place,
                        dir: config.gateway.plugin_dir.clone(),
                        route: name.to_string(),
                        plugin: plugin_name.clone(),
                    });
                };
                let settings = config
                    .plugins
                    .get(plugin_name)
                    .map(|s| s.get_ref().clone())
                    .unwrap_or_default();
                let granted_secrets = secrets.get(plugin_name).cloned().unwrap_or_default();
                let grants = grants(
                    &settings,
                    plugin_name,
                    &name,
                    state,
                    &services,
                    granted_secrets,
                    &direct,
                )?;
                let json = serde_json::to_string(&entry.config.cloned().unwrap_or_default())
                    .expect("TOML values serialise as JSON");
                let pool = plugin
                    .configure(
                        json,
                        grants,
                        Duration::from_millis(settings.timeout_ms),
                        settings.instances,
                    )
                    .await
                    .map_err(|failure: PluginFailure| SnapshotError::Configure {
                        place,
                        route: name.to_string(),
                        plugin: plugin_name.clone(),
                        source: Box::new(failure),
                    })?;
                let wants = pool.settings();
                chain.push(ChainPlugin {
                    pool,
                    on_error: entry.on_error.unwrap_or(route.on_error),
                    request_body: wants.request_body,
                    response_body: wants.response_body,
                    request_only: wants.request_only,
                    log: wants.log,
                    global: entry.global,
                });
            }
            let pattern = match (&route.path, &route.prefix) {
                (Some(path), _) => PathPattern::parse_exact(path.get_ref()),
                (None, Some(prefix)) => PathPattern::parse_prefix(prefix.get_ref()),
                (None, None) => unreachable!("validated: a route has a path or a prefix"),
            }
            .expect("validated pattern");
            let table = match route.listener {
                Listener::Gateway => &mut matchers,
                Listener::Admin => &mut admin_matchers,
            };
            table.push((
                routes.len(),
                RouteMatcher {
                    host: route
                        .host
                        .as_ref()
                        .map(|h| h.get_ref().to_ascii_lowercase()),
                    methods: route.methods.as_ref().map(|m| {
                        m.get_ref()
                            .iter()
                            .map(|m| {
                                http::Method::from_bytes(m.as_bytes()).expect("validated method")
                            })
                            .collect()
                    }),
                    pattern: pattern.clone(),
                    case_insensitive: route.case_insensitive,
                    conditions: crate::config::route_conditions(route)
                        .map(|c| c.expect("validated conditions"))
                        .collect(),
                },
            ));
            let compression = route.compression.as_ref().and_then(|table| {
                CompressionPolicy::new(&name, table.get_ref(), runtime.metrics())
            });
            routes.push(Route {
                name,
                pattern,
                strip_prefix: route.strip_prefix,
                services: match (&route.service, &route.services) {
                    (Some(one), _) => vec![(services[one.get_ref()].clone(), 1)],
                    (None, Some(split)) => split
                        .get_ref()
                        .iter()
                        .map(|w| (services[w.name.get_ref()].clone(), w.weight))
                        .collect(),
                    (None, None) => Vec::new(),
                },
                timeout: Duration::from_millis(route.timeout_ms),
                max_body_bytes: route.max_body_bytes.unwrap_or(config.limits.max_body_bytes),
                large_responses: route.large_responses,
                preserve_host: route.preserve_host,
                retry: Arc::new(RetryPolicy::new(
                    &route
                        .retry
                        .as_ref()
                        .map(|r| r.get_ref().clone())
                        .unwrap_or_default(),
                )),
                listener: route.listener,
                needs_request_body: chain.iter().any(|p| p.request_body),
                logs: chain.iter().any(|p| p.log),
                chain,
                compression,
                websocket: route
                    .websocket
                    .as_ref()
                    .map(|table| table.get_ref())
                    .filter(|table| table.enabled)
                    .map(|table| crate::websocket::Policy {
                        idle_timeout: Duration::from_millis(table.idle_timeout_ms),
                        max_message_bytes: table.max_message_bytes,
                    }),
            });
        }
        Ok(Self {
            generation,
            loaded_at: SystemTime::now(),
            fingerprint,
            table: RouteTable::with_indexes(matchers),
            admin_table: RouteTable::with_indexes(admin_matchers),
            routes,
            limits: config.limits.clone(),
            plugins,
            services,
            tls,
            config: loaded,
        })
    }
}

/// Loads every plugin file: unchanged ones (same name and hash as in `previous`) are
/// reused with their counters; the rest are compiled (or taken from the disk cache)
/// on a blocking thread.
async fn load_plugins(
    files: BTreeMap<String, PluginFile>,
    runtime: &PluginRuntime,
    previous: Option<&Snapshot>,
) -> Result<BTreeMap<String, LoadedPlugin>, SnapshotError> {
    let mut plugins = BTreeMap::new();
    for (name, file) in files {
        if let Some(plugin) = previous
            .and_then(|p| p.plugins.get(&name))
            .filter(|p| *p.hash == file.hash)
        {
            plugins.insert(name, plugin.clone());
            continue;
        }
        let runtime = runtime.clone();
        let PluginFile {
            name,
            path,
            hash,
            bytes,
        } = file;
        let (name, result) = tokio::task::spawn_blocking(move || {
            let result = runtime.load_hashed(&name, &hash, &bytes);
            (name, result)
        })
        .await
        .expect("plugin compilation does not panic");
        let plugin = result.map_err(|source| SnapshotError::Load {
            place: path.display().to_string(),
            plugin: name.clone(),
            source,
        })?;
        tracing::info!(
            plugin = %name,
            hash = plugin.short_hash(),
            wit = %plugin.wit_version,
            compile_ms = format!("{:.1}", plugin.compile_ms),
            cache = plugin.cache.as_str(),
            "plugin loaded"
        );
        plugins.insert(name, plugin);
    }
    Ok(plugins)
}

/// What the operator granted `plugin` when it serves `route`.
fn grants(
    settings: &PluginSettings,
    plugin: &str,
    route: &Arc<str>,
    state: &StateStore,
    services: &BTreeMap<String, Arc<Service>>,
    secrets: Arc<Secrets>,
    direct: &Arc<Service>,
) -> Result<Grants, SnapshotError> {
    let namespace = settings.kv_namespace.as_deref().unwrap_or(plugin);
    let named = |list: &[Spanned<String>]| -> std::collections::HashMap<String, Arc<Service>> {
        list.iter()
            .map(|s| (s.get_ref().clone(), services[s.get_ref()].clone()))
            .collect()
    };
    let patterns = settings
        .upstreams
        .iter()
        .map(|p| EndpointPattern::parse(p.get_ref()).expect("validated upstream pattern"))
        .collect::<Vec<_>>();
    let direct = (!patterns.is_empty()).then(|| direct.clone());
    Ok(Grants {
        plugin: plugin.into(),
        route: route.clone(),
        kv: state.namespace(namespace)?,
        kv_durable: settings.kv_durable,
        http: OutboundCalls::new(named(&settings.http)),
        targets: Targets::new(named(&settings.services), Allowlist::new(patterns), direct),
        memory_limit: (settings.memory_limit_mb as usize) << 20,
        secrets,
    })
}

impl Snapshot {
    /// The route table of `listener`.
    pub fn table(&self, listener: Listener) -> &RouteTable {
        match listener {
            Listener::Gateway => &self.table,
            Listener::Admin => &self.admin_table,
        }
    }
}
