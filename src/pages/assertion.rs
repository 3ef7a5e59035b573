//! The bank's customer assertion: how a customer the bank has logged in arrives on obgate's
//! pages without obgate ever seeing a password.
//!
//! The bank signs a short JWT: `sub` is the customer id, `aud` is obgate's public URL, `exp` is
//! at most [`MAX_LIFETIME`] ahead, and `jti` is single-use (stored until `exp`, so a replay
//! fails on every node). `iss` must equal `pages.assertion_issuer` when that is set. The key is
//! `pages.assertion_public_key` (a PEM file) or the bank's JWK set at
//! `pages.assertion_jwks_url`, fetched and cached, and fetched again for an unknown `kid`
//! (at most every [`REFETCH_AFTER`]) so the bank can rotate keys without telling obgate.
//! Requests that need the set while it is fetched wait for that one fetch; after a failed one,
//! none is tried for [`FAILED_FETCH_BACKOFF`].
//! Time is checked on obgate's clock.

use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use tokio::sync::RwLock;

use crate::clock::Timestamp;
use crate::config::AssertionKeys;
use crate::oauth::assertion::{
    lifetime_ok, unverified_member, verified_claims, Audience, Unverified, LEEWAY,
};
use crate::state::AppState;

/// The longest an assertion may live: it only carries the customer from the bank's login.
/// Clock skew on `exp`, `nbf` and `iat` is tolerated as for client assertions.
pub const MAX_LIFETIME: Duration = Duration::from_secs(300);
/// A cached JWK set is used this long before it is fetched again.
pub const JWKS_TTL: Duration = Duration::from_secs(300);
/// An unknown `kid` fetches the set again, but not more often than this.
pub const REFETCH_AFTER: Duration = Duration::from_secs(30);
/// After a failed fetch, assertions that need the set are refused without another try for
/// this long: while the bank's key URL is down, each sign-in attempt must not be a request
/// to it.
pub const FAILED_FETCH_BACKOFF: Duration = Duration::from_secs(5);
/// Where used `jti`s are kept (with the client assertions' ones, under a name no client has).
const JTI_SCOPE: &str = "@customer-assertion";

/// Why an assertion was refused: the audit reason; the customer sees one generic message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No bank key is configured.
    NotConfigured,
    /// Not a JWT, or claims of the wrong type.
    Malformed,
    /// `alg` not ES256, PS256 or RS256, or no key of that type.
    Algorithm,
    /// No key verifies the signature.
    Signature,
    /// `iss` is not the configured issuer.
    Issuer,
    /// `aud` does not name obgate.
    Audience,
    /// `exp` missing, passed or too far ahead; `nbf`/`iat` in the future.
    Lifetime,
    /// `jti` or `sub` missing.
    MissingClaim,
    /// `jti` used before.
    Replayed,
    /// The bank's key set could not be fetched.
    KeysUnavailable,
}

impl Refusal {
    /// The audit reason code.
    pub fn code(self) -> &'static str {
        match self {
            Refusal::NotConfigured => "assertion_not_configured",
            Refusal::Malformed => "assertion_malformed",
            Refusal::Algorithm => "assertion_algorithm",
            Refusal::Signature => "assertion_signature",
            Refusal::Issuer => "assertion_issuer",
            Refusal::Audience => "assertion_audience",
            Refusal::Lifetime => "assertion_lifetime",
            Refusal::MissingClaim => "assertion_missing_claim",
            Refusal::Replayed => "assertion_replayed",
            Refusal::KeysUnavailable => "assertion_keys_unavailable",
        }
    }
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    aud: Audience,
    #[serde(default)]
    exp: Option<i64>,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    jti: Option<String>,
}

/// The bank's verification keys, with the JWK set cache.
#[derive(Debug)]
pub struct BankKeys {
    source: AssertionKeys,
    http: Option<reqwest::Client>,
    cached: RwLock<Option<(Timestamp, JwkSet)>>,
    /// Held by the one fetch in flight (others wait for it and use what it got); remembers
    /// when the last fetch failed.
    fetching: tokio::sync::Mutex<Option<Timestamp>>,
}

impl BankKeys {
    /// Keys from configuration; nothing is fetched until the first assertion.
    pub fn new(source: AssertionKeys) -> Self {
        // Only a JWK set URL needs a client; most deployments build none at start.
        let http = matches!(source, AssertionKeys::Jwks(_)).then(|| {
            reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default()
        });
        Self {
            source,
            http,
            cached: RwLock::new(None),
            fetching: tokio::sync::Mutex::new(None),
        }
    }

    /// The cached set, if it may answer for `kid` at `now`.
    async fn fresh(&self, kid: Option<&str>, now: Timestamp) -> Option<JwkSet> {
        let c = self.cached.read().await;
        c.as_ref().and_then(|(at, set)| {
            let knows = kid.is_none_or(|k| set.find(k).is_some());
            let young = |d: Duration| now < at.plus(d);
            (young(JWKS_TTL) && (knows || young(REFETCH_AFTER))).then(|| set.clone())
        })
    }

    /// The set from the cache, or fetched once for all the requests that need it meanwhile.
    async fn set_for(
        &self,
        url: &url::Url,
        kid: Option<&str>,
        now: Timestamp,
    ) -> Result<JwkSet, Refusal> {
        if let Some(set) = self.fresh(kid, now).await {
            return Ok(set);
        }
        let mut failed_at = self.fetching.lock().await;
        // Fetched by another request while this one waited.
        if let Some(set) = self.fresh(kid, now).await {
            return Ok(set);
        }
        if failed_at.is_some_and(|t| now < t.plus(FAILED_FETCH_BACKOFF)) {
            return Err(Refusal::KeysUnavailable);
        }
        match self.fetch(url).await {
            Ok(set) => {
                *failed_at = None;
                *self.cached.write().await = Some((now, set.clone()));
                Ok(set)
            }
            Err(e) => {
                *failed_at = Some(now);
                Err(e)
            }
        }
    }

    /// Whether the bank can sign customers in at all.
    pub fn configured(&self) -> bool {
        !matches!(self.source, AssertionKeys::None)
    }

    async fn fetch(&self, url: &url::Url) -> Result<JwkSet, Refusal> {
        let http = self.http.as_ref().ok_or(Refusal::KeysUnavailable)?;
        let res = http.get(url.as_str()).send().await.map_err(|e| {
            tracing::warn!(error = %e, "cannot fetch the bank's assertion keys");
            Refusal::KeysUnavailable
        })?;
        if !res.status().is_success() {
            tracing::warn!(status = %res.status(), "the bank's assertion key URL answered an error");
            return Err(Refusal::KeysUnavailable);
        }
        res.json::<JwkSet>().await.map_err(|e| {
            tracing::warn!(error = %e, "the bank's assertion key URL answered no JWK set");
            Refusal::KeysUnavailable
        })
    }

    /// The keys that may verify a token with this `alg` and `kid`.
    async fn keys_for(
        &self,
        alg: Algorithm,
        kid: Option<&str>,
        now: Timestamp,
    ) -> Result<Vec<DecodingKey>, Refusal> {
        match &self.source {
            AssertionKeys::None => Err(Refusal::NotConfigured),
            AssertionKeys::Pem { pem, .. } => {
                let key = match alg {
                    Algorithm::ES256 => DecodingKey::from_ec_pem(pem.as_bytes()),
                    _ => DecodingKey::from_rsa_pem(pem.as_bytes()),
                };
                key.map(|k| vec![k]).map_err(|_| Refusal::Algorithm)
            }
            AssertionKeys::Jwks(url) => {
                let set = self.set_for(url, kid, now).await?;
                Ok(set
                    .keys
                    .iter()
                    .filter(|j| kid.is_none() || j.common.key_id.as_deref() == kid)
                    .filter_map(|j| DecodingKey::from_jwk(j).ok())
                    .collect())
            }
        }
    }
}

/// The signature algorithms a bank may use: asymmetric only.
const ALGORITHMS: [&str; 3] = ["ES256", "PS256", "RS256"];

/// Verifies a bank assertion and consumes its `jti`; answers the customer id it signs in.
pub async fn verify(state: &AppState, token: &str) -> Result<String, Refusal> {
    let keys = &state.bank_keys;
    if !keys.configured() {
        return Err(Refusal::NotConfigured);
    }
    // The algorithm is judged before anything else, so `none` and the HMAC family are
    // refused as what they are, whatever the library makes of them.
    match unverified_member(token, 0, "alg") {
        None => return Err(Refusal::Malformed),
        Some(alg) if !ALGORITHMS.contains(&alg.as_str()) => return Err(Refusal::Algorithm),
        Some(_) => {}
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| Refusal::Malformed)?;
    let now = state.clock.now();
    let candidates = keys
        .keys_for(header.alg, header.kid.as_deref(), now)
        .await?;
    if candidates.is_empty() {
        return Err(Refusal::Algorithm);
    }
    let c: Claims = verified_claims(token, header.alg, &candidates).map_err(|e| match e {
        Unverified::Signature => Refusal::Signature,
        Unverified::Algorithm => Refusal::Algorithm,
        Unverified::Malformed => Refusal::Malformed,
    })?;
    if let Some(want) = &state.config.pages.assertion_issuer {
        if c.iss.as_deref() != Some(want.as_str()) {
            return Err(Refusal::Issuer);
        }
    }
    let base = state.config.public_base();
    if !c.aud.contains_any(&[base.to_owned(), format!("{base}/")]) {
        return Err(Refusal::Audience);
    }
    let exp = lifetime_ok(c.exp, c.nbf, c.iat, now, MAX_LIFETIME).ok_or(Refusal::Lifetime)?;
    let customer = c
        .sub
        .filter(|s| crate::consent::flow::CUSTOMER_ID.matches(s))
        .ok_or(Refusal::MissingClaim)?;
    let jti = c
        .jti
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or(Refusal::MissingClaim)?;
    let first_use = state
        .store
        .use_client_assertion(
            JTI_SCOPE,
            &jti,
            Timestamp::from_millis(exp.saturating_add(LEEWAY.as_millis() as i64)),
            now,
        )
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "cannot record a customer assertion jti; refusing it");
            Refusal::Replayed
        })?;
    if !first_use {
        return Err(Refusal::Replayed);
    }
    Ok(customer)
}
