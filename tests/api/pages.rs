//! The hosted pages over HTTP, as a browser would drive them (cookies and forms by hand, so
//! every flag and field is asserted): sign-in by the bank's assertion and its refusals, the
//! session's lifetime and sign-out, CSRF on every form, the consent screen and its KYC gate,
//! the dashboard's revoke, and the bank's keys from a JWK set URL. The real browser journey is
//! in `browser.rs`.

use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use oauth2::{CsrfToken, PkceCodeChallenge};
use reqwest::Method;
use serde_json::{json, Value};

use obgate::clock::{Clock, ManualClock, Timestamp};

use crate::consents::{cc_token, create_consent, oauth_client, ob, query, tpp, REDIRECT};
use crate::helpers::{config, spawn_with, spawn_with_clock, Resp, TestApp, TestDb};
use crate::kyc::{create_customer, passed_customer, FAST};

/// The bank's side of sign-in: a P-256 key pair, its public half in a PEM file for obgate.
pub struct Bank {
    _dir: tempfile::TempDir,
    pub pem_path: String,
    key: EncodingKey,
    /// The public key as a JWK (no `kid`).
    pub jwk: Value,
}

pub const BANK_ISSUER: &str = "https://login.bank.example";

impl Bank {
    pub fn new() -> Self {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let pem_path = dir.path().join("bank.pem").display().to_string();
        std::fs::write(&pem_path, pair.public_key_pem()).unwrap();
        let key = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap();
        let raw = pair.public_key_raw();
        let b64 = |b: &[u8]| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
        };
        let jwk = json!({"kty": "EC", "crv": "P-256", "x": b64(&raw[1..33]), "y": b64(&raw[33..65]), "alg": "ES256", "use": "sig"});
        Self {
            _dir: dir,
            pem_path,
            key,
            jwk,
        }
    }

    /// Config naming this bank's key and issuer.
    pub fn env(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("OBGATE_PAGES_ASSERTION_PUBLIC_KEY", self.pem_path.as_str()),
            ("OBGATE_PAGES_ASSERTION_ISSUER", BANK_ISSUER),
        ]
    }

    /// Signs `claims` with this bank's key (and `kid`, when given).
    pub fn sign(&self, claims: &Value, kid: Option<&str>) -> String {
        let mut h = Header::new(Algorithm::ES256);
        h.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&h, claims, &self.key).unwrap()
    }

    /// A good assertion for `customer`, for obgate at `audience`, valid 2 minutes from `now`.
    pub fn assertion(&self, audience: &str, customer: &str, now: Timestamp) -> String {
        self.sign(&claims(audience, customer, now), None)
    }
}

pub fn claims(audience: &str, customer: &str, now: Timestamp) -> Value {
    let t = now.millis() / 1000;
    json!({"iss": BANK_ISSUER, "sub": customer, "aud": audience, "iat": t, "exp": t + 120,
           "jti": uuid::Uuid::new_v4().to_string()})
}

/// obgate's public base URL, the audience of an assertion.
pub async fn audience(app: &TestApp) -> String {
    app.get("/.well-known/oauth-authorization-server")
        .await
        .json()["issuer"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// `name=value` of the cookie `name` the response sets.
fn set_cookie<'a>(r: &'a Resp, name: &str) -> Option<&'a str> {
    r.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
}

const SESSION: &str = "__Host-obgate-session";

fn cookie_pair(set: &str) -> String {
    set.split(';').next().unwrap().to_owned()
}

/// Signs `customer` in with a fresh assertion; returns the `Cookie` header value.
pub async fn sign_in(app: &TestApp, bank: &Bank, customer: &str) -> String {
    let a = bank.assertion(&audience(app).await, customer, app.clock.now());
    let r = app
        .get(&format!("/login?assertion={a}&return_to=%2Fdashboard"))
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    cookie_pair(set_cookie(&r, SESSION).expect("session cookie"))
}

async fn page(app: &TestApp, path: &str, cookie: &str) -> Resp {
    app.send(app.request(Method::GET, path).header("cookie", cookie))
        .await
}

async fn post_form(app: &TestApp, path: &str, cookie: &str, fields: &[(&str, &str)]) -> Resp {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    app.send(
        app.request(Method::POST, path)
            .header("cookie", cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body),
    )
    .await
}

/// Posts the consent screen's form: `decision` with `accounts`, the screen's `token`.
async fn decide(
    app: &TestApp,
    cookie: &str,
    challenge: &str,
    token: &str,
    decision: &str,
    accounts: &[&str],
) -> Resp {
    let mut fields = vec![
        ("challenge", challenge),
        ("decision", decision),
        ("csrf_token", token),
    ];
    fields.extend(accounts.iter().map(|a| ("account_id", *a)));
    post_form(app, "/consent", cookie, &fields).await
}

/// The value of the first hidden `csrf_token` field on a page.
fn csrf_of(html: &str) -> String {
    let at = html
        .find("name=\"csrf_token\" value=\"")
        .expect("csrf field")
        + 25;
    html[at..at + 43].to_owned()
}

/// A TPP's authorization request in flight: (consent id, challenge, PKCE verifier).
pub async fn pending_request(app: &TestApp, id: &str, secret: &str) -> (String, String, String) {
    let token = cc_token(app, id, secret).await;
    let consent = create_consent(app, &token).await;
    let (pkce, verifier) = PkceCodeChallenge::new_random_sha256();
    let details =
        json!([{"type": "openbanking_account_access", "consent_id": consent}]).to_string();
    let (url, _) = oauth_client(app, id, secret)
        .authorize_url(CsrfToken::new_random)
        .set_pkce_challenge(pkce)
        .add_extra_param("authorization_details", details)
        .url();
    let r = app.send(app.client.get(url.as_str())).await;
    assert_eq!(r.status, 303, "{}", r.text());
    let challenge = query(r.header("location").unwrap())["challenge"].clone();
    (consent, challenge, verifier.secret().clone())
}

async fn consent_status(app: &TestApp, consent: &str) -> String {
    app.admin_get(&format!("/api/v0/consents/{consent}"))
        .await
        .json()["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn assert_locked_down(r: &Resp) {
    let csp = r.header("content-security-policy").expect("CSP");
    for part in [
        "default-src 'none'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ] {
        assert!(csp.contains(part), "{csp} lacks {part}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(!csp.contains("script-src"), "no scripts at all: {csp}");
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
}

#[tokio::test]
async fn a_bank_assertion_signs_the_customer_in_once_with_a_locked_down_cookie() {
    let bank = Bank::new();
    let app = spawn_with(&[FAST, &bank.env()].concat()).await;
    let customer = passed_customer(&app).await;
    let aud = audience(&app).await;

    // No session: the dashboard sends the customer to sign in, and back afterwards.
    let r = app.get("/dashboard").await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/login?return_to=%2Fdashboard"));

    let a = bank.assertion(&aud, &customer, app.clock.now());
    let r = app
        .get(&format!("/login?assertion={a}&return_to=%2Fdashboard"))
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location"), Some("/dashboard"));
    let set = set_cookie(&r, SESSION).expect("session cookie");
    for flag in [
        "Secure",
        "HttpOnly",
        "SameSite=Lax",
        "Path=/",
        "Max-Age=900",
    ] {
        assert!(set.split("; ").any(|p| p == flag), "{set} lacks {flag}");
    }
    assert!(
        !set.contains("Domain"),
        "__Host- cookies carry no Domain: {set}"
    );
    let cookie = cookie_pair(set);
    let r = page(&app, "/dashboard", &cookie).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("Connected apps"));
    assert_locked_down(&r);

    // Single use: the same assertion again is refused, and audited without the customer.
    let r = app
        .get(&format!("/login?assertion={a}&return_to=%2Fdashboard"))
        .await;
    assert_eq!(r.status, 401);
    assert!(set_cookie(&r, SESSION).is_none());
    assert!(r.text().contains("We could not sign you in"));
    let denied = app.audit("action=pages.sign_in&outcome=denied").await;
    assert_eq!(denied[0]["reason"], "assertion_replayed");
    assert_eq!(denied[0]["actor_type"], "anonymous");
    let ok = app.audit("action=pages.sign_in&outcome=success").await;
    assert_eq!(ok[0]["actor_id"], customer.as_str());
    assert_eq!(ok[0]["actor_type"], "customer");

    // `return_to` only leads to obgate's own pages.
    for evil in [
        "https://evil.example/",
        "//evil.example",
        "/%2F%2Fevil.example",
        "/api/v0/audit",
    ] {
        let a = bank.assertion(&aud, &customer, app.clock.now());
        let q: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("assertion", &a)
            .append_pair("return_to", evil)
            .finish();
        let r = app.get(&format!("/login?{q}")).await;
        assert_eq!(r.status, 303);
        assert_eq!(r.header("location"), Some("/dashboard"), "{evil}");
    }

    // The bank's login may post the assertion as a form instead.
    let a = bank.assertion(&aud, &customer, app.clock.now());
    let r = post_form(
        &app,
        "/login",
        "",
        &[("assertion", &a), ("return_to", "/dashboard")],
    )
    .await;
    assert_eq!(r.status, 303);
    assert!(set_cookie(&r, SESSION).is_some());
}

#[tokio::test]
async fn assertions_with_a_wrong_audience_issuer_key_lifetime_or_algorithm_are_refused() {
    let bank = Bank::new();
    let app = spawn_with(&[FAST, &bank.env()].concat()).await;
    let customer = create_customer(&app, "Jane").await;
    let aud = audience(&app).await;
    let now = app.clock.now();
    let stranger = Bank::new();
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = claims(&aud, &customer, now);
        f(&mut c);
        c
    };
    let t = now.millis() / 1000;
    let changed = |key: &str, value: Value| bank.sign(&with(&|c| c[key] = value.clone()), None);
    let without = |key: &str| {
        bank.sign(
            &with(&|c| {
                c.as_object_mut().unwrap().remove(key);
            }),
            None,
        )
    };
    let cases: Vec<(&str, String)> = vec![
        (
            "assertion_audience",
            changed("aud", json!("https://other.example")),
        ),
        (
            "assertion_issuer",
            changed("iss", json!("https://evil.example")),
        ),
        ("assertion_signature", stranger.sign(&with(&|_| {}), None)),
        ("assertion_lifetime", changed("exp", json!(t - 60))),
        ("assertion_lifetime", changed("exp", json!(t + 600))),
        ("assertion_lifetime", without("exp")),
        ("assertion_missing_claim", without("jti")),
        ("assertion_missing_claim", without("sub")),
        (
            "unknown_customer",
            changed("sub", json!("cus_00000000000000000000000000000000")),
        ),
        ("assertion_malformed", "not-a-jwt".to_owned()),
        // alg none, and HS256 keyed with the bank's public key (the classic confusion attack).
        ("assertion_algorithm", {
            use base64::Engine;
            let e =
                |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
            format!(
                "{}.{}.",
                e(&json!({"alg": "none", "typ": "JWT"})),
                e(&with(&|_| {}))
            )
        }),
        (
            "assertion_algorithm",
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &with(&|_| {}),
                &EncodingKey::from_secret(std::fs::read(&bank.pem_path).unwrap().as_slice()),
            )
            .unwrap(),
        ),
    ];
    for (reason, a) in &cases {
        let r = post_form(&app, "/login", "", &[("assertion", a)]).await;
        assert_eq!(r.status, 401, "{reason}: {}", r.text());
        assert!(set_cookie(&r, SESSION).is_none(), "{reason}");
        let denied = app.audit("action=pages.sign_in&outcome=denied").await;
        assert_eq!(denied[0]["reason"], *reason);
    }
    // Nothing was signed in, and the customer id never reached the audit log.
    assert!(app
        .audit("action=pages.sign_in&outcome=success")
        .await
        .is_empty());
    let all = app.audit("action=pages.sign_in").await;
    assert!(all.iter().all(|row| !row.to_string().contains(&customer)));
    // Without any bank key configured, assertions cannot sign anyone in.
    let plain = spawn_with(FAST).await;
    let c2 = create_customer(&plain, "Jane").await;
    let a = bank.assertion(&audience(&plain).await, &c2, plain.clock.now());
    let r = plain.get(&format!("/login?assertion={a}")).await;
    assert_eq!(r.status, 401);
    let denied = plain.audit("action=pages.sign_in&outcome=denied").await;
    assert_eq!(denied[0]["reason"], "assertion_not_configured");
}

/// Refused sign-ins count against their address like failed client authentications: once it
/// is locked, its attempts are refused (429, `Retry-After`) before any assertion is checked
/// or audit row written, so a flood of made-up assertions is not an audit write each. A good
/// assertion from elsewhere still signs in.
#[tokio::test]
async fn refused_sign_ins_lock_their_address_before_anything_is_written() {
    let bank = Bank::new();
    let app = spawn_with(
        &[
            FAST,
            &bank.env(),
            &[
                ("OBGATE_OAUTH_LOCKOUT_AFTER", "3"),
                ("OBGATE_OAUTH_LOCKOUT_WINDOW", "1m"),
                ("OBGATE_HTTP_CLIENT_IP_HEADER", "x-forwarded-for"),
            ],
        ]
        .concat(),
    )
    .await;
    let customer = passed_customer(&app).await;
    let from = |ip: &'static str, assertion: String| {
        app.send(
            app.request(Method::GET, &format!("/login?assertion={assertion}"))
                .header("x-forwarded-for", ip),
        )
    };
    for _ in 0..3 {
        assert_eq!(from("203.0.113.70", "x".into()).await.status, 401);
    }
    let refused = app.audit("action=pages.sign_in").await.len();
    assert_eq!(refused, 3, "each refusal before the lock is audited");
    let locks = app.audit("action=client.lockout").await;
    assert_eq!(locks.len(), 1, "the lock is audited once");
    assert!(
        locks[0]["reason"]
            .as_str()
            .unwrap()
            .contains("last: sign_in"),
        "{}",
        locks[0]
    );
    // Locked: bad assertions, and even a good one, are refused without a write; the POST form
    // is the same door.
    for _ in 0..5 {
        let r = from("203.0.113.70", "x".into()).await;
        assert_eq!(r.status, 429);
        assert!(r.header("retry-after").is_some());
        assert!(r.text().contains("Too many attempts"));
    }
    let good = bank.assertion(&audience(&app).await, &customer, app.clock.now());
    assert_eq!(from("203.0.113.70", good).await.status, 429);
    let r = app
        .send(
            app.request(Method::POST, "/login")
                .header("x-forwarded-for", "203.0.113.70")
                .header("content-type", "application/x-www-form-urlencoded")
                .body("assertion=x"),
        )
        .await;
    assert_eq!(r.status, 429);
    assert_eq!(
        app.audit("action=pages.sign_in").await.len(),
        refused,
        "a locked address's attempts write nothing"
    );
    let good = bank.assertion(&audience(&app).await, &customer, app.clock.now());
    assert_eq!(from("198.51.100.7", good).await.status, 303);
}

/// A cross-site form posted to `/logout` arrives without the `SameSite=Lax` session cookie:
/// its answer must not remove that cookie from the browser (a forced sign-out mid-consent).
/// Sign-out ends the session and writes its audit row together: when the row cannot be
/// written, the customer stays signed in.
#[tokio::test]
async fn sign_out_needs_the_session_and_is_audited_with_it() {
    let bank = Bank::new();
    let app = spawn_with(&[FAST, &bank.env()].concat()).await;
    let customer = passed_customer(&app).await;
    let cookie = sign_in(&app, &bank, &customer).await;

    let r = post_form(&app, "/logout", "", &[("csrf_token", "x")]).await;
    assert!(
        set_cookie(&r, SESSION).is_none(),
        "no cookie sent, none removed"
    );
    assert_eq!(page(&app, "/dashboard", &cookie).await.status, 200);

    app.db
        .exec(if app.db.is_postgres() {
            "CREATE OR REPLACE FUNCTION refuse_sign_out() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'injected fault'; END $$; \
             CREATE TRIGGER refuse_sign_out BEFORE INSERT ON audit FOR EACH ROW \
             WHEN (NEW.action = 'pages.sign_out') EXECUTE FUNCTION refuse_sign_out();"
        } else {
            "CREATE TRIGGER refuse_sign_out BEFORE INSERT ON audit \
             WHEN NEW.action = 'pages.sign_out' BEGIN SELECT RAISE(ABORT, 'refused'); END"
        })
        .await;
    let token = csrf_of(&page(&app, "/dashboard", &cookie).await.text());
    let r = post_form(&app, "/logout", &cookie, &[("csrf_token", &token)]).await;
    assert_eq!(r.status, 500);
    assert_eq!(
        page(&app, "/dashboard", &cookie).await.status,
        200,
        "no sign-out without its audit row"
    );
    app.db
        .exec(if app.db.is_postgres() {
            "DROP TRIGGER refuse_sign_out ON audit"
        } else {
            "DROP TRIGGER refuse_sign_out"
        })
        .await;
    let r = post_form(&app, "/logout", &cookie, &[("csrf_token", &token)]).await;
    assert_eq!(r.status, 200);
    assert_eq!(app.audit("action=pages.sign_out").await.len(), 1);
    assert_eq!(page(&app, "/dashboard", &cookie).await.status, 303);
}

#[tokio::test]
async fn the_session_ends_at_its_lifetime_and_on_sign_out() {
    let bank = Bank::new();
    let db = TestDb::new().await;
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(
        time::OffsetDateTime::now_utc().unix_timestamp() * 1000,
    )));
    let cfg = config(
        &db,
        &[FAST, &bank.env(), &[("OBGATE_PAGES_SESSION_TTL", "10m")]].concat(),
    );
    let app = spawn_with_clock(db, cfg, clock.clone()).await;
    let customer = passed_customer(&app).await;

    let cookie = sign_in(&app, &bank, &customer).await;
    clock.advance(Duration::from_secs(9 * 60));
    assert_eq!(page(&app, "/dashboard", &cookie).await.status, 200);
    clock.advance(Duration::from_secs(61));
    let r = page(&app, "/dashboard", &cookie).await;
    assert_eq!(r.status, 303, "the session lasts pages.session_ttl");

    // Sign-out needs the session's form token, then ends the session on the server too.
    let cookie = sign_in(&app, &bank, &customer).await;
    let html = page(&app, "/dashboard", &cookie).await.text();
    let token = csrf_of(&html);
    assert_eq!(post_form(&app, "/logout", &cookie, &[]).await.status, 403);
    let r = post_form(
        &app,
        "/logout",
        &cookie,
        &[("csrf_token", "x".repeat(43).as_str())],
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        page(&app, "/dashboard", &cookie).await.status,
        200,
        "still signed in"
    );
    let r = post_form(&app, "/logout", &cookie, &[("csrf_token", &token)]).await;
    assert_eq!(r.status, 200);
    let cleared = set_cookie(&r, SESSION).unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert_eq!(
        page(&app, "/dashboard", &cookie).await.status,
        303,
        "the old cookie no longer works"
    );
    assert_eq!(app.audit("action=pages.sign_out").await.len(), 1);

    // A consent past its ExpirationDateTime leaves "With access now" for "Ended".
    let (id, secret) = tpp(&app, "Acme Budgeting").await;
    crate::consents::authorized(&app, &id, &secret, &customer).await;
    let cookie = sign_in(&app, &bank, &customer).await;
    let html = page(&app, "/dashboard", &cookie).await.text();
    let (now_part, _) = html.split_once("id=\"ended-title\"").unwrap();
    assert!(now_part.contains("Acme Budgeting"));
    clock.advance(Duration::from_secs(80 * 365 * 86_400)); // past 1 January 2099
    let cookie = sign_in(&app, &bank, &customer).await;
    let html = page(&app, "/dashboard", &cookie).await.text();
    let (now_part, ended_part) = html.split_once("id=\"ended-title\"").unwrap();
    assert!(now_part.contains("No app can see your accounts."));
    assert!(
        ended_part.contains("Acme Budgeting") && ended_part.contains("Expired on 1 January 2099")
    );
}

#[tokio::test]
async fn the_consent_screen_shows_the_request_and_every_form_needs_the_sessions_token() {
    let bank = Bank::new();
    let app = spawn_with(&[FAST, &bank.env()].concat()).await;
    let customer = passed_customer(&app).await;
    let (id, secret) = tpp(&app, "Acme Budgeting").await;
    let (consent, challenge, _) = pending_request(&app, &id, &secret).await;
    let screen = format!("/consent?challenge={challenge}");

    // Not signed in: off to sign-in, and back to this very screen afterwards.
    let r = app.get(&screen).await;
    assert_eq!(r.status, 303);
    let to = r.header("location").unwrap().to_owned();
    assert_eq!(query(&format!("http://x{to}"))["return_to"], screen);

    let cookie = sign_in(&app, &bank, &customer).await;
    let r = page(&app, &screen, &cookie).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_locked_down(&r);
    let csp = r.header("content-security-policy").unwrap();
    assert!(
        csp.contains("form-action 'self' https://tpp.example"),
        "the form may lead back to the TPP: {csp}"
    );
    let html = r.text();
    for text in [
        "Acme Budgeting",
        "Your account details",
        "Your balances",
        "Your account transactions",
        "Your account names, types, currencies, numbers and sort codes",
        "Money going out of your accounts",
        "1 January 2099",
        "value=\"approve\"",
        "value=\"decline\"",
    ] {
        assert!(html.contains(text), "the screen lacks {text:?}");
    }
    let accounts = obgate::sandbox_bank::account_ids(&customer);
    for a in &accounts {
        assert!(
            html.contains(&format!("value=\"{a}\"")),
            "account {a} offered"
        );
    }
    let token = csrf_of(&html);

    // Forms without the session's token are refused, and change nothing.
    let other = create_customer(&app, "Mallory").await;
    let other_cookie = sign_in(&app, &bank, &other).await;
    let other_token = csrf_of(&page(&app, "/dashboard", &other_cookie).await.text());
    let made_up = "A".repeat(43);
    for (label, bad) in [
        ("no token", ""),
        ("made-up token", made_up.as_str()),
        ("another session's token", other_token.as_str()),
    ] {
        let r = decide(&app, &cookie, &challenge, bad, "approve", &[&accounts[0]]).await;
        assert_eq!(r.status, 403, "{label}: {}", r.text());
        assert_eq!(
            consent_status(&app, &consent).await,
            "AwaitingAuthorisation",
            "{label}"
        );
    }
    // A cross-site post carries no session cookie at all (SameSite=Lax): it only reaches sign-in.
    let r = decide(&app, "", &challenge, &token, "approve", &[&accounts[0]]).await;
    assert_eq!(r.status, 303);
    assert!(r.header("location").unwrap().starts_with("/login?"));

    // No account chosen: the screen again, saying so.
    let r = decide(&app, &cookie, &challenge, &token, "approve", &[]).await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("Choose at least one account"));
    // An account of someone else: refused, nothing authorised.
    let theirs = obgate::sandbox_bank::account_ids(&other)[0].clone();
    let r = decide(&app, &cookie, &challenge, &token, "approve", &[&theirs]).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(
        consent_status(&app, &consent).await,
        "AwaitingAuthorisation"
    );
    // More accounts than an approval may name (the bank's API allows 100): refused as
    // malformed before any is looked at, whoever owns them (each one a fresh id, so the
    // form cannot be cut down by removing repeats).
    let many: Vec<String> = (0..101).map(|i| format!("{}{i}", accounts[0])).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let r = decide(&app, &cookie, &challenge, &token, "approve", &many).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r
        .text()
        .contains("more accounts than one approval may share (at most 100)"));
    assert_eq!(
        consent_status(&app, &consent).await,
        "AwaitingAuthorisation"
    );

    // With the token: authorised for this customer and these accounts, back to the TPP.
    let r = decide(
        &app,
        &cookie,
        &challenge,
        &token,
        "approve",
        &[&accounts[0]],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let back = r.header("location").unwrap();
    assert!(back.starts_with(REDIRECT), "{back}");
    assert!(query(back).contains_key("code"));
    let c = app
        .admin_get(&format!("/api/v0/consents/{consent}"))
        .await
        .json();
    assert_eq!(c["status"], "Authorised");
    assert_eq!(c["customer_id"], customer.as_str());
    assert_eq!(c["account_ids"], json!([accounts[0]]));
    let audit = app
        .audit(&format!("resource_id={consent}&action=consent.authorise"))
        .await;
    assert_eq!(audit[0]["actor_type"], "customer");
    assert_eq!(audit[0]["actor_id"], customer.as_str());
    // The challenge is spent: the screen says the request has ended.
    let r = page(&app, &screen, &cookie).await;
    assert_eq!(r.status, 404);
    assert!(r.text().contains("This request has ended"));
}

/// A double-clicked Approve sends the form twice and the browser follows only the second
/// answer: it must still take the customer back to the TPP with a code that works (the first
/// one, never delivered, no longer does). A double-clicked Decline sends the TPP its
/// `access_denied` again. Nobody else's session gets a code this way.
#[tokio::test]
async fn an_answer_sent_twice_still_reaches_the_tpp_with_a_working_code() {
    use oauth2::{AuthorizationCode, PkceCodeVerifier, TokenResponse};
    let bank = Bank::new();
    let app = spawn_with(&[FAST, &bank.env()].concat()).await;
    let customer = passed_customer(&app).await;
    let (id, secret) = tpp(&app, "Acme Budgeting").await;
    let (consent, challenge, verifier) = pending_request(&app, &id, &secret).await;
    let cookie = sign_in(&app, &bank, &customer).await;
    let html = page(&app, &format!("/consent?challenge={challenge}"), &cookie)
        .await
        .text();
    let token = csrf_of(&html);
    let account = obgate::sandbox_bank::account_ids(&customer)[0].clone();

    let first = decide(&app, &cookie, &challenge, &token, "approve", &[&account]).await;
    assert_eq!(first.status, 303, "{}", first.text());
    let again = decide(&app, &cookie, &challenge, &token, "approve", &[&account]).await;
    assert_eq!(again.status, 303, "{}", again.text());
    let back = again.header("location").unwrap();
    assert!(back.starts_with(REDIRECT), "{back}");
    let (code1, code2) = (
        query(first.header("location").unwrap())["code"].clone(),
        query(back)["code"].clone(),
    );
    assert_ne!(code1, code2);
    assert_eq!(
        app.audit(&format!(
            "resource_id={consent}&action=consent.code_reissue"
        ))
        .await
        .len(),
        1
    );
    // Another customer holding the challenge gets no code.
    let other = passed_customer(&app).await;
    let other_cookie = sign_in(&app, &bank, &other).await;
    let other_token = csrf_of(&page(&app, "/dashboard", &other_cookie).await.text());
    let theirs = obgate::sandbox_bank::account_ids(&other)[0].clone();
    let r = decide(
        &app,
        &other_cookie,
        &challenge,
        &other_token,
        "approve",
        &[&theirs],
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.text());

    let client = crate::consents::oauth_client(&app, &id, &secret);
    let http = crate::consents::http();
    let exchange = |code: String| {
        client
            .exchange_code(AuthorizationCode::new(code))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.clone()))
            .request_async(&http)
    };
    assert!(exchange(code1).await.is_err(), "the replaced code is dead");
    let tokens = exchange(code2).await.unwrap_or_else(|e| panic!("{e:?}"));
    assert!(!tokens.access_token().secret().is_empty());
    // Once the code is used, a third answer finds the request ended.
    let r = decide(&app, &cookie, &challenge, &token, "approve", &[&account]).await;
    assert_eq!(r.status, 404);
    assert!(r.text().contains("This request has ended"));

    // Decline, twice.
    let (_, challenge, _) = pending_request(&app, &id, &secret).await;
    for _ in 0..2 {
        let r = decide(&app, &cookie, &challenge, &token, "decline", &[]).await;
        assert_eq!(r.status, 303, "{}", r.text());
        let back = r.header("location").unwrap();
        assert!(back.starts_with(REDIRECT), "{back}");
        assert_eq!(query(back)["error"], "access_denied");
    }
}

#[tokio::test]
async fn a_customer_whose_kyc_has_not_passed_is_told_why_and_cannot_approve() {
    let bank = Bank::new();
    let app = spawn_with(&[FAST, &bank.env()].concat()).await;
    let customer = create_customer(&app, "Jane").await;
    let (id, secret) = tpp(&app, "Acme Budgeting").await;
    let (consent, challenge, _) = pending_request(&app, &id, &secret).await;
    let cookie = sign_in(&app, &bank, &customer).await;
    let r = page(&app, &format!("/consent?challenge={challenge}"), &cookie).await;
    assert_eq!(r.status, 200);
    let html = r.text();
    assert!(html.contains("We need to confirm who you are first"));
    assert!(html.contains("Complete the identity check"));
    assert!(!html.contains("value=\"approve\""), "no Approve button");
    assert!(
        html.contains("<fieldset disabled>"),
        "accounts cannot be picked"
    );
    // A hand-made approval goes through the same KYC gate as the API.
    let token = csrf_of(&html);
    let account = obgate::sandbox_bank::account_ids(&customer)[0].clone();
    let r = decide(&app, &cookie, &challenge, &token, "approve", &[&account]).await;
    assert_eq!(r.status, 403);
    assert!(r.text().contains("We need to confirm who you are first"));
    assert_eq!(
        consent_status(&app, &consent).await,
        "AwaitingAuthorisation"
    );
    let denied = app
        .audit(&format!("resource_id={consent}&outcome=denied"))
        .await;
    assert_eq!(denied[0]["reason"], "kyc_not_passed");
    // Declining still works, and tells the TPP.
    let r = decide(&app, &cookie, &challenge, &token, "decline", &[]).await;
    assert_eq!(r.status, 303);
    let q = query(r.header("location").unwrap());
    assert_eq!(q["error"], "access_denied");
    assert_eq!(consent_status(&app, &consent).await, "Rejected");
}

#[tokio::test]
async fn the_dashboard_lists_access_apart_and_revoking_ends_it_at_once() {
    let bank = Bank::new();
    let app = spawn_with(&[FAST, &bank.env()].concat()).await;
    let customer = passed_customer(&app).await;
    let (id, secret) = tpp(&app, "Acme Budgeting").await;
    let (id2, secret2) = tpp(&app, "Penny Pincher").await;
    let (consent, access, _) = crate::consents::authorized(&app, &id, &secret, &customer).await;
    let (consent2, _, _) = crate::consents::authorized(&app, &id2, &secret2, &customer).await;
    let accounts = "/open-banking/v3.1/aisp/accounts";
    assert_eq!(
        ob(&app, Method::GET, accounts, &access, None).await.status,
        200
    );

    let cookie = sign_in(&app, &bank, &customer).await;
    let html = page(&app, "/dashboard", &cookie).await.text();
    let (now_part, ended_part) = html.split_once("id=\"ended-title\"").unwrap();
    assert!(now_part.contains("Acme Budgeting") && now_part.contains("Penny Pincher"));
    assert!(now_part.contains("Account details, balances, account transactions"));
    assert!(now_part.contains("1 January 2099"));
    assert!(
        now_part.contains("(ending "),
        "accounts by name and last digits, not by id"
    );
    assert!(ended_part.contains("Nothing has ended yet."));

    // Stop access: a confirm step, then the TPP's very next request is denied.
    let confirm = format!("/dashboard/consents/{consent}/revoke");
    let r = page(&app, &confirm, &cookie).await;
    assert_eq!(r.status, 200);
    assert!(
        r.text().contains("<h1>Stop Acme Budgeting's access?</h1>"),
        "{}",
        r.text()
    );
    let token = csrf_of(&r.text());
    assert_eq!(post_form(&app, &confirm, &cookie, &[]).await.status, 403);
    assert_eq!(consent_status(&app, &consent).await, "Authorised");
    let r = post_form(&app, &confirm, &cookie, &[("csrf_token", &token)]).await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(
        r.header("location").unwrap(),
        format!("/dashboard?revoked={consent}")
    );
    // Revoking the consent revoked its tokens: the TPP's token is dead on the next request.
    assert_eq!(
        ob(&app, Method::GET, accounts, &access, None).await.status,
        401
    );
    let c = app
        .admin_get(&format!("/api/v0/consents/{consent}"))
        .await
        .json();
    assert_eq!(c["status"], "Revoked");
    assert_eq!(c["revoked_reason"], "revoked_by_customer");

    let html = page(&app, &format!("/dashboard?revoked={consent}"), &cookie)
        .await
        .text();
    assert!(html.contains("Acme Budgeting can no longer see your accounts."));
    let (notice, rest) = html.split_once("id=\"active-title\"").unwrap();
    assert!(notice.contains("role=\"status\""));
    let (now_part, ended_part) = rest.split_once("id=\"ended-title\"").unwrap();
    assert!(!now_part.contains("Acme Budgeting") && now_part.contains("Penny Pincher"));
    assert!(ended_part.contains("Acme Budgeting") && ended_part.contains("Stopped by you on"));
    // Revoked is final; another customer's consent cannot be reached at all.
    assert_eq!(page(&app, &confirm, &cookie).await.status, 404);
    let other = passed_customer(&app).await;
    let other_cookie = sign_in(&app, &bank, &other).await;
    let r = page(
        &app,
        &format!("/dashboard/consents/{consent2}/revoke"),
        &other_cookie,
    )
    .await;
    assert_eq!(r.status, 404);
    let other_token = csrf_of(&page(&app, "/dashboard", &other_cookie).await.text());
    let r = post_form(
        &app,
        &format!("/dashboard/consents/{consent2}/revoke"),
        &other_cookie,
        &[("csrf_token", &other_token)],
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(consent_status(&app, &consent2).await, "Authorised");
}

#[tokio::test]
async fn the_banks_keys_can_come_from_its_jwk_set_url_and_rotate() {
    let bank = Bank::new();
    let next = Bank::new();
    let set = Arc::new(std::sync::Mutex::new(json!({"keys": [
        {"kid": "k1", "kty": bank.jwk["kty"], "crv": bank.jwk["crv"], "x": bank.jwk["x"], "y": bank.jwk["y"]}
    ]})));
    let served = set.clone();
    let fetches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = fetches.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jwks_url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let router = axum::Router::new().route(
            "/jwks.json",
            get(move || {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let v = served.lock().unwrap().clone();
                async move {
                    // Slow enough that concurrent sign-ins overlap the fetch.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    axum::Json(v)
                }
            }),
        );
        axum::serve(listener, router).await
    });
    let db = TestDb::new().await;
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(
        time::OffsetDateTime::now_utc().unix_timestamp() * 1000,
    )));
    let cfg = config(
        &db,
        &[
            FAST,
            &[("OBGATE_PAGES_ASSERTION_JWKS_URL", jwks_url.as_str())],
        ]
        .concat(),
    );
    let app = spawn_with_clock(db, cfg, clock.clone()).await;
    let customer = create_customer(&app, "Jane").await;
    let aud = audience(&app).await;
    let login = |a: String| format!("/login?assertion={a}");

    let a = bank.sign(&claims(&aud, &customer, clock.now()), Some("k1"));
    assert_eq!(app.get(&login(a)).await.status, 303);
    // The bank rotates to k2: obgate fetches the set again for the unknown kid, though not
    // more than every 30 s, so a flood of made-up kids cannot hammer the bank.
    *set.lock().unwrap() = json!({"keys": [
        {"kid": "k2", "kty": "EC", "crv": "P-256", "x": next.jwk["x"], "y": next.jwk["y"]}
    ]});
    let a = next.sign(&claims(&aud, &customer, clock.now()), Some("k2"));
    assert_eq!(
        app.get(&login(a)).await.status,
        401,
        "within 30 s of the last fetch"
    );
    clock.advance(Duration::from_secs(31));
    let a = next.sign(&claims(&aud, &customer, clock.now()), Some("k2"));
    assert_eq!(app.get(&login(a)).await.status, 303, "fetched again");
    // The retired key no longer signs anyone in.
    let a = bank.sign(&claims(&aud, &customer, clock.now()), Some("k1"));
    assert_eq!(app.get(&login(a)).await.status, 401);

    // Sign-ins that need the set at once share one fetch.
    let fetched = |n: usize| fetches.load(std::sync::atomic::Ordering::SeqCst) - n;
    clock.advance(Duration::from_secs(301));
    let before = fetched(0);
    let logins = (0..10).map(|_| {
        let a = next.sign(&claims(&aud, &customer, clock.now()), Some("k2"));
        let app = &app;
        async move { app.get(&format!("/login?assertion={a}")).await.status }
    });
    let statuses = futures_util::future::join_all(logins).await;
    assert!(statuses.iter().all(|s| *s == 303), "{statuses:?}");
    assert_eq!(fetched(before), 1, "one fetch for ten sign-ins");
    // The bank's key URL fails: one try, then none for a few seconds, whatever comes.
    *set.lock().unwrap() = json!("down for maintenance");
    clock.advance(Duration::from_secs(301));
    let before = fetched(0);
    for _ in 0..5 {
        let a = next.sign(&claims(&aud, &customer, clock.now()), Some("k2"));
        assert_eq!(app.get(&login(a)).await.status, 401);
    }
    assert_eq!(
        fetched(before),
        1,
        "no fetch per attempt while the bank's URL fails"
    );
    *set.lock().unwrap() = json!({"keys": [
        {"kid": "k2", "kty": "EC", "crv": "P-256", "x": next.jwk["x"], "y": next.jwk["y"]}
    ]});
    clock.advance(obgate::pages::assertion::FAILED_FETCH_BACKOFF);
    let a = next.sign(&claims(&aud, &customer, clock.now()), Some("k2"));
    assert_eq!(
        app.get(&login(a)).await.status,
        303,
        "tried again after the pause"
    );
}

#[tokio::test]
async fn the_sandbox_lists_demo_customers_behind_a_form_token_and_production_uses_the_banks_login()
{
    let app = spawn_with(
        &[
            FAST,
            &[
                ("OBGATE_PAGES_BANK_NAME", "Example Bank"),
                ("OBGATE_PAGES_LOGO_URL", "https://cdn.bank.example/logo.svg"),
                ("OBGATE_PAGES_PRIMARY_COLOR", "#0B5D3B"),
            ],
        ]
        .concat(),
    )
    .await;
    let customer = create_customer(&app, "Jane").await;
    let r = app.get("/login?return_to=%2Fdashboard").await;
    assert_eq!(r.status, 200);
    assert_locked_down(&r);
    let html = r.text();
    // The bank's branding: its name, its logo (and only the logo's origin may serve images).
    assert!(html.contains("<title>Sign in · Example Bank</title>"));
    assert!(html.contains(r#"<img src="https://cdn.bank.example/logo.svg" alt="Example Bank""#));
    let csp = r.header("content-security-policy").unwrap();
    assert!(
        csp.contains("img-src 'self' https://cdn.bank.example;"),
        "{csp}"
    );
    assert!(html.contains(&customer) && html.contains("Jane Doe"));
    let login_cookie = cookie_pair(set_cookie(&r, "__Host-obgate-login").unwrap());
    let token = csrf_of(&html);
    let fields = [
        ("customer_id", customer.as_str()),
        ("return_to", "/dashboard"),
    ];
    // Without the double-submit token, or with the wrong one: refused.
    let r = post_form(
        &app,
        "/login/sandbox",
        "",
        &[fields[0], fields[1], ("csrf_token", &token)],
    )
    .await;
    assert_eq!(r.status, 403);
    let r = post_form(
        &app,
        "/login/sandbox",
        &login_cookie,
        &[fields[0], fields[1], ("csrf_token", &"B".repeat(43))],
    )
    .await;
    assert_eq!(r.status, 403);
    let r = post_form(
        &app,
        "/login/sandbox",
        &login_cookie,
        &[fields[0], fields[1], ("csrf_token", &token)],
    )
    .await;
    assert_eq!(r.status, 303);
    assert!(set_cookie(&r, SESSION).is_some());
    // The stylesheet and the bank's colour are served from obgate itself.
    let r = app.get("/pages/assets/theme.css").await;
    assert!(r.text().contains("--primary: #0b5d3b"));

    // Production: no demo sign-in; the customer goes to the bank's login and comes back.
    let db = TestDb::new().await;
    let cfg = config(
        &db,
        &[
            crate::helpers::PRODUCTION,
            &[
                ("OBGATE_PUBLIC_URL", "https://obgate.bank.example"),
                (
                    "OBGATE_PAGES_LOGIN_URL",
                    "https://online.bank.example/login",
                ),
            ],
        ]
        .concat(),
    );
    let prod = crate::helpers::spawn_on(db, cfg).await;
    let r = prod.get("/login?return_to=%2Fdashboard").await;
    assert_eq!(r.status, 303);
    assert_eq!(
        r.header("location"),
        Some("https://online.bank.example/login?return_to=https%3A%2F%2Fobgate.bank.example%2Fdashboard")
    );
    let r = post_form(
        &prod,
        "/login/sandbox",
        "",
        &[fields[0], ("csrf_token", &token)],
    )
    .await;
    assert_eq!(r.status, 404);
}
