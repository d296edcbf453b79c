//! Who made a request, as the auth plugins agree to record it: chain variables that
//! later plugins read (`rbac`, `access-log`, a rate limiter) and the `X-User-*`
//! headers the upstream reads. One place for the names, so `jwt-auth`,
//! `api-key-auth` and `rbac` cannot drift apart.
//!
//! The variables: [`METHOD_VAR`] (`auth_method`: `jwt`, `api-key`…), `user_id`,
//! `username`, `role` (comma-separated when several), `permissions`
//! (comma-separated) and `consumer` (who is billed or rate-limited: the API key's
//! consumer, or the user).
//!
//! Lists are joined with `,`, so a role or permission may not hold one (nor
//! whitespace or control characters): [`Identity::check`] refuses such a value, and the
//! auth plugins refuse the token or key that carries it. A separator can never be
//! smuggled through a claim to turn one role into two.

use serde::Deserialize;

use crate::{Context, Headers};

/// The variable that says a request is authenticated, and how (`jwt`, `api-key`).
/// An auth plugin that finds it set leaves the request alone: an earlier one in the
/// chain has already authenticated it.
pub const METHOD_VAR: &str = "auth_method";
/// The variable with the user's id.
pub const USER_ID_VAR: &str = "user_id";
/// The variable with the user's name.
pub const USERNAME_VAR: &str = "username";
/// The variable with the role, or roles separated by commas.
pub const ROLE_VAR: &str = "role";
/// The variable with the permissions, separated by commas.
pub const PERMISSIONS_VAR: &str = "permissions";
/// The variable with the consumer (the API key's owner, or the user).
pub const CONSUMER_VAR: &str = "consumer";
/// The variable with the caller's tier (an API key's `tier`), which rate limiters map
/// to a limit.
pub const TIER_VAR: &str = "tier";
/// The variable with the id of the API key that authenticated the request.
pub const API_KEY_ID_VAR: &str = "api_key_id";
/// The variable with the id (`jti`) of the token that authenticated the request, for
/// plugins that revoke or replace it (`identity`'s logout and refresh).
pub const TOKEN_ID_VAR: &str = "token_jti";
/// The variable with the expiry (`exp`, Unix seconds) of that token.
pub const TOKEN_EXPIRES_VAR: &str = "token_exp";

/// An authenticated caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// How it was authenticated, e.g. `jwt` or `api-key`.
    pub method: String,
    /// The user's id (the JWT's `sub`), if known.
    pub user_id: Option<String>,
    /// The user's name, if known.
    pub username: Option<String>,
    /// Roles, usually one.
    pub roles: Vec<String>,
    /// Permissions granted directly (by the token or the key), e.g. `user:read`.
    pub permissions: Vec<String>,
    /// Who is billed or rate-limited: the API key's consumer, else the user.
    pub consumer: Option<String>,
}

impl Identity {
    /// The identity an earlier auth plugin recorded in `ctx`, if any.
    pub fn of(ctx: &Context) -> Option<Self> {
        // One host call for all the variables, not one per field.
        let vars = ctx.vars();
        let var = |name: &str| vars.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        Some(Self {
            method: var(METHOD_VAR)?,
            user_id: var(USER_ID_VAR),
            username: var(USERNAME_VAR),
            roles: split_list(&var(ROLE_VAR).unwrap_or_default()),
            permissions: split_list(&var(PERMISSIONS_VAR).unwrap_or_default()),
            consumer: var(CONSUMER_VAR),
        })
    }

    /// Checks that every role and permission is one list item: not empty, and with no
    /// `,`, whitespace or control character that would change its meaning once joined.
    pub fn check(&self) -> Result<(), String> {
        for (what, items) in [("role", &self.roles), ("permission", &self.permissions)] {
            for item in items {
                if item.is_empty()
                    || item
                        .chars()
                        .any(|c| c == ',' || c.is_whitespace() || c.is_control())
                {
                    return Err(format!(
                        "{what} {item:?} is not allowed: roles and permissions may not be empty or hold ',', whitespace or control characters"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Records the identity in `ctx` for the rest of the chain, after
    /// [`Identity::check`]; an identity that fails it is not recorded.
    pub fn record(&self, ctx: &mut Context) -> Result<(), String> {
        self.check()?;
        ctx.set_var(METHOD_VAR, &self.method);
        let optional = [
            (USER_ID_VAR, &self.user_id),
            (USERNAME_VAR, &self.username),
            (CONSUMER_VAR, &self.consumer),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                ctx.set_var(name, value);
            }
        }
        if !self.roles.is_empty() {
            ctx.set_var(ROLE_VAR, &self.roles.join(","));
        }
        if !self.permissions.is_empty() {
            ctx.set_var(PERMISSIONS_VAR, &self.permissions.join(","));
        }
        Ok(())
    }
}

/// `a, b,,c` → `["a", "b", "c"]`.
pub fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// The names of the identity headers sent upstream; the defaults are `X-User-ID`,
/// `X-Username`, `X-User-Role` and `X-User-Permissions`. In a plugin's config:
/// `"headers": {"user_id": "x-uid"}` renames one; the others keep their defaults.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityHeaders {
    /// The header with the user's id.
    pub user_id: String,
    /// The header with the user's name.
    pub username: String,
    /// The header with the role(s), comma-separated.
    pub role: String,
    /// The header with the permissions, comma-separated.
    pub permissions: String,
}

impl Default for IdentityHeaders {
    fn default() -> Self {
        Self {
            user_id: "x-user-id".into(),
            username: "x-username".into(),
            role: "x-user-role".into(),
            permissions: "x-user-permissions".into(),
        }
    }
}

impl IdentityHeaders {
    /// Checks the names (valid header names, all different) and lower-cases them.
    pub fn check(&mut self) -> Result<(), String> {
        let mut seen = Vec::with_capacity(4);
        for (field, name) in [
            ("user_id", &mut self.user_id),
            ("username", &mut self.username),
            ("role", &mut self.role),
            ("permissions", &mut self.permissions),
        ] {
            name.make_ascii_lowercase();
            if !Headers::is_valid_name(name) {
                return Err(format!(
                    "headers.{field}: {name:?} is not a valid header name"
                ));
            }
            if seen.contains(name) {
                return Err(format!("headers.{field}: {name:?} is used twice"));
            }
            seen.push(name.clone());
        }
        Ok(())
    }

    /// Removes every identity header, so that a client cannot send its own: the four
    /// configured names, every header starting with `x-user-` or `x-username`, and the
    /// same names spelled with `_` for `-` (CGI and WSGI servers read `X_User_Id` as
    /// `X-User-Id`).
    pub fn strip(&self, headers: &mut Headers) {
        let ours = [&self.user_id, &self.username, &self.role, &self.permissions];
        let identity_like = |name: &str| {
            let dashed = name.to_ascii_lowercase().replace('_', "-");
            crate::rules::is_identity_header(name)
                || ours.iter().any(|ours| ours.replace('_', "-") == dashed)
        };
        let names: Vec<String> = headers
            .entries()
            .into_iter()
            .map(|(name, _)| name)
            .filter(|name| identity_like(name))
            .collect();
        for name in names {
            headers.remove(&name);
        }
    }

    /// Sets the identity headers from `identity` (after [`IdentityHeaders::strip`]);
    /// an absent value leaves its header out. Fails, setting nothing, when a value is
    /// not a valid header value (a control character in a claim, say).
    pub fn inject(&self, identity: &Identity, headers: &mut Headers) -> Result<(), String> {
        let roles = identity.roles.join(",");
        let permissions = identity.permissions.join(",");
        let values = [
            (&self.user_id, identity.user_id.as_deref()),
            (&self.username, identity.username.as_deref()),
            (&self.role, Some(roles.as_str()).filter(|r| !r.is_empty())),
            (
                &self.permissions,
                Some(permissions.as_str()).filter(|p| !p.is_empty()),
            ),
        ];
        for (name, value) in values {
            if let Some(value) = value
                && !Headers::is_valid_value(value.as_bytes())
            {
                return Err(format!("the value for {name} is not a valid header value"));
            }
        }
        for (name, value) in values {
            if let Some(value) = value {
                headers.set(name, value.as_bytes());
            }
        }
        Ok(())
    }
}

/// The subject a client address is counted as by limits (login failures, rate
/// limits): the IP of `ip:port` (an IPv4-mapped
/// IPv6 address as IPv4), an IPv6 address as its /64, since one host commonly holds
/// a whole /64. An address that does not parse is taken as it is.
pub fn client_subject(client_addr: &str) -> String {
    let ip = match client_addr.parse::<std::net::SocketAddr>() {
        Ok(addr) => addr.ip(),
        Err(_) => match client_addr.parse::<std::net::IpAddr>() {
            Ok(ip) => ip,
            Err(_) => return client_addr.to_string(),
        },
    };
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                let prefix = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                format!("{prefix}/64")
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::{TestContext, with_context};

    #[test]
    fn an_identity_goes_through_the_vars_and_back() {
        with_context(&TestContext::default(), |ctx| {
            assert_eq!(Identity::of(ctx), None);
            let alice = Identity {
                method: "jwt".into(),
                user_id: Some("42".into()),
                username: Some("alice".into()),
                roles: vec!["admin".into()],
                permissions: vec!["user:read".into(), "audit:read".into()],
                consumer: None,
            };
            alice.record(ctx).unwrap();
            assert_eq!(
                ctx.var(PERMISSIONS_VAR).as_deref(),
                Some("user:read,audit:read")
            );
            assert_eq!(Identity::of(ctx), Some(alice));
        });
    }

    #[test]
    fn a_separator_cannot_be_smuggled_through_a_role_or_permission() {
        with_context(&TestContext::default(), |ctx| {
            for (roles, permissions) in [
                (vec!["user,admin"], vec![]),
                (vec!["user"], vec!["read, audit:read"]),
                (vec![""], vec![]),
                (vec!["ad min"], vec![]),
                (vec!["admin\n"], vec![]),
            ] {
                let sneaky = Identity {
                    method: "jwt".into(),
                    roles: roles.into_iter().map(String::from).collect(),
                    permissions: permissions.into_iter().map(String::from).collect(),
                    ..Identity::default()
                };
                assert!(sneaky.record(ctx).is_err(), "{sneaky:?}");
                assert_eq!(Identity::of(ctx), None, "nothing recorded");
            }
        });
    }

    #[test]
    fn headers_are_stripped_and_injected() {
        let mut names = IdentityHeaders {
            user_id: "X-UID".into(),
            ..IdentityHeaders::default()
        };
        names.check().unwrap();
        let mut headers = Headers::new();
        headers.append("x-uid", "forged");
        headers.append("x-user-role", "admin");
        headers.append("x_user_role", "admin");
        headers.append("X_UID", "forged");
        headers.append("x-user-tenant", "other");
        headers.append("x-other", "kept");
        names.strip(&mut headers);
        assert_eq!(headers.len(), 1, "{headers:?}");
        let bob = Identity {
            method: "api-key".into(),
            user_id: Some("bob".into()),
            roles: vec!["viewer".into()],
            ..Identity::default()
        };
        names.inject(&bob, &mut headers).unwrap();
        assert_eq!(headers.get("x-uid").as_deref(), Some("bob"));
        assert_eq!(headers.get("x-user-role").as_deref(), Some("viewer"));
        assert!(!headers.contains("x-username") && !headers.contains("x-user-permissions"));
        let evil = Identity {
            username: Some("a\r\nx-admin: 1".into()),
            ..bob
        };
        let mut fresh = Headers::new();
        assert!(names.inject(&evil, &mut fresh).is_err());
        assert!(fresh.is_empty(), "nothing set on failure");
    }

    #[test]
    fn header_names_are_checked() {
        let mut twice = IdentityHeaders {
            role: "x-user-id".into(),
            ..IdentityHeaders::default()
        };
        assert!(twice.check().unwrap_err().contains("twice"));
        let mut bad = IdentityHeaders {
            role: "x role".into(),
            ..IdentityHeaders::default()
        };
        assert!(bad.check().unwrap_err().contains("not a valid header name"));
    }
}
