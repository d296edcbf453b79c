//! Test guest: loops forever in `on_request` when the request has `x-spin: 1`.

use wasmgate_plugin_sdk::{Action, Context, NoConfig, Plugin, Request, export_plugin};

struct Spin;

impl Plugin for Spin {
    type Config = NoConfig;

    fn new(_: NoConfig) -> Result<Self, String> {
        Ok(Spin)
    }

    fn on_request(&self, request: &mut Request, _: &mut Context) -> Action {
        if request.headers.get("x-spin").as_deref() == Some("1") {
            // `black_box` hides the counter from the optimiser, so the loop (which never
            // ends: `n` stays below `u64::MAX - 1`) cannot be proven endless and removed.
            let mut n: u64 = 0;
            while std::hint::black_box(n) != u64::MAX {
                n = std::hint::black_box(n.wrapping_add(1) % (u64::MAX - 1));
            }
        }
        Action::Continue
    }
}

export_plugin!(Spin);

#[cfg(test)]
mod tests {
    use wasmgate_plugin_sdk::testing::{Harness, TestRequest};

    use super::*;

    #[test]
    fn passes_normal_requests() {
        let mut harness = Harness::<Spin>::new("{}").unwrap();
        let request = TestRequest::get("/").header("x-spin", "0");
        let outcome = harness.on_request(request.clone());
        assert_eq!(outcome.request(), Some(&request.into()));
    }
}
