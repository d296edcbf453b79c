//! `keystone`: AIMS's `POST /openstack/connect` as a service plugin. The client sends
//! OpenStack credentials; the plugin asks Keystone v3 for a project-scoped token
//! (`POST {auth_url}/auth/tokens`, password method) through a service the operator
//! granted it (`http = ["keystone"]`), and answers whether the connection works, with
//! the project's and the user's ids, the token's expiry, the roles and the endpoints
//! of the region and interface. The token itself is never returned or kept.
//!
//! The client may name the `auth_url`, but only one the operator configured (the
//! default and `clouds`): the gateway never connects where a client points it.
//!
//! | Keystone | client |
//! |---|---|
//! | 201 with `X-Subject-Token` | 200, `data.connected = true` |
//! | 401 (bad password, unknown user or project) | 401 `UNAUTHORIZED` |
//! | 403 | 403 `FORBIDDEN` |
//! | any other answer | 502 `BAD_GATEWAY` |
//! | unreachable | 502 `BAD_GATEWAY` |
//! | no answer in time | 504 `GATEWAY_TIMEOUT` |
//!
//! Each request logs `openstack_connect_attempt`, then `openstack_connect_success`
//! or `openstack_connect_failed` (with `reason`), as AIMS did; never the password.

mod keystone;

use serde::Deserialize;
use serde_json::{Map, Value, json};
use wasmgate_plugin_sdk::log::{self, Level};
use wasmgate_plugin_sdk::{
    Action, Context, ErrorCode, Method, Plugin, Request, Response, Settings, export_plugin,
};

pub use keystone::Failure;

/// The plugin's config for one route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The default Keystone, as clients name it (AIMS's `OS_AUTH_URL`), e.g.
    /// `https://openstack.example.com:5000/v3`.
    pub auth_url: String,
    /// The granted service that reaches it.
    pub service: String,
    /// Other Keystones a client may name by their `auth_url`.
    #[serde(default)]
    pub clouds: Vec<Cloud>,
    /// The region whose endpoints are listed when the client names none
    /// (`OS_REGION_NAME`).
    #[serde(default)]
    pub region_name: Option<String>,
    /// The endpoint interface listed when the client names none (`OS_INTERFACE`).
    #[serde(default = "default_interface")]
    pub interface: String,
}

/// A Keystone a client may name.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cloud {
    /// Its auth URL as clients write it.
    pub auth_url: String,
    /// The granted service that reaches it.
    pub service: String,
}

fn default_interface() -> String {
    "public".into()
}

/// The interfaces Keystone's catalog has.
const INTERFACES: [&str; 3] = ["public", "internal", "admin"];

/// A connect request's body (AIMS's).
#[derive(Debug, Deserialize)]
struct Connect {
    #[serde(default)]
    auth_url: Option<String>,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    project_name: String,
    #[serde(default = "default_domain")]
    user_domain_name: String,
    #[serde(default = "default_domain")]
    project_domain_name: String,
    #[serde(default)]
    region_name: Option<String>,
    #[serde(default)]
    interface: Option<String>,
}

fn default_domain() -> String {
    "Default".into()
}

/// The connect service of one route.
pub struct KeystoneConnect {
    /// The default first, then the others.
    clouds: Vec<Cloud>,
    region_name: Option<String>,
    interface: String,
}

/// `auth_url` without a trailing `/`, for comparing.
fn canonical(auth_url: &str) -> String {
    auth_url.trim().trim_end_matches('/').to_string()
}

impl Plugin for KeystoneConnect {
    type Config = Config;

    fn new(config: Config) -> Result<Self, String> {
        let mut clouds = vec![Cloud {
            auth_url: config.auth_url,
            service: config.service,
        }];
        clouds.extend(config.clouds);
        for cloud in &mut clouds {
            keystone::tokens_path(&cloud.auth_url)
                .map_err(|why| format!("auth_url {:?}: {why}", cloud.auth_url))?;
            if cloud.service.is_empty() {
                return Err(format!("auth_url {:?}: service is empty", cloud.auth_url));
            }
            cloud.auth_url = canonical(&cloud.auth_url);
        }
        if !INTERFACES.contains(&config.interface.as_str()) {
            return Err(format!(
                "interface {:?}: use public, internal or admin",
                config.interface
            ));
        }
        Ok(Self {
            clouds,
            region_name: config.region_name.filter(|r| !r.is_empty()),
            interface: config.interface,
        })
    }

    fn settings(&self) -> Settings {
        Settings {
            request_body: true,
            ..Settings::REQUEST_ONLY
        }
    }

    fn on_request(&self, request: &mut Request, ctx: &mut Context) -> Action {
        if request.method() != Method::Post {
            return Action::Respond(
                Response::error(
                    405,
                    "METHOD_NOT_ALLOWED",
                    &format!("{} is not allowed here", request.method()),
                    ctx,
                )
                .with_header("allow", "POST"),
            );
        }
        Action::Respond(self.connect(&request.body().unwrap_or_default(), ctx))
    }
}

impl KeystoneConnect {
    fn connect(&self, body: &[u8], ctx: &Context) -> Response {
        let form: Connect = match serde_json::from_slice(body) {
            Ok(form) => form,
            Err(e) => return Response::bad_request(&format!("invalid connect request: {e}"), ctx),
        };
        let mut fields = Map::new();
        for (name, value) in [
            ("username", &form.username),
            ("password", &form.password),
            ("project_name", &form.project_name),
            ("user_domain_name", &form.user_domain_name),
            ("project_domain_name", &form.project_domain_name),
        ] {
            if value.trim().is_empty() {
                fields.insert(name.into(), "required".into());
            }
        }
        let cloud = match &form.auth_url {
            None => Some(&self.clouds[0]),
            Some(url) => {
                let url = canonical(url);
                self.clouds.iter().find(|c| c.auth_url == url)
            }
        };
        if cloud.is_none() {
            fields.insert(
                "auth_url".into(),
                "not an OpenStack this gateway connects to".into(),
            );
        }
        let interface = form.interface.as_deref().unwrap_or(&self.interface);
        if !INTERFACES.contains(&interface) {
            fields.insert("interface".into(), "public, internal or admin".into());
        }
        let (Some(cloud), true) = (cloud, fields.is_empty()) else {
            return Response::error_with_data(
                ErrorCode::ValidationError,
                "invalid connect request",
                &json!({ "fields": fields }),
                ctx,
            );
        };
        let region = form.region_name.as_deref().or(self.region_name.as_deref());
        let event = |name: &'static str, more: Vec<(&'static str, log::Value)>| {
            let mut fields: Vec<(&'static str, log::Value)> = vec![
                ("event", name.into()),
                ("auth_url", cloud.auth_url.as_str().into()),
                ("username", form.username.as_str().into()),
                ("project_name", form.project_name.as_str().into()),
            ];
            fields.extend(more);
            fields
        };
        log::event(
            Level::Info,
            "openstack_connect_attempt",
            &event("openstack_connect_attempt", Vec::new()),
        );
        let scope = keystone::Scope {
            username: &form.username,
            password: &form.password,
            user_domain_name: &form.user_domain_name,
            project_name: &form.project_name,
            project_domain_name: &form.project_domain_name,
        };
        match keystone::authenticate(&cloud.service, &cloud.auth_url, &scope) {
            Ok(token) => {
                log::event(
                    Level::Info,
                    "openstack_connect_success",
                    &event(
                        "openstack_connect_success",
                        vec![
                            ("project_id", token.project_id.as_str().into()),
                            ("user_id", token.user_id.as_str().into()),
                            ("expires_at", token.expires_at.as_str().into()),
                        ],
                    ),
                );
                let endpoints = token.endpoints(region, interface);
                let data: Value = json!({
                    "connected": true,
                    "auth_url": cloud.auth_url,
                    "user_id": token.user_id,
                    "user_name": token.user_name,
                    "project_id": token.project_id,
                    "project_name": token.project_name,
                    "expires_at": token.expires_at,
                    "issued_at": token.issued_at,
                    "roles": token.roles,
                    "region_name": region,
                    "interface": interface,
                    "endpoints": endpoints,
                });
                Response::success(200, "connected to OpenStack", &data, ctx)
            }
            Err(failure) => {
                log::event(
                    Level::Warn,
                    "openstack_connect_failed",
                    &event(
                        "openstack_connect_failed",
                        vec![
                            ("reason", failure.reason().into()),
                            ("keystone_status", i64::from(failure.status()).into()),
                        ],
                    ),
                );
                failure.response(ctx)
            }
        }
    }
}

export_plugin!(KeystoneConnect);

#[cfg(test)]
mod tests;
