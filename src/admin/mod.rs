//! Admin API keys: the credential of the bank's back office on `/api/v0/*`.
//!
//! A key is `obg_` + 43 characters of base64url (256 random bits). It is shown once, when it is
//! created; only its SHA-256 is stored. Because the key is high-entropy, a fast hash is as safe
//! as a slow one and lets each request find its key through a unique index. A revoked key is
//! refused on the next request on every node (there is no cache to wait for).

pub mod auth;
mod routes;

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::audit::{Actor, ActorType};
use crate::clock::Clock;
use crate::error::{ApiError, FieldError};
use crate::store::{AdminKey, NewAdminKey, Store, StoreError};

pub use auth::AdminPrincipal;
pub use routes::routes;

/// A freshly created key: the stored record and the secret, which is never shown again.
#[derive(Debug)]
pub struct CreatedKey {
    /// What was stored.
    pub record: AdminKey,
    /// The full key; print it once.
    pub secret: secrecy::SecretString,
}

fn random_b64(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// Hex SHA-256 of a presented key, the form stored and looked up.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Checks a key name: 1–64 characters of letters, digits, space, `.`, `_` or `-`, not starting
/// or ending with a space (the spec's pattern says the same).
pub fn validate_name(name: &str) -> Result<String, FieldError> {
    if name.is_empty() || name.chars().count() > 64 {
        return Err(FieldError::invalid("name", "must be 1 to 64 characters"));
    }
    if name.starts_with(' ') || name.ends_with(' ') {
        return Err(FieldError::invalid(
            "name",
            "must not start or end with a space",
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '.' | '_' | '-'))
    {
        return Err(FieldError::invalid(
            "name",
            "may contain only letters, digits, spaces, '.', '_' and '-'",
        ));
    }
    Ok(name.to_owned())
}

/// Creates and stores a key, auditing it in the same transaction.
pub async fn create_key(
    store: &dyn Store,
    clock: &dyn Clock,
    name: &str,
    actor: &Actor,
) -> Result<CreatedKey, ApiError> {
    let name = validate_name(name).map_err(|f| ApiError::Validation {
        code: "invalid_admin_key",
        fields: vec![f],
    })?;
    let secret = format!("obg_{}", random_b64(32));
    let id = format!("ak_{}", random_b64(12));
    let now = clock.now();
    let new = NewAdminKey {
        id: id.clone(),
        name: name.clone(),
        prefix: secret.chars().take(10).collect(),
        key_hash: hash_key(&secret),
        created_at: now,
    };
    let audit = actor.event(now, "admin_key.create").on("admin_key", id);
    let record = store
        .insert_admin_key(&new, &audit)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => ApiError::Conflict {
                code: "admin_key_name_exists",
                message: format!(
                    "an active admin key is already named \"{name}\"; revoke it or pick another name"
                ),
            },
            other => other.into(),
        })?;
    Ok(CreatedKey {
        record,
        secret: secrecy::SecretString::from(secret),
    })
}

/// Revokes a key; `NotFound` when there is none with that id.
pub async fn revoke_key(
    store: &dyn Store,
    clock: &dyn Clock,
    id: &str,
    actor: &Actor,
) -> Result<AdminKey, ApiError> {
    let now = clock.now();
    let audit = actor.event(now, "admin_key.revoke").on("admin_key", id);
    store
        .revoke_admin_key(id, now, &audit)
        .await?
        .ok_or_else(|| ApiError::NotFound {
            message: format!("no admin key with id {id}"),
        })
}

/// In sandbox mode, creates the demo key on the first start (when no key exists at all).
pub async fn ensure_demo_key(
    store: &dyn Store,
    clock: &dyn Clock,
) -> Result<Option<CreatedKey>, ApiError> {
    if !store.list_admin_keys().await?.is_empty() {
        return Ok(None);
    }
    let actor = Actor {
        kind: ActorType::System,
        id: "sandbox".into(),
        interaction_id: None,
    };
    match create_key(store, clock, "sandbox-demo", &actor).await {
        Ok(k) => Ok(Some(k)),
        // Another node created it at the same moment.
        Err(ApiError::Conflict { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}
