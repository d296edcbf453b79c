//! One token, step by step: its shape, its header, the key, the signature, then the
//! claims. Each step that fails names a [`Refusal`], which goes to the log (the
//! client gets a plain 401).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

use crate::keys::{self, Key};

/// Why a token was refused: what the log says. Never holds the token or a key.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// No `Authorization: Bearer` header.
    Missing,
    /// An `Authorization` header that is not `Bearer <token>`.
    NotBearer,
    /// An `Authorization` header whose bytes are not UTF-8 text.
    NotText,
    /// Longer than `max_token_bytes`.
    TooLarge(usize),
    /// Not three base64url parts of a JWS (what is wrong).
    Malformed(&'static str),
    /// `alg: none`, an unsecured token.
    AlgNone,
    /// An algorithm this plugin does not know.
    UnknownAlg(String),
    /// A `crit` header: extensions this plugin does not understand.
    Critical,
    /// A `kid` that no configured key has.
    UnknownKid(String),
    /// No key accepts the token's algorithm (or, with a `kid`, that key does not).
    NoKeyFor(String),
    /// The signature does not verify with any candidate key.
    BadSignature,
    /// The payload is not a JSON object.
    ClaimsNotObject,
    /// A claim has the wrong type (its name).
    BadClaim(String),
    /// `exp` is in the past (by more than the leeway).
    Expired,
    /// `nbf` is in the future (by more than the leeway).
    NotYetValid,
    /// No `exp`, and one is required.
    NoExpiry,
    /// `iss` is not an accepted issuer.
    WrongIssuer,
    /// `aud` names no accepted audience.
    WrongAudience,
    /// The token's `jti` was revoked.
    Revoked,
    /// The identity cannot be sent in headers (a control character in a claim, say).
    Unsendable(String),
    /// A role or permission the identity may not hold (a `,`, whitespace or a control
    /// character, which would change its meaning once joined into a list).
    BadIdentity(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing => write!(f, "no bearer token"),
            Self::NotBearer => write!(f, "the Authorization header is not `Bearer <token>`"),
            Self::NotText => write!(f, "the Authorization header is not UTF-8 text"),
            Self::TooLarge(n) => write!(f, "the token is {n} bytes, over max_token_bytes"),
            Self::Malformed(what) => write!(f, "malformed token: {what}"),
            Self::AlgNone => write!(f, "unsecured token (alg none)"),
            Self::UnknownAlg(alg) => write!(f, "unsupported alg {alg:?}"),
            Self::Critical => write!(f, "the token has critical header extensions (crit)"),
            Self::UnknownKid(kid) => write!(f, "unknown kid {kid:?}"),
            Self::NoKeyFor(what) => write!(f, "no key accepts {what}"),
            Self::BadSignature => write!(f, "bad signature"),
            Self::ClaimsNotObject => write!(f, "the claims are not a JSON object"),
            Self::BadClaim(name) => write!(f, "claim {name:?} has the wrong type"),
            Self::Expired => write!(f, "expired (exp)"),
            Self::NotYetValid => write!(f, "not valid yet (nbf)"),
            Self::NoExpiry => write!(f, "no exp claim"),
            Self::WrongIssuer => write!(f, "issuer not accepted (iss)"),
            Self::WrongAudience => write!(f, "audience not accepted (aud)"),
            Self::Revoked => write!(f, "revoked (jti)"),
            Self::Unsendable(why) => write!(f, "cannot be sent in a header: {why}"),
            Self::BadIdentity(why) => write!(f, "the identity cannot be recorded: {why}"),
        }
    }
}

/// A token split into its parts, with its header read.
#[derive(Debug)]
pub struct Parsed<'t> {
    /// The signed part: `header.payload`.
    pub signing_input: &'t str,
    /// The base64url signature.
    pub signature: &'t str,
    /// The base64url payload.
    pub payload: &'t str,
    /// The header's algorithm.
    pub alg: Algorithm,
    /// The header's `kid`.
    pub kid: Option<String>,
}

/// Splits `token` and reads its header.
pub fn parse(token: &str) -> Result<Parsed<'_>, Refusal> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refusal::Malformed("not three dot-separated parts"));
    };
    if header.is_empty() || payload.is_empty() {
        return Err(Refusal::Malformed("an empty part"));
    }
    if signature.is_empty() {
        // An unsecured JWS has an empty signature; say which it is.
        return Err(match header_alg(header) {
            Some(alg) if alg.eq_ignore_ascii_case("none") => Refusal::AlgNone,
            _ => Refusal::Malformed("no signature"),
        });
    }
    let header_json = decode_part(header)?;
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(&header_json) else {
        return Err(Refusal::Malformed("the header is not a JSON object"));
    };
    let alg = match fields.get("alg") {
        Some(Value::String(alg)) if alg.eq_ignore_ascii_case("none") => {
            return Err(Refusal::AlgNone);
        }
        Some(Value::String(alg)) => {
            keys::algorithm(alg).ok_or_else(|| Refusal::UnknownAlg(alg.clone()))?
        }
        _ => return Err(Refusal::Malformed("the header has no alg")),
    };
    if fields.contains_key("crit") {
        return Err(Refusal::Critical);
    }
    let kid = match fields.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(Refusal::Malformed("kid is not a string")),
    };
    // base64url without padding, as RFC 7515 requires; checked before any key work.
    decode_part(signature)?;
    decode_part(payload)?;
    Ok(Parsed {
        signing_input: &token[..header.len() + 1 + payload.len()],
        signature,
        payload,
        alg,
        kid,
    })
}

fn decode_part(part: &str) -> Result<Vec<u8>, Refusal> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| Refusal::Malformed("a part is not base64url"))
}

/// The header's `alg`, if the header decodes at all.
fn header_alg(header: &str) -> Option<String> {
    let json = URL_SAFE_NO_PAD.decode(header).ok()?;
    let value: Value = serde_json::from_slice(&json).ok()?;
    value.get("alg")?.as_str().map(str::to_string)
}

/// The keys that may have signed `token`: those with its `kid` (which must then
/// accept its alg), else every key accepting its alg.
pub fn candidates<'k>(token: &Parsed<'_>, keys: &'k [Key]) -> Result<Vec<&'k Key>, Refusal> {
    match &token.kid {
        Some(kid) => {
            let named: Vec<&Key> = keys
                .iter()
                .filter(|k| k.kid.as_deref() == Some(kid))
                .collect();
            if named.is_empty() {
                return Err(Refusal::UnknownKid(kid.clone()));
            }
            let fitting: Vec<&Key> = named
                .into_iter()
                .filter(|k| k.algorithms.contains(&token.alg))
                .collect();
            if fitting.is_empty() {
                return Err(Refusal::NoKeyFor(format!(
                    "{:?} with kid {kid:?}",
                    token.alg
                )));
            }
            Ok(fitting)
        }
        None => {
            let fitting: Vec<&Key> = keys
                .iter()
                .filter(|k| k.algorithms.contains(&token.alg))
                .collect();
            if fitting.is_empty() {
                return Err(Refusal::NoKeyFor(format!("{:?}", token.alg)));
            }
            Ok(fitting)
        }
    }
}

/// Whether the signature verifies with one of `keys`.
pub fn verify(token: &Parsed<'_>, keys: &[&Key]) -> Result<(), Refusal> {
    let verified = keys.iter().any(|key| {
        jsonwebtoken::crypto::verify(
            token.signature,
            token.signing_input.as_bytes(),
            &key.key,
            token.alg,
        )
        .unwrap_or(false)
    });
    if verified {
        Ok(())
    } else {
        Err(Refusal::BadSignature)
    }
}

/// The claims of a verified token.
pub fn claims(token: &Parsed<'_>) -> Result<Map<String, Value>, Refusal> {
    let json = decode_part(token.payload)?;
    match serde_json::from_slice::<Value>(&json) {
        Ok(Value::Object(claims)) => Ok(claims),
        _ => Err(Refusal::ClaimsNotObject),
    }
}

/// The rules the registered claims are checked against.
#[derive(Debug, Default)]
pub struct Rules {
    /// Accepted issuers; empty accepts any.
    pub issuers: Vec<String>,
    /// Accepted audiences; empty accepts any.
    pub audiences: Vec<String>,
    /// Seconds of skew allowed on `exp` and `nbf`.
    pub leeway: u64,
    /// Refuse a token without `exp`.
    pub require_exp: bool,
}

/// A NumericDate claim (seconds, possibly fractional), if present.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<f64>, Refusal> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_f64()
            .map(Some)
            .ok_or_else(|| Refusal::BadClaim(name.into())),
        Some(_) => Err(Refusal::BadClaim(name.into())),
    }
}

/// Checks `exp`, `nbf`, `iss` and `aud` at `now` (Unix seconds).
pub fn check_claims(claims: &Map<String, Value>, rules: &Rules, now: f64) -> Result<(), Refusal> {
    let leeway = rules.leeway as f64;
    match numeric_date(claims, "exp")? {
        Some(exp) if now >= exp + leeway => return Err(Refusal::Expired),
        Some(_) => {}
        None if rules.require_exp => return Err(Refusal::NoExpiry),
        None => {}
    }
    if let Some(nbf) = numeric_date(claims, "nbf")?
        && now + leeway < nbf
    {
        return Err(Refusal::NotYetValid);
    }
    if !rules.issuers.is_empty() {
        match claims.get("iss") {
            Some(Value::String(iss)) if rules.issuers.contains(iss) => {}
            _ => return Err(Refusal::WrongIssuer),
        }
    }
    if !rules.audiences.is_empty() {
        let accepted = |aud: &str| rules.audiences.iter().any(|a| a == aud);
        let ok = match claims.get("aud") {
            Some(Value::String(aud)) => accepted(aud),
            Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str().is_some_and(accepted)),
            _ => false,
        };
        if !ok {
            return Err(Refusal::WrongAudience);
        }
    }
    Ok(())
}

/// A claim as text: a string, or a number (`sub` is sometimes numeric).
pub fn text_claim(claims: &Map<String, Value>, name: &str) -> Result<Option<String>, Refusal> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(Refusal::BadClaim(name.into())),
    }
}

/// The role claim: a string (one role, never split: `"user,admin"` is one role, which
/// the identity check then refuses) or an array of strings. `""` is no role.
pub fn role_claim(claims: &Map<String, Value>, name: &str) -> Result<Vec<String>, Refusal> {
    match claims.get(name) {
        Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        _ => list_claim(claims, name),
    }
}

/// A claim as a list: an array of strings, or one string split on spaces and commas
/// (as OAuth's `scope`).
pub fn list_claim(claims: &Map<String, Value>, name: &str) -> Result<Vec<String>, Refusal> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(s
            .split([' ', ','])
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| Refusal::BadClaim(name.into()))
            })
            .collect(),
        Some(_) => Err(Refusal::BadClaim(name.into())),
    }
}
