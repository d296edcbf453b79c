//! Test guest: loops forever in `on_request` when the request has `x-spin: 1`.

use wasmgate_plugin_sdk::{Action, Context, Plugin, Request, export_plugin};

struct Spin;

impl Plugin for Spin {
    type Config = serde_json::Value;

    fn new(_: serde_json::Value) -> Result<Self, String> {
        Ok(Spin)
    }

    fn on_request(&self, request: Request, _: &mut Context) -> Action {
        if request.headers.get("x-spin") == Some("1") {
            let mut n: u64 = 0;
            while std::hint::black_box(n) != u64::MAX {
                n = std::hint::black_box(n.wrapping_add(1) % (u64::MAX - 1));
            }
        }
        Action::Continue(request)
    }
}

export_plugin!(Spin);
