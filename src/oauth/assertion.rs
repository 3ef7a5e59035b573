//! `private_key_jwt` client authentication (RFC 7523 §2.2, OpenID Connect Core §9).
//!
//! The client signs a short JWT with a key from the JWK set it registered: `iss` and `sub` are
//! its client id, `aud` is this server's issuer or its token endpoint URL, `exp` is required
//! and at most [`MAX_LIFETIME`] ahead, and `jti` is single-use until `exp`. Used `jti`s are
//! stored, so a replay fails on every node. Only ES256 (EC P-256 keys) and PS256 (RSA keys).
//! Time is checked against obgate's clock, not the signature library's.

use std::collections::HashSet;
use std::time::Duration;

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

use crate::clock::Timestamp;
use crate::state::AppState;
use crate::store::ClientRow;

/// The only `client_assertion_type` (RFC 7523 §2.2).
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Longest an assertion may live (its `exp` from now).
pub const MAX_LIFETIME: Duration = Duration::from_secs(300);
/// Clock skew tolerated on `exp`, `nbf` and `iat`.
pub const LEEWAY: Duration = Duration::from_secs(30);

/// Why an assertion was refused: a machine-readable reason for the audit row. The TPP gets
/// the generic `invalid_client` (RFC 6749 §5.2), plus a hint where the hint helps it fix its
/// code without helping an attacker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not a JWT, or claims of the wrong type.
    Malformed,
    /// `alg` other than ES256/PS256, or not matching the key type.
    Algorithm,
    /// No registered key verifies the signature.
    Signature,
    /// `iss` or `sub` is not the client id.
    Subject,
    /// `aud` names neither the issuer nor the token endpoint.
    Audience,
    /// `exp` missing, passed, or too far ahead; `nbf`/`iat` in the future.
    Lifetime,
    /// `jti` missing.
    MissingJti,
    /// `jti` used before.
    Replayed,
}

impl Refusal {
    /// Audit reason code.
    pub fn code(self) -> &'static str {
        match self {
            Refusal::Malformed => "assertion_malformed",
            Refusal::Algorithm => "assertion_algorithm",
            Refusal::Signature => "assertion_signature",
            Refusal::Subject => "assertion_subject",
            Refusal::Audience => "assertion_audience",
            Refusal::Lifetime => "assertion_lifetime",
            Refusal::MissingJti => "assertion_jti_missing",
            Refusal::Replayed => "assertion_replayed",
        }
    }

    /// What the TPP is told.
    pub fn hint(self) -> &'static str {
        match self {
            Refusal::Malformed => "client_assertion is not a valid JWT",
            Refusal::Algorithm => "client_assertion must be signed with ES256 or PS256",
            Refusal::Signature => {
                "client_assertion signature does not verify with a registered key"
            }
            Refusal::Subject => "client_assertion iss and sub must both be the client_id",
            Refusal::Audience => "client_assertion aud must be the issuer or the token endpoint",
            Refusal::Lifetime => {
                "client_assertion needs an exp in the future and at most 5 minutes ahead"
            }
            Refusal::MissingJti => "client_assertion needs a jti",
            Refusal::Replayed => "client_assertion jti was already used",
        }
    }
}

#[derive(Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    #[serde(default)]
    aud: Audience,
    exp: Option<i64>,
    nbf: Option<i64>,
    iat: Option<i64>,
    jti: Option<String>,
}

/// A JWT's `aud`: one string or a list (RFC 7519 §4.1.3).
#[derive(Deserialize, Default)]
#[serde(untagged)]
pub(crate) enum Audience {
    One(String),
    Many(Vec<String>),
    #[default]
    None,
}

impl Audience {
    /// Whether it names any of `wanted`.
    pub(crate) fn contains_any(&self, wanted: &[String]) -> bool {
        match self {
            Audience::One(a) => wanted.contains(a),
            Audience::Many(list) => list.iter().any(|a| wanted.contains(a)),
            Audience::None => false,
        }
    }
}

/// Why no candidate key verified a JWT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unverified {
    /// No key's signature matched.
    Signature,
    /// The library refused the algorithm for the key.
    Algorithm,
    /// Not a JWT, or claims of the wrong shape.
    Malformed,
}

/// The claims of `token` under the first of `keys` whose signature matches. Only the
/// signature and the claims' shape are checked here: callers judge `exp`, `nbf`, `iat` and
/// `aud` themselves, on obgate's clock ([`lifetime_ok`]), not the library's.
pub(crate) fn verified_claims<T: serde::de::DeserializeOwned>(
    token: &str,
    alg: Algorithm,
    keys: &[DecodingKey],
) -> Result<T, Unverified> {
    let mut v = Validation::new(alg);
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.required_spec_claims = HashSet::new();
    for key in keys {
        match jsonwebtoken::decode::<T>(token, key, &v) {
            Ok(data) => return Ok(data.claims),
            Err(e) if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::InvalidSignature) => {}
            Err(e) if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::InvalidAlgorithm) => {
                return Err(Unverified::Algorithm)
            }
            Err(_) => return Err(Unverified::Malformed),
        }
    }
    Err(Unverified::Signature)
}

/// A short-lived assertion's times on obgate's clock, with [`LEEWAY`]: `exp` (seconds) is
/// required, not past and at most `max_lifetime` ahead; `nbf` and `iat` are not in the
/// future. Answers `exp` in milliseconds, for keeping the `jti` until then.
pub(crate) fn lifetime_ok(
    exp: Option<i64>,
    nbf: Option<i64>,
    iat: Option<i64>,
    now: Timestamp,
    max_lifetime: Duration,
) -> Option<i64> {
    let leeway = i64::try_from(LEEWAY.as_millis()).unwrap_or(0);
    let exp = exp?.saturating_mul(1000);
    let future = |t: Option<i64>| t.is_some_and(|t| t.saturating_mul(1000) > now.millis() + leeway);
    let bad = exp + leeway <= now.millis()
        || exp > now.plus(max_lifetime).millis() + leeway
        || future(nbf)
        || future(iat);
    (!bad).then_some(exp)
}

/// The client id an assertion claims to be from (its `iss`), read without verifying, so the
/// client's keys can be looked up.
pub fn claimed_client(assertion: &str) -> Option<String> {
    unverified_member(assertion, 1, "iss")
}

/// A string member of a compact JWT's header (`segment` 0) or payload (1), read without
/// verifying anything: only to pick keys, or to refuse before verifying.
pub(crate) fn unverified_member(token: &str, segment: usize, name: &str) -> Option<String> {
    let part = token.split('.').nth(segment)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v.get(name)?.as_str().map(str::to_owned)
}

/// The registered keys usable for `alg`, the ones with the header's `kid` first.
fn keys_for(client: &ClientRow, alg: Algorithm, kid: Option<&str>) -> Vec<DecodingKey> {
    let Some(jwks) = client
        .jwks
        .as_deref()
        .and_then(|j| serde_json::from_str::<Value>(j).ok())
    else {
        return Vec::new();
    };
    let keys = jwks["keys"].as_array().cloned().unwrap_or_default();
    let mut out = Vec::new();
    for k in &keys {
        let s = |f: &str| k.get(f).and_then(Value::as_str);
        if kid.is_some() && s("kid").is_some() && s("kid") != kid {
            continue;
        }
        let key = match (alg, s("kty")) {
            (Algorithm::ES256, Some("EC")) => s("x")
                .zip(s("y"))
                .and_then(|(x, y)| DecodingKey::from_ec_components(x, y).ok()),
            (Algorithm::PS256, Some("RSA")) => s("n")
                .zip(s("e"))
                .and_then(|(n, e)| DecodingKey::from_rsa_components(n, e).ok()),
            _ => None,
        };
        out.extend(key);
    }
    out
}

/// Verifies an assertion from `client` and consumes its `jti`.
pub async fn verify(state: &AppState, client: &ClientRow, assertion: &str) -> Result<(), Refusal> {
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| Refusal::Malformed)?;
    if !matches!(header.alg, Algorithm::ES256 | Algorithm::PS256) {
        return Err(Refusal::Algorithm);
    }
    let keys = keys_for(client, header.alg, header.kid.as_deref());
    if keys.is_empty() {
        return Err(Refusal::Algorithm);
    }
    let c: Claims = verified_claims(assertion, header.alg, &keys).map_err(|e| match e {
        Unverified::Signature => Refusal::Signature,
        Unverified::Algorithm => Refusal::Algorithm,
        Unverified::Malformed => Refusal::Malformed,
    })?;
    if c.iss != client.client_id || c.sub != client.client_id {
        return Err(Refusal::Subject);
    }
    let base = state.config.public_base();
    let audiences = [base.to_owned(), format!("{base}/oauth2/token")];
    if !c.aud.contains_any(&audiences) {
        return Err(Refusal::Audience);
    }
    let now = state.clock.now();
    let exp = lifetime_ok(c.exp, c.nbf, c.iat, now, MAX_LIFETIME).ok_or(Refusal::Lifetime)?;
    let jti = c
        .jti
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or(Refusal::MissingJti)?;
    let first_use = state
        .store
        .use_client_assertion(
            &client.client_id,
            &jti,
            Timestamp::from_millis(exp.saturating_add(LEEWAY.as_millis() as i64)),
            now,
        )
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "cannot record a client assertion jti; refusing it");
            Refusal::Replayed
        })?;
    if !first_use {
        return Err(Refusal::Replayed);
    }
    Ok(())
}
