//! The gateway: every denial, the response shaping, proxy hygiene, path normalisation,
//! upstream failures, and a full TPP journey against the built-in sandbox bank whose every
//! answer is validated against the official UK OB file.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{spawn_with, Resp, TestApp};
use crate::kyc::{passed_customer, FAST};
use crate::oauth::{form, register};
use crate::ob_spec;

pub const AISP: &str = "/open-banking/v3.1/aisp";

const ALL: &[&str] = &[
    "ReadAccountsDetail",
    "ReadBalances",
    "ReadBeneficiariesDetail",
    "ReadDirectDebits",
    "ReadOffers",
    "ReadParty",
    "ReadPartyPSU",
    "ReadProducts",
    "ReadScheduledPaymentsDetail",
    "ReadStandingOrdersDetail",
    "ReadStatementsDetail",
    "ReadTransactionsDetail",
    "ReadTransactionsCredits",
    "ReadTransactionsDebits",
];

/// What a test TPP holds after the customer approved its consent.
pub struct Access {
    pub client_id: String,
    pub secret: String,
    pub consent_id: String,
    pub customer_id: String,
    pub token: String,
}

async fn cc_token(app: &TestApp, id: &str, secret: &str) -> String {
    let r = form(
        app,
        "/oauth2/token",
        Some((id, secret)),
        "grant_type=client_credentials&scope=accounts",
    )
    .await;
    r.json()["access_token"].as_str().unwrap().to_owned()
}

pub async fn bound_token(app: &TestApp, id: &str, secret: &str, consent: &str) -> Resp {
    let details =
        json!([{"type": "openbanking_account_access", "consent_id": consent}]).to_string();
    form(
        app,
        "/oauth2/token",
        Some((id, secret)),
        &format!(
            "grant_type=client_credentials&scope=accounts&authorization_details={}",
            form_urlencoded::byte_serialize(details.as_bytes()).collect::<String>()
        ),
    )
    .await
}

/// A customer whose KYC passed, a consent with `data` authorised for the accounts `choose`
/// picks from the customer's sandbox accounts (all of them by default), and a customer-bound
/// token.
pub async fn access(
    app: &TestApp,
    data: Value,
    choose: Option<fn(Vec<String>) -> Vec<String>>,
) -> Access {
    let customer_id = passed_customer(app).await;
    let (client_id, secret) = register(app, json!({"client_name": "Acme"})).await;
    let cc = cc_token(app, &client_id, &secret).await;
    let r = app
        .send(
            app.request(Method::POST, &format!("{AISP}/account-access-consents"))
                .bearer_auth(&cc)
                .json(&json!({"Data": data, "Risk": {}})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let consent_id = r.json()["Data"]["ConsentId"].as_str().unwrap().to_owned();
    let all = obgate::sandbox_bank::account_ids(&customer_id);
    let accounts = match choose {
        Some(f) => f(all),
        None => all,
    };
    let r = app
        .send(
            app.admin(
                Method::POST,
                &format!("/api/v0/consents/{consent_id}/authorise"),
            )
            .json(&json!({"customer_id": customer_id, "account_ids": accounts})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = bound_token(app, &client_id, &secret, &consent_id).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let token = r.json()["access_token"].as_str().unwrap().to_owned();
    Access {
        client_id,
        secret,
        consent_id,
        customer_id,
        token,
    }
}

/// GETs an AIS path with the token, checking the answer against both contracts.
async fn get(app: &TestApp, path: &str, token: &str) -> Resp {
    let r = app
        .send(app.request(Method::GET, path).bearer_auth(token))
        .await;
    let template = path.split('?').next().unwrap();
    ob_spec::check_response("GET", template, r.status, &r.headers, &r.body);
    r
}

#[tokio::test]
async fn a_tpp_reads_every_resource_from_the_sandbox_bank_and_every_answer_is_valid_ob() {
    let app = spawn_with(FAST).await;
    let a = access(&app, json!({"Permissions": ALL}), None).await;
    let accounts = get(&app, &format!("{AISP}/accounts"), &a.token).await;
    assert_eq!(accounts.status, 200, "{}", accounts.text());
    let listed: Vec<String> = accounts.json()["Data"]["Account"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["AccountId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, obgate::sandbox_bank::account_ids(&a.customer_id));
    // The bank's consent UI lists the same accounts through the upstream.
    let r = app
        .admin_get(&format!("/api/v0/customers/{}/accounts", a.customer_id))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let offered: Vec<String> = r.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["account_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(offered, listed);
    assert_eq!(
        app.admin_get("/api/v0/customers/cus_nope/accounts")
            .await
            .status,
        404
    );
    let links = accounts.json()["Links"]["Self"]
        .as_str()
        .unwrap()
        .to_owned();
    let meta = app
        .get("/.well-known/oauth-authorization-server")
        .await
        .json();
    assert!(
        links.starts_with(meta["issuer"].as_str().unwrap()),
        "links point at obgate: {links}"
    );
    let acc = &listed[0];
    let statements = get(&app, &format!("{AISP}/accounts/{acc}/statements"), &a.token).await;
    assert_eq!(statements.status, 200, "{}", statements.text());
    let statement = statements.json()["Data"]["Statement"][0]["StatementId"]
        .as_str()
        .unwrap()
        .to_owned();
    for tail in [
        "/balances",
        "/beneficiaries",
        "/direct-debits",
        "/offers",
        "/party",
        "/products",
        "/scheduled-payments",
        "/standing-orders",
        "/statements",
        "/transactions",
    ] {
        let r = get(&app, &format!("{AISP}{tail}"), &a.token).await;
        assert_eq!(r.status, 200, "{tail}: {}", r.text());
    }
    for tail in [
        "",
        "/balances",
        "/beneficiaries",
        "/direct-debits",
        "/offers",
        "/parties",
        "/party",
        "/product",
        "/scheduled-payments",
        "/standing-orders",
        "/statements",
        "/transactions",
    ] {
        let r = get(&app, &format!("{AISP}/accounts/{acc}{tail}"), &a.token).await;
        assert_eq!(r.status, 200, "{tail}: {}", r.text());
    }
    for tail in ["", "/transactions", "/file"] {
        let r = get(
            &app,
            &format!("{AISP}/accounts/{acc}/statements/{statement}{tail}"),
            &a.token,
        )
        .await;
        assert_eq!(r.status, 200, "statement{tail}: {}", r.text());
    }
    let tx = get(&app, &format!("{AISP}/transactions"), &a.token)
        .await
        .json();
    assert!(
        tx["Data"]["Transaction"].as_array().unwrap().len() > 50,
        "a year of transactions"
    );
}

#[tokio::test]
async fn every_denial_gets_its_status_and_is_audited() {
    let app = spawn_with(FAST).await;
    let a = access(
        &app,
        json!({"Permissions": ["ReadAccountsBasic", "ReadBalances"]}),
        None,
    )
    .await;
    let accounts = format!("{AISP}/accounts");

    // 401: no token, a token in the query, a client-level token, a revoked token.
    let r = app.send(app.request(Method::GET, &accounts)).await;
    assert_eq!((r.status, r.body.is_empty()), (401, true));
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer error=\"invalid_token\"")
    );
    let r = app
        .send(app.request(Method::GET, &format!("{accounts}?access_token={}", a.token)))
        .await;
    assert_eq!(r.status, 401, "a token in the query string is refused");
    let cc = cc_token(&app, &a.client_id, &a.secret).await;
    assert_eq!(
        get(&app, &accounts, &cc).await.status,
        401,
        "client-level token"
    );
    let other = bound_token(&app, &a.client_id, &a.secret, &a.consent_id)
        .await
        .json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = form(
        &app,
        "/oauth2/revoke",
        Some((&a.client_id, &a.secret)),
        &format!("token={other}"),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        get(&app, &accounts, &other).await.status,
        401,
        "revoked at once"
    );
    assert_eq!(get(&app, &accounts, &a.token).await.status, 200);

    // 403: a permission the consent lacks, an account it does not cover.
    let r = get(&app, &format!("{AISP}/transactions"), &a.token).await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json()["Errors"][0]["ErrorCode"],
        "UK.OBIE.Resource.ConsentMismatch"
    );
    assert!(r.json()["Errors"][0]["Message"]
        .as_str()
        .unwrap()
        .contains("ReadTransactions"));
    let r = get(
        &app,
        &format!("{AISP}/accounts/not-mine/balances"),
        &a.token,
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(r.json()["Errors"][0]["Message"]
        .as_str()
        .unwrap()
        .contains("not-mine"));

    // 404: a route obgate does not know.
    let r = app
        .send(
            app.request(Method::GET, &format!("{AISP}/payments"))
                .bearer_auth(&a.token),
        )
        .await;
    assert_eq!((r.status, r.body.is_empty()), (404, true));

    // A KYC downgrade and a revocation end access on the next request.
    let review = |decision: &str| {
        app.admin(
            Method::POST,
            &format!(
                "/api/v0/customers/{}/verification-kyc/review",
                a.customer_id
            ),
        )
        .json(&json!({"decision": decision, "reason": "test"}))
    };
    assert_eq!(app.send(review("failed")).await.status, 200);
    let r = get(&app, &accounts, &a.token).await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json()["Errors"][0]["ErrorCode"],
        "UK.OBIE.Resource.InvalidConsentStatus"
    );
    assert!(r.json()["Errors"][0]["Message"]
        .as_str()
        .unwrap()
        .contains("KYC"));
    assert_eq!(app.send(review("passed")).await.status, 200);
    assert_eq!(get(&app, &accounts, &a.token).await.status, 200);
    let r = app
        .send(
            app.admin(
                Method::POST,
                &format!("/api/v0/consents/{}/revoke", a.consent_id),
            )
            .json(&json!({"reason": "customer"})),
        )
        .await;
    assert_eq!(r.status, 200);
    // The consent's tokens are on the deny list now, so the token itself is refused.
    assert_eq!(get(&app, &accounts, &a.token).await.status, 401);

    // Every decision is audited (in batches, so moments later): each denial with its reason,
    // the consent's under that consent, the allowed reads too.
    let wanted = [
        "permission_missing",
        "account_not_consented",
        "kyc_not_passed",
        "invalid_token",
        "client_level_token",
    ];
    let denied = app
        .decisions_eventually("outcome=denied", |rows| {
            wanted
                .iter()
                .all(|w| rows.iter().any(|r| r["reason"] == *w))
        })
        .await;
    for r in &denied {
        assert!(
            r["path"].as_str().unwrap().starts_with("/open-banking/"),
            "{r}"
        );
        assert!(r["interaction_id"].is_string(), "{r}");
        let reason = r["reason"].as_str().unwrap();
        if [
            "permission_missing",
            "account_not_consented",
            "kyc_not_passed",
        ]
        .contains(&reason)
        {
            assert_eq!(r["consent_id"], a.consent_id.as_str(), "{r}");
            assert_eq!(r["client_id"], a.client_id.as_str(), "{r}");
        }
        if reason == "invalid_token" {
            assert_eq!(r["client_id"], serde_json::Value::Null, "{r}");
        }
    }
    let allowed = app
        .decisions_eventually(
            &format!("outcome=success&consent_id={}", a.consent_id),
            |rows| !rows.is_empty(),
        )
        .await;
    assert_eq!(allowed[0]["reason"], "ok");
    assert_eq!(allowed[0]["client_id"], a.client_id.as_str());
    // Each batch of them is sealed into the audit chain, which verifies.
    let seal = app
        .audit(&format!(
            "action=gateway.decisions&cursor={}&limit=1",
            allowed[0]["sealed_by"].as_i64().unwrap() + 1
        ))
        .await;
    assert_eq!(seal[0]["seq"], allowed[0]["sealed_by"]);
    let verified = obgate::audit::chain::verify(app.store.as_ref())
        .await
        .unwrap();
    assert!(verified.decisions >= allowed.len() as i64 + denied.len() as i64);

    // Decisions are counted by outcome and reason, upstream time apart from decision time.
    let m = app.get("/metrics").await.text();
    for line in [
        "obgate_gateway_decisions_total{outcome=\"allowed\",reason=\"ok\"}",
        "obgate_gateway_decisions_total{outcome=\"denied\",reason=\"permission_missing\"} 1",
        "obgate_gateway_decisions_total{outcome=\"denied\",reason=\"client_level_token\"} 1",
        "obgate_gateway_upstream_duration_seconds_count",
        "obgate_gateway_decision_duration_seconds_count",
    ] {
        assert!(m.contains(line), "{line} missing from /metrics");
    }
    // The decisions above came from memory after the first of each, and every change
    // (KYC downgrade, token and consent revocation) still denied the very next request.
    for cache in ["token", "consent", "kyc"] {
        assert!(
            metric(
                &m,
                &format!("obgate_gateway_cache_lookups_total{{cache=\"{cache}\",result=\"hit\"}}")
            ) > 0.0,
            "no {cache} cache hit: {m}"
        );
    }
}

/// The value of one sample in an OpenMetrics exposition (0 when absent).
pub fn metric(exposition: &str, sample: &str) -> f64 {
    exposition
        .lines()
        .find_map(|l| l.strip_prefix(sample))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn the_permission_map_and_the_contract_list_the_same_routes() {
    let in_spec: std::collections::BTreeSet<String> = crate::spec::spec()["paths"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|p| p.starts_with(AISP) && !p.contains("account-access-consents"))
        .cloned()
        .collect();
    let in_map: std::collections::BTreeSet<String> = obgate::gateway::route_map::ROUTES
        .iter()
        .map(|r| format!("{AISP}{}", r.template))
        .collect();
    assert_eq!(in_map, in_spec);
}

/// A fake bank: answers from a script and records what it was sent.
#[derive(Clone, Default)]
pub struct FakeBank {
    pub seen: Arc<Mutex<Vec<(String, HeaderMap)>>>,
    pub delay: Arc<Mutex<Duration>>,
    /// When set, every answer is this (content type, body) instead of the JSON below.
    pub raw: Arc<Mutex<Option<(&'static str, String)>>>,
    /// When set, every answer is this status with no body.
    pub fail_with: Arc<Mutex<Option<u16>>>,
}

pub async fn fake_bank(
    bank: FakeBank,
    extra_account: &'static str,
) -> (String, tokio::task::JoinHandle<std::io::Result<()>>) {
    let router = bank_router(bank, extra_account);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("http://{addr}/core"), server)
}

/// An app in front of a fake bank (whose extra account is `someone-elses`), and a customer's
/// access under a consent with `data` covering the customer's first account.
async fn behind_fake_bank(data: Value) -> (FakeBank, TestApp, Access) {
    let bank = FakeBank::default();
    let (url, _server) = fake_bank(bank.clone(), "someone-elses").await;
    let mut env = FAST.to_vec();
    env.push(("OBGATE_UPSTREAM_URL", &url));
    let app = spawn_with(&env).await;
    let a = access(&app, data, Some(|all| all[..1].to_vec())).await;
    (bank, app, a)
}

/// The fake bank's routes: the customer's first sandbox account and `extra_account` (which
/// is never the customer's), under any path.
pub fn bank_router(bank: FakeBank, extra_account: &'static str) -> axum::Router {
    use axum::extract::{OriginalUri, State};
    use axum::routing::get;
    async fn any(
        State((bank, extra)): State<(FakeBank, &'static str)>,
        OriginalUri(uri): OriginalUri,
        headers: HeaderMap,
    ) -> axum::response::Response {
        use axum::response::IntoResponse;
        bank.seen
            .lock()
            .unwrap()
            .push((uri.to_string(), headers.clone()));
        let delay = *bank.delay.lock().unwrap();
        tokio::time::sleep(delay).await;
        let failure = *bank.fail_with.lock().unwrap();
        if let Some(status) = failure {
            return axum::http::StatusCode::from_u16(status)
                .unwrap()
                .into_response();
        }
        let raw = bank.raw.lock().unwrap().clone();
        if let Some((content_type, body)) = raw {
            return ([(axum::http::header::CONTENT_TYPE, content_type)], body).into_response();
        }
        let customer = headers["x-obgate-customer-id"].to_str().unwrap().to_owned();
        let mine = obgate::sandbox_bank::account_ids(&customer)[0].clone();
        let tx = |acc: &str, cd: &str, at: &str| {
            json!({
                "AccountId": acc, "TransactionId": format!("t-{acc}-{cd}-{at}"), "CreditDebitIndicator": cd,
                "Status": "Booked", "BookingDateTime": at, "Amount": {"Amount": "10.00", "Currency": "GBP"},
                "TransactionInformation": "Coffee at Cafe", "MerchantDetails": {"MerchantName": "Cafe"},
                "Balance": {"Amount": {"Amount": "100.00", "Currency": "GBP"}, "CreditDebitIndicator": "Credit", "Type": "InterimBooked"}
            })
        };
        let path = uri.path().to_owned();
        axum::Json(if path.ends_with("/transactions") {
            json!({"Data": {"Transaction": [
                tx(&mine, "Debit", "2026-03-01T10:00:00+00:00"),
                tx(&mine, "Credit", "2026-03-02T10:00:00+00:00"),
                tx(&mine, "Debit", "2025-06-01T10:00:00+00:00"),
                tx(extra, "Debit", "2026-03-01T10:00:00+00:00"),
            ]}, "Links": {"Self": format!("http://core.bank.internal{uri}")}, "Meta": {"TotalPages": 1}})
        } else {
            json!({"Data": {"Account": [
                {"AccountId": mine, "Currency": "GBP", "AccountType": "Personal", "AccountSubType": "CurrentAccount",
                 "Account": [{"SchemeName": "UK.OBIE.SortCodeAccountNumber", "Identification": "11223312345678"}]},
                {"AccountId": extra, "Currency": "GBP", "AccountType": "Personal", "AccountSubType": "CurrentAccount"}
            ]}, "Links": {"Self": format!("http://core.bank.internal{uri}")}, "Meta": {"TotalPages": 1}})
        })
        .into_response()
    }
    axum::Router::new()
        .fallback(get(any))
        .with_state((bank, extra_account))
}

#[tokio::test]
async fn only_consented_accounts_detail_direction_and_window_reach_the_tpp() {
    let bank = FakeBank::default();
    let (url, _server) = fake_bank(bank.clone(), "someone-elses").await;
    let mut env = FAST.to_vec();
    env.push(("OBGATE_UPSTREAM_URL", &url));
    env.push(("OBGATE_UPSTREAM_CREDENTIAL", "x-bank-key: s3cret"));
    let app = spawn_with(&env).await;
    let a = access(
        &app,
        json!({"Permissions": ["ReadAccountsBasic", "ReadTransactionsBasic", "ReadTransactionsDebits"],
               "TransactionFromDateTime": "2026-01-01T00:00:00+00:00",
               "TransactionToDateTime": "2026-12-31T00:00:00+00:00"}),
        Some(|all| all[..1].to_vec()),
    )
    .await;
    let r = app
        .send(
            app.request(Method::GET, &format!("{AISP}/accounts"))
                .bearer_auth(&a.token)
                .header("cookie", "session=abc")
                .header("x-obgate-customer-id", "cus_forged")
                .header("x-forwarded-for", "10.0.0.1")
                .header(
                    "x-fapi-interaction-id",
                    "11111111-2222-3333-4444-555555555555",
                ),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    let accounts = body["Data"]["Account"].as_array().unwrap();
    assert_eq!(
        accounts.len(),
        1,
        "the upstream's extra account never leaks"
    );
    assert!(
        accounts[0].get("Account").is_none(),
        "Basic: no account identification"
    );
    assert!(
        body["Links"]["Self"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1"),
        "{body}"
    );
    assert!(!r.text().contains("core.bank.internal"));

    let seen = bank.seen.lock().unwrap().clone();
    // The first call was the authorisation checking the chosen account is the customer's.
    assert_eq!(seen[0].1["x-obgate-customer-id"], a.customer_id.as_str());
    let (uri, headers) = seen.last().cloned().unwrap();
    assert_eq!(uri, "/core/open-banking/v3.1/aisp/accounts");
    assert_eq!(
        headers["x-obgate-customer-id"],
        a.customer_id.as_str(),
        "obgate's, not the forged one"
    );
    assert_eq!(headers["x-obgate-consent-id"], a.consent_id.as_str());
    assert_eq!(headers["x-obgate-client-id"], a.client_id.as_str());
    assert_eq!(headers["x-bank-key"], "s3cret");
    assert_eq!(
        headers["x-fapi-interaction-id"],
        "11111111-2222-3333-4444-555555555555"
    );
    for gone in ["authorization", "cookie"] {
        assert!(headers.get(gone).is_none(), "{gone} reached the upstream");
    }
    assert_eq!(
        headers["x-forwarded-for"], "127.0.0.1",
        "the connecting peer, not the client's claim"
    );
    assert_eq!(headers["x-forwarded-proto"], "http");

    let r = app
        .send(
            app.request(Method::GET, &format!("{AISP}/transactions?fromBookingDateTime=2020-01-01T00:00:00&toBookingDateTime=2026-06-30T00:00:00"))
                .bearer_auth(&a.token),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let items = r.json()["Data"]["Transaction"].as_array().unwrap().clone();
    assert_eq!(
        items.len(),
        1,
        "own account, debit, inside the window: {items:?}"
    );
    assert!(items[0].get("TransactionInformation").is_none() && items[0].get("Balance").is_none());
    let (uri, _) = bank.seen.lock().unwrap().last().cloned().unwrap();
    let q: std::collections::HashMap<String, String> = url::Url::parse(&format!("http://x{uri}"))
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    assert_eq!(
        q["fromBookingDateTime"], "2026-01-01T00:00:00+00:00",
        "clamped to the consent"
    );
    assert_eq!(
        q["toBookingDateTime"], "2026-06-30T00:00:00+00:00",
        "the narrower of the two"
    );
}

#[tokio::test]
async fn a_bank_answer_the_filter_cannot_read_is_refused_never_passed_on() {
    let (bank, app, a) = behind_fake_bank(json!({"Permissions": ["ReadAccountsBasic"]})).await;
    let mine = obgate::sandbox_bank::account_ids(&a.customer_id)[0].clone();
    let listed = |key: &str| {
        json!({"Data": {key: [{"AccountId": mine, "Nickname": "Bills"},
                              {"AccountId": "someone-elses", "Nickname": "Theirs"}]}})
        .to_string()
    };
    let read = |accept: &'static str| {
        app.send(
            app.request(Method::GET, &format!("{AISP}/accounts"))
                .bearer_auth(&a.token)
                .header("accept", accept)
                .header("range", "bytes=0-100")
                .header("accept-encoding", "gzip"),
        )
    };
    for (content_type, body, want) in [
        // JSON in any case is read, and filtered.
        ("Application/JSON; charset=utf-8", listed("Account"), 200),
        ("application/vnd.bank+json", listed("Account"), 200),
        // Anything else is refused: it would have reached the TPP unfiltered.
        ("text/plain", listed("Account"), 502),
        ("application/jose+jwe", listed("Account"), 502),
        // JSON without the route's list cannot be filtered either.
        ("application/json", listed("Transaction"), 502),
        (
            "application/json",
            json!({"Data": {"Account": {"AccountId": "someone-elses"}}}).to_string(),
            502,
        ),
    ] {
        *bank.raw.lock().unwrap() = Some((content_type, body));
        let r = read("application/jose+jwe").await;
        assert_eq!(r.status, want, "{content_type}: {}", r.text());
        assert!(
            !r.text().contains("someone-elses"),
            "{content_type}: {}",
            r.text()
        );
        if want == 200 {
            assert_eq!(r.json()["Data"]["Account"].as_array().unwrap().len(), 1);
        }
    }
    // The bank was asked for JSON, whole, unconditionally, and not compressed.
    let (_, headers) = bank.seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(headers["accept"], "application/json");
    for gone in ["range", "accept-encoding"] {
        assert!(headers.get(gone).is_none(), "{gone} reached the bank");
    }
}

#[tokio::test]
async fn an_unreachable_upstream_is_502_and_a_slow_one_504() {
    let bank = FakeBank::default();
    let (url, server) = fake_bank(bank.clone(), "x").await;
    let mut env = FAST.to_vec();
    env.push(("OBGATE_UPSTREAM_URL", &url));
    env.push(("OBGATE_UPSTREAM_TIMEOUT", "300ms"));
    let app = spawn_with(&env).await;
    let a = access(
        &app,
        json!({"Permissions": ["ReadAccountsBasic"]}),
        Some(|all| all[..1].to_vec()),
    )
    .await;
    // 502 and 504 are obgate's own answers (the official file lists neither), so only
    // obgate's contract applies.
    let accounts = format!("{AISP}/accounts");
    *bank.delay.lock().unwrap() = Duration::from_secs(3);
    let r = app
        .send(app.request(Method::GET, &accounts).bearer_auth(&a.token))
        .await;
    assert_eq!(r.status, 504);
    assert_eq!(
        r.json()["Errors"][0]["ErrorCode"],
        "UK.OBIE.UnexpectedError"
    );
    // The bank goes away.
    server.abort();
    let _ = server.await;
    let r = app
        .send(app.request(Method::GET, &accounts).bearer_auth(&a.token))
        .await;
    assert_eq!(r.status, 502);
    assert_eq!(
        r.json()["Errors"][0]["ErrorCode"],
        "UK.OBIE.UnexpectedError"
    );
    // The bank's consent UI gets the same answer in the admin shape.
    let r = app
        .admin_get(&format!("/api/v0/customers/{}/accounts", a.customer_id))
        .await;
    assert_eq!(r.status, 502);
}

/// Sends a raw request line, so no client library tidies the path first.
async fn raw_status(app: &TestApp, path: &str, token: &str) -> u16 {
    let addr = app.base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out);
    text.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn the_path_checked_is_the_path_proxied() {
    let app = spawn_with(FAST).await;
    let a = access(&app, json!({"Permissions": ["ReadAccountsBasic"]}), None).await;
    let acc = obgate::sandbox_bank::account_ids(&a.customer_id)[0].clone();
    assert_eq!(
        raw_status(&app, &format!("{AISP}/accounts/{acc}"), &a.token).await,
        200
    );
    for tricky in [
        format!("{AISP}/accounts/{acc}/../../balances"),
        format!("{AISP}/accounts/%2e%2e/balances"),
        format!("{AISP}/accounts/{acc}%2Fbalances"),
        format!("{AISP}/accounts/{acc}%252Fbalances"),
        format!("{AISP}//accounts"),
        format!("{AISP}/accounts/"),
        format!("{AISP}/./accounts"),
    ] {
        assert_eq!(raw_status(&app, &tricky, &a.token).await, 400, "{tricky}");
    }
}

/// GET on a gateway route is served without axum's router (`http::dispatch`); every other
/// method still goes through it. Both must look the same from outside: the route in the
/// metrics, other methods a 405 that names GET.
#[tokio::test]
async fn the_direct_gateway_path_answers_and_is_counted_as_the_router_would() {
    let app = spawn_with(FAST).await;
    let a = access(&app, json!({"Permissions": ["ReadAccountsBasic"]}), None).await;
    let acc = obgate::sandbox_bank::account_ids(&a.customer_id)[0].clone();
    for _ in 0..2 {
        assert_eq!(
            get(&app, &format!("{AISP}/accounts/{acc}"), &a.token)
                .await
                .status,
            200
        );
    }
    let post = app
        .send(
            app.request(Method::POST, &format!("{AISP}/accounts/{acc}"))
                .bearer_auth(&a.token),
        )
        .await;
    assert_eq!(post.status, 405);
    assert!(post.header("allow").unwrap().contains("GET"));
    // Not a route, though it starts with the AIS prefix: a 404, never a gateway read.
    let near = app
        .send(
            app.request(Method::GET, &format!("{AISP}X/accounts"))
                .bearer_auth(&a.token),
        )
        .await;
    assert_eq!(near.status, 404);

    let text = app.get("/metrics").await.text();
    let count = |method: &str, status: &str| {
        text.lines()
            .find(|l| {
                l.starts_with("obgate_http_requests_total{")
                    && l.contains(&format!("method=\"{method}\""))
                    && l.contains("route=\"/open-banking/v3.1/aisp/accounts/{AccountId}\"")
                    && l.contains(&format!("status=\"{status}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_owned)
    };
    assert_eq!(count("GET", "200").as_deref(), Some("2"), "{text}");
    assert_eq!(count("POST", "405").as_deref(), Some("1"), "{text}");
    assert!(!text.contains(&acc), "raw paths must not become labels");
}

#[tokio::test]
async fn the_sandbox_bank_serves_on_its_own_port_as_an_http_upstream() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut env = FAST.to_vec();
    env.push(("OBGATE_SANDBOX_BANK_LISTEN", &listen));
    let _bank = spawn_with(&env).await;
    let http = reqwest::Client::new();
    let url = format!("http://{listen}{AISP}/accounts");
    // It starts with the server, a moment after the test app is handed over.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let r = loop {
        match http
            .get(&url)
            .header("x-obgate-customer-id", "cus_example")
            .send()
            .await
        {
            Ok(r) => break r,
            Err(e) => assert!(std::time::Instant::now() < deadline, "{e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    let body = r.bytes().await.unwrap().to_vec();
    assert_eq!(status, 200);
    ob_spec::check_response("GET", &format!("{AISP}/accounts"), status, &headers, &body);
    let accounts: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        accounts["Data"]["Account"].as_array().unwrap().len(),
        obgate::sandbox_bank::account_ids("cus_example").len()
    );
    let r = http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 400, "whose data is required");

    // Another obgate uses it as its upstream over HTTP, the way it would use a bank's API.
    let upstream = format!("http://{listen}");
    let mut env = FAST.to_vec();
    env.push(("OBGATE_UPSTREAM_URL", &upstream));
    let app = spawn_with(&env).await;
    let a = access(
        &app,
        json!({"Permissions": ["ReadAccountsBasic"]}),
        Some(|all| all[1..].to_vec()),
    )
    .await;
    let r = get(&app, &format!("{AISP}/accounts"), &a.token).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let got: Vec<String> = r.json()["Data"]["Account"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["AccountId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got, obgate::sandbox_bank::account_ids(&a.customer_id)[1..]);

    // Never in production: it serves made-up data to anyone.
    let e = obgate::config::Config::load(
        None,
        vec![
            ("OBGATE_MODE".to_owned(), "production".to_owned()),
            ("OBGATE_SANDBOX_BANK_LISTEN".to_owned(), listen.clone()),
        ],
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(e.contains("OBGATE_SANDBOX_BANK_LISTEN"), "{e}");
}

#[tokio::test]
async fn a_consent_expiring_under_a_live_token_and_tampered_tokens_are_refused() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use base64::Engine;

    let start = 1_790_000_000;
    let (app, clock) = crate::helpers::spawn_at(start, FAST).await;
    let expires = time::OffsetDateTime::from_unix_timestamp(start + 120)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let a = access(
        &app,
        json!({"Permissions": ["ReadAccountsBasic"], "ExpirationDateTime": expires}),
        None,
    )
    .await;
    let accounts = format!("{AISP}/accounts");
    for _ in 0..2 {
        assert_eq!(get(&app, &accounts, &a.token).await.status, 200);
    }

    // The same token with another payload under the genuine signature: never the cached
    // verification of the genuine one.
    let parts: Vec<&str> = a.token.split('.').collect();
    let mut claims: Value = serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
    claims["consent_id"] = json!("aac-someone-elses");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        B64.encode(claims.to_string()),
        parts[2]
    );
    assert_eq!(get(&app, &accounts, &forged).await.status, 401);
    let mut sig = B64.decode(parts[2]).unwrap();
    sig[5] ^= 1;
    let bad_sig = format!("{}.{}.{}", parts[0], parts[1], B64.encode(sig));
    assert_eq!(get(&app, &accounts, &bad_sig).await.status, 401);

    // Two minutes on, the consent has expired while its token (5 minutes) has not.
    clock.advance(Duration::from_secs(121));
    let r = get(&app, &accounts, &a.token).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(
        r.json()["Errors"][0]["ErrorCode"],
        "UK.OBIE.Resource.InvalidConsentStatus"
    );
    assert!(r.json()["Errors"][0]["Message"]
        .as_str()
        .unwrap()
        .contains("expired"));
    // And past the token's own expiry, the token itself is refused.
    clock.advance(Duration::from_secs(300));
    assert_eq!(get(&app, &accounts, &a.token).await.status, 401);
}

#[tokio::test]
async fn statements_outside_the_consent_window_are_neither_listed_nor_served() {
    let app = spawn_with(FAST).await;
    // The sandbox bank keeps the last three complete months' statements; the window starts
    // on the first day of last month, so only last month's lies wholly inside it.
    let today = time::OffsetDateTime::now_utc().date();
    let last_month = today
        .replace_day(1)
        .unwrap()
        .previous_day()
        .unwrap()
        .replace_day(1)
        .unwrap();
    let before = last_month.previous_day().unwrap();
    let month = |d: time::Date| format!("{:04}{:02}", d.year(), u8::from(d.month()));
    let a = access(
        &app,
        json!({"Permissions": ["ReadAccountsBasic", "ReadStatementsBasic", "ReadStatementsDetail"],
               "TransactionFromDateTime": format!("{last_month}T00:00:00+00:00")}),
        None,
    )
    .await;
    let account = obgate::sandbox_bank::account_ids(&a.customer_id)[0].clone();
    let get = |path: String| {
        app.send(
            app.request(Method::GET, &format!("{AISP}{path}"))
                .bearer_auth(&a.token),
        )
    };
    let ids = |r: &Resp| -> Vec<String> {
        r.json()["Data"]["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["StatementId"].as_str().unwrap().to_owned())
            .collect()
    };
    let inside = format!("{account}-{}", month(last_month));
    let outside = format!("{account}-{}", month(before));
    // Listed: only the statement inside the window, however early the TPP asks from.
    for path in [
        format!("/accounts/{account}/statements"),
        format!("/accounts/{account}/statements?fromStatementDateTime=2000-01-01T00:00:00"),
    ] {
        let r = get(path.clone()).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(ids(&r), [inside.as_str()], "{path}");
    }
    let r = get("/statements".to_owned()).await;
    let all = ids(&r);
    assert!(
        !all.is_empty() && all.iter().all(|id| id.ends_with(&month(last_month))),
        "{all:?}"
    );
    // An older statement by its id: not shown, and its file not served.
    let r = get(format!("/accounts/{account}/statements/{outside}")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(ids(&r).is_empty(), "{}", r.text());
    let r = get(format!("/accounts/{account}/statements/{outside}/file")).await;
    assert_eq!(r.status, 404, "{}", r.text());
    // The statement inside the window, and its file, are.
    let r = get(format!("/accounts/{account}/statements/{inside}")).await;
    assert_eq!(ids(&r), [inside.as_str()]);
    let r = get(format!("/accounts/{account}/statements/{inside}/file")).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn a_statement_file_the_bank_cannot_describe_is_502_not_a_missing_statement() {
    let (bank, app, a) = behind_fake_bank(
        json!({"Permissions": ["ReadAccountsBasic", "ReadStatementsDetail"],
               "TransactionFromDateTime": "2026-01-01T00:00:00+00:00"}),
    )
    .await;
    let account = obgate::sandbox_bank::account_ids(&a.customer_id)[0].clone();
    let file = |status: u16| {
        *bank.fail_with.lock().unwrap() = Some(status);
        app.send(
            app.request(
                Method::GET,
                &format!("{AISP}/accounts/{account}/statements/s1/file"),
            )
            .bearer_auth(&a.token),
        )
    };
    // The window check asks the bank for the statement first: its failure is the bank's, its
    // not knowing the statement is a missing statement.
    assert_eq!(file(500).await.status, 502);
    assert_eq!(file(404).await.status, 404);
}

/// An allowed read that nothing would record does not reach the bank. The access log's writer
/// stops at shutdown (here an embedding stops it): a read decided after that is answered 503,
/// where it used to go to the bank with only an error line in the log.
#[tokio::test]
async fn an_allowed_read_that_nothing_would_record_is_refused() {
    let app = spawn_with(FAST).await;
    let a = access(&app, json!({"Permissions": ["ReadAccountsBasic"]}), None).await;
    let mut env = FAST.to_vec();
    env.push(("OBGATE_DATABASE_MIGRATE_ON_START", "false"));
    let embedded = obgate::App::build(crate::helpers::config(&app.db, &env))
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let writer = tokio::spawn(obgate::gateway::access_log::write(
        embedded.state().clone(),
        stopped,
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = embedded
        .router()
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let read = || {
        reqwest::Client::new()
            .get(format!("{base}{AISP}/accounts"))
            .bearer_auth(&a.token)
            .send()
    };
    let r = read().await.unwrap();
    assert_eq!(r.status(), 200, "served while the writer runs");
    stop.send(true).unwrap();
    writer.await.unwrap();
    let r = read().await.unwrap();
    assert_eq!(r.status(), 503, "{}", r.text().await.unwrap());
}
