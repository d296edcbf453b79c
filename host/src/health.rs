//! Health: active probes of every upstream endpoint, and the answers of `/health`,
//! `/health/live` and `/health/ready`.
//!
//! Every `interval`, each endpoint of each service in the serving snapshot is probed:
//! `GET health_path` (any 2xx or 3xx is up) when the service sets one, else a TCP
//! connect; the state store is checked too (Redis must answer a `PING`). A service is up while at least one endpoint is; the gateway is `degraded`
//! while any service (or the state store) is down. Results outlive reloads (they are kept by service and
//! endpoint), a change of state is logged as `upstream down` / `upstream up`, and
//! `service_health_status` follows.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::metrics::{Metrics, ServiceLabels};
use crate::server::Shared;
use crate::state::StateStore;
use crate::upstream::{Phase, Service};

/// The outcome of the latest probe of one endpoint.
#[derive(Debug, Clone)]
struct Probe {
    up: bool,
    response_time: Duration,
    at: SystemTime,
    error: Option<String>,
}

/// Probe results and the gateway's own state, shared by the prober and the endpoints.
pub struct Health {
    started: Instant,
    draining: AtomicBool,
    /// service → endpoint URL → latest probe.
    probes: Mutex<BTreeMap<String, BTreeMap<String, Probe>>>,
    /// The state store's backend and its latest check (`None`: not checked yet).
    state: Mutex<(&'static str, Option<Probe>)>,
    metrics: Arc<Metrics>,
}

impl Health {
    /// Health state for a gateway starting now.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            started: Instant::now(),
            draining: AtomicBool::new(false),
            probes: Mutex::new(BTreeMap::new()),
            state: Mutex::new(("sled", None)),
            metrics,
        }
    }

    /// Marks the gateway as shutting down: `/health/ready` answers 503 from now on.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// `GET /health/live`: the process serves requests.
    pub fn live(&self) -> (u16, serde_json::Value) {
        (200, json!({ "status": "alive" }))
    }

    /// `GET /health/ready`: 200 while serving, 503 once shutting down.
    pub fn ready(&self, generation: u64) -> (u16, serde_json::Value) {
        if self.draining.load(Ordering::Relaxed) {
            (
                503,
                json!({ "status": "draining", "generation": generation }),
            )
        } else {
            (200, json!({ "status": "ready", "generation": generation }))
        }
    }

    /// `GET /health`: overall status, version, uptime, generation and every service
    /// of `services` with its latest probes.
    pub fn report(&self, generation: u64, services: &[Arc<Service>]) -> (u16, serde_json::Value) {
        let probes = self.probes.lock().expect("health lock");
        let mut any_down = false;
        let mut out = serde_json::Map::new();
        for service in services {
            let known = probes.get(&*service.name);
            let state = service.status();
            let endpoints: Vec<serde_json::Value> = service
                .endpoints()
                .zip(&state.endpoints)
                .map(|(endpoint, now)| {
                    let probe = known.and_then(|k| k.get(&*endpoint.url));
                    json!({
                        "url": &*endpoint.url,
                        "status": status_word(probe.map(|p| p.up)),
                        "response_time_ms": probe.map(|p| millis(p.response_time)),
                        "last_check": probe.map(|p| rfc3339(p.at)),
                        "error": probe.and_then(|p| p.error.clone()),
                        "weight": now.weight,
                        "ejected": now.ejected_for_ms.is_some(),
                        "ejected_for_ms": now.ejected_for_ms,
                        "consecutive_failures": now.consecutive_failures,
                        "active_requests": now.active,
                        "circuit": now.circuit.map(Phase::as_str),
                    })
                })
                .collect();
            let latest: Vec<&Probe> = service
                .endpoints()
                .filter_map(|e| known.and_then(|k| k.get(&*e.url)))
                .collect();
            let up = (!latest.is_empty()).then(|| latest.iter().any(|p| p.up));
            let open = state.circuit == Some(Phase::Open);
            any_down |= up == Some(false) || open;
            let fastest = latest
                .iter()
                .filter(|p| p.up)
                .map(|p| p.response_time)
                .min();
            let last = latest.iter().map(|p| p.at).max();
            out.insert(
                service.name.to_string(),
                json!({
                    "status": if open { "unavailable" } else { status_word(up) },
                    "response_time": fastest.map(|t| format!("{}ms", t.as_millis())),
                    "response_time_ms": fastest.map(millis),
                    "last_check": last.map(rfc3339),
                    "balance": state.balance,
                    "circuit": state.circuit.map(Phase::as_str),
                    "endpoints": endpoints,
                }),
            );
        }
        let (backend, checked) = self.state.lock().expect("health lock").clone();
        any_down |= checked.as_ref().is_some_and(|p| !p.up);
        let state = json!({
            "backend": backend,
            "status": status_word(checked.as_ref().map(|p| p.up)),
            "response_time_ms": checked.as_ref().map(|p| millis(p.response_time)),
            "last_check": checked.as_ref().map(|p| rfc3339(p.at)),
            "error": checked.as_ref().and_then(|p| p.error.clone()),
        });
        let status = if any_down { "degraded" } else { "healthy" };
        let body = json!({
            "state": state,
            "status": status,
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_seconds": self.started.elapsed().as_secs(),
            "generation": generation,
            "timestamp": rfc3339(SystemTime::now()),
            "services": out,
        });
        (200, body)
    }

    /// Records one probe; logs and counts a change of the service's state.
    fn record(&self, service: &Service, endpoint: &str, probe: Probe) {
        let mut probes = self.probes.lock().expect("health lock");
        let known = probes.entry(service.name.to_string()).or_default();
        let service_was_up = service_up(service, known);
        let endpoint_was_up = known.get(endpoint).map(|p| p.up);
        if endpoint_was_up != Some(probe.up) {
            if probe.up {
                tracing::info!(event = "upstream_up", service = %service.name, endpoint, ms = millis(probe.response_time), "upstream up");
            } else {
                tracing::warn!(event = "upstream_down", service = %service.name, endpoint, error = probe.error.as_deref().unwrap_or(""), "upstream down");
            }
        }
        known.insert(endpoint.to_string(), probe);
        let service_is_up = service_up(service, known);
        if service_is_up != service_was_up
            && let Some(up) = service_is_up
        {
            self.metrics
                .service_health
                .get_or_create(&ServiceLabels {
                    service: service.name.clone(),
                })
                .set(i64::from(up));
        }
    }
}

/// Up when any endpoint's latest probe is up; `None` before any probe.
fn service_up(service: &Service, known: &BTreeMap<String, Probe>) -> Option<bool> {
    let mut latest = service
        .endpoints()
        .filter_map(|e| known.get(&*e.url))
        .peekable();
    latest.peek()?;
    Some(latest.any(|p| p.up))
}

fn status_word(up: Option<bool>) -> &'static str {
    match up {
        Some(true) => "healthy",
        Some(false) => "down",
        None => "unknown",
    }
}

fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 10_000.0).round() / 10.0
}

fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

/// Probes every endpoint of the serving snapshot's services, and the state store,
/// every `interval` (the first round at once) until `stop`.
pub fn spawn_prober(
    health: Arc<Health>,
    shared: Arc<Shared>,
    state: StateStore,
    interval: Duration,
    timeout: Duration,
    stop: CancellationToken,
) {
    *health.state.lock().expect("health lock") = (state.backend_name(), None);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = stop.cancelled() => return,
            }
            let snapshot = shared.snapshot.load_full();
            let mut round = tokio::task::JoinSet::new();
            for service in snapshot.services.values() {
                for index in 0..service.endpoints().len() {
                    let (service, health) = (service.clone(), health.clone());
                    round.spawn(async move {
                        let endpoint = service.endpoint(index);
                        let started = Instant::now();
                        let result = service.probe(endpoint, timeout).await;
                        let probe = Probe {
                            up: result.is_ok(),
                            response_time: started.elapsed(),
                            at: SystemTime::now(),
                            error: result.err(),
                        };
                        service.record_probe(index, probe.up);
                        health.record(&service, &endpoint.url, probe);
                    });
                }
            }
            let (state, checking) = (state.clone(), health.clone());
            round.spawn(async move {
                let started = Instant::now();
                let result = state.check().await;
                let probe = Probe {
                    up: result.is_ok(),
                    response_time: started.elapsed(),
                    at: SystemTime::now(),
                    error: result.err().map(|e| e.to_string()),
                };
                let mut recorded = checking.state.lock().expect("health lock");
                if recorded.1.as_ref().map(|p| p.up) != Some(probe.up) {
                    match probe.up {
                        true => tracing::info!(backend = recorded.0, "state store up"),
                        false => tracing::warn!(
                            backend = recorded.0,
                            error = probe.error.as_deref().unwrap_or(""),
                            "state store down"
                        ),
                    }
                }
                recorded.1 = Some(probe);
            });
            while round.join_next().await.is_some() {}
        }
    });
}
