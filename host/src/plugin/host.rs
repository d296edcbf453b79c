//! What a plugin instance may reach: the store data behind each instance and the host
//! side of the WIT imports (`log`, `clock`, `kv`, `http`, `metrics`, `secrets`; the
//! `exchange` resource is in `exchange.rs`), plus the memory limiter. WASI is linked only because Rust's standard library imports it; the WASI
//! context grants nothing (no preopened directories, no sockets, no environment).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::{clock, http, kv, log, metrics, secrets, types};
use super::outbound::OutboundCalls;
use crate::metrics::{Metrics, PluginValue};
use crate::state::Namespace;

pub use super::outbound::Targets;

/// Everything one instance's host calls need, fixed when the instance is made.
pub struct Grants {
    /// The plugin's name, for log lines.
    pub plugin: Arc<str>,
    /// The route the instance serves, for log lines.
    pub route: Arc<str>,
    /// The plugin's `kv` namespace.
    pub kv: Namespace,
    /// Whether every `kv` write is durable (`kv_durable = true`).
    pub kv_durable: bool,
    /// Outbound calls to the services granted to the plugin.
    pub http: OutboundCalls,
    /// Where the plugin may send a request instead of the route's service.
    pub targets: Targets,
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
    /// The request id of the current call, for log lines.
    pub request_id: String,
    /// The trace id of the current call, for log lines.
    pub trace_id: String,
    /// When the current call's time runs out, and how long it was given.
    pub call_deadline: Option<(Instant, Duration)>,
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
            request_id: String::new(),
            trace_id: String::new(),
            call_deadline: None,
            metrics,
        }
    }
}

impl HostState {
    /// The instance's resource table (WASI's resources and lent exchanges).
    pub fn table_mut(&mut self) -> &mut ResourceTable {
        &mut self.table
    }

    /// The grants of the instance.
    pub fn grants(&self) -> &Arc<Grants> {
        &self.grants
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
    async fn write(
        &mut self,
        level: log::Level,
        message: String,
        fields: Vec<(String, log::Value)>,
    ) {
        let level = match level {
            log::Level::Trace => tracing::Level::TRACE,
            log::Level::Debug => tracing::Level::DEBUG,
            log::Level::Info => tracing::Level::INFO,
            log::Level::Warn => tracing::Level::WARN,
            log::Level::Error => tracing::Level::ERROR,
        };
        let fields = crate::logging::PluginFields::new(fields.into_iter().map(|(name, value)| {
            let value = match value {
                log::Value::Text(text) => serde_json::Value::from(text),
                log::Value::Int(n) => n.into(),
                log::Value::Float(f) => {
                    serde_json::Number::from_f64(f).map_or(serde_json::Value::Null, Into::into)
                }
                log::Value::Flag(b) => b.into(),
            };
            (name, value)
        }));
        crate::logging::plugin_line(
            level,
            &self.grants.plugin,
            &self.grants.route,
            &self.request_id,
            &self.trace_id,
            &message,
            &fields,
        );
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

fn kv_error(error: crate::state::StateError) -> kv::KvError {
    use crate::state::StateError;
    match error {
        StateError::NotAnInteger(_) => kv::KvError::NotAnInteger,
        StateError::Overflow(_) => kv::KvError::Overflow,
        other => kv::KvError::Store(other.to_string()),
    }
}

/// Makes a write durable when asked or when the plugin's namespace is. (A free
/// function over the grants: a future holding `&HostState` would not be `Send`.)
async fn settle(grants: Arc<Grants>, durable: bool) -> Result<(), kv::KvError> {
    if durable || grants.kv_durable {
        grants.kv.flush().await.map_err(kv_error)?;
    }
    Ok(())
}

impl kv::Host for HostState {
    async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, kv::KvError> {
        self.grants.kv.get(&key).await.map_err(kv_error)
    }

    async fn set(
        &mut self,
        key: String,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
        durable: bool,
    ) -> Result<(), kv::KvError> {
        self.grants
            .kv
            .set(&key, &value, ttl_ms)
            .await
            .map_err(kv_error)?;
        settle(self.grants.clone(), durable).await
    }

    async fn incr(
        &mut self,
        key: String,
        delta: i64,
        ttl_ms: Option<u64>,
    ) -> Result<i64, kv::KvError> {
        let value = self
            .grants
            .kv
            .incr(&key, delta, ttl_ms)
            .await
            .map_err(kv_error)?;
        settle(self.grants.clone(), false).await?;
        Ok(value)
    }

    async fn delete(&mut self, key: String, durable: bool) -> Result<bool, kv::KvError> {
        let existed = self.grants.kv.delete(&key).await.map_err(kv_error)?;
        settle(self.grants.clone(), durable).await?;
        Ok(existed)
    }

    async fn insert(
        &mut self,
        key: String,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
        durable: bool,
    ) -> Result<bool, kv::KvError> {
        let stored = self
            .grants
            .kv
            .insert(&key, &value, ttl_ms)
            .await
            .map_err(kv_error)?;
        if stored {
            settle(self.grants.clone(), durable).await?;
        }
        Ok(stored)
    }

    async fn compare_and_swap(
        &mut self,
        key: String,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
        durable: bool,
    ) -> Result<bool, kv::KvError> {
        let swapped = self
            .grants
            .kv
            .compare_and_swap(&key, expected.as_deref(), &value, ttl_ms)
            .await
            .map_err(kv_error)?;
        if swapped {
            settle(self.grants.clone(), durable).await?;
        }
        Ok(swapped)
    }

    async fn scan(
        &mut self,
        prefix: String,
        after: Option<String>,
        limit: u32,
    ) -> Result<Vec<(String, Vec<u8>)>, kv::KvError> {
        let limit = (limit as usize).min(MAX_SCAN);
        self.grants
            .kv
            .scan(&prefix, after.as_deref(), limit)
            .await
            .map_err(kv_error)
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
    ) -> Result<http::OutboundResponse, http::HttpError> {
        // A slow service is answered `timeout` with a tenth of the call's time left, so
        // the plugin can still tell its client (a 504, say) before its own deadline.
        let Some((deadline, given)) = self.call_deadline else {
            return self.grants.http.send(request).await;
        };
        let within = deadline
            .saturating_duration_since(Instant::now())
            .saturating_sub(given / 10);
        tokio::time::timeout(within, self.grants.http.send(request))
            .await
            .unwrap_or(Err(http::HttpError::Timeout))
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
