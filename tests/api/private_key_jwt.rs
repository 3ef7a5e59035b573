//! `private_key_jwt` client authentication (RFC 7523): registration with a JWK set, tokens for
//! good assertions, and a refusal (audited) for every way an assertion can be wrong.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::pkcs8::EncodePrivateKey;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{spawn, spawn_with, Resp, TestApp};
use crate::oauth::{form, register};

const TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// An EC P-256 key: its public JWK (with `kid`) and the signing key.
fn ec_key(kid: &str) -> (Value, EncodingKey) {
    let sk = p256::SecretKey::random(&mut rand_core::OsRng);
    let mut jwk: Value = serde_json::from_str(&sk.public_key().to_jwk_string()).unwrap();
    jwk["kid"] = json!(kid);
    let der = sk.to_pkcs8_der().unwrap();
    (jwk, EncodingKey::from_ec_der(der.as_bytes()))
}

/// A 2048-bit RSA key for PS256.
fn rsa_key(kid: &str) -> (Value, EncodingKey) {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::traits::PublicKeyParts;
    let sk = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap();
    let b64 = |b: Vec<u8>| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let jwk = json!({"kty": "RSA", "kid": kid, "n": b64(sk.n().to_bytes_be()), "e": b64(sk.e().to_bytes_be())});
    let der = sk.to_pkcs1_der().unwrap();
    (jwk, EncodingKey::from_rsa_der(der.as_bytes()))
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&h, claims, key).unwrap()
}

/// The server's metadata, where a TPP reads the token endpoint (the assertion's `aud`).
async fn metadata(app: &TestApp) -> Value {
    app.get("/.well-known/oauth-authorization-server")
        .await
        .json()
}

fn claims(meta: &Value, client_id: &str, jti: &str) -> Value {
    json!({
        "iss": client_id, "sub": client_id, "aud": meta["token_endpoint"],
        "iat": now(), "exp": now() + 60, "jti": jti,
    })
}

async fn token(app: &TestApp, assertion: &str) -> Resp {
    form(
        app,
        "/oauth2/token",
        None,
        &format!("grant_type=client_credentials&scope=accounts&client_assertion_type={}&client_assertion={assertion}", urlencode(TYPE)),
    )
    .await
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn register_jwt_client(app: &TestApp, jwks: Value) -> String {
    let r = app
        .send(
            app.admin(Method::POST, "/api/v0/oauth-clients")
                .json(&json!({
                    "client_name": "Key Holder Ltd",
                    "token_endpoint_auth_method": "private_key_jwt",
                    "jwks": jwks,
                })),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    assert!(
        v.get("client_secret").is_none(),
        "no secret for a key-based client"
    );
    v["client_id"].as_str().unwrap().to_owned()
}

fn refused(r: &Resp, hint: &str) {
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.json()["error"], "invalid_client");
    let d = r.json()["error_description"].as_str().unwrap().to_owned();
    assert!(d.contains(hint), "{d:?} should mention {hint:?}");
}

#[tokio::test]
async fn a_key_holding_client_gets_tokens_and_every_bad_assertion_is_refused_and_audited() {
    // A dozen bad assertions in a row would trip the lockout (tests/api/limits.rs covers it);
    // here each must get its own refusal.
    let app = spawn_with(&[("OBGATE_OAUTH_LOCKOUT_AFTER", "0")]).await;
    let meta = metadata(&app).await;
    let (jwk, key) = ec_key("k1");
    let id = register_jwt_client(&app, json!({"keys": [jwk]})).await;

    let r = token(
        &app,
        &sign(
            Algorithm::ES256,
            Some("k1"),
            &key,
            &claims(&meta, &id, "j-1"),
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["token_type"], "Bearer");
    // The issuer is an accepted audience too, and no kid means "try my keys".
    let mut c = claims(&meta, &id, "j-2");
    c["aud"] = meta["issuer"].clone();
    let r = token(&app, &sign(Algorithm::ES256, None, &key, &c)).await;
    assert_eq!(r.status, 200, "{}", r.text());

    // A replayed assertion.
    let replay = sign(
        Algorithm::ES256,
        Some("k1"),
        &key,
        &claims(&meta, &id, "j-3"),
    );
    assert_eq!(token(&app, &replay).await.status, 200);
    refused(&token(&app, &replay).await, "already used");

    let bad = |f: &dyn Fn(&mut Value)| {
        let mut c = claims(&meta, &id, &uuid::Uuid::new_v4().to_string());
        f(&mut c);
        sign(Algorithm::ES256, Some("k1"), &key, &c)
    };
    refused(
        &token(
            &app,
            &bad(&|c| c["aud"] = json!("https://other.example/token")),
        )
        .await,
        "aud",
    );
    refused(
        &token(&app, &bad(&|c| c["exp"] = json!(now() + 600))).await,
        "exp",
    );
    refused(
        &token(&app, &bad(&|c| c["exp"] = json!(now() - 120))).await,
        "exp",
    );
    refused(
        &token(
            &app,
            &bad(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
        )
        .await,
        "exp",
    );
    refused(
        &token(&app, &bad(&|c| c["sub"] = json!("someone-else"))).await,
        "iss and sub",
    );
    refused(
        &token(
            &app,
            &bad(&|c| {
                c.as_object_mut().unwrap().remove("jti");
            }),
        )
        .await,
        "jti",
    );
    // Signed by a key the client never registered.
    let (_, stranger) = ec_key("k1");
    refused(
        &token(
            &app,
            &sign(
                Algorithm::ES256,
                Some("k1"),
                &stranger,
                &claims(&meta, &id, "j-4"),
            ),
        )
        .await,
        "signature",
    );
    // HS256 with a shared secret, and alg none.
    let hs = sign(
        Algorithm::HS256,
        Some("k1"),
        &EncodingKey::from_secret(b"k1"),
        &claims(&meta, &id, "j-5"),
    );
    refused(&token(&app, &hs).await, "ES256 or PS256");
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none"})),
        b64(&claims(&meta, &id, "j-6"))
    );
    refused(&token(&app, &none).await, "");

    // The wrong assertion type is a malformed request.
    let r = form(
        &app,
        "/oauth2/token",
        None,
        &format!(
            "grant_type=client_credentials&client_assertion_type=jwt&client_assertion={replay}"
        ),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], "invalid_request");

    let reasons: Vec<String> = app
        .audit("action=client.authenticate&outcome=denied")
        .await
        .iter()
        .map(|r| r["reason"].as_str().unwrap().to_owned())
        .collect();
    for reason in [
        "assertion_replayed",
        "assertion_audience",
        "assertion_lifetime",
        "assertion_subject",
        "assertion_jti_missing",
        "assertion_signature",
        "assertion_algorithm",
    ] {
        assert!(
            reasons.iter().any(|r| r == reason),
            "{reason} not audited: {reasons:?}"
        );
    }

    // Key rotation: after the client replaces its JWK set, only the new key works.
    let (jwk2, key2) = ec_key("k2");
    let r = app
        .send(
            app.admin(Method::PATCH, &format!("/api/v0/oauth-clients/{id}"))
                .json(&json!({"jwks": {"keys": [jwk2]}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    refused(
        &token(
            &app,
            &sign(
                Algorithm::ES256,
                Some("k1"),
                &key,
                &claims(&meta, &id, "j-7"),
            ),
        )
        .await,
        "",
    );
    let r = token(
        &app,
        &sign(
            Algorithm::ES256,
            Some("k2"),
            &key2,
            &claims(&meta, &id, "j-8"),
        ),
    )
    .await;
    assert_eq!(r.status, 200);

    // Disabled: refused at once.
    let r = app
        .send(app.admin(Method::DELETE, &format!("/api/v0/oauth-clients/{id}")))
        .await;
    assert_eq!(r.status, 204);
    refused(
        &token(
            &app,
            &sign(
                Algorithm::ES256,
                Some("k2"),
                &key2,
                &claims(&meta, &id, "j-9"),
            ),
        )
        .await,
        "",
    );
}

#[tokio::test]
async fn rsa_keys_sign_ps256_and_methods_cannot_be_mixed() {
    let app = spawn().await;
    let meta = metadata(&app).await;
    let (jwk, key) = rsa_key("rsa-1");
    let id = register_jwt_client(&app, json!({"keys": [jwk]})).await;
    let r = token(
        &app,
        &sign(
            Algorithm::PS256,
            Some("rsa-1"),
            &key,
            &claims(&meta, &id, "r-1"),
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // RS256 with the same key is not allowed.
    let r = token(
        &app,
        &sign(
            Algorithm::RS256,
            Some("rsa-1"),
            &key,
            &claims(&meta, &id, "r-2"),
        ),
    )
    .await;
    refused(&r, "ES256 or PS256");

    // A secret-based client cannot switch to assertions, nor the reverse.
    let (secret_id, secret) = register(&app, json!({"client_name": "Secret Co"})).await;
    let (jwk, key) = ec_key("k");
    let r = token(
        &app,
        &sign(
            Algorithm::ES256,
            Some("k"),
            &key,
            &claims(&meta, &secret_id, "s-1"),
        ),
    )
    .await;
    refused(&r, "");
    let r = form(
        &app,
        "/oauth2/token",
        Some((&id, &secret)),
        "grant_type=client_credentials",
    )
    .await;
    assert_eq!(r.status, 401);

    // Registration rules.
    let post = |body: Value| app.admin(Method::POST, "/api/v0/oauth-clients").json(&body);
    let r = app
        .send(post(
            json!({"client_name": "x", "token_endpoint_auth_method": "private_key_jwt"}),
        ))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["Message"]["jwks"],
        json!(["Missing data for required field."])
    );
    let mut private = jwk.clone();
    private["d"] = json!("AAAA");
    let r = app
        .send(post(json!({"client_name": "x", "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [private]}})))
        .await;
    assert_eq!(r.status, 400);
    let r = app
        .send(post(json!({"client_name": "x", "jwks": {"keys": [jwk]}})))
        .await;
    assert_eq!(r.status, 400, "jwks only with private_key_jwt");
    let r = app
        .send(app.admin(
            Method::POST,
            &format!("/api/v0/oauth-clients/{id}/rotate-secret"),
        ))
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(r.json()["code"], "client_has_no_secret");
}
