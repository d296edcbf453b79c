//! The state store behind the plugins' `kv` import, on one of two backends chosen at
//! start (`[state] backend`): sled, embedded in the data directory (one process), or
//! Redis, shared by every gateway process pointed at it (replicas). Both give the
//! same semantics, which the conformance suite below checks on each: values with an
//! optional TTL (an expired value reads as absent), `incr` on decimal text with the
//! TTL set only when it creates the counter, insert-if-absent and compare-and-swap
//! that are atomic against every other client, and `scan` by prefix in key order,
//! in pages. A sweep (every `[state] sweep_interval_ms` on sled; on Redis, which
//! expires keys itself, only when asked) reclaims sled's expired entries and counts
//! each namespace's live entries and bytes for `/admin/state` and `/metrics`.
//!
//! This module owns persistence only; who may use which namespace is decided by the
//! plugin runtime from the config.

mod redis_store;
mod sled_store;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

pub use redis_store::RedisOptions;
use redis_store::{RedisNamespace, RedisStore};
use sled_store::{SledNamespace, SledStore};

/// A failure of the state store.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The embedded database failed.
    #[error("state store: {0}")]
    Sled(#[from] sled::Error),
    /// The shared store did not answer in time, or its connection failed.
    #[error("state store unavailable: {0}")]
    Unavailable(String),
    /// The store's settings cannot be used.
    #[error("[state]: {0}")]
    Config(String),
    /// `incr` on a value that is not a decimal integer.
    #[error("value of {0:?} is not an integer")]
    NotAnInteger(String),
    /// `incr` would overflow a signed 64-bit integer.
    #[error("incr of {0:?} overflows")]
    Overflow(String),
}

/// A namespace's live contents, as a sweep counted them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct NamespaceSize {
    /// Live (not expired) entries.
    pub entries: u64,
    /// Their keys' and values' bytes (without the store's own overhead).
    pub bytes: u64,
}

/// One pass of the sweep over every namespace.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Sweep {
    /// When it finished.
    #[serde(serialize_with = "crate::reload::rfc3339")]
    pub at: SystemTime,
    /// How long it took, in milliseconds.
    pub took_ms: u64,
    /// Expired entries it removed (Redis removes its own: always 0 there).
    pub removed: u64,
    /// Each namespace's live entries and bytes.
    pub namespaces: BTreeMap<String, NamespaceSize>,
}

/// The whole store, on its backend.
#[derive(Clone)]
pub struct StateStore {
    backend: Backend,
    /// What the latest sweep found.
    last_sweep: Arc<Mutex<Option<Sweep>>>,
}

#[derive(Clone)]
enum Backend {
    Sled(SledStore),
    Redis(RedisStore),
}

impl StateStore {
    /// Opens (or creates) a sled store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        Ok(Self::on(Backend::Sled(SledStore::open(dir)?)))
    }

    /// A Redis store; connects lazily, so it is made while Redis is down (its calls
    /// then fail until Redis is up).
    pub fn redis(options: &RedisOptions) -> Result<Self, StateError> {
        Ok(Self::on(Backend::Redis(RedisStore::connect(options)?)))
    }

    fn on(backend: Backend) -> Self {
        Self {
            backend,
            last_sweep: Arc::default(),
        }
    }

    /// `sled` or `redis`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sled(_) => "sled",
            Backend::Redis(_) => "redis",
        }
    }

    /// The key-value namespace `name`.
    pub fn namespace(&self, name: &str) -> Result<Namespace, StateError> {
        Ok(Namespace(match &self.backend {
            Backend::Sled(store) => Inner::Sled(store.namespace(name)?),
            Backend::Redis(store) => Inner::Redis(store.namespace(name)),
        }))
    }

    /// Whether the store answers: sled always does; Redis must answer a `PING`
    /// within its timeout. For `/health`.
    pub async fn check(&self) -> Result<(), StateError> {
        match &self.backend {
            Backend::Sled(_) => Ok(()),
            Backend::Redis(store) => store.ping().await,
        }
    }

    /// What `/health` and `/admin/state` say about the backend besides its name:
    /// sled's size on disk, Redis's URL (without a password).
    pub fn describe(&self) -> serde_json::Value {
        match &self.backend {
            Backend::Sled(store) => serde_json::json!({
                "size_on_disk_bytes": store.size_on_disk().ok(),
            }),
            Backend::Redis(store) => serde_json::json!({ "url": store.url() }),
        }
    }

    /// Removes every expired entry (sled; Redis expires its own) and counts what
    /// is left in each namespace. Sled's walk runs off the async runtime.
    pub async fn sweep(&self) -> Result<Sweep, StateError> {
        let started = Instant::now();
        let sweep = match &self.backend {
            Backend::Sled(store) => {
                let store = store.clone();
                tokio::task::spawn_blocking(move || store.sweep())
                    .await
                    .map_err(|e| StateError::Unavailable(format!("the sweep panicked: {e}")))??
            }
            Backend::Redis(store) => Sweep {
                at: SystemTime::now(),
                took_ms: started.elapsed().as_millis() as u64,
                removed: 0,
                namespaces: store.sizes().await?.into_iter().collect(),
            },
        };
        *self.last_sweep.lock().expect("sweep lock") = Some(sweep.clone());
        Ok(sweep)
    }

    /// What the latest sweep found, if one has run.
    pub fn last_sweep(&self) -> Option<Sweep> {
        self.last_sweep.lock().expect("sweep lock").clone()
    }

    /// Writes everything to disk (sled); called on shutdown.
    pub fn flush(&self) -> Result<(), StateError> {
        match &self.backend {
            Backend::Sled(store) => store.flush(),
            Backend::Redis(_) => Ok(()),
        }
    }
}

/// One key-value namespace.
#[derive(Clone)]
pub struct Namespace(Inner);

#[derive(Clone)]
enum Inner {
    Sled(SledNamespace),
    Redis(RedisNamespace),
}

impl Namespace {
    /// The value under `key`, if present and not expired.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        match &self.0 {
            Inner::Sled(ns) => ns.get(key),
            Inner::Redis(ns) => ns.get(key).await,
        }
    }

    /// Stores `value` under `key`, expiring after `ttl_ms` if given (else never).
    pub async fn set(
        &self,
        key: &str,
        value: &[u8],
        ttl_ms: Option<u64>,
    ) -> Result<(), StateError> {
        match &self.0 {
            Inner::Sled(ns) => ns.set(key, value, ttl_ms),
            Inner::Redis(ns) => ns.set(key, value, ttl_ms).await,
        }
    }

    /// Adds `delta` to the integer under `key` (absent or expired counts as 0) and
    /// returns the new value; `ttl_ms` applies only when the key is created.
    pub async fn incr(
        &self,
        key: &str,
        delta: i64,
        ttl_ms: Option<u64>,
    ) -> Result<i64, StateError> {
        match &self.0 {
            Inner::Sled(ns) => ns.incr(key, delta, ttl_ms),
            Inner::Redis(ns) => ns.incr(key, delta, ttl_ms).await,
        }
    }

    /// Removes `key`; whether a live value was there.
    pub async fn delete(&self, key: &str) -> Result<bool, StateError> {
        match &self.0 {
            Inner::Sled(ns) => ns.delete(key),
            Inner::Redis(ns) => ns.delete(key).await,
        }
    }

    /// Stores `value` under `key` only if no live value is there, atomically;
    /// whether it was stored.
    pub async fn insert(
        &self,
        key: &str,
        value: &[u8],
        ttl_ms: Option<u64>,
    ) -> Result<bool, StateError> {
        match &self.0 {
            Inner::Sled(ns) => ns.insert(key, value, ttl_ms),
            Inner::Redis(ns) => ns.insert(key, value, ttl_ms).await,
        }
    }

    /// Replaces the value under `key` with `value` (expiring after `ttl_ms` if given)
    /// only if the live value there is `expected` (`None`: no live value),
    /// atomically; whether it replaced it.
    pub async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
        ttl_ms: Option<u64>,
    ) -> Result<bool, StateError> {
        match &self.0 {
            Inner::Sled(ns) => ns.compare_and_swap(key, expected, value, ttl_ms),
            Inner::Redis(ns) => ns.compare_and_swap(key, expected, value, ttl_ms).await,
        }
    }

    /// Up to `limit` live entries whose keys start with `prefix`, in key order,
    /// starting after the key `after` when given.
    pub async fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StateError> {
        match &self.0 {
            Inner::Sled(ns) => {
                let (prefix, after) = (prefix.to_owned(), after.map(str::to_owned));
                off_reactor(ns, move |ns| ns.scan(&prefix, after.as_deref(), limit)).await
            }
            Inner::Redis(ns) => ns.scan(prefix, after, limit).await,
        }
    }

    /// Makes every write so far durable: on sled, on disk (a durable write returns
    /// only after this); on Redis, each write is as durable as the server's own
    /// persistence settings make it (`appendonly`, `save`), so nothing more is done.
    pub async fn flush(&self) -> Result<(), StateError> {
        match &self.0 {
            Inner::Sled(ns) => ns.flush().await,
            Inner::Redis(_) => Ok(()),
        }
    }
}

/// Runs a sled call that walks many entries (a `scan`) on tokio's blocking pool, so
/// a long walk does not hold up the other connections of its reactor thread.
///
/// Point operations (`get`, `set`, `incr`, `insert`, `delete`, compare-and-swap) run
/// in place: sled answers them from its page cache in microseconds, and its disk
/// writes are made by its own flusher thread (a durable write awaits `flush_async`).
/// Moving them to the blocking pool was measured: rate limiting went from 12,700 to
/// 8,900 requests/s (`bench/run.sh`, BENCHMARKS.md), for a wait only a cold page
/// read would bring.
async fn off_reactor<T: Send + 'static>(
    ns: &SledNamespace,
    call: impl FnOnce(&SledNamespace) -> Result<T, StateError> + Send + 'static,
) -> Result<T, StateError> {
    let ns = ns.clone();
    tokio::task::spawn_blocking(move || call(&ns))
        .await
        .map_err(|e| StateError::Unavailable(format!("a state call failed: {e}")))?
}

/// Sweeps `store` every `interval` (none when zero) until `stop`, and publishes what
/// each pass found as metrics. Not on Redis, which expires keys itself: counting
/// there walks every key (`SCAN`) of every replica's shared store, so it is done only
/// when asked (`POST /admin/state/sweep`).
pub fn spawn_sweeper(
    store: StateStore,
    metrics: Arc<Metrics>,
    interval: Duration,
    stop: CancellationToken,
) {
    if interval.is_zero() || matches!(store.backend, Backend::Redis(_)) {
        return;
    }
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = ticks.tick() => {}
            }
            match store.sweep().await {
                Ok(sweep) => {
                    metrics.record_sweep(&sweep);
                    if sweep.removed > 0 {
                        tracing::debug!(
                            removed = sweep.removed,
                            took_ms = sweep.took_ms,
                            "state sweep removed expired entries"
                        );
                    }
                }
                Err(error) => tracing::warn!(%error, "state sweep failed"),
            }
        }
    });
}

#[cfg(test)]
mod conformance;
