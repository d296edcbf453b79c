//! Test guest: breaks exactly one of the gateway's output rules, the one the request's
//! `x-malformed` header names, so that each rule is seen refused on its own:
//!
//! - `status`: answers (`Action::Respond`) with the status 1000;
//! - `header-name`: sets a request header whose name is no HTTP token;
//! - `header-value`: sets a request header whose value holds CR LF;
//! - `path`: rewrites the path to one that does not start with `/`;
//! - `method`: rewrites the method to one that is no HTTP token;
//! - `query`: rewrites the query to one holding `#`.
//!
//! Any other value (or none) passes the request on untouched.

use wasmgate_plugin_sdk::{
    Action, Context, Method, NoConfig, Plugin, Request, Response, export_plugin,
};

/// Every rule this guest can break, as `x-malformed` names it.
pub const RULES: [&str; 6] = [
    "status",
    "header-name",
    "header-value",
    "path",
    "method",
    "query",
];

struct Malformed;

impl Plugin for Malformed {
    type Config = NoConfig;

    fn new(_: NoConfig) -> Result<Self, String> {
        Ok(Malformed)
    }

    fn on_request(&self, request: &mut Request, _: &mut Context) -> Action {
        let rule = request.headers.get("x-malformed").unwrap_or_default();
        match rule.as_str() {
            "status" => return Action::Respond(Response::new(1000)),
            "header-name" => request.headers.set("bad header\n", "x"),
            "header-value" => request.headers.set("x-injected", "a\r\nx-evil: 1"),
            "path" => request.set_path("no-leading-slash"),
            "method" => request.set_method(Method::Other("GE T".into())),
            "query" => request.set_query(Some("a=1#fragment")),
            _ => {}
        }
        Action::Continue
    }
}

export_plugin!(Malformed);

#[cfg(test)]
mod tests {
    use wasmgate_plugin_sdk::testing::{Harness, TestRequest};

    use super::*;

    #[test]
    fn passes_normal_requests() {
        let mut harness = Harness::<Malformed>::new("{}").unwrap();
        let request = TestRequest::get("/").header("x-malformed", "none");
        let outcome = harness.on_request(request.clone());
        assert_eq!(outcome.request(), Some(&request.into()));
    }

    #[test]
    fn the_harness_refuses_each_rule_alone_as_the_gateway_would() {
        let expected = [
            ("status", "status 1000"),
            ("header-name", "bad header"),
            ("header-value", "x-injected"),
            ("path", "starting with '/'"),
            ("method", "GE T"),
            ("query", "'#'"),
        ];
        assert_eq!(expected.map(|(rule, _)| rule), RULES);
        for (rule, says) in expected {
            let mut harness = Harness::<Malformed>::new("{}").unwrap();
            let error = harness
                .try_on_request(TestRequest::get("/").header("x-malformed", rule))
                .unwrap_err();
            assert!(error.contains(says), "{rule}: {error}");
        }
    }
}
