//! Arbitrary bytes as a bearer token: the header parse, the `Authorization` header read and
//! the full verification (signature, alg/kid match, typ, iss, aud, times) must never panic,
//! and nothing that is not signed by the key may verify.
#![no_main]

use jsonwebtoken::{Algorithm, DecodingKey};
use libfuzzer_sys::fuzz_target;
use obgate::clock::Timestamp;
use obgate::oauth::jwt::{inspect, verify_with_key, Expected};

/// A public key whose private half is nowhere: no input can carry a valid signature.
const PUBLIC_KEY: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEU3RmbQw9siImDENPt/RrKkNsW8dm
I80jk7hSGekHJawRFedptZkJqml2kdazTeOfJhrigDZFnPw8ycA4pdhhvw==
-----END PUBLIC KEY-----";

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = axum::http::HeaderValue::from_bytes(data) {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(axum::http::header::AUTHORIZATION, value);
        let _ = obgate::gateway::authenticate::bearer_header(&headers);
    }
    let token = String::from_utf8_lossy(data);
    let Ok((_kid, alg)) = inspect(&token) else {
        return;
    };
    let Ok(key) = DecodingKey::from_ec_pem(PUBLIC_KEY.as_bytes()) else {
        return;
    };
    let expected = Expected {
        issuer: "https://bank.example",
        audience: "https://bank.example",
    };
    let verified = verify_with_key(
        &token,
        alg,
        Some(&(Algorithm::ES256, key)),
        &expected,
        Timestamp::from_millis(1_790_000_000_000),
    );
    assert!(
        verified.is_err(),
        "a token verified without the private key"
    );
});
