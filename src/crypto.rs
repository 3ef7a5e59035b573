//! Authenticated encryption of secrets at rest (AES-256-GCM).
//!
//! A sealed blob is `nonce (12 bytes) ‖ ciphertext ‖ tag`. The associated data binds a blob to
//! the row it belongs to (a key id, a customer id), so a blob copied onto another row fails to
//! open instead of decrypting into the wrong place.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};

use crate::config::EncryptionKey;

/// A blob did not open: wrong key, wrong row, or tampered.
#[derive(Debug, thiserror::Error)]
#[error("cannot decrypt: wrong key, wrong record, or tampered data")]
pub struct OpenError;

/// Encrypts `plaintext` under `key`, bound to `aad`.
pub fn seal(key: &EncryptionKey, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let cipher = Aes256Gcm::new(key.expose().into());
    let nonce = Aes256Gcm::generate_nonce(&mut rand_core::OsRng);
    // Encryption only fails for inputs larger than 64 GiB.
    let ct = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .unwrap_or_default();
    let mut out = nonce.to_vec();
    out.extend(ct);
    out
}

/// Decrypts a blob made by [`seal`] with the same key and `aad`.
pub fn open(key: &EncryptionKey, aad: &[u8], blob: &[u8]) -> Result<Vec<u8>, OpenError> {
    if blob.len() < 12 + 16 {
        return Err(OpenError);
    }
    let (nonce, ct) = blob.split_at(12);
    let cipher = Aes256Gcm::new(key.expose().into());
    cipher
        .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
        .map_err(|_| OpenError)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_blobs_open_only_with_the_same_key_and_record() {
        let key = EncryptionKey::new([1; 32], false);
        let blob = seal(&key, b"kid-1", b"private key");
        assert_eq!(
            open(&key, b"kid-1", &blob).ok(),
            Some(b"private key".to_vec())
        );
        assert!(open(&key, b"kid-2", &blob).is_err(), "bound to its record");
        assert!(open(&EncryptionKey::new([2; 32], false), b"kid-1", &blob).is_err());
        let mut tampered = blob.clone();
        tampered[20] ^= 1;
        assert!(open(&key, b"kid-1", &tampered).is_err());
        assert_ne!(
            seal(&key, b"kid-1", b"private key"),
            blob,
            "fresh nonce each time"
        );
    }
}
