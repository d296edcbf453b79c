//! The `registry` plugin's routes as the MSA example sets them (`/discovery`,
//! `/services`, `/api`), and a client for its discovery API.

use std::net::SocketAddr;

use crate::{GatewayProcess, client};

/// The plugin (as `registry`), its grant (`upstreams`, TOML array items such as
/// `"http://127.0.0.1:*"`) and its three routes, with instances live for
/// `heartbeat_ttl_seconds` and lists of live instances reused for `refresh_ms`.
pub fn registry_toml(upstreams: &str, heartbeat_ttl_seconds: u64, refresh_ms: u64) -> String {
    let timings =
        format!("heartbeat_ttl_seconds = {heartbeat_ttl_seconds}, refresh_ms = {refresh_ms}");
    format!(
        r#"
[plugins.registry]
upstreams = [{upstreams}]

[[routes]]
name = "discovery"
prefix = "/discovery"
[[routes.plugins]]
name = "registry"
config = {{ discovery = "/discovery", {timings} }}

[[routes]]
name = "services"
path = "/services"
[[routes.plugins]]
name = "registry"
config = {{ services = "/services", {timings} }}

[[routes]]
name = "api"
prefix = "/api"
[[routes.plugins]]
name = "registry"
config = {{ proxy = "/api", {timings} }}
"#
    )
}

/// Registers `address` as instance `id` of `service` through `gateway`'s discovery
/// API, which must answer 201.
pub async fn register_instance(
    gateway: &GatewayProcess,
    service: &str,
    id: &str,
    address: SocketAddr,
) {
    let response = client()
        .post(gateway.url("/discovery/register"))
        .json(&serde_json::json!({
            "name": service,
            "id": id,
            "host": address.ip().to_string(),
            "port": address.port(),
        }))
        .send()
        .await
        .expect("register");
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    assert_eq!(status, 201, "register {id}: {body}");
}
