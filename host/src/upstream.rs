//! Upstream services: endpoints, round-robin choice, a pooled hyper client per
//! service, and the hop-by-hop header rules. (The plugins' outbound `http` calls and
//! upstream choices are the plugin runtime's, in `plugin/outbound.rs`, on top of this.)
//!
//! This module moves bytes to and from upstreams; it does not decide which route or
//! plugin runs, and it never builds client-facing error bodies (see `error`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, HeaderName, Request, Response, Uri, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::metrics::{EndpointLabels, Metrics, UpstreamErrorLabels};

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

/// One upstream base URL, `http://host:port`.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `host:port`.
    pub authority: Authority,
    /// `http://host:port`, for logs, metrics and plugins.
    pub url: Arc<str>,
}

impl Endpoint {
    /// Parses `http://host[:port][/]`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let uri: Uri = text.parse().map_err(|e| format!("not a URL: {e}"))?;
        if uri.scheme() != Some(&Scheme::HTTP) {
            return Err("only http:// endpoints are supported".into());
        }
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
        let url = format!("http://{authority}").into();
        Ok(Self { authority, url })
    }

    /// The absolute URI of `path_and_query` on this endpoint.
    pub fn uri(&self, path_and_query: &str) -> Result<Uri, http::Error> {
        Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(self.authority.clone())
            .path_and_query(PathAndQuery::try_from(path_and_query)?)
            .build()
    }
}

/// Most bytes read ahead from one upstream connection (see `Service::new`).
const UPSTREAM_READ_BUFFER: usize = 64 * 1024;

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
    /// The request could not be built.
    #[error("bad upstream request: {0}")]
    Build(#[from] http::Error),
}

/// A service: its endpoints, balanced round-robin, its connection pool, and how its
/// health is probed.
pub struct Service {
    /// The service's name.
    pub name: Arc<str>,
    endpoints: Vec<Endpoint>,
    next: AtomicUsize,
    client: Client<HttpConnector, ProxyBody>,
    health_path: Option<String>,
    metrics: Arc<Metrics>,
}

impl Service {
    /// A service over `endpoints` (at least one); probed with `GET health_path` when
    /// given, else by connecting.
    pub fn new(
        name: &str,
        endpoints: Vec<Endpoint>,
        connect_timeout: Duration,
        health_path: Option<String>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(connect_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            // What one upstream connection may read ahead of a slow client: hyper's
            // default (~400 KiB) let 1,000 slow readers hold 500 MiB of RSS.
            .http1_max_buf_size(UPSTREAM_READ_BUFFER)
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .build(connector);
        Self {
            name: name.into(),
            endpoints,
            next: AtomicUsize::new(0),
            client,
            health_path,
            metrics,
        }
    }

    /// The service's endpoints.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// Probes `endpoint` once: `GET health_path` must answer 2xx or 3xx within
    /// `timeout`; without a health path, a TCP connection must open.
    pub async fn probe(&self, endpoint: &Endpoint, timeout: Duration) -> Result<(), String> {
        let Some(path) = &self.health_path else {
            let address = endpoint.authority.as_str();
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

    /// The next endpoint, round-robin. Panics for a service without endpoints (the
    /// config requires one; only [`Service::send_to`] serves the others).
    pub fn pick(&self) -> &Endpoint {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.endpoints.len();
        &self.endpoints[index]
    }

    /// Sends `request` (whose URI holds only path and query) to the next endpoint and
    /// waits up to `timeout` for the response headers; the body then streams. Returns
    /// the response and the endpoint's URL; records the call's duration or failure.
    pub async fn send(
        &self,
        request: Request<ProxyBody>,
        timeout: Duration,
    ) -> Result<(Response<Incoming>, Arc<str>), UpstreamError> {
        self.send_to(self.pick(), request, timeout).await
    }

    /// Like [`Service::send`], to `endpoint` (which need not be one of the service's:
    /// a plugin may have chosen it).
    pub async fn send_to(
        &self,
        endpoint: &Endpoint,
        mut request: Request<ProxyBody>,
        timeout: Duration,
    ) -> Result<(Response<Incoming>, Arc<str>), UpstreamError> {
        let path_and_query = request
            .uri()
            .path_and_query()
            .map_or("/", PathAndQuery::as_str)
            .to_string();
        *request.uri_mut() = endpoint.uri(&path_and_query)?;
        let name = || format!("{}/{}", self.name, endpoint.authority);
        let started = std::time::Instant::now();
        let result = tokio::time::timeout(timeout, self.client.request(request)).await;
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
            Ok(Ok(response)) => Ok((response, endpoint.url.clone())),
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
}

/// Removes hop-by-hop headers: those named in `Connection`, then the standard ones
/// (`message_rules::HOP_BY_HOP`, which plugins may not set either).
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
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
        assert!(Endpoint::parse("https://127.0.0.1:9000").is_err());
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
    fn round_robin_visits_every_endpoint() {
        let service = Service::new(
            "s",
            vec![
                Endpoint::parse("http://127.0.0.1:1").unwrap(),
                Endpoint::parse("http://127.0.0.1:2").unwrap(),
            ],
            Duration::from_secs(1),
            None,
            Arc::new(Metrics::new()),
        );
        let picks: Vec<String> = (0..4)
            .map(|_| service.pick().authority.to_string())
            .collect();
        assert_eq!(
            picks,
            ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:1", "127.0.0.1:2"]
        );
    }
}
