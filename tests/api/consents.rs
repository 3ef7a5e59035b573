//! Account-access consents and the authorization flow, run as a TPP would run them: the
//! consent resource (checked against the official UK OB file as well as obgate's own), PAR,
//! authorize, the bank's consent UI accepting or rejecting, the code exchange and refresh with
//! the `oauth2` crate, the KYC gate, revocation and expiry.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse, TokenUrl,
};
use reqwest::Method;
use serde_json::{json, Value};

use obgate::clock::{ManualClock, Timestamp};

use crate::helpers::{config, spawn_with, spawn_with_clock, Resp, TestApp, TestDb};
use crate::kyc::{create_customer, passed_customer, FAST};
use crate::oauth::{form, register};
use crate::ob_spec;

pub const CONSENTS: &str = "/open-banking/v3.1/aisp/account-access-consents";
pub const REDIRECT: &str = "https://tpp.example/cb";

/// A TPP registered for the redirect flow: (client_id, client_secret).
pub async fn tpp(app: &TestApp, name: &str) -> (String, String) {
    register(
        app,
        json!({
            "client_name": name,
            "redirect_uris": [REDIRECT],
            "grant_types": ["client_credentials", "authorization_code", "refresh_token"],
        }),
    )
    .await
}

/// The first of the customer's accounts at the sandbox bank.
fn first_account(customer: &str) -> String {
    obgate::sandbox_bank::account_ids(customer)[0].clone()
}

/// A client_credentials token.
pub async fn cc_token(app: &TestApp, id: &str, secret: &str) -> String {
    let r = form(
        app,
        "/oauth2/token",
        Some((id, secret)),
        "grant_type=client_credentials&scope=accounts",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["access_token"].as_str().unwrap().to_owned()
}

/// Sends an OB request and checks request and response against the official file too.
pub async fn ob(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> Resp {
    let mut rb = app.request(method.clone(), path).bearer_auth(token).header(
        "x-fapi-interaction-id",
        "93bac548-d2de-4546-b106-880a5018460d",
    );
    if let Some(b) = body {
        rb = rb.json(b);
    }
    let r = app.send(rb).await;
    ob_spec::check_response(method.as_str(), path, r.status, &r.headers, &r.body);
    r
}

fn consent_body(permissions: &[&str]) -> Value {
    json!({"Data": {"Permissions": permissions, "ExpirationDateTime": "2099-01-01T00:00:00+00:00"}, "Risk": {}})
}

const READ: &[&str] = &[
    "ReadAccountsDetail",
    "ReadBalances",
    "ReadTransactionsDetail",
    "ReadTransactionsCredits",
    "ReadTransactionsDebits",
];

pub async fn create_consent(app: &TestApp, token: &str) -> String {
    let body = consent_body(READ);
    ob_spec::check_request("POST", CONSENTS, &body);
    let r = ob(app, Method::POST, CONSENTS, token, Some(&body)).await;
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["Data"]["ConsentId"].as_str().unwrap().to_owned()
}

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

pub fn query(url: &str) -> std::collections::HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

async fn introspect(app: &TestApp, id: &str, secret: &str, token: &str) -> bool {
    let r = form(
        app,
        "/oauth2/introspect",
        Some((id, secret)),
        &format!("token={token}"),
    )
    .await;
    r.json()["active"].as_bool().unwrap()
}

/// Pushes an authorization request; returns the request_uri.
async fn par(app: &TestApp, id: &str, secret: &str, consent: &str, challenge: &str) -> Resp {
    let details =
        json!([{"type": "openbanking_account_access", "consent_id": consent}]).to_string();
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("state", "st-123")
        .append_pair("scope", "accounts")
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("authorization_details", &details)
        .finish();
    form(app, "/oauth2/par", Some((id, secret)), &body).await
}

/// Follows /oauth2/authorize to the bank's UI; returns the challenge.
async fn challenge_from(app: &TestApp, authorize_url: &str) -> String {
    let r = app.send(app.client.get(authorize_url)).await;
    assert_eq!(r.status, 303, "{}", r.text());
    let location = r.header("location").unwrap().to_owned();
    assert!(location.starts_with(&app_ui(app)), "{location}");
    query(&location)["challenge"].clone()
}

fn app_ui(_app: &TestApp) -> String {
    // The test config leaves consents.ui_url at its default: <public_url>/consent.
    "http://127.0.0.1:0/consent".to_owned()
}

pub fn oauth_client(
    app: &TestApp,
    id: &str,
    secret: &str,
) -> BasicClient<
    oauth2::EndpointSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
> {
    BasicClient::new(ClientId::new(id.into()))
        .set_client_secret(ClientSecret::new(secret.into()))
        .set_auth_uri(AuthUrl::new(app.url("/oauth2/authorize")).unwrap())
        .set_token_uri(TokenUrl::new(app.url("/oauth2/token")).unwrap())
        .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap())
}

pub fn http() -> oauth2::reqwest::Client {
    oauth2::reqwest::Client::builder()
        .redirect(oauth2::reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn accept(app: &TestApp, challenge: &str, customer: &str) -> Resp {
    app.send(
        app.admin(
            Method::POST,
            &format!("/api/v0/authorization-requests/{challenge}/accept"),
        )
        .json(&json!({"customer_id": customer, "account_ids": obgate::sandbox_bank::account_ids(customer)})),
    )
    .await
}

#[tokio::test]
async fn the_consent_resource_is_created_read_and_deleted_per_tpp() {
    let app = spawn_with(FAST).await;
    let (id, secret) = tpp(&app, "Acme Budgeting").await;
    let token = cc_token(&app, &id, &secret).await;
    let body = consent_body(READ);
    let r = app
        .send(
            app.request(Method::POST, CONSENTS)
                .bearer_auth(&token)
                .header(
                    "x-fapi-interaction-id",
                    "93bac548-d2de-4546-b106-880a5018460d",
                )
                .header("x-fapi-customer-ip-address", "203.0.113.9")
                .header("x-fapi-auth-date", "Sun, 10 Sep 2017 19:43:31 GMT")
                .json(&body),
        )
        .await;
    ob_spec::check_response("POST", CONSENTS, r.status, &r.headers, &r.body);
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        r.header("x-fapi-interaction-id"),
        Some("93bac548-d2de-4546-b106-880a5018460d")
    );
    let v = r.json();
    let consent = v["Data"]["ConsentId"].as_str().unwrap().to_owned();
    assert_eq!(v["Data"]["Status"], "AwaitingAuthorisation");
    assert_eq!(
        v["Data"]["ExpirationDateTime"], "2099-01-01T00:00:00+00:00",
        "echoed as sent"
    );
    assert_eq!(
        v["Data"]["CreationDateTime"],
        v["Data"]["StatusUpdateDateTime"]
    );
    assert!(v["Links"]["Self"]
        .as_str()
        .unwrap()
        .ends_with(&format!("{CONSENTS}/{consent}")));
    assert_eq!(v["Meta"]["TotalPages"], 1);
    let stored = app.store.get_consent(&consent).await.unwrap().unwrap();
    assert_eq!(stored.customer_ip.as_deref(), Some("203.0.113.9"));
    assert_eq!(
        stored.auth_date.as_deref(),
        Some("Sun, 10 Sep 2017 19:43:31 GMT")
    );

    let path = format!("{CONSENTS}/{consent}");
    let r = ob(&app, Method::GET, &path, &token, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["Data"], v["Data"]);

    // Another TPP sees nothing: the same answer as for an unknown id.
    let (other, other_secret) = tpp(&app, "Other Ltd").await;
    let other_token = cc_token(&app, &other, &other_secret).await;
    for (p, t) in [
        (&path, &other_token),
        (&format!("{CONSENTS}/aac-unknown"), &token),
    ] {
        let r = ob(&app, Method::GET, p, t, None).await;
        assert_eq!(r.status, 400);
        assert_eq!(
            r.json()["Errors"][0]["ErrorCode"],
            "UK.OBIE.Resource.NotFound"
        );
    }
    let r = ob(&app, Method::DELETE, &path, &other_token, None).await;
    assert_eq!(r.status, 400, "another TPP cannot delete it");

    // No token, or a malformed one: 401 without a body, with the Bearer challenge.
    let r = app.send(app.request(Method::GET, &path)).await;
    assert_eq!(r.status, 401);
    assert!(r.body.is_empty());
    assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));

    let r = ob(&app, Method::DELETE, &path, &token, None).await;
    assert_eq!(r.status, 204);
    let r = ob(&app, Method::GET, &path, &token, None).await;
    assert_eq!(r.status, 400, "deleted for the TPP");
    // Kept for audit, with its end visible to the bank.
    let r = app.admin_get(&format!("/api/v0/consents/{consent}")).await;
    assert_eq!(r.json()["status"], "Revoked");
    assert_eq!(r.json()["deleted_by_tpp"], true);
    assert_eq!(app.audit("action=consent.delete").await.len(), 1);
}

#[tokio::test]
async fn every_profile_rule_is_a_400_with_its_code_and_path() {
    let app = spawn_with(FAST).await;
    let (id, secret) = tpp(&app, "Acme").await;
    let token = cc_token(&app, &id, &secret).await;
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"Data": {"Permissions": []}, "Risk": {}}),
            "UK.OBIE.Field.Invalid",
            "Data.Permissions",
        ),
        (
            json!({"Data": {"Permissions": ["ReadAccountsBasic", "ReadEverything"]}, "Risk": {}}),
            "UK.OBIE.Field.Invalid",
            "Data.Permissions[1]",
        ),
        (
            json!({"Data": {"Permissions": ["ReadBalances"]}, "Risk": {}}),
            "UK.OBIE.Field.Invalid",
            "Data.Permissions",
        ),
        (
            json!({"Data": {"Permissions": ["ReadAccountsBasic", "ReadTransactionsBasic"]}, "Risk": {}}),
            "UK.OBIE.Field.Expected",
            "Data.Permissions",
        ),
        (
            json!({"Data": {"Permissions": ["ReadAccountsBasic", "ReadTransactionsDetail"]}, "Risk": {}}),
            "UK.OBIE.Field.Expected",
            "Data.Permissions",
        ),
        (
            json!({"Data": {"Permissions": ["ReadAccountsBasic", "ReadTransactionsCredits"]}, "Risk": {}}),
            "UK.OBIE.Field.Expected",
            "Data.Permissions",
        ),
        (
            json!({"Data": {"Permissions": ["ReadAccountsBasic", "ReadTransactionsDebits"]}, "Risk": {}}),
            "UK.OBIE.Field.Expected",
            "Data.Permissions",
        ),
        (
            json!({"Data": {"Permissions": ["ReadAccountsBasic"], "ExpirationDateTime": "2001-01-01T00:00:00+00:00"}, "Risk": {}}),
            "UK.OBIE.Field.InvalidDate",
            "Data.ExpirationDateTime",
        ),
        (
            json!({"Data": {"Permissions": ["ReadAccountsBasic"], "TransactionFromDateTime": "2026-02-01T00:00:00+00:00", "TransactionToDateTime": "2026-01-01T00:00:00+00:00"}, "Risk": {}}),
            "UK.OBIE.Field.InvalidDate",
            "Data.TransactionFromDateTime",
        ),
        (
            json!({"Data": {"Permissions": ["ReadAccountsBasic"], "ExpirationDateTime": "next week"}, "Risk": {}}),
            "UK.OBIE.Field.InvalidDate",
            "Data.ExpirationDateTime",
        ),
        (
            json!({"Data": {"Permissions": ["ReadAccountsBasic"]}}),
            "UK.OBIE.Field.Missing",
            "Risk",
        ),
        (
            json!({"Data": {"Permissions": ["ReadAccountsBasic"]}, "Risk": {"MerchantCategoryCode": "5967"}}),
            "UK.OBIE.Field.Unexpected",
            "Risk.MerchantCategoryCode",
        ),
        (json!({"Risk": {}}), "UK.OBIE.Field.Missing", "Data"),
    ];
    for (body, code, path) in cases {
        let r = ob(&app, Method::POST, CONSENTS, &token, Some(&body)).await;
        assert_eq!(r.status, 400, "{body} was accepted");
        let errors = r.json()["Errors"].clone();
        assert!(
            errors
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["ErrorCode"] == code && e["Path"] == path),
            "{body}: expected {code} at {path}, got {errors}"
        );
    }
    // A Detail permission implies its Basic one: Detail alone is enough for accounts.
    let r = ob(
        &app,
        Method::POST,
        CONSENTS,
        &token,
        Some(&consent_body(&["ReadAccountsDetail"])),
    )
    .await;
    assert_eq!(r.status, 201);
    // A malformed x-fapi-auth-date is a header error.
    let r = app
        .send(
            app.request(Method::POST, CONSENTS)
                .bearer_auth(&token)
                .header("x-fapi-auth-date", "yesterday")
                .json(&consent_body(&["ReadAccountsBasic"])),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["Errors"][0]["ErrorCode"], "UK.OBIE.Header.Invalid");
}

#[tokio::test]
async fn a_tpp_runs_par_authorize_approval_code_exchange_and_refresh_with_the_oauth2_crate() {
    let app = spawn_with(FAST).await;
    let customer = passed_customer(&app).await;
    let (id, secret) = tpp(&app, "Acme Budgeting").await;
    let token = cc_token(&app, &id, &secret).await;
    let consent = create_consent(&app, &token).await;

    // PAR, then the browser goes to /oauth2/authorize with the request_uri.
    let (pkce, verifier) = PkceCodeChallenge::new_random_sha256();
    let r = par(&app, &id, &secret, &consent, pkce.as_str()).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let request_uri = r.json()["request_uri"].as_str().unwrap().to_owned();
    assert!(request_uri.starts_with("urn:ietf:params:oauth:request_uri:"));
    let authorize = format!(
        "{}?client_id={id}&request_uri={}",
        app.url("/oauth2/authorize"),
        form_urlencoded::byte_serialize(request_uri.as_bytes()).collect::<String>()
    );
    let challenge = challenge_from(&app, &authorize).await;
    // The request_uri is single-use.
    let r = app.send(app.client.get(&authorize)).await;
    assert_eq!(r.status, 400);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));

    // The bank's UI reads the request and, after logging the customer in, accepts it.
    let r = app
        .admin_get(&format!("/api/v0/authorization-requests/{challenge}"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let req = r.json();
    assert_eq!(req["client_name"], "Acme Budgeting");
    assert_eq!(req["consent"]["consent_id"], consent.as_str());
    assert_eq!(
        req["consent"]["permissions"][0]["code"],
        "ReadAccountsDetail"
    );
    assert!(req["consent"]["permissions"][0]["description"]
        .as_str()
        .unwrap()
        .contains("account"));
    let r = accept(&app, &challenge, &customer).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let to = r.json()["redirect_to"].as_str().unwrap().to_owned();
    assert!(to.starts_with(REDIRECT));
    let q = query(&to);
    assert_eq!(q["state"], "st-123");
    let meta = app
        .get("/.well-known/oauth-authorization-server")
        .await
        .json();
    assert_eq!(q["iss"], meta["issuer"].as_str().unwrap(), "RFC 9207 iss");
    // The challenge is single-use too.
    assert_eq!(accept(&app, &challenge, &customer).await.status, 404);

    // The TPP exchanges the code with the oauth2 crate.
    let client = oauth_client(&app, &id, &secret);
    let tokens = client
        .exchange_code(AuthorizationCode::new(q["code"].clone()))
        .set_pkce_verifier(PkceCodeVerifier::new(verifier.secret().clone()))
        .request_async(&http())
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let access = tokens.access_token().secret().clone();
    let c = claims(&access);
    assert_eq!(c["sub"], customer.as_str(), "customer-bound");
    assert_eq!(c["consent_id"], consent.as_str());
    assert_eq!(c["client_id"], id.as_str());
    assert!(introspect(&app, &id, &secret, &access).await);
    let refresh = tokens.refresh_token().unwrap().secret().clone();
    let r = ob(
        &app,
        Method::GET,
        &format!("{CONSENTS}/{consent}"),
        &token,
        None,
    )
    .await;
    assert_eq!(r.json()["Data"]["Status"], "Authorised");

    // Reusing the code fails and revokes what it issued.
    let again = client
        .exchange_code(AuthorizationCode::new(q["code"].clone()))
        .set_pkce_verifier(PkceCodeVerifier::new(verifier.secret().clone()))
        .request_async(&http())
        .await;
    assert!(again.is_err());
    assert!(
        !introspect(&app, &id, &secret, &access).await,
        "code replay revokes its tokens"
    );
    let r = form(
        &app,
        "/oauth2/token",
        Some((&id, &secret)),
        &format!("grant_type=refresh_token&refresh_token={refresh}"),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], "invalid_grant");

    // A fresh authorization to exercise refresh rotation.
    let (pkce, verifier) = PkceCodeChallenge::new_random_sha256();
    let consent2 = create_consent(&app, &token).await;
    let details =
        json!([{"type": "openbanking_account_access", "consent_id": consent2}]).to_string();
    let (url, csrf) = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("accounts".into()))
        .set_pkce_challenge(pkce)
        .add_extra_param("authorization_details", details)
        .url();
    let challenge = challenge_from(&app, url.as_str()).await;
    let to = accept(&app, &challenge, &customer).await.json()["redirect_to"]
        .as_str()
        .unwrap()
        .to_owned();
    let q = query(&to);
    assert_eq!(&q["state"], csrf.secret());
    let tokens = client
        .exchange_code(AuthorizationCode::new(q["code"].clone()))
        .set_pkce_verifier(verifier)
        .request_async(&http())
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let first_refresh = tokens.refresh_token().unwrap().clone();
    let rotated = client
        .exchange_refresh_token(&first_refresh)
        .request_async(&http())
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let second_refresh = rotated.refresh_token().unwrap().clone();
    assert_ne!(
        first_refresh.secret(),
        second_refresh.secret(),
        "rotated on use"
    );
    assert_eq!(
        claims(rotated.access_token().secret())["consent_id"],
        consent2.as_str()
    );
    // Presenting the used one revokes the whole family, the newest refresh token included.
    assert!(client
        .exchange_refresh_token(&first_refresh)
        .request_async(&http())
        .await
        .is_err());
    assert!(client
        .exchange_refresh_token(&second_refresh)
        .request_async(&http())
        .await
        .is_err());
    assert!(!introspect(&app, &id, &secret, rotated.access_token().secret()).await);
    assert!(app.audit("action=token.family.revoke").await.len() >= 2);
}

#[tokio::test]
async fn only_a_customer_whose_kyc_passed_can_authorise() {
    let app = spawn_with(FAST).await;
    let customer = create_customer(&app, "Jane").await; // KYC not started
    let (id, secret) = tpp(&app, "Acme").await;
    let token = cc_token(&app, &id, &secret).await;
    let consent = create_consent(&app, &token).await;
    let (pkce, _) = PkceCodeChallenge::new_random_sha256();
    let request_uri = par(&app, &id, &secret, &consent, pkce.as_str())
        .await
        .json()["request_uri"]
        .as_str()
        .unwrap()
        .to_owned();
    let challenge = challenge_from(
        &app,
        &format!(
            "{}?client_id={id}&request_uri={}",
            app.url("/oauth2/authorize"),
            form_urlencoded::byte_serialize(request_uri.as_bytes()).collect::<String>()
        ),
    )
    .await;
    let r = accept(&app, &challenge, &customer).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.json()["Code"], "kyc_not_passed");
    assert!(r.json()["Message"]
        .as_str()
        .unwrap()
        .contains("not_started"));
    let r = app.admin_get(&format!("/api/v0/consents/{consent}")).await;
    assert_eq!(r.json()["status"], "AwaitingAuthorisation", "unchanged");
    let denied = app.audit("action=consent.authorise&outcome=denied").await;
    assert_eq!(denied[0]["reason"], "kyc_not_passed");
    // The decoupled path has the same gate.
    let r = app
        .send(
            app.admin(
                Method::POST,
                &format!("/api/v0/consents/{consent}/authorise"),
            )
            .json(&json!({"customer_id": customer, "account_ids": ["acc-1"]})),
        )
        .await;
    assert_eq!(r.status, 403);
    // Once KYC passes, the same customer can.
    crate::kyc::start_kyc(&app, &customer, "123-45-6789").await;
    crate::kyc::wait_for(&app, &customer, "passed").await;
    assert_eq!(accept(&app, &challenge, &customer).await.status, 200);
}

#[tokio::test]
async fn customer_bound_client_credentials_and_every_reason_access_ends() {
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_790_000_000_000)));
    let db = TestDb::new().await;
    let cfg = config(&db, FAST);
    let app = spawn_with_clock(db, cfg, clock.clone()).await;
    let customer = passed_customer(&app).await;
    let (id, secret) = tpp(&app, "Acme").await;
    let token = cc_token(&app, &id, &secret).await;
    let bound = |consent: &str| {
        let details =
            json!([{"type": "openbanking_account_access", "consent_id": consent}]).to_string();
        format!(
            "grant_type=client_credentials&scope=accounts&authorization_details={}",
            form_urlencoded::byte_serialize(details.as_bytes()).collect::<String>()
        )
    };
    let app_ref = &app;
    let authorise = |consent: String, customer: String| {
        let rb = app_ref
            .admin(
                Method::POST,
                &format!("/api/v0/consents/{consent}/authorise"),
            )
            .json(&json!({"customer_id": customer, "account_ids": [first_account(&customer)]}));
        async move { app_ref.send(rb).await }
    };
    let refused = |r: Resp, needle: &str| {
        assert_eq!(r.status, 400, "{}", r.text());
        assert_eq!(r.json()["error"], "invalid_grant");
        let d = r.json()["error_description"].as_str().unwrap().to_owned();
        assert!(d.contains(needle), "{d:?} should say {needle:?}");
    };

    let consent = create_consent(&app, &token).await;
    refused(
        form(
            &app,
            "/oauth2/token",
            Some((&id, &secret)),
            &bound(&consent),
        )
        .await,
        "AwaitingAuthorisation",
    );
    // Only the customer's own accounts can be chosen.
    let r = app
        .send(
            app.admin(Method::POST, &format!("/api/v0/consents/{consent}/authorise"))
                .json(&json!({"customer_id": customer, "account_ids": [first_account(&customer), "not-hers"]})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(
        r.json()["Message"]["account_ids[1]"],
        json!(["not-hers is not an account of this customer"])
    );
    let r = authorise(consent.clone(), customer.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "Authorised");
    let r = form(
        &app,
        "/oauth2/token",
        Some((&id, &secret)),
        &bound(&consent),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let access = r.json()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(claims(&access)["sub"], customer.as_str());
    assert_eq!(
        r.json()["authorization_details"][0]["consent_id"],
        consent.as_str()
    );
    assert!(
        r.json().get("refresh_token").is_none(),
        "no refresh token for client_credentials"
    );

    // Another TPP cannot use it.
    let (other, other_secret) = tpp(&app, "Other").await;
    refused(
        form(
            &app,
            "/oauth2/token",
            Some((&other, &other_secret)),
            &bound(&consent),
        )
        .await,
        "not a consent of this client",
    );

    // A KYC downgrade ends access at once: new tokens are refused, the live one is inactive.
    let r = app
        .send(
            app.admin(
                Method::POST,
                &format!("/api/v0/customers/{customer}/verification-kyc/review"),
            )
            .json(&json!({"decision": "failed", "reason": "new evidence"})),
        )
        .await;
    assert_eq!(r.status, 200);
    refused(
        form(
            &app,
            "/oauth2/token",
            Some((&id, &secret)),
            &bound(&consent),
        )
        .await,
        "KYC status failed",
    );
    assert!(!introspect(&app, &id, &secret, &access).await);
    let r = app
        .send(
            app.admin(
                Method::POST,
                &format!("/api/v0/customers/{customer}/verification-kyc/review"),
            )
            .json(&json!({"decision": "passed", "reason": "cleared"})),
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(
        introspect(&app, &id, &secret, &access).await,
        "access follows KYC both ways"
    );

    // The bank revokes: access ends at once and the token is on the deny list.
    let r = app
        .send(
            app.admin(Method::POST, &format!("/api/v0/consents/{consent}/revoke"))
                .json(&json!({"reason": "customer asked the bank"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "Revoked");
    assert!(!introspect(&app, &id, &secret, &access).await);
    refused(
        form(
            &app,
            "/oauth2/token",
            Some((&id, &secret)),
            &bound(&consent),
        )
        .await,
        "Revoked",
    );
    let r = app
        .send(
            app.admin(Method::POST, &format!("/api/v0/consents/{consent}/revoke"))
                .json(&json!({"reason": "again"})),
        )
        .await;
    assert_eq!(r.status, 409);

    // Expiry: past ExpirationDateTime the consent grants nothing, with no job involved.
    let soon = time::OffsetDateTime::from_unix_timestamp(1_790_000_000 + 3600).unwrap();
    let body = json!({"Data": {"Permissions": ["ReadAccountsBasic"], "ExpirationDateTime": soon.format(&time::format_description::well_known::Rfc3339).unwrap()}, "Risk": {}});
    let r = ob(&app, Method::POST, CONSENTS, &token, Some(&body)).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let expiring = r.json()["Data"]["ConsentId"].as_str().unwrap().to_owned();
    assert_eq!(
        authorise(expiring.clone(), customer.clone()).await.status,
        200
    );
    let r = form(
        &app,
        "/oauth2/token",
        Some((&id, &secret)),
        &bound(&expiring),
    )
    .await;
    assert_eq!(r.status, 200);
    clock.advance(Duration::from_secs(3601));
    refused(
        form(
            &app,
            "/oauth2/token",
            Some((&id, &secret)),
            &bound(&expiring),
        )
        .await,
        "expired",
    );

    // A consent not authorised within the window can no longer be.
    let token = cc_token(&app, &id, &secret).await; // the first one expired with the clock
    let late = create_consent(&app, &token).await;
    clock.advance(Duration::from_secs(86_401));
    let r = authorise(late, customer.clone()).await;
    assert_eq!(r.status, 409);
    assert_eq!(r.json()["code"], "consent_authorisation_expired");

    // The customer's dashboard data.
    let r = app
        .admin_get(&format!("/api/v0/customers/{customer}/consents"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let list = r.json()["data"].as_array().unwrap().clone();
    assert_eq!(list.len(), 2);
    assert!(list.iter().all(
        |c| c["client_name"] == "Acme" && c["account_ids"] == json!([first_account(&customer)])
    ));
    assert!(list.iter().any(|c| c["status"] == "Revoked"));
    assert!(list.iter().any(|c| c["expired"] == true));

    let events: Vec<(String,)> = crate::kyc::sqlx_rows(
        &app,
        "SELECT type FROM events WHERE type LIKE 'consent.%' ORDER BY created_at, id",
    )
    .await;
    let mut types: Vec<&str> = events.iter().map(|(t,)| t.as_str()).collect();
    types.sort_unstable();
    assert_eq!(
        types,
        vec![
            "consent.authorised",
            "consent.authorised",
            "consent.revoked"
        ]
    );
}

#[tokio::test]
async fn rejection_and_authorization_request_errors() {
    let app = spawn_with(FAST).await;
    let customer = passed_customer(&app).await;
    let (id, secret) = tpp(&app, "Acme").await;
    let token = cc_token(&app, &id, &secret).await;
    let consent = create_consent(&app, &token).await;
    let (pkce, _) = PkceCodeChallenge::new_random_sha256();
    let base = app.url("/oauth2/authorize");
    let details = form_urlencoded::byte_serialize(
        json!([{"type": "openbanking_account_access", "consent_id": consent}])
            .to_string()
            .as_bytes(),
    )
    .collect::<String>();
    let direct = |extra: &str| {
        format!(
            "{base}?client_id={id}&response_type=code&redirect_uri={}&state=s1&authorization_details={details}{extra}",
            form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
        )
    };
    // Errors that cannot go back to the TPP are a page.
    for url in [
        format!("{base}?client_id=cl_nope&request_uri=x"),
        format!("{base}?client_id={id}&request_uri=urn:ietf:params:oauth:request_uri:forged"),
        direct("&code_challenge=x").replace("tpp.example%2Fcb", "tpp.example%2Fcb%2Fextra"),
    ] {
        let r = app.send(app.client.get(&url)).await;
        assert_eq!(r.status, 400, "{url}");
        assert!(r.header("content-type").unwrap().starts_with("text/html"));
    }
    // The rest go back to the redirect URI with error, state and iss.
    for (extra, error) in [
        ("", "invalid_request"), // no PKCE
        (
            &format!(
                "&code_challenge={}&code_challenge_method=plain",
                pkce.as_str()
            ) as &str,
            "invalid_request",
        ),
        (
            &format!(
                "&code_challenge={}&code_challenge_method=S256&scope=payments",
                pkce.as_str()
            ),
            "invalid_scope",
        ),
    ] {
        let r = app.send(app.client.get(direct(extra))).await;
        assert_eq!(r.status, 303);
        let q = query(r.header("location").unwrap());
        assert_eq!(q["error"], error, "{extra}");
        assert_eq!(q["state"], "s1");
        assert!(q.contains_key("iss"));
    }
    // Another client's PAR request_uri is refused.
    let request_uri = par(&app, &id, &secret, &consent, pkce.as_str())
        .await
        .json()["request_uri"]
        .as_str()
        .unwrap()
        .to_owned();
    let (other, _) = tpp(&app, "Other").await;
    let r = app
        .send(app.client.get(format!(
            "{base}?client_id={other}&request_uri={}",
            form_urlencoded::byte_serialize(request_uri.as_bytes()).collect::<String>()
        )))
        .await;
    assert_eq!(r.status, 400);
    // PAR refuses what /authorize would.
    let r = form(
        &app,
        "/oauth2/par",
        Some((&id, &secret)),
        "response_type=code&redirect_uri=https%3A%2F%2Fevil.example%2Fcb",
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], "invalid_request");

    // The customer declines.
    let challenge = challenge_from(
        &app,
        &format!(
            "{base}?client_id={id}&request_uri={}",
            form_urlencoded::byte_serialize(request_uri.as_bytes()).collect::<String>()
        ),
    )
    .await;
    let r = app
        .send(
            app.admin(
                Method::POST,
                &format!("/api/v0/authorization-requests/{challenge}/reject"),
            )
            .json(&json!({})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let q = query(r.json()["redirect_to"].as_str().unwrap());
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["state"], "st-123");
    let r = ob(
        &app,
        Method::GET,
        &format!("{CONSENTS}/{consent}"),
        &token,
        None,
    )
    .await;
    assert_eq!(r.json()["Data"]["Status"], "Rejected");
    // Rejected is terminal.
    let r = app
        .send(
            app.admin(
                Method::POST,
                &format!("/api/v0/consents/{consent}/authorise"),
            )
            .json(&json!({"customer_id": customer, "account_ids": ["a"]})),
        )
        .await;
    assert_eq!(r.status, 409);
}

#[tokio::test]
async fn require_par_refuses_direct_authorization_requests() {
    let mut env = FAST.to_vec();
    env.push(("OBGATE_OAUTH_REQUIRE_PAR", "true"));
    let app = spawn_with(&env).await;
    let (id, _) = tpp(&app, "Acme").await;
    let url = format!(
        "{}?client_id={id}&response_type=code&redirect_uri={}&state=s",
        app.url("/oauth2/authorize"),
        form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
    );
    let r = app.send(app.client.get(url)).await;
    assert_eq!(r.status, 303);
    let q = query(r.header("location").unwrap());
    assert_eq!(q["error"], "invalid_request");
    assert!(q["error_description"].contains("par"));
    let meta = app
        .get("/.well-known/oauth-authorization-server")
        .await
        .json();
    assert_eq!(meta["require_pushed_authorization_requests"], true);
    assert_eq!(meta["code_challenge_methods_supported"], json!(["S256"]));
}

/// Runs the direct (non-PAR) redirect flow with the oauth2 crate: (consent, access, refresh).
pub async fn authorized(
    app: &TestApp,
    id: &str,
    secret: &str,
    customer: &str,
) -> (String, String, String) {
    let token = cc_token(app, id, secret).await;
    let consent = create_consent(app, &token).await;
    let client = oauth_client(app, id, secret);
    let (pkce, verifier) = PkceCodeChallenge::new_random_sha256();
    let details =
        json!([{"type": "openbanking_account_access", "consent_id": consent}]).to_string();
    let (url, _) = client
        .authorize_url(CsrfToken::new_random)
        .set_pkce_challenge(pkce)
        .add_extra_param("authorization_details", details)
        .url();
    let challenge = challenge_from(app, url.as_str()).await;
    let r = accept(app, &challenge, customer).await;
    let code = query(r.json()["redirect_to"].as_str().unwrap())["code"].clone();
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .request_async(&http())
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    (
        consent,
        tokens.access_token().secret().clone(),
        tokens.refresh_token().unwrap().secret().clone(),
    )
}

#[tokio::test]
async fn revoking_a_refresh_token_or_deleting_the_consent_ends_access_at_once() {
    let app = spawn_with(FAST).await;
    let customer = passed_customer(&app).await;
    let (id, secret) = tpp(&app, "Acme").await;

    // RFC 7009 revocation of a refresh token revokes its family.
    let (_, access, refresh) = authorized(&app, &id, &secret, &customer).await;
    assert!(introspect(&app, &id, &secret, &access).await);
    let (other, other_secret) = tpp(&app, "Other").await;
    let r = form(
        &app,
        "/oauth2/revoke",
        Some((&other, &other_secret)),
        &format!("token={refresh}"),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(
        introspect(&app, &id, &secret, &access).await,
        "another client cannot revoke it"
    );
    let r = form(
        &app,
        "/oauth2/revoke",
        Some((&id, &secret)),
        &format!("token={refresh}&token_type_hint=refresh_token"),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(!introspect(&app, &id, &secret, &access).await);
    // Revoking it again is answered the same (RFC 7009) and does nothing: no second audit
    // row, no second flush of every node's token cache.
    let revokes = app.audit("action=token.revoke").await.len();
    let r = form(
        &app,
        "/oauth2/revoke",
        Some((&id, &secret)),
        &format!("token={refresh}"),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(app.audit("action=token.revoke").await.len(), revokes);
    let r = form(
        &app,
        "/oauth2/token",
        Some((&id, &secret)),
        &format!("grant_type=refresh_token&refresh_token={refresh}"),
    )
    .await;
    assert_eq!(r.json()["error"], "invalid_grant");

    // The TPP's DELETE: every token bound to the consent stops working at once.
    let (consent, access, refresh) = authorized(&app, &id, &secret, &customer).await;
    let token = cc_token(&app, &id, &secret).await;
    let r = ob(
        &app,
        Method::DELETE,
        &format!("{CONSENTS}/{consent}"),
        &token,
        None,
    )
    .await;
    assert_eq!(r.status, 204);
    assert!(!introspect(&app, &id, &secret, &access).await);
    let r = form(
        &app,
        "/oauth2/token",
        Some((&id, &secret)),
        &format!("grant_type=refresh_token&refresh_token={refresh}"),
    )
    .await;
    assert_eq!(r.json()["error"], "invalid_grant");
    let events: Vec<(String,)> = crate::kyc::sqlx_rows(
        &app,
        "SELECT type FROM events WHERE type = 'consent.deleted'",
    )
    .await;
    assert_eq!(events.len(), 1);
}

/// Codes, authorization requests, access-token records and refresh tokens stop mattering at
/// their expiry; a day later the worker deletes them (a busy bank issues millions a day), and
/// not before.
#[tokio::test]
async fn codes_and_token_records_are_deleted_a_day_after_they_expire() {
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_790_000_000_000)));
    let db = TestDb::new().await;
    let cfg = config(&db, FAST);
    let app = spawn_with_clock(db, cfg, clock.clone()).await;
    let customer = passed_customer(&app).await;
    let (id, secret) = tpp(&app, "Acme Budgeting").await;
    let (_, access, _) = authorized(&app, &id, &secret, &customer).await;
    let r = form(
        &app,
        "/oauth2/revoke",
        Some((&id, &secret)),
        &format!("token={access}"),
    )
    .await;
    assert_eq!(r.status, 200);
    let tables = [
        "authorization_codes",
        "authorization_requests",
        "consent_tokens",
        "refresh_tokens",
        "revoked_tokens",
    ];
    let rows = |table: &'static str| {
        let app = &app;
        async move {
            crate::kyc::sqlx_rows::<(i64,)>(app, &format!("SELECT COUNT(*) FROM {table}")).await[0]
                .0
        }
    };
    for t in tables {
        assert!(rows(t).await > 0, "{t} has the authorization's rows");
    }
    // Past expiry, inside the day: kept.
    clock.advance(Duration::from_secs(3600));
    tokio::time::sleep(Duration::from_millis(300)).await;
    for t in ["authorization_codes", "consent_tokens", "revoked_tokens"] {
        assert!(rows(t).await > 0, "{t} kept for a day");
    }
    // A day past the longest (the refresh token's) expiry: all gone.
    clock.advance(Duration::from_secs(400 * 24 * 3600));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    for t in tables {
        while rows(t).await > 0 {
            assert!(std::time::Instant::now() < deadline, "{t} not purged");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
