//! The plugin runtime: one wasmtime engine narrowed to what plugins need, loading and
//! checking components, and pools of configured instances that serve calls.
//!
//! How it is used:
//! 1. [`PluginRuntime::new`] once: the engine (pooling allocator, epoch interruption),
//!    the linker with the host imports, and the epoch ticker thread.
//! 2. [`PluginRuntime::load`] per plugin file, off the request path: compile, check
//!    the WIT version, pre-instantiate.
//! 3. [`LoadedPlugin::configure`] per route that uses it: a pool of instances that
//!    ran `configure` with that route's config (the first one made at once, so a bad
//!    config is refused before it serves traffic).
//! 4. [`InstancePool::on_request`] / [`InstancePool::on_response`] per request: take
//!    an idle instance (or make one), lend it the request's [`ExchangeState`] for the
//!    call under a deadline, take the exchange back, put the instance back. Any trap
//!    or timeout discards the instance; the next call gets a fresh one.
//!    [`InstancePool::on_log`] after the client has its answer.
//!
//! Instances are reused across requests (one at a time), measured in BENCHMARKS.md
//! against a fresh instance per request: request data reaches a plugin only through
//! the exchange lent for one call, and log entries.

mod bindings;
mod cache;
mod exchange;
mod host;
mod outbound;
mod pool;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use crate::metrics::Metrics;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

pub use bindings::WIT_VERSION;
pub use bindings::http::{OutboundRequest, OutboundResponse};
pub use bindings::types::{
    Action, Failure as LogFailure, FailureKind as LogFailureKind, LogEntry, MessageVerdict,
    Method as WitMethod, PluginTime, Response, Settings, SocketMessage, Target, UpstreamCall,
};
pub use cache::{CacheOutcome, DiskCache};
pub use exchange::{BodyAccess, ExchangeState, Facts, ResponseState, wit_method};
pub use host::{Grants, HostState, Secrets, monotonic_ns};
pub use outbound::{OutboundCalls, Targets, Upstream};
pub use pool::InstancePool;

/// One epoch tick; call deadlines are counted in ticks.
const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Freed instance slots kept warm (affine to their plugin, pages resident) for reuse;
/// beyond it a new instance takes an old slot rather than a never-used one, which
/// bounds the slots the gateway ever touches (and so its RSS) across plugin swaps.
const MAX_WARM_SLOTS: u32 = 8;

/// Why a plugin could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not a valid component (truncated, random bytes, a core module…).
    #[error("not a valid WebAssembly component: {0}")]
    Compile(String),
    /// Built against an incompatible WIT package version, or not a wasmgate plugin.
    #[error("{0}")]
    Incompatible(String),
    /// Imports something the host does not provide.
    #[error("cannot be linked: {0}")]
    Link(String),
}

/// How a call into a plugin failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The call ran past its deadline.
    Timeout,
    /// The instance tried to grow memory past its limit.
    OutOfMemory,
    /// A trap: a panic (abort), `unreachable`, a bad memory access…
    Trap,
    /// The plugin returned something the host refuses (bad header, status…).
    InvalidOutput,
    /// `configure` refused the route's config.
    Configure,
    /// No instance could be made (e.g. the instance pool is exhausted).
    Instantiate,
}

impl FailureKind {
    /// A short name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::OutOfMemory => "out_of_memory",
            Self::Trap => "trap",
            Self::InvalidOutput => "invalid_output",
            Self::Configure => "configure",
            Self::Instantiate => "instantiate",
        }
    }
}

/// A failed call, with enough to log it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("plugin {plugin} ({hash}) failed: {kind}: {detail}", kind = kind.as_str())]
pub struct PluginFailure {
    /// The plugin's name.
    pub plugin: Arc<str>,
    /// The first 12 hex digits of its content hash.
    pub hash: Arc<str>,
    /// What went wrong.
    pub kind: FailureKind,
    /// The cause, for the log (never shown to clients).
    pub detail: String,
}

/// The engine, the linker, the compiled-plugin cache and the epoch ticker, shared by
/// every plugin.
#[derive(Clone)]
pub struct PluginRuntime {
    engine: Engine,
    linker: Arc<Linker<HostState>>,
    cache: Option<DiskCache>,
    metrics: Arc<Metrics>,
}

impl PluginRuntime {
    /// Makes the engine and starts its epoch ticker thread. Compiled plugins are
    /// cached in `cache_dir` when one is given; calls are counted in `metrics`.
    pub fn new(cache_dir: Option<&Path>, metrics: Arc<Metrics>) -> anyhow::Result<Self> {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(1000)
            .total_core_instances(5000)
            .total_memories(1000)
            .total_tables(5000)
            .total_stacks(1000)
            .max_memory_size(4096 << 20)
            // A freed slot stays "warm" (its pages resident, for the next instance of
            // the same plugin) up to this many; the rest are decommitted. wasmtime's
            // default of 100 let RSS climb by ~1.9 MiB per plugin swap in the soak
            // (bench/soak.sh) until 100 slots of old versions were kept.
            .max_unused_warm_slots(MAX_WARM_SLOTS)
            .linear_memory_keep_resident(1 << 20)
            .table_keep_resident(1 << 20)
            .async_stack_keep_resident(1 << 20);
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(|e| anyhow::anyhow!("{e:#}"))?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        bindings::Plugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;

        let weak = engine.weak();
        std::thread::Builder::new()
            .name("wasmgate-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })?;
        let cache = match cache_dir {
            Some(dir) => Some(DiskCache::open(dir, &engine).map_err(|e| {
                anyhow::anyhow!("cannot create the plugin cache {}: {e}", dir.display())
            })?),
            None => None,
        };
        Ok(Self {
            engine,
            linker: Arc::new(linker),
            cache,
            metrics,
        })
    }

    /// The metrics plugin calls and services record into.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Loads the plugin `name` from `path`: compile, check its WIT version, link.
    pub fn load(&self, name: &str, path: &Path) -> Result<LoadedPlugin, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            path: path.display().to_string(),
            source,
        })?;
        self.load_bytes(name, &bytes)
    }

    /// Loads a plugin from its bytes (compiled, or taken from the cache).
    pub fn load_bytes(&self, name: &str, bytes: &[u8]) -> Result<LoadedPlugin, LoadError> {
        self.load_hashed(name, &content_hash(bytes), bytes)
    }

    /// Loads a plugin from its bytes whose [`content_hash`] is `hash`.
    pub fn load_hashed(
        &self,
        name: &str,
        hash: &str,
        bytes: &[u8],
    ) -> Result<LoadedPlugin, LoadError> {
        let started = std::time::Instant::now();
        let compile = || Component::new(&self.engine, bytes);
        let (component, cache) = match &self.cache {
            Some(cache) => cache.load_or_compile(&self.engine, hash, compile),
            None => compile().map(|c| (c, CacheOutcome::Disabled)),
        }
        .map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        let compile_ms = started.elapsed().as_secs_f64() * 1000.0;
        let wit_version = self.check_version(&component)?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Link(format!("{e:#}")))?;
        let pre = bindings::ExportsPre::new(pre).map_err(|e| LoadError::Link(format!("{e:#}")))?;
        Ok(LoadedPlugin {
            name: name.into(),
            hash: hash.into(),
            wit_version,
            compile_ms,
            cache,
            loaded_at: SystemTime::now(),
            stats: Arc::default(),
            pre,
            engine: self.engine.clone(),
            metrics: self.metrics.clone(),
        })
    }

    /// What a plugin file is, for `wasmgate plugin inspect` and `plugin build`: its
    /// imports and exports, and whether this gateway would load it (the contract
    /// version, then linking). `Err` only when it is no component at all.
    pub fn inspect(&self, bytes: &[u8]) -> Result<Inspection, LoadError> {
        let started = std::time::Instant::now();
        let component = Component::new(&self.engine, bytes)
            .map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        let compile_ms = started.elapsed().as_secs_f64() * 1000.0;
        let ty = component.component_type();
        let imports = ty
            .imports(&self.engine)
            .map(|(name, _)| name.to_string())
            .collect();
        let exports = ty
            .exports(&self.engine)
            .map(|(name, _)| name.to_string())
            .collect();
        let loadable = self.check_version(&component).and_then(|version| {
            let pre = self
                .linker
                .instantiate_pre(&component)
                .map_err(|e| LoadError::Link(format!("{e:#}")))?;
            bindings::ExportsPre::new(pre).map_err(|e| LoadError::Link(format!("{e:#}")))?;
            Ok(version)
        });
        Ok(Inspection {
            hash: content_hash(bytes),
            size: bytes.len(),
            compile_ms,
            imports,
            exports,
            loadable: loadable.map_err(|e| e.to_string()),
        })
    }

    /// Finds the version of `wasmgate:plugin/handler` the component exports and checks
    /// it against ours: same major, or for 0.x the same minor.
    fn check_version(&self, component: &Component) -> Result<String, LoadError> {
        const PREFIX: &str = "wasmgate:plugin/handler";
        let ty = component.component_type();
        let Some(version) = ty
            .exports(&self.engine)
            .find_map(|(name, _)| name.strip_prefix(PREFIX).map(str::to_string))
        else {
            return Err(LoadError::Incompatible(format!(
                "not a wasmgate plugin: it exports no `{PREFIX}` interface"
            )));
        };
        let version = version.trim_start_matches('@').to_string();
        if !compatible(&version, WIT_VERSION) {
            return Err(LoadError::Incompatible(format!(
                "built against wasmgate:plugin@{version}, but this gateway implements \
                 wasmgate:plugin@{WIT_VERSION}; rebuild the plugin with a compatible plugin-sdk"
            )));
        }
        Ok(version)
    }
}

/// What [`PluginRuntime::inspect`] found in a plugin file.
#[derive(Debug, Clone)]
pub struct Inspection {
    /// SHA-256 of the file, hex.
    pub hash: String,
    /// Its size in bytes.
    pub size: usize,
    /// How long compiling it took.
    pub compile_ms: f64,
    /// The component's imports (`wasmgate:plugin/kv@0.5.2`, `wasi:io/streams@0.2.6` …).
    pub imports: Vec<String>,
    /// Its exports.
    pub exports: Vec<String>,
    /// The contract version it was built against if this gateway would load it, else
    /// why not.
    pub loadable: Result<String, String>,
}

/// The SHA-256 of a plugin file, hex: its identity in logs, the cache and reloads.
pub fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Semver compatibility of a plugin's WIT version with the host's.
fn compatible(plugin: &str, host: &str) -> bool {
    let parse = |v: &str| -> Option<(u64, u64)> {
        let mut parts = v.split(['.', '-', '+']);
        Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
    };
    match (parse(plugin), parse(host)) {
        (Some((0, pm)), Some((0, hm))) => pm == hm,
        (Some((pmaj, _)), Some((hmaj, _))) => pmaj == hmaj,
        _ => false,
    }
}

/// A compiled, linked plugin, ready to be configured for routes.
#[derive(Clone)]
pub struct LoadedPlugin {
    /// The plugin's name (its file stem).
    pub name: Arc<str>,
    /// SHA-256 of the file, hex.
    pub hash: Arc<str>,
    /// The WIT package version it was built against.
    pub wit_version: String,
    /// How long compilation (or loading from the cache) took.
    pub compile_ms: f64,
    /// Whether it came from the compiled-plugin cache.
    pub cache: CacheOutcome,
    /// When it was loaded.
    pub loaded_at: SystemTime,
    /// Calls and failures over its life, across routes and reloads.
    pub stats: Arc<PluginStats>,
    pre: bindings::ExportsPre<HostState>,
    engine: Engine,
    metrics: Arc<Metrics>,
}

/// Counters of one loaded plugin, shared by every pool configured from it.
#[derive(Debug, Default)]
pub struct PluginStats {
    calls: AtomicU64,
    errors: AtomicU64,
}

impl PluginStats {
    /// Counts one call and whether it failed.
    pub fn record(&self, failed: bool) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a failure found after a call that itself succeeded (refused output).
    pub fn record_error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Calls so far (`on-request` and `on-response`).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Failed calls so far.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }
}

impl LoadedPlugin {
    /// The first 12 hex digits of the content hash, for logs.
    pub fn short_hash(&self) -> &str {
        &self.hash[..12]
    }

    /// A pool of instances configured with `config` (JSON) for one route. Makes and
    /// configures the first instance now, so a refused config is reported here.
    pub async fn configure(
        &self,
        config: String,
        grants: Grants,
        timeout: Duration,
        max_idle: usize,
    ) -> Result<InstancePool, PluginFailure> {
        InstancePool::new(self, config, Arc::new(grants), timeout, max_idle).await
    }
}

#[cfg(test)]
mod tests {
    use super::compatible;

    #[test]
    fn versions_are_compatible_within_a_major() {
        assert!(compatible("0.1.0", "0.1.0"));
        assert!(compatible("0.1.3", "0.1.0"));
        assert!(!compatible("0.2.0", "0.1.0"));
        assert!(compatible("1.4.0", "1.0.0"));
        assert!(!compatible("2.0.0", "1.9.0"));
        assert!(!compatible("garbage", "0.1.0"));
    }
}
