//! `rbac`: lets a request through only when the caller an auth plugin recorded
//! (`jwt-auth`, `api-key-auth`; see `wasmgate_plugin_sdk::identity`) has the roles
//! or permissions the route asks for its method.
//!
//! ```json
//! {"roles": {"admin": ["*"], "user": ["user:read", "user:update"], "viewer": ["user:read"]},
//!  "rules": [{"methods": ["GET"], "permissions": ["user:read"]},
//!            {"methods": ["PUT", "PATCH"], "permissions": ["user:update"]},
//!            {"methods": ["DELETE"], "roles": ["admin"]}]}
//! ```
//!
//! The first rule whose `methods` (and `path_prefix`, if given) match decides: the
//! caller needs one of its `roles` (when given) and every one of its `permissions`
//! (when given). A caller's permissions are those its roles grant in `roles` plus
//! those its token or key carries; `*` grants all, `user:*` all of `user:`. A request
//! no rule matches is refused unless `unmatched` is `"allow"`. No recorded caller is
//! 401 `UNAUTHORIZED`; a missing role or permission is 403 `FORBIDDEN` naming it.

use std::collections::BTreeMap;

use serde::Deserialize;
use wasmgate_plugin_sdk::identity::Identity;
use wasmgate_plugin_sdk::{
    Action, Context, Plugin, Request, Response, Settings, export_plugin, log, paths,
};

/// The plugin's config for one route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Role → the permissions it grants.
    #[serde(default)]
    pub roles: BTreeMap<String, Vec<String>>,
    /// The rules, in order; the first that matches decides.
    pub rules: Vec<Rule>,
    /// What happens to a request no rule matches.
    #[serde(default)]
    pub unmatched: Unmatched,
}

/// One rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The methods it applies to; all when absent.
    #[serde(default)]
    pub methods: Option<Vec<String>>,
    /// Only paths (as received) under this prefix, whole segments.
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// The caller needs one of these roles.
    #[serde(default)]
    pub roles: Vec<String>,
    /// The caller needs every one of these permissions.
    #[serde(default)]
    pub permissions: Vec<String>,
}

/// `unmatched`: refuse (the default) or let through a request no rule matches.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unmatched {
    /// 403.
    #[default]
    Deny,
    /// Any authenticated caller passes.
    Allow,
}

/// The access rules of one route.
pub struct Rbac {
    roles: BTreeMap<String, Vec<String>>,
    rules: Vec<Rule>,
    unmatched: Unmatched,
}

impl Plugin for Rbac {
    type Config = Config;

    fn settings(&self) -> Settings {
        Settings::REQUEST_ONLY
    }

    fn new(mut config: Config) -> Result<Self, String> {
        for (i, rule) in config.rules.iter_mut().enumerate() {
            if let Some(methods) = &mut rule.methods {
                if methods.is_empty() {
                    return Err(format!("rules[{i}].methods: empty; leave it out for all"));
                }
                for method in methods.iter_mut() {
                    method.make_ascii_uppercase();
                }
            }
            if let Some(prefix) = &rule.path_prefix
                && !prefix.starts_with('/')
            {
                return Err(format!(
                    "rules[{i}].path_prefix: {prefix:?} must start with '/'"
                ));
            }
            if rule.roles.is_empty() && rule.permissions.is_empty() {
                return Err(format!(
                    "rules[{i}]: needs `roles`, `permissions` or both (use `unmatched = \"allow\"` to let callers through)"
                ));
            }
            for role in &rule.roles {
                if !config.roles.is_empty() && !config.roles.contains_key(role) {
                    return Err(format!("rules[{i}].roles: unknown role {role:?}"));
                }
            }
        }
        Ok(Self {
            roles: config.roles,
            rules: config.rules,
            unmatched: config.unmatched,
        })
    }

    /// Decides on the method and path as received: a path an earlier plugin rewrote
    /// for the upstream does not change who may call the route.
    fn on_request(&self, _: &mut Request, ctx: &mut Context) -> Action {
        let (method, path) = (ctx.method(), ctx.path());
        let Some(caller) = Identity::of(ctx) else {
            log::warn(&format!(
                "refused {method} {path}: no authenticated caller (put an auth plugin before rbac)"
            ));
            return Action::Respond(Response::unauthorized("authentication required", ctx));
        };
        match self.decide(&caller, method.as_str(), &path) {
            Ok(()) => Action::Continue,
            Err(missing) => {
                let who = caller
                    .username
                    .as_deref()
                    .or(caller.user_id.as_deref())
                    .or(caller.consumer.as_deref())
                    .unwrap_or("?");
                log::info(&format!("refused {method} {path} for {who}: {missing}"));
                Action::Respond(Response::forbidden(&missing, ctx))
            }
        }
    }
}

impl Rbac {
    /// `Ok` when `caller` may make the request; else what is missing.
    fn decide(&self, caller: &Identity, method: &str, path: &str) -> Result<(), String> {
        let Some(rule) = self.rules.iter().find(|rule| {
            rule.methods
                .as_ref()
                .is_none_or(|methods| methods.iter().any(|m| m == method))
                && rule
                    .path_prefix
                    .as_deref()
                    .is_none_or(|prefix| paths::is_under(path, prefix))
        }) else {
            return match self.unmatched {
                Unmatched::Allow => Ok(()),
                Unmatched::Deny => Err(format!("no rule allows {method} here")),
            };
        };
        if !rule.roles.is_empty() && !rule.roles.iter().any(|r| caller.roles.contains(r)) {
            return Err(format!("requires role {}", rule.roles.join(" or ")));
        }
        let granted: Vec<&str> = caller
            .roles
            .iter()
            .filter_map(|role| self.roles.get(role))
            .flatten()
            .chain(caller.permissions.iter())
            .map(String::as_str)
            .collect();
        for needed in &rule.permissions {
            if !granted.iter().any(|g| grants(g, needed)) {
                return Err(format!("missing permission {needed}"));
            }
        }
        Ok(())
    }
}

/// Whether permission `granted` covers `needed`: equal, `*`, or `area:*` for
/// `area:anything`.
fn grants(granted: &str, needed: &str) -> bool {
    granted == "*"
        || granted == needed
        || granted
            .strip_suffix('*')
            .is_some_and(|area| area.ends_with(':') && needed.starts_with(area))
}

export_plugin!(Rbac);

#[cfg(test)]
mod tests;
