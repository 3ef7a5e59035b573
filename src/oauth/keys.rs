//! JWT signing keys: generation, encryption at rest, rotation and the JWKS.
//!
//! There is always one **active** key (signs new tokens) and one **next** key (already in the
//! JWKS, so verifiers have it before it signs anything). Rotation retires the active key,
//! promotes the next one and generates a new next key, in one transaction that only succeeds for
//! the node that saw the current active key, so concurrent rotations on several nodes do one
//! rotation. A retired key stays in the JWKS and verifies tokens for the longest token lifetime
//! after it retired, then disappears. Private keys are stored sealed under
//! `oauth.key_encryption_key` and only ever decrypted into memory.
//!
//! Each node keeps the key set in memory and reloads it when it is older than
//! [`RELOAD_AFTER`] or a token names a `kid` it does not know (another node rotated).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::audit::{ActorType, AuditEvent};
use crate::clock::{Clock, Timestamp};
use crate::config::{EncryptionKey, SigningAlg};
use crate::crypto;
use crate::store::{SigningKeyRow, Store, StoreError};

/// How long a node trusts its in-memory key set before reading it again.
pub const RELOAD_AFTER: Duration = Duration::from_secs(30);
/// Extra time a retired key is kept beyond the token lifetime (clock skew, in-flight requests).
pub const RETAIN_SLACK: Duration = Duration::from_secs(60);

/// What can go wrong with keys.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored private key does not decrypt: the key-encryption key changed.
    #[error("signing key {0} cannot be decrypted: is oauth.key_encryption_key the one it was stored with?")]
    Decrypt(String),
    /// A key could not be generated or parsed.
    #[error("signing key error: {0}")]
    Crypto(String),
}

/// The signing key currently in use.
pub struct ActiveKey {
    /// Key id (RFC 7638 thumbprint).
    pub kid: String,
    /// Its algorithm.
    pub alg: Algorithm,
    /// The decrypted private key.
    pub encoding: EncodingKey,
    /// An ES256 key, parsed once, in ring's form. jsonwebtoken's pure-Rust backend parses the
    /// PKCS#8 bytes on every signature (parsing derives the public key: a second P-256 scalar
    /// multiplication per token), and the pure-Rust P-256 arithmetic itself was half the token
    /// endpoint's CPU; ring signs with its assembly P-256 (BENCHMARKS.md, token row).
    /// [`super::jwt::sign`] signs with this one.
    pub es256: Option<ring::signature::EcdsaKeyPair>,
}

/// One node's view of the keys.
pub struct KeySet {
    /// The key that signs.
    pub active: ActiveKey,
    verifiers: HashMap<String, (Algorithm, DecodingKey)>,
    jwks: Value,
    loaded_at: Timestamp,
}

impl KeySet {
    /// The verification key and algorithm for a `kid`, if it is published.
    pub fn verifier(&self, kid: &str) -> Option<&(Algorithm, DecodingKey)> {
        self.verifiers.get(kid)
    }

    /// The JWKS document (`{"keys": [...]}`), public keys only.
    pub fn jwks(&self) -> &Value {
        &self.jwks
    }
}

fn algorithm(alg: SigningAlg) -> Algorithm {
    match alg {
        SigningAlg::Es256 => Algorithm::ES256,
        SigningAlg::Ps256 => Algorithm::PS256,
    }
}

/// Generates a key pair, returning the row to store (private key sealed under `kek`).
pub fn generate(
    alg: SigningAlg,
    state: &str,
    now: Timestamp,
    kek: &EncryptionKey,
) -> Result<SigningKeyRow, KeyError> {
    let (thumbprint_input, mut jwk, der) = match alg {
        SigningAlg::Es256 => {
            use p256::pkcs8::EncodePrivateKey;
            let sk = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
            let der = sk
                .to_pkcs8_der()
                .map_err(|e| KeyError::Crypto(e.to_string()))?
                .as_bytes()
                .to_vec();
            let point = sk.verifying_key().to_encoded_point(false);
            let (Some(x), Some(y)) = (point.x(), point.y()) else {
                return Err(KeyError::Crypto("P-256 point without coordinates".into()));
            };
            let (x, y) = (B64.encode(x), B64.encode(y));
            (
                format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#),
                json!({"kty": "EC", "crv": "P-256", "x": x, "y": y}),
                der,
            )
        }
        SigningAlg::Ps256 => {
            use rsa::pkcs1::EncodeRsaPrivateKey;
            use rsa::traits::PublicKeyParts;
            let sk = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048)
                .map_err(|e| KeyError::Crypto(e.to_string()))?;
            let der = sk
                .to_pkcs1_der()
                .map_err(|e| KeyError::Crypto(e.to_string()))?
                .as_bytes()
                .to_vec();
            let n = B64.encode(sk.n().to_bytes_be());
            let e = B64.encode(sk.e().to_bytes_be());
            (
                format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#),
                json!({"kty": "RSA", "n": n, "e": e}),
                der,
            )
        }
    };
    let kid = B64.encode(Sha256::digest(thumbprint_input.as_bytes()));
    if let Some(obj) = jwk.as_object_mut() {
        obj.insert("kid".into(), Value::String(kid.clone()));
        obj.insert("alg".into(), Value::String(alg.as_str().into()));
        obj.insert("use".into(), Value::String("sig".into()));
    }
    let sealed = crypto::seal(kek, kid.as_bytes(), &der);
    Ok(SigningKeyRow {
        kid,
        alg: alg.as_str().into(),
        state: state.into(),
        public_jwk: jwk.to_string(),
        private_key: sealed,
        created_at: now,
        activated_at: (state == "active").then_some(now),
        retired_at: None,
    })
}

/// ring's form of a stored ES256 key (PKCS#8 DER as [`generate`] writes it). The scalar and
/// the public point go in separately: ring's own PKCS#8 reader wants the optional public key
/// inside the document, which other writers of P-256 keys leave out.
pub(crate) fn es256_key_pair(der: &[u8]) -> Result<ring::signature::EcdsaKeyPair, String> {
    let sk: p256::ecdsa::SigningKey =
        p256::pkcs8::DecodePrivateKey::from_pkcs8_der(der).map_err(|e| e.to_string())?;
    let public = sk.verifying_key().to_encoded_point(false);
    ring::signature::EcdsaKeyPair::from_private_key_and_public_key(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &sk.to_bytes(),
        public.as_bytes(),
        &ring::rand::SystemRandom::new(),
    )
    .map_err(|e| e.to_string())
}

pub(crate) fn decoding_key(row: &SigningKeyRow) -> Result<(Algorithm, DecodingKey), KeyError> {
    let jwk: Value =
        serde_json::from_str(&row.public_jwk).map_err(|e| KeyError::Crypto(e.to_string()))?;
    let s = |k: &str| jwk[k].as_str().unwrap_or_default().to_owned();
    let alg = SigningAlg::parse(&row.alg).ok_or_else(|| KeyError::Crypto(row.alg.clone()))?;
    let key = match alg {
        SigningAlg::Es256 => DecodingKey::from_ec_components(&s("x"), &s("y")),
        SigningAlg::Ps256 => DecodingKey::from_rsa_components(&s("n"), &s("e")),
    }
    .map_err(|e| KeyError::Crypto(e.to_string()))?;
    Ok((algorithm(alg), key))
}

/// The key service of one node.
pub struct Keys {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    kek: EncryptionKey,
    alg: SigningAlg,
    rotation: Option<Duration>,
    retain: Duration,
    current: RwLock<Option<Arc<KeySet>>>,
    reload: tokio::sync::Mutex<Timestamp>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl Keys {
    /// Creates the service; call [`Keys::ensure`] before issuing tokens.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        config: &crate::config::OAuthConfig,
    ) -> Self {
        Self {
            store,
            clock,
            kek: config.key_encryption_key.clone(),
            alg: config.signing_alg,
            rotation: config.key_rotation,
            retain: config.access_token_ttl + RETAIN_SLACK,
            current: RwLock::new(None),
            reload: tokio::sync::Mutex::new(Timestamp::from_millis(0)),
        }
    }

    /// Generates the first keys when there are none, rotates when the active key is older than
    /// the rotation period, and loads the key set. Runs at start-up and whenever the in-memory
    /// set is older than [`RELOAD_AFTER`].
    pub async fn ensure(&self) -> Result<Arc<KeySet>, KeyError> {
        // One read in the steady state; a second only after this call changed the keys.
        let rows = self.store.list_signing_keys().await?;
        if rows.is_empty() {
            let now = self.clock.now();
            let active = generate(self.alg, "active", now, &self.kek)?;
            let next = generate(self.alg, "next", now, &self.kek)?;
            let audit = AuditEvent::new(now, ActorType::System, "keys", "signing_key.create")
                .on("signing_key", active.kid.clone());
            match self
                .store
                .insert_signing_keys(&[active, next], &audit)
                .await
            {
                Ok(()) | Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
            return self.load().await;
        }
        if self.rotation_due(&rows) {
            self.rotate_from(&rows, ActorType::System, "keys").await?;
            return self.load().await;
        }
        self.load_from(&rows)
    }

    /// Whether the active key has signed for longer than `oauth.key_rotation`.
    fn rotation_due(&self, rows: &[SigningKeyRow]) -> bool {
        let Some(period) = self.rotation else {
            return false;
        };
        rows.iter()
            .find(|r| r.state == "active")
            .and_then(|a| a.activated_at)
            .is_some_and(|t| t.plus(period) <= self.clock.now())
    }

    /// Retires the active key, promotes the next one and generates a new next key. `false`
    /// when another node rotated at the same moment (that rotation stands).
    pub async fn rotate(&self, actor: ActorType, actor_id: &str) -> Result<bool, KeyError> {
        let rows = self.store.list_signing_keys().await?;
        let rotated = self.rotate_from(&rows, actor, actor_id).await?;
        self.load().await?;
        Ok(rotated)
    }

    async fn rotate_from(
        &self,
        rows: &[SigningKeyRow],
        actor: ActorType,
        actor_id: &str,
    ) -> Result<bool, KeyError> {
        let Some(active) = rows.iter().find(|r| r.state == "active") else {
            return Err(KeyError::Crypto(
                "no active signing key; run `obgate serve` once".into(),
            ));
        };
        let now = self.clock.now();
        let next = generate(self.alg, "next", now, &self.kek)?;
        let audit = AuditEvent::new(now, actor, actor_id, "signing_key.rotate")
            .on("signing_key", active.kid.clone());
        Ok(self
            .store
            .rotate_signing_keys(&active.kid, &next, now, &audit)
            .await?)
    }

    /// Reads the keys from storage and replaces the in-memory set.
    pub async fn load(&self) -> Result<Arc<KeySet>, KeyError> {
        let rows = self.store.list_signing_keys().await?;
        self.load_from(&rows)
    }

    /// Builds the in-memory set from stored rows and installs it.
    fn load_from(&self, rows: &[SigningKeyRow]) -> Result<Arc<KeySet>, KeyError> {
        let now = self.clock.now();
        let mut verifiers = HashMap::new();
        let mut published = Vec::new();
        let mut active = None;
        for row in rows {
            let live = match row.state.as_str() {
                "active" | "next" => true,
                _ => row.retired_at.is_some_and(|t| t.plus(self.retain) > now),
            };
            if !live {
                continue;
            }
            verifiers.insert(row.kid.clone(), decoding_key(row)?);
            if let Ok(jwk) = serde_json::from_str::<Value>(&row.public_jwk) {
                published.push(jwk);
            }
            if row.state == "active" {
                let der = crypto::open(&self.kek, row.kid.as_bytes(), &row.private_key)
                    .map_err(|_| KeyError::Decrypt(row.kid.clone()))?;
                let (alg, _) = decoding_key(row)?;
                let encoding = match alg {
                    Algorithm::PS256 => EncodingKey::from_rsa_der(&der),
                    _ => EncodingKey::from_ec_der(&der),
                };
                let es256 = match alg {
                    Algorithm::ES256 => Some(
                        es256_key_pair(&der)
                            .map_err(|e| KeyError::Crypto(format!("ES256 key {}: {e}", row.kid)))?,
                    ),
                    _ => None,
                };
                active = Some(ActiveKey {
                    kid: row.kid.clone(),
                    alg,
                    encoding,
                    es256,
                });
            }
        }
        let active = active.ok_or_else(|| KeyError::Crypto("no active signing key".into()))?;
        let set = Arc::new(KeySet {
            active,
            verifiers,
            jwks: json!({ "keys": published }),
            loaded_at: now,
        });
        if let Ok(mut cur) = self.current.write() {
            *cur = Some(set.clone());
        }
        Ok(set)
    }

    fn cached(&self) -> Option<Arc<KeySet>> {
        self.current.read().ok().and_then(|c| c.clone())
    }

    /// The key set, re-read when older than [`RELOAD_AFTER`] (bootstrapping and rotating
    /// as [`Keys::ensure`] does).
    pub async fn current(&self) -> Result<Arc<KeySet>, KeyError> {
        match self.cached() {
            Some(set) if set.loaded_at.plus(RELOAD_AFTER) > self.clock.now() => Ok(set),
            _ => self.ensure().await,
        }
    }

    /// The verification key for `kid`; on a miss, reloads at most once a second in case
    /// another node rotated.
    pub async fn verifier(&self, kid: &str) -> Result<Option<(Algorithm, DecodingKey)>, KeyError> {
        let set = self.current().await?;
        if let Some(v) = set.verifier(kid) {
            return Ok(Some(v.clone()));
        }
        let mut last = self.reload.lock().await;
        let now = self.clock.now();
        if last.plus(Duration::from_secs(1)) > now {
            return Ok(None);
        }
        *last = now;
        drop(last);
        Ok(self.load().await?.verifier(kid).cloned())
    }
}
