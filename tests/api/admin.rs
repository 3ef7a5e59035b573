//! Admin API keys: authentication of `/api/v0/*`, creation, revocation, auditing.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::spawn;

#[tokio::test]
async fn the_bank_api_requires_a_valid_admin_key() {
    let app = spawn().await;
    let r = app.get("/api/v0/audit").await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"obgate-admin\"")
    );
    assert_eq!(r.json()["Type"], "Authentication Error");
    assert!(r.json()["Message"]
        .as_str()
        .unwrap()
        .contains("Authorization: Bearer"));

    for bad in ["obg_not-a-real-key", ""] {
        let r = app
            .send(app.request(Method::GET, "/api/v0/audit").bearer_auth(bad))
            .await;
        assert_eq!(r.status, 401, "{bad:?}");
    }
    let r = app
        .send(
            app.request(Method::GET, "/api/v0/audit")
                .basic_auth("x", Some("y")),
        )
        .await;
    assert_eq!(r.status, 401);

    // A presented but unknown key is audited as a denial, without the key.
    let rows = app.audit("action=admin.authenticate&outcome=denied").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["reason"], "unknown_key");
    assert_eq!(rows[0]["actor_type"], "anonymous");
    assert!(!rows[0].to_string().contains("obg_not-a-real-key"));

    assert_eq!(app.admin_get("/api/v0/audit").await.status, 200);
}

#[tokio::test]
async fn keys_are_created_shown_once_listed_and_revoked() {
    let app = spawn().await;
    let r = app
        .send(
            app.admin(Method::POST, "/api/v0/admin-keys")
                .header("x-fapi-interaction-id", "create-1")
                .json(&json!({"name": "onboarding service"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let created = r.json();
    let key = created["key"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with(created["prefix"].as_str().unwrap()));

    // The new key works, and its use is recorded.
    let r = app
        .send(
            app.request(Method::GET, "/api/v0/admin-keys")
                .bearer_auth(&key),
        )
        .await;
    assert_eq!(r.status, 200);
    let listed: Vec<Value> = r.json()["data"].as_array().unwrap().clone();
    let mine = listed.iter().find(|k| k["id"] == id.as_str()).unwrap();
    assert_eq!(mine["name"], "onboarding service");
    assert!(mine["last_used_at"].is_string());
    assert!(mine.get("key").is_none(), "the key is never listed");
    assert!(!r.text().contains(&key));

    // Same name while active: conflict, in Bond's conflict shape.
    let r = app
        .send(
            app.admin(Method::POST, "/api/v0/admin-keys")
                .json(&json!({"name": "onboarding service"})),
        )
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(
        r.json(),
        json!({"type": "RESOURCE_CONFLICT", "code": "admin_key_name_exists",
        "message": "an active admin key is already named \"onboarding service\"; revoke it or pick another name"})
    );

    // Revoke: refused at once; revoking again changes nothing; the name is free again.
    let r = app
        .send(app.admin(Method::DELETE, &format!("/api/v0/admin-keys/{id}")))
        .await;
    assert_eq!(r.status, 204);
    let r = app
        .send(
            app.request(Method::GET, "/api/v0/admin-keys")
                .bearer_auth(&key),
        )
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(
        app.send(app.admin(Method::DELETE, &format!("/api/v0/admin-keys/{id}")))
            .await
            .status,
        204
    );
    let r = app
        .send(
            app.admin(Method::POST, "/api/v0/admin-keys")
                .json(&json!({"name": "onboarding service"})),
        )
        .await;
    assert_eq!(r.status, 201);

    // Audit: create and revoke by the test key, with the interaction id; the revoked key's
    // attempt as a denial naming the key id.
    let creates = app
        .audit(&format!("action=admin_key.create&resource_id={id}"))
        .await;
    assert_eq!(creates.len(), 1);
    assert_eq!(creates[0]["actor_id"], app.admin_key_id.as_str());
    assert_eq!(creates[0]["interaction_id"], "create-1");
    assert_eq!(
        app.audit(&format!("action=admin_key.revoke&resource_id={id}"))
            .await
            .len(),
        1
    );
    let denied = app
        .audit(&format!("action=admin.authenticate&actor_id={id}"))
        .await;
    assert_eq!(
        (denied.len(), denied[0]["reason"].as_str()),
        (1, Some("revoked_key"))
    );
}

#[tokio::test]
async fn bad_names_and_unknown_ids_are_refused_clearly() {
    let app = spawn().await;
    for name in ["", "   ", " ops", "x".repeat(65).as_str(), "ops;drop"] {
        let r = app
            .send(
                app.admin(Method::POST, "/api/v0/admin-keys")
                    .json(&json!({"name": name})),
            )
            .await;
        assert_eq!(r.status, 400, "{name:?}");
        assert!(r.json()["Message"]["name"].is_array());
    }
    let r = app
        .send(app.admin(Method::DELETE, "/api/v0/admin-keys/ak_missing"))
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["Message"], "no admin key with id ak_missing");
}

#[tokio::test]
async fn sandbox_demo_key_is_created_once() {
    let app = spawn().await;
    let clock = app.clock.clone();
    // The test app already has a key, so no demo key is made.
    assert!(
        obgate::admin::ensure_demo_key(app.store.as_ref(), clock.as_ref())
            .await
            .unwrap()
            .is_none()
    );

    let db = crate::helpers::TestDb::new().await;
    let store = obgate::store::connect(&crate::helpers::config(&db, &[]))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let first = obgate::admin::ensure_demo_key(store.as_ref(), clock.as_ref())
        .await
        .unwrap();
    assert_eq!(
        first.map(|k| k.record.name),
        Some("sandbox-demo".to_owned())
    );
    assert!(
        obgate::admin::ensure_demo_key(store.as_ref(), clock.as_ref())
            .await
            .unwrap()
            .is_none()
    );
    store.close().await;
}
