//! PII at rest: per-customer data keys, sealed JSON, the SSN hash, and masking.
//!
//! Each customer gets a random 256-bit data key, sealed under `pii.key` and bound to the
//! customer id. The customer's PII is sealed under the data key (AES-256-GCM, fresh nonce on
//! every write, the customer id as associated data). Erasing a customer destroys the data key,
//! so every sealed copy, including those in backups, becomes unreadable.

use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::config::EncryptionKey;
use crate::crypto;
use crate::error::ApiError;

/// A fresh data key for `customer_id`: the key and its sealed form to store.
pub fn new_data_key(pii_key: &EncryptionKey, customer_id: &str) -> (EncryptionKey, Vec<u8>) {
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    let sealed = crypto::seal(pii_key, &aad("dek", customer_id), &raw);
    (EncryptionKey::new(raw, false), sealed)
}

/// Opens a stored data key.
pub fn open_data_key(
    pii_key: &EncryptionKey,
    customer_id: &str,
    sealed: &[u8],
) -> Result<EncryptionKey, ApiError> {
    let raw = crypto::open(pii_key, &aad("dek", customer_id), sealed)
        .map_err(|e| ApiError::internal(format!("customer data key: {e}")))?;
    let raw: [u8; 32] = raw
        .try_into()
        .map_err(|_| ApiError::internal("customer data key has the wrong length"))?;
    Ok(EncryptionKey::new(raw, false))
}

fn aad(kind: &str, customer_id: &str) -> Vec<u8> {
    format!("{kind}:{customer_id}").into_bytes()
}

/// Seals a value as JSON under a data key, bound to the customer and the column.
pub fn seal_json<T: Serialize>(
    key: &EncryptionKey,
    column: &str,
    customer_id: &str,
    value: &T,
) -> Result<Vec<u8>, ApiError> {
    let json = serde_json::to_vec(value).map_err(ApiError::internal)?;
    Ok(crypto::seal(key, &aad(column, customer_id), &json))
}

/// Opens a value sealed by [`seal_json`].
pub fn open_json<T: DeserializeOwned>(
    key: &EncryptionKey,
    column: &str,
    customer_id: &str,
    blob: &[u8],
) -> Result<T, ApiError> {
    let json = crypto::open(key, &aad(column, customer_id), blob)
        .map_err(|e| ApiError::internal(format!("customer {column}: {e}")))?;
    serde_json::from_slice(&json).map_err(ApiError::internal)
}

/// Seals raw bytes (a document) under a data key.
pub fn seal_bytes(key: &EncryptionKey, column: &str, customer_id: &str, bytes: &[u8]) -> Vec<u8> {
    crypto::seal(key, &aad(column, customer_id), bytes)
}

/// The keyed hash of a normalised SSN (digits only): equal SSNs give equal hashes, and
/// without `pii.key` the hash reveals nothing (SSNs are too few for a plain hash).
pub fn ssn_hmac(pii_key: &EncryptionKey, ssn_digits: &str) -> Result<String, ApiError> {
    keyed_hash(pii_key, "ssn", ssn_digits)
}

/// A keyed HMAC-SHA256 (hex) of `value` under `pii.key`, separated by `domain`: lets obgate
/// match a value it must not keep in the clear (an SSN, a counterparty's id).
pub fn keyed_hash(pii_key: &EncryptionKey, domain: &str, value: &str) -> Result<String, ApiError> {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(pii_key.expose()).map_err(ApiError::internal)?;
    mac.update(format!("obgate/{domain}/v1:").as_bytes());
    mac.update(value.as_bytes());
    Ok(hex::encode(mac.finalize().into_bytes()))
}

/// What verification-kyc collects, sealed in `customers.contact`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Contact {
    /// SSN, digits only.
    pub ssn: String,
    /// National number.
    pub phone: String,
    /// Country calling code, digits.
    pub phone_country_code: String,
    /// Email address.
    pub email: String,
    /// The customer's IP address.
    pub ip: String,
}

/// `***-**-6789`.
pub fn mask_ssn(digits: &str) -> String {
    let last: String = digits
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("***-**-{last}")
}

/// `+44 ******7890`.
pub fn mask_phone(country_code: &str, phone: &str) -> String {
    let n = phone.chars().count();
    let last: String = phone.chars().skip(n.saturating_sub(4)).collect();
    format!("+{country_code} {}{last}", "*".repeat(n.saturating_sub(4)))
}

/// `j***@example.com`.
pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".to_owned(),
    }
}

/// `****-**-15`: the day only, enough to tell records apart on a call.
pub fn mask_dob(dob: &str) -> String {
    let day: String = dob.chars().skip(8).collect();
    format!("****-**-{day}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_show_only_the_tail() {
        assert_eq!(mask_ssn("123456789"), "***-**-6789");
        assert_eq!(mask_phone("44", "7700900123"), "+44 ******0123");
        assert_eq!(mask_email("jane.doe@example.com"), "j***@example.com");
        assert_eq!(mask_dob("1990-04-15"), "****-**-15");
    }

    #[test]
    fn data_keys_are_bound_to_their_customer() {
        let pii = EncryptionKey::new([7; 32], false);
        let (key, sealed) = new_data_key(&pii, "cus_1");
        assert!(open_data_key(&pii, "cus_1", &sealed).is_ok());
        assert!(open_data_key(&pii, "cus_2", &sealed).is_err());
        let blob = seal_json(&key, "profile", "cus_1", &"Jane").unwrap();
        assert!(open_json::<String>(&key, "contact", "cus_1", &blob).is_err());
        assert_eq!(
            open_json::<String>(&key, "profile", "cus_1", &blob).unwrap(),
            "Jane"
        );
    }

    #[test]
    fn ssn_hash_is_keyed_and_stable() {
        let a = EncryptionKey::new([1; 32], false);
        let b = EncryptionKey::new([2; 32], false);
        let h = |k, s| ssn_hmac(k, s).unwrap();
        assert_eq!(h(&a, "123456789"), h(&a, "123456789"));
        assert_ne!(h(&a, "123456789"), h(&b, "123456789"));
        assert!(!h(&a, "123456789").contains("6789"));
    }
}
