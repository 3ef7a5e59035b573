//! Signing keys: the JWKS, rotation, verification across a rotation, retirement.

use std::sync::Arc;
use std::time::Duration;

use obgate::audit::ActorType;
use obgate::clock::{Clock, ManualClock, Timestamp};
use obgate::oauth::jwt::{self, AccessClaims, Expected, TokenError};

use crate::helpers::{config, spawn, spawn_with_clock, TestApp, TestDb};

async fn mint(app: &TestApp, now: Timestamp) -> String {
    let set = app.keys.current().await.unwrap();
    let s = now.millis() / 1000;
    let claims = AccessClaims {
        iss: app.base.clone(),
        sub: "client-1".into(),
        aud: app.base.clone(),
        exp: s + 300,
        iat: s,
        nbf: s,
        jti: uuid::Uuid::new_v4().to_string(),
        client_id: "client-1".into(),
        scope: "accounts".into(),
        consent_id: None,
    };
    jwt::sign(&set, &claims).unwrap()
}

async fn verify(app: &TestApp, token: &str) -> Result<AccessClaims, TokenError> {
    let expected = Expected {
        issuer: &app.base,
        audience: &app.base,
    };
    jwt::verify(&app.keys, token, &expected, app.clock.now()).await
}

fn kids(jwks: &serde_json::Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn first_start_publishes_an_active_and_a_next_key_without_private_parts() {
    let app = spawn().await;
    let r = app.get("/oauth2/jwks").await;
    assert_eq!(r.status, 200);
    let jwks = r.json();
    assert_eq!(kids(&jwks).len(), 2);
    for k in jwks["keys"].as_array().unwrap() {
        assert_eq!(
            (k["kty"].as_str(), k["alg"].as_str(), k["crv"].as_str()),
            (Some("EC"), Some("ES256"), Some("P-256"))
        );
        assert!(k.get("d").is_none(), "private key material published: {k}");
    }
    // Private keys are sealed at rest: they open with the key-encryption key, and the stored
    // bytes do not contain the plaintext key.
    let kek = obgate::config::EncryptionKey::new(obgate::config::EncryptionKey::DEV_KEK, true);
    for row in app.store.list_signing_keys().await.unwrap() {
        let der = obgate::crypto::open(&kek, row.kid.as_bytes(), &row.private_key).unwrap();
        assert!(der.len() > 32);
        assert!(!row
            .private_key
            .windows(der.len())
            .any(|w| w == der.as_slice()));
    }
    let audit = app.audit("action=signing_key.create").await;
    assert_eq!(audit.len(), 1);
}

#[tokio::test]
async fn rotation_keeps_old_tokens_valid_until_the_old_key_is_retired_long_enough() {
    let db = TestDb::new().await;
    let cfg = config(
        &db,
        &[
            ("OBGATE_OAUTH_ACCESS_TOKEN_TTL", "300s"),
            ("OBGATE_OAUTH_KEY_ROTATION", "off"),
        ],
    );
    let clock = Arc::new(ManualClock::new(
        Timestamp::parse_rfc3339("2026-11-22T10:00:00Z").unwrap(),
    ));
    let app = spawn_with_clock(db, cfg, clock.clone()).await;

    let before = app.keys.current().await.unwrap().active.kid.clone();
    let old_token = mint(&app, clock.now()).await;
    let jwks_before = kids(&app.get("/oauth2/jwks").await.json());

    assert!(app.keys.rotate(ActorType::Cli, "tester").await.unwrap());
    let after = app.keys.current().await.unwrap().active.kid.clone();
    assert_ne!(before, after);
    assert!(
        jwks_before.contains(&after),
        "the new active key was already published as next"
    );
    let jwks = kids(&app.get("/oauth2/jwks").await.json());
    assert_eq!(jwks.len(), 3, "retired + active + new next");
    assert!(jwks.contains(&before) && jwks.contains(&after));

    // A token from the previous key still verifies; new tokens use the new key.
    assert_eq!(verify(&app, &old_token).await.unwrap().sub, "client-1");
    let new_token = mint(&app, clock.now()).await;
    assert_eq!(jwt::inspect(&new_token).unwrap().0, after);

    // Past the longest token lifetime (+ slack) the retired key leaves the JWKS and its
    // tokens are refused (they have expired anyway).
    clock.advance(Duration::from_secs(300 + 61));
    app.keys.load().await.unwrap();
    let jwks = kids(&app.get("/oauth2/jwks").await.json());
    assert!(
        !jwks.contains(&before),
        "retired key still published: {jwks:?}"
    );
    assert_eq!(jwks.len(), 2);
    assert_eq!(
        verify(&app, &old_token).await.unwrap_err(),
        TokenError::UnknownKey
    );

    let audit = app.audit("action=signing_key.rotate").await;
    assert_eq!(
        (audit.len(), audit[0]["actor_id"].as_str()),
        (1, Some("tester"))
    );
}

#[tokio::test]
async fn rotation_happens_automatically_when_the_period_has_passed() {
    let db = TestDb::new().await;
    let cfg = config(&db, &[("OBGATE_OAUTH_KEY_ROTATION", "1h")]);
    let clock = Arc::new(ManualClock::new(
        Timestamp::parse_rfc3339("2026-11-22T10:00:00Z").unwrap(),
    ));
    let app = spawn_with_clock(db, cfg, clock.clone()).await;
    let first = app.keys.current().await.unwrap().active.kid.clone();
    clock.advance(Duration::from_secs(1800));
    assert_eq!(app.keys.current().await.unwrap().active.kid, first);
    clock.advance(Duration::from_secs(1801));
    // The in-memory set expires after 30 s; the next look rotates.
    let second = app.keys.current().await.unwrap().active.kid.clone();
    assert_ne!(second, first);
    let audit = app
        .audit("action=signing_key.rotate&actor_type=system")
        .await;
    assert_eq!(audit.len(), 1);
}

#[tokio::test]
async fn concurrent_rotations_rotate_once() {
    let app = spawn().await;
    let before = app.store.list_signing_keys().await.unwrap().len();
    let (a, b) = tokio::join!(
        app.keys.rotate(ActorType::Cli, "a"),
        app.keys.rotate(ActorType::Cli, "b")
    );
    let rotated = [a.unwrap(), b.unwrap()];
    let rows = app.store.list_signing_keys().await.unwrap();
    let active = rows.iter().filter(|r| r.state == "active").count();
    let next = rows.iter().filter(|r| r.state == "next").count();
    assert_eq!((active, next), (1, 1));
    assert_eq!(rows.len() - before, rotated.iter().filter(|r| **r).count());
}

#[tokio::test]
async fn a_wrong_key_encryption_key_is_refused_at_start_naming_the_setting() {
    let db = TestDb::new().await;
    let app = spawn_with_clock(
        TestDb::new().await,
        config(&db, &[]),
        Arc::new(obgate::clock::SystemClock),
    )
    .await;
    drop(app);
    let other = base64_key([42; 32]);
    let cfg = config(&db, &[("OBGATE_OAUTH_KEY_ENCRYPTION_KEY", &other)]);
    let err = match obgate::App::build(cfg).await {
        Ok(_) => panic!("started with the wrong key-encryption key"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("oauth.key_encryption_key"), "{err}");
}

fn base64_key(bytes: [u8; 32]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn ps256_keys_can_be_chosen() {
    let app = crate::helpers::spawn_with(&[("OBGATE_OAUTH_SIGNING_ALG", "PS256")]).await;
    let jwks = app.get("/oauth2/jwks").await.json();
    assert!(jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .all(|k| k["kty"] == "RSA" && k["alg"] == "PS256"));
    let token = mint(&app, app.clock.now()).await;
    assert!(verify(&app, &token).await.is_ok());
}
