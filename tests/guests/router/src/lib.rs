//! Test guest for `Action::ContinueTo`: sends the request to the service named in the
//! request header `x-route-service`, else to the endpoint in `x-route-endpoint`, else
//! to the `service` or `endpoint` of its config, else on to the route's own service.
//! The gateway checks the target against the plugin's grant (`services`, `upstreams`
//! under `[plugins.router]`); the guest does not.
//!
//! Config: `{"service": "NAME" | null, "endpoint": "http://host:port" | null}`, at
//! most one of the two.

use serde::Deserialize;
use wasmgate_plugin_sdk::{Action, Context, Plugin, Request, Settings, Target, export_plugin};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    service: Option<String>,
    #[serde(default)]
    endpoint: Option<String>,
}

struct Router {
    /// Where requests without a routing header go; `None` for the route's service.
    default: Option<Target>,
}

impl Plugin for Router {
    type Config = Config;

    fn new(config: Config) -> Result<Self, String> {
        let default = match (config.service, config.endpoint) {
            (Some(_), Some(_)) => return Err("give `service` or `endpoint`, not both".into()),
            (Some(service), None) => Some(Target::Service(service)),
            (None, Some(endpoint)) => Some(Target::Endpoint(endpoint)),
            (None, None) => None,
        };
        Ok(Router { default })
    }

    fn settings(&self) -> Settings {
        Settings::REQUEST_ONLY
    }

    fn on_request(&self, request: &mut Request, _: &mut Context) -> Action {
        let mut asked = request
            .headers
            .get_many(&["x-route-service", "x-route-endpoint"])
            .into_iter();
        let (service, endpoint) = (asked.next().flatten(), asked.next().flatten());
        let target = match (service, endpoint) {
            (Some(service), _) => Some(Target::Service(service)),
            (None, Some(endpoint)) => Some(Target::Endpoint(endpoint)),
            (None, None) => self.default.clone(),
        };
        match target {
            Some(target) => Action::ContinueTo(target),
            None => Action::Continue,
        }
    }
}

export_plugin!(Router);

#[cfg(test)]
mod tests {
    use wasmgate_plugin_sdk::testing::{Harness, TestRequest};

    use super::*;

    fn target(config: &str, request: TestRequest) -> Option<Target> {
        let mut harness = Harness::<Router>::new(config).unwrap();
        let outcome = harness.on_request(request.clone());
        assert_eq!(
            outcome.request(),
            Some(&request.into()),
            "passed on unchanged"
        );
        outcome.target().cloned()
    }

    fn service(name: &str) -> Option<Target> {
        Some(Target::Service(name.into()))
    }

    fn endpoint(url: &str) -> Option<Target> {
        Some(Target::Endpoint(url.into()))
    }

    #[test]
    fn a_header_chooses_the_target() {
        let by_service = TestRequest::get("/").header("x-route-service", "billing");
        assert_eq!(target("{}", by_service.clone()), service("billing"));
        let by_endpoint = TestRequest::get("/").header("X-Route-Endpoint", "http://127.0.0.1:9001");
        assert_eq!(target("{}", by_endpoint), endpoint("http://127.0.0.1:9001"));
        let both = by_service.header("x-route-endpoint", "http://127.0.0.1:9001");
        assert_eq!(
            target("{}", both),
            service("billing"),
            "the service header wins"
        );
    }

    #[test]
    fn the_header_wins_over_the_config() {
        let request = TestRequest::get("/").header("x-route-endpoint", "http://10.0.0.1:80");
        assert_eq!(
            target(r#"{"service": "billing"}"#, request),
            endpoint("http://10.0.0.1:80")
        );
    }

    #[test]
    fn without_a_header_the_config_decides() {
        let request = TestRequest::post("/orders?x=1").body("b");
        assert_eq!(
            target(r#"{"service": "orders"}"#, request.clone()),
            service("orders")
        );
        assert_eq!(
            target(
                r#"{"endpoint": "http://127.0.0.1:9002", "service": null}"#,
                request.clone()
            ),
            endpoint("http://127.0.0.1:9002")
        );
        assert_eq!(target("{}", request.clone()), None);
        let mut harness = Harness::<Router>::new(r#"{"service": null, "endpoint": null}"#).unwrap();
        assert_eq!(harness.on_request(request).action, Action::Continue);
        assert_eq!(harness.settings(), Settings::REQUEST_ONLY);
    }

    #[test]
    fn configs_it_cannot_follow_are_refused() {
        for (config, want) in [
            (r#"{"service": "a", "endpoint": "http://b:1"}"#, "not both"),
            (r#"{"services": "a"}"#, "unknown field `services`"),
            (r#"{"service": 1}"#, "invalid type"),
        ] {
            let error = Harness::<Router>::new(config).err().unwrap();
            assert!(error.contains(want), "{config}: {error}");
        }
    }
}
