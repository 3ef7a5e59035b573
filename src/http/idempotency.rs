//! The `Idempotency-Key` header, as Bond uses it: a key already used by the same admin key
//! within 24 hours answers `409 idempotency_key_exists` and changes nothing.
//!
//! Keys are stored as SHA-256 hashes with the admin key id as scope, never with the body, and
//! the claim is written in the same transaction as the change, so of two concurrent requests
//! with one key exactly one runs.

use std::time::Duration;

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::admin::AdminPrincipal;
use crate::clock::Timestamp;
use crate::error::ApiError;
use crate::store::kyc::IdempotencyClaim;

/// How long a key blocks reuse.
pub const WINDOW: Duration = Duration::from_secs(24 * 3600);

/// The claim to write with the change, when the request sent a key.
pub fn claim(
    headers: &HeaderMap,
    principal: &AdminPrincipal,
    now: Timestamp,
) -> Result<Option<IdempotencyClaim>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| (1..=255).contains(&k.len()) && k.bytes().all(|b| (0x21..0x7f).contains(&b)))
        .ok_or_else(|| {
            ApiError::invalid_field(
                "invalid_idempotency_key",
                "Idempotency-Key",
                "must be 1 to 255 visible ASCII characters (a UUID is a good choice)",
            )
        })?;
    Ok(Some(IdempotencyClaim {
        scope: principal.key_id.clone(),
        key_hash: hex::encode(Sha256::digest(key.as_bytes())),
        at: now,
        expired_before: Timestamp::from_millis(now.millis() - WINDOW.as_millis() as i64),
    }))
}

/// Bond's answer to a reused key.
pub fn key_used() -> ApiError {
    ApiError::Conflict {
        code: "idempotency_key_exists",
        message: "A request was made with this idempotency key in the past 24 hours".into(),
    }
}
