//! The customer's pages in a real browser (headless Chromium through chromedriver): a TPP
//! using the `oauth2` crate starts the flow, the browser signs in with the bank's assertion,
//! picks two of three accounts and approves; the TPP's callback gets the code, exchanges it,
//! and `/accounts` answers exactly those two accounts. The customer then revokes on the
//! dashboard and the TPP's next request is denied; a customer whose KYC has not passed cannot
//! approve. Every page is checked with the axe-core accessibility checker (WCAG 2.1 A/AA), and
//! screenshots of the consent screen and the dashboard at desktop and phone widths land in
//! `target/screenshots/` (CI keeps them as artifacts).
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/test` installs them; the paths can
//! be overridden with `OBGATE_TEST_CHROMIUM` and `OBGATE_TEST_CHROMEDRIVER`) and axe-core
//! from npm (`tests/browser/`, installed on first use when missing).

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fantoccini::wd::TimeoutConfiguration;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge, RedirectUrl,
    TokenResponse, TokenUrl,
};
use reqwest::Method;
use serde_json::{json, Value};

use obgate::clock::SystemClock;

use crate::consents::{cc_token, create_consent, http, ob};
use crate::helpers::{spawn_public, TestApp};
use crate::kyc::{create_customer, start_kyc, wait_for, FAST};
use crate::oauth::register;
use crate::pages::{audience, Bank};

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tool(var: &str, default: &str, package: &str) -> String {
    let path = std::env::var(var).unwrap_or_else(|_| default.to_owned());
    assert!(
        std::path::Path::new(&path).exists(),
        "the browser tests need {path} (Debian package {package}): run .ci/test, which installs \
         it, or `apt-get install chromium chromium-driver`, or point {var} at it"
    );
    path
}

/// axe-core's source, installed from `tests/browser/package-lock.json` when missing.
fn axe_source() -> String {
    let dir = manifest().join("tests/browser");
    let file = dir.join("node_modules/axe-core/axe.min.js");
    if !file.exists() {
        let ok = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--prefix"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "npm ci in tests/browser failed: the browser tests need Node.js and npm"
        );
    }
    std::fs::read_to_string(&file).expect("axe-core")
}

/// A headless Chromium, driven through its own chromedriver; both end with the struct.
struct Browser {
    c: Client,
    _driver: tokio::process::Child,
    _profile: tempfile::TempDir,
    axe: String,
}

impl Browser {
    async fn start() -> Self {
        let chromium = tool("OBGATE_TEST_CHROMIUM", "/usr/bin/chromium", "chromium");
        let driver_bin = tool(
            "OBGATE_TEST_CHROMEDRIVER",
            "/usr/bin/chromedriver",
            "chromium-driver",
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = tokio::process::Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .kill_on_drop(true)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-quic", "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                         format!("--user-data-dir={}", profile.path().display())]
            }),
        );
        let c = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("chromedriver session");
        c.update_timeouts(TimeoutConfiguration::new(
            Some(Duration::from_secs(60)),
            Some(Duration::from_secs(30)),
            None,
        ))
        .await
        .unwrap();
        Self {
            c,
            _driver: driver,
            _profile: profile,
            axe: axe_source(),
        }
    }

    async fn url(&self) -> url::Url {
        self.c.current_url().await.unwrap()
    }

    async fn text(&self) -> String {
        self.c.source().await.unwrap()
    }

    async fn click(&self, css: &str) {
        self.c
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap();
    }

    /// Checks the page with axe-core (WCAG 2.0/2.1 A and AA) and fails on any violation.
    async fn accessible(&self, page: &str) {
        self.c.execute(&self.axe, vec![]).await.unwrap();
        let out = self
            .c
            .execute_async(
                r#"const done = arguments[arguments.length - 1];
                axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']},
                                   resultTypes: ['violations']})
                  .then(r => done({ok: true, violations: r.violations.map(v => ({id: v.id, impact: v.impact,
                      help: v.help, targets: v.nodes.map(n => n.target.join(' '))}))}))
                  .catch(e => done({ok: false, error: String((e && e.message) || e)}));"#,
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(out["ok"], json!(true), "axe did not run on {page}: {out}");
        assert_eq!(
            out["violations"],
            json!([]),
            "accessibility violations on {page}"
        );
    }

    /// Saves full-page `target/screenshots/{name}-desktop.png` and `-phone.png`, and checks
    /// that the page needs no sideways scrolling at either width.
    async fn screenshots(&self, name: &str) {
        let dir = manifest().join("target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        for (label, w, h) in [("desktop", 1280, 900), ("phone", 390, 844)] {
            self.c.set_window_size(w, h).await.unwrap();
            let overflow = self
                .c
                .execute(
                    "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
                    vec![],
                )
                .await
                .unwrap();
            assert!(
                overflow.as_i64().unwrap_or(0) <= 0,
                "{name} scrolls sideways at {w}px: {overflow}"
            );
            // The whole page, not only the first screenful: grow the window to fit it.
            let height = self
                .c
                .execute("return document.documentElement.scrollHeight;", vec![])
                .await
                .unwrap()
                .as_u64()
                .unwrap_or(u64::from(h));
            let full = u32::try_from(height + 160).unwrap_or(h).clamp(h, 4000);
            self.c.set_window_size(w, full).await.unwrap();
            let png = self.c.screenshot().await.unwrap();
            std::fs::write(dir.join(format!("{name}-{label}.png")), png).unwrap();
        }
        self.c.set_window_size(1280, 900).await.unwrap();
    }

    async fn wait_until(&self, what: &str, ok: impl Fn(&url::Url) -> bool) -> url::Url {
        for _ in 0..100 {
            let u = self.url().await;
            if ok(&u) {
                return u;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the browser never reached {what}: at {}", self.url().await);
    }
}

/// The TPP's own web server: its redirect URI, recording what the browser brings back.
async fn tpp_callback() -> (
    String,
    Arc<Mutex<Vec<std::collections::HashMap<String, String>>>>,
) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/callback", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let router = axum::Router::new().route(
            "/callback",
            axum::routing::get(
                move |axum::extract::Query(q): axum::extract::Query<
                    std::collections::HashMap<String, String>,
                >| {
                    record.lock().unwrap().push(q);
                    async {
                        axum::response::Html(
                            "<!doctype html><title>Acme</title><h1>Back at Acme</h1>",
                        )
                    }
                },
            ),
        );
        axum::serve(listener, router).await
    });
    (url, seen)
}

type Tpp = BasicClient<
    oauth2::EndpointSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
>;

/// A consent of the TPP and the authorization URL the TPP sends the customer to.
async fn start_flow(
    app: &TestApp,
    tpp: &Tpp,
    id: &str,
    secret: &str,
) -> (String, String, String, oauth2::PkceCodeVerifier) {
    let token = cc_token(app, id, secret).await;
    let consent = create_consent(app, &token).await;
    let (pkce, verifier) = PkceCodeChallenge::new_random_sha256();
    let details =
        json!([{"type": "openbanking_account_access", "consent_id": consent}]).to_string();
    let (url, state) = tpp
        .authorize_url(CsrfToken::new_random)
        .set_pkce_challenge(pkce)
        .add_extra_param("authorization_details", details)
        .url();
    (consent, url.to_string(), state.secret().clone(), verifier)
}

/// From the TPP's authorization URL to the consent screen: the browser meets sign-in, the
/// bank's login (played by the test) hands it back with an assertion.
async fn sign_in_through(b: &Browser, app: &TestApp, bank: &Bank, customer: &str, authorize: &str) {
    b.c.goto(authorize).await.unwrap();
    let at = b.wait_until("sign-in", |u| u.path() == "/login").await;
    let return_to = at
        .query_pairs()
        .find(|(k, _)| k == "return_to")
        .map(|(_, v)| v.into_owned())
        .expect("return_to");
    assert!(return_to.starts_with("/consent?challenge="), "{return_to}");
    let assertion = bank.assertion(&audience(app).await, customer, app.clock.now());
    let q: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("assertion", &assertion)
        .append_pair("return_to", &return_to)
        .finish();
    b.c.goto(&app.url(&format!("/login?{q}"))).await.unwrap();
    b.wait_until("the consent screen", |u| u.path() == "/consent")
        .await;
}

#[tokio::test]
async fn a_customer_approves_two_of_three_accounts_in_a_browser_then_revokes_on_the_dashboard() {
    let bank = Bank::new();
    let app = spawn_public(&[FAST, &bank.env()].concat(), Arc::new(SystemClock)).await;
    let b = Browser::start().await;

    // A customer with exactly three accounts at the sandbox bank, whose KYC passes.
    let mut customer = create_customer(&app, "Jane").await;
    while obgate::sandbox_bank::account_ids(&customer).len() != 3 {
        customer = create_customer(&app, "Jane").await;
    }
    start_kyc(&app, &customer, "123-45-6789").await;
    wait_for(&app, &customer, "passed").await;
    let accounts = obgate::sandbox_bank::account_ids(&customer);

    let (callback, seen) = tpp_callback().await;
    let (id, secret) = register(
        &app,
        json!({"client_name": "Acme Budgeting", "redirect_uris": [callback],
               "grant_types": ["client_credentials", "authorization_code", "refresh_token"]}),
    )
    .await;
    let tpp = BasicClient::new(ClientId::new(id.clone()))
        .set_client_secret(ClientSecret::new(secret.clone()))
        .set_auth_uri(AuthUrl::new(app.url("/oauth2/authorize")).unwrap())
        .set_token_uri(TokenUrl::new(app.url("/oauth2/token")).unwrap())
        .set_redirect_uri(RedirectUrl::new(callback.clone()).unwrap());
    let (consent, authorize, state, verifier) = start_flow(&app, &tpp, &id, &secret).await;

    sign_in_through(&b, &app, &bank, &customer, &authorize).await;
    let cookies = b.c.get_all_cookies().await.unwrap();
    let session = cookies
        .iter()
        .find(|c| c.name() == "__Host-obgate-session")
        .expect("the browser kept the session cookie");
    assert_eq!(session.http_only(), Some(true));
    assert_eq!(session.secure(), Some(true));
    assert_eq!(session.same_site(), Some(cookie::SameSite::Lax));
    let hidden =
        b.c.execute("return document.cookie;", vec![])
            .await
            .unwrap();
    assert!(
        !hidden.as_str().unwrap_or("").contains("obgate-session"),
        "HttpOnly"
    );

    let html = b.text().await;
    assert!(html.contains("Acme Budgeting is asking to see your account information"));
    assert!(html.contains("Your account transactions"));
    b.accessible("the consent screen").await;
    b.screenshots("consent").await;

    // Two of the three accounts, then Approve.
    for a in &accounts[..2] {
        b.click(&format!("input[name=account_id][value=\"{a}\"]"))
            .await;
    }
    b.click("button[value=approve]").await;
    b.wait_until("the TPP's callback", |u| u.as_str().starts_with(&callback))
        .await;
    let back = seen
        .lock()
        .unwrap()
        .last()
        .cloned()
        .expect("callback reached");
    assert_eq!(back["state"], state, "the TPP's state comes back");
    assert_eq!(back["iss"], audience(&app).await);

    // The TPP exchanges the code and reads exactly the two accounts.
    let tokens = tpp
        .exchange_code(AuthorizationCode::new(back["code"].clone()))
        .set_pkce_verifier(verifier)
        .request_async(&http())
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let access = tokens.access_token().secret().clone();
    let r = ob(
        &app,
        Method::GET,
        "/open-banking/v3.1/aisp/accounts",
        &access,
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let mut got: Vec<String> = r.json()["Data"]["Account"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["AccountId"].as_str().unwrap().to_owned())
        .collect();
    got.sort();
    let mut want = accounts[..2].to_vec();
    want.sort();
    assert_eq!(got, want, "exactly the two accounts the customer picked");

    // The dashboard shows the access; Stop access, confirm, and the TPP is cut off.
    b.c.goto(&app.url("/dashboard")).await.unwrap();
    let html = b.text().await;
    assert!(html.contains("Acme Budgeting") && html.contains("Active"));
    b.accessible("the dashboard").await;
    b.screenshots("dashboard").await;
    b.click(&format!("a[href=\"/dashboard/consents/{consent}/revoke\"]"))
        .await;
    b.wait_until("the confirm step", |u| u.path().ends_with("/revoke"))
        .await;
    b.accessible("the revoke confirmation").await;
    b.click("button.danger").await;
    b.wait_until("the dashboard", |u| u.path() == "/dashboard")
        .await;
    let html = b.text().await;
    assert!(html.contains("Acme Budgeting can no longer see your accounts."));
    assert!(html.contains("Stopped by you on"));
    b.screenshots("dashboard-after-revoke").await;
    let r = ob(
        &app,
        Method::GET,
        "/open-banking/v3.1/aisp/accounts",
        &access,
        None,
    )
    .await;
    assert_eq!(r.status, 401, "the TPP's next request is denied");
    let c: Value = app
        .admin_get(&format!("/api/v0/consents/{consent}"))
        .await
        .json();
    assert_eq!(c["status"], "Revoked");

    // Sign out in the browser; a customer whose KYC has not passed cannot approve.
    b.click("form[action=\"/logout\"] button").await;
    b.wait_until("signed out", |u| u.path() == "/logout").await;
    assert!(b.text().await.contains("You have signed out"));
    let unverified = create_customer(&app, "Bob").await;
    let (consent2, authorize2, _, _) = start_flow(&app, &tpp, &id, &secret).await;
    sign_in_through(&b, &app, &bank, &unverified, &authorize2).await;
    let html = b.text().await;
    assert!(html.contains("We need to confirm who you are first"));
    assert!(
        b.c.find_all(Locator::Css("button[value=approve]"))
            .await
            .unwrap()
            .is_empty(),
        "no Approve button"
    );
    let first_box =
        b.c.find(Locator::Css("input[name=account_id]"))
            .await
            .unwrap();
    assert!(
        !first_box.is_enabled().await.unwrap(),
        "accounts cannot be picked"
    );
    b.accessible("the consent screen with a KYC hold").await;
    b.screenshots("consent-kyc-not-passed").await;
    b.click("button[value=decline]").await;
    b.wait_until("the TPP's callback", |u| u.as_str().starts_with(&callback))
        .await;
    let back = seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(back["error"], "access_denied");
    let c: Value = app
        .admin_get(&format!("/api/v0/consents/{consent2}"))
        .await
        .json();
    assert_eq!(c["status"], "Rejected");
    b.c.clone().close().await.unwrap();
}
