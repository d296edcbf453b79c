//! `cors`: Cross-Origin Resource Sharing for a route, as the Fetch standard has it.
//! The plugin answers preflights itself and adds the `Access-Control-*` headers to
//! the responses of allowed origins; it owns CORS on its route.
//!
//! ```json
//! {"origins": ["https://app.example.com", "https://*.example.com"],
//!  "methods": ["GET", "POST"], "headers": ["content-type", "authorization"],
//!  "expose": ["x-request-id"], "credentials": true, "max_age": 600}
//! ```
//!
//! 1. **Preflight** (`OPTIONS` with `Origin` and `Access-Control-Request-Method`):
//!    answered here, the upstream never sees it. An allowed origin asking for an
//!    allowed method (GET, HEAD and POST always are) and allowed headers gets 204 with
//!    `Access-Control-Allow-Origin`, `-Allow-Methods`, `-Allow-Headers`, `-Max-Age`
//!    and, with `credentials`, `-Allow-Credentials`; anything else gets the gateway's
//!    403 `FORBIDDEN` envelope, with no CORS headers. A plain `OPTIONS` (no
//!    `Access-Control-Request-Method`) is an ordinary request.
//! 2. **Actual requests** go on untouched, whatever their origin.
//! 3. **Responses** (the upstream's, a later plugin's answer, the gateway's 502 and
//!    504): the upstream's own `Access-Control-*` headers are removed; an allowed
//!    origin gets `Access-Control-Allow-Origin`, `-Allow-Credentials` and
//!    `-Expose-Headers`; every response gets `Vary: Origin` (appended to the
//!    upstream's `Vary`), since whether it carries CORS headers depends on `Origin`.
//!
//! The request phase records the allowed origin in the chain variable
//! [`ALLOWED_ORIGIN_VAR`] for the response phase, which cannot read request headers.
//! Put `cors` first in the chain: a preflight carries no credentials, so an auth
//! plugin before it would refuse every preflight.

mod config;
mod origin;

use wasmgate_plugin_sdk::{
    Action, Context, Headers, Plugin, Reply, Request, Response, export_plugin, log,
};

pub use config::Config;
use config::{Names, Origins};

/// The chain variable holding the `Access-Control-Allow-Origin` value of an allowed
/// actual request (the origin, or `*`), from the request phase to the response phase.
pub const ALLOWED_ORIGIN_VAR: &str = "cors_allowed_origin";

/// What a preflight answer varies on.
const PREFLIGHT_VARY: &str =
    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers";

/// The methods a cross-origin request may use without being allowed (the Fetch
/// standard's CORS-safelisted methods, compared byte for byte).
const SAFELISTED_METHODS: [&str; 3] = ["GET", "HEAD", "POST"];

/// The CORS policy of one route, with the header values it sends worked out once.
pub struct Cors {
    origins: Origins,
    credentials: bool,
    methods: Names,
    headers: Names,
    /// `Access-Control-Allow-Methods` when methods are listed (not `*`).
    allow_methods: String,
    /// `Access-Control-Allow-Headers` when headers are listed (not `*`), if any.
    allow_headers: Option<String>,
    /// `Access-Control-Expose-Headers`, if any.
    expose: Option<String>,
    /// `Access-Control-Max-Age`.
    max_age: String,
}

/// Why a preflight is refused (the message for the client and the log).
type Refusal = String;

impl Cors {
    /// The `Access-Control-Allow-Origin` value for a request from `origin`, if allowed.
    fn allow_origin(&self, origin: &str) -> Option<String> {
        match &self.origins {
            Origins::Any { null } => (origin != "null" || *null).then(|| "*".to_string()),
            Origins::Listed(rules) => rules
                .iter()
                .any(|rule| rule.matches(origin))
                .then(|| origin.to_string()),
        }
    }

    /// Answers a preflight from `origin` asking for `method`.
    fn preflight(&self, request: &Request, origin: &str, method: &str, ctx: &Context) -> Action {
        match self.check_preflight(request, origin, method) {
            Ok(answer) => Action::Respond(answer),
            Err(refusal) => {
                log::debug(&format!("preflight refused: {refusal}"));
                let mut answer = Response::forbidden(&refusal, ctx);
                answer.headers.set("vary", PREFLIGHT_VARY);
                Action::Respond(answer)
            }
        }
    }

    fn check_preflight(
        &self,
        request: &Request,
        origin: &str,
        method: &str,
    ) -> Result<Response, Refusal> {
        let allow_origin = self
            .allow_origin(origin)
            .ok_or_else(|| "this origin may not make cross-origin requests here".to_string())?;
        if !Headers::is_valid_name(method) {
            return Err("Access-Control-Request-Method is not a method".into());
        }
        let method_allowed = SAFELISTED_METHODS.contains(&method)
            || self.methods.any
            || self.methods.names.iter().any(|m| m == method);
        if !method_allowed {
            return Err(format!(
                "method {method} is not allowed for cross-origin requests"
            ));
        }
        let requested = requested_headers(&request.headers)?;
        if let Some(name) = requested.iter().find(|name| !self.header_allowed(name)) {
            return Err(format!(
                "header {name} is not allowed for cross-origin requests"
            ));
        }

        let mut answer = Response::new(204)
            .with_header("access-control-allow-origin", &allow_origin)
            .with_header("vary", PREFLIGHT_VARY);
        if self.credentials {
            answer
                .headers
                .set("access-control-allow-credentials", "true");
        }
        let methods = if self.methods.any {
            method
        } else {
            &self.allow_methods
        };
        if !methods.is_empty() {
            answer.headers.set("access-control-allow-methods", methods);
        }
        let headers = if self.headers.any {
            (!requested.is_empty()).then(|| requested.join(", "))
        } else {
            self.allow_headers.clone()
        };
        if let Some(headers) = headers {
            answer.headers.set("access-control-allow-headers", headers);
        }
        answer.headers.set("access-control-max-age", &self.max_age);
        Ok(answer)
    }

    /// Whether a cross-origin request may send header `name` (lower case). `*` covers
    /// every name but `authorization`, as in the Fetch standard.
    fn header_allowed(&self, name: &str) -> bool {
        self.headers.names.iter().any(|h| h == name)
            || (self.headers.any && name != "authorization")
    }
}

/// The names in `Access-Control-Request-Headers` (all its fields): comma-separated,
/// trimmed, lower-cased, each once, in order. An invalid name refuses the preflight.
fn requested_headers(headers: &Headers) -> Result<Vec<String>, Refusal> {
    let mut names: Vec<String> = Vec::new();
    for field in headers.get_all("access-control-request-headers") {
        for name in field.split(',').map(|n| n.trim_matches([' ', '\t'])) {
            if name.is_empty() {
                continue;
            }
            if !Headers::is_valid_name(name) {
                return Err("Access-Control-Request-Headers holds an invalid header name".into());
            }
            let name = name.to_ascii_lowercase();
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    Ok(names)
}

/// Appends `Origin` to `Vary`, unless it is there already (or `Vary: *`).
fn vary_on_origin(headers: &mut Headers) {
    let present = headers.get_all("vary").iter().any(|field| {
        field
            .split(',')
            .map(str::trim)
            .any(|token| token == "*" || token.eq_ignore_ascii_case("origin"))
    });
    if !present {
        headers.append("vary", "Origin");
    }
}

impl Plugin for Cors {
    type Config = Config;

    fn new(config: Config) -> Result<Self, String> {
        let config = config.check()?;
        let joined = |names: &Names| (!names.names.is_empty()).then(|| names.names.join(", "));
        Ok(Self {
            allow_methods: joined(&config.methods).unwrap_or_default(),
            allow_headers: joined(&config.headers),
            expose: if config.expose.any {
                Some("*".into())
            } else {
                joined(&config.expose)
            },
            max_age: config.max_age.to_string(),
            origins: config.origins,
            credentials: config.credentials,
            methods: config.methods,
            headers: config.headers,
        })
    }

    fn on_request(&self, request: &mut Request, ctx: &mut Context) -> Action {
        let [origin, requested_method] = request
            .headers
            .get_many(&["origin", "access-control-request-method"])
            .try_into()
            .expect("one value per name");
        let Some(origin) = origin else {
            return Action::Continue;
        };
        if let Some(method) = requested_method
            && request.method() == wasmgate_plugin_sdk::Method::Options
        {
            return self.preflight(request, &origin, &method, ctx);
        }
        if let Some(allow_origin) = self.allow_origin(&origin) {
            ctx.set_var(ALLOWED_ORIGIN_VAR, &allow_origin);
        }
        Action::Continue
    }

    fn on_response(&self, response: &mut Reply, ctx: &mut Context) {
        let mut upstream_cors: Vec<String> = response
            .headers
            .entries()
            .into_iter()
            .map(|(name, _)| name)
            .filter(|name| name.starts_with("access-control-"))
            .collect();
        upstream_cors.sort_unstable();
        upstream_cors.dedup();
        for name in upstream_cors {
            response.headers.remove(&name);
        }
        vary_on_origin(&mut response.headers);
        // Checked again: the variable is the chain's, and only an allowed value may go out.
        let Some(allow_origin) = ctx
            .var(ALLOWED_ORIGIN_VAR)
            .filter(|value| match &self.origins {
                Origins::Any { .. } => value.as_str() == "*",
                Origins::Listed(_) => self.allow_origin(value).is_some(),
            })
        else {
            return;
        };
        response
            .headers
            .set("access-control-allow-origin", &allow_origin);
        if self.credentials {
            response
                .headers
                .set("access-control-allow-credentials", "true");
        }
        if let Some(expose) = &self.expose {
            response
                .headers
                .set("access-control-expose-headers", expose);
        }
    }
}

export_plugin!(Cors);

#[cfg(test)]
mod tests;
