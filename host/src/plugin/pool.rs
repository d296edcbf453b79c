//! A pool of configured instances of one plugin for one route, and the calls into
//! them. Each call takes an idle instance (or makes and configures a new one), runs
//! under an epoch deadline and a wall-clock timeout, and puts the instance back only
//! if the call succeeded: a trap, timeout or refused output discards it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmtime::{Engine, Store, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

use super::bindings::{self, types};
use super::host::{Grants, HostState};
use super::{FailureKind, LoadedPlugin, PluginFailure, PluginStats};
use crate::metrics::{Metrics, PluginCallLabels, PluginErrorLabels};

/// `configure` and instantiation get this long, whatever the call timeout.
const SETUP_TIMEOUT: Duration = Duration::from_secs(2);
/// How much of a plugin's stderr (its panic message) is kept for the log.
const STDERR_CAPACITY: usize = 4096;

struct Instance {
    store: Store<HostState>,
    bindings: bindings::Plugin,
    stderr: MemoryOutputPipe,
}

/// Configured instances of one plugin for one route.
pub struct InstancePool {
    plugin: Arc<str>,
    hash: Arc<str>,
    pre: bindings::PluginPre<HostState>,
    engine: Engine,
    config: String,
    grants: Arc<Grants>,
    timeout: Duration,
    settings: types::Settings,
    idle: Mutex<Vec<Instance>>,
    max_idle: usize,
    stats: Arc<PluginStats>,
    metrics: Arc<Metrics>,
}

impl InstancePool {
    pub(super) async fn new(
        plugin: &LoadedPlugin,
        config: String,
        grants: Arc<Grants>,
        timeout: Duration,
        max_idle: usize,
    ) -> Result<Self, PluginFailure> {
        let mut pool = Self {
            plugin: plugin.name.clone(),
            hash: plugin.short_hash().into(),
            pre: plugin.pre.clone(),
            engine: plugin.engine.clone(),
            config,
            grants,
            timeout,
            settings: types::Settings {
                request_body: false,
                response_body: false,
                request_only: false,
            },
            idle: Mutex::new(Vec::new()),
            max_idle,
            stats: plugin.stats.clone(),
            metrics: plugin.metrics.clone(),
        };
        let (instance, settings) = pool.instantiate().await?;
        pool.settings = settings;
        pool.idle.get_mut().expect("fresh mutex").push(instance);
        Ok(pool)
    }

    /// What the plugin asked for when configured for this route.
    pub fn settings(&self) -> types::Settings {
        self.settings
    }

    /// The plugin's name.
    pub fn plugin(&self) -> &Arc<str> {
        &self.plugin
    }

    /// The first 12 hex digits of the plugin's content hash.
    pub fn hash(&self) -> &Arc<str> {
        &self.hash
    }

    fn failure(&self, kind: FailureKind, detail: String) -> PluginFailure {
        PluginFailure {
            plugin: self.plugin.clone(),
            hash: self.hash.clone(),
            kind,
            detail,
        }
    }

    /// Makes a new instance and runs `configure` on it.
    async fn instantiate(&self) -> Result<(Instance, types::Settings), PluginFailure> {
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        let mut store = Store::new(
            &self.engine,
            HostState::new(self.grants.clone(), stderr.clone(), self.metrics.clone()),
        );
        store.limiter(|state| state as &mut dyn wasmtime::ResourceLimiter);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(ticks(SETUP_TIMEOUT));
        let setup = async {
            let bindings = self.pre.instantiate_async(&mut store).await?;
            let settings = bindings
                .wasmgate_plugin_handler()
                .call_configure(&mut store, &self.config)
                .await?;
            wasmtime::Result::Ok((bindings, settings))
        };
        let (bindings, settings) = match tokio::time::timeout(SETUP_TIMEOUT, setup).await {
            Ok(Ok(done)) => done,
            Ok(Err(error)) => {
                let mut failure = self.classify(&store, &stderr, error);
                if failure.kind == FailureKind::Trap && failure.detail.contains("instance") {
                    failure.kind = FailureKind::Instantiate;
                }
                return Err(failure);
            }
            Err(_) => {
                return Err(self.failure(
                    FailureKind::Timeout,
                    format!("instantiate and configure took over {SETUP_TIMEOUT:?}"),
                ));
            }
        };
        let settings = settings.map_err(|why| self.failure(FailureKind::Configure, why))?;
        Ok((
            Instance {
                store,
                bindings,
                stderr,
            },
            settings,
        ))
    }

    async fn checkout(&self) -> Result<Instance, PluginFailure> {
        let idle = self.idle.lock().expect("pool lock").pop();
        match idle {
            Some(instance) => Ok(instance),
            None => Ok(self.instantiate().await?.0),
        }
    }

    fn checkin(&self, instance: Instance) {
        let mut idle = self.idle.lock().expect("pool lock");
        if idle.len() < self.max_idle {
            idle.push(instance);
        }
    }

    /// Runs `on-request`. Returns the action and the variables the plugin set.
    pub async fn on_request(
        &self,
        ctx: &types::Context,
        request: &types::Request,
    ) -> Result<(types::Action, Vec<(String, String)>), PluginFailure> {
        let started = std::time::Instant::now();
        let result = async {
            let mut instance = self.checkout().await?;
            self.begin(&mut instance, ctx);
            let call = instance.bindings.wasmgate_plugin_handler().call_on_request(
                &mut instance.store,
                ctx,
                request,
            );
            let result = tokio::time::timeout(self.timeout, call).await;
            self.finish(instance, result)
        }
        .await;
        self.record("request", started, result.as_ref().err());
        result
    }

    /// Runs `on-response`. Returns the response and the variables the plugin set.
    pub async fn on_response(
        &self,
        ctx: &types::Context,
        response: &types::Response,
    ) -> Result<(types::Response, Vec<(String, String)>), PluginFailure> {
        let started = std::time::Instant::now();
        let result = async {
            let mut instance = self.checkout().await?;
            self.begin(&mut instance, ctx);
            let call = instance
                .bindings
                .wasmgate_plugin_handler()
                .call_on_response(&mut instance.store, ctx, response);
            let result = tokio::time::timeout(self.timeout, call).await;
            self.finish(instance, result)
        }
        .await;
        self.record("response", started, result.as_ref().err());
        result
    }

    /// Counts one call in the plugin's stats and the metrics.
    fn record(
        &self,
        phase: &'static str,
        started: std::time::Instant,
        failure: Option<&PluginFailure>,
    ) {
        self.stats.record(failure.is_some());
        self.metrics
            .plugin_call_duration
            .get_or_create(&PluginCallLabels {
                plugin: self.plugin.clone(),
                phase,
            })
            .observe(started.elapsed().as_secs_f64());
        if let Some(failure) = failure {
            self.record_failure(failure);
        }
    }

    /// Counts output the pipeline refused (the call itself was counted as a success).
    pub fn record_refused_output(&self, failure: &PluginFailure) {
        self.stats.record_error();
        self.record_failure(failure);
    }

    /// Counts a failure in `plugin_errors_total`.
    fn record_failure(&self, failure: &PluginFailure) {
        self.metrics
            .plugin_errors
            .get_or_create(&PluginErrorLabels {
                plugin: self.plugin.clone(),
                kind: failure.kind.as_str(),
            })
            .inc();
    }

    fn begin(&self, instance: &mut Instance, ctx: &types::Context) {
        let state = instance.store.data_mut();
        state.request_id.clone_from(&ctx.request_id);
        state.trace_id.clone_from(&ctx.trace_id);
        state.vars_set.clear();
        instance.store.set_epoch_deadline(ticks(self.timeout));
    }

    fn finish<T>(
        &self,
        mut instance: Instance,
        result: Result<wasmtime::Result<T>, tokio::time::error::Elapsed>,
    ) -> Result<(T, Vec<(String, String)>), PluginFailure> {
        match result {
            Ok(Ok(value)) => {
                let vars = std::mem::take(&mut instance.store.data_mut().vars_set);
                self.checkin(instance);
                Ok((value, vars))
            }
            Ok(Err(error)) => Err(self.classify(&instance.store, &instance.stderr, error)),
            Err(_) => Err(self.failure(
                FailureKind::Timeout,
                format!("call took over {:?}", self.timeout),
            )),
        }
    }

    /// Names a failed call by where it happened: a refused memory growth first (a Rust
    /// guest aborts when allocation fails), then the trap code.
    fn classify(
        &self,
        store: &Store<HostState>,
        stderr: &MemoryOutputPipe,
        error: wasmtime::Error,
    ) -> PluginFailure {
        let kind = if store.data().memory_refused {
            FailureKind::OutOfMemory
        } else if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            FailureKind::Timeout
        } else {
            FailureKind::Trap
        };
        let output = stderr.contents();
        let mut detail = format!("{error:#}");
        if !output.is_empty() {
            detail.push_str("; plugin stderr: ");
            detail.push_str(String::from_utf8_lossy(&output).trim());
        }
        self.failure(kind, detail)
    }
}

/// A duration in epoch ticks, at least one.
fn ticks(duration: Duration) -> u64 {
    (duration.as_millis() as u64 / super::EPOCH_TICK.as_millis() as u64).max(1)
}
