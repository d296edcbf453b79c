//! A component that exports `wasmgate:plugin/handler@9.0.0`: a plugin built against
//! a contract this gateway does not implement. `wasmgate plugin build` and the
//! gateway's loader must refuse it, naming both versions.

// The code wit-bindgen generates (the canonical ABI glue) is the only `unsafe` here.
// Component exports only: a native build (the workspace's tests) has nothing, since
// a native linker cannot export names like `wasmgate:plugin/handler@9.0.0#ping`.
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code, missing_docs, clippy::all)]
mod bindings {
    wit_bindgen::generate!({ path: "wit", world: "plugin" });

    struct Nine;

    impl exports::wasmgate::plugin::handler::Guest for Nine {
        fn ping() -> u32 {
            9
        }
    }

    export!(Nine);
}
