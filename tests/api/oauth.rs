//! The authorization server over HTTP: clients, client authentication, the token endpoint,
//! introspection, revocation, metadata. The token endpoint is driven by the `oauth2` crate
//! as a TPP would, and by hand-built requests for every error.

use std::sync::Arc;
use std::time::Duration;

use oauth2::basic::BasicClient;
use oauth2::{AuthType, ClientId, ClientSecret, Scope, TokenResponse, TokenUrl};
use reqwest::Method;
use serde_json::{json, Value};

use obgate::clock::{ManualClock, Timestamp};
use obgate::oauth::jwt;

use crate::helpers::{config, spawn, spawn_with_clock, Resp, TestApp, TestDb};

/// Registers a client through the bank API; returns (client_id, client_secret).
pub async fn register(app: &TestApp, body: Value) -> (String, String) {
    let r = app
        .send(app.admin(Method::POST, "/api/v0/oauth-clients").json(&body))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let c = r.json();
    (
        c["client_id"].as_str().unwrap().to_owned(),
        c["client_secret"].as_str().unwrap().to_owned(),
    )
}

pub async fn tpp_token(
    app: &TestApp,
    id: &str,
    secret: &str,
    auth: AuthType,
) -> Result<String, String> {
    let client = BasicClient::new(ClientId::new(id.into()))
        .set_client_secret(ClientSecret::new(secret.into()))
        .set_token_uri(TokenUrl::new(app.url("/oauth2/token")).unwrap())
        .set_auth_type(auth);
    let http = oauth2::reqwest::Client::builder()
        .redirect(oauth2::reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    client
        .exchange_client_credentials()
        .add_scope(Scope::new("accounts".into()))
        .request_async(&http)
        .await
        .map(|t| {
            assert_eq!(t.expires_in(), Some(Duration::from_secs(300)));
            assert_eq!(
                t.scopes().map(|s| s[0].to_string()),
                Some("accounts".into())
            );
            t.access_token().secret().clone()
        })
        .map_err(|e| format!("{e:?}"))
}

/// A form POST with Basic credentials (or none).
pub async fn form(app: &TestApp, path: &str, creds: Option<(&str, &str)>, body: &str) -> Resp {
    let mut rb = app
        .request(Method::POST, path)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_owned());
    if let Some((id, secret)) = creds {
        rb = rb.basic_auth(id, Some(secret));
    }
    app.send(rb).await
}

fn claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn a_tpp_gets_client_credentials_tokens_with_basic_and_post() {
    let app = spawn().await;
    let (basic_id, basic_secret) = register(&app, json!({"client_name": "Acme Budgeting"})).await;
    let (post_id, post_secret) = register(
        &app,
        json!({"client_name": "Beta Loans", "token_endpoint_auth_method": "client_secret_post"}),
    )
    .await;

    let token = tpp_token(&app, &basic_id, &basic_secret, AuthType::BasicAuth)
        .await
        .unwrap();
    let c = claims(&token);
    assert_eq!(
        (c["sub"].as_str(), c["client_id"].as_str()),
        (Some(basic_id.as_str()), Some(basic_id.as_str()))
    );
    let issuer = app
        .get("/.well-known/oauth-authorization-server")
        .await
        .json()["issuer"]
        .clone();
    assert_eq!(
        (&c["iss"], &c["aud"]),
        (&issuer, &issuer),
        "issuer and default audience: the public URL"
    );
    assert_eq!(c["scope"], "accounts");
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 300);
    assert!(c.get("consent_id").is_none());
    let (kid, _) = jwt::inspect(&token).unwrap();
    let jwks = app.get("/oauth2/jwks").await.json();
    assert!(jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k["kid"] == kid.as_str()));

    let token = tpp_token(&app, &post_id, &post_secret, AuthType::RequestBody)
        .await
        .unwrap();
    assert_eq!(claims(&token)["client_id"], post_id.as_str());

    // Each client must use the method it registered.
    assert!(tpp_token(&app, &post_id, &post_secret, AuthType::BasicAuth)
        .await
        .is_err());
    assert!(
        tpp_token(&app, &basic_id, &basic_secret, AuthType::RequestBody)
            .await
            .is_err()
    );

    // Issuance is audited, without the token.
    let rows = app
        .audit(&format!(
            "action=token.issue&actor_id={basic_id}&outcome=success"
        ))
        .await;
    assert_eq!(rows.len(), 1);
    assert!(!rows[0].to_string().contains(&token));
}

/// Concurrent issuances share audit transactions (group commit); each token is still in the
/// log, once, before its response, and the chain stays whole.
#[tokio::test]
async fn concurrent_issuances_are_each_audited_once_in_an_unbroken_chain() {
    let app = spawn().await;
    let (id, secret) = register(&app, json!({"client_name": "Busy TPP"})).await;
    let tokens = futures_util::future::join_all(
        (0..48).map(|_| tpp_token(&app, &id, &secret, AuthType::BasicAuth)),
    )
    .await;
    let mut jtis: Vec<String> = tokens
        .into_iter()
        .map(|t| claims(&t.unwrap())["jti"].as_str().unwrap().to_owned())
        .collect();
    jtis.sort();
    // Read at once, without waiting: each row was committed before its token was answered.
    let rows = app
        .audit(&format!(
            "action=token.issue&actor_id={id}&outcome=success&limit=100"
        ))
        .await;
    let mut audited: Vec<String> = rows
        .iter()
        .map(|r| r["resource_id"].as_str().unwrap().to_owned())
        .collect();
    audited.sort();
    assert_eq!(audited, jtis, "every issued token audited exactly once");
    obgate::audit::chain::verify(app.store.as_ref())
        .await
        .expect("the chain verifies");
}

#[tokio::test]
async fn client_authentication_failures_are_invalid_client_and_audited() {
    let app = spawn().await;
    let (id, secret) = register(&app, json!({"client_name": "Acme"})).await;
    let body = "grant_type=client_credentials";

    let r = form(&app, "/oauth2/token", Some((&id, "cs_wrong")), body).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"], "invalid_client");
    assert!(
        r.header("www-authenticate").unwrap().starts_with("Basic"),
        "Basic was tried"
    );
    let r = form(&app, "/oauth2/token", Some(("cl_nobody", &secret)), body).await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let r = form(&app, "/oauth2/token", None, body).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        None,
        "no Basic attempt, no Basic challenge"
    );
    let r = form(
        &app,
        "/oauth2/token",
        None,
        &format!("{body}&client_id={id}&client_secret={secret}&client_assertion=x"),
    )
    .await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (400, Some("invalid_request"))
    );

    let reasons: Vec<String> = app
        .audit("action=client.authenticate&outcome=denied")
        .await
        .iter()
        .map(|r| r["reason"].as_str().unwrap().to_owned())
        .collect();
    for expected in ["wrong_secret", "unknown_client", "malformed_credentials"] {
        assert!(reasons.contains(&expected.to_owned()), "{reasons:?}");
    }
    let all = app.admin_get("/api/v0/audit?limit=500").await.text();
    assert!(
        !all.contains(&secret) && !all.contains("cs_wrong"),
        "secrets never reach the audit log"
    );

    // Disabling takes effect on the very next request, even with a cached secret.
    assert_eq!(
        form(&app, "/oauth2/token", Some((&id, &secret)), body)
            .await
            .status,
        200
    );
    let r = app
        .send(app.admin(Method::DELETE, &format!("/api/v0/oauth-clients/{id}")))
        .await;
    assert_eq!(r.status, 204);
    let r = form(&app, "/oauth2/token", Some((&id, &secret)), body).await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let r = app.admin_get(&format!("/api/v0/oauth-clients/{id}")).await;
    assert_eq!(r.status, 404);
    assert!(r.json()["Message"]
        .as_str()
        .unwrap()
        .contains("was disabled at"));
    let all = app
        .admin_get("/api/v0/oauth-clients?include_disabled=true")
        .await
        .json();
    let listed = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["client_id"] == id.as_str())
        .cloned()
        .unwrap();
    assert!(listed["disabled_at"].is_string());
    let active = app.admin_get("/api/v0/oauth-clients").await.text();
    assert!(!active.contains(&id));
}

#[tokio::test]
async fn every_token_endpoint_error_where_it_applies() {
    let app = spawn().await;
    let (id, secret) = register(&app, json!({"client_name": "Acme"})).await;
    let (code_only, code_secret) = register(
        &app,
        json!({"client_name": "Code Only", "grant_types": ["authorization_code"], "redirect_uris": ["https://tpp.example/cb"]}),
    )
    .await;
    let c = Some((id.as_str(), secret.as_str()));
    let k = Some((code_only.as_str(), code_secret.as_str()));
    let unknown_code = format!(
        "grant_type=authorization_code&code=x&redirect_uri=https%3A%2F%2Ftpp.example%2Fcb&code_verifier={}",
        "v".repeat(43)
    );
    // (credentials, form body, status, error, part of the description)
    type Case<'a> = (Option<(&'a str, &'a str)>, &'a str, u16, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (c, "scope=accounts", 400, "invalid_request", "grant_type is required"),
        (c, "grant_type=password&username=a&password=b", 400, "unsupported_grant_type", "unknown grant_type"),
        (c, "grant_type=client_credentials&grant_type=client_credentials", 400, "invalid_request", "more than once"),
        (c, "grant_type=client_credentials&scope=payments", 400, "invalid_scope", "payments"),
        (c, "grant_type=client_credentials&scope=", 400, "invalid_scope", "empty"),
        (c, "grant_type=client_credentials&authorization_details=nope", 400, "invalid_authorization_details", "JSON array"),
        (c, "grant_type=client_credentials&authorization_details=%5B%7B%22type%22%3A%22x%22%7D%5D", 400, "invalid_authorization_details", "openbanking_account_access"),
        (
            c,
            "grant_type=client_credentials&authorization_details=%5B%7B%22type%22%3A%22openbanking_account_access%22%2C%22consent_id%22%3A%22aac-1%22%7D%5D",
            400,
            "invalid_grant",
            "consent aac-1 is not a consent of this client",
        ),
        (Some((code_only.as_str(), code_secret.as_str())), "grant_type=client_credentials", 400, "unauthorized_client", "not registered"),
        (c, "grant_type=refresh_token&refresh_token=x", 400, "unauthorized_client", "not registered"),
        (k, "grant_type=authorization_code", 400, "invalid_request", "code is required"),
        (k, "grant_type=authorization_code&code=x&redirect_uri=https%3A%2F%2Ftpp.example%2Fcb", 400, "invalid_request", "code_verifier"),
        (k, &unknown_code, 400, "invalid_grant", "unknown"),
    ];
    for (creds, body, status, error, description) in cases {
        let r = form(&app, "/oauth2/token", creds, body).await;
        let b = r.json();
        assert_eq!(
            (r.status, b["error"].as_str()),
            (status, Some(error)),
            "{body}: {b}"
        );
        assert!(
            b["error_description"]
                .as_str()
                .unwrap()
                .contains(description),
            "{body}: {b}"
        );
        assert_eq!(r.header("cache-control"), Some("no-store"));
    }
    // Wrong content type.
    let r = app
        .send(
            app.request(Method::POST, "/oauth2/token")
                .basic_auth(&id, Some(&secret))
                .json(&json!({"grant_type": "client_credentials"})),
        )
        .await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (400, Some("invalid_request"))
    );
    // Refusals after authentication are audited with the error code.
    let refused = app
        .audit(&format!("action=token.issue&outcome=denied&actor_id={id}"))
        .await;
    assert!(refused.iter().any(|r| r["reason"] == "invalid_scope"));
}

async fn argon2_count(app: &TestApp) -> u64 {
    let text = app.get("/metrics").await.text();
    text.lines()
        .find_map(|l| l.strip_prefix("obgate_argon2_verifications_total "))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// The statuses of `n` client-credentials requests with one id and secret, sent together.
async fn together(app: &TestApp, n: usize, id: &str, secret: &str) -> Vec<u16> {
    let body = "grant_type=client_credentials";
    futures_util::future::join_all(
        (0..n).map(|_| form(app, "/oauth2/token", Some((id, secret)), body)),
    )
    .await
    .iter()
    .map(|r| r.status)
    .collect()
}

#[tokio::test]
async fn a_pair_costs_one_argon2_per_idle_period_however_many_present_it_and_wrong_secrets_each_cost_one(
) {
    let db = TestDb::new().await;
    let cfg = config(
        &db,
        &[
            ("OBGATE_OAUTH_SECRET_CACHE_TTL", "60s"),
            ("OBGATE_OAUTH_KEY_ROTATION", "off"),
        ],
    );
    let clock = Arc::new(ManualClock::new(
        Timestamp::parse_rfc3339("2026-11-22T10:00:00Z").unwrap(),
    ));
    let app = spawn_with_clock(db, cfg, clock.clone()).await;
    let (id, secret) = register(&app, json!({"client_name": "Acme"})).await;
    let body = "grant_type=client_credentials";

    let start = argon2_count(&app).await;
    for _ in 0..5 {
        assert_eq!(
            form(&app, "/oauth2/token", Some((&id, &secret)), body)
                .await
                .status,
            200
        );
    }
    assert_eq!(
        argon2_count(&app).await - start,
        1,
        "one argon2 for five requests"
    );

    for _ in 0..3 {
        assert_eq!(
            form(&app, "/oauth2/token", Some((&id, "cs_wrong")), body)
                .await
                .status,
            401
        );
    }
    assert_eq!(
        argon2_count(&app).await - start,
        4,
        "every wrong secret is verified"
    );

    // Idle past the TTL: the pair is checked again, once for all the requests in flight
    // (sixteen argon2 in a row would keep the last one waiting for all of them).
    clock.advance(Duration::from_secs(61));
    assert!(together(&app, 16, &id, &secret)
        .await
        .iter()
        .all(|s| *s == 200));
    assert_eq!(
        argon2_count(&app).await - start,
        5,
        "the cache entry expired after its TTL, and one check served all sixteen"
    );
    // Wrong secrets in flight together are each still verified.
    assert!(together(&app, 3, &id, "cs_wrong")
        .await
        .iter()
        .all(|s| *s == 401));
    assert_eq!(argon2_count(&app).await - start, 8);

    // An unknown client costs an argon2 too (timing does not reveal which ids exist).
    form(&app, "/oauth2/token", Some(("cl_nobody", &secret)), body).await;
    assert_eq!(argon2_count(&app).await - start, 9);

    // A pair this node has never verified (a new client; a node that has just started):
    // one check for all sixteen requests in flight too.
    let (new_id, new_secret) = register(&app, json!({"client_name": "Beta"})).await;
    let before = argon2_count(&app).await;
    assert!(together(&app, 16, &new_id, &new_secret)
        .await
        .iter()
        .all(|s| *s == 200));
    assert_eq!(
        argon2_count(&app).await - before,
        1,
        "one check served all sixteen"
    );
    // An unknown id presented by requests in flight together: each pays its own argon2,
    // as a known client's wrong secret does.
    assert!(together(&app, 3, "cl_nobody", &secret)
        .await
        .iter()
        .all(|s| *s == 401));
    assert_eq!(argon2_count(&app).await - before, 4);
}

#[tokio::test]
async fn secret_rotation_keeps_the_old_secret_for_the_grace_period() {
    let db = TestDb::new().await;
    let cfg = config(
        &db,
        &[
            ("OBGATE_OAUTH_SECRET_ROTATION_GRACE", "1h"),
            ("OBGATE_OAUTH_KEY_ROTATION", "off"),
        ],
    );
    let clock = Arc::new(ManualClock::new(
        Timestamp::parse_rfc3339("2026-11-22T10:00:00Z").unwrap(),
    ));
    let app = spawn_with_clock(db, cfg, clock.clone()).await;
    let (id, old) = register(&app, json!({"client_name": "Acme"})).await;
    let r = app
        .send(app.admin(
            Method::POST,
            &format!("/api/v0/oauth-clients/{id}/rotate-secret"),
        ))
        .await;
    assert_eq!(r.status, 200);
    let new = r.json()["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(
        r.json()["previous_secret_expires_at"],
        "2026-11-22T11:00:00.000Z"
    );
    let body = "grant_type=client_credentials";
    assert_eq!(
        form(&app, "/oauth2/token", Some((&id, &new)), body)
            .await
            .status,
        200
    );
    assert_eq!(
        form(&app, "/oauth2/token", Some((&id, &old)), body)
            .await
            .status,
        200
    );
    // Once verified, the old secret is answered from the cache like the new one: a TPP that
    // has not switched yet does not pay an argon2 (against the new hash) per request.
    let before = argon2_count(&app).await;
    for secret in [&old, &new, &old] {
        let r = form(&app, "/oauth2/token", Some((&id, secret)), body).await;
        assert_eq!(r.status, 200);
    }
    assert_eq!(argon2_count(&app).await - before, 0);
    clock.advance(Duration::from_secs(3601));
    assert_eq!(
        form(&app, "/oauth2/token", Some((&id, &old)), body)
            .await
            .status,
        401
    );
    assert_eq!(
        form(&app, "/oauth2/token", Some((&id, &new)), body)
            .await
            .status,
        200
    );
    assert_eq!(
        app.audit("action=oauth_client.rotate_secret").await.len(),
        1
    );
}

#[tokio::test]
async fn a_client_disabled_while_its_secret_rotates_stays_disabled() {
    let app = spawn().await;
    let body = "grant_type=client_credentials";
    for round in 0..6 {
        let (id, old) = register(&app, json!({"client_name": "Compromised"})).await;
        let rotate = app.send(app.admin(
            Method::POST,
            &format!("/api/v0/oauth-clients/{id}/rotate-secret"),
        ));
        // The disable lands while the new secret is being hashed (argon2, tens of ms).
        let disable = async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            app.send(app.admin(Method::DELETE, &format!("/api/v0/oauth-clients/{id}")))
                .await
        };
        let (rotated, disabled) = tokio::join!(rotate, disable);
        assert_eq!(disabled.status, 204, "round {round}: {}", disabled.text());
        // The rotation either won (and its secret is now disabled with the client) or found
        // the client disabled; it never brings the client back.
        assert!(
            [200, 404].contains(&rotated.status),
            "round {round}: {} {}",
            rotated.status,
            rotated.text()
        );
        let r = app.admin_get(&format!("/api/v0/oauth-clients/{id}")).await;
        assert_eq!(r.status, 404, "round {round}: {}", r.text());
        let mut secrets = vec![old];
        if rotated.status == 200 {
            secrets.push(rotated.json()["client_secret"].as_str().unwrap().to_owned());
        }
        for secret in &secrets {
            let r = form(&app, "/oauth2/token", Some((&id, secret)), body).await;
            assert_eq!(r.status, 401, "round {round}");
        }
    }
}

#[tokio::test]
async fn introspection_and_revocation() {
    let app = spawn().await;
    let (id, secret) = register(&app, json!({"client_name": "Acme"})).await;
    let (other, other_secret) = register(&app, json!({"client_name": "Other"})).await;
    let token = tpp_token(&app, &id, &secret, AuthType::BasicAuth)
        .await
        .unwrap();
    let me = Some((id.as_str(), secret.as_str()));

    let r = form(&app, "/oauth2/introspect", me, &format!("token={token}")).await;
    let b = r.json();
    assert_eq!(
        (
            b["active"].as_bool(),
            b["client_id"].as_str(),
            b["token_type"].as_str()
        ),
        (Some(true), Some(id.as_str()), Some("Bearer"))
    );
    assert_eq!(b["jti"], claims(&token)["jti"]);
    // Another client learns nothing.
    let r = form(
        &app,
        "/oauth2/introspect",
        Some((&other, &other_secret)),
        &format!("token={token}"),
    )
    .await;
    assert_eq!(r.json(), json!({"active": false}));
    let r = form(&app, "/oauth2/introspect", me, "token=garbage").await;
    assert_eq!(r.json(), json!({"active": false}));
    let r = form(&app, "/oauth2/introspect", me, "").await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (400, Some("invalid_request"))
    );

    // Another client cannot revoke it; its owner can; unknown tokens answer 200 too.
    assert_eq!(
        form(
            &app,
            "/oauth2/revoke",
            Some((&other, &other_secret)),
            &format!("token={token}")
        )
        .await
        .status,
        200
    );
    assert_eq!(
        form(&app, "/oauth2/introspect", me, &format!("token={token}"))
            .await
            .json()["active"],
        true
    );
    assert_eq!(
        form(&app, "/oauth2/revoke", me, &format!("token={token}"))
            .await
            .status,
        200
    );
    assert_eq!(
        form(
            &app,
            "/oauth2/revoke",
            me,
            "token=unknown&token_type_hint=refresh_token"
        )
        .await
        .status,
        200
    );
    assert_eq!(
        form(&app, "/oauth2/introspect", me, &format!("token={token}"))
            .await
            .json(),
        json!({"active": false})
    );

    // The gateway's verification refuses a revoked jti (the revocation attack test).
    let fresh = tpp_token(&app, &id, &secret, AuthType::BasicAuth)
        .await
        .unwrap();
    let db_state = obgate::App::build(config(&app.db, &[])).await.unwrap();
    assert!(
        obgate::oauth::token::verify_access_token(db_state.state(), &fresh)
            .await
            .is_ok()
    );
    assert_eq!(
        obgate::oauth::token::verify_access_token(db_state.state(), &token).await,
        Err(jwt::TokenError::Revoked)
    );
    assert_eq!(app.audit("action=token.revoke").await.len(), 1);
}

#[tokio::test]
async fn metadata_lists_what_the_server_supports() {
    let app = spawn_with_public_url("https://bank.example/ob").await;
    let m = app
        .get("/.well-known/oauth-authorization-server")
        .await
        .json();
    assert_eq!(m["issuer"], "https://bank.example/ob");
    assert_eq!(m["token_endpoint"], "https://bank.example/ob/oauth2/token");
    assert_eq!(m["jwks_uri"], "https://bank.example/ob/oauth2/jwks");
    assert_eq!(
        m["introspection_endpoint"],
        "https://bank.example/ob/oauth2/introspect"
    );
    assert_eq!(
        m["revocation_endpoint"],
        "https://bank.example/ob/oauth2/revoke"
    );
    assert_eq!(
        m["grant_types_supported"],
        json!(["client_credentials", "authorization_code", "refresh_token"])
    );
    assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(m["response_types_supported"], json!(["code"]));
    assert_eq!(
        m["authorization_endpoint"],
        "https://bank.example/ob/oauth2/authorize"
    );
    assert_eq!(
        m["pushed_authorization_request_endpoint"],
        "https://bank.example/ob/oauth2/par"
    );
    assert_eq!(
        m["token_endpoint_auth_methods_supported"],
        json!([
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt"
        ])
    );
    assert_eq!(
        m["token_endpoint_auth_signing_alg_values_supported"],
        json!(["ES256", "PS256"])
    );
    assert_eq!(
        m["authorization_details_types_supported"],
        json!(["openbanking_account_access"])
    );
}

async fn spawn_with_public_url(url: &str) -> TestApp {
    let db = TestDb::new().await;
    let cfg = config(&db, &[("OBGATE_PUBLIC_URL", url)]);
    crate::helpers::spawn_on(db, cfg).await
}

#[tokio::test]
async fn client_registration_rules_and_management() {
    let app = spawn().await;
    let post = |body: Value| app.admin(Method::POST, "/api/v0/oauth-clients").json(&body);
    let r = app
        .send(post(json!({
            "client_name": " ",
            "grant_types": ["implicit", "refresh_token"],
            "redirect_uris": ["http://tpp.example/cb", "https://tpp.example/cb#frag"],
            "scope": "accounts payments",
            "token_endpoint_auth_method": "private_key_jwt"
        })))
        .await;
    assert_eq!(r.status, 400);
    let m = r.json()["Message"].clone();
    for field in [
        "client_name",
        "grant_types[0]",
        "grant_types",
        "redirect_uris[0]",
        "redirect_uris[1]",
        "scope",
        "jwks",
    ] {
        assert!(m[field].is_array(), "{field} not reported: {m}");
    }
    assert_eq!(r.json()["Code"], "invalid_client_metadata");
    let r = app
        .send(post(
            json!({"client_name": "x", "grant_types": ["authorization_code"]}),
        ))
        .await;
    assert_eq!(
        r.json()["Message"]["redirect_uris"][0],
        "authorization_code needs at least one redirect URI"
    );
    let r = app
        .send(post(json!({"grant_types": ["client_credentials"]})))
        .await;
    assert_eq!(
        r.json()["Message"]["client_name"][0],
        "Missing data for required field."
    );
    // Loopback http is fine in sandbox mode.
    let (id, _) = register(
        &app,
        json!({"client_name": "Local", "grant_types": ["authorization_code", "refresh_token"],
        "redirect_uris": ["http://127.0.0.1:8000/cb"]}),
    )
    .await;

    let r = app
        .send(
            app.admin(Method::PATCH, &format!("/api/v0/oauth-clients/{id}"))
                .json(&json!({"client_name": "Local 2"})),
        )
        .await;
    assert_eq!(
        (r.status, r.json()["client_name"].as_str()),
        (200, Some("Local 2"))
    );
    let r = app
        .send(
            app.admin(Method::PATCH, &format!("/api/v0/oauth-clients/{id}"))
                .json(&json!({"redirect_uris": []})),
        )
        .await;
    assert_eq!(r.status, 400, "the merged client must stay valid");
    let r = app
        .send(
            app.admin(Method::PATCH, &format!("/api/v0/oauth-clients/{id}"))
                .json(&json!({"token_endpoint_auth_method": "client_secret_post"})),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        app.admin_get("/api/v0/oauth-clients/cl_nobody")
            .await
            .status,
        404
    );

    for i in 0..3 {
        register(&app, json!({"client_name": format!("Paged {i}")})).await;
    }
    let page = app.admin_get("/api/v0/oauth-clients?limit=2").await.json();
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    let next = page["next_cursor"].as_str().unwrap().to_owned();
    let rest = app
        .admin_get(&format!("/api/v0/oauth-clients?limit=10&cursor={next}"))
        .await
        .json();
    assert_eq!(
        rest["data"].as_array().unwrap().len(),
        2,
        "four clients in all"
    );
    assert!(rest["next_cursor"].is_null());
    let listed = app.admin_get("/api/v0/oauth-clients").await.text();
    assert!(
        !listed.contains("cs_") && !listed.contains("argon2"),
        "no secrets or hashes listed"
    );

    app.send(app.admin(Method::DELETE, &format!("/api/v0/oauth-clients/{id}")))
        .await;
    let r = app
        .send(
            app.admin(Method::PATCH, &format!("/api/v0/oauth-clients/{id}"))
                .json(&json!({"client_name": "again"})),
        )
        .await;
    assert_eq!(r.status, 404, "a disabled client is gone for the API");
    for action in [
        "oauth_client.create",
        "oauth_client.update",
        "oauth_client.disable",
    ] {
        assert!(
            !app.audit(&format!("action={action}&resource_id={id}"))
                .await
                .is_empty(),
            "{action}"
        );
    }
}

#[tokio::test]
async fn production_requires_https_redirect_uris() {
    let db = TestDb::new().await;
    let cfg = config(&db, crate::helpers::PRODUCTION);
    let app = crate::helpers::spawn_on(db, cfg).await;
    let r = app
        .send(
            app.admin(Method::POST, "/api/v0/oauth-clients")
                .json(&json!({"client_name": "Local",
            "grant_types": ["authorization_code"], "redirect_uris": ["http://127.0.0.1/cb"]})),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["Message"]["redirect_uris[0]"][0],
        "http is allowed only in sandbox mode; use https"
    );
}
