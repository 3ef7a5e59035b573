//! The attack suite: what a hostile TPP, customer or outsider would try, and the answer each
//! attempt must get. Every test is one line of attack, its variants in a table whose rows
//! name the variant; every test runs on SQLite and on PostgreSQL.
//!
//! Other modules test the features; this one is the place a security reviewer reads to see
//! what has been tried.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use oauth2::{PkceCodeChallenge, PkceCodeVerifier, TokenResponse};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::consents::{authorized, cc_token, create_consent, http, oauth_client, query, tpp};
use crate::gateway::{access, Access, AISP};
use crate::helpers::{spawn_with, Resp, TestApp, PRODUCTION};
use crate::kyc::{passed_customer, FAST};
use crate::oauth::{form, register};

const REDIRECT: &str = "https://tpp.example/cb";
const CONSENTS: &str = "/open-banking/v3.1/aisp/account-access-consents";

fn part(token: &str, i: usize) -> Value {
    serde_json::from_slice(&B64.decode(token.split('.').nth(i).unwrap()).unwrap()).unwrap()
}

fn jws(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string()),
        B64.encode(signature)
    )
}

/// The gateway's answer to a token: `401` must come with the OB challenge and no body.
async fn gateway_answer(app: &TestApp, token: &str) -> u16 {
    let r = app
        .send(
            app.request(Method::GET, &format!("{AISP}/accounts"))
                .bearer_auth(token),
        )
        .await;
    if r.status == 401 {
        assert_eq!(
            r.header("www-authenticate"),
            Some("Bearer error=\"invalid_token\"")
        );
        assert!(r.body.is_empty());
    }
    r.status
}

async fn tpp_access(app: &TestApp) -> Access {
    access(
        app,
        json!({"Permissions": ["ReadAccountsBasic", "ReadBalances"]}),
        None,
    )
    .await
}

/// An ES256 key that is not obgate's, as PKCS#8 PEM.
fn attacker_key() -> jsonwebtoken::EncodingKey {
    use p256::pkcs8::EncodePrivateKey;
    let key = p256::SecretKey::random(&mut rand_core::OsRng);
    let pem = key.to_pkcs8_pem(Default::default()).unwrap();
    jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes()).unwrap()
}

#[tokio::test]
async fn forged_and_misused_tokens_never_reach_account_data() {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};

    let app = spawn_with(FAST).await;
    let a = tpp_access(&app).await;
    let header = part(&a.token, 0);
    let claims = part(&a.token, 1);
    let kid = header["kid"].as_str().unwrap().to_owned();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let set = app.keys.current().await.unwrap();
    // Tokens signed with obgate's own key but with claims it never issued.
    let resign = |edit: &dyn Fn(&mut obgate::oauth::jwt::AccessClaims)| {
        let mut c: obgate::oauth::jwt::AccessClaims =
            serde_json::from_value(claims.clone()).unwrap();
        edit(&mut c);
        obgate::oauth::jwt::sign(&set, &c).unwrap()
    };
    let jwk = app.get("/oauth2/jwks").await.json()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .unwrap()
        .clone();
    let public_pem = {
        use p256::pkcs8::EncodePublicKey;
        let bare = json!({"kty": jwk["kty"], "crv": jwk["crv"], "x": jwk["x"], "y": jwk["y"]});
        p256::PublicKey::from_jwk_str(&bare.to_string())
            .unwrap()
            .to_public_key_pem(Default::default())
            .unwrap()
    };
    let hs256 = |secret: &[u8]| {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some(kid.clone());
        h.typ = Some("at+jwt".into());
        encode(&h, &claims, &EncodingKey::from_secret(secret)).unwrap()
    };
    let es256_by_attacker = |kid: &str| {
        let mut h = Header::new(Algorithm::ES256);
        h.kid = Some(kid.to_owned());
        h.typ = Some("at+jwt".into());
        encode(&h, &claims, &attacker_key()).unwrap()
    };
    let mut swapped = claims.clone();
    swapped["consent_id"] = json!("aac-00000000-0000-4000-8000-000000000000");
    let genuine_signature = B64.decode(a.token.split('.').nth(2).unwrap()).unwrap();

    let attacks: Vec<(&str, String)> = vec![
        (
            "alg none, no signature",
            jws(
                &json!({"alg": "none", "typ": "at+jwt", "kid": kid}),
                &claims,
                b"",
            ),
        ),
        (
            "HS256 keyed with the published public key (PEM)",
            hs256(public_pem.as_bytes()),
        ),
        (
            "HS256 keyed with the published JWK",
            hs256(jwk.to_string().as_bytes()),
        ),
        (
            "another issuer",
            resign(&|c| c.iss = "https://evil.example".into()),
        ),
        (
            "a valid token for another audience",
            resign(&|c| c.aud = "https://other-bank.example".into()),
        ),
        (
            "an expired token replayed",
            resign(&|c| {
                c.exp = now - 60;
                c.iat = now - 400;
                c.nbf = now - 400;
            }),
        ),
        ("not yet valid", resign(&|c| c.nbf = now + 3600)),
        ("a forged kid", es256_by_attacker("kid-that-never-existed")),
        ("obgate's kid on an attacker's key", es256_by_attacker(&kid)),
        (
            "consent_id swapped under the genuine signature",
            jws(&header, &swapped, &genuine_signature),
        ),
        ("typ JWT instead of at+jwt", {
            let mut h = header.clone();
            h["typ"] = json!("JWT");
            jws(&h, &claims, &genuine_signature)
        }),
        ("garbage", "not.a.jwt".into()),
    ];
    for (attack, token) in &attacks {
        assert_eq!(gateway_answer(&app, token).await, 401, "{attack}");
    }

    // A token in the query string is refused, with or without a header beside it.
    for extra_header in [false, true] {
        let mut rb = app.request(
            Method::GET,
            &format!("{AISP}/accounts?access_token={}", a.token),
        );
        if extra_header {
            rb = rb.bearer_auth(&a.token);
        }
        assert_eq!(app.send(rb).await.status, 401, "query token");
    }
    // The genuine token still works: the refusals above were about the forgeries.
    assert_eq!(gateway_answer(&app, &a.token).await, 200);
}

/// A new consent, an authorization request for it with PKCE S256, and the code the bank's UI
/// returns after the customer accepts.
async fn code_for(
    app: &TestApp,
    id: &str,
    token: &str,
    customer: &str,
    challenge: &PkceCodeChallenge,
) -> String {
    let consent = create_consent(app, token).await;
    let details =
        json!([{"type": "openbanking_account_access", "consent_id": consent}]).to_string();
    let url = format!(
        "{}?client_id={id}&response_type=code&redirect_uri={}&state=s1&scope=accounts&code_challenge={}&code_challenge_method=S256&authorization_details={}",
        app.url("/oauth2/authorize"),
        enc(REDIRECT),
        challenge.as_str(),
        enc(&details)
    );
    let r = app.send(app.client.get(&url)).await;
    assert_eq!(r.status, 303, "{}", r.text());
    let location = r.header("location").unwrap().to_owned();
    let challenge_id = query(&location)
        .get("challenge")
        .unwrap_or_else(|| panic!("not sent to the consent UI: {location}"))
        .clone();
    let r = app
        .send(
            app.admin(
                Method::POST,
                &format!("/api/v0/authorization-requests/{challenge_id}/accept"),
            )
            .json(&json!({"customer_id": customer, "account_ids": obgate::sandbox_bank::account_ids(customer)})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    query(r.json()["redirect_to"].as_str().unwrap())["code"].clone()
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn redeem(app: &TestApp, id: &str, secret: &str, code: &str, extra: &str) -> Resp {
    form(
        app,
        "/oauth2/token",
        Some((id, secret)),
        &format!(
            "grant_type=authorization_code&code={code}&redirect_uri={}{extra}",
            enc(REDIRECT)
        ),
    )
    .await
}

fn oauth_error(r: &Resp) -> (u16, String) {
    (
        r.status,
        r.json()["error"].as_str().unwrap_or("").to_owned(),
    )
}

#[tokio::test]
async fn authorization_code_and_pkce_attacks_are_refused() {
    let app = spawn_with(FAST).await;
    let customer = passed_customer(&app).await;
    let (id, secret) = tpp(&app, "Acme").await;
    let token = cc_token(&app, &id, &secret).await;

    // Replay: the second redemption fails and revokes what the first one issued.
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let code = code_for(&app, &id, &token, &customer, &challenge).await;
    let pkce = format!("&code_verifier={}", verifier.secret());
    let first = redeem(&app, &id, &secret, &code, &pkce).await;
    assert_eq!(first.status, 200, "{}", first.text());
    let issued = first.json()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(gateway_answer(&app, &issued).await, 200);
    let replay = redeem(&app, &id, &secret, &code, &pkce).await;
    assert_eq!(
        oauth_error(&replay),
        (400, "invalid_grant".into()),
        "code replay"
    );
    assert_eq!(
        gateway_answer(&app, &issued).await,
        401,
        "tokens of a replayed code"
    );

    // Verifier attacks: each on a fresh code.
    let cases: [(&str, String, (u16, &str)); 4] = [
        ("no code_verifier", String::new(), (400, "invalid_request")),
        (
            "a wrong verifier",
            format!(
                "&code_verifier={}",
                PkceCodeVerifier::new("a".repeat(43)).secret()
            ),
            (400, "invalid_grant"),
        ),
        (
            "the challenge itself as the verifier (plain)",
            String::new(), // filled below: needs the code's own challenge
            (400, "invalid_grant"),
        ),
        (
            "a verifier too short to be one",
            "&code_verifier=abc".into(),
            (400, "invalid_grant"),
        ),
    ];
    for (attack, extra, expected) in cases {
        let (challenge, _) = PkceCodeChallenge::new_random_sha256();
        let code = code_for(&app, &id, &token, &customer, &challenge).await;
        let extra = if attack.contains("plain") {
            format!("&code_verifier={}", challenge.as_str())
        } else {
            extra
        };
        let r = redeem(&app, &id, &secret, &code, &extra).await;
        let (status, error) = oauth_error(&r);
        assert_eq!((status, error.as_str()), expected, "{attack}");
    }

    // The redirect URI at redemption must be the one of the request, exactly.
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let code = code_for(&app, &id, &token, &customer, &challenge).await;
    let r = form(
        &app,
        "/oauth2/token",
        Some((&id, &secret)),
        &format!(
            "grant_type=authorization_code&code={code}&redirect_uri={}&code_verifier={}",
            enc("https://tpp.example/cb/extra"),
            verifier.secret()
        ),
    )
    .await;
    assert_eq!(
        oauth_error(&r),
        (400, "invalid_grant".into()),
        "redirect_uri swap"
    );

    // Another client cannot redeem this client's code, even with its own valid secret.
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let code = code_for(&app, &id, &token, &customer, &challenge).await;
    let (thief, thief_secret) = tpp(&app, "Thief").await;
    let r = redeem(
        &app,
        &thief,
        &thief_secret,
        &code,
        &format!("&code_verifier={}", verifier.secret()),
    )
    .await;
    assert_eq!(
        oauth_error(&r),
        (400, "invalid_grant".into()),
        "stolen code"
    );
}

#[tokio::test]
async fn authorization_requests_that_bend_the_rules_are_refused() {
    let app = spawn_with(FAST).await;
    let (id, secret) = tpp(&app, "Acme").await;
    let token = cc_token(&app, &id, &secret).await;
    let consent = create_consent(&app, &token).await;
    let (challenge, _) = PkceCodeChallenge::new_random_sha256();
    let details =
        enc(&json!([{"type": "openbanking_account_access", "consent_id": consent}]).to_string());
    let authorize = |redirect: &str, pkce: &str| {
        format!(
            "{}?client_id={id}&response_type=code&redirect_uri={}&state=s1&authorization_details={details}{pkce}",
            app.url("/oauth2/authorize"),
            enc(redirect)
        )
    };
    let s256 = format!(
        "&code_challenge={}&code_challenge_method=S256",
        challenge.as_str()
    );
    // A redirect URI that is not exactly a registered one is never redirected to: the
    // customer sees an error page on the bank's domain.
    for (attack, redirect) in [
        ("extra path", "https://tpp.example/cb/extra"),
        (
            "extra query",
            "https://tpp.example/cb?next=https://evil.example",
        ),
        ("different case", "https://TPP.example/CB"),
        ("another host", "https://evil.example/cb"),
        ("userinfo trick", "https://tpp.example@evil.example/cb"),
        ("fragment", "https://tpp.example/cb#x"),
    ] {
        let r = app.send(app.client.get(authorize(redirect, &s256))).await;
        assert_eq!(r.status, 400, "{attack}");
        assert!(r.header("location").is_none(), "{attack} must not redirect");
    }
    // PKCE missing or plain: refused back to the (registered) redirect URI.
    for (attack, pkce) in [
        ("PKCE missing", String::new()),
        (
            "PKCE plain",
            format!(
                "&code_challenge={}&code_challenge_method=plain",
                challenge.as_str()
            ),
        ),
    ] {
        let r = app.send(app.client.get(authorize(REDIRECT, &pkce))).await;
        assert_eq!(r.status, 303, "{attack}");
        let q = query(r.header("location").unwrap());
        assert_eq!(q["error"], "invalid_request", "{attack}");
    }
    // A pushed request_uri works once, for its own client only.
    let pushed = form(
        &app,
        "/oauth2/par",
        Some((&id, &secret)),
        &format!(
            "response_type=code&client_id={id}&redirect_uri={}&scope=accounts&state=s{s256}&authorization_details={details}",
            enc(REDIRECT)
        ),
    )
    .await;
    assert_eq!(pushed.status, 201, "{}", pushed.text());
    let request_uri = enc(pushed.json()["request_uri"].as_str().unwrap());
    let (other, _) = tpp(&app, "Other").await;
    let by = |client: &str| {
        format!(
            "{}?client_id={client}&request_uri={request_uri}",
            app.url("/oauth2/authorize")
        )
    };
    assert_eq!(
        app.send(app.client.get(by(&other))).await.status,
        400,
        "another client's request_uri"
    );
    assert_eq!(app.send(app.client.get(by(&id))).await.status, 303);
    assert_eq!(
        app.send(app.client.get(by(&id))).await.status,
        400,
        "request_uri reused"
    );
}

/// Presents a refresh token with the given client credentials.
async fn present_refresh(app: &TestApp, id: &str, secret: &str, token: &str) -> Resp {
    form(
        app,
        "/oauth2/token",
        Some((id, secret)),
        &format!("grant_type=refresh_token&refresh_token={}", enc(token)),
    )
    .await
}

#[tokio::test]
async fn refresh_token_reuse_revokes_the_whole_family() {
    let app = spawn_with(FAST).await;
    let customer = passed_customer(&app).await;
    let (id, secret) = tpp(&app, "Acme").await;
    let (_, access_token, refresh) = authorized(&app, &id, &secret, &customer).await;
    let client = oauth_client(&app, &id, &secret);
    let rotated = client
        .exchange_refresh_token(&oauth2::RefreshToken::new(refresh.clone()))
        .request_async(&http())
        .await
        .unwrap();
    let new_refresh = rotated.refresh_token().unwrap().secret().clone();
    let new_access = rotated.access_token().secret().clone();
    assert_eq!(gateway_answer(&app, &new_access).await, 200);
    // The stolen, already-used refresh token is presented again.
    let r = present_refresh(&app, &id, &secret, &refresh).await;
    assert_eq!(oauth_error(&r), (400, "invalid_grant".into()));
    // Every token of the family is dead: the legitimate holder's new refresh token and the
    // access tokens issued from the family.
    let r = present_refresh(&app, &id, &secret, &new_refresh).await;
    assert_eq!(oauth_error(&r), (400, "invalid_grant".into()));
    assert_eq!(gateway_answer(&app, &new_access).await, 401);
    assert_eq!(gateway_answer(&app, &access_token).await, 401);
    // A refresh token is bound to its client.
    let (_, _, other_refresh) = authorized(&app, &id, &secret, &customer).await;
    let (thief, thief_secret) = tpp(&app, "Thief").await;
    let r = present_refresh(&app, &thief, &thief_secret, &other_refresh).await;
    assert_eq!(oauth_error(&r), (400, "invalid_grant".into()));
}

#[tokio::test]
async fn a_failed_issuance_leaves_the_code_and_the_refresh_token_usable() {
    let app = spawn_with(FAST).await;
    let customer = passed_customer(&app).await;
    let (id, secret) = tpp(&app, "Acme").await;
    let token = cc_token(&app, &id, &secret).await;

    // The code exchange fails on the database: the code is not spent, the retry succeeds.
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let code = code_for(&app, &id, &token, &customer, &challenge).await;
    let pkce = format!("&code_verifier={}", verifier.secret());
    app.db.refuse_inserts("consent_tokens").await;
    let failed = redeem(&app, &id, &secret, &code, &pkce).await;
    assert_eq!(failed.status, 500, "{}", failed.text());
    app.db.allow_inserts("consent_tokens").await;
    let first = redeem(&app, &id, &secret, &code, &pkce).await;
    assert_eq!(first.status, 200, "the retried exchange: {}", first.text());
    let access_token = first.json()["access_token"].as_str().unwrap().to_owned();
    let refresh = first.json()["refresh_token"].as_str().unwrap().to_owned();

    // A refresh fails the same way: the retry with the same refresh token is not a replay.
    app.db.refuse_inserts("consent_tokens").await;
    let failed = present_refresh(&app, &id, &secret, &refresh).await;
    assert_eq!(failed.status, 500, "{}", failed.text());
    app.db.allow_inserts("consent_tokens").await;
    // A malformed refresh (a wider scope) is refused without spending the token either.
    let widened = form(
        &app,
        "/oauth2/token",
        Some((&id, &secret)),
        &format!(
            "grant_type=refresh_token&refresh_token={}&scope=accounts%20payments",
            enc(&refresh)
        ),
    )
    .await;
    assert_eq!(oauth_error(&widened), (400, "invalid_scope".into()));
    let rotated = present_refresh(&app, &id, &secret, &refresh).await;
    assert_eq!(
        rotated.status,
        200,
        "the retried refresh: {}",
        rotated.text()
    );
    let next = rotated.json()["refresh_token"].as_str().unwrap().to_owned();
    // The family is whole: the first access token still reads, the new refresh token works.
    assert_eq!(gateway_answer(&app, &access_token).await, 200);
    assert_eq!(present_refresh(&app, &id, &secret, &next).await.status, 200);
    // What failed left nothing behind but its refusal: four issuances (the client-credentials
    // token, the code, two refreshes), and the two failures and the wider scope as denials.
    let audited = |outcome: &str| format!("actor_id={id}&action=token.issue&outcome={outcome}");
    assert_eq!(app.audit(&audited("success")).await.len(), 4);
    let denied: Vec<Value> = app
        .audit(&audited("denied"))
        .await
        .iter()
        .map(|row| row["reason"].clone())
        .collect();
    assert_eq!(
        denied,
        [
            json!("invalid_scope"),
            json!("internal_error"),
            json!("internal_error")
        ]
    );
}

#[tokio::test]
async fn revoking_a_family_while_it_refreshes_revokes_what_that_refresh_issues() {
    let app = spawn_with(FAST).await;
    let customer = passed_customer(&app).await;
    let (id, secret) = tpp(&app, "Acme").await;
    let (_, _, refresh) = authorized(&app, &id, &secret, &customer).await;
    // On PostgreSQL the issuance is slowed inside its transaction, so the revocation below
    // lands while it is in flight (SQLite runs one writer at a time: the revocation waits).
    if app.db.is_postgres() {
        app.db
            .exec(
                "CREATE FUNCTION slow_issuance() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN PERFORM pg_sleep(1); RETURN NEW; END $$; \
                 CREATE TRIGGER slow_issuance BEFORE INSERT ON refresh_tokens \
                 FOR EACH ROW EXECUTE FUNCTION slow_issuance();",
            )
            .await;
    }
    let refreshing = present_refresh(&app, &id, &secret, &refresh);
    let revoking = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        form(
            &app,
            "/oauth2/revoke",
            Some((&id, &secret)),
            &format!("token={}&token_type_hint=refresh_token", enc(&refresh)),
        )
        .await
    };
    let (rotated, revoked) = tokio::join!(refreshing, revoking);
    assert_eq!(revoked.status, 200, "{}", revoked.text());
    assert_eq!(rotated.status, 200, "{}", rotated.text());
    // The refresh committed while its family was being revoked: what it handed out is dead.
    let new_access = rotated.json()["access_token"].as_str().unwrap().to_owned();
    let new_refresh = rotated.json()["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(gateway_answer(&app, &new_access).await, 401);
    let r = present_refresh(&app, &id, &secret, &new_refresh).await;
    assert_eq!(oauth_error(&r), (400, "invalid_grant".into()));
}

#[tokio::test]
async fn client_authentication_with_the_wrong_or_a_disabled_clients_credentials_fails() {
    let app = spawn_with(&[]).await;
    let (a, a_secret) = register(&app, json!({"client_name": "A"})).await;
    let (b, b_secret) = register(&app, json!({"client_name": "B"})).await;
    let cc = "grant_type=client_credentials&scope=accounts";
    for (attack, id, secret) in [
        (
            "client B's secret under A's id",
            a.as_str(),
            b_secret.as_str(),
        ),
        ("an empty secret", a.as_str(), ""),
        (
            "an unknown id with a real secret",
            "cl_made_up",
            a_secret.as_str(),
        ),
    ] {
        let r = form(&app, "/oauth2/token", Some((id, secret)), cc).await;
        assert_eq!(oauth_error(&r), (401, "invalid_client".into()), "{attack}");
    }
    // Disabled: the correct secret is refused at once, even though it was just verified.
    assert_eq!(
        form(&app, "/oauth2/token", Some((&b, &b_secret)), cc)
            .await
            .status,
        200
    );
    let r = app
        .send(app.admin(Method::DELETE, &format!("/api/v0/oauth-clients/{b}")))
        .await;
    assert_eq!(r.status, 204);
    let r = form(&app, "/oauth2/token", Some((&b, &b_secret)), cc).await;
    assert_eq!(
        oauth_error(&r),
        (401, "invalid_client".into()),
        "disabled client"
    );
}

#[tokio::test]
async fn a_client_disabled_a_moment_ago_cannot_read_with_the_tokens_it_holds() {
    let app = spawn_with(FAST).await;
    let a = tpp_access(&app).await;
    assert_eq!(gateway_answer(&app, &a.token).await, 200);
    let r = app
        .send(app.admin(
            Method::DELETE,
            &format!("/api/v0/oauth-clients/{}", a.client_id),
        ))
        .await;
    assert_eq!(r.status, 204);
    // The customer-bound token is unexpired and its consent still authorised, but its client
    // is disabled: refused as an invalid token, and audited with why.
    assert_eq!(gateway_answer(&app, &a.token).await, 401);
    let query = format!("client_id={}&outcome=denied", a.client_id);
    let denied = app
        .decisions_eventually(&query, |rows| !rows.is_empty())
        .await;
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0]["reason"], "client_disabled", "{denied:?}");
}

#[tokio::test]
async fn another_tpps_consent_is_out_of_reach_on_every_route() {
    let app = spawn_with(FAST).await;
    let victim = tpp_access(&app).await;
    let (thief, thief_secret) = tpp(&app, "Thief").await;
    let thief_token = cc_token(&app, &thief, &thief_secret).await;
    // Another TPP's consent is answered exactly as a consent that does not exist (the UK OB
    // 400 UK.OBIE.Resource.NotFound), so ids cannot be probed either.
    for method in [Method::GET, Method::DELETE] {
        for (what, id) in [
            ("another TPP's consent", victim.consent_id.as_str()),
            (
                "no such consent",
                "aac-00000000-0000-4000-8000-000000000000",
            ),
        ] {
            let r = app
                .send(
                    app.request(method.clone(), &format!("{CONSENTS}/{id}"))
                        .bearer_auth(&thief_token),
                )
                .await;
            assert_eq!(r.status, 400, "{method} {what}: {}", r.text());
            assert_eq!(
                r.json()["Errors"][0]["ErrorCode"],
                "UK.OBIE.Resource.NotFound",
                "{method} {what}"
            );
        }
    }
    // Still there, still authorised: the DELETE above did nothing.
    assert_eq!(gateway_answer(&app, &victim.token).await, 200);
    // No token for it, by client_credentials or by an authorization request.
    let r = crate::gateway::bound_token(&app, &thief, &thief_secret, &victim.consent_id).await;
    assert_eq!(oauth_error(&r), (400, "invalid_grant".into()));
    let register_redirect = register(
        &app,
        json!({"client_name": "Thief2", "redirect_uris": [REDIRECT], "grant_types": ["client_credentials", "authorization_code"]}),
    )
    .await;
    let (challenge, _) = PkceCodeChallenge::new_random_sha256();
    let details = enc(
        &json!([{"type": "openbanking_account_access", "consent_id": victim.consent_id}])
            .to_string(),
    );
    let url = format!(
        "{}?client_id={}&response_type=code&redirect_uri={}&state=s&code_challenge={}&code_challenge_method=S256&authorization_details={details}",
        app.url("/oauth2/authorize"),
        register_redirect.0,
        enc(REDIRECT),
        challenge.as_str()
    );
    let r = app.send(app.client.get(&url)).await;
    assert_eq!(r.status, 303);
    let q = query(r.header("location").unwrap());
    assert_eq!(q["error"], "invalid_authorization_details", "{q:?}");
    assert!(!q.contains_key("challenge"), "never reaches the customer");
}

#[tokio::test]
async fn an_account_of_another_customer_is_refused() {
    let app = spawn_with(FAST).await;
    let mine = tpp_access(&app).await;
    let other = passed_customer(&app).await;
    let theirs = obgate::sandbox_bank::account_ids(&other)[0].clone();
    for path in [
        format!("{AISP}/accounts/{theirs}"),
        format!("{AISP}/accounts/{theirs}/balances"),
    ] {
        let r = app
            .send(app.request(Method::GET, &path).bearer_auth(&mine.token))
            .await;
        assert_eq!(r.status, 403, "{path}");
        assert_eq!(
            r.json()["Errors"][0]["ErrorCode"],
            "UK.OBIE.Resource.ConsentMismatch"
        );
    }
    // And the bulk list never includes it.
    let r = app
        .send(
            app.request(Method::GET, &format!("{AISP}/accounts"))
                .bearer_auth(&mine.token),
        )
        .await;
    assert!(!r.text().contains(&theirs));
}

#[tokio::test]
async fn a_consent_revoked_a_moment_ago_is_refused_on_the_next_request() {
    let app = spawn_with(FAST).await;
    let a = tpp_access(&app).await;
    assert_eq!(gateway_answer(&app, &a.token).await, 200);
    let r = app
        .send(
            app.admin(
                Method::POST,
                &format!("/api/v0/consents/{}/revoke", a.consent_id),
            )
            .json(&json!({"reason": "customer asked the bank"})),
        )
        .await;
    assert!(r.status == 200 || r.status == 204, "{}", r.text());
    let r = app
        .send(
            app.request(Method::GET, &format!("{AISP}/accounts"))
                .bearer_auth(&a.token),
        )
        .await;
    // Revoking a consent revokes its tokens too: the token itself is no longer accepted.
    assert_eq!(r.status, 401, "{}", r.text());
    let r = crate::gateway::bound_token(&app, &a.client_id, &a.secret, &a.consent_id).await;
    assert_eq!(oauth_error(&r), (400, "invalid_grant".into()));
}

#[tokio::test]
async fn a_customer_whose_kyc_was_downgraded_a_moment_ago_is_refused() {
    let app = spawn_with(FAST).await;
    let a = tpp_access(&app).await;
    assert_eq!(gateway_answer(&app, &a.token).await, 200);
    let r = app
        .send(
            app.admin(
                Method::POST,
                &format!(
                    "/api/v0/customers/{}/verification-kyc/review",
                    a.customer_id
                ),
            )
            .json(&json!({"decision": "failed", "reason": "new evidence"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = app
        .send(
            app.request(Method::GET, &format!("{AISP}/accounts"))
                .bearer_auth(&a.token),
        )
        .await;
    assert_eq!(r.status, 403);
    let r = crate::gateway::bound_token(&app, &a.client_id, &a.secret, &a.consent_id).await;
    assert_eq!(oauth_error(&r), (400, "invalid_grant".into()));
}

#[tokio::test]
async fn a_consent_past_its_expiry_is_refused_though_its_token_lives() {
    let start = 1_790_000_000;
    let (app, clock) = crate::helpers::spawn_at(start, FAST).await;
    let expires = time::OffsetDateTime::from_unix_timestamp(start + 60)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let a = access(
        &app,
        json!({"Permissions": ["ReadAccountsBasic"], "ExpirationDateTime": expires}),
        None,
    )
    .await;
    assert_eq!(gateway_answer(&app, &a.token).await, 200);
    clock.advance(Duration::from_secs(61));
    let r = app
        .send(
            app.request(Method::GET, &format!("{AISP}/accounts"))
                .bearer_auth(&a.token),
        )
        .await;
    assert_eq!(r.status, 403);
    let r = crate::gateway::bound_token(&app, &a.client_id, &a.secret, &a.consent_id).await;
    assert_eq!(oauth_error(&r), (400, "invalid_grant".into()));
}

/// One raw HTTP/1.1 exchange: what the server sent back, all of it, or until `within`.
async fn raw(app: &TestApp, request: &[u8], within: Duration) -> String {
    let addr = app.base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(within, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn status_of(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"))
}

#[tokio::test]
async fn path_tricks_on_the_gateway_are_refused_before_any_check() {
    let app = spawn_with(FAST).await;
    let a = tpp_access(&app).await;
    let acc = obgate::sandbox_bank::account_ids(&a.customer_id)[0].clone();
    let get = |path: String| {
        format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            a.token
        )
    };
    for (attack, path) in [
        ("dot-dot", format!("{AISP}/accounts/{acc}/../../balances")),
        (
            "encoded dot-dot",
            format!("{AISP}/accounts/%2e%2e/balances"),
        ),
        ("encoded slash", format!("{AISP}/accounts/{acc}%2Fbalances")),
        (
            "double-encoded slash",
            format!("{AISP}/accounts/{acc}%252Fbalances"),
        ),
        (
            "encoded backslash",
            format!("{AISP}/accounts/{acc}%5C..%5Cbalances"),
        ),
        ("NUL byte", format!("{AISP}/accounts/{acc}%00/balances")),
        (
            "CRLF in the path",
            format!("{AISP}/accounts/{acc}%0d%0aX-Injected:%201"),
        ),
        ("empty segment", format!("{AISP}//accounts")),
        ("dot segment", format!("{AISP}/./accounts")),
        ("trailing slash", format!("{AISP}/accounts/")),
    ] {
        let response = raw(&app, get(path).as_bytes(), Duration::from_secs(10)).await;
        assert_eq!(status_of(&response), 400, "{attack}: {response}");
    }
}

#[tokio::test]
async fn header_injection_and_oversized_requests_are_refused() {
    let app = spawn_with(&[]).await;
    // A bare CR inside a header value is a malformed request. A bare LF ends a header line
    // (RFC 9112 §2.2 lets a server read it so), so the injected line is one more request
    // header: either way nothing the attacker wrote reaches the response.
    for (attack, value, statuses) in [
        ("bare CR", "abc\rSet-Cookie: pwned=1", &[400][..]),
        ("bare LF", "abc\nSet-Cookie: pwned=1", &[200, 400][..]),
    ] {
        let req = format!("GET /healthz HTTP/1.1\r\nHost: x\r\nx-fapi-interaction-id: {value}\r\nConnection: close\r\n\r\n");
        let response = raw(&app, req.as_bytes(), Duration::from_secs(10)).await;
        assert!(
            statuses.contains(&status_of(&response)),
            "{attack}: {response}"
        );
        let lower = response.to_ascii_lowercase();
        assert!(
            !lower.contains("pwned") && !lower.contains("set-cookie"),
            "{attack}: {response}"
        );
    }
    // An encoded CRLF in the interaction id is not echoed (it is not a usable id).
    let r = app
        .send(
            app.request(Method::GET, "/healthz")
                .header("x-fapi-interaction-id", "abc%0d%0aSet-Cookie:%20pwned=1"),
        )
        .await;
    assert!(uuid::Uuid::parse_str(r.header("x-fapi-interaction-id").unwrap()).is_ok());
    assert!(r.header("set-cookie").is_none());

    // Oversized headers: one huge header, and very many headers.
    let huge = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nx-junk: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(512 * 1024)
    );
    let response = raw(&app, huge.as_bytes(), Duration::from_secs(10)).await;
    assert_eq!(status_of(&response), 431, "one huge header");
    let many: String = (0..200).map(|i| format!("x-h{i}: v\r\n")).collect();
    let req = format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many}Connection: close\r\n\r\n");
    let response = raw(&app, req.as_bytes(), Duration::from_secs(10)).await;
    assert_eq!(status_of(&response), 431, "200 headers");

    // An oversized body, declared or streamed, is 413 in the path's error family.
    let big = "a=".to_owned() + &"b".repeat(2 * 1024 * 1024);
    let r = app
        .send(
            app.request(Method::POST, "/oauth2/token")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(big.clone()),
        )
        .await;
    assert_eq!(r.status, 413);
    assert!(r.json()["error"].is_string());
    let r = app
        .send(
            app.admin(Method::POST, "/api/v0/customers")
                .header("content-type", "application/json")
                .body(format!(
                    "{{\"first_name\": \"{}\"}}",
                    "x".repeat(2 * 1024 * 1024)
                )),
        )
        .await;
    assert_eq!(r.status, 413);
    // The server is fine afterwards.
    assert_eq!(app.get("/healthz").await.status, 200);
}

#[tokio::test]
async fn a_slow_client_cannot_hold_a_connection_or_a_worker() {
    let app = spawn_with(&[("OBGATE_HTTP_HEADER_TIMEOUT", "1s")]).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    // Fifty slowloris connections trickle header bytes; five more connect and say nothing.
    let mut slow = vec![];
    for i in 0..55 {
        let addr = addr.clone();
        slow.push(tokio::spawn(async move {
            let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
            let started = std::time::Instant::now();
            if i < 50 {
                s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                    .await
                    .unwrap();
            }
            let mut buf = [0u8; 1024];
            loop {
                tokio::select! {
                    read = s.read(&mut buf) => {
                        // The server answered (408) or closed: the slow client is cut off.
                        let _ = read;
                        return started.elapsed();
                    }
                    () = tokio::time::sleep(Duration::from_millis(200)) => {
                        if i < 50 && s.write_all(b"X-Slow: 1\r\n").await.is_err() {
                            return started.elapsed();
                        }
                        if started.elapsed() > Duration::from_secs(20) {
                            return started.elapsed();
                        }
                    }
                }
            }
        }));
    }
    // Meanwhile everyone else is served.
    for _ in 0..20 {
        assert_eq!(app.get("/healthz").await.status, 200);
    }
    for handle in slow {
        let held = handle.await.unwrap();
        assert!(
            held < Duration::from_secs(10),
            "a slow connection was held {held:?}; the header timeout is 1s"
        );
    }
}

#[tokio::test]
async fn malformed_json_and_form_bodies_get_a_clear_400() {
    let app = spawn_with(&[]).await;
    for (attack, body) in [
        ("truncated JSON", "{\"first_name\": "),
        ("not JSON", "first_name=Jane"),
        ("a JSON array", "[1,2,3]"),
        ("deeply nested", &("[".repeat(10_000) + &"]".repeat(10_000))),
        ("invalid UTF-8 escape", "{\"first_name\": \"\\ud800\"}"),
    ] {
        let r = app
            .send(
                app.admin(Method::POST, "/api/v0/customers")
                    .header("content-type", "application/json")
                    .body(body.to_owned()),
            )
            .await;
        assert_eq!(r.status, 400, "{attack}: {}", r.text());
        assert!(r.json()["Message"].is_string(), "{attack}");
    }
    for (attack, body) in [
        ("bad percent-encoding", "grant_type=%zz&scope=%"),
        (
            "repeated parameter",
            "grant_type=client_credentials&grant_type=refresh_token",
        ),
        ("binary junk", "\u{0}\u{1}\u{2}=\u{3}"),
    ] {
        let r = app
            .send(
                app.request(Method::POST, "/oauth2/token")
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body.to_owned()),
            )
            .await;
        assert!(r.status == 400 || r.status == 401, "{attack}: {}", r.status);
        assert!(r.json()["error"].is_string(), "{attack}");
    }
    // A JSON body where a form is expected, and the reverse, are refused by content type.
    let r = app
        .send(
            app.request(Method::POST, "/oauth2/token")
                .header("content-type", "application/json")
                .body("{\"grant_type\": \"client_credentials\"}"),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], "invalid_request");
}

#[tokio::test]
async fn sql_metacharacters_are_stored_and_returned_verbatim_never_executed() {
    let app = spawn_with(&[]).await;
    // Each field takes what its own rule allows: names only letters, spaces and apostrophes
    // (still enough for `' OR '`), street lines and client names almost anything.
    let names = ["Robert' OR 'a' LIKE 'a", "O'Brien'' DROP TABLE customers"];
    let evil = [
        "Robert'); DROP TABLE customers;--",
        "x' OR '1'='1",
        "\"; DELETE FROM audit_log; --",
        "1; SELECT pg_sleep(10)",
        "%_\\ UNION SELECT * FROM admin_keys",
    ];
    let mut ids = vec![];
    for (i, text) in evil.iter().enumerate() {
        let name = names[i % names.len()];
        let mut body = crate::kyc::customer_body("Jane");
        body["first_name"] = json!(name);
        body["last_name"] = json!(name);
        body["addresses"][0]["street"] = json!(text);
        body["addresses"][0]["city"] = json!(text);
        let r = app
            .send(app.admin(Method::POST, "/api/v0/customers").json(&body))
            .await;
        assert_eq!(r.status, 201, "{text}: {}", r.text());
        let id = r.json()["customer_id"].as_str().unwrap().to_owned();
        let back = app
            .admin_get(&format!("/api/v0/customers/{id}"))
            .await
            .json();
        assert_eq!(back["first_name"], name);
        assert_eq!(back["last_name"], name);
        assert_eq!(back["addresses"][0]["street"], *text);
        assert_eq!(back["addresses"][0]["city"], *text);
        ids.push(id);
        let (client, _) = register(&app, json!({"client_name": text})).await;
        let back = app
            .admin_get(&format!("/api/v0/oauth-clients/{client}"))
            .await
            .json();
        assert_eq!(back["client_name"], *text);
    }
    // In a filter or a path, they match nothing rather than everything.
    for name in evil {
        let rows = app.audit(&format!("actor_id={}", enc(name))).await;
        assert!(rows.is_empty(), "{name}: {rows:?}");
        let r = app
            .admin_get(&format!("/api/v0/customers/{}", enc(name)))
            .await;
        assert_eq!(r.status, 404, "{name}");
    }
    // Every table is still there and whole.
    for id in ids {
        assert_eq!(
            app.admin_get(&format!("/api/v0/customers/{id}"))
                .await
                .status,
            200
        );
    }
}

#[tokio::test]
async fn every_admin_route_refuses_no_key_a_revoked_key_and_a_tpp_token() {
    let app = spawn_with(FAST).await;
    let a = tpp_access(&app).await;
    let r = app
        .send(
            app.admin(Method::POST, "/api/v0/admin-keys")
                .json(&json!({"name": "soon revoked"})),
        )
        .await;
    let created = r.json();
    let revoked = created["key"].as_str().unwrap().to_owned();
    let r = app
        .send(app.admin(
            Method::DELETE,
            &format!("/api/v0/admin-keys/{}", created["id"].as_str().unwrap()),
        ))
        .await;
    assert_eq!(r.status, 204);
    let tpp_token = cc_token(&app, &a.client_id, &a.secret).await;

    let spec: Value = serde_yaml::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/obgate.yaml"))
            .unwrap(),
    )
    .unwrap();
    let mut checked = 0;
    let param = regex::Regex::new(r"\{[^}]+\}").unwrap();
    for (path, item) in spec["paths"].as_object().unwrap() {
        if !path.starts_with("/api/v0") {
            continue;
        }
        for (method, op) in item.as_object().unwrap() {
            let Ok(method) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            let admin = op["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|r| r.get("adminKey").is_some()));
            if !admin {
                continue;
            }
            let concrete = param.replace_all(path, "x1");
            for (who, credential) in [
                ("no key", None),
                ("a revoked key", Some(revoked.as_str())),
                ("a TPP's access token", Some(tpp_token.as_str())),
                ("a customer-bound token", Some(a.token.as_str())),
            ] {
                let mut rb = app
                    .request(method.clone(), &concrete)
                    .header("content-type", "application/json")
                    .body("{}");
                if let Some(c) = credential {
                    rb = rb.bearer_auth(c);
                }
                let r = app.send(rb).await;
                assert_eq!(r.status, 401, "{method} {path} with {who}: {}", r.text());
                checked += 1;
            }
        }
    }
    assert!(
        checked > 100,
        "only {checked} admin checks: did the spec change?"
    );
}

#[tokio::test]
async fn webhooks_to_internal_addresses_are_refused_in_production() {
    let app = spawn_with(PRODUCTION).await;
    for (attack, url) in [
        ("loopback name", "https://localhost/hook"),
        ("loopback IPv4", "https://127.0.0.1/hook"),
        ("loopback in decimal", "https://2130706433/hook"),
        ("loopback IPv6", "https://[::1]/hook"),
        ("IPv4-mapped loopback", "https://[::ffff:127.0.0.1]/hook"),
        ("private 10/8", "https://10.1.2.3/hook"),
        ("private 192.168/16", "https://192.168.0.10/hook"),
        ("private 172.16/12", "https://172.20.0.1/hook"),
        ("carrier-grade NAT", "https://100.64.0.1/hook"),
        ("link-local", "https://169.254.10.10/hook"),
        (
            "cloud metadata",
            "https://169.254.169.254/latest/meta-data/",
        ),
        ("IPv6 link-local", "https://[fe80::1]/hook"),
        ("IPv6 unique local", "https://[fd00::1]/hook"),
        ("unspecified", "https://0.0.0.0/hook"),
        ("plain http", "http://hooks.tpp.example/hook"),
    ] {
        let r = app
            .send(
                app.admin(Method::POST, "/api/v0/webhooks")
                    .json(&json!({"url": url, "events": ["kyc.verification.success"]})),
            )
            .await;
        assert_eq!(r.status, 400, "{attack}: {}", r.text());
    }
    assert!(app.admin_get("/api/v0/webhooks").await.json()["data"]
        .as_array()
        .unwrap()
        .is_empty());
}
