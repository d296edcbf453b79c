//! Upstream services: endpoints, the choice of one (`balance`), what is known of their
//! health (`resilience`: probes, outlier ejection, circuit breakers), retry policies
//! (`retry`), a pooled hyper client per service, and the hop-by-hop header rules. (The plugins' outbound `http` calls and
//! upstream choices are the plugin runtime's, in `plugin/outbound.rs`, on top of this.)
//!
//! This module moves bytes to and from upstreams; it does not decide which route or
//! plugin runs, and it never builds client-facing error bodies (see `error`).

mod balance;
mod resilience;
pub mod retry;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, HeaderName, Request, Response, Uri, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::config::{Balance, BreakerConfig, OutlierConfig, ServiceConfig};
use crate::metrics::{EndpointLabels, Metrics, ServiceLabels, UpstreamErrorLabels};
use balance::Balancer;
pub use balance::HashOn;
pub use resilience::Phase;
use resilience::{Admission, Breaker, Ejection, EndpointState, Transition, now_ms};
use retry::TryFailure;

/// Errors of boxed bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body type the gateway sends: a client's streamed body or a buffered one.
pub type ProxyBody = BoxBody<Bytes, BoxError>;

/// Wraps bytes as a [`ProxyBody`].
pub fn full_body(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// Wraps a streamed hyper body as a [`ProxyBody`].
pub fn stream_body(body: Incoming) -> ProxyBody {
    body.map_err(|error| -> BoxError { Box::new(error) })
        .boxed()
}

/// One upstream base URL, `http://host:port` or `https://host:port`.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `http` or `https`.
    pub scheme: Scheme,
    /// `host:port` (or `host`, for the scheme's default port).
    pub authority: Authority,
    /// `http://host:port`, for logs, metrics and plugins.
    pub url: Arc<str>,
}

impl Endpoint {
    /// Parses `http://host[:port][/]` or `https://host[:port][/]`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let uri: Uri = text.parse().map_err(|e| format!("not a URL: {e}"))?;
        let scheme = match uri.scheme() {
            Some(scheme) if *scheme == Scheme::HTTP || *scheme == Scheme::HTTPS => scheme.clone(),
            _ => return Err("only http:// and https:// endpoints are supported".into()),
        };
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| "the URL has no host".to_string())?;
        if authority.as_str().contains('@') {
            return Err("credentials in the URL are not supported".into());
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err("give only scheme, host and port (no path or query)".into());
        }
        let url = format!("{scheme}://{authority}").into();
        Ok(Self {
            scheme,
            authority,
            url,
        })
    }

    /// Whether requests to it go over TLS.
    pub fn is_https(&self) -> bool {
        self.scheme == Scheme::HTTPS
    }

    /// `host:port` to connect to: the URL's port, else the scheme's (80 or 443).
    pub fn address(&self) -> String {
        match self.authority.port_u16() {
            Some(_) => self.authority.to_string(),
            None => format!(
                "{}:{}",
                self.authority.host(),
                if self.is_https() { 443 } else { 80 }
            ),
        }
    }

    /// The absolute URI of `path_and_query` on this endpoint.
    pub fn uri(&self, path_and_query: &str) -> Result<Uri, http::Error> {
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(PathAndQuery::try_from(path_and_query)?)
            .build()
    }
}

/// Most bytes read ahead from one upstream connection (see [`client`]).
const UPSTREAM_READ_BUFFER: usize = 64 * 1024;

/// A service's pooled client: `http://` endpoints over TCP (HTTP/1.1), `https://`
/// ones over TLS with `tls` (the connector sets its ALPN): HTTP/2 when `http2` is
/// allowed and the endpoint chooses `h2`, else HTTP/1.1.
fn client(
    connect_timeout: Duration,
    tls: rustls::ClientConfig,
    http2: bool,
) -> Client<HttpsConnector<HttpConnector>, ProxyBody> {
    let mut tcp = HttpConnector::new();
    tcp.set_connect_timeout(Some(connect_timeout));
    tcp.set_nodelay(true);
    tcp.enforce_http(false);
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1();
    let connector = match http2 {
        true => builder.enable_http2().wrap_connector(tcp),
        false => builder.wrap_connector(tcp),
    };
    Client::builder(TokioExecutor::new())
        // What one upstream connection may read ahead of a slow client: hyper's
        // default (~400 KiB) let 1,000 slow readers hold 500 MiB of RSS.
        .http1_max_buf_size(UPSTREAM_READ_BUFFER)
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        .build(connector)
}

/// Why an upstream call failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No response headers within the route's timeout.
    #[error("no response from {endpoint} within {timeout:?}")]
    Timeout {
        /// The endpoint called.
        endpoint: String,
        /// The timeout.
        timeout: Duration,
    },
    /// Connecting or sending failed.
    #[error("request to {endpoint} failed: {source}")]
    Failed {
        /// The endpoint called.
        endpoint: String,
        /// Why.
        source: hyper_util::client::legacy::Error,
    },
    /// No endpoint may take the request: all are down or ejected, or a breaker is open.
    #[error("service {service} is unavailable: {reason}")]
    Unavailable {
        /// The service.
        service: String,
        /// Why.
        reason: Unavailable,
    },
    /// The request could not be built.
    #[error("bad upstream request: {0}")]
    Build(#[from] http::Error),
}

impl UpstreamError {
    /// How a try failed, for retries; `None` for errors no retry can mend.
    pub fn try_failure(&self) -> Option<TryFailure> {
        match self {
            Self::Timeout { .. } => Some(TryFailure::Timeout),
            Self::Failed { source, .. } if source.is_connect() => Some(TryFailure::Connect),
            Self::Failed { .. } => Some(TryFailure::Reset),
            Self::Unavailable { .. } | Self::Build(_) => None,
        }
    }
}

/// Why a service cannot take a request now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    /// Its circuit breaker is open; it may let requests through in this many ms.
    #[error("its circuit breaker is open")]
    Open(u64),
    /// No endpoint is up: probes found them down, or outlier detection ejected them.
    #[error("no endpoint is up")]
    NoEndpoint,
}

/// One endpoint of a service, with its weight and state.
struct Member {
    endpoint: Endpoint,
    state: Arc<EndpointState>,
}

/// A service's own state, kept across reloads: its circuit breaker.
#[derive(Debug, Default)]
pub struct ServiceState {
    breaker: Breaker,
}

/// A service: its endpoints and how one is chosen, their health (probes, outlier
/// detection, breakers), its connection pool, and how its health is probed.
pub struct Service {
    /// The service's name.
    pub name: Arc<str>,
    members: Vec<Member>,
    balancer: Balancer,
    hash_on: HashOn,
    outlier: OutlierConfig,
    breaker: Option<BreakerConfig>,
    state: Arc<ServiceState>,
    client: Client<HttpsConnector<HttpConnector>, ProxyBody>,
    /// For requests that ask to switch protocols (WebSockets), which only HTTP/1.1
    /// carries: its `https://` connections offer only `http/1.1` by ALPN.
    upgrades: Client<HttpsConnector<HttpConnector>, ProxyBody>,
    health_path: Option<String>,
    metrics: Arc<Metrics>,
}

impl Service {
    /// The service `[services.NAME]` describes (validated), taking over the health
    /// state of `previous` (the same service in the snapshot being replaced) by
    /// endpoint URL; `https://` endpoints are called with `tls` (its `ca_file` and
    /// client certificate: [`crate::tls::upstream_config`]).
    pub fn from_config(
        name: &str,
        config: &ServiceConfig,
        metrics: Arc<Metrics>,
        previous: Option<&Service>,
        tls: rustls::ClientConfig,
    ) -> Self {
        let endpoints = config
            .endpoints
            .iter()
            .map(|e| {
                let e = e.get_ref();
                (
                    Endpoint::parse(e.url()).expect("validated endpoint"),
                    e.weight(),
                )
            })
            .collect();
        let mut service = Self::with_tls(
            name,
            endpoints,
            Duration::from_millis(config.connect_timeout_ms),
            config.health_path.clone(),
            metrics,
            tls,
        );
        service.balancer = service.balancer.with_policy(config.balance);
        service.hash_on = config.hash_on.as_ref().map_or(HashOn::Client, |h| {
            HashOn::parse(h.get_ref()).expect("validated")
        });
        service.outlier = config.outlier.clone();
        service.breaker = config.breaker.as_ref().map(|b| b.get_ref().clone());
        if let Some(previous) = previous {
            service.state = previous.state.clone();
            for member in &mut service.members {
                if let Some(old) = previous
                    .members
                    .iter()
                    .find(|m| m.endpoint.url == member.endpoint.url)
                {
                    member.state = old.state.clone();
                }
            }
        }
        service
    }

    /// A service over weighted `endpoints`, balanced round-robin, with default outlier
    /// detection and no breaker; probed with `GET health_path` when given, else by
    /// connecting; `https://` endpoints verified against the system's roots. Without
    /// endpoints it only serves [`Service::send_to`].
    pub fn new(
        name: &str,
        endpoints: Vec<(Endpoint, u32)>,
        connect_timeout: Duration,
        health_path: Option<String>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let tls = crate::tls::upstream_config(&crate::tls::UpstreamTlsFiles::default())
            .expect("the system's roots and no client certificate make a config");
        Self::with_tls(name, endpoints, connect_timeout, health_path, metrics, tls)
    }

    /// [`Service::new`], its `https://` endpoints called with `tls`.
    fn with_tls(
        name: &str,
        endpoints: Vec<(Endpoint, u32)>,
        connect_timeout: Duration,
        health_path: Option<String>,
        metrics: Arc<Metrics>,
        tls: rustls::ClientConfig,
    ) -> Self {
        let upgrades = client(connect_timeout, tls.clone(), false);
        let client = client(connect_timeout, tls, true);
        let weights: Vec<u32> = endpoints.iter().map(|(_, w)| (*w).max(1)).collect();
        let members: Vec<Member> = endpoints
            .into_iter()
            .map(|(endpoint, _)| Member {
                endpoint,
                state: Arc::default(),
            })
            .collect();
        let urls: Vec<&str> = members.iter().map(|m| &*m.endpoint.url).collect();
        let balancer = Balancer::new(Balance::RoundRobin, weights, &urls);
        Self {
            name: name.into(),
            members,
            balancer,
            hash_on: HashOn::Client,
            outlier: OutlierConfig::default(),
            breaker: None,
            state: Arc::default(),
            client,
            upgrades,
            health_path,
            metrics,
        }
    }

    /// The service's endpoints.
    pub fn endpoints(&self) -> impl ExactSizeIterator<Item = &Endpoint> {
        self.members.iter().map(|m| &m.endpoint)
    }

    /// The metrics the service records into.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The endpoint at `index`.
    pub fn endpoint(&self, index: usize) -> &Endpoint {
        &self.members[index].endpoint
    }

    /// The request's key for `consistent_hash` (`None` for other policies).
    pub fn hash_key(&self, headers: &HeaderMap, client: IpAddr) -> Option<u64> {
        (self.balancer.policy() == Balance::ConsistentHash)
            .then(|| self.hash_on.key(headers, client))
    }

    /// Records an active probe of endpoint `index`: a down endpoint is not chosen; an
    /// ejected one found up comes back.
    pub fn record_probe(&self, index: usize, up: bool) {
        if self.members[index].state.set_probe(up) == Some(Ejection::Returned) {
            self.returned(index, "probe");
        }
    }

    /// Probes `endpoint` once: `GET health_path` must answer 2xx or 3xx within
    /// `timeout`; without a health path, a TCP connection must open.
    pub async fn probe(&self, endpoint: &Endpoint, timeout: Duration) -> Result<(), String> {
        let Some(path) = &self.health_path else {
            let address = endpoint.address();
            return match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(address))
                .await
            {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(error)) => Err(format!("connect: {error}")),
                Err(_) => Err(format!("connect: no answer within {timeout:?}")),
            };
        };
        let request = Request::get(endpoint.uri(path).map_err(|e| e.to_string())?)
            .header(header::USER_AGENT, "wasmgate-health")
            .body(full_body(Bytes::new()))
            .map_err(|e| e.to_string())?;
        match tokio::time::timeout(timeout, self.client.request(request)).await {
            Ok(Ok(response)) => {
                let status = response.status();
                // Read the body so the connection goes back to the pool.
                let _ = Limited::new(response.into_body(), 64 * 1024)
                    .collect()
                    .await;
                if status.is_success() || status.is_redirection() {
                    Ok(())
                } else {
                    Err(format!("GET {path}: status {}", status.as_u16()))
                }
            }
            Ok(Err(error)) => Err(format!("GET {path}: {error}")),
            Err(_) => Err(format!("GET {path}: no answer within {timeout:?}")),
        }
    }

    /// Chooses an endpoint for one try: the service's breaker must let the request
    /// through, and the endpoint must be up (probes), not ejected, and let through by
    /// its own breaker; endpoints in `tried` are chosen only when no other can be.
    pub fn claim(&self, key: Option<u64>, tried: &[usize]) -> Result<Claim<'_>, Unavailable> {
        let now = now_ms();
        let service_admission = match &self.breaker {
            Some(policy) => {
                let (admission, transition) = self.state.breaker.admit(policy, now);
                self.breaker_moved(None, transition);
                if let Admission::Refused(ms) = admission {
                    return Err(Unavailable::Open(ms));
                }
                admission
            }
            None => Admission::Pass,
        };
        let mut claim = Claim {
            service: self,
            index: 0,
            service_admission,
            endpoint_admission: Admission::Pass,
            done: false,
        };
        let mut passed_over: Vec<usize> = tried.to_vec();
        let usable = |i: usize| {
            let state = &self.members[i].state;
            let (ejected, returned) = state.ejected(now);
            if returned.is_some() {
                self.returned(i, "back-off ended");
            }
            !state.probe_down()
                && !ejected
                && self
                    .breaker
                    .as_ref()
                    .is_none_or(|p| state.breaker.phase(p, now) != Phase::Open)
        };
        let active = |i: usize| self.members[i].state.active.load(Ordering::Relaxed);
        for _ in 0..self.members.len() {
            let index = self
                .balancer
                .pick(key, &passed_over, usable, active)
                .ok_or(Unavailable::NoEndpoint)?;
            let Some(policy) = &self.breaker else {
                claim.index = index;
                return Ok(claim);
            };
            let state = &self.members[index].state;
            let (admission, transition) = state.breaker.admit(policy, now);
            self.breaker_moved(Some(index), transition);
            if let Admission::Refused(_) = admission {
                // Half-open with its probes out: another endpoint.
                if !passed_over.contains(&index) {
                    passed_over.push(index);
                    continue;
                }
                break;
            }
            claim.index = index;
            claim.endpoint_admission = admission;
            return Ok(claim);
        }
        Err(Unavailable::NoEndpoint)
    }

    /// Sends `request` (whose URI holds only path and query) to the endpoint of
    /// `claim` and waits up to `timeout` for the response headers; the body then
    /// streams. The outcome (a failure, or a 5xx) counts towards the endpoint's
    /// ejection and the breakers.
    pub async fn send_claimed(
        &self,
        mut claim: Claim<'_>,
        request: Request<ProxyBody>,
        timeout: Duration,
    ) -> Result<Response<ProxyBody>, UpstreamError> {
        let member = &self.members[claim.index];
        let in_flight = InFlight::new(member.state.clone());
        let result = self.call(&member.endpoint, request, timeout).await;
        let failed = match &result {
            Ok(response) => response.status().is_server_error(),
            Err(_) => true,
        };
        claim.finish(failed);
        result.map(|response| {
            // The request counts as in flight until its body is read or dropped.
            response.map(|body| {
                body.map_err(move |error| -> BoxError {
                    let _ = &in_flight;
                    Box::new(error)
                })
                .boxed()
            })
        })
    }

    /// One balanced try (no retry): [`Service::claim`] and [`Service::send_claimed`].
    pub async fn send(
        &self,
        request: Request<ProxyBody>,
        timeout: Duration,
    ) -> Result<Response<ProxyBody>, UpstreamError> {
        let claim = self
            .claim(None, &[])
            .map_err(|reason| UpstreamError::Unavailable {
                service: self.name.to_string(),
                reason,
            })?;
        self.send_claimed(claim, request, timeout).await
    }

    /// Like [`Service::send`], to `endpoint`, which need not be one of the service's
    /// (a plugin may have chosen it): no balancing, no health bookkeeping.
    pub async fn send_to(
        &self,
        endpoint: &Endpoint,
        request: Request<ProxyBody>,
        timeout: Duration,
    ) -> Result<Response<ProxyBody>, UpstreamError> {
        self.call(endpoint, request, timeout)
            .await
            .map(|response| response.map(stream_body))
    }

    /// The call itself, timed and counted by endpoint.
    async fn call(
        &self,
        endpoint: &Endpoint,
        mut request: Request<ProxyBody>,
        timeout: Duration,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let path_and_query = request
            .uri()
            .path_and_query()
            .map_or("/", PathAndQuery::as_str)
            .to_string();
        *request.uri_mut() = endpoint.uri(&path_and_query)?;
        let name = || format!("{}/{}", self.name, endpoint.authority);
        let started = std::time::Instant::now();
        let client = match request.headers().contains_key(header::UPGRADE) {
            true => &self.upgrades,
            false => &self.client,
        };
        let result = tokio::time::timeout(timeout, client.request(request)).await;
        let error_kind = match &result {
            Ok(Ok(_)) => {
                self.metrics
                    .upstream_duration
                    .get_or_create(&EndpointLabels {
                        service: self.name.clone(),
                        endpoint: endpoint.url.clone(),
                    })
                    .observe(started.elapsed().as_secs_f64());
                None
            }
            Ok(Err(error)) if error.is_connect() => Some("connect"),
            Ok(Err(_)) => Some("protocol"),
            Err(_) => Some("timeout"),
        };
        if let Some(kind) = error_kind {
            self.metrics
                .upstream_errors
                .get_or_create(&UpstreamErrorLabels {
                    service: self.name.clone(),
                    endpoint: endpoint.url.clone(),
                    kind,
                })
                .inc();
        }
        match result {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(source)) => Err(UpstreamError::Failed {
                endpoint: name(),
                source,
            }),
            Err(_) => Err(UpstreamError::Timeout {
                endpoint: name(),
                timeout,
            }),
        }
    }

    /// Counts one try's outcome on endpoint `index` and the breakers it passed.
    fn record(&self, claim: &Claim<'_>, failed: bool) {
        let now = now_ms();
        let index = claim.index;
        let state = &self.members[index].state;
        let may_eject = || {
            let ejected = self
                .members
                .iter()
                .filter(|m| m.state.ejected_for(now).is_some())
                .count();
            let share = self.members.len() * self.outlier.max_ejected_percent as usize / 100;
            ejected < share.max(1)
        };
        if let Some(Ejection::Ejected(ms)) = state.record(&self.outlier, now, failed, may_eject) {
            let endpoint = &self.members[index].endpoint.url;
            tracing::warn!(
                event = "upstream_ejected",
                service = %self.name,
                endpoint = %endpoint,
                ejected_ms = ms,
                "upstream ejected after failures in a row"
            );
            let labels = self.endpoint_labels(index);
            self.metrics.upstream_ejections.get_or_create(&labels).inc();
            self.metrics.upstream_ejected.get_or_create(&labels).set(1);
        }
        if let Some(policy) = &self.breaker {
            let moved = state
                .breaker
                .record(policy, now, claim.endpoint_admission, failed);
            self.breaker_moved(Some(index), moved);
            let moved = self
                .state
                .breaker
                .record(policy, now, claim.service_admission, failed);
            self.breaker_moved(None, moved);
        }
    }

    fn returned(&self, index: usize, why: &'static str) {
        tracing::info!(
            event = "upstream_returned",
            service = %self.name,
            endpoint = %self.members[index].endpoint.url,
            why,
            "upstream back from ejection"
        );
        self.metrics
            .upstream_ejected
            .get_or_create(&self.endpoint_labels(index))
            .set(0);
    }

    /// Logs a breaker's change of phase (the service's when `index` is `None`) and
    /// publishes the service's. Inlined for the common case, no change.
    #[inline]
    fn breaker_moved(&self, index: Option<usize>, transition: Option<Transition>) {
        if let Some(transition) = transition {
            self.breaker_changed(index, transition);
        }
    }

    #[cold]
    fn breaker_changed(&self, index: Option<usize>, Transition { from, to }: Transition) {
        let endpoint = index.map_or("", |i| &*self.members[i].endpoint.url);
        if to == Phase::Open {
            tracing::warn!(event = "circuit_open", service = %self.name, endpoint, from = from.as_str(), "circuit breaker opened");
        } else {
            tracing::info!(event = "circuit_change", service = %self.name, endpoint, from = from.as_str(), to = to.as_str(), "circuit breaker changed");
        }
        if index.is_none() {
            self.metrics
                .upstream_circuit
                .get_or_create(&ServiceLabels {
                    service: self.name.clone(),
                })
                .set(to.gauge());
        }
    }

    fn endpoint_labels(&self, index: usize) -> EndpointLabels {
        EndpointLabels {
            service: self.name.clone(),
            endpoint: self.members[index].endpoint.url.clone(),
        }
    }

    /// The health state of the service and its endpoints, for `/health` and `/admin`.
    pub fn status(&self) -> ServiceStatus {
        let now = now_ms();
        let breaker = self.breaker.as_ref();
        ServiceStatus {
            balance: self.balancer.policy(),
            outlier: self.outlier.clone(),
            breaker: self.breaker.clone(),
            circuit: breaker.map(|p| self.state.breaker.phase(p, now)),
            endpoints: self
                .members
                .iter()
                .enumerate()
                .map(|(i, m)| EndpointStatus {
                    url: m.endpoint.url.to_string(),
                    weight: self.balancer.weight(i),
                    probe_down: m.state.probe_down(),
                    ejected_for_ms: m.state.ejected_for(now),
                    consecutive_failures: m.state.consecutive_failures(),
                    active: m.state.active.load(Ordering::Relaxed),
                    circuit: breaker.map(|p| m.state.breaker.phase(p, now)),
                })
                .collect(),
        }
    }
}

/// A service's health state at one moment.
#[derive(Debug, serde::Serialize)]
pub struct ServiceStatus {
    /// How endpoints are chosen.
    pub balance: Balance,
    /// Outlier detection's settings.
    pub outlier: OutlierConfig,
    /// The breakers' settings, if the service has breakers.
    pub breaker: Option<BreakerConfig>,
    /// The service's breaker, if it has one.
    pub circuit: Option<Phase>,
    /// Each endpoint's, in config order.
    pub endpoints: Vec<EndpointStatus>,
}

/// One endpoint's health state at one moment.
#[derive(Debug, serde::Serialize)]
pub struct EndpointStatus {
    /// Its base URL.
    pub url: String,
    /// Its weight.
    pub weight: u32,
    /// The latest active probe found it down.
    pub probe_down: bool,
    /// Ms left of its ejection, if ejected.
    pub ejected_for_ms: Option<u64>,
    /// Failures in a row.
    pub consecutive_failures: u32,
    /// Requests in flight.
    pub active: u32,
    /// Its breaker, if the service has breakers.
    pub circuit: Option<Phase>,
}

/// One try's hold on an endpoint and on the breakers that let it through; dropped
/// without an outcome (the client left), it gives back a half-open breaker's place.
pub struct Claim<'a> {
    service: &'a Service,
    index: usize,
    service_admission: Admission,
    endpoint_admission: Admission,
    done: bool,
}

impl Claim<'_> {
    /// The endpoint chosen (its index in the service).
    pub fn index(&self) -> usize {
        self.index
    }

    fn finish(&mut self, failed: bool) {
        self.done = true;
        self.service.record(self, failed);
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.service.state.breaker.release(self.service_admission);
            self.service.members[self.index]
                .state
                .breaker
                .release(self.endpoint_admission);
        }
    }
}

/// A request in flight on an endpoint, for `least_request`.
struct InFlight(Arc<EndpointState>);

impl InFlight {
    fn new(state: Arc<EndpointState>) -> Self {
        state.active.fetch_add(1, Ordering::Relaxed);
        Self(state)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The items of a comma-separated header (all its fields), trimmed; fields that are
/// not text are skipped.
pub fn header_list(headers: &HeaderMap, name: HeaderName) -> impl Iterator<Item = &str> {
    headers
        .get_all(name)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
}

/// [`strip_hop_by_hop`] for a request going upstream, except that `TE: trailers`
/// stays: the one `TE` a proxy passes on (gRPC servers may require it), saying the
/// client takes trailers.
pub fn strip_request_hop_by_hop(headers: &mut HeaderMap) {
    let takes_trailers = header_list(headers, header::TE).any(|coding| {
        coding
            .split(';')
            .next()
            .is_some_and(|c| c.trim().eq_ignore_ascii_case("trailers"))
    });
    strip_hop_by_hop(headers);
    if takes_trailers {
        headers.insert(header::TE, http::HeaderValue::from_static("trailers"));
    }
}

/// Removes hop-by-hop headers: those named in `Connection`, then the standard ones
/// (`message_rules::HOP_BY_HOP`, which plugins may not set either).
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = header_list(headers, header::CONNECTION)
        .filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in crate::message_rules::HOP_BY_HOP {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_take_scheme_host_and_port_only() {
        assert!(Endpoint::parse("http://127.0.0.1:9000").is_ok());
        assert!(Endpoint::parse("http://localhost:9000/").is_ok());
        let https = Endpoint::parse("https://keystone.local").unwrap();
        assert!(https.is_https());
        assert_eq!(https.address(), "keystone.local:443");
        assert_eq!(&*https.url, "https://keystone.local");
        assert_eq!(
            https.uri("/v3/auth?x=1").unwrap().to_string(),
            "https://keystone.local/v3/auth?x=1"
        );
        assert_eq!(
            Endpoint::parse("http://a.local").unwrap().address(),
            "a.local:80"
        );
        assert!(Endpoint::parse("ftp://127.0.0.1:9000").is_err());
        assert!(Endpoint::parse("http://127.0.0.1:9000/api").is_err());
        assert!(Endpoint::parse("127.0.0.1:9000").is_err());
        assert!(Endpoint::parse("http://user:pw@127.0.0.1:9000").is_err());
    }

    #[test]
    fn hop_by_hop_headers_go() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, "keep-alive, x-secret".parse().unwrap());
        headers.insert("x-secret", "1".parse().unwrap());
        headers.insert("keep-alive", "timeout=5".parse().unwrap());
        headers.insert(header::TRANSFER_ENCODING, "chunked".parse().unwrap());
        headers.insert("x-kept", "1".parse().unwrap());
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key("x-kept"));
    }

    #[test]
    fn te_trailers_alone_survives_on_requests() {
        let mut headers = HeaderMap::new();
        headers.insert(header::TE, "gzip, trailers;q=1".parse().unwrap());
        strip_request_hop_by_hop(&mut headers);
        assert_eq!(headers[header::TE], "trailers");
        let mut headers = HeaderMap::new();
        headers.insert(header::TE, "gzip".parse().unwrap());
        strip_request_hop_by_hop(&mut headers);
        assert!(!headers.contains_key(header::TE));
        let mut headers = HeaderMap::new();
        headers.insert(header::TE, "trailers".parse().unwrap());
        strip_hop_by_hop(&mut headers);
        assert!(!headers.contains_key(header::TE), "responses keep no TE");
    }

    #[test]
    fn round_robin_visits_every_endpoint() {
        let service = Service::new(
            "s",
            vec![
                (Endpoint::parse("http://127.0.0.1:1").unwrap(), 1),
                (Endpoint::parse("http://127.0.0.1:2").unwrap(), 1),
            ],
            Duration::from_secs(1),
            None,
            Arc::new(Metrics::new()),
        );
        let picks: Vec<String> = (0..4)
            .map(|_| {
                let index = service.claim(None, &[]).unwrap().index();
                service.endpoint(index).authority.to_string()
            })
            .collect();
        assert_eq!(
            picks,
            ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:1", "127.0.0.1:2"]
        );
    }
}
