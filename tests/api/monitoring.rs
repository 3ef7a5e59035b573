//! Ongoing monitoring: the bank reports transactions, a high-risk one opens an alert that
//! suspends the customer's third-party access at once, and compliance resolves it.

use reqwest::Method;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::consents::{authorized, tpp};
use crate::gateway::AISP;
use crate::helpers::{spawn_with, Resp, TestApp};
use crate::kyc::{passed_customer, FAST};
use crate::oauth::form;
use crate::webhooks::{register as register_hook, Receiver};

/// `hours_ago` before now, as RFC 3339.
fn at(hours_ago: f64) -> String {
    let t = OffsetDateTime::now_utc() - time::Duration::seconds_f64(hours_ago * 3600.0);
    t.format(&Rfc3339).unwrap()
}

fn txn(id: &str, hours_ago: f64, amount: &str, direction: &str, counterparty: &str) -> Value {
    json!({
        "transaction_id": id,
        "booked_at": at(hours_ago),
        "amount": amount,
        "currency": "GBP",
        "direction": direction,
        "counterparty": {"id": counterparty, "name": format!("Payee {counterparty}")},
        "channel": "transfer",
        "country": "GB",
    })
}

async fn ingest(app: &TestApp, customer: &str, transactions: Vec<Value>) -> Resp {
    app.send(
        app.admin(
            Method::POST,
            &format!("/api/v0/customers/{customer}/transactions"),
        )
        .json(&json!({ "transactions": transactions })),
    )
    .await
}

async fn accounts(app: &TestApp, token: &str) -> Resp {
    app.send(
        app.request(Method::GET, &format!("{AISP}/accounts"))
            .bearer_auth(token),
    )
    .await
}

async fn refresh(app: &TestApp, id: &str, secret: &str, token: &str) -> Resp {
    form(
        app,
        "/oauth2/token",
        Some((id, secret)),
        &format!("grant_type=refresh_token&refresh_token={token}"),
    )
    .await
}

/// An ordinary few weeks: salary in, bills and card payments out.
fn quiet_history() -> Vec<Value> {
    let mut out = vec![
        txn("salary-1", 24.0 * 30.0, "2800.00", "credit", "employer"),
        txn("salary-2", 24.0 * 2.0, "2800.00", "credit", "employer"),
    ];
    for (i, payee) in ["grocer", "energy", "rent", "phone", "grocer"]
        .iter()
        .enumerate()
    {
        out.push(txn(
            &format!("bill-{i}"),
            24.0 * (25.0 - 5.0 * i as f64),
            "120.40",
            "debit",
            payee,
        ));
    }
    out
}

#[tokio::test]
async fn a_high_risk_batch_suspends_access_at_once_and_clearing_restores_it() {
    let app = spawn_with(FAST).await;
    let (hooks, url) = Receiver::start(vec![(204, None)]).await;
    register_hook(
        &app,
        &url,
        &["monitoring.alert.created", "monitoring.alert.resolved"],
    )
    .await;
    let customer = passed_customer(&app).await;
    let (id, secret) = tpp(&app, "Acme").await;
    let (_, access, refresh_token) = authorized(&app, &id, &secret, &customer).await;
    assert_eq!(accounts(&app, &access).await.status, 200);

    // Ordinary activity: stored, scored low, nothing changes.
    let r = ingest(&app, &customer, quiet_history()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(
        (v["accepted"].as_u64(), v["duplicates"].as_u64()),
        (Some(7), Some(0))
    );
    assert!(
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["risk_level"] == "low"),
        "{v}"
    );
    assert_eq!(v["alerts"], json!([]));
    assert_eq!(v["kyc_status"], "passed");
    assert_eq!(accounts(&app, &access).await.status, 200);

    // Money in and straight out again: a large credit, most of it paid on to a new payee.
    let mule = vec![
        txn("in-1", 5.0, "20000.00", "credit", "unknown-sender"),
        txn("out-1", 3.0, "19000.00", "debit", "new-payee"),
    ];
    let r = ingest(&app, &customer, mule.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let out = &v["results"][1];
    assert_eq!(out["risk_level"], "high", "{v}");
    let rules: Vec<&str> = out["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rule"].as_str().unwrap())
        .collect();
    assert!(
        rules.contains(&"rapid_movement") && rules.contains(&"large_amount"),
        "{rules:?}"
    );
    let alert = out["alert_id"].as_str().unwrap().to_owned();
    assert_eq!(v["alerts"], json!([alert]));
    assert_eq!(v["kyc_status"], "suspended");

    // The TPP's next request is denied, the refresh refused, a new token refused.
    let r = accounts(&app, &access).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.json()["Errors"][0]["Message"]
        .as_str()
        .unwrap()
        .contains("suspended"));
    let r = refresh(&app, &id, &secret, &refresh_token).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], "invalid_grant");

    // Sending the batch again counts nothing twice and opens nothing.
    let v = ingest(&app, &customer, mule).await.json();
    assert_eq!(
        (v["accepted"].as_u64(), v["duplicates"].as_u64()),
        (Some(0), Some(2))
    );
    assert_eq!(
        v["results"][1],
        json!({"transaction_id": "out-1", "duplicate": true})
    );
    assert_eq!(v["alerts"], json!([]));

    // The alert as compliance sees it, the customer's rating, the webhook, the audit row.
    let list = app
        .admin_get(&format!(
            "/api/v0/alerts?customer_id={customer}&status=open"
        ))
        .await
        .json();
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let a = app
        .admin_get(&format!("/api/v0/alerts/{alert}"))
        .await
        .json();
    assert_eq!(
        (
            a["status"].as_str(),
            a["action"].as_str(),
            a["previous_kyc_status"].as_str()
        ),
        (Some("open"), Some("suspended"), Some("passed"))
    );
    assert_eq!(a["transaction_id"], "out-1");
    assert!(
        !a.to_string().contains("Payee"),
        "no counterparty names: {a}"
    );
    let c = app
        .admin_get(&format!("/api/v0/customers/{customer}"))
        .await
        .json();
    assert_eq!(c["risk_rating"]["level"], "high");
    assert!(c["risk_rating"]["factors"]
        .as_array()
        .unwrap()
        .contains(&json!("monitoring_alert")));
    let got = hooks.wait_for(1).await;
    assert_eq!(got[0].json()["type"], "monitoring.alert.created");
    assert_eq!(got[0].json()["data"]["alert_id"], alert.as_str());
    assert_eq!(got[0].json()["data"]["action"], "suspended");
    let audit = app.audit("action=monitoring.alert.create").await;
    assert_eq!(audit[0]["resource_id"], alert.as_str());

    // Compliance clears it: access is back, for the same refresh token too.
    let r = app
        .send(
            app.admin(Method::POST, &format!("/api/v0/alerts/{alert}/resolve"))
                .json(&json!({"outcome": "cleared", "note": "salary advance from employer, documented"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let a = r.json();
    assert_eq!(a["status"], "cleared");
    assert_eq!(a["resolution"]["resolved_by"], app.admin_key_id.as_str());
    assert_eq!(accounts(&app, &access).await.status, 200);
    let r = refresh(&app, &id, &secret, &refresh_token).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let c = app
        .admin_get(&format!("/api/v0/customers/{customer}"))
        .await
        .json();
    assert_eq!(c["kyc_status"], "passed");
    assert!(!c["risk_rating"]["factors"]
        .as_array()
        .unwrap()
        .contains(&json!("monitoring_alert")));
    // Resolving twice is refused; the history says who did what.
    let r = app
        .send(
            app.admin(Method::POST, &format!("/api/v0/alerts/{alert}/resolve"))
                .json(&json!({"outcome": "confirmed", "note": "second thoughts"})),
        )
        .await;
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (409, Some("alert_already_resolved"))
    );
    let got = hooks.wait_for(2).await;
    assert_eq!(got[1].json()["type"], "monitoring.alert.resolved");
    let audit = app.audit("action=monitoring.alert.resolve").await;
    assert_eq!(audit[0]["actor_id"], app.admin_key_id.as_str());
    assert_eq!(audit[0]["reason"], "cleared");
}

#[tokio::test]
async fn confirming_sends_the_customer_to_review_and_flag_policy_only_alerts() {
    let app = spawn_with(FAST).await;
    let customer = passed_customer(&app).await;
    // A payee on the (made-up) sanctions list, spelled a little differently.
    let mut t = txn("wire-1", 1.0, "250.00", "debit", "acct-77");
    t["counterparty"]["name"] = json!("SANCTIONOV, Ivan");
    let v = ingest(&app, &customer, vec![t]).await.json();
    assert_eq!(
        v["results"][0]["reasons"][0]["rule"], "sanctions_match",
        "{v}"
    );
    let alert = v["alerts"][0].as_str().unwrap().to_owned();
    let r = app
        .send(
            app.admin(Method::POST, &format!("/api/v0/alerts/{alert}/resolve"))
                .json(&json!({"outcome": "confirmed", "note": "true match, reported"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let c = app
        .admin_get(&format!("/api/v0/customers/{customer}"))
        .await
        .json();
    assert_eq!(
        c["kyc_status"], "under_review",
        "manual review, access still ended"
    );

    // With `monitoring.on_high = flag` the alert opens but access stays.
    let mut env = FAST.to_vec();
    env.push(("OBGATE_MONITORING_ON_HIGH", "flag"));
    let app = spawn_with(&env).await;
    let customer = passed_customer(&app).await;
    let mut t = txn("wire-1", 1.0, "250.00", "debit", "acct-77");
    t["counterparty"]["name"] = json!("Ivan Sanctionov");
    let v = ingest(&app, &customer, vec![t]).await.json();
    assert_eq!(v["kyc_status"], "passed");
    let alert = v["alerts"][0].as_str().unwrap().to_owned();
    let a = app
        .admin_get(&format!("/api/v0/alerts/{alert}"))
        .await
        .json();
    assert_eq!(a["action"], "flagged");

    // A customer already rated high (an address in a higher-risk country) keeps the level,
    // but the open alert is recorded among the rating's factors all the same.
    let mut body = crate::kyc::customer_body("Jane");
    body["addresses"][0]["country"] = json!("IR");
    let r = app
        .send(app.admin(Method::POST, "/api/v0/customers").json(&body))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let customer = r.json()["customer_id"].as_str().unwrap().to_owned();
    crate::kyc::start_kyc(&app, &customer, "123-45-6789").await;
    crate::kyc::wait_for(&app, &customer, "passed").await;
    let rating = |c: &Value| c["risk_rating"].clone();
    let before = app
        .admin_get(&format!("/api/v0/customers/{customer}"))
        .await
        .json();
    assert_eq!(rating(&before)["level"], "high", "{before}");
    let mut t = txn("wire-2", 1.0, "250.00", "debit", "acct-77");
    t["counterparty"]["name"] = json!("Ivan Sanctionov");
    let v = ingest(&app, &customer, vec![t]).await.json();
    assert_eq!(v["alerts"].as_array().map(Vec::len), Some(1), "{v}");
    let after = app
        .admin_get(&format!("/api/v0/customers/{customer}"))
        .await
        .json();
    assert!(
        rating(&after)["factors"]
            .as_array()
            .unwrap()
            .contains(&json!("monitoring_alert")),
        "{after}"
    );
}

#[tokio::test]
async fn assessing_scores_without_storing_or_alerting() {
    let app = spawn_with(FAST).await;
    let customer = passed_customer(&app).await;
    assert_eq!(ingest(&app, &customer, quiet_history()).await.status, 200);
    let mut t = txn("pay-1", 0.5, "9000.00", "debit", "brand-new");
    t["customer_id"] = json!(customer);
    let r = app
        .send(
            app.admin(Method::POST, "/api/v0/transactions/assess")
                .json(&t),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let a = r.json();
    // 9,000 to a new payee is far above this customer's usual 120.40, and above the large
    // amount threshold of a customer rated medium (new relationship): 80% of 10,000.
    let rules: Vec<&str> = a["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["large_amount", "new_counterparty"], "{a}");
    assert!(a["reasons"][0]["detail"]
        .as_str()
        .unwrap()
        .contains("8000.00 GBP"));
    assert_eq!(a["risk_level"], "high");
    let alerts = app
        .admin_get(&format!("/api/v0/alerts?customer_id={customer}"))
        .await
        .json();
    assert_eq!(alerts["data"], json!([]));
    // Not stored: ingesting it afterwards is not a duplicate.
    t.as_object_mut().unwrap().remove("customer_id");
    let v = ingest(&app, &customer, vec![t]).await.json();
    assert_eq!(v["accepted"], 1);
    // An unknown customer is 404.
    let mut t = txn("pay-2", 0.5, "10.00", "debit", "x");
    t["customer_id"] = json!("cus_00000000000000000000000000000000");
    let r = app
        .send(
            app.admin(Method::POST, "/api/v0/transactions/assess")
                .json(&t),
        )
        .await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn a_bad_batch_lists_every_bad_field_and_stores_nothing() {
    let mut env = FAST.to_vec();
    env.push(("OBGATE_MONITORING_BATCH_MAX", "3"));
    let app = spawn_with(&env).await;
    let customer = passed_customer(&app).await;
    let mut bad_amount = txn("t-1", 1.0, "10.005", "debit", "a");
    bad_amount["memo"] = json!("unknown field");
    let mut no_name = txn("t-2", 1.0, "10.00", "debit", "b");
    no_name["counterparty"]
        .as_object_mut()
        .unwrap()
        .remove("name");
    let mut float = txn("t-3", 1.0, "10.00", "sideways", "c");
    float["amount"] = json!(10.5);
    let r = ingest(&app, &customer, vec![bad_amount, no_name, float]).await;
    assert_eq!(r.status, 400);
    let b = r.json();
    assert_eq!(b["Code"], "transactions_post_schema");
    let m = b["Message"].as_object().unwrap();
    for field in [
        "transactions[0].amount",
        "transactions[0].memo",
        "transactions[1].counterparty.name",
        "transactions[2].amount",
        "transactions[2].direction",
    ] {
        assert!(m.contains_key(field), "{field} not reported: {b}");
    }
    assert!(m["transactions[0].amount"][0]
        .as_str()
        .unwrap()
        .contains("2 decimal places"));
    let r = ingest(
        &app,
        &customer,
        (0..4)
            .map(|i| txn(&format!("t-{i}"), 1.0, "1.00", "debit", "a"))
            .collect(),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.json()["Message"]["transactions"][0]
        .as_str()
        .unwrap()
        .contains("between 1 and 3"));
    let rows: Vec<(String,)> =
        crate::kyc::sqlx_rows(&app, "SELECT transaction_id FROM monitored_transactions").await;
    assert!(rows.is_empty(), "nothing half-stored");
    // An unknown customer is 404 (after the body is found valid).
    let r = ingest(
        &app,
        "cus_00000000000000000000000000000000",
        vec![txn("t-9", 1.0, "1.00", "debit", "a")],
    )
    .await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn a_customer_is_rated_when_kyc_passes() {
    let app = spawn_with(FAST).await;
    let customer = passed_customer(&app).await;
    let c = app
        .admin_get(&format!("/api/v0/customers/{customer}"))
        .await
        .json();
    // A customer created today is a new relationship: medium until it ages.
    assert_eq!(c["risk_rating"]["level"], "medium", "{c}");
    assert_eq!(c["risk_rating"]["factors"], json!(["new_relationship"]));
    let audit = app.audit("action=customer.risk_rating.change").await;
    assert_eq!(audit[0]["resource_id"], customer.as_str());
    // Before KYC, no rating.
    let other = crate::kyc::create_customer(&app, "John").await;
    let c = app
        .admin_get(&format!("/api/v0/customers/{other}"))
        .await
        .json();
    assert_eq!(c["risk_rating"], Value::Null);
}

/// A customer's open alerts (ids, with the action each took) and KYC status.
async fn held(app: &TestApp, customer: &str) -> (Vec<(String, String)>, String) {
    let list = app
        .admin_get(&format!(
            "/api/v0/alerts?customer_id={customer}&status=open"
        ))
        .await
        .json();
    let open = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["alert_id"].as_str().unwrap().to_owned(),
                a["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let status = crate::kyc::verification(app, customer).await["kyc_status"]
        .as_str()
        .unwrap()
        .to_owned();
    (open, status)
}

/// Money in and straight out again: a batch scored high.
fn mule(tag: &str) -> Vec<Value> {
    vec![
        txn(
            &format!("in-{tag}"),
            5.0,
            "20000.00",
            "credit",
            "unknown-sender",
        ),
        txn(
            &format!("out-{tag}"),
            3.0,
            "19000.00",
            "debit",
            &format!("new-payee-{tag}"),
        ),
    ]
}

async fn resolve(app: &TestApp, alert: &str, outcome: &str) -> Resp {
    app.send(
        app.admin(Method::POST, &format!("/api/v0/alerts/{alert}/resolve"))
            .json(&json!({"outcome": outcome, "note": "checked with the customer"})),
    )
    .await
}

#[tokio::test]
async fn single_payment_batches_sent_together_are_scored_against_each_other() {
    let app = spawn_with(FAST).await;
    // Three 7,500.00 payments booked at the same moment to three payees, for a new customer
    // (rated medium: the large-amount line is 8,000.00): whichever is scored last, after the
    // other two, is high (structuring just under the line, and the day's total over it).
    let booked = at(0.5);
    let payment = |n: usize| {
        let mut t = txn(
            &format!("p-{n}"),
            0.5,
            "7500.00",
            "debit",
            &format!("payee-{n}"),
        );
        t["booked_at"] = json!(booked);
        vec![t]
    };
    let sequential = passed_customer(&app).await;
    for n in 0..3 {
        assert_eq!(ingest(&app, &sequential, payment(n)).await.status, 200);
    }
    let (open, status) = held(&app, &sequential).await;
    assert_eq!((open.len(), status.as_str()), (1, "suspended"));
    // The same three payments, each in its own request, all at once: the bank's feed posting
    // payments as they happen. However they interleave, the last one scored sees the others.
    for round in 0..6 {
        let customer = passed_customer(&app).await;
        let (a, b, c) = tokio::join!(
            ingest(&app, &customer, payment(0)),
            ingest(&app, &customer, payment(1)),
            ingest(&app, &customer, payment(2)),
        );
        for r in [&a, &b, &c] {
            assert_eq!(r.status, 200, "round {round}: {}", r.text());
        }
        let (open, status) = held(&app, &customer).await;
        assert_eq!(
            (open.len(), status.as_str()),
            (1, "suspended"),
            "round {round}"
        );
    }
}

#[tokio::test]
async fn alerts_opened_and_cleared_at_once_never_leave_a_hold_without_a_suspension() {
    let app = spawn_with(FAST).await;
    for round in 0..4 {
        // Clearing the one alert while a batch opens another: the new alert holds the
        // customer, whichever commits first.
        let customer = passed_customer(&app).await;
        let v = ingest(&app, &customer, mule("a")).await.json();
        let first = v["alerts"][0].as_str().unwrap().to_owned();
        let (cleared, opened) = tokio::join!(
            resolve(&app, &first, "cleared"),
            ingest(&app, &customer, mule("b")),
        );
        assert_eq!(cleared.status, 200, "{}", cleared.text());
        assert_eq!(opened.status, 200, "{}", opened.text());
        let (open, status) = held(&app, &customer).await;
        assert_eq!(open.len(), 1, "round {round}: {open:?}");
        assert_eq!(open[0].1, "suspended", "round {round}");
        assert_eq!(status, "suspended", "round {round}: an open hold");

        // Two alerts cleared at once by two officers: the customer gets access back.
        let customer = passed_customer(&app).await;
        ingest(&app, &customer, mule("a")).await;
        ingest(&app, &customer, mule("b")).await;
        let (open, status) = held(&app, &customer).await;
        assert_eq!((open.len(), status.as_str()), (2, "suspended"));
        let (x, y) = tokio::join!(
            resolve(&app, &open[0].0, "cleared"),
            resolve(&app, &open[1].0, "cleared"),
        );
        assert_eq!((x.status, y.status), (200, 200));
        let (open, status) = held(&app, &customer).await;
        assert_eq!(
            (open.len(), status.as_str()),
            (0, "passed"),
            "round {round}: no alert left, no hold left"
        );
    }
}
