//! Test guest: the trivial filter (every hook passes through), for benchmarks.

use wasmgate_plugin_sdk::{NoConfig, Plugin, export_plugin};

struct Noop;

impl Plugin for Noop {
    type Config = NoConfig;

    fn new(_: NoConfig) -> Result<Self, String> {
        Ok(Noop)
    }
}

export_plugin!(Noop);

#[cfg(test)]
mod tests {
    use wasmgate_plugin_sdk::testing::{Harness, TestRequest};
    use wasmgate_plugin_sdk::{Response, Settings};

    use super::*;

    #[test]
    fn passes_everything_through_in_both_phases() {
        let mut harness = Harness::<Noop>::new("{}").unwrap();
        assert_eq!(
            harness.settings(),
            Settings::default(),
            "called in both phases"
        );
        let request = TestRequest::post("/a?b=1").header("x", "1").body("c");
        let outcome = harness.on_request(request.clone());
        assert_eq!(outcome.request(), Some(&request.into()));
        let response = Response::text(201, "d").with_header("y", "2");
        assert_eq!(harness.on_response(response.clone()), response);
        assert!(harness.logs().is_empty() && harness.vars_set().is_empty());
        assert!(
            Harness::<Noop>::new(r#"{"x": 1}"#).is_err(),
            "takes no config"
        );
    }
}
