//! Where a plugin's requests may go: its outbound `http` calls to granted services
//! (with the conversions between the WIT records and HTTP), and the targets it may
//! send the request being served to instead of the route's service (`continue-to`):
//! granted services and endpoints inside its allowlist.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Request};
use http_body_util::BodyExt;

use super::bindings::http as wit;
use super::bindings::types;
use super::exchange::http_method;
use crate::allowlist::Allowlist;
use crate::upstream::{Endpoint, ProxyBody, Service, UpstreamError, full_body};

/// The largest response body a plugin's outbound call may receive.
const MAX_OUTBOUND_BODY: usize = 8 << 20;

/// The plugins' outbound `http` calls, limited to the services granted to a plugin.
#[derive(Clone, Default)]
pub struct OutboundCalls {
    granted: HashMap<String, Arc<Service>>,
}

impl OutboundCalls {
    /// Calls allowed to `granted` services only.
    pub fn new(granted: HashMap<String, Arc<Service>>) -> Self {
        Self { granted }
    }

    /// Sends one request for a plugin and reads the whole response.
    pub async fn send(
        &self,
        request: wit::OutboundRequest,
    ) -> Result<wit::OutboundResponse, wit::HttpError> {
        let service = self
            .granted
            .get(&request.service)
            .ok_or_else(|| wit::HttpError::NotGranted(request.service.clone()))?;
        let invalid = wit::HttpError::InvalidRequest;
        let method = http_method(&request.method)
            .ok_or_else(|| invalid("the method is not an HTTP token".into()))?;
        if !request.path_and_query.starts_with('/') {
            return Err(invalid(format!(
                "path {:?} must start with '/'",
                request.path_and_query
            )));
        }
        let mut builder = Request::builder()
            .method(method)
            .uri(request.path_and_query.as_str());
        for (name, value) in &request.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| invalid(format!("{name:?} is not a header name")))?;
            let value = HeaderValue::from_bytes(value)
                .map_err(|_| invalid(format!("the value of {name} is not a valid header value")))?;
            builder = builder.header(name, value);
        }
        let outbound = builder
            .body(full_body(request.body))
            .map_err(|e| invalid(e.to_string()))?;
        // The plugin's own call deadline bounds this call.
        let response = service
            .send(outbound, Duration::from_secs(3600))
            .await
            .map_err(|e| match e {
                UpstreamError::Timeout { .. } => wit::HttpError::Timeout,
                UpstreamError::Build(e) => invalid(e.to_string()),
                other => wit::HttpError::Unreachable(other.to_string()),
            })?;
        let (parts, body) = response.into_parts();
        let body = read_capped(body, MAX_OUTBOUND_BODY)
            .await
            .ok_or(wit::HttpError::TooLarge)?;
        Ok(wit::OutboundResponse {
            status: parts.status.as_u16(),
            headers: parts
                .headers
                .iter()
                .map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec()))
                .collect(),
            body,
        })
    }
}

/// Where a plugin may send the request being served instead of the route's service.
#[derive(Clone, Default)]
pub struct Targets {
    services: HashMap<String, Arc<Service>>,
    endpoints: Allowlist,
    /// The pooled client for allowed endpoints (a service without endpoints of its own).
    direct: Option<Arc<Service>>,
}

/// A target the plugin may use.
#[derive(Clone)]
pub enum Upstream {
    /// A granted service: its balancing and pool.
    Service(Arc<Service>),
    /// An endpoint inside the allowlist, through the plugin's direct client.
    Endpoint(Arc<Service>, Endpoint),
}

impl Targets {
    /// The services and endpoint patterns granted to a plugin; `direct` carries calls
    /// to endpoints.
    pub fn new(
        services: HashMap<String, Arc<Service>>,
        endpoints: Allowlist,
        direct: Option<Arc<Service>>,
    ) -> Self {
        Self {
            services,
            endpoints,
            direct,
        }
    }

    /// The upstream `target` names, if the plugin was granted it; else why not (for the
    /// log: the client sees only `PLUGIN_ERROR`).
    pub fn resolve(&self, target: &types::Target) -> Result<Upstream, String> {
        match target {
            types::Target::Service(name) => self
                .services
                .get(name)
                .cloned()
                .map(Upstream::Service)
                .ok_or_else(|| {
                    format!(
                        "service {name:?} is not granted to this plugin as a target (grant it with `services = [...]` under [plugins.NAME])"
                    )
                }),
            types::Target::Endpoint(url) => {
                let endpoint = Endpoint::parse(url)
                    .map_err(|why| format!("endpoint {url:?}: {why}"))?;
                match &self.direct {
                    Some(direct) if self.endpoints.allows(&endpoint) => {
                        Ok(Upstream::Endpoint(direct.clone(), endpoint))
                    }
                    _ => Err(format!(
                        "endpoint {url:?} is outside this plugin's `upstreams` allowlist"
                    )),
                }
            }
        }
    }
}

/// The whole of `body`, or `None` when it fails or passes `cap` bytes.
async fn read_capped(mut body: ProxyBody, cap: usize) -> Option<Vec<u8>> {
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.ok()?.into_data() {
            if bytes.len() + data.len() > cap {
                return None;
            }
            bytes.extend_from_slice(&data);
        }
    }
    Some(bytes)
}
