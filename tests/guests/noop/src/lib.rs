//! Test guest: the trivial filter (every hook passes through), for benchmarks.

use wasmgate_plugin_sdk::{Plugin, export_plugin};

struct Noop;

impl Plugin for Noop {
    type Config = serde_json::Value;

    fn new(_: serde_json::Value) -> Result<Self, String> {
        Ok(Noop)
    }
}

export_plugin!(Noop);
