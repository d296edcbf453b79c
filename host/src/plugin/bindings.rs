//! The one place `bindgen!` runs on `wit/`. Generated code stays in this private
//! module; the rest of the host uses the re-exports in `plugin`.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
    imports: { default: async },
    exports: { default: async },
});

pub use self::wasmgate::plugin::{clock, http, kv, log, metrics, secrets, types};

/// The WIT package version the host implements.
pub const WIT_VERSION: &str = "0.5.1";
