//! Client secrets: generation, argon2id hashing and verification.
//!
//! Argon2 is deliberately expensive (OWASP parameters: 19 MiB, 2 passes, 1 lane), so it never
//! runs on the async runtime: each hash or verification goes to `spawn_blocking`, behind a
//! semaphore sized to the machine's cores so a burst of token requests cannot starve the
//! gateway's other work. An unknown client id is verified against a dummy hash of the same
//! cost, so timing does not tell which client ids exist.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use rand::RngCore;
use tokio::sync::Semaphore;

use crate::metrics::Metrics;

fn argon2() -> Argon2<'static> {
    // OWASP password storage cheat sheet: m=19456 KiB, t=2, p=1.
    let params = Params::new(19_456, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A new client secret: `cs_` + 256 random bits, base64url.
pub fn generate_secret() -> String {
    let mut buf = [0u8; 32];
    rand::rng().fill_bytes(&mut buf);
    format!(
        "cs_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
    )
}

/// Hashes and verifies secrets off the async runtime.
#[derive(Debug)]
pub struct SecretHasher {
    permits: Arc<Semaphore>,
    dummy: String,
    metrics: Arc<Metrics>,
}

impl SecretHasher {
    /// A hasher allowing one argon2 computation per core at a time.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let dummy = hash_blocking("obgate-dummy-secret-for-unknown-clients").unwrap_or_default();
        Self {
            permits: Arc::new(Semaphore::new(cores)),
            dummy,
            metrics,
        }
    }

    /// The argon2id PHC string of `secret`.
    pub async fn hash(&self, secret: &str) -> Result<String, String> {
        let _permit = self.permits.acquire().await.map_err(|e| e.to_string())?;
        let secret = secret.to_owned();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || span.in_scope(|| hash_blocking(&secret)))
            .await
            .map_err(|e| e.to_string())?
    }

    /// Whether `secret` matches `phc`; with `None` (unknown client) it checks against the
    /// dummy hash, takes the same time, and returns false.
    pub async fn verify(&self, secret: &str, phc: Option<&str>) -> bool {
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        let known = phc.is_some();
        let phc = phc.unwrap_or(&self.dummy).to_owned();
        let secret = secret.to_owned();
        let span = tracing::Span::current();
        self.metrics.argon2_verification();
        let ok = tokio::task::spawn_blocking(move || {
            span.in_scope(|| {
                PasswordHash::new(&phc)
                    .map(|h| argon2().verify_password(secret.as_bytes(), &h).is_ok())
                    .unwrap_or(false)
            })
        })
        .await
        .unwrap_or(false);
        ok && known
    }
}

fn hash_blocking(secret: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    argon2()
        .hash_password(secret.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn secrets_hash_with_owasp_argon2id_and_verify() {
        let h = SecretHasher::new(Arc::new(Metrics::new()));
        let secret = generate_secret();
        assert!(secret.starts_with("cs_") && secret.len() == 46);
        let phc = h.hash(&secret).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(h.verify(&secret, Some(&phc)).await);
        assert!(!h.verify("cs_wrong", Some(&phc)).await);
        assert!(
            !h.verify(&secret, None).await,
            "unknown clients never verify"
        );
        assert!(!h.verify(&secret, Some("not a phc string")).await);
    }
}
