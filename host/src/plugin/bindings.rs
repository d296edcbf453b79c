//! The one place `bindgen!` runs on `wit/`. Generated code stays in this private
//! module; the rest of the host uses the re-exports in `plugin`.
//!
//! The host finds a plugin's exports itself ([`ExportsPre`]) rather than through the
//! generated world struct, which would require every export of the current contract:
//! `websocket` (0.5.2) is optional, so plugins built against 0.5.0 and 0.5.1 load.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
    imports: { default: async },
    exports: { default: async },
});

pub use self::exports::wasmgate::plugin::{handler, websocket};
pub use self::wasmgate::plugin::{clock, http, kv, log, metrics, secrets, types};

/// The WIT package version the host implements.
pub const WIT_VERSION: &str = "0.5.2";

/// A linked plugin, ready to instantiate, with its exports found once.
pub struct ExportsPre<T: 'static> {
    instance_pre: wasmtime::component::InstancePre<T>,
    handler: handler::GuestIndices,
    websocket: Option<websocket::GuestIndices>,
}

impl<T: 'static> Clone for ExportsPre<T> {
    fn clone(&self) -> Self {
        Self {
            instance_pre: self.instance_pre.clone(),
            handler: self.handler.clone(),
            websocket: self.websocket.clone(),
        }
    }
}

impl<T: Send + 'static> ExportsPre<T> {
    /// Finds `handler` (required) and `websocket` (optional) in the plugin.
    pub fn new(instance_pre: wasmtime::component::InstancePre<T>) -> wasmtime::Result<Self> {
        let handler = handler::GuestIndices::new(&instance_pre)?;
        let websocket = websocket::GuestIndices::new(&instance_pre).ok();
        Ok(Self {
            instance_pre,
            handler,
            websocket,
        })
    }

    /// Makes an instance in `store`.
    pub async fn instantiate_async(
        &self,
        mut store: impl wasmtime::AsContextMut<Data = T>,
    ) -> wasmtime::Result<Exports> {
        let instance = self.instance_pre.instantiate_async(&mut store).await?;
        let handler = self.handler.load(&mut store, &instance)?;
        let websocket = match &self.websocket {
            Some(indices) => Some(indices.load(&mut store, &instance)?),
            None => None,
        };
        Ok(Exports { handler, websocket })
    }
}

/// An instance's exports.
pub struct Exports {
    handler: handler::Guest,
    websocket: Option<websocket::Guest>,
}

impl Exports {
    /// `wasmgate:plugin/handler`.
    pub fn wasmgate_plugin_handler(&self) -> &handler::Guest {
        &self.handler
    }

    /// `wasmgate:plugin/websocket`, when the plugin exports it (built against 0.5.2
    /// or later).
    pub fn wasmgate_plugin_websocket(&self) -> Option<&websocket::Guest> {
        self.websocket.as_ref()
    }
}
