//! Cached responses in `kv`: the entry format, lookups, stores under the size caps
//! with eviction, and purges. Every function returns the store's error for the
//! caller to log; none of them fails a request.
//!
//! **Size accounting.** `#bytes` (the ledger) holds the summed size of every entry
//! the index holds; each store adds an index record `#i:SEQ` → `SIZE ENTRY-KEY`, in
//! sequence order. An entry's size counts its key, its value, its vary spec and its
//! index record. A store first reserves its size on the ledger (`incr`, atomic, so
//! racing stores cannot both slip under the cap); while the ledger is over
//! `max_total_bytes`, the oldest index records are collected: each is claimed with
//! `delete` (so two instances never collect the same one), its entry deleted and its
//! size given back. A store that cannot get under the cap within a bounded amount of
//! work gives its reservation back and stores nothing.
//!
//! So the ledger is exactly the sum over index records, and the bytes really stored
//! are never more than it: an entry that expired, was overwritten or was purged is
//! still counted until its index record is collected (eviction is FIFO by store
//! time, and may evict a newer entry stored again under an old record's key, which
//! only costs a miss). Entries always carry a TTL (at most `max_ttl_seconds`), so
//! nothing outlives it even if a write fails half-way.

use std::time::Duration;

use wasmgate_plugin_sdk::kv;

use crate::key;

/// A cached response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its status.
    pub status: u16,
    /// When it was stored, minus the `Age` it arrived with (Unix ms): its age is
    /// now minus this.
    pub born_ms: u64,
    /// When it stops being fresh (Unix ms).
    pub expires_ms: u64,
    /// Its headers, as they will be served.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Its body.
    pub body: Vec<u8>,
}

const MAGIC: &[u8; 4] = b"wgc1";

impl Entry {
    /// The stored form: magic, status, the two times, the headers (length-prefixed),
    /// then the body (the rest).
    pub fn encode(&self) -> Vec<u8> {
        let headers: usize = self
            .headers
            .iter()
            .map(|(n, v)| 6 + n.len() + v.len())
            .sum();
        let mut out = Vec::with_capacity(24 + headers + self.body.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.status.to_be_bytes());
        out.extend_from_slice(&self.born_ms.to_be_bytes());
        out.extend_from_slice(&self.expires_ms.to_be_bytes());
        out.extend_from_slice(&(self.headers.len() as u16).to_be_bytes());
        for (name, value) in &self.headers {
            out.extend_from_slice(&(name.len() as u16).to_be_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&(value.len() as u32).to_be_bytes());
            out.extend_from_slice(value);
        }
        out.extend_from_slice(&self.body);
        out
    }

    /// Reads the stored form; `None` when it is not one.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader(bytes);
        if r.take(4)? != MAGIC {
            return None;
        }
        let status = u16::from_be_bytes(r.array()?);
        let born_ms = u64::from_be_bytes(r.array()?);
        let expires_ms = u64::from_be_bytes(r.array()?);
        let count = u16::from_be_bytes(r.array()?);
        let mut headers = Vec::with_capacity(count.into());
        for _ in 0..count {
            let len = u16::from_be_bytes(r.array()?);
            let name = std::str::from_utf8(r.take(len.into())?).ok()?.to_string();
            let len = u32::from_be_bytes(r.array()?);
            headers.push((name, r.take(len as usize)?.to_vec()));
        }
        Some(Self {
            status,
            born_ms,
            expires_ms,
            headers,
            body: r.0.to_vec(),
        })
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
}

/// The header names the stored response of `primary` varies on: `None` when
/// nothing is stored for it.
pub fn vary_spec(primary: &str) -> Result<Option<Vec<String>>, kv::Error> {
    Ok(kv::get(&key::spec(primary))?.map(|spec| {
        String::from_utf8_lossy(&spec)
            .split(',')
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect()
    }))
}

/// The fresh entry under `entry_key`, if any (a malformed one counts as none).
pub fn load(entry_key: &str, now_ms: u64) -> Result<Option<Entry>, kv::Error> {
    Ok(kv::get(entry_key)?
        .and_then(|bytes| Entry::decode(&bytes))
        .filter(|entry| entry.expires_ms > now_ms))
}

/// The caps a store works under.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    /// The largest entry stored, in bytes (as counted on the ledger).
    pub max_entry_bytes: u64,
    /// The ledger's cap.
    pub max_total_bytes: u64,
}

/// Why a response was not stored (besides a store error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skipped {
    /// Over `max_entry_bytes`; its size.
    TooLarge(u64),
    /// The cache could not be brought under `max_total_bytes` in one store's work.
    Full,
}

/// How many index records one store may collect to make room: bounded work per
/// request, whatever the cache holds.
const MAX_EVICTIONS: usize = 256;
/// Index records read per `scan` when evicting.
const EVICT_PAGE: u32 = 32;
/// Room for an index record's key and the size field, besides the entry key.
const INDEX_OVERHEAD: u64 = 48;

/// Stores `entry` under `primary`'s variant `variant` for `ttl`, with the vary spec
/// `names`, within `caps`. Ok(Err(…)) when it was not stored, with why; the number of
/// entries it evicted otherwise.
pub fn put(
    primary: &str,
    names: &[String],
    variant: &str,
    entry: &Entry,
    ttl: Duration,
    caps: Caps,
) -> Result<Result<usize, Skipped>, kv::Error> {
    let entry_key = key::entry(primary, variant);
    let spec_key = key::spec(primary);
    let spec = names.join(",");
    let value = entry.encode();
    let size =
        (entry_key.len() * 2 + value.len() + spec_key.len() + spec.len()) as u64 + INDEX_OVERHEAD;
    if size > caps.max_entry_bytes {
        return Ok(Err(Skipped::TooLarge(size)));
    }
    let size = size as i64;
    let mut total = kv::incr(key::LEDGER, size, None)?;
    let mut evicted = 0;
    while total > caps.max_total_bytes as i64 {
        let page = match kv::scan(key::INDEX, None, EVICT_PAGE) {
            Ok(page) => page,
            Err(e) => return Err(give_back(size, e)),
        };
        if page.is_empty() || evicted >= MAX_EVICTIONS {
            kv::incr(key::LEDGER, -size, None)?;
            return Ok(Err(Skipped::Full));
        }
        for (index_key, record) in page {
            if evicted >= MAX_EVICTIONS || total <= caps.max_total_bytes as i64 {
                break;
            }
            match collect(&index_key, &record) {
                Ok(Some(freed)) => {
                    total = kv::incr(key::LEDGER, -freed, None).map_err(|e| give_back(size, e))?;
                    evicted += 1;
                }
                Ok(None) => {} // another instance collected it first
                Err(e) => return Err(give_back(size, e)),
            }
        }
    }
    // The entry before its index record: an evictor that finds the record finds the
    // entry too. If a write fails, the reservation goes back; an entry left without
    // its record expires with its TTL.
    let seq = kv::incr(key::SEQUENCE, 1, None).map_err(|e| give_back(size, e))?;
    kv::set(&spec_key, spec.as_bytes(), Some(ttl)).map_err(|e| give_back(size, e))?;
    kv::set(&entry_key, &value, Some(ttl)).map_err(|e| give_back(size, e))?;
    let record = format!("{size} {entry_key}");
    if let Err(e) = kv::set(&key::index(seq), record.as_bytes(), None) {
        let _ = kv::delete(&entry_key);
        return Err(give_back(size, e));
    }
    Ok(Ok(evicted))
}

/// Gives a reservation back after a failed store (best effort) and hands on the error.
fn give_back(size: i64, error: kv::Error) -> kv::Error {
    let _ = kv::incr(key::LEDGER, -size, None);
    error
}

/// Collects one index record: claims it, deletes its entry; the size to give back,
/// or `None` when another instance claimed it first. A record that does not parse
/// frees nothing.
fn collect(index_key: &str, record: &[u8]) -> Result<Option<i64>, kv::Error> {
    if !kv::delete(index_key)? {
        return Ok(None);
    }
    let record = String::from_utf8_lossy(record);
    let Some((size, entry_key)) = record.split_once(' ') else {
        return Ok(Some(0));
    };
    kv::delete(entry_key)?;
    Ok(Some(size.parse().unwrap_or(0)))
}

/// Deletes every entry and spec under the key prefixes `prefixes`, at most `limit`
/// keys in all: (entries deleted, whether keys were left over). Sizes are given back
/// when eviction collects the index records.
pub fn purge(prefixes: &[String], limit: usize) -> Result<(usize, bool), kv::Error> {
    let mut purged = 0;
    let mut deleted = 0;
    for prefix in prefixes {
        let mut after: Option<String> = None;
        loop {
            let page = kv::scan(prefix, after.as_deref(), 256)?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            for (key, _) in page {
                if deleted == limit {
                    return Ok((purged, true));
                }
                if kv::delete(&key)? && key::is_entry(&key) {
                    purged += 1;
                }
                deleted += 1;
            }
        }
    }
    Ok((purged, false))
}

/// Deletes everything in the namespace, bookkeeping included (the ledger starts
/// again at 0), at most `limit` keys: (entries deleted, whether keys were left over).
pub fn purge_all(limit: usize) -> Result<(usize, bool), kv::Error> {
    purge(&[String::new()], limit)
}

/// The ledger: bytes counted against `max_total_bytes`.
pub fn stored_bytes() -> Result<i64, kv::Error> {
    Ok(kv::get(key::LEDGER)?
        .and_then(|v| String::from_utf8(v).ok()?.parse().ok())
        .unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_junk_is_refused() {
        let entry = Entry {
            status: 203,
            born_ms: 7,
            expires_ms: 9,
            headers: vec![("content-type".into(), b"text/plain".to_vec())],
            body: b"\x00body\xff".to_vec(),
        };
        assert_eq!(Entry::decode(&entry.encode()), Some(entry.clone()));
        let bytes = entry.encode();
        assert_eq!(Entry::decode(&bytes[..20]), None);
        assert_eq!(Entry::decode(b"junk"), None);
    }
}
