//! API keys and where they live in `kv`.
//!
//! A key reads `wgk_<id>_<secret>`: `id` is 12 hex digits that name the key in
//! listings and logs, `secret` 32 random bytes in base64url. Only the SHA-256 of the
//! whole key is stored (`apikey:<id>` → [`Record`]), so a copy of the store gives no
//! usable key; a key is random, not a password, so a fast hash is enough. A revoked
//! consumer is `consumer-revoked:<name>`: every key of theirs is refused, now and
//! later.
//!
//! Writes are durable (on disk before they return): each one is something the
//! management API tells its client was done (a key created, a key or consumer
//! revoked), and a revocation lost in a crash would let a revoked key back in.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use wasmgate_plugin_sdk::kv;

/// What is stored for one key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Record {
    /// The key's id (12 hex digits).
    pub id: String,
    /// SHA-256 of the whole key, hex.
    pub hash: String,
    /// Who the key belongs to.
    pub consumer: String,
    /// The role it acts with, if any.
    pub role: Option<String>,
    /// Permissions granted directly.
    pub permissions: Vec<String>,
    /// The rate-limit tier, e.g. `free`, `pro`.
    pub tier: Option<String>,
    /// A label for people.
    pub name: Option<String>,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// Unix ms after which the key is refused, if it expires.
    pub expires_at_ms: Option<u64>,
    /// RFC 3339 UTC, once revoked.
    pub revoked_at: Option<String>,
}

/// The prefix of every key.
pub const KEY_PREFIX: &str = "wgk_";
const RECORD_PREFIX: &str = "apikey:";

/// A new key: (the key to hand out once, its id).
pub fn generate() -> Result<(String, String), String> {
    let mut bytes = [0u8; 38];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
    let id: String = bytes[..6].iter().map(|b| format!("{b:02x}")).collect();
    let secret = URL_SAFE_NO_PAD.encode(&bytes[6..]);
    Ok((format!("{KEY_PREFIX}{id}_{secret}"), id))
}

/// The id of a key of the right shape.
pub fn id_of(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(KEY_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let hex = id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit());
    let secret_ok = secret.len() == 43
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (hex && secret_ok).then_some(id)
}

/// SHA-256 of `key`, hex.
pub fn hash(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Compares two hashes in time independent of where they differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// `kv`'s error as this module's.
fn store_error(error: kv::Error) -> String {
    error.to_string()
}

/// The record of key `id`.
pub fn load(id: &str) -> Result<Option<Record>, String> {
    match kv::get(&format!("{RECORD_PREFIX}{id}")).map_err(store_error)? {
        Some(json) => serde_json::from_slice(&json)
            .map(Some)
            .map_err(|e| format!("key {id}: corrupt record: {e}")),
        None => Ok(None),
    }
}

/// Stores `record` durably; with `new`, only if no key has its id.
pub fn store(record: &Record, new: bool) -> Result<bool, String> {
    let json = serde_json::to_vec(record).map_err(|e| e.to_string())?;
    let key = format!("{RECORD_PREFIX}{}", record.id);
    if new {
        kv::insert_durable(&key, &json, None).map_err(store_error)
    } else {
        kv::set_durable(&key, &json, None)
            .map(|()| true)
            .map_err(store_error)
    }
}

/// Every record, in id order.
pub fn all() -> Result<Vec<Record>, String> {
    let mut records = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = kv::scan(RECORD_PREFIX, after.as_deref(), 500).map_err(store_error)?;
        let Some((last, _)) = page.last() else {
            return Ok(records);
        };
        after = Some(last.clone());
        for (key, json) in &page {
            let record =
                serde_json::from_slice(json).map_err(|e| format!("{key}: corrupt record: {e}"))?;
            records.push(record);
        }
    }
}

fn consumer_key(consumer: &str) -> String {
    format!("consumer-revoked:{consumer}")
}

/// Whether `consumer` was revoked.
pub fn consumer_revoked(consumer: &str) -> Result<bool, String> {
    Ok(kv::get(&consumer_key(consumer))
        .map_err(store_error)?
        .is_some())
}

/// Revokes `consumer`, durably: every key of theirs is refused from now on.
pub fn revoke_consumer(consumer: &str, at: &str) -> Result<(), String> {
    kv::set_durable(&consumer_key(consumer), at.as_bytes(), None).map_err(store_error)
}

/// Whether `name` is a sane consumer name: 1 to 64 of letters, digits, `.`, `_`,
/// `-`, `@`.
pub fn is_consumer_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'))
}
