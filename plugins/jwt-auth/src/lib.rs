//! `jwt-auth`: checks `Authorization: Bearer <JWT>` and passes the caller's identity
//! on, as chain variables (for `rbac`, `access-log`, rate limiters) and as
//! `X-User-*` headers for the upstream, after removing any such headers the client
//! sent. With `query_token`, a request without `Authorization` may carry its token in
//! that query parameter instead (browsers cannot set headers on a WebSocket); with
//! `first_message`, a WebSocket without a token sends it in its first message,
//! `{"type": "auth", "token": "…"}`, before anything reaches the upstream.
//!
//! ```json
//! {"keys": [{"alg": "HS256", "secret": "jwt"}], "issuer": "wasmgate",
//!  "audience": "api", "skip_paths": ["/auth/login", "/public/*"]}
//! ```
//!
//! Algorithms: HS256/384/512, RS256/384/512, PS256/384/512, ES256/384 and EdDSA
//! (Ed25519), with keys from granted secrets, PEM, JWK, or a JWKS document fetched
//! from a granted service and cached. A token is checked in this order: shape and
//! size, header (`alg: none`, unknown algorithms and `crit` are refused), key (by
//! `kid`, else by algorithm; a key verifies only its own algorithms, so an HS256
//! token never meets an RSA key), signature, then `exp`, `nbf`, `iss`, `aud` with
//! leeway, and last the revocation list (`kv` key `revoked:<jti>`, written by
//! `identity` on logout through a namespace both are granted). The client gets a 401
//! envelope; the log gets the precise reason, never the token or a key.

mod config;
mod keys;
mod token;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use serde_json::{Map, Value};
use wasmgate_plugin_sdk::identity::{Identity, IdentityHeaders, TOKEN_EXPIRES_VAR, TOKEN_ID_VAR};
use wasmgate_plugin_sdk::log::{self, Level};
use wasmgate_plugin_sdk::websocket::{SocketMessage, Verdict};
use wasmgate_plugin_sdk::{
    Action, Context, Method, Plugin, Request, Response, clock, export_plugin, http, kv, secrets,
};

pub use config::Config;
pub use keys::Key;
pub use token::Refusal;

/// Identity method recorded for requests this plugin authenticates.
pub const METHOD: &str = "jwt";

/// The JWT checker of one route.
pub struct JwtAuth {
    keys: Vec<Key>,
    jwks: Option<Jwks>,
    rules: token::Rules,
    skip_paths: Vec<String>,
    optional: bool,
    query_token: Option<String>,
    first_message: bool,
    revoked_prefix: String,
    claims: config::ClaimNames,
    vars: Vec<(String, String)>,
    headers: IdentityHeaders,
    max_token_bytes: usize,
    verified: Verified,
}

/// Claims of a token, shared between the cache and the request being served.
type Claims = Rc<Map<String, Value>>;

/// Tokens whose signature one of the route's configured keys verified, with their
/// decoded claims. Those keys are fixed for the life of the instance (a reload makes
/// new instances), so a token verified once verifies again; everything that depends on
/// the time or on state (`exp`, `nbf`, revocation) is checked on every request all the
/// same. Only verified tokens enter, so a client without a key cannot fill it; tokens
/// verified with a fetched key set are not kept, since that set can change. Bounded by
/// the bytes of the tokens it holds: when full it starts empty again.
#[derive(Default)]
struct Verified {
    tokens: RefCell<BTreeMap<String, Claims>>,
    bytes: Cell<usize>,
}

/// The most token bytes [`Verified`] holds (about 2,000 typical tokens).
const VERIFIED_CACHE_BYTES: usize = 512 * 1024;

impl Verified {
    fn get(&self, token: &str) -> Option<Claims> {
        self.tokens.borrow().get(token).cloned()
    }

    fn insert(&self, token: &str, claims: &Claims) {
        let mut tokens = self.tokens.borrow_mut();
        if tokens.contains_key(token) {
            return;
        }
        if self.bytes.get() + token.len() > VERIFIED_CACHE_BYTES {
            tokens.clear();
            self.bytes.set(0);
        }
        tokens.insert(token.to_string(), claims.clone());
        self.bytes.set(self.bytes.get() + token.len());
    }
}

/// Why a request is not let through.
#[derive(Debug)]
enum Failure {
    /// The token (or its absence) is refused: 401.
    Refused(Refusal),
    /// The token cannot be checked now (the key set or the revocation list cannot be
    /// read): 503.
    Unavailable(String),
}

impl From<Refusal> for Failure {
    fn from(refusal: Refusal) -> Self {
        Self::Refused(refusal)
    }
}

impl Plugin for JwtAuth {
    type Config = Config;

    fn settings(&self) -> wasmgate_plugin_sdk::Settings {
        wasmgate_plugin_sdk::Settings::REQUEST_ONLY
    }

    fn new(mut config: Config) -> Result<Self, String> {
        config.check()?;
        let keys = config
            .keys
            .iter()
            .enumerate()
            .map(|(i, key)| keys::from_config(i, key, secrets::get))
            .collect::<Result<Vec<_>, _>>()?;
        let jwks = config.jwks.map(Jwks::new);
        Ok(Self {
            keys,
            jwks,
            rules: token::Rules {
                issuers: config.issuer,
                audiences: config.audience,
                leeway: config.leeway_seconds,
                require_exp: config.require_exp,
            },
            skip_paths: config.skip_paths,
            optional: config.optional,
            query_token: config.query_token,
            first_message: config.first_message,
            revoked_prefix: config.revoked_prefix,
            claims: config.claims,
            vars: config.vars.into_iter().collect(),
            headers: config.headers,
            max_token_bytes: config.max_token_bytes,
            verified: Verified::default(),
        })
    }

    fn on_message(
        &self,
        message: &SocketMessage,
        request: &mut Request,
        ctx: &mut Context,
    ) -> Verdict {
        // Called only on WebSockets this plugin watches: those waiting for a
        // first-message token.
        self.first_message(message, request, ctx)
    }

    fn on_request(&self, request: &mut Request, ctx: &mut Context) -> Action {
        if Identity::of(ctx).is_some() {
            // An earlier auth plugin authenticated the request (and set the headers).
            return Action::Continue;
        }
        self.headers.strip(&mut request.headers);
        if self.skipped(&ctx.path()) {
            return Action::Continue;
        }
        // As bytes: a value that is not UTF-8 is still a header that is there, so
        // `optional` must not read it as absent, and it counts towards "several".
        let values = request.headers.get_all_bytes("authorization");
        let in_query = match (values.as_slice(), &self.query_token) {
            ([], Some(name)) => request
                .query()
                .and_then(|query| wasmgate_plugin_sdk::query::param(&query, name)),
            _ => None,
        };
        let result = match values.as_slice() {
            [] if in_query.is_some() => {
                self.authenticate(in_query.as_deref().expect("checked above"))
            }
            [] if self.optional => return Action::Continue,
            // A WebSocket whose token comes in its first message: watch for it.
            [] if self.first_message && ctx.watch_messages().is_ok() => return Action::Continue,
            [] => Err(Failure::Refused(Refusal::Missing)),
            [_, _, ..] => Err(Failure::Refused(Refusal::Malformed(
                "several Authorization headers",
            ))),
            [value] => match std::str::from_utf8(value) {
                Err(_) => Err(Failure::Refused(Refusal::NotText)),
                Ok(value) => match bearer(value) {
                    Some(token) => self.authenticate(token),
                    None => Err(Failure::Refused(Refusal::NotBearer)),
                },
            },
        };
        match result.and_then(|found| self.admit(found, request, ctx)) {
            Ok(()) => Action::Continue,
            Err(Failure::Refused(refusal)) => {
                log::event(
                    Level::Warn,
                    "token refused",
                    &[
                        ("method", ctx.method().as_str().into()),
                        ("path", ctx.path().into()),
                        ("reason", refusal.to_string().into()),
                    ],
                );
                Action::Respond(unauthorized(&refusal, ctx))
            }
            Err(Failure::Unavailable(why)) => {
                log::event(
                    Level::Error,
                    "cannot check tokens",
                    &[("reason", why.into())],
                );
                Action::Respond(Response::service_unavailable(
                    "authentication is unavailable, try again later",
                    ctx,
                ))
            }
        }
    }
}

/// SkyClust's first WebSocket message: `{"type": "auth", "token": "…"}`.
#[derive(serde::Deserialize)]
struct AuthMessage {
    #[serde(rename = "type")]
    kind: String,
    token: String,
}

impl JwtAuth {
    /// Passes an authenticated request on with its identity: checked, then the
    /// headers, the identity and the token's variables. Nothing is recorded or sent
    /// until every check has passed: a refused request carries no half of an identity
    /// to later phases or the access log.
    fn admit(
        &self,
        (identity, claims): (Identity, Claims),
        request: &mut Request,
        ctx: &mut Context,
    ) -> Result<(), Failure> {
        identity
            .check()
            .map_err(|why| Failure::Refused(Refusal::BadIdentity(why)))?;
        self.headers
            .inject(&identity, &mut request.headers)
            .map_err(|why| Failure::Refused(Refusal::Unsendable(why)))?;
        identity
            .record(ctx)
            .map_err(|why| Failure::Refused(Refusal::BadIdentity(why)))?;
        if let Ok(Some(jti)) = token::text_claim(&claims, "jti") {
            ctx.set_var(TOKEN_ID_VAR, &jti);
        }
        if let Some(exp) = claims.get("exp").and_then(Value::as_f64) {
            ctx.set_var(TOKEN_EXPIRES_VAR, &(exp as u64).to_string());
        }
        for (claim, var) in &self.vars {
            if let Ok(Some(value)) = token::text_claim(&claims, claim) {
                ctx.set_var(var, &value);
            }
        }
        Ok(())
    }

    /// With `first_message`: the WebSocket's first message must be
    /// `{"type": "auth", "token": "…"}` with a good token; it is kept from the
    /// upstream, whose handshake then carries the identity. Anything else closes the
    /// WebSocket with 1008 before the upstream sees a frame.
    fn first_message(
        &self,
        message: &SocketMessage,
        request: &mut Request,
        ctx: &mut Context,
    ) -> Verdict {
        let token = message
            .as_text()
            .and_then(|text| serde_json::from_str::<AuthMessage>(text).ok())
            .filter(|auth| auth.kind == "auth")
            .map(|auth| auth.token);
        let result = match token {
            Some(token) => self
                .authenticate(&token)
                .and_then(|found| self.admit(found, request, ctx)),
            None => Err(Failure::Refused(Refusal::Missing)),
        };
        match result {
            Ok(()) => Verdict::Accept,
            Err(Failure::Refused(refusal)) => {
                log::event(
                    Level::Warn,
                    "token refused",
                    &[
                        ("path", ctx.path().into()),
                        ("reason", refusal.to_string().into()),
                        ("websocket", true.into()),
                    ],
                );
                Verdict::policy_violation(match refusal {
                    Refusal::Missing => {
                        "authentication required: send {\"type\":\"auth\",\"token\":\"…\"} first"
                    }
                    Refusal::Expired => "token expired",
                    _ => "invalid token",
                })
            }
            Err(Failure::Unavailable(why)) => {
                log::event(
                    Level::Error,
                    "cannot check tokens",
                    &[("reason", why.into())],
                );
                Verdict::Close {
                    code: 1011,
                    reason: "authentication is unavailable, try again later".into(),
                }
            }
        }
    }
}

/// The 401 envelope, with `WWW-Authenticate` as RFC 6750 asks. The message says
/// little: the reason is in the log.
fn unauthorized(refusal: &Refusal, ctx: &Context) -> Response {
    let (message, challenge) = match refusal {
        Refusal::Missing | Refusal::NotBearer => ("missing bearer token", "Bearer"),
        Refusal::Expired => ("token expired", r#"Bearer error="invalid_token""#),
        Refusal::BadIdentity(_) => (
            "invalid token: roles and permissions may not hold ',', whitespace or control characters",
            r#"Bearer error="invalid_token""#,
        ),
        _ => ("invalid token", r#"Bearer error="invalid_token""#),
    };
    let mut response = Response::unauthorized(message, ctx);
    response.headers.set("www-authenticate", challenge);
    response
}

/// The token of `Bearer <token>` (scheme case-insensitive).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    let token = rest.trim_start();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains(' '))
        .then_some(token)
}

impl JwtAuth {
    fn skipped(&self, path: &str) -> bool {
        self.skip_paths
            .iter()
            .any(|skip| match skip.strip_suffix('*') {
                Some(prefix) => path.starts_with(prefix),
                None => path == skip,
            })
    }

    /// Checks `token` fully; the identity and the claims when it passes.
    fn authenticate(&self, token: &str) -> Result<(Identity, Claims), Failure> {
        if token.len() > self.max_token_bytes {
            return Err(Refusal::TooLarge(token.len()).into());
        }
        let claims = match self.verified.get(token) {
            Some(claims) => claims,
            None => {
                let parsed = token::parse(token)?;
                let by_configured_key = self.verify_signature(&parsed)?;
                let claims = Rc::new(token::claims(&parsed)?);
                if by_configured_key {
                    self.verified.insert(token, &claims);
                }
                claims
            }
        };
        let now = clock::now_unix_ms() as f64 / 1000.0;
        token::check_claims(&claims, &self.rules, now)?;
        if !self.revoked_prefix.is_empty()
            && let Some(jti) = token::text_claim(&claims, "jti")?
        {
            let key = format!("{}{jti}", self.revoked_prefix);
            match kv::get(&key) {
                Ok(Some(_)) => return Err(Refusal::Revoked.into()),
                Ok(None) => {}
                Err(why) => return Err(Failure::Unavailable(format!("revocation list: {why}"))),
            }
        }
        let identity = self.identity(&claims)?;
        Ok((identity, claims))
    }

    /// Verifies the signature with the configured keys, then the fetched set; whether
    /// a configured key decided.
    fn verify_signature(&self, parsed: &token::Parsed<'_>) -> Result<bool, Failure> {
        let configured = token::candidates(parsed, &self.keys);
        if let Ok(candidates) = &configured {
            // Configured keys decide when they match: a fetched set is not consulted
            // for a token they refuse.
            token::verify(parsed, candidates)?;
            return Ok(true);
        }
        let Some(jwks) = &self.jwks else {
            return Err(configured.expect_err("matched above").into());
        };
        let fetched = jwks.keys(false).map_err(Failure::Unavailable)?;
        match token::candidates(parsed, &fetched) {
            Ok(candidates) => token::verify(parsed, &candidates)?,
            Err(Refusal::UnknownKid(_)) => {
                // Perhaps the issuer rotated its keys: fetch again (at most every
                // few seconds, whoever asks).
                let fresh = jwks.keys(true).map_err(Failure::Unavailable)?;
                let candidates = token::candidates(parsed, &fresh)?;
                token::verify(parsed, &candidates)?
            }
            Err(refusal) => return Err(refusal.into()),
        }
        Ok(false)
    }

    fn identity(&self, claims: &Map<String, Value>) -> Result<Identity, Refusal> {
        let user_id = token::text_claim(claims, &self.claims.user_id)?;
        Ok(Identity {
            method: METHOD.into(),
            consumer: user_id.clone(),
            user_id,
            username: token::text_claim(claims, &self.claims.username)?,
            roles: token::role_claim(claims, &self.claims.role)?,
            permissions: token::list_claim(claims, &self.claims.permissions)?,
        })
    }
}

/// A JWKS document fetched through `http`, kept in `kv` for every instance and parsed
/// once per instance.
struct Jwks {
    config: config::JwksConfig,
    cache_key: String,
    parsed: RefCell<Option<ParsedSet>>,
}

/// A fetched document and the keys parsed from it.
type ParsedSet = (Vec<u8>, Rc<Vec<Key>>);

/// The least time between two fetches made to find an unknown `kid`.
const REFETCH_INTERVAL: Duration = Duration::from_secs(10);

impl Jwks {
    fn new(config: config::JwksConfig) -> Self {
        let cache_key = format!("jwks:{}{}", config.service, config.path);
        Self {
            config,
            cache_key,
            parsed: RefCell::new(None),
        }
    }

    /// The current keys; `refresh` fetches again unless that was done lately.
    fn keys(&self, refresh: bool) -> Result<Rc<Vec<Key>>, String> {
        let cached = kv::get(&self.cache_key).map_err(|e| e.to_string())?;
        let raw = match cached {
            Some(raw)
                if !refresh
                    || !kv::insert(
                        &format!("{}#refetch", self.cache_key),
                        b"1",
                        Some(REFETCH_INTERVAL),
                    )
                    .map_err(|e| e.to_string())? =>
            {
                raw
            }
            _ => self.fetch()?,
        };
        if let Some((seen, keys)) = &*self.parsed.borrow()
            && *seen == raw
        {
            return Ok(keys.clone());
        }
        let (keys, skipped) = keys::from_jwks(&raw)?;
        for why in skipped {
            log::event(
                Level::Info,
                "jwks key left out",
                &[
                    ("jwks", self.cache_key.as_str().into()),
                    ("reason", why.into()),
                ],
            );
        }
        let keys = Rc::new(keys);
        *self.parsed.borrow_mut() = Some((raw, keys.clone()));
        Ok(keys)
    }

    fn fetch(&self) -> Result<Vec<u8>, String> {
        let request =
            http::OutboundRequest::new(&self.config.service, Method::Get, &self.config.path);
        let response = http::send(request).map_err(|e| format!("fetching the key set: {e}"))?;
        if response.status != 200 {
            return Err(format!(
                "fetching the key set: {} {} answered {}",
                self.config.service, self.config.path, response.status
            ));
        }
        // Parse before caching, so that a broken document is not kept.
        keys::from_jwks(&response.body)?;
        kv::set(
            &self.cache_key,
            &response.body,
            Some(Duration::from_secs(self.config.cache_seconds)),
        )
        .map_err(|e| e.to_string())?;
        Ok(response.body)
    }
}

export_plugin!(JwtAuth);

#[cfg(test)]
mod tests;
