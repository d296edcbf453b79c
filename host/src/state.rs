//! The state store behind the plugins' `kv` import: sled in a directory under the data
//! path, one tree per namespace. Values carry their expiry; expired values read as
//! absent and are removed when read. Counters are stored as decimal text, so `get`
//! after `incr` reads `b"42"` (the same as Redis would).
//!
//! This module owns persistence only; who may use which namespace is decided by the
//! plugin runtime from the config.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// A failure of the state store.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The embedded database failed.
    #[error("state store: {0}")]
    Sled(#[from] sled::Error),
    /// `incr` on a value that is not a decimal integer.
    #[error("value of {0:?} is not an integer")]
    NotAnInteger(String),
    /// `incr` would overflow a signed 64-bit integer.
    #[error("incr of {0:?} overflows")]
    Overflow(String),
}

/// The whole store: one sled database.
#[derive(Clone)]
pub struct StateStore {
    db: sled::Db,
}

impl StateStore {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        let db = sled::Config::new()
            .path(dir)
            .flush_every_ms(Some(200))
            .open()?;
        Ok(Self { db })
    }

    /// The key-value namespace `name`.
    pub fn namespace(&self, name: &str) -> Result<Namespace, StateError> {
        Ok(Namespace {
            tree: self.db.open_tree(format!("kv/{name}"))?,
        })
    }

    /// Writes everything to disk; called on shutdown.
    pub fn flush(&self) -> Result<(), StateError> {
        self.db.flush()?;
        Ok(())
    }
}

/// One key-value namespace.
#[derive(Clone)]
pub struct Namespace {
    tree: sled::Tree,
}

/// 8 bytes of big-endian expiry (ms since the epoch, 0 for never), then the value.
const HEADER_LEN: usize = 8;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn encode(value: &[u8], expires_at: u64) -> Vec<u8> {
    let mut stored = Vec::with_capacity(HEADER_LEN + value.len());
    stored.extend_from_slice(&expires_at.to_be_bytes());
    stored.extend_from_slice(value);
    stored
}

/// The live value of a stored entry, or `None` if it has expired (or is corrupt).
fn decode(stored: &[u8], now: u64) -> Option<(&[u8], u64)> {
    let (head, value) = stored.split_at_checked(HEADER_LEN)?;
    let expires_at = u64::from_be_bytes(head.try_into().ok()?);
    (expires_at == 0 || expires_at > now).then_some((value, expires_at))
}

fn expiry(ttl_ms: Option<u64>, now: u64) -> u64 {
    ttl_ms.map_or(0, |ttl| now.saturating_add(ttl.max(1)))
}

impl Namespace {
    /// The value under `key`, if present and not expired.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        let Some(stored) = self.tree.get(key)? else {
            return Ok(None);
        };
        match decode(&stored, now_ms()) {
            Some((value, _)) => Ok(Some(value.to_vec())),
            None => {
                // Expired: remove it unless someone wrote a new value meanwhile.
                let _ = self
                    .tree
                    .compare_and_swap(key, Some(stored), None as Option<&[u8]>)?;
                Ok(None)
            }
        }
    }

    /// Stores `value` under `key`, expiring after `ttl_ms` if given.
    pub fn set(&self, key: &str, value: &[u8], ttl_ms: Option<u64>) -> Result<(), StateError> {
        self.tree
            .insert(key, encode(value, expiry(ttl_ms, now_ms())))?;
        Ok(())
    }

    /// Adds `delta` to the integer under `key` (absent or expired counts as 0) and
    /// returns the new value; `ttl_ms` applies only when the key is created.
    pub fn incr(&self, key: &str, delta: i64, ttl_ms: Option<u64>) -> Result<i64, StateError> {
        let now = now_ms();
        let mut failure = None;
        let mut result = 0;
        self.tree.fetch_and_update(key, |old| {
            let (current, expires_at) = match old.and_then(|stored| decode(stored, now)) {
                Some((value, expires_at)) => {
                    match std::str::from_utf8(value)
                        .ok()
                        .and_then(|t| t.parse::<i64>().ok())
                    {
                        Some(n) => (n, expires_at),
                        None => {
                            failure = Some(StateError::NotAnInteger(key.to_string()));
                            return old.map(<[u8]>::to_vec);
                        }
                    }
                }
                None => (0, expiry(ttl_ms, now)),
            };
            let Some(next) = current.checked_add(delta) else {
                failure = Some(StateError::Overflow(key.to_string()));
                return old.map(<[u8]>::to_vec);
            };
            failure = None;
            result = next;
            Some(encode(next.to_string().as_bytes(), expires_at))
        })?;
        match failure {
            Some(error) => Err(error),
            None => Ok(result),
        }
    }

    /// Puts every write so far on disk (the whole store's log, which the namespaces
    /// share): a durable write returns only after this. Concurrent callers share the
    /// flushes sled makes.
    pub async fn flush(&self) -> Result<(), StateError> {
        self.tree.flush_async().await?;
        Ok(())
    }

    /// Removes `key`; whether a live value was there.
    pub fn delete(&self, key: &str) -> Result<bool, StateError> {
        Ok(self
            .tree
            .remove(key)?
            .is_some_and(|stored| decode(&stored, now_ms()).is_some()))
    }

    /// Stores `value` under `key` only if no live value is there (an expired one is
    /// replaced), atomically; whether it was stored.
    pub fn insert(&self, key: &str, value: &[u8], ttl_ms: Option<u64>) -> Result<bool, StateError> {
        let now = now_ms();
        let fresh = encode(value, expiry(ttl_ms, now));
        loop {
            let current = self.tree.get(key)?;
            if current
                .as_ref()
                .is_some_and(|stored| decode(stored, now).is_some())
            {
                return Ok(false);
            }
            match self
                .tree
                .compare_and_swap(key, current, Some(fresh.as_slice()))?
            {
                Ok(()) => return Ok(true),
                // Someone wrote meanwhile: look again.
                Err(_) => continue,
            }
        }
    }

    /// Up to `limit` live entries whose keys start with `prefix`, in key order, starting
    /// after the key `after` when given.
    pub fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StateError> {
        let now = now_ms();
        let mut entries = Vec::new();
        let range = match after {
            Some(after) if after.as_bytes() >= prefix.as_bytes() => self.tree.range::<&[u8], _>((
                std::ops::Bound::Excluded(after.as_bytes()),
                std::ops::Bound::Unbounded,
            )),
            _ => self.tree.range::<&[u8], _>(prefix.as_bytes()..),
        };
        for item in range {
            if entries.len() >= limit {
                break;
            }
            let (key, stored) = item?;
            if !key.starts_with(prefix.as_bytes()) {
                break;
            }
            let Some((value, _)) = decode(&stored, now) else {
                continue;
            };
            // Keys are written from `string`s, so they are UTF-8.
            let Ok(key) = String::from_utf8(key.to_vec()) else {
                continue;
            };
            entries.push((key, value.to_vec()));
        }
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Namespace) {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let ns = store.namespace("test").unwrap();
        (dir, ns)
    }

    #[test]
    fn set_get_delete() {
        let (_dir, ns) = store();
        assert_eq!(ns.get("a").unwrap(), None);
        ns.set("a", b"1", None).unwrap();
        assert_eq!(ns.get("a").unwrap().as_deref(), Some(&b"1"[..]));
        assert!(ns.delete("a").unwrap());
        assert!(!ns.delete("a").unwrap());
    }

    #[test]
    fn incr_counts_and_refuses_text() {
        let (_dir, ns) = store();
        assert_eq!(ns.incr("n", 2, None).unwrap(), 2);
        assert_eq!(ns.incr("n", -5, None).unwrap(), -3);
        assert_eq!(ns.get("n").unwrap().as_deref(), Some(&b"-3"[..]));
        ns.set("t", b"text", None).unwrap();
        assert!(matches!(
            ns.incr("t", 1, None),
            Err(StateError::NotAnInteger(_))
        ));
        ns.set("max", i64::MAX.to_string().as_bytes(), None)
            .unwrap();
        assert!(matches!(
            ns.incr("max", 1, None),
            Err(StateError::Overflow(_))
        ));
    }

    #[test]
    fn expired_values_read_as_absent() {
        let (_dir, ns) = store();
        ns.set("old", b"x", Some(1)).unwrap();
        let stored = ns.tree.get("old").unwrap().unwrap();
        assert_eq!(decode(&stored, u64::MAX), None);
        ns.tree.insert("gone", encode(b"x", 1)).unwrap();
        assert_eq!(ns.get("gone").unwrap(), None);
        assert!(
            ns.tree.get("gone").unwrap().is_none(),
            "expired entry removed"
        );
        ns.tree.insert("c", encode(b"7", 1)).unwrap();
        assert_eq!(
            ns.incr("c", 1, None).unwrap(),
            1,
            "expired counter restarts"
        );
    }

    #[test]
    fn insert_claims_a_key_once() {
        let (_dir, ns) = store();
        assert!(ns.insert("name:alice", b"1", None).unwrap());
        assert!(!ns.insert("name:alice", b"2", None).unwrap());
        assert_eq!(ns.get("name:alice").unwrap().as_deref(), Some(&b"1"[..]));
        ns.tree.insert("name:bob", encode(b"old", 1)).unwrap();
        assert!(
            ns.insert("name:bob", b"new", None).unwrap(),
            "expired is free"
        );
        assert_eq!(ns.get("name:bob").unwrap().as_deref(), Some(&b"new"[..]));
    }

    #[test]
    fn scan_pages_through_live_entries_under_a_prefix() {
        let (_dir, ns) = store();
        for key in ["a", "key:1", "key:2", "key:3", "key:4", "kez"] {
            ns.set(key, key.as_bytes(), None).unwrap();
        }
        ns.tree.insert("key:25", encode(b"gone", 1)).unwrap();
        let keys = |entries: Vec<(String, Vec<u8>)>| -> Vec<String> {
            entries.into_iter().map(|(k, _)| k).collect()
        };
        assert_eq!(keys(ns.scan("key:", None, 2).unwrap()), ["key:1", "key:2"]);
        assert_eq!(
            keys(ns.scan("key:", Some("key:2"), 10).unwrap()),
            ["key:3", "key:4"],
            "the expired key:25 is skipped"
        );
        assert_eq!(ns.scan("key:", Some("key:4"), 10).unwrap(), vec![]);
        assert_eq!(keys(ns.scan("", None, 10).unwrap()).len(), 6);
        assert_eq!(ns.scan("key:1", None, 1).unwrap()[0].1, b"key:1");
    }

    #[test]
    fn namespaces_are_separate() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        store.namespace("a").unwrap().set("k", b"1", None).unwrap();
        assert_eq!(store.namespace("b").unwrap().get("k").unwrap(), None);
    }
}
