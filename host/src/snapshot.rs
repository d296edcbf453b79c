//! The runtime snapshot: everything a request needs (route table, routes with their
//! configured plugin chains, services), built whole from a validated config, off the
//! request path. A request holds the snapshot it started with until it finishes; a
//! reload builds a new one and swaps it in.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::config::{Limits, LoadedConfig, OnError, PluginSettings};
use crate::plugin::{Grants, InstancePool, LoadError, LoadedPlugin, PluginFailure, PluginRuntime};
use crate::router::{PathPattern, RouteMatcher, RouteTable};
use crate::state::{StateError, StateStore};
use crate::upstream::{Endpoint, OutboundCalls, Service};

/// Why a snapshot could not be built. Each names the config place it comes from.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A plugin file could not be loaded.
    #[error("{place}: plugin {plugin:?} cannot be loaded: {source}")]
    Load {
        /// `file:line` of the route's reference to the plugin.
        place: String,
        /// The plugin.
        plugin: String,
        /// Why.
        source: LoadError,
    },
    /// A plugin refused a route's config, or could not be instantiated.
    #[error("{place}: route {route:?}: plugin {plugin:?} refused its config: {detail}")]
    Configure {
        /// `file:line` of the plugin entry.
        place: String,
        /// The route.
        route: String,
        /// The plugin.
        plugin: String,
        /// The plugin's message.
        detail: String,
    },
    /// The state store failed.
    #[error("state store: {0}")]
    State(#[from] StateError),
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
}

/// A route ready to serve.
pub struct Route {
    /// The route's name.
    pub name: Arc<str>,
    /// Its path matcher (also used to strip the prefix).
    pub pattern: PathPattern,
    /// Remove the prefix before calling the upstream.
    pub strip_prefix: bool,
    /// The upstream service, if any.
    pub service: Option<Arc<Service>>,
    /// Time allowed for the upstream's response headers.
    pub timeout: Duration,
    /// Cap on buffered bodies.
    pub max_body_bytes: usize,
    /// Send the client's `Host` upstream.
    pub preserve_host: bool,
    /// The plugin chain, in request order.
    pub chain: Vec<ChainPlugin>,
    /// Some plugin in the chain reads request bodies.
    pub needs_request_body: bool,
}

/// Everything a request needs, swapped whole on reload.
pub struct Snapshot {
    /// Counts up from 1 with each applied config.
    pub generation: u64,
    /// When it was built.
    pub loaded_at: SystemTime,
    /// Route lookup.
    pub table: RouteTable,
    /// Routes in config order (the table's indexes).
    pub routes: Vec<Route>,
    /// Request limits.
    pub limits: Limits,
    /// The plugins loaded for this snapshot, by name.
    pub plugins: HashMap<String, LoadedPlugin>,
}

impl Snapshot {
    /// Builds a snapshot from `loaded`: loads every plugin the routes use, configures
    /// each for its routes, and makes the services.
    pub async fn build(
        loaded: &LoadedConfig,
        runtime: &PluginRuntime,
        state: &StateStore,
        generation: u64,
    ) -> Result<Self, SnapshotError> {
        let config = &loaded.config;
        let services: HashMap<String, Arc<Service>> = config
            .services
            .iter()
            .map(|(name, service)| {
                let service = service.get_ref();
                let endpoints = service
                    .endpoints
                    .iter()
                    .map(|e| Endpoint::parse(e.get_ref()).expect("validated endpoint"))
                    .collect();
                let connect = Duration::from_millis(service.connect_timeout_ms);
                (
                    name.clone(),
                    Arc::new(Service::new(name, endpoints, connect)),
                )
            })
            .collect();

        let mut plugins: HashMap<String, LoadedPlugin> = HashMap::new();
        let mut routes = Vec::with_capacity(config.routes.len());
        let mut matchers = Vec::with_capacity(config.routes.len());
        for route in &config.routes {
            let name: Arc<str> = route.name.get_ref().as_str().into();
            let mut chain = Vec::with_capacity(route.plugins.len());
            for entry in &route.plugins {
                let plugin_name = entry.name.get_ref();
                let place = loaded.place(entry.name.span().start);
                let plugin = match plugins.get(plugin_name) {
                    Some(plugin) => plugin.clone(),
                    None => {
                        let path = config
                            .gateway
                            .plugin_dir
                            .join(format!("{plugin_name}.wasm"));
                        let plugin = runtime.load(plugin_name, &path).map_err(|source| {
                            SnapshotError::Load {
                                place: place.clone(),
                                plugin: plugin_name.clone(),
                                source,
                            }
                        })?;
                        tracing::info!(
                            plugin = %plugin_name,
                            hash = plugin.short_hash(),
                            wit = %plugin.wit_version,
                            compile_ms = format!("{:.1}", plugin.compile_ms),
                            "plugin loaded"
                        );
                        plugins.insert(plugin_name.clone(), plugin.clone());
                        plugin
                    }
                };
                let settings = config
                    .plugins
                    .get(plugin_name)
                    .map(|s| s.get_ref().clone())
                    .unwrap_or_default();
                let grants = grants(&settings, plugin_name, &name, state, &services)?;
                let json = serde_json::to_string(&entry.config.clone().unwrap_or_default())
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
                        detail: failure.detail,
                    })?;
                let wants = pool.settings();
                chain.push(ChainPlugin {
                    pool,
                    on_error: entry.on_error.unwrap_or(route.on_error),
                    request_body: wants.request_body,
                    response_body: wants.response_body,
                });
            }
            let pattern = match (&route.path, &route.prefix) {
                (Some(path), _) => PathPattern::parse_exact(path.get_ref()),
                (None, Some(prefix)) => PathPattern::parse_prefix(prefix.get_ref()),
                (None, None) => unreachable!("validated: a route has a path or a prefix"),
            }
            .expect("validated pattern");
            matchers.push(RouteMatcher {
                host: route
                    .host
                    .as_ref()
                    .map(|h| h.get_ref().to_ascii_lowercase()),
                methods: route.methods.as_ref().map(|m| {
                    m.get_ref()
                        .iter()
                        .map(|m| http::Method::from_bytes(m.as_bytes()).expect("validated method"))
                        .collect()
                }),
                pattern: pattern.clone(),
            });
            routes.push(Route {
                name,
                pattern,
                strip_prefix: route.strip_prefix,
                service: route
                    .service
                    .as_ref()
                    .map(|s| services[s.get_ref()].clone()),
                timeout: Duration::from_millis(route.timeout_ms),
                max_body_bytes: route.max_body_bytes.unwrap_or(config.limits.max_body_bytes),
                preserve_host: route.preserve_host,
                needs_request_body: chain.iter().any(|p| p.request_body),
                chain,
            });
        }
        Ok(Self {
            generation,
            loaded_at: SystemTime::now(),
            table: RouteTable::new(matchers),
            routes,
            limits: config.limits.clone(),
            plugins,
        })
    }
}

/// What the operator granted `plugin` when it serves `route`.
fn grants(
    settings: &PluginSettings,
    plugin: &str,
    route: &Arc<str>,
    state: &StateStore,
    services: &HashMap<String, Arc<Service>>,
) -> Result<Grants, SnapshotError> {
    let namespace = settings.kv_namespace.as_deref().unwrap_or(plugin);
    let granted = settings
        .http
        .iter()
        .map(|s| (s.get_ref().clone(), services[s.get_ref()].clone()))
        .collect();
    Ok(Grants {
        plugin: plugin.into(),
        route: route.clone(),
        kv: state.namespace(namespace)?,
        http: OutboundCalls::new(granted),
        memory_limit: (settings.memory_limit_mb as usize) << 20,
    })
}
