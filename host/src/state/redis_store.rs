//! The Redis backend of the state store (`[state] backend = "redis"`), shared by every
//! gateway process pointed at the same server and key prefix.
//!
//! A namespace's key `K` is the Redis string `PREFIX{NAMESPACE}:K` (the braces make
//! a namespace's keys one hash slot, so the scripts below also run on a cluster's
//! node). Expiry is Redis's own (`PX`); what needs a read and a write at once (`incr`
//! with a TTL only on creation, `compare-and-swap`) is a Lua script, so no other
//! client sees it half done. `scan` walks the namespace's keys with `SCAN MATCH` and
//! returns them in key order, as sled does; it costs a pass over the keys under the
//! prefix, so it is for listings, not for every request.
//!
//! Connections: `pool_size` multiplexed connections (`ConnectionManager`, which
//! reconnects by itself), each call on the next one in turn, and every call bounded
//! by `timeout_ms`: an unreachable or slow server fails a call with
//! [`StateError::Unavailable`] within that time, never a hang, and for the next
//! 250 ms calls fail at once (then one tries again), so a plugin's several calls cost
//! one timeout.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, IntoConnectionInfo};

use super::{NamespaceSize, StateError};

/// How the gateway reaches Redis: `[state.redis]`, with the password resolved.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// `redis://host:port/db` or `rediss://…` (TLS).
    pub url: String,
    /// The password, when not in the URL.
    pub password: Option<String>,
    /// Prefix of every key the gateway writes.
    pub key_prefix: String,
    /// Multiplexed connections.
    pub pool_size: usize,
    /// Most time one call (or a connection attempt) may take.
    pub timeout: Duration,
}

/// The connections to one Redis server.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    connections: Vec<ConnectionManager>,
    next: AtomicUsize,
    prefix: String,
    timeout: Duration,
    url: String,
    /// After a failed call, calls fail at once until this many milliseconds after
    /// `started` (then one tries again): a plugin making several calls against a
    /// server that is gone waits for one timeout, not one per call.
    failing_until: AtomicU64,
    started: Instant,
}

/// How long calls fail at once after one failed to reach the server.
const RETRY_AFTER: Duration = Duration::from_millis(250);

/// `incr`: adds to the counter and sets the TTL only when it creates the key.
static INCR: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(INCR_LUA));
const INCR_LUA: &str = r"
local existed = redis.call('EXISTS', KEYS[1])
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if existed == 0 and ARGV[2] ~= '0' then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return value
";

/// `compare-and-swap`: ARGV = value, ttl (0: none), whether a value is expected
/// (`1`/`0`), the expected value.
static COMPARE_AND_SWAP: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(COMPARE_AND_SWAP_LUA));
const COMPARE_AND_SWAP_LUA: &str = r"
local current = redis.call('GET', KEYS[1])
if ARGV[3] == '1' then
  if current ~= ARGV[4] then return 0 end
elseif current then
  return 0
end
if ARGV[2] == '0' then
  redis.call('SET', KEYS[1], ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return 1
";

/// Keys `SCAN` asks for per round trip.
const SCAN_BATCH: usize = 1000;

impl RedisStore {
    /// Connections to the server of `options`, made lazily: the gateway starts while
    /// Redis is down, and its calls fail until Redis is up.
    pub fn connect(options: &RedisOptions) -> Result<Self, StateError> {
        // `rediss://` takes the process's default TLS provider: ring's, as elsewhere.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let unusable = |e: redis::RedisError| StateError::Config(format!("url: {e}"));
        let mut info = options
            .url
            .as_str()
            .into_connection_info()
            .map_err(unusable)?;
        if let Some(password) = &options.password {
            let settings = info.redis_settings().clone().set_password(password);
            info = info.set_redis_settings(settings);
        }
        let client = redis::Client::open(info).map_err(unusable)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.timeout))
            .set_response_timeout(Some(options.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let connections = (0..options.pool_size.max(1))
            .map(|_| ConnectionManager::new_lazy_with_config(client.clone(), config.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(unusable)?;
        Ok(Self {
            inner: Arc::new(Inner {
                connections,
                next: AtomicUsize::new(0),
                prefix: options.key_prefix.clone(),
                timeout: options.timeout,
                url: redacted(&options.url),
                failing_until: AtomicU64::new(0),
                started: Instant::now(),
            }),
        })
    }

    /// The server's URL, without a password.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// The namespace `name`.
    pub fn namespace(&self, name: &str) -> RedisNamespace {
        RedisNamespace {
            store: self.clone(),
            keys: format!("{}{{{name}}}:", self.inner.prefix),
        }
    }

    /// Whether the server answers a `PING` within the timeout (tried even while
    /// calls fail at once, so that it finds the server back).
    pub async fn ping(&self) -> Result<(), StateError> {
        self.try_call(|mut c| async move { redis::cmd("PING").query_async::<()>(&mut c).await })
            .await
    }

    /// Counts each namespace's keys and bytes (Redis expires keys itself: nothing to
    /// remove).
    pub async fn sizes(&self) -> Result<Vec<(String, NamespaceSize)>, StateError> {
        let pattern = format!("{}{{*}}:*", glob_escape(&self.inner.prefix));
        let keys = self.keys_matching(&pattern).await?;
        let mut sizes: std::collections::BTreeMap<String, NamespaceSize> = Default::default();
        for chunk in keys.chunks(SCAN_BATCH) {
            let mut pipe = redis::pipe();
            for key in chunk {
                pipe.strlen(key);
            }
            let lengths: Vec<u64> = self
                .call(|mut c| {
                    let pipe = pipe.clone();
                    async move { pipe.query_async(&mut c).await }
                })
                .await?;
            for (key, length) in chunk.iter().zip(lengths) {
                let Some((namespace, key)) = key
                    .strip_prefix(&self.inner.prefix)
                    .and_then(|rest| rest.strip_prefix('{'))
                    .and_then(|rest| rest.split_once("}:"))
                else {
                    continue;
                };
                let size = sizes.entry(namespace.to_string()).or_default();
                size.entries += 1;
                size.bytes += key.len() as u64 + length;
            }
        }
        Ok(sizes.into_iter().collect())
    }

    /// Every key matching `pattern`, by `SCAN` (not in order).
    async fn keys_matching(&self, pattern: &str) -> Result<Vec<String>, StateError> {
        let mut keys = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = self
                .call(|mut c| {
                    let pattern = pattern.to_string();
                    async move {
                        redis::cmd("SCAN")
                            .arg(cursor)
                            .arg("MATCH")
                            .arg(pattern)
                            .arg("COUNT")
                            .arg(SCAN_BATCH)
                            .query_async(&mut c)
                            .await
                    }
                })
                .await?;
            keys.extend(batch);
            if next == 0 {
                return Ok(keys);
            }
            cursor = next;
        }
    }

    /// Milliseconds since the store was made.
    fn now_ms(&self) -> u64 {
        self.inner.started.elapsed().as_millis() as u64
    }

    /// Runs `call` on the next connection, bounded by the timeout; fails at once
    /// within [`RETRY_AFTER`] of a call that could not reach the server.
    async fn call<T, F, Fut>(&self, call: F) -> Result<T, StateError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        if self.now_ms() < self.inner.failing_until.load(Ordering::Relaxed) {
            return Err(StateError::Unavailable(format!(
                "redis: unreachable (tried again every {} ms)",
                RETRY_AFTER.as_millis()
            )));
        }
        self.try_call(call).await
    }

    /// [`RedisStore::call`] without the wait after a failure.
    async fn try_call<T, F, Fut>(&self, call: F) -> Result<T, StateError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let inner = &self.inner;
        let index = inner.next.fetch_add(1, Ordering::Relaxed) % inner.connections.len();
        let connection = inner.connections[index].clone();
        let result = match tokio::time::timeout(inner.timeout, call(connection)).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => classify(error),
            Err(_) => StateError::Unavailable(format!(
                "redis: no answer within {} ms",
                inner.timeout.as_millis()
            )),
        };
        if matches!(result, StateError::Unavailable(_)) {
            let until = self.now_ms() + RETRY_AFTER.as_millis() as u64;
            inner.failing_until.fetch_max(until, Ordering::Relaxed);
        }
        Err(result)
    }
}

/// A Redis error as a state error: a script's `INCRBY` refusal keeps its meaning;
/// the rest says the store is unavailable (the connection, a timeout, the server).
fn classify(error: redis::RedisError) -> StateError {
    let text = error.to_string();
    if text.contains("not an integer") {
        StateError::NotAnInteger(text)
    } else if text.contains("overflow") {
        StateError::Overflow(text)
    } else {
        StateError::Unavailable(format!("redis: {text}"))
    }
}

/// `url` without the password it may hold.
fn redacted(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((_, host)) => format!("{scheme}://***@{host}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// `text` with the glob characters of `SCAN MATCH` escaped.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// One namespace on Redis.
#[derive(Clone)]
pub struct RedisNamespace {
    store: RedisStore,
    /// `PREFIX{NAMESPACE}:`, before every key.
    keys: String,
}

/// A TTL in milliseconds as the scripts take it (`0`: none).
fn ttl_arg(ttl_ms: Option<u64>) -> u64 {
    ttl_ms.map_or(0, |ttl| ttl.max(1))
}

impl RedisNamespace {
    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.keys)
    }

    /// See [`super::Namespace::get`].
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        let key = self.key(key);
        self.store
            .call(|mut c| async move { c.get(key).await })
            .await
    }

    /// See [`super::Namespace::set`].
    pub async fn set(
        &self,
        key: &str,
        value: &[u8],
        ttl_ms: Option<u64>,
    ) -> Result<(), StateError> {
        let key = self.key(key);
        let value = value.to_vec();
        self.store
            .call(|mut c| async move {
                let mut cmd = redis::cmd("SET");
                cmd.arg(key).arg(value);
                if let Some(ttl) = ttl_ms {
                    cmd.arg("PX").arg(ttl.max(1));
                }
                cmd.query_async::<()>(&mut c).await
            })
            .await
    }

    /// See [`super::Namespace::incr`].
    pub async fn incr(
        &self,
        key: &str,
        delta: i64,
        ttl_ms: Option<u64>,
    ) -> Result<i64, StateError> {
        let key = self.key(key);
        self.store
            .call(|mut c| async move {
                INCR.key(key)
                    .arg(delta)
                    .arg(ttl_arg(ttl_ms))
                    .invoke_async(&mut c)
                    .await
            })
            .await
    }

    /// See [`super::Namespace::delete`].
    pub async fn delete(&self, key: &str) -> Result<bool, StateError> {
        let key = self.key(key);
        let removed: u64 = self
            .store
            .call(|mut c| async move { c.del(key).await })
            .await?;
        Ok(removed > 0)
    }

    /// See [`super::Namespace::insert`].
    pub async fn insert(
        &self,
        key: &str,
        value: &[u8],
        ttl_ms: Option<u64>,
    ) -> Result<bool, StateError> {
        let key = self.key(key);
        let value = value.to_vec();
        let stored: Option<String> = self
            .store
            .call(|mut c| async move {
                let mut cmd = redis::cmd("SET");
                cmd.arg(key).arg(value).arg("NX");
                if let Some(ttl) = ttl_ms {
                    cmd.arg("PX").arg(ttl.max(1));
                }
                cmd.query_async(&mut c).await
            })
            .await?;
        Ok(stored.is_some())
    }

    /// See [`super::Namespace::compare_and_swap`].
    pub async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
        ttl_ms: Option<u64>,
    ) -> Result<bool, StateError> {
        let key = self.key(key);
        let value = value.to_vec();
        let expected = expected.map(<[u8]>::to_vec);
        let swapped: i64 = self
            .store
            .call(|mut c| async move {
                COMPARE_AND_SWAP
                    .key(key)
                    .arg(value)
                    .arg(ttl_arg(ttl_ms))
                    .arg(if expected.is_some() { "1" } else { "0" })
                    .arg(expected.unwrap_or_default())
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(swapped == 1)
    }

    /// See [`super::Namespace::scan`].
    pub async fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StateError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let pattern = format!("{}{}*", glob_escape(&self.keys), glob_escape(prefix));
        let mut keys: Vec<String> = self
            .store
            .keys_matching(&pattern)
            .await?
            .into_iter()
            .filter_map(|k| k.strip_prefix(&self.keys).map(str::to_string))
            .filter(|k| after.is_none_or(|after| k.as_str() > after))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let mut entries = Vec::new();
        // Keys may expire between the scan and the read: read on until `limit`.
        for chunk in keys.chunks(limit.max(1)) {
            let full: Vec<String> = chunk.iter().map(|k| self.key(k)).collect();
            let values: Vec<Option<Vec<u8>>> = self
                .store
                .call(|mut c| async move { redis::cmd("MGET").arg(full).query_async(&mut c).await })
                .await?;
            for (key, value) in chunk.iter().zip(values) {
                if let Some(value) = value {
                    entries.push((key.clone(), value));
                    if entries.len() == limit {
                        return Ok(entries);
                    }
                }
            }
        }
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_password_and_globs_are_escaped() {
        assert_eq!(
            redacted("redis://:secret@127.0.0.1:6379/0"),
            "redis://***@127.0.0.1:6379/0"
        );
        assert_eq!(redacted("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
