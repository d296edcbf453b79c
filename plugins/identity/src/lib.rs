//! `identity`: a service plugin that answers its route itself, the way SkyClust and
//! AIMS issue their own tokens. The last path segment picks the operation:
//!
//! | request | what it does |
//! |---|---|
//! | `POST …/register` `{username, email, password}` | creates the user (the first becomes `admin`, later ones `user`) and returns a token: 201 |
//! | `POST …/login` `{email or username, password}` | checks the password and returns a token |
//! | `GET …/me` | the caller's user record |
//! | `POST …/logout` | revokes the caller's token until it would have expired |
//! | `POST …/refresh` | revokes the caller's token and returns a new one |
//!
//! Usernames and email addresses are compared in one canonical form (NFKC, case
//! folding, NFKC: `canonical.rs`), so every spelling of a name is the same account.
//! Failed logins are limited per account and per client (`limits.rs`): past the
//! limit, logins get 429 with `Retry-After` for a while, right password or not.
//!
//! Passwords are hashed with Argon2id (OWASP's cost by default). Tokens are JWTs
//! signed with a granted secret (HS256/384/512) or private key, with `sub`,
//! `username`, `email`, `role`, `iss`, `aud`, `iat`, `exp` and a random `jti`.
//!
//! `me`, `logout` and `refresh` need the caller: put `jwt-auth` before `identity`
//! in the chain (with `skip_paths` for `register` and `login`), verifying with the
//! same key, and give both the same `kv_namespace`, so `jwt-auth` sees revocations.
//! Bodies are SkyClust's envelope: `{"success", "message", "data", "request_id",
//! "timestamp"}`; errors are the gateway's, with `data.fields` for form errors.

mod canonical;
mod config;
mod limits;
mod users;

use std::time::Duration;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Argon2, Params};
use jsonwebtoken::{Algorithm, AlgorithmFamily, EncodingKey, Header};
use serde_json::{Value, json};
use wasmgate_plugin_sdk::identity::{Identity, TOKEN_EXPIRES_VAR, TOKEN_ID_VAR, client_subject};
use wasmgate_plugin_sdk::log::{self, Level};
use wasmgate_plugin_sdk::{
    Action, Context, ErrorCode, Plugin, Request, Response, Settings, clock, export_plugin, kv,
    secrets,
};

pub use config::{Config, LoginLimitsConfig};
use limits::LoginLimits;
use users::{FieldErrors, Taken, User};

/// The longest login name looked up, in bytes: an address is at most 254.
const MAX_LOGIN_BYTES: usize = 320;

/// The identity service of one route.
pub struct IdentityService {
    alg: Algorithm,
    key: EncodingKey,
    kid: Option<String>,
    issuer: String,
    audience: Option<String>,
    token_ttl: u64,
    first_user_role: String,
    default_role: String,
    role_permissions: std::collections::BTreeMap<String, Vec<String>>,
    min_password_length: usize,
    argon2: Argon2<'static>,
    /// A hash to verify against when the login names nobody, so that an unknown user
    /// takes as long as a wrong password.
    decoy_hash: String,
    revoked_prefix: String,
    login_limits: LoginLimits,
}

impl Plugin for IdentityService {
    type Config = Config;

    fn new(config: Config) -> Result<Self, String> {
        let alg: Algorithm = config
            .alg
            .parse()
            .map_err(|_| format!("alg: unknown algorithm {:?}", config.alg))?;
        let granted = |name: &str| {
            secrets::get(name).ok_or_else(|| {
                format!(
                    "secret {name:?} is not granted to this plugin ([plugins.identity] secrets)"
                )
            })
        };
        let key = match (alg.family(), &config.secret, &config.private_key) {
            (AlgorithmFamily::Hmac, Some(name), None) => {
                let secret = granted(name)?;
                if secret.len() < 32 {
                    return Err(format!(
                        "secret {name:?} is {} bytes; an HMAC key needs at least 32",
                        secret.len()
                    ));
                }
                EncodingKey::from_secret(&secret)
            }
            (family, None, Some(name)) if family != AlgorithmFamily::Hmac => {
                let pem = granted(name)?;
                match family {
                    AlgorithmFamily::Rsa => EncodingKey::from_rsa_pem(&pem),
                    AlgorithmFamily::Ec => EncodingKey::from_ec_pem(&pem),
                    _ => EncodingKey::from_ed_pem(&pem),
                }
                .map_err(|e| {
                    format!("private_key {name:?}: not a PEM private key for {alg:?}: {e}")
                })?
            }
            (AlgorithmFamily::Hmac, _, _) => {
                return Err(format!("{alg:?} needs `secret` (and no `private_key`)"));
            }
            _ => return Err(format!("{alg:?} needs `private_key` (and no `secret`)")),
        };
        if config.token_ttl_seconds == 0 {
            return Err("token_ttl_seconds must be at least 1".into());
        }
        if !(8..=128).contains(&config.min_password_length) {
            return Err("min_password_length must be between 8 and 128".into());
        }
        check_roles(&config)?;
        config.login_limits.check()?;
        let a = &config.argon2;
        let params = Params::new(a.memory_kib, a.iterations, a.parallelism, None)
            .map_err(|e| format!("argon2: {e}"))?;
        let argon2 = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let decoy_hash = hash(&argon2, "decoy password 0")?;
        Ok(Self {
            alg,
            key,
            kid: config.kid,
            issuer: config.issuer,
            audience: config.audience,
            token_ttl: config.token_ttl_seconds,
            first_user_role: config.first_user_role,
            default_role: config.default_role,
            role_permissions: config.role_permissions,
            min_password_length: config.min_password_length,
            argon2,
            decoy_hash,
            revoked_prefix: config.revoked_prefix,
            login_limits: LoginLimits::new(&config.login_limits),
        })
    }

    fn settings(&self) -> Settings {
        Settings {
            request_body: true,
            ..Settings::REQUEST_ONLY
        }
    }

    fn on_request(&self, request: &mut Request, ctx: &mut Context) -> Action {
        let path = ctx.path();
        let operation = path.rsplit('/').next().unwrap_or_default();
        let expected = match operation {
            "register" | "login" | "logout" | "refresh" => "POST",
            "me" => "GET",
            _ => return Action::Respond(Response::not_found("no such identity operation", ctx)),
        };
        let method = request.method();
        if method != expected {
            let mut response = Response::error(
                405,
                "METHOD_NOT_ALLOWED",
                &format!("{method} is not allowed here"),
                ctx,
            );
            response.headers.set("allow", expected);
            return Action::Respond(response);
        }
        let body = request.body().unwrap_or_default();
        let result = match operation {
            "register" => self.register(&body, ctx),
            "login" => self.login(&body, ctx),
            "me" => self.me(ctx),
            "logout" => self.logout(ctx),
            _ => self.refresh(ctx),
        };
        Action::Respond(result.unwrap_or_else(|why| {
            log::event(
                Level::Error,
                "identity operation failed",
                &[("operation", operation.into()), ("reason", why.into())],
            );
            Response::internal_error("the identity service failed", ctx)
        }))
    }
}

/// Checks the roles and permissions written into tokens as `jwt-auth` will check them
/// (one list item each: no `,`, whitespace or control character), so that a config
/// cannot issue tokens every verifier refuses.
fn check_roles(config: &Config) -> Result<(), String> {
    let one = |field: &str, role: &str, permissions: &[String]| {
        Identity {
            roles: vec![role.to_string()],
            permissions: permissions.to_vec(),
            ..Identity::default()
        }
        .check()
        .map_err(|why| format!("{field}: {why}"))
    };
    one("first_user_role", &config.first_user_role, &[])?;
    one("default_role", &config.default_role, &[])?;
    for (role, permissions) in &config.role_permissions {
        one(&format!("role_permissions.{role}"), role, permissions)?;
    }
    Ok(())
}

/// The JSON object of a request body, or the 400 to answer.
fn form(body: &[u8], ctx: &Context) -> Result<serde_json::Map<String, Value>, Response> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(fields)) => Ok(fields),
        _ => Err(Response::bad_request("the body must be a JSON object", ctx)),
    }
}

/// A string field: `Some` when present and a string.
fn text<'f>(fields: &'f serde_json::Map<String, Value>, name: &str) -> Option<&'f str> {
    fields.get(name).and_then(Value::as_str)
}

fn hash(argon2: &Argon2<'_>, password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    argon2
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| format!("hashing a password: {e}"))
}

fn invalid(fields: FieldErrors, ctx: &Context) -> Response {
    let detail: Vec<String> = fields.iter().map(|(f, m)| format!("{f} {m}")).collect();
    Response::error_with_data(
        ErrorCode::ValidationError,
        &format!("invalid input: {}", detail.join("; ")),
        &json!({ "fields": fields }),
        ctx,
    )
}

/// 429 `RATE_LIMITED` with `Retry-After`: the same answer for a locked account and a
/// locked client, for a known name and an unknown one.
fn too_many_failures(retry_after_seconds: u64, ctx: &Context) -> Response {
    let mut response = Response::rate_limited("too many failed logins; try again later", ctx);
    response
        .headers
        .set("retry-after", retry_after_seconds.to_string());
    response
}

impl IdentityService {
    fn register(&self, body: &[u8], ctx: &Context) -> Result<Response, String> {
        let fields = match form(body, ctx) {
            Ok(fields) => fields,
            Err(response) => return Ok(response),
        };
        let mut errors = FieldErrors::new();
        let username = text(&fields, "username").unwrap_or_default().trim();
        let email = text(&fields, "email").unwrap_or_default().trim();
        let password = text(&fields, "password").unwrap_or_default();
        let username = users::check_username(username, &mut errors);
        let email = users::check_email(email, &mut errors);
        users::check_password(password, self.min_password_length, &mut errors);
        if !errors.is_empty() {
            return Ok(invalid(errors, ctx));
        }
        let mut user = User {
            id: uuid::Uuid::new_v4().to_string(),
            username,
            email,
            password_hash: hash(&self.argon2, password)?,
            role: self.default_role.clone(),
            created_at: clock::rfc3339_utc(clock::now_unix_ms()),
        };
        match users::create(&user)? {
            Ok(()) => {}
            Err(Taken::Username) => return Ok(Response::conflict("username already taken", ctx)),
            Err(Taken::Email) => return Ok(Response::conflict("email already registered", ctx)),
        }
        if users::first_registration(&user.id)? {
            user.role.clone_from(&self.first_user_role);
            users::save(&user)?;
        }
        log::event(
            Level::Info,
            "user registered",
            &[
                ("user", user.id.as_str().into()),
                ("username", user.username.as_str().into()),
                ("role", user.role.as_str().into()),
            ],
        );
        let token = self.issue(&user)?;
        Ok(Response::success(
            201,
            "user registered",
            &json!({"token": token.0, "expires_at": token.1, "user": user.public()}),
            ctx,
        ))
    }

    fn login(&self, body: &[u8], ctx: &Context) -> Result<Response, String> {
        let fields = match form(body, ctx) {
            Ok(fields) => fields,
            Err(response) => return Ok(response),
        };
        let login = text(&fields, "email")
            .or_else(|| text(&fields, "username"))
            .unwrap_or_default()
            .trim();
        let password = text(&fields, "password").unwrap_or_default();
        if login.is_empty() || password.is_empty() {
            let mut errors = FieldErrors::new();
            if login.is_empty() {
                errors.insert("email", "email or username is required".into());
            }
            if password.is_empty() {
                errors.insert("password", "is required".into());
            }
            return Ok(invalid(errors, ctx));
        }
        if login.len() > MAX_LOGIN_BYTES {
            let mut errors = FieldErrors::new();
            errors.insert("email", format!("must be at most {MAX_LOGIN_BYTES} bytes"));
            return Ok(invalid(errors, ctx));
        }
        // Counted before the password is checked, under the name as typed (in its
        // canonical form), whether or not anyone has it.
        let account = canonical::key(login);
        let client = client_subject(&ctx.client_addr());
        // AIMS's event names, in the `event` field of each login line.
        log::event(
            Level::Info,
            "login attempt",
            &[
                ("event", "login_attempt".into()),
                ("user", login.into()),
                ("client", client.as_str().into()),
            ],
        );
        let attempt = match self.login_limits.charge(&account, &client)? {
            Ok(attempt) => attempt,
            Err(locked) => {
                log::event(
                    Level::Warn,
                    "login refused",
                    &[
                        ("event", "login_failed".into()),
                        ("user", login.into()),
                        ("client", client.as_str().into()),
                        ("reason", "too many failed logins".into()),
                        ("locked", locked.scopes.join(",").into()),
                    ],
                );
                return Ok(too_many_failures(locked.retry_after_seconds, ctx));
            }
        };
        let user = users::by_login(login)?;
        let known = user.is_some();
        // An unknown name costs the same hash as a wrong password: the decoy hash has
        // the configured cost.
        let stored = user
            .as_ref()
            .map_or(self.decoy_hash.as_str(), |u| &u.password_hash);
        let hash = PasswordHash::new(stored).map_err(|e| format!("a stored hash: {e}"))?;
        let matches = self
            .argon2
            .verify_password(password.as_bytes(), &hash)
            .is_ok();
        match user {
            Some(user) if matches => {
                self.login_limits
                    .succeeded(attempt, &users::login_names(&user))?;
                let token = self.issue(&user)?;
                log::event(
                    Level::Info,
                    "login success",
                    &[
                        ("event", "login_success".into()),
                        ("user", user.id.as_str().into()),
                        ("username", user.username.as_str().into()),
                    ],
                );
                Ok(Response::success(
                    200,
                    "logged in",
                    &json!({"token": token.0, "expires_at": token.1, "user": user.public()}),
                    ctx,
                ))
            }
            _ => {
                let locked = self.login_limits.failed(attempt)?;
                let reason = if known {
                    "wrong password"
                } else {
                    "unknown user"
                };
                let mut fields = vec![
                    ("event", "login_failed".into()),
                    ("user", login.into()),
                    ("client", client.as_str().into()),
                    ("reason", reason.into()),
                ];
                if !locked.is_empty() {
                    fields.push(("locked", locked.join(",").into()));
                }
                log::event(Level::Info, "login failure", &fields);
                Ok(Response::unauthorized("invalid credentials", ctx))
            }
        }
    }

    /// The user behind the request's token, or the response to give instead.
    fn caller(&self, ctx: &Context) -> Result<Result<User, Response>, String> {
        let Some(user_id) = Identity::of(ctx).and_then(|caller| caller.user_id) else {
            return Ok(Err(Response::unauthorized("authentication required", ctx)));
        };
        Ok(users::by_id(&user_id)?.ok_or_else(|| Response::not_found("no such user", ctx)))
    }

    fn me(&self, ctx: &Context) -> Result<Response, String> {
        Ok(match self.caller(ctx)? {
            Ok(user) => Response::success(200, "user", &json!({"user": user.public()}), ctx),
            Err(response) => response,
        })
    }

    /// Revokes the request's token until it would expire; the response to give when
    /// it cannot be.
    fn revoke_current(&self, ctx: &Context) -> Result<Option<Response>, String> {
        let (Some(jti), Some(exp)) = (ctx.var(TOKEN_ID_VAR), ctx.var(TOKEN_EXPIRES_VAR)) else {
            return Ok(Some(Response::bad_request(
                "this token cannot be revoked: it has no jti or exp",
                ctx,
            )));
        };
        let exp: u64 = exp.parse().unwrap_or(0);
        let now = clock::now_unix_ms() / 1000;
        // Kept a little past expiry, to cover verifiers' leeway.
        let ttl = Duration::from_secs(exp.saturating_sub(now) + 300);
        // Durable: the client is told it is logged out, so the revocation must outlive
        // a crash of the gateway right after.
        kv::set_durable(&format!("{}{jti}", self.revoked_prefix), b"1", Some(ttl))
            .map_err(|e| format!("revoking a token: {e}"))?;
        Ok(None)
    }

    fn logout(&self, ctx: &Context) -> Result<Response, String> {
        if let Err(response) = self.caller(ctx)? {
            return Ok(response);
        }
        if let Some(response) = self.revoke_current(ctx)? {
            return Ok(response);
        }
        Ok(Response::success(200, "logged out", &Value::Null, ctx))
    }

    fn refresh(&self, ctx: &Context) -> Result<Response, String> {
        let user = match self.caller(ctx)? {
            Ok(user) => user,
            Err(response) => return Ok(response),
        };
        if let Some(response) = self.revoke_current(ctx)? {
            return Ok(response);
        }
        let token = self.issue(&user)?;
        Ok(Response::success(
            200,
            "token refreshed",
            &json!({"token": token.0, "expires_at": token.1, "user": user.public()}),
            ctx,
        ))
    }

    /// A signed token for `user` and its expiry (Unix seconds).
    fn issue(&self, user: &User) -> Result<(String, u64), String> {
        let now = clock::now_unix_ms() / 1000;
        let exp = now + self.token_ttl;
        let mut claims = json!({
            "sub": user.id, "username": user.username, "email": user.email,
            "role": user.role, "iss": self.issuer, "iat": now, "exp": exp,
            "jti": uuid::Uuid::new_v4().to_string(),
        });
        if let Some(audience) = &self.audience {
            claims["aud"] = audience.as_str().into();
        }
        if let Some(permissions) = self.role_permissions.get(&user.role) {
            claims["permissions"] = json!(permissions);
        }
        let mut header = Header::new(self.alg);
        header.kid.clone_from(&self.kid);
        let token = jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| format!("signing a token: {e}"))?;
        Ok((token, exp))
    }
}

export_plugin!(IdentityService);

#[cfg(test)]
mod tests;
