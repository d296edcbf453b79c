//! The registry's records in `kv`, shared by every route (and every gateway replica on
//! one Redis) that runs the plugin with the same namespace:
//!
//! | key | value |
//! |---|---|
//! | `svc/SERVICE` | the service's instances ([`Instance`]s, a JSON array in id order) |
//! | `id/ID` | the service the instance `ID` is registered under |
//! | `rr/SERVICE` | the round-robin counter of the service's proxied requests |
//!
//! A service's instances are one value, so the proxy reads them with one `get` (a
//! `scan`, on Redis, walks every key of the store); every change is a
//! compare-and-swap of that value, so concurrent registrations and heartbeats lose
//! nothing. An instance counts as live for `heartbeat_ttl` after its last heartbeat;
//! one silent for `forget_after` is left out when the value is next read or written,
//! and a value nobody writes for `forget_after` expires.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use wasmgate_plugin_sdk::{clock, kv};

/// The longest service name and instance id, in bytes.
pub const MAX_NAME_BYTES: usize = 128;
/// The most instances one service may have.
pub const MAX_INSTANCES: usize = 1000;
/// The most services read for one listing.
pub const MAX_LISTED: usize = 10_000;

/// One registered instance of a service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    /// Its id, unique in the registry.
    pub id: String,
    /// The service it is an instance of.
    pub name: String,
    /// Its host: an IP address or a DNS name.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// Where proxied requests go: `http://HOST:PORT`.
    pub url: String,
    /// Where the instance says its health can be checked, if it said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check_url: Option<String>,
    /// The instance's version, if it said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Anything else the instance sent at registration.
    #[serde(default)]
    pub metadata: Map<String, Value>,
    /// When it (last) registered, RFC 3339.
    pub registered_at: String,
    /// Its last heartbeat (or registration), Unix milliseconds.
    pub last_heartbeat_ms: u64,
}

impl Instance {
    /// Whether it has sent a heartbeat within `ttl` before `now_ms`.
    pub fn is_live(&self, ttl: Duration, now_ms: u64) -> bool {
        now_ms.saturating_sub(self.last_heartbeat_ms) <= ttl.as_millis() as u64
    }

    /// What the API shows of it at `now_ms`: the record with its status and its last
    /// heartbeat as a date.
    pub fn listed(&self, ttl: Duration, now_ms: u64) -> Value {
        let mut value = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(fields) = &mut value {
            fields.remove("last_heartbeat_ms");
            fields.insert(
                "last_heartbeat".into(),
                clock::rfc3339_utc(self.last_heartbeat_ms).into(),
            );
            let status = if self.is_live(ttl, now_ms) {
                "healthy"
            } else {
                "unhealthy"
            };
            fields.insert("status".into(), status.into());
        }
        value
    }
}

/// Whether `text` may name a service or an instance: 1 to 128 ASCII letters, digits,
/// `.`, `_`, `-` or `:` (so it is one path segment and one key segment as it is).
pub fn is_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_NAME_BYTES
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'))
}

const SERVICE_PREFIX: &str = "svc/";

fn service_key(service: &str) -> String {
    format!("{SERVICE_PREFIX}{service}")
}

fn id_key(id: &str) -> String {
    format!("id/{id}")
}

/// The instances stored in `bytes` that were heard from within `keep` before
/// `now_ms`.
fn parse(bytes: &[u8], keep: Duration, now_ms: u64) -> Vec<Instance> {
    let mut instances: Vec<Instance> = serde_json::from_slice(bytes).unwrap_or_default();
    instances.retain(|i| i.is_live(keep, now_ms));
    instances
}

/// The instances of `service` heard from within `keep`, in id order.
pub fn instances(service: &str, keep: Duration, now_ms: u64) -> Result<Vec<Instance>, kv::Error> {
    Ok(kv::get(&service_key(service))?
        .map(|bytes| parse(&bytes, keep, now_ms))
        .unwrap_or_default())
}

/// Changes the instances of `service` with `change` (which gets them in id order,
/// the forgotten ones left out), atomically against every other writer, and keeps
/// them for `keep`; what `change` returned. `change` may run more than once.
fn update<R>(
    service: &str,
    keep: Duration,
    now_ms: u64,
    durable: bool,
    mut change: impl FnMut(&mut Vec<Instance>) -> R,
) -> Result<R, kv::Error> {
    let key = service_key(service);
    // Each try loses only to another write of the same service meanwhile.
    for _ in 0..64 {
        let stored = kv::get(&key)?;
        let mut instances = stored
            .as_deref()
            .map(|bytes| parse(bytes, keep, now_ms))
            .unwrap_or_default();
        let result = change(&mut instances);
        instances.sort_by(|a, b| a.id.cmp(&b.id));
        let value = serde_json::to_vec(&instances).expect("instances serialize");
        let swapped = if durable {
            kv::compare_and_swap_durable(&key, stored.as_deref(), &value, Some(keep))?
        } else {
            kv::compare_and_swap(&key, stored.as_deref(), &value, Some(keep))?
        };
        if swapped {
            return Ok(result);
        }
    }
    Err(kv::Error::Store(format!(
        "service {service:?} changed under every try"
    )))
}

/// The instance registered as `id`.
pub fn load(id: &str, keep: Duration, now_ms: u64) -> Result<Option<Instance>, kv::Error> {
    let Some(service) = kv::get(&id_key(id))? else {
        return Ok(None);
    };
    let service = String::from_utf8_lossy(&service);
    Ok(instances(&service, keep, now_ms)?
        .into_iter()
        .find(|i| i.id == id))
}

/// Stores `instance` (durably), replacing one of the same id, under another service
/// too; it is kept `keep` without a heartbeat. `false` when its service already has
/// [`MAX_INSTANCES`] other instances.
pub fn register(instance: &Instance, keep: Duration, now_ms: u64) -> Result<bool, kv::Error> {
    if let Some(previous) = kv::get(&id_key(&instance.id))? {
        let previous = String::from_utf8_lossy(&previous);
        if previous != instance.name {
            update(&previous, keep, now_ms, true, |all| {
                all.retain(|i| i.id != instance.id)
            })?;
        }
    }
    kv::set_durable(&id_key(&instance.id), instance.name.as_bytes(), Some(keep))?;
    update(&instance.name, keep, now_ms, true, |all| {
        all.retain(|i| i.id != instance.id);
        if all.len() >= MAX_INSTANCES {
            return false;
        }
        all.push(instance.clone());
        true
    })
}

/// Records a heartbeat of `id` at `now_ms`; the instance, or `None` when no instance
/// has that id (unregistered, cleaned up or forgotten: it must register again). A
/// heartbeat racing an unregistration never brings the instance back.
pub fn heartbeat(id: &str, now_ms: u64, keep: Duration) -> Result<Option<Instance>, kv::Error> {
    let Some(service) = kv::get(&id_key(id))? else {
        return Ok(None);
    };
    let service = String::from_utf8_lossy(&service).into_owned();
    let beat = update(&service, keep, now_ms, false, |all| {
        let instance = all.iter_mut().find(|i| i.id == id)?;
        instance.last_heartbeat_ms = now_ms.max(instance.last_heartbeat_ms);
        Some(instance.clone())
    })?;
    if beat.is_some() {
        kv::set(&id_key(id), service.as_bytes(), Some(keep))?;
    }
    Ok(beat)
}

/// Removes `id`; the instance it was, if any.
pub fn unregister(id: &str, keep: Duration, now_ms: u64) -> Result<Option<Instance>, kv::Error> {
    let Some(service) = kv::get(&id_key(id))? else {
        return Ok(None);
    };
    let service = String::from_utf8_lossy(&service).into_owned();
    let gone = update(&service, keep, now_ms, true, |all| {
        let at = all.iter().position(|i| i.id == id)?;
        Some(all.remove(at))
    })?;
    kv::delete_durable(&id_key(id))?;
    Ok(gone)
}

/// Removes every instance not heard from within `ttl`; their ids.
pub fn remove_silent(ttl: Duration, keep: Duration, now_ms: u64) -> Result<Vec<String>, kv::Error> {
    let mut removed = Vec::new();
    for service in services()? {
        let silent = update(&service, keep, now_ms, true, |all| {
            let (live, silent): (Vec<Instance>, Vec<Instance>) =
                all.drain(..).partition(|i| i.is_live(ttl, now_ms));
            *all = live;
            silent
        })?;
        for instance in silent {
            kv::delete_durable(&id_key(&instance.id))?;
            removed.push(instance.id);
        }
    }
    Ok(removed)
}

/// The names of every service with a stored value (up to [`MAX_LISTED`]), in order.
fn services() -> Result<Vec<String>, kv::Error> {
    Ok(pages()?.into_iter().map(|(service, _)| service).collect())
}

/// Every service's stored value, up to [`MAX_LISTED`] services.
fn pages() -> Result<Vec<(String, Vec<u8>)>, kv::Error> {
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    while all.len() < MAX_LISTED {
        let page = kv::scan(SERVICE_PREFIX, after.as_deref(), 1000)?;
        let Some((last, _)) = page.last() else {
            break;
        };
        after = Some(last.clone());
        let full = page.len() == 1000;
        all.extend(
            page.into_iter()
                .map(|(key, value)| (key[SERVICE_PREFIX.len()..].to_string(), value)),
        );
        if !full {
            break;
        }
    }
    all.truncate(MAX_LISTED);
    Ok(all)
}

/// Every instance heard from within `keep`, in service then id order.
pub fn all(keep: Duration, now_ms: u64) -> Result<Vec<Instance>, kv::Error> {
    Ok(pages()?
        .iter()
        .flat_map(|(_, bytes)| parse(bytes, keep, now_ms))
        .collect())
}

/// The next value of `service`'s round-robin counter.
pub fn next_turn(service: &str, keep: Duration) -> Result<u64, kv::Error> {
    kv::incr(&format!("rr/{service}"), 1, Some(keep)).map(|n| n.unsigned_abs())
}
