//! Verification keys: built from the config (a granted secret, a PEM, a JWK) or from
//! a JWKS document, each with the algorithms it accepts. A token's `alg` must be one
//! of its key's algorithms, which is what shuts out algorithm confusion (an
//! HS256 token "signed" with an RSA public key as the HMAC secret).

use std::str::FromStr;

use base64::Engine;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};

use crate::config::KeyConfig;

/// One verification key.
pub struct Key {
    /// The key id tokens name in `kid`, if the key has one.
    pub kid: Option<String>,
    /// The algorithms this key verifies.
    pub algorithms: Vec<Algorithm>,
    /// The key itself.
    pub key: DecodingKey,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key material.
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

/// Parses an algorithm name as it appears in a JOSE header (`HS256`, `EdDSA`…).
pub fn algorithm(name: &str) -> Option<Algorithm> {
    Algorithm::from_str(name).ok()
}

/// The key `keys[index]` describes; `secret` looks up a granted secret by name.
pub fn from_config(
    index: usize,
    config: &KeyConfig,
    secret: impl Fn(&str) -> Option<Vec<u8>>,
) -> Result<Key, String> {
    let at = |why: String| format!("keys[{index}]: {why}");
    let alg = match &config.alg {
        Some(name) => Some(algorithm(name).ok_or_else(|| at(format!("unknown alg {name:?}")))?),
        None => None,
    };
    let sources = [
        config.secret.is_some(),
        config.pem.is_some(),
        config.pem_text.is_some(),
        config.jwk.is_some(),
    ];
    if sources.iter().filter(|s| **s).count() != 1 {
        return Err(at(
            "needs exactly one of `secret`, `pem`, `pem_text` and `jwk`".into(),
        ));
    }
    if let Some(jwk) = &config.jwk {
        let jwk: Jwk = serde_json::from_value(jwk.clone()).map_err(|e| at(format!("jwk: {e}")))?;
        let mut key = from_jwk(&jwk, true).map_err(|why| at(format!("jwk: {why}")))?;
        if let Some(alg) = alg {
            if !key.algorithms.contains(&alg) {
                return Err(at(format!("alg {alg:?} does not fit the jwk's key")));
            }
            key.algorithms = vec![alg];
        }
        if config.kid.is_some() {
            key.kid.clone_from(&config.kid);
        }
        return Ok(key);
    }
    let alg = alg.ok_or_else(|| at("needs `alg`".into()))?;
    let family = alg.family();
    let key = if let Some(name) = &config.secret {
        if family != AlgorithmFamily::Hmac {
            return Err(at(format!("`secret` is for HS256/384/512, not {alg:?}")));
        }
        let bytes = secret(name).ok_or_else(|| {
            at(format!(
                "secret {name:?} is not granted to this plugin ([plugins.jwt-auth] secrets)"
            ))
        })?;
        let bytes = if config.secret_base64 {
            decode_base64(&bytes).ok_or_else(|| at(format!("secret {name:?} is not base64")))?
        } else {
            bytes
        };
        if bytes.len() < 32 {
            return Err(at(format!(
                "secret {name:?} is {} bytes; an HMAC key needs at least 32",
                bytes.len()
            )));
        }
        DecodingKey::from_secret(&bytes)
    } else {
        let pem = match (&config.pem, &config.pem_text) {
            (Some(name), _) => secret(name).ok_or_else(|| {
                at(format!(
                    "secret {name:?} is not granted to this plugin ([plugins.jwt-auth] secrets)"
                ))
            })?,
            (None, Some(text)) => text.as_bytes().to_vec(),
            (None, None) => unreachable!("one source is set"),
        };
        let parsed = match family {
            AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem(&pem),
            AlgorithmFamily::Ec => DecodingKey::from_ec_pem(&pem),
            AlgorithmFamily::Ed => DecodingKey::from_ed_pem(&pem),
            AlgorithmFamily::Hmac => {
                return Err(at(format!("{alg:?} takes a `secret`, not a PEM key")));
            }
        };
        parsed.map_err(|e| at(format!("not a PEM public key for {alg:?}: {e}")))?
    };
    Ok(Key {
        kid: config.kid.clone(),
        algorithms: vec![alg],
        key,
    })
}

/// The key a JWK describes. Without its own `alg`, the algorithms follow from the key
/// type; symmetric (`oct`) keys are accepted only when `allow_symmetric` (keys written
/// into the config, never a fetched set).
pub fn from_jwk(jwk: &Jwk, allow_symmetric: bool) -> Result<Key, String> {
    if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
        return Err("the key is for encryption (\"use\": \"enc\")".into());
    }
    let by_type: Vec<Algorithm> = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => vec![
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            ref other => return Err(format!("curve {other:?} is not supported")),
        },
        AlgorithmParameters::OctetKeyPair(okp) => match okp.curve {
            EllipticCurve::Ed25519 => vec![Algorithm::EdDSA],
            ref other => return Err(format!("curve {other:?} is not supported")),
        },
        AlgorithmParameters::OctetKey(_) if allow_symmetric => {
            vec![Algorithm::HS256, Algorithm::HS384, Algorithm::HS512]
        }
        AlgorithmParameters::OctetKey(_) => {
            return Err("a symmetric (oct) key in a fetched key set is refused".into());
        }
        _ => return Err("this key type is not supported".into()),
    };
    let algorithms = match &jwk.common.key_algorithm {
        Some(named) => {
            let alg = algorithm(&named.to_string())
                .filter(|alg| by_type.contains(alg))
                .ok_or_else(|| format!("alg {named} does not fit the key"))?;
            vec![alg]
        }
        None => by_type,
    };
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    Ok(Key {
        kid: jwk.common.key_id.clone(),
        algorithms,
        key,
    })
}

/// The usable keys of a JWKS document; keys that cannot be used (encryption keys,
/// unsupported curves, symmetric keys) are left out and reported.
pub fn from_jwks(document: &[u8]) -> Result<(Vec<Key>, Vec<String>), String> {
    let set: JwkSet =
        serde_json::from_slice(document).map_err(|e| format!("not a JWKS document: {e}"))?;
    let mut keys = Vec::with_capacity(set.keys.len());
    let mut skipped = Vec::new();
    for (i, jwk) in set.keys.iter().enumerate() {
        match from_jwk(jwk, false) {
            Ok(key) => keys.push(key),
            Err(why) => skipped.push(format!("keys[{i}]: {why}")),
        }
    }
    Ok((keys, skipped))
}

/// Standard or URL-safe base64, padded or not; surrounding whitespace ignored.
fn decode_base64(bytes: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(bytes).ok()?.trim();
    let unpadded = text.trim_end_matches('=');
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(unpadded)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(unpadded))
        .ok()
}
