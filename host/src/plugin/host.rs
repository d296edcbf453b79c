//! What a plugin instance may reach: the store data behind each instance and the host
//! side of the WIT imports (`log`, `clock`, `kv`, `http`, `vars`), plus the memory
//! limiter. WASI is linked only because Rust's standard library imports it; the WASI
//! context grants nothing (no preopened directories, no sockets, no environment).

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::{clock, http, kv, log, metrics, secrets, types, vars};
use crate::metrics::{Metrics, PluginValue};
use crate::state::Namespace;
use crate::upstream::OutboundCalls;

/// The most variables one call may set.
const MAX_VARS_PER_CALL: usize = 64;
/// The most bytes of name and value one variable may hold.
const MAX_VAR_BYTES: usize = 8192;

/// Everything one instance's host calls need, fixed when the instance is made.
pub struct Grants {
    /// The plugin's name, for log lines.
    pub plugin: Arc<str>,
    /// The route the instance serves, for log lines.
    pub route: Arc<str>,
    /// The plugin's `kv` namespace.
    pub kv: Namespace,
    /// Outbound calls to the services granted to the plugin.
    pub http: OutboundCalls,
    /// The most linear memory the instance may grow to.
    pub memory_limit: usize,
    /// The secrets granted to the plugin, by name.
    pub secrets: Arc<Secrets>,
}

/// Secrets granted to one plugin: name → value.
pub type Secrets = std::collections::BTreeMap<String, Arc<[u8]>>;

/// The data of one plugin instance's store.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    grants: Arc<Grants>,
    /// Set when a memory growth was refused, to tell out-of-memory from other aborts.
    pub memory_refused: bool,
    /// Variables set by the current call through `vars.set`.
    pub vars_set: Vec<(String, String)>,
    /// The request id of the current call, for log lines.
    pub request_id: String,
    /// The trace id of the current call, for log lines.
    pub trace_id: String,
    metrics: Arc<Metrics>,
}

impl HostState {
    /// The state of a new instance with `grants`; the guest's stderr (where a Rust
    /// panic message goes) is kept in `stderr` for the failure log.
    pub fn new(grants: Arc<Grants>, stderr: MemoryOutputPipe, metrics: Arc<Metrics>) -> Self {
        Self {
            wasi: WasiCtx::builder().stderr(stderr).build(),
            table: ResourceTable::new(),
            grants,
            memory_refused: false,
            vars_set: Vec::new(),
            request_id: String::new(),
            trace_id: String::new(),
            metrics,
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl ResourceLimiter for HostState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.grants.memory_limit {
            self.memory_refused = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

impl types::Host for HostState {}

impl log::Host for HostState {
    async fn write(&mut self, level: log::Level, message: String) {
        let plugin = &*self.grants.plugin;
        let route = &*self.grants.route;
        let request_id = &*self.request_id;
        let trace_id = &*self.trace_id;
        match level {
            log::Level::Trace => {
                tracing::trace!(target: "plugin", plugin, route, request_id, trace_id, "{message}")
            }
            log::Level::Debug => {
                tracing::debug!(target: "plugin", plugin, route, request_id, trace_id, "{message}")
            }
            log::Level::Info => {
                tracing::info!(target: "plugin", plugin, route, request_id, trace_id, "{message}")
            }
            log::Level::Warn => {
                tracing::warn!(target: "plugin", plugin, route, request_id, trace_id, "{message}")
            }
            log::Level::Error => {
                tracing::error!(target: "plugin", plugin, route, request_id, trace_id, "{message}")
            }
        }
    }
}

/// The `clock.monotonic-ns` clock: nanoseconds since a fixed point in this process.
pub fn monotonic_ns() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

impl clock::Host for HostState {
    async fn now_unix_ms(&mut self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    async fn monotonic_ns(&mut self) -> u64 {
        monotonic_ns()
    }
}

impl kv::Host for HostState {
    async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, String> {
        self.grants.kv.get(&key).map_err(|e| e.to_string())
    }

    async fn set(
        &mut self,
        key: String,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> Result<(), String> {
        self.grants
            .kv
            .set(&key, &value, ttl_ms)
            .map_err(|e| e.to_string())
    }

    async fn incr(&mut self, key: String, delta: i64, ttl_ms: Option<u64>) -> Result<i64, String> {
        self.grants
            .kv
            .incr(&key, delta, ttl_ms)
            .map_err(|e| e.to_string())
    }

    async fn delete(&mut self, key: String) -> Result<bool, String> {
        self.grants.kv.delete(&key).map_err(|e| e.to_string())
    }

    async fn insert(
        &mut self,
        key: String,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> Result<bool, String> {
        self.grants
            .kv
            .insert(&key, &value, ttl_ms)
            .map_err(|e| e.to_string())
    }

    async fn scan(
        &mut self,
        prefix: String,
        after: Option<String>,
        limit: u32,
    ) -> Result<Vec<(String, Vec<u8>)>, String> {
        let limit = (limit as usize).min(MAX_SCAN);
        self.grants
            .kv
            .scan(&prefix, after.as_deref(), limit)
            .map_err(|e| e.to_string())
    }
}

/// Most entries one `kv.scan` returns.
const MAX_SCAN: usize = 1000;

impl secrets::Host for HostState {
    async fn get(&mut self, name: String) -> Option<Vec<u8>> {
        self.grants.secrets.get(&name).map(|value| value.to_vec())
    }
}

impl http::Host for HostState {
    async fn send(
        &mut self,
        request: http::OutboundRequest,
    ) -> Result<http::OutboundResponse, String> {
        self.grants.http.send(request).await
    }
}

impl HostState {
    fn record_metric(
        &self,
        name: &str,
        labels: Vec<(String, String)>,
        value: PluginValue,
    ) -> Result<(), String> {
        let result = self
            .metrics
            .record_plugin(&self.grants.plugin, name, labels, value);
        if let Err(why) = &result {
            tracing::debug!(plugin = &*self.grants.plugin, metric = name, error = %why, "metric refused");
        }
        result
    }
}

impl metrics::Host for HostState {
    async fn counter_add(
        &mut self,
        name: String,
        labels: Vec<(String, String)>,
        value: u64,
    ) -> Result<(), String> {
        self.record_metric(&name, labels, PluginValue::Counter(value))
    }

    async fn gauge_set(
        &mut self,
        name: String,
        labels: Vec<(String, String)>,
        value: f64,
    ) -> Result<(), String> {
        self.record_metric(&name, labels, PluginValue::Gauge(value))
    }

    async fn histogram_observe(
        &mut self,
        name: String,
        labels: Vec<(String, String)>,
        value: f64,
    ) -> Result<(), String> {
        self.record_metric(&name, labels, PluginValue::Histogram(value))
    }
}

impl vars::Host for HostState {
    async fn set(&mut self, name: String, value: String) {
        self.vars_set.retain(|(n, _)| *n != name);
        if self.vars_set.len() >= MAX_VARS_PER_CALL || name.len() + value.len() > MAX_VAR_BYTES {
            tracing::warn!(plugin = &*self.grants.plugin, var = %name, "variable dropped: over the limit");
            return;
        }
        self.vars_set.push((name, value));
    }
}
