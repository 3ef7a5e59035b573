//! Client secrets: generation, argon2id hashing and verification.
//!
//! Argon2 is deliberately expensive (OWASP parameters: 19 MiB, 2 passes, 1 lane), so it never
//! runs on the async runtime: each hash or verification goes to `spawn_blocking`, behind a
//! semaphore of one permit per core but one, so a burst of token requests cannot starve the
//! gateway's other work. An unknown client id is verified against a dummy hash of the same
//! cost, so timing does not tell which client ids exist.
//!
//! Verification reuses argon2's 19 MiB working memory: one block set per permit, handed to
//! whichever blocking thread runs the check. Allocating it per check let the allocator keep a
//! 19 MiB arena on every blocking thread, so a flood of wrong secrets grew the process to
//! about 390 MiB (measured by `benches/run.sh`); now argon2 holds at most one set per core.

use std::sync::{Arc, Mutex};

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::Engine;
use rand::RngCore;
use subtle::ConstantTimeEq;
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

/// What an unknown client's secret is checked against, so that it costs what a known one
/// does: the argon2id hash (same parameters) of a random secret nobody kept. A constant, so
/// start-up runs no argon2 and holds no 19 MiB working set it would never need again.
const DUMMY_PHC: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$zYpgkE+ccrGwap54e4mm7w$B38EajheYgta3kkihLm/87Ghbpva7kJarMl/jC9P/8A";

/// Hashes and verifies secrets off the async runtime.
#[derive(Debug)]
pub struct SecretHasher {
    permits: Arc<Semaphore>,
    /// Argon2 working memory for verifications, at most one set per permit.
    memory: Arc<Mutex<Vec<Vec<Block>>>>,
    dummy: String,
    metrics: Arc<Metrics>,
}

impl SecretHasher {
    /// A hasher allowing one argon2 computation per core at a time, but one core fewer than
    /// the machine has (at least one): a flood of secrets to check must leave a core to the
    /// requests that need no argon2 (`/healthz`, the gateway, cached secrets).
    pub fn new(metrics: Arc<Metrics>) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            permits: Arc::new(Semaphore::new(cores.saturating_sub(1).max(1))),
            memory: Arc::default(),
            dummy: DUMMY_PHC.to_owned(),
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
        self.verify_unless(secret, phc, || async { false })
            .await
            .unwrap_or(false)
    }

    /// [`Self::verify`], unless `refused` says so once this check's turn has come (`None`).
    /// Checks wait their turn for a permit; a lockout set while they waited must stop the
    /// guesses queued behind the one that set it, or a burst sent at once would all be tried.
    pub async fn verify_unless<R, F>(
        &self,
        secret: &str,
        phc: Option<&str>,
        refused: R,
    ) -> Option<bool>
    where
        R: FnOnce() -> F,
        F: std::future::Future<Output = bool>,
    {
        let Ok(_permit) = self.permits.acquire().await else {
            return Some(false);
        };
        if refused().await {
            return None;
        }
        let known = phc.is_some();
        let phc = phc.unwrap_or(&self.dummy).to_owned();
        let secret = secret.to_owned();
        let span = tracing::Span::current();
        self.metrics.argon2_verification();
        let mut blocks = self
            .memory
            .lock()
            .ok()
            .and_then(|mut m| m.pop())
            .unwrap_or_default();
        let (ok, blocks) = tokio::task::spawn_blocking(move || {
            let ok = span.in_scope(|| verify_with(&secret, &phc, &mut blocks));
            (ok, blocks)
        })
        .await
        .unwrap_or((false, Vec::new()));
        if !blocks.is_empty() {
            if let Ok(mut m) = self.memory.lock() {
                m.push(blocks);
            }
        }
        Some(ok && known)
    }
}

/// Whether `secret` hashes to the PHC string `phc`, computed in `blocks` (resized to what
/// the hash's parameters need) and compared in constant time.
fn verify_with(secret: &str, phc: &str, blocks: &mut Vec<Block>) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(expected), Some(salt)) = (hash.hash, hash.salt) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) =
        (Algorithm::try_from(hash.algorithm), Params::try_from(&hash))
    else {
        return false;
    };
    let version = match hash.version.map(Version::try_from) {
        None => Version::V0x13,
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    blocks.resize(params.block_count(), Block::default());
    let mut out = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(secret.as_bytes(), salt, &mut out, &mut blocks[..])
        .is_ok()
        && bool::from(out.as_slice().ct_eq(expected.as_bytes()))
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
        // The working memory is reused: one set per concurrent check, never more.
        for _ in 0..3 {
            assert!(h.verify(&secret, Some(&phc)).await);
        }
        assert_eq!(h.memory.lock().unwrap().len(), 1);
        assert_eq!(h.memory.lock().unwrap()[0].len(), 19_456);
    }

    #[test]
    fn the_dummy_hash_costs_what_a_real_one_does() {
        let real = hash_blocking("cs_x").unwrap();
        let params = |phc: &str| Params::try_from(&PasswordHash::new(phc).unwrap()).unwrap();
        let (d, r) = (params(DUMMY_PHC), params(&real));
        assert_eq!(
            (d.m_cost(), d.t_cost(), d.p_cost()),
            (r.m_cost(), r.t_cost(), r.p_cost())
        );
        assert!(!verify_with("cs_x", DUMMY_PHC, &mut Vec::new()));
    }

    #[test]
    fn the_reused_memory_check_agrees_with_the_library() {
        use argon2::password_hash::PasswordVerifier;
        let phc = hash_blocking("cs_right").unwrap();
        let parsed = PasswordHash::new(&phc).unwrap();
        let mut blocks = Vec::new();
        for (secret, want) in [("cs_right", true), ("cs_wrong", false), ("", false)] {
            assert_eq!(verify_with(secret, &phc, &mut blocks), want, "{secret}");
            assert_eq!(
                argon2().verify_password(secret.as_bytes(), &parsed).is_ok(),
                want
            );
        }
        // A hash made with other parameters is checked with its own.
        let light = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(1024, 1, 1, None).unwrap(),
        )
        .hash_password(b"cs_light", &SaltString::encode_b64(&[7u8; 16]).unwrap())
        .unwrap()
        .to_string();
        assert!(verify_with("cs_light", &light, &mut blocks));
        assert_eq!(blocks.len(), 1024);
        assert!(!verify_with("cs_right", &light, &mut blocks));
    }
}
