//! RFC 9068 access tokens: what they carry, how they are signed, how they are verified.
//!
//! Verification is what the gateway calls on every request, so it is strict and cheap:
//! the header must say `typ: at+jwt` (jsonwebtoken does not check `typ`), name a published
//! `kid`, and use exactly that key's algorithm (never `none`, never HS*, so a token "signed"
//! with the public key as an HMAC secret is refused before any crypto); then the signature,
//! `iss`, `aud`, and `exp`/`nbf` against obgate's clock with [`LEEWAY`]. Revocation (the `jti`
//! deny list) is a separate, storage-backed step.

use std::collections::HashSet;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::keys::KeySet;
use crate::clock::Timestamp;

/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY: Duration = Duration::from_secs(30);

/// The claims of an access token (RFC 9068 §2.2 plus obgate's `consent_id`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer: the configured public URL.
    pub iss: String,
    /// The customer for customer-bound tokens, the client otherwise.
    pub sub: String,
    /// Audience: `oauth.audience`.
    pub aud: String,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Not before (Unix seconds).
    pub nbf: i64,
    /// Unique id, the handle for revocation.
    pub jti: String,
    /// The OAuth client.
    pub client_id: String,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// The consent a customer-bound token acts under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent_id: Option<String>,
}

/// Why a token was refused. The `Display` text is safe to log (no token content).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a JWS, or an algorithm obgate does not know (`none` included).
    #[error("token is malformed")]
    Malformed,
    /// `typ` is not `at+jwt`.
    #[error("token is not an access token (typ must be at+jwt)")]
    WrongType,
    /// No `kid`, or a key obgate never published or has dropped.
    #[error("token is signed with an unknown key")]
    UnknownKey,
    /// The header's `alg` is not the algorithm of the key named by `kid`.
    #[error("token algorithm does not match its key")]
    AlgorithmMismatch,
    /// The signature does not verify (tampered or forged).
    #[error("token signature is invalid")]
    BadSignature,
    /// Past `exp`.
    #[error("token has expired")]
    Expired,
    /// Before `nbf`/`iat`.
    #[error("token is not valid yet")]
    NotYetValid,
    /// `iss` is not this server.
    #[error("token was issued by another server")]
    WrongIssuer,
    /// `aud` is not this API.
    #[error("token is for another audience")]
    WrongAudience,
    /// The `jti` is on the deny list.
    #[error("token has been revoked")]
    Revoked,
    /// The keys or the deny list cannot be read now (the database is away): not a verdict on
    /// the token, so callers answer 503, never 401.
    #[error("token cannot be checked now")]
    Unavailable,
}

/// What a valid token must say.
#[derive(Clone, Debug)]
pub struct Expected<'a> {
    /// `iss`.
    pub issuer: &'a str,
    /// `aud`.
    pub audience: &'a str,
}

/// Signs claims with the active key.
pub fn sign(set: &KeySet, claims: &AccessClaims) -> Result<String, jsonwebtoken::errors::Error> {
    let mut header = Header::new(set.active.alg);
    header.typ = Some("at+jwt".into());
    header.kid = Some(set.active.kid.clone());
    match &set.active.es256 {
        Some(key) => sign_es256(key, &header, claims),
        None => jsonwebtoken::encode(&header, claims, &set.active.encoding),
    }
}

/// The JWS compact serialisation jsonwebtoken writes (RFC 7515 §7.1: base64url of the
/// header's and the claims' JSON, and of the 64-byte r‖s signature), signed with a key parsed
/// once (see `ActiveKey::es256`). A test holds it to jsonwebtoken's own output.
fn sign_es256(
    key: &ring::signature::EcdsaKeyPair,
    header: &Header,
    claims: &AccessClaims,
) -> Result<String, jsonwebtoken::errors::Error> {
    use base64::Engine;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let message = format!(
        "{}.{}",
        b64(&serde_json::to_vec(header)?),
        b64(&serde_json::to_vec(claims)?)
    );
    // ECDSA_P256_SHA256_FIXED_SIGNING: the 64-byte r‖s form JWS wants (RFC 7518 §3.4), with
    // a fresh random nonce per signature.
    let signature = key
        .sign(&ring::rand::SystemRandom::new(), message.as_bytes())
        .map_err(|_| jsonwebtoken::errors::ErrorKind::InvalidEcdsaKey)?;
    Ok(format!("{message}.{}", b64(signature.as_ref())))
}

/// The header fields verification needs, checked for type; the caller then looks up the key.
pub fn inspect(token: &str) -> Result<(String, Algorithm), TokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
    let typ_ok = header.typ.as_deref().is_some_and(|t| {
        t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")
    });
    if !typ_ok {
        return Err(TokenError::WrongType);
    }
    let kid = header.kid.ok_or(TokenError::UnknownKey)?;
    Ok((kid, header.alg))
}

/// Checks signature, `iss` and `aud` of a token whose header [`inspect`] accepted, against
/// the key its `kid` names; not the time (revocation accepts expired tokens).
pub fn verify_ignoring_time(
    token: &str,
    header_alg: Algorithm,
    key: Option<&(Algorithm, DecodingKey)>,
    expected: &Expected<'_>,
) -> Result<AccessClaims, TokenError> {
    let (alg, key) = key.ok_or(TokenError::UnknownKey)?;
    if header_alg != *alg {
        return Err(TokenError::AlgorithmMismatch);
    }
    let mut v = Validation::new(*alg);
    // Time, issuer and audience are checked here against obgate's own clock and config.
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.required_spec_claims = HashSet::new();
    let data =
        jsonwebtoken::decode::<AccessClaims>(token, key, &v).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => TokenError::BadSignature,
            _ => TokenError::Malformed,
        })?;
    let c = data.claims;
    if c.iss != expected.issuer {
        return Err(TokenError::WrongIssuer);
    }
    if c.aud != expected.audience {
        return Err(TokenError::WrongAudience);
    }
    Ok(c)
}

/// Verifies a token whose header [`inspect`] accepted: [`verify_ignoring_time`], then
/// `exp` and `nbf`/`iat` against `now` with [`LEEWAY`].
pub fn verify_with_key(
    token: &str,
    header_alg: Algorithm,
    key: Option<&(Algorithm, DecodingKey)>,
    expected: &Expected<'_>,
    now: Timestamp,
) -> Result<AccessClaims, TokenError> {
    let c = verify_ignoring_time(token, header_alg, key, expected)?;
    check_times(&c, now)?;
    Ok(c)
}

/// `exp` and `nbf`/`iat` against `now` with [`LEEWAY`]: the part of verification that
/// changes with time, so a cached verification repeats it on every use.
pub fn check_times(c: &AccessClaims, now: Timestamp) -> Result<(), TokenError> {
    let now_s = now.millis() / 1000;
    let leeway = LEEWAY.as_secs() as i64;
    if c.exp + leeway <= now_s {
        return Err(TokenError::Expired);
    }
    if c.nbf.max(c.iat) - leeway > now_s {
        return Err(TokenError::NotYetValid);
    }
    Ok(())
}

/// Verifies an access token against this node's published keys (reloading them once if the
/// `kid` is new: another node may have rotated). Does not consult the revocation list.
pub async fn verify(
    keys: &super::keys::Keys,
    token: &str,
    expected: &Expected<'_>,
    now: Timestamp,
) -> Result<AccessClaims, TokenError> {
    let (kid, alg) = inspect(token)?;
    let key = keys
        .verifier(&kid)
        .await
        .map_err(|_| TokenError::Unavailable)?;
    verify_with_key(token, alg, key.as_ref(), expected, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{EncryptionKey, SigningAlg};
    use crate::oauth::keys::{decoding_key, generate};
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use base64::Engine;
    use jsonwebtoken::EncodingKey;

    const NOW: i64 = 1_800_000_000;
    const ISS: &str = "https://bank.example";

    struct Fixture {
        kid: String,
        alg: Algorithm,
        encoding: EncodingKey,
        verifier: (Algorithm, DecodingKey),
        public_jwk: String,
    }

    fn fixture(alg: SigningAlg) -> Fixture {
        let kek = EncryptionKey::new([3; 32], false);
        let row = generate(alg, "active", Timestamp::from_millis(0), &kek).unwrap();
        let der = crate::crypto::open(&kek, row.kid.as_bytes(), &row.private_key).unwrap();
        fixture_from(row, &der)
    }

    fn fixture_from(row: crate::store::SigningKeyRow, der: &[u8]) -> Fixture {
        let verifier = decoding_key(&row).unwrap();
        let encoding = match verifier.0 {
            Algorithm::ES256 => EncodingKey::from_ec_der(der),
            _ => EncodingKey::from_rsa_der(der),
        };
        Fixture {
            kid: row.kid,
            alg: verifier.0,
            encoding,
            verifier,
            public_jwk: row.public_jwk,
        }
    }

    fn claims() -> AccessClaims {
        AccessClaims {
            iss: ISS.into(),
            sub: "client-1".into(),
            aud: ISS.into(),
            exp: NOW + 300,
            iat: NOW,
            nbf: NOW,
            jti: "jti-1".into(),
            client_id: "client-1".into(),
            scope: "accounts".into(),
            consent_id: None,
        }
    }

    fn token(f: &Fixture, typ: &str, c: &AccessClaims) -> String {
        let mut h = Header::new(f.alg);
        h.typ = Some(typ.into());
        h.kid = Some(f.kid.clone());
        jsonwebtoken::encode(&h, c, &f.encoding).unwrap()
    }

    fn check(f: &Fixture, token: &str, at: i64) -> Result<AccessClaims, TokenError> {
        let (kid, alg) = inspect(token)?;
        let key = (kid == f.kid).then_some(&f.verifier);
        let expected = Expected {
            issuer: ISS,
            audience: ISS,
        };
        verify_with_key(
            token,
            alg,
            key,
            &expected,
            Timestamp::from_millis(at * 1000),
        )
    }

    #[test]
    fn es256_signing_with_the_kept_key_writes_what_jsonwebtoken_writes() {
        let kek = EncryptionKey::new([3; 32], false);
        let row = generate(SigningAlg::Es256, "active", Timestamp::from_millis(0), &kek).unwrap();
        let der = crate::crypto::open(&kek, row.kid.as_bytes(), &row.private_key).unwrap();
        let key = crate::oauth::keys::es256_key_pair(&der).unwrap();
        let f = fixture_from(row, &der);
        let mut h = Header::new(Algorithm::ES256);
        h.typ = Some("at+jwt".into());
        h.kid = Some(f.kid.clone());
        let ours = sign_es256(&key, &h, &claims()).unwrap();
        let theirs = jsonwebtoken::encode(&h, &claims(), &f.encoding).unwrap();
        let signed = |t: &str| t.rsplit_once('.').unwrap().0.to_owned();
        assert_eq!(
            signed(&ours),
            signed(&theirs),
            "same header and claims, byte for byte"
        );
        assert_eq!(
            B64.decode(ours.rsplit_once('.').unwrap().1).unwrap().len(),
            64,
            "r‖s"
        );
        assert_eq!(
            check(&f, &ours, NOW),
            Ok(claims()),
            "verifies with the published key"
        );
        // A signature over other claims does not carry over.
        let mut other = claims();
        other.sub = "someone-else".into();
        let forged = format!(
            "{}.{}",
            signed(&sign_es256(&key, &h, &other).unwrap()),
            ours.rsplit_once('.').unwrap().1
        );
        assert_eq!(check(&f, &forged, NOW), Err(TokenError::BadSignature));
    }

    #[test]
    fn a_well_formed_token_verifies_with_es256_and_ps256() {
        for alg in [SigningAlg::Es256, SigningAlg::Ps256] {
            let f = fixture(alg);
            let t = token(&f, "at+jwt", &claims());
            assert_eq!(check(&f, &t, NOW), Ok(claims()), "{alg:?}");
            let t = token(&f, "application/at+jwt", &claims());
            assert!(check(&f, &t, NOW).is_ok());
        }
    }

    #[test]
    fn alg_none_is_refused() {
        let f = fixture(SigningAlg::Es256);
        let header = B64.encode(format!(
            r#"{{"alg":"none","typ":"at+jwt","kid":"{}"}}"#,
            f.kid
        ));
        let payload = B64.encode(serde_json::to_vec(&claims()).unwrap());
        assert_eq!(
            check(&f, &format!("{header}.{payload}."), NOW),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn hs256_signed_with_the_public_key_is_refused() {
        let f = fixture(SigningAlg::Es256);
        let mut h = Header::new(Algorithm::HS256);
        h.typ = Some("at+jwt".into());
        h.kid = Some(f.kid.clone());
        let forged = jsonwebtoken::encode(
            &h,
            &claims(),
            &EncodingKey::from_secret(f.public_jwk.as_bytes()),
        )
        .unwrap();
        assert_eq!(check(&f, &forged, NOW), Err(TokenError::AlgorithmMismatch));
    }

    #[test]
    fn unknown_kid_and_missing_kid_are_refused() {
        let f = fixture(SigningAlg::Es256);
        let other = fixture(SigningAlg::Es256);
        assert_eq!(
            check(&f, &token(&other, "at+jwt", &claims()), NOW),
            Err(TokenError::UnknownKey)
        );
        let mut h = Header::new(f.alg);
        h.typ = Some("at+jwt".into());
        let no_kid = jsonwebtoken::encode(&h, &claims(), &f.encoding).unwrap();
        assert_eq!(check(&f, &no_kid, NOW), Err(TokenError::UnknownKey));
    }

    #[test]
    fn wrong_typ_is_refused() {
        let f = fixture(SigningAlg::Es256);
        assert_eq!(
            check(&f, &token(&f, "JWT", &claims()), NOW),
            Err(TokenError::WrongType)
        );
        let mut h = Header::new(f.alg);
        h.typ = None;
        h.kid = Some(f.kid.clone());
        let untyped = jsonwebtoken::encode(&h, &claims(), &f.encoding).unwrap();
        assert_eq!(check(&f, &untyped, NOW), Err(TokenError::WrongType));
    }

    #[test]
    fn expiry_and_not_before_use_obgates_clock_with_leeway() {
        let f = fixture(SigningAlg::Es256);
        let t = token(&f, "at+jwt", &claims());
        assert!(check(&f, &t, NOW + 300 + 29).is_ok(), "inside the leeway");
        assert_eq!(check(&f, &t, NOW + 300 + 30), Err(TokenError::Expired));
        let future = AccessClaims {
            nbf: NOW + 120,
            ..claims()
        };
        assert_eq!(
            check(&f, &token(&f, "at+jwt", &future), NOW),
            Err(TokenError::NotYetValid)
        );
    }

    #[test]
    fn wrong_issuer_and_audience_are_refused() {
        let f = fixture(SigningAlg::Es256);
        let c = AccessClaims {
            iss: "https://evil.example".into(),
            ..claims()
        };
        assert_eq!(
            check(&f, &token(&f, "at+jwt", &c), NOW),
            Err(TokenError::WrongIssuer)
        );
        let c = AccessClaims {
            aud: "https://other-api.example".into(),
            ..claims()
        };
        assert_eq!(
            check(&f, &token(&f, "at+jwt", &c), NOW),
            Err(TokenError::WrongAudience)
        );
    }

    #[test]
    fn a_tampered_payload_is_refused() {
        let f = fixture(SigningAlg::Es256);
        let t = token(&f, "at+jwt", &claims());
        let parts: Vec<&str> = t.split('.').collect();
        let evil = AccessClaims {
            scope: "accounts payments".into(),
            ..claims()
        };
        let payload = B64.encode(serde_json::to_vec(&evil).unwrap());
        let tampered = format!("{}.{payload}.{}", parts[0], parts[2]);
        assert_eq!(check(&f, &tampered, NOW), Err(TokenError::BadSignature));
        assert_eq!(check(&f, "not.a.jwt", NOW), Err(TokenError::Malformed));
    }
}
