//! The one place `wit_bindgen::generate!` runs on `wit/`. Plugin authors never see
//! these types; the SDK converts to and from its own.

wit_bindgen::generate!({
    path: "../wit",
    world: "plugin",
    pub_export_macro: true,
    export_macro_name: "__export_wasmgate_plugin",
    default_bindings_module: "wasmgate_plugin_sdk::__bindings",
    generate_all,
});
