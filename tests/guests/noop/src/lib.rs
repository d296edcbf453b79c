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
