//! A pool of configured instances of one plugin for one route, and the calls into
//! them. Each call takes an idle instance (or makes and configures a new one), runs
//! under an epoch deadline and a wall-clock timeout, and puts the instance back only
//! if the call succeeded: a trap, timeout or refused output discards it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmtime::component::Resource;
use wasmtime::{Engine, Store, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

use super::bindings::{self, types};
use super::exchange::{BodyAccess, ExchangeState};
use super::host::{Grants, HostState};
use super::{FailureKind, LoadedPlugin, PluginFailure, PluginStats};
use crate::metrics::{Metrics, PluginCallLabels, PluginErrorLabels};

/// `configure` and instantiation get this long, whatever the call timeout.
const SETUP_TIMEOUT: Duration = Duration::from_secs(2);
/// How much of a plugin's stderr (its panic message) is kept for the log.
const STDERR_CAPACITY: usize = 4096;

struct Instance {
    store: Store<HostState>,
    bindings: bindings::Exports,
    stderr: MemoryOutputPipe,
}

/// Configured instances of one plugin for one route.
pub struct InstancePool {
    plugin: Arc<str>,
    hash: Arc<str>,
    pre: bindings::ExportsPre<HostState>,
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
                log: false,
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

    /// What the operator granted the plugin on this route.
    pub fn grants(&self) -> &Arc<Grants> {
        &self.grants
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
        // Which step failed decides how the failure reads: making the instance, or
        // running `configure` (where a trap is a trap, not a refused config).
        let setup = async {
            let bindings = self
                .pre
                .instantiate_async(&mut store)
                .await
                .map_err(|e| (Step::Instantiate, e))?;
            let settings = bindings
                .wasmgate_plugin_handler()
                .call_configure(&mut store, &self.config)
                .await
                .map_err(|e| (Step::Configure, e))?;
            Ok::<_, (Step, wasmtime::Error)>((bindings, settings))
        };
        let (bindings, settings) = match tokio::time::timeout(SETUP_TIMEOUT, setup).await {
            Ok(Ok(done)) => done,
            Ok(Err((step, error))) => {
                let mut failure = self.classify(&store, &stderr, error);
                if step == Step::Instantiate && failure.kind == FailureKind::Trap {
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

    /// Runs `on-request` on `exchange`, lent to the plugin for the call, and gives it
    /// back with the plugin's action and how long the call took.
    pub async fn on_request(&self, exchange: Box<ExchangeState>) -> Lent<types::Action> {
        let (exchange, result, took) = self.call(Call::Request, exchange).await;
        let result = result.map(|outcome| match outcome {
            Outcome::Action(action) => action,
            _ => unreachable!("on-request returns an action"),
        });
        (exchange, result, took)
    }

    /// Runs `on-response` on `exchange` (which holds the response), lent to the plugin
    /// for the call.
    pub async fn on_response(&self, exchange: Box<ExchangeState>) -> Lent<()> {
        let (exchange, result, took) = self.call(Call::Response, exchange).await;
        (exchange, result.map(|_| ()), took)
    }

    /// Runs `websocket.on-message` with a client's WebSocket `message`, `exchange`
    /// lent to the plugin for the call. A plugin that does not export `websocket`
    /// (built against a contract before 0.5.2) fails the call.
    pub async fn on_message(
        &self,
        exchange: Box<ExchangeState>,
        message: types::SocketMessage,
    ) -> Lent<types::MessageVerdict> {
        let (exchange, result, took) = self.call(Call::Message(message), exchange).await;
        let result = result.map(|outcome| match outcome {
            Outcome::Verdict(verdict) => verdict,
            _ => unreachable!("on-message returns a verdict"),
        });
        (exchange, result, took)
    }

    /// Runs `on-log` with `entry`.
    pub async fn on_log(&self, entry: &types::LogEntry) -> Result<(), PluginFailure> {
        let started = std::time::Instant::now();
        let result = async {
            let mut instance = self.checkout().await?;
            self.begin(&mut instance, &entry.request_id, &entry.trace_id);
            let call = instance
                .bindings
                .wasmgate_plugin_handler()
                .call_on_log(&mut instance.store, entry);
            let result = tokio::time::timeout(self.timeout, call)
                .await
                .map(|r| r.map(Ok));
            self.finish(instance, result)
        }
        .await;
        self.record("log", started.elapsed(), result.as_ref().err());
        result
    }

    /// Lends `exchange` to one call of `phase` and takes it back, whatever happened.
    async fn call(&self, call: Call, mut exchange: Box<ExchangeState>) -> Lent<Outcome> {
        let phase = call.phase();
        let started = std::time::Instant::now();
        let checked_out = self
            .checkout()
            .await
            .and_then(|mut instance| self.has_room(&mut instance).map(|()| instance));
        let mut instance = match checked_out {
            Ok(instance) => instance,
            Err(failure) => {
                let took = started.elapsed();
                self.record(phase.name(), took, Some(&failure));
                return (exchange, Err(failure), took);
            }
        };
        self.begin(
            &mut instance,
            &exchange.facts.request_id,
            &exchange.facts.trace_id,
        );
        exchange.access = BodyAccess {
            request: phase == Phase::Request && self.settings.request_body,
            response: phase == Phase::Response && self.settings.response_body,
        };
        let lent = instance
            .store
            .data_mut()
            .table_mut()
            .push(exchange)
            .expect("has_room found a free slot");
        let handle = Resource::<types::Exchange>::new_borrow(lent.rep());
        let handler = instance.bindings.wasmgate_plugin_handler();
        let result = match call {
            Call::Request => {
                let call = handler.call_on_request(&mut instance.store, handle);
                tokio::time::timeout(self.timeout, call)
                    .await
                    .map(|r| r.map(|action| action.map(Outcome::Action)))
            }
            Call::Response => {
                let call = handler.call_on_response(&mut instance.store, handle);
                tokio::time::timeout(self.timeout, call)
                    .await
                    .map(|r| r.map(|done| done.map(|()| Outcome::Done)))
            }
            Call::Message(message) => match instance.bindings.wasmgate_plugin_websocket() {
                Some(websocket) => {
                    let call = websocket.call_on_message(&mut instance.store, handle, &message);
                    tokio::time::timeout(self.timeout, call)
                        .await
                        .map(|r| r.map(|verdict| verdict.map(Outcome::Verdict)))
                }
                None => Ok(Ok(Err(
                    "it asked for WebSocket messages but does not export \
                     wasmgate:plugin/websocket (built against a contract before 0.5.2)"
                        .to_string(),
                ))),
            },
        };
        let exchange = instance
            .store
            .data_mut()
            .table_mut()
            .delete(lent)
            .expect("the lent exchange is still in the table");
        let result = self.finish(instance, result);
        let took = started.elapsed();
        self.record(phase.name(), took, result.as_ref().err());
        (exchange, result, took)
    }

    /// Counts one call in the plugin's stats and the metrics.
    fn record(&self, phase: &'static str, took: Duration, failure: Option<&PluginFailure>) {
        self.stats.record(failure.is_some());
        self.metrics
            .plugin_call_duration
            .get_or_create(&PluginCallLabels {
                plugin: self.plugin.clone(),
                phase,
            })
            .observe(took.as_secs_f64());
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

    /// Whether the instance's resource table has a free slot for the exchange, and
    /// holds no more than [`MAX_HELD_RESOURCES`]: a guest may keep WASI resources
    /// (streams, pollables) from call to call, which are host memory outside its
    /// `memory_limit_mb`. An instance over it is dropped (with what it held) and the
    /// call fails as out of memory.
    fn has_room(&self, instance: &mut Instance) -> Result<(), PluginFailure> {
        let table = instance.store.data_mut().table_mut();
        let held = table.push(()).map(|probe| {
            let slot = probe.rep();
            let _ = table.delete(probe);
            slot
        });
        match held {
            Ok(slot) if (slot as usize) < MAX_HELD_RESOURCES => Ok(()),
            _ => Err(self.failure(
                FailureKind::OutOfMemory,
                format!(
                    "the instance holds over {MAX_HELD_RESOURCES} host resources (WASI streams or pollables it never dropped)"
                ),
            )),
        }
    }

    fn begin(&self, instance: &mut Instance, request_id: &str, trace_id: &str) {
        let state = instance.store.data_mut();
        state.request_id.clear();
        state.request_id.push_str(request_id);
        state.trace_id.clear();
        state.trace_id.push_str(trace_id);
        state.call_deadline = Some((std::time::Instant::now() + self.timeout, self.timeout));
        instance.store.set_epoch_deadline(ticks(self.timeout));
    }

    /// The outcome of a call: the value, or a failure (the instance is then dropped).
    /// A plugin's own error (`result::err` of a hook) counts as refused output, and the
    /// instance is kept: it did nothing wrong.
    fn finish<T>(
        &self,
        instance: Instance,
        result: Result<wasmtime::Result<Result<T, String>>, tokio::time::error::Elapsed>,
    ) -> Result<T, PluginFailure> {
        match result {
            Ok(Ok(Ok(value))) => {
                self.checkin(instance);
                Ok(value)
            }
            Ok(Ok(Err(why))) => {
                self.checkin(instance);
                Err(self.failure(
                    FailureKind::InvalidOutput,
                    format!("the plugin failed the request: {why}"),
                ))
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

/// What a call that lends the exchange gives back: the exchange, the call's outcome and
/// how long it took (checkout included).
pub type Lent<T> = (Box<ExchangeState>, Result<T, PluginFailure>, Duration);

/// Most host resources an instance may keep between calls (see `Pool::has_room`).
const MAX_HELD_RESOURCES: usize = 4096;

/// The steps of making a configured instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Instantiate,
    Configure,
}

/// The phase of a call that lends the exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Request,
    Response,
    Message,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Self::Request => "request",
            Self::Response => "response",
            Self::Message => "message",
        }
    }
}

/// A call that lends the exchange, with what it hands the plugin besides.
enum Call {
    Request,
    Response,
    Message(types::SocketMessage),
}

impl Call {
    fn phase(&self) -> Phase {
        match self {
            Self::Request => Phase::Request,
            Self::Response => Phase::Response,
            Self::Message(_) => Phase::Message,
        }
    }
}

/// What a call that lends the exchange returned.
enum Outcome {
    Action(types::Action),
    Done,
    Verdict(types::MessageVerdict),
}

/// A duration in epoch ticks, at least one.
fn ticks(duration: Duration) -> u64 {
    (duration.as_millis() as u64 / super::EPOCH_TICK.as_millis() as u64).max(1)
}
