//! Test guest for the `metrics` import: per request adds 1 to the counter
//! `guest_requests_total{route}` and observes 0.25 in the histogram
//! `guest_value_seconds`. With `x-bad-metric: 1` it also tries the reserved
//! `http_requests_total`. Every error the gateway returns is passed upstream in a
//! request header `x-metric-error`, so the upstream's echo shows it.

use wasmgate_plugin_sdk::{Action, Context, NoConfig, Plugin, Request, export_plugin, metrics};

struct Metered;

impl Plugin for Metered {
    type Config = NoConfig;

    fn new(_: NoConfig) -> Result<Self, String> {
        Ok(Metered)
    }

    fn on_request(&self, request: &mut Request, ctx: &mut Context) -> Action {
        let mut results = vec![
            metrics::counter_add("guest_requests_total", &[("route", &ctx.route())], 1),
            metrics::histogram_observe("guest_value_seconds", &[], 0.25),
        ];
        if request.headers.get("x-bad-metric").as_deref() == Some("1") {
            results.push(metrics::counter_add("http_requests_total", &[], 1));
        }
        for error in results.into_iter().filter_map(Result::err) {
            request.headers.append("x-metric-error", error);
        }
        Action::Continue
    }
}

export_plugin!(Metered);

#[cfg(test)]
mod tests {
    use wasmgate_plugin_sdk::testing::{Harness, TestRequest};

    use super::*;

    #[test]
    fn records_a_counter_by_route_and_a_histogram() {
        let mut harness = Harness::<Metered>::new("{}").unwrap();
        harness.ctx.route = "metered".into();
        for _ in 0..2 {
            let outcome = harness.on_request(TestRequest::get("/"));
            assert!(
                !outcome
                    .request()
                    .unwrap()
                    .headers
                    .contains("x-metric-error")
            );
        }
        assert_eq!(
            harness.counter("guest_requests_total", &[("route", "metered")]),
            2
        );
        assert_eq!(harness.histogram("guest_value_seconds", &[]), [0.25, 0.25]);
        assert!(harness.refused_metrics().is_empty());
    }

    #[test]
    fn a_reserved_name_is_refused_and_the_reason_goes_upstream() {
        let mut harness = Harness::<Metered>::new("{}").unwrap();
        let outcome = harness.on_request(TestRequest::get("/").header("x-bad-metric", "1"));
        assert!(outcome.continues(), "it never fails the request");
        let errors = outcome.request().unwrap().headers.get_all("x-metric-error");
        assert_eq!(
            errors,
            [
                r#"metric name "http_requests_total" starts with "http_", which the gateway keeps for its own metrics"#
            ]
        );
        assert_eq!(
            harness.counter("guest_requests_total", &[("route", "test")]),
            1
        );
        assert_eq!(harness.refused_metrics().len(), 1);
    }
}
