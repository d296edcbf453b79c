//! The gateway's own endpoints: `/health`, `/health/live`, `/health/ready` and
//! `/metrics`. The gateway listener answers them at the configured paths, before
//! routing (and outside the request metrics); the admin listener always answers them.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use crate::server::Shared;

/// One of the gateway's own endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// `GET /health`: status, version, uptime, generation, services.
    Health,
    /// `GET /health/live`
    Live,
    /// `GET /health/ready`
    Ready,
    /// `GET /metrics`: Prometheus (OpenMetrics text).
    Metrics,
}

/// Where the gateway listener answers its own endpoints; an empty path turns one off.
#[derive(Debug, Clone, Default)]
pub struct BuiltinPaths {
    /// `[health] path`; `PATH/live` and `PATH/ready` go with it.
    pub health: String,
    /// `[metrics] path`
    pub metrics: String,
}

impl BuiltinPaths {
    /// Which endpoint `path` names, if any.
    pub fn lookup(&self, path: &str) -> Option<Builtin> {
        if !self.metrics.is_empty() && path == self.metrics {
            return Some(Builtin::Metrics);
        }
        if self.health.is_empty() {
            return None;
        }
        match path.strip_prefix(self.health.as_str())? {
            "" => Some(Builtin::Health),
            "/live" => Some(Builtin::Live),
            "/ready" => Some(Builtin::Ready),
            _ => None,
        }
    }
}

/// The response of `endpoint` now.
pub fn answer(shared: &Shared, endpoint: Builtin) -> Response<Bytes> {
    let snapshot = shared.snapshot.load();
    let (status, body) = match endpoint {
        Builtin::Metrics => {
            shared
                .metrics
                .generation
                .set(i64::try_from(snapshot.generation).unwrap_or(i64::MAX));
            let mut response = Response::new(Bytes::from(shared.metrics.render()));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            return response;
        }
        Builtin::Health => {
            let services: Vec<_> = snapshot.services.values().cloned().collect();
            shared.health.report(snapshot.generation, &services)
        }
        Builtin::Live => shared.health.live(),
        Builtin::Ready => shared.health.ready(snapshot.generation),
    };
    let mut response = Response::new(Bytes::from(body.to_string()));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_their_endpoints() {
        let paths = BuiltinPaths {
            health: "/health".into(),
            metrics: "/metrics".into(),
        };
        assert_eq!(paths.lookup("/health"), Some(Builtin::Health));
        assert_eq!(paths.lookup("/health/live"), Some(Builtin::Live));
        assert_eq!(paths.lookup("/health/ready"), Some(Builtin::Ready));
        assert_eq!(paths.lookup("/metrics"), Some(Builtin::Metrics));
        assert_eq!(paths.lookup("/healthz"), None);
        assert_eq!(paths.lookup("/health/other"), None);
        let off = BuiltinPaths::default();
        assert_eq!(off.lookup("/health"), None);
        assert_eq!(off.lookup("/metrics"), None);
    }
}
