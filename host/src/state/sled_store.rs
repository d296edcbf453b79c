//! The sled backend of the state store (`[state] backend = "sled"`, the default): one
//! database in a directory under the data path, one tree per namespace. Values carry
//! their expiry; expired values read as absent, are removed when read, and are
//! reclaimed by the sweep ([`SledStore::sweep`]) so that keys nobody reads again (a
//! counter per client address) do not grow the store without bound. Counters are
//! stored as decimal text, so `get` after `incr` reads `b"42"` (as on Redis).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::{NamespaceSize, StateError, Sweep};

/// One sled database.
#[derive(Clone)]
pub struct SledStore {
    db: sled::Db,
}

/// The tree of namespace `name` is `kv/NAME`.
const NAMESPACE_TREE_PREFIX: &str = "kv/";

impl SledStore {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        let db = sled::Config::new()
            .path(dir)
            .flush_every_ms(Some(200))
            .open()?;
        Ok(Self { db })
    }

    /// The key-value namespace `name`.
    pub fn namespace(&self, name: &str) -> Result<SledNamespace, StateError> {
        Ok(SledNamespace {
            tree: self
                .db
                .open_tree(format!("{NAMESPACE_TREE_PREFIX}{name}"))?,
        })
    }

    /// Removes every expired entry of every namespace and counts what is left. Blocks
    /// (it walks the whole store): run it off the async runtime. An entry written again
    /// while the sweep looks at it is left alone.
    pub fn sweep(&self) -> Result<Sweep, StateError> {
        let started = Instant::now();
        let now = now_ms();
        let mut removed = 0;
        let mut namespaces = BTreeMap::new();
        for tree_name in self.db.tree_names() {
            let Some(name) = tree_name
                .strip_prefix(NAMESPACE_TREE_PREFIX.as_bytes())
                .and_then(|n| std::str::from_utf8(n).ok())
            else {
                continue;
            };
            let tree = self.db.open_tree(&tree_name)?;
            let mut size = NamespaceSize::default();
            for item in tree.iter() {
                let (key, stored) = item?;
                match decode(&stored, now) {
                    Some((value, _)) => {
                        size.entries += 1;
                        size.bytes += (key.len() + value.len()) as u64;
                    }
                    None => {
                        if tree
                            .compare_and_swap(&key, Some(&stored), None as Option<&[u8]>)?
                            .is_ok()
                        {
                            removed += 1;
                        }
                    }
                }
            }
            namespaces.insert(name.to_string(), size);
        }
        Ok(Sweep {
            at: SystemTime::now(),
            took_ms: started.elapsed().as_millis() as u64,
            removed,
            namespaces,
        })
    }

    /// The store's size on disk in bytes, as sled counts it.
    pub fn size_on_disk(&self) -> Result<u64, StateError> {
        Ok(self.db.size_on_disk()?)
    }

    /// Writes everything to disk; called on shutdown.
    pub fn flush(&self) -> Result<(), StateError> {
        self.db.flush()?;
        Ok(())
    }
}

/// One key-value namespace: a sled tree.
#[derive(Clone)]
pub struct SledNamespace {
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

impl SledNamespace {
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

    /// Replaces the value under `key` with `value` (expiring after `ttl_ms` if given)
    /// only if the live value there is `expected` (`None`: no live value), atomically;
    /// whether it replaced it. The read-compute-write loop of a value no `incr` can
    /// express (a rate limiter's theoretical arrival time).
    pub fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
        ttl_ms: Option<u64>,
    ) -> Result<bool, StateError> {
        let now = now_ms();
        let fresh = encode(value, expiry(ttl_ms, now));
        loop {
            let current = self.tree.get(key)?;
            let live = current
                .as_ref()
                .and_then(|stored| decode(stored, now))
                .map(|(value, _)| value);
            if live != expected {
                return Ok(false);
            }
            match self
                .tree
                .compare_and_swap(key, current, Some(fresh.as_slice()))?
            {
                Ok(()) => return Ok(true),
                // Someone wrote meanwhile (or an expired value went): look again.
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
    //! What only sled shows: expired entries still on disk, and their removal; the
    //! semantics both backends share are the conformance suite in `state`.
    use super::*;

    fn store() -> (tempfile::TempDir, SledNamespace) {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let ns = store.namespace("test").unwrap();
        (dir, ns)
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
    fn compare_and_swap_replaces_only_the_expected_value() {
        let (_dir, ns) = store();
        assert!(
            ns.compare_and_swap("t", None, b"1", None).unwrap(),
            "absent"
        );
        assert!(
            !ns.compare_and_swap("t", None, b"2", None).unwrap(),
            "now present"
        );
        assert!(!ns.compare_and_swap("t", Some(b"0"), b"2", None).unwrap());
        assert!(ns.compare_and_swap("t", Some(b"1"), b"2", None).unwrap());
        assert_eq!(ns.get("t").unwrap().as_deref(), Some(&b"2"[..]));
        ns.tree.insert("old", encode(b"1", 1)).unwrap();
        assert!(
            !ns.compare_and_swap("old", Some(b"1"), b"2", None).unwrap(),
            "an expired value is not the expected one"
        );
        assert!(
            ns.compare_and_swap("old", None, b"2", Some(60_000))
                .unwrap()
        );
        let stored = ns.tree.get("old").unwrap().unwrap();
        assert!(
            decode(&stored, now_ms()).unwrap().1 > now_ms(),
            "the new ttl"
        );
    }

    #[test]
    fn compare_and_swap_loses_no_update_under_contention() {
        let (_dir, ns) = store();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let ns = ns.clone();
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        loop {
                            let current = ns.get("n").unwrap();
                            let n: u64 = current
                                .as_deref()
                                .map_or(0, |v| std::str::from_utf8(v).unwrap().parse().unwrap());
                            let next = (n + 1).to_string();
                            if ns
                                .compare_and_swap("n", current.as_deref(), next.as_bytes(), None)
                                .unwrap()
                            {
                                break;
                            }
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(ns.get("n").unwrap().as_deref(), Some(&b"1600"[..]));
    }

    #[test]
    fn sweep_reclaims_expired_entries_and_counts_live_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let a = store.namespace("a").unwrap();
        let b = store.namespace("b").unwrap();
        for i in 0..50 {
            a.tree.insert(format!("gone:{i}"), encode(b"x", 1)).unwrap();
        }
        a.set("live", b"value", None).unwrap();
        a.set("later", b"v", Some(60_000)).unwrap();
        b.tree.insert("gone", encode(b"x", 1)).unwrap();
        let sweep = store.sweep().unwrap();
        assert_eq!(sweep.removed, 51);
        assert_eq!(
            sweep.namespaces["a"],
            NamespaceSize {
                entries: 2,
                bytes: ("live".len() + 5 + "later".len() + 1) as u64
            }
        );
        assert_eq!(sweep.namespaces["b"], NamespaceSize::default());
        assert_eq!(a.tree.len(), 2, "the expired entries are gone from disk");
        assert_eq!(b.tree.len(), 0);
        assert_eq!(store.sweep().unwrap().removed, 0, "nothing left to reclaim");
    }
}
