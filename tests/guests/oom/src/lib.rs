//! Test guest: allocates and touches 1 GiB in `on_request` when the request has
//! `x-oom: 1`.

use wasmgate_plugin_sdk::{Action, Context, NoConfig, Plugin, Request, export_plugin};

struct Oom;

impl Plugin for Oom {
    type Config = NoConfig;

    fn new(_: NoConfig) -> Result<Self, String> {
        Ok(Oom)
    }

    fn on_request(&self, request: &mut Request, _: &mut Context) -> Action {
        if request.headers.get("x-oom").as_deref() == Some("1") {
            let big = std::hint::black_box(vec![1u8; 1 << 30]);
            request.headers.set("x-oom-size", big.len().to_string());
        }
        Action::Continue
    }
}

export_plugin!(Oom);

#[cfg(test)]
mod tests {
    use wasmgate_plugin_sdk::testing::{Harness, TestRequest};

    use super::*;

    #[test]
    fn passes_normal_requests() {
        let mut harness = Harness::<Oom>::new("{}").unwrap();
        let request = TestRequest::get("/").header("x-oom", "0");
        let outcome = harness.on_request(request.clone());
        assert_eq!(outcome.request(), Some(&request.into()));
    }
}
