//! The gateway's Prometheus metrics: the families the gateway itself records (requests,
//! upstream calls, plugin calls and errors, reloads, service health) and the metrics
//! plugins record through the `metrics` import, rendered in the OpenMetrics text
//! format for `GET /metrics`.
//!
//! Plugin metrics are namespaced by a `plugin` label and bounded: the rules (name
//! syntax, reserved prefixes, one kind per name, at most 4 labels, at most 100 label
//! combinations per metric and plugin) are checked here and a call that breaks one is
//! refused with the reason, which the plugin sees as an error.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

pub use crate::metric_rules::{MAX_LABEL_VALUE, MAX_LABELS, MAX_SERIES, RESERVED_PREFIXES};
use crate::metric_rules::{check_labels, check_name};

type Labels = Vec<(String, String)>;
type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Buckets for request and upstream durations: 1 ms to ~16 s.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// Buckets for plugin calls: 5 µs to ~20 ms.
fn plugin_call_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_005, 2.0, 13))
}

/// Prometheus's default buckets, for plugin histograms.
fn default_histogram() -> Histogram {
    Histogram::new([
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ])
}

/// `route`, `method`, `status` of a served request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route's name, `unmatched` when no route took the request.
    pub route: Arc<str>,
    /// The method, `OTHER` for a non-standard one.
    pub method: &'static str,
    /// The status code sent.
    pub status: u16,
}

/// `route`, `method` of a served request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The route's name, `unmatched` when no route took the request.
    pub route: Arc<str>,
    /// The method, `OTHER` for a non-standard one.
    pub method: &'static str,
}

/// `service`, `endpoint` of an upstream call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    /// The service's name.
    pub service: Arc<str>,
    /// The endpoint's base URL.
    pub endpoint: Arc<str>,
}

/// `service`, `endpoint`, `kind` of a failed upstream call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamErrorLabels {
    /// The service's name.
    pub service: Arc<str>,
    /// The endpoint's base URL.
    pub endpoint: Arc<str>,
    /// `connect`, `timeout` or `protocol`.
    pub kind: &'static str,
}

/// `service`, `reason` of an upstream retry.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RetryLabels {
    /// The service's name.
    pub service: Arc<str>,
    /// What failed: `connect`, `reset`, `timeout` or `5xx`.
    pub reason: &'static str,
}

/// `plugin`, `phase` of a plugin call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginCallLabels {
    /// The plugin's name.
    pub plugin: Arc<str>,
    /// `request`, `response`, `log` or `message` (a WebSocket message).
    pub phase: &'static str,
}

/// `plugin`, `kind` of a failed plugin call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginErrorLabels {
    /// The plugin's name.
    pub plugin: Arc<str>,
    /// The failure kind: `timeout`, `trap`, `out_of_memory`, `invalid_output`…
    pub kind: &'static str,
}

/// `route`, `encoding` of a compressed response.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CompressionLabels {
    /// The route's name.
    pub route: Arc<str>,
    /// The content coding: `br`, `zstd` or `gzip`.
    pub encoding: &'static str,
}

/// `service`
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceLabels {
    /// The service's name.
    pub service: Arc<str>,
}

/// `result` of a reload.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// `applied` or `rejected`.
    pub result: &'static str,
}

/// `reason` a client connection was refused.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusedLabels {
    /// `max_connections` or `per_client`.
    pub reason: &'static str,
}

/// `route` of a WebSocket.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SocketLabels {
    /// The route's name.
    pub route: Arc<str>,
}

/// `route`, `direction` of relayed messages.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MessageLabels {
    /// The route's name.
    pub route: Arc<str>,
    /// `client_to_upstream` or `upstream_to_client`.
    pub direction: &'static str,
}

/// `route`, `code`, `by` of a closed WebSocket.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CloseLabels {
    /// The route's name.
    pub route: Arc<str>,
    /// The close code that ended it (`1006` when a side went away without one;
    /// application codes counted as `3000` and `4000`).
    pub code: u16,
    /// Who ended it: `client`, `upstream` or `gateway`.
    pub by: &'static str,
}

/// `namespace` of the state store.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NamespaceLabels {
    /// The `kv` namespace (the plugin's name unless configured).
    pub namespace: String,
}

/// A metric a plugin made through the `metrics` import.
#[derive(Clone)]
enum PluginMetric {
    Counter(Family<Labels, Counter>),
    Gauge(Family<Labels, Gauge<f64, AtomicU64>>),
    Histogram(HistogramFamily<Labels>),
}

impl PluginMetric {
    fn kind(&self) -> &'static str {
        match self {
            Self::Counter(_) => "counter",
            Self::Gauge(_) => "gauge",
            Self::Histogram(_) => "histogram",
        }
    }
}

/// The value a plugin records.
#[derive(Debug, Clone, Copy)]
pub enum PluginValue {
    /// `counter-add`
    Counter(u64),
    /// `gauge-set`
    Gauge(f64),
    /// `histogram-observe`
    Histogram(f64),
}

#[derive(Default)]
struct PluginMetrics {
    by_name: HashMap<String, PluginMetric>,
    /// Label sets seen per (metric, plugin), to bound them.
    series: HashMap<(String, String), HashSet<Labels>>,
}

/// Every metric the gateway exports.
pub struct Metrics {
    registry: Mutex<Registry>,
    plugin: Mutex<PluginMetrics>,
    /// `http_requests_total{route,method,status}`
    pub requests: Family<RequestLabels, Counter>,
    /// `http_request_duration_seconds{route,method}`: until the response headers.
    pub request_duration: HistogramFamily<RouteLabels>,
    /// `http_requests_in_progress`
    pub in_progress: Gauge,
    /// `upstream_request_duration_seconds{service,endpoint}`: until response headers.
    pub upstream_duration: HistogramFamily<EndpointLabels>,
    /// `upstream_errors_total{service,endpoint,kind}`
    pub upstream_errors: Family<UpstreamErrorLabels, Counter>,
    /// `service_health_status{service}`: 1 up, 0 down.
    pub service_health: Family<ServiceLabels, Gauge>,
    /// `upstream_retries_total{service,reason}`
    pub upstream_retries: Family<RetryLabels, Counter>,
    /// `upstream_circuit_state{service}`: 0 closed, 1 half-open, 2 open.
    pub upstream_circuit: Family<ServiceLabels, Gauge>,
    /// `upstream_ejections_total{service,endpoint}`: outlier ejections.
    pub upstream_ejections: Family<EndpointLabels, Counter>,
    /// `upstream_ejected{service,endpoint}`: 1 while ejected.
    pub upstream_ejected: Family<EndpointLabels, Gauge>,
    /// `plugin_call_duration_seconds{plugin,phase}`
    pub plugin_call_duration: HistogramFamily<PluginCallLabels>,
    /// `plugin_errors_total{plugin,kind}`
    pub plugin_errors: Family<PluginErrorLabels, Counter>,
    /// `plugin_reloads_total{result}`
    pub reloads: Family<ReloadLabels, Counter>,
    /// `wasmgate_compressed_responses_total{route,encoding}`
    pub compressed_responses: Family<CompressionLabels, Counter>,
    /// `wasmgate_compression_in_bytes_total{route,encoding}`: bytes fed to encoders.
    pub compression_in_bytes: Family<CompressionLabels, Counter>,
    /// `wasmgate_compression_out_bytes_total{route,encoding}`: bytes they made.
    pub compression_out_bytes: Family<CompressionLabels, Counter>,
    /// `wasmgate_config_generation`
    pub generation: Gauge,
    /// `wasmgate_connections_open`: client connections on the gateway listener.
    pub connections_open: Gauge,
    /// `wasmgate_connections_refused_total{reason}`: over `[limits]`'s caps.
    pub connections_refused: Family<RefusedLabels, Counter>,
    /// `wasmgate_connections_cut_total{reason}`: clients cut off for being too slow
    /// (`slow_headers`, `body_stalled`, `stopped_reading`, `slow_handshake`, `tls_required`,
    /// `tls_handshake`, `too_many_resets`).
    pub connections_cut: Family<RefusedLabels, Counter>,
    /// `wasmgate_requests_cancelled_total`: requests the client gave up on before
    /// their response (an HTTP/2 `RST_STREAM`, or the connection closed mid-request).
    pub requests_cancelled: Counter,
    /// `wasmgate_websockets_open{route}`: WebSockets being relayed now.
    pub websockets_open: Family<SocketLabels, Gauge>,
    /// `wasmgate_websocket_messages_total{route,direction}`: messages relayed.
    pub websocket_messages: Family<MessageLabels, Counter>,
    /// `wasmgate_websocket_closes_total{route,code,by}`: WebSockets ended.
    pub websocket_closes: Family<CloseLabels, Counter>,
    /// `wasmgate_state_entries{namespace}`: live `kv` entries at the latest sweep.
    pub state_entries: Family<NamespaceLabels, Gauge>,
    /// `wasmgate_state_bytes{namespace}`: their keys' and values' bytes.
    pub state_bytes: Family<NamespaceLabels, Gauge>,
    /// `wasmgate_state_expired_removed_total`: expired entries the sweep reclaimed.
    pub state_expired_removed: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every gateway metric, registered.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "Requests served, by route, method and status",
            requests.clone(),
        );
        let request_duration = HistogramFamily::<RouteLabels>::new_with_constructor(
            duration_histogram as fn() -> Histogram,
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from receiving a request to sending its response headers",
            request_duration.clone(),
        );
        let in_progress = Gauge::default();
        registry.register(
            "http_requests_in_progress",
            "Requests being served now",
            in_progress.clone(),
        );
        let upstream_duration = HistogramFamily::<EndpointLabels>::new_with_constructor(
            duration_histogram as fn() -> Histogram,
        );
        registry.register(
            "upstream_request_duration_seconds",
            "Time from sending a request upstream to its response headers",
            upstream_duration.clone(),
        );
        let upstream_errors = Family::<UpstreamErrorLabels, Counter>::default();
        registry.register(
            "upstream_errors",
            "Upstream calls that failed, by kind",
            upstream_errors.clone(),
        );
        let service_health = Family::<ServiceLabels, Gauge>::default();
        registry.register(
            "service_health_status",
            "Whether each upstream service passed its last health probe (1) or not (0)",
            service_health.clone(),
        );
        let upstream_retries = Family::<RetryLabels, Counter>::default();
        registry.register(
            "upstream_retries",
            "Upstream calls tried again, by what failed",
            upstream_retries.clone(),
        );
        let upstream_circuit = Family::<ServiceLabels, Gauge>::default();
        registry.register(
            "upstream_circuit_state",
            "Each service's circuit breaker: 0 closed, 1 half-open, 2 open",
            upstream_circuit.clone(),
        );
        let upstream_ejections = Family::<EndpointLabels, Counter>::default();
        registry.register(
            "upstream_ejections",
            "Endpoints ejected by outlier detection",
            upstream_ejections.clone(),
        );
        let upstream_ejected = Family::<EndpointLabels, Gauge>::default();
        registry.register(
            "upstream_ejected",
            "Whether an endpoint is ejected now (1) or not (0)",
            upstream_ejected.clone(),
        );
        let plugin_call_duration = HistogramFamily::<PluginCallLabels>::new_with_constructor(
            plugin_call_histogram as fn() -> Histogram,
        );
        registry.register(
            "plugin_call_duration_seconds",
            "Time of one plugin call, by plugin and phase",
            plugin_call_duration.clone(),
        );
        let plugin_errors = Family::<PluginErrorLabels, Counter>::default();
        registry.register(
            "plugin_errors",
            "Failed plugin calls, by plugin and kind",
            plugin_errors.clone(),
        );
        let reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "plugin_reloads",
            "Reloads of plugins and config, by result",
            reloads.clone(),
        );
        let compressed_responses = Family::<CompressionLabels, Counter>::default();
        registry.register(
            "wasmgate_compressed_responses",
            "Responses compressed, by route and content coding",
            compressed_responses.clone(),
        );
        let compression_in_bytes = Family::<CompressionLabels, Counter>::default();
        registry.register(
            "wasmgate_compression_in_bytes",
            "Bytes of response bodies fed to the encoders, by route and content coding",
            compression_in_bytes.clone(),
        );
        let compression_out_bytes = Family::<CompressionLabels, Counter>::default();
        registry.register(
            "wasmgate_compression_out_bytes",
            "Bytes the encoders made of them, by route and content coding",
            compression_out_bytes.clone(),
        );
        let generation = Gauge::default();
        registry.register(
            "wasmgate_config_generation",
            "The generation of the snapshot being served",
            generation.clone(),
        );
        let connections_open = Gauge::default();
        registry.register(
            "wasmgate_connections_open",
            "Client connections open on the gateway listener",
            connections_open.clone(),
        );
        let connections_refused = Family::<RefusedLabels, Counter>::default();
        registry.register(
            "wasmgate_connections_refused",
            "Client connections refused over the [limits] caps, by reason",
            connections_refused.clone(),
        );
        let connections_cut = Family::<RefusedLabels, Counter>::default();
        registry.register(
            "wasmgate_connections_cut",
            "Client connections cut off for being too slow, by reason",
            connections_cut.clone(),
        );
        let requests_cancelled = Counter::default();
        registry.register(
            "wasmgate_requests_cancelled",
            "Requests the client cancelled before their response (RST_STREAM or a closed connection)",
            requests_cancelled.clone(),
        );
        let websockets_open = Family::<SocketLabels, Gauge>::default();
        registry.register(
            "wasmgate_websockets_open",
            "WebSockets being relayed now, by route",
            websockets_open.clone(),
        );
        let websocket_messages = Family::<MessageLabels, Counter>::default();
        registry.register(
            "wasmgate_websocket_messages",
            "WebSocket messages relayed, by route and direction",
            websocket_messages.clone(),
        );
        let websocket_closes = Family::<CloseLabels, Counter>::default();
        registry.register(
            "wasmgate_websocket_closes",
            "WebSockets ended, by route, close code and the side that ended them",
            websocket_closes.clone(),
        );
        let state_entries = Family::<NamespaceLabels, Gauge>::default();
        registry.register(
            "wasmgate_state_entries",
            "Live kv entries per namespace, as the latest state sweep counted them",
            state_entries.clone(),
        );
        let state_bytes = Family::<NamespaceLabels, Gauge>::default();
        registry.register(
            "wasmgate_state_bytes",
            "Bytes of the live kv keys and values per namespace, at the latest sweep",
            state_bytes.clone(),
        );
        let state_expired_removed = Counter::default();
        registry.register(
            "wasmgate_state_expired_removed",
            "Expired kv entries the state sweep removed",
            state_expired_removed.clone(),
        );
        Self {
            registry: Mutex::new(registry),
            plugin: Mutex::new(PluginMetrics::default()),
            requests,
            request_duration,
            in_progress,
            upstream_duration,
            upstream_errors,
            service_health,
            upstream_retries,
            upstream_circuit,
            upstream_ejections,
            upstream_ejected,
            plugin_call_duration,
            plugin_errors,
            reloads,
            compressed_responses,
            compression_in_bytes,
            compression_out_bytes,
            generation,
            connections_open,
            connections_refused,
            connections_cut,
            requests_cancelled,
            websockets_open,
            websocket_messages,
            websocket_closes,
            state_entries,
            state_bytes,
            state_expired_removed,
        }
    }

    /// Publishes what a state sweep found.
    pub fn record_sweep(&self, sweep: &crate::state::Sweep) {
        self.state_expired_removed.inc_by(sweep.removed);
        for (name, size) in &sweep.namespaces {
            let labels = NamespaceLabels {
                namespace: name.clone(),
            };
            self.state_entries
                .get_or_create(&labels)
                .set(size.entries.min(i64::MAX as u64) as i64);
            self.state_bytes
                .get_or_create(&labels)
                .set(size.bytes.min(i64::MAX as u64) as i64);
        }
    }

    /// The OpenMetrics text of every metric.
    pub fn render(&self) -> String {
        let mut text = String::new();
        let registry = self.registry.lock().expect("registry lock");
        prometheus_client::encoding::text::encode(&mut text, &registry)
            .expect("writing to a String does not fail");
        text
    }

    /// Records a plugin's metric call, or says which rule it breaks.
    pub fn record_plugin(
        &self,
        plugin: &str,
        name: &str,
        labels: Vec<(String, String)>,
        value: PluginValue,
    ) -> Result<(), String> {
        check_name(name)?;
        check_labels(&labels)?;
        if let PluginValue::Gauge(v) | PluginValue::Histogram(v) = value
            && !v.is_finite()
        {
            return Err(format!("metric {name:?}: the value {v} is not finite"));
        }
        let mut labels = labels;
        labels.sort();
        let mut state = self.plugin.lock().expect("plugin metrics lock");
        let metric = match state.by_name.get(name) {
            Some(metric) => metric.clone(),
            None => {
                let metric = match value {
                    PluginValue::Counter(_) => PluginMetric::Counter(Family::default()),
                    PluginValue::Gauge(_) => PluginMetric::Gauge(Family::default()),
                    PluginValue::Histogram(_) => PluginMetric::Histogram(
                        Family::new_with_constructor(default_histogram as fn() -> Histogram),
                    ),
                };
                self.register_plugin_metric(name, &metric);
                state.by_name.insert(name.to_string(), metric.clone());
                metric
            }
        };
        let wanted = match value {
            PluginValue::Counter(_) => "counter",
            PluginValue::Gauge(_) => "gauge",
            PluginValue::Histogram(_) => "histogram",
        };
        if metric.kind() != wanted {
            return Err(format!(
                "metric {name:?} is a {}; it cannot be used as a {wanted}",
                metric.kind()
            ));
        }
        let series = state
            .series
            .entry((name.to_string(), plugin.to_string()))
            .or_default();
        if !series.contains(&labels) {
            if series.len() >= MAX_SERIES {
                return Err(format!(
                    "metric {name:?} already has {MAX_SERIES} label combinations for this plugin"
                ));
            }
            series.insert(labels.clone());
        }
        drop(state);
        labels.push(("plugin".to_string(), plugin.to_string()));
        match (metric, value) {
            (PluginMetric::Counter(family), PluginValue::Counter(v)) => {
                family.get_or_create(&labels).inc_by(v);
            }
            (PluginMetric::Gauge(family), PluginValue::Gauge(v)) => {
                family.get_or_create(&labels).set(v);
            }
            (PluginMetric::Histogram(family), PluginValue::Histogram(v)) => {
                family.get_or_create(&labels).observe(v);
            }
            _ => unreachable!("kinds checked above"),
        }
        Ok(())
    }

    fn register_plugin_metric(&self, name: &str, metric: &PluginMetric) {
        let mut registry = self.registry.lock().expect("registry lock");
        // Counters are exported with `_total`; the registry adds it.
        let base = name.strip_suffix("_total").unwrap_or(name);
        let help = "Recorded by plugins through the metrics import";
        match metric {
            PluginMetric::Counter(family) => registry.register(base, help, family.clone()),
            PluginMetric::Gauge(family) => registry.register(name, help, family.clone()),
            PluginMetric::Histogram(family) => registry.register(name, help, family.clone()),
        }
    }
}

/// A method as a bounded label value.
pub fn method_label(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::DELETE => "DELETE",
        http::Method::PATCH => "PATCH",
        http::Method::HEAD => "HEAD",
        http::Method::OPTIONS => "OPTIONS",
        http::Method::CONNECT => "CONNECT",
        http::Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn plugin_metrics_are_labelled_and_bounded() {
        let metrics = Metrics::new();
        let ok = |name: &str, l: &[(&str, &str)], v| metrics.record_plugin("p", name, labels(l), v);
        ok(
            "rate_limit_exceeded_total",
            &[("route", "a")],
            PluginValue::Counter(2),
        )
        .unwrap();
        ok(
            "rate_limit_exceeded_total",
            &[("route", "a")],
            PluginValue::Counter(1),
        )
        .unwrap();
        ok("queue_depth", &[], PluginValue::Gauge(4.5)).unwrap();
        ok("work_seconds", &[], PluginValue::Histogram(0.2)).unwrap();
        let text = metrics.render();
        assert!(
            text.contains("rate_limit_exceeded_total{route=\"a\",plugin=\"p\"} 3"),
            "{text}"
        );
        assert!(text.contains("queue_depth{plugin=\"p\"} 4.5"), "{text}");
        assert!(
            text.contains("work_seconds_count{plugin=\"p\"} 1"),
            "{text}"
        );

        let refused = |name: &str, l: &[(&str, &str)], v| {
            metrics.record_plugin("p", name, labels(l), v).unwrap_err()
        };
        assert!(refused("http_requests_total", &[], PluginValue::Counter(1)).contains("keeps"));
        assert!(refused("Bad", &[], PluginValue::Counter(1)).contains("must be"));
        assert!(refused("queue_depth", &[], PluginValue::Counter(1)).contains("is a gauge"));
        assert!(refused("x", &[("plugin", "y")], PluginValue::Counter(1)).contains("plugin"));
        let five = [("a", "1"), ("b", "1"), ("c", "1"), ("d", "1"), ("e", "1")];
        assert!(refused("x", &five, PluginValue::Counter(1)).contains("at most 4"));
        assert!(refused("g", &[], PluginValue::Gauge(f64::NAN)).contains("finite"));
        for i in 0..MAX_SERIES {
            let value = i.to_string();
            ok("many_total", &[("i", &value)], PluginValue::Counter(1)).unwrap();
        }
        assert!(refused("many_total", &[("i", "new")], PluginValue::Counter(1)).contains("100"));
        // Another plugin has its own budget.
        metrics
            .record_plugin(
                "q",
                "many_total",
                labels(&[("i", "new")]),
                PluginValue::Counter(1),
            )
            .unwrap();
    }
}
