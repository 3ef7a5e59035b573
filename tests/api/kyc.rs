//! Customers and KYC over HTTP: Bond's API shapes, the sandbox provider's every path, KBA,
//! documents, reviews, idempotency, the HTTP provider adapter, and erasure.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use obgate::clock::{ManualClock, Timestamp};
use obgate::kyc::{status_of, KycStatus};

use crate::helpers::{config, spawn, spawn_with, spawn_with_clock, TestApp, TestDb};

pub const FAST: &[(&str, &str)] = &[("OBGATE_WORKERS_POLL_INTERVAL", "50ms")];

pub fn customer_body(first_name: &str) -> Value {
    json!({
        "first_name": first_name,
        "last_name": "Doe",
        "dob": "1990-04-15",
        "addresses": [{
            "address_type": "PHYSICAL",
            "street": "1 Main Street",
            "city": "Boston",
            "state": "MA",
            "zip_code": "02101",
            "country": "US"
        }]
    })
}

pub fn kyc_body(ssn: &str) -> Value {
    json!({
        "program_id": "prog-1",
        "ssn": ssn,
        "phone": "5555550123",
        "phone_country_code": "1",
        "email": "jane.doe@example.com",
        "ip": "203.0.113.7"
    })
}

pub async fn create_customer(app: &TestApp, first_name: &str) -> String {
    let r = app
        .send(
            app.admin(Method::POST, "/api/v0/customers")
                .json(&customer_body(first_name)),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["customer_id"].as_str().unwrap().to_owned()
}

pub async fn start_kyc(app: &TestApp, id: &str, ssn: &str) {
    let r = app
        .send(
            app.admin(
                Method::POST,
                &format!("/api/v0/customers/{id}/verification-kyc"),
            )
            .json(&kyc_body(ssn)),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"customer_id": id, "kyc_status": "initialized"})
    );
}

pub async fn verification(app: &TestApp, id: &str) -> Value {
    let r = app
        .admin_get(&format!("/api/v0/customers/{id}/verification-kyc"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// Waits until the customer's status is `want` (the provider runs in the background).
pub async fn wait_for(app: &TestApp, id: &str, want: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = verification(app, id).await;
        if v["kyc_status"] == want {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "status stayed {} (want {want})",
            v["kyc_status"]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A customer whose KYC passed, through the API.
pub async fn passed_customer(app: &TestApp) -> String {
    let id = create_customer(app, "Jane").await;
    start_kyc(app, &id, "123-45-6789").await;
    wait_for(app, &id, "passed").await;
    id
}

#[tokio::test]
async fn customer_validation_lists_every_bad_field_in_bonds_shape() {
    let app = spawn().await;
    let r = app
        .send(app.admin(Method::POST, "/api/v0/customers").json(&json!({
            "first_name": "J",
            "dob": "2015-02-30",
            "nickname": "JJ",
            "addresses": [{"address_type": "HOME", "street": "", "city": "Boston", "zip_code": "02101", "country": "XX"}]
        })))
        .await;
    assert_eq!(r.status, 400);
    let b = r.json();
    assert_eq!(b["Status"], 400);
    assert_eq!(b["Code"], "customer_post_schema");
    assert_eq!(b["Type"], "Request Error");
    let m = b["Message"].as_object().unwrap();
    for field in [
        "first_name",
        "dob",
        "nickname",
        "addresses[0].address_type",
        "addresses[0].street",
        "addresses[0].country",
    ] {
        assert!(m.contains_key(field), "{field} not reported: {b}");
    }
    assert_eq!(m["nickname"], json!(["Unknown field."]));

    // Missing required fields and an under-18 customer.
    let r = app
        .send(
            app.admin(Method::POST, "/api/v0/customers")
                .json(&json!({"last_name": "Doe"})),
        )
        .await;
    assert_eq!(r.status, 400);
    let m = r.json()["Message"].clone();
    assert_eq!(m["first_name"], json!(["Missing data for required field."]));
    assert_eq!(m["dob"], json!(["Missing data for required field."]));
    let mut young = customer_body("Jane");
    young["dob"] = json!("2015-01-01");
    let r = app
        .send(app.admin(Method::POST, "/api/v0/customers").json(&young))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["Message"]["dob"],
        json!(["The customer must be at least 18 years old."])
    );
}

#[tokio::test]
async fn customers_are_created_read_listed_and_patched_with_masked_pii() {
    let app = spawn().await;
    let r = app
        .send(
            app.admin(Method::POST, "/api/v0/customers")
                .json(&customer_body("Mary Ann")),
        )
        .await;
    assert_eq!(r.status, 201);
    let c = r.json();
    let id = c["customer_id"].as_str().unwrap().to_owned();
    assert_eq!(c["first_name"], "Mary Ann");
    assert_eq!(c["dob"], "****-**-15", "date of birth is masked");
    assert_eq!(c["kyc_status"], "not_started");
    assert_eq!(c["addresses"][0]["is_primary"], true);

    let r = app.admin_get(&format!("/api/v0/customers/{id}")).await;
    assert_eq!(r.json(), c);

    let r = app
        .send(
            app.admin(Method::PATCH, &format!("/api/v0/customers/{id}"))
                .json(&json!({"last_name": "Smith"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["last_name"], "Smith");
    assert_eq!(r.json()["first_name"], "Mary Ann", "unsent fields are kept");

    // Two updates made from the same read of the customer (two PATCHes at once, each merging
    // into what it read): the second is refused, not applied over the first one's change.
    use obgate::store::kyc::WriteOutcome;
    let row = app.store.get_customer(&id).await.unwrap().unwrap();
    let profile = row.profile.clone().unwrap();
    let audit = obgate::audit::AuditEvent::new(
        app.clock.now(),
        obgate::audit::ActorType::System,
        "test",
        "customer.update",
    );
    let write = || {
        app.store.update_customer_profile(
            &id,
            &profile,
            app.clock.now(),
            row.kyc_version,
            None,
            &audit,
        )
    };
    assert!(matches!(write().await.unwrap(), WriteOutcome::Applied));
    assert!(matches!(write().await.unwrap(), WriteOutcome::Stale));

    for n in ["Anna", "Bob"] {
        create_customer(&app, n).await;
    }
    let r = app.admin_get("/api/v0/customers?limit=2").await;
    let page = r.json();
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    assert_eq!(page["data"][0]["first_name"], "Bob", "newest first");
    let cursor = page["next_cursor"].as_str().unwrap();
    let r = app
        .admin_get(&format!("/api/v0/customers?limit=2&cursor={cursor}"))
        .await;
    let page2 = r.json();
    assert_eq!(page2["data"].as_array().unwrap().len(), 1);
    assert_eq!(page2["data"][0]["customer_id"], id.as_str());

    let r = app.admin_get("/api/v0/customers/cus_nope").await;
    assert_eq!(r.status, 404);
    let r = app.admin_get("/api/v0/customers?limit=0").await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn sandbox_kyc_passes_and_then_locks_the_customer() {
    let app = spawn_with(FAST).await;
    let id = create_customer(&app, "Jane").await;
    assert_eq!(
        status_of(app.store.as_ref(), &id).await.unwrap(),
        Some(KycStatus::NotStarted)
    );
    start_kyc(&app, &id, "123-45-6789").await;
    let v = wait_for(&app, &id, "passed").await;
    assert_eq!(v["ssn"], "***-**-6789");
    assert_eq!(v["email"], "j***@example.com");
    assert_eq!(v["phone"], "+1 ******0123");
    for check in ["ofac", "bureau", "ip", "phone", "email"] {
        assert_eq!(v["reasons"][check], "passed", "{check}");
    }
    let history: Vec<(String, String)> = v["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["from"].as_str().unwrap().into(),
                t["to"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        history,
        vec![
            ("not_started".into(), "initialized".into()),
            ("initialized".into(), "passed".into())
        ]
    );
    assert_eq!(
        status_of(app.store.as_ref(), &id).await.unwrap(),
        Some(KycStatus::Passed)
    );
    assert_eq!(v["duplicate_ssn"], false);
    // A second customer with the same SSN (written differently) is flagged on both, found
    // through the keyed hash without decrypting anyone.
    let twin = create_customer(&app, "Janet").await;
    start_kyc(&app, &twin, "123456789").await;
    let t = wait_for(&app, &twin, "passed").await;
    assert_eq!(t["duplicate_ssn"], true);
    assert_eq!(verification(&app, &id).await["duplicate_ssn"], true);

    // A second verification is refused, naming when the first succeeded.
    let r = app
        .send(
            app.admin(
                Method::POST,
                &format!("/api/v0/customers/{id}/verification-kyc"),
            )
            .json(&kyc_body("123-45-6789")),
        )
        .await;
    assert_eq!(r.status, 409);
    let b = r.json();
    assert_eq!(b["code"], "kyc_already_passed");
    assert_eq!(b["type"], "RESOURCE_CONFLICT");
    let passed_at = v["date_passed"].as_str().unwrap();
    assert!(b["message"].as_str().unwrap().contains(passed_at), "{b}");

    // Details cannot change after a pass.
    let r = app
        .send(
            app.admin(Method::PATCH, &format!("/api/v0/customers/{id}"))
                .json(&json!({"first_name": "Janet"})),
        )
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(r.json()["code"], "kyc_already_passed");

    // Every transition is audited.
    let rows = app
        .audit(&format!("action=kyc.status.change&resource_id={id}"))
        .await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows
        .iter()
        .any(|r| r["actor_type"] == "system" && r["reason"] == "provider.passed"));
}

#[tokio::test]
async fn kyc_validation_answers_exactly_like_bond() {
    let app = spawn().await;
    let id = create_customer(&app, "Jane").await;
    let mut body = kyc_body("123-45-6789");
    body.as_object_mut().unwrap().remove("ssn");
    let r = app
        .send(
            app.admin(
                Method::POST,
                &format!("/api/v0/customers/{id}/verification-kyc"),
            )
            .json(&body),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        json!({"Message": {"ssn": ["Missing data for required field."]}, "Status": 400, "Code": "kyc_post_schema", "Type": "Request Error"})
    );

    let r = app
        .send(
            app.admin(
                Method::POST,
                &format!("/api/v0/customers/{id}/verification-kyc"),
            )
            .json(&json!({
                "program_id": "p", "ssn": "123-456-789", "phone": "+1555",
                "phone_country_code": "0", "email": "jane@", "ip": "300.1.1.1"
            })),
        )
        .await;
    assert_eq!(r.status, 400);
    let m = r.json()["Message"].clone();
    for field in ["ssn", "phone", "phone_country_code", "email", "ip"] {
        assert!(m.get(field).is_some(), "{field} not reported: {m}");
    }
    // IPv6 is accepted.
    let mut v6 = kyc_body("123456789");
    v6["ip"] = json!("2001:db8::1");
    let r = app
        .send(
            app.admin(
                Method::POST,
                &format!("/api/v0/customers/{id}/verification-kyc"),
            )
            .json(&v6),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    // Unknown customer.
    let r = app
        .send(
            app.admin(Method::POST, "/api/v0/customers/cus_nope/verification-kyc")
                .json(&kyc_body("123456789")),
        )
        .await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn idempotency_keys_block_reuse_for_a_day_per_admin_key_and_race_safely() {
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_790_000_000_000)));
    let db = TestDb::new().await;
    let cfg = config(&db, FAST);
    let app = spawn_with_clock(db, cfg, clock.clone()).await;
    let post = |key: &str| {
        app.admin(Method::POST, "/api/v0/customers")
            .header("Idempotency-Key", key)
            .json(&customer_body("Jane"))
    };
    assert_eq!(app.send(post("key-1")).await.status, 201);
    let r = app.send(post("key-1")).await;
    assert_eq!(r.status, 409);
    assert_eq!(
        r.json(),
        json!({"type": "RESOURCE_CONFLICT", "code": "idempotency_key_exists", "message": "A request was made with this idempotency key in the past 24 hours"})
    );
    assert_eq!(
        app.admin_get("/api/v0/customers").await.json()["data"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "the refused request changed nothing"
    );
    // Another admin key has its own keys.
    let other = app
        .send(
            app.admin(Method::POST, "/api/v0/admin-keys")
                .json(&json!({"name": "onboarding"})),
        )
        .await
        .json()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .send(
            app.request(Method::POST, "/api/v0/customers")
                .bearer_auth(&other)
                .header("Idempotency-Key", "key-1")
                .json(&customer_body("Jane")),
        )
        .await;
    assert_eq!(r.status, 201, "scoped per admin key: {}", r.text());
    // Keys are stored hashed, never in clear.
    let stored: Vec<(String,)> = sqlx_rows(&app, "SELECT key_hash FROM idempotency_keys").await;
    assert!(stored.iter().all(|(h,)| h.len() == 64 && h != "key-1"));

    // After 24 hours the key is free again, and keys past their window are deleted (here the
    // other admin key's, which nobody sends again).
    clock.advance(Duration::from_secs(24 * 3600 + 1));
    assert_eq!(app.send(post("key-1")).await.status, 201);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: Vec<(i64,)> = sqlx_rows(&app, "SELECT created_at FROM idempotency_keys").await;
        if left.len() == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "expired keys kept: {left:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Two concurrent verification requests with one key: exactly one runs.
    let id = create_customer(&app, "Jane").await;
    let path = format!("/api/v0/customers/{id}/verification-kyc");
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let rb = app
            .admin(Method::POST, &path)
            .header("Idempotency-Key", "same")
            .json(&kyc_body("123-45-6789"));
        tasks.push(tokio::spawn(async move {
            rb.send().await.unwrap().status().as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses.sort_unstable();
    assert_eq!(statuses, vec![201, 409, 409, 409, 409, 409], "{statuses:?}");
    let v = verification(&app, &id).await;
    let started = v["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["to"] == "initialized")
        .count();
    assert_eq!(started, 1, "one verification started");
}

pub async fn sqlx_rows<T>(app: &TestApp, sql: &str) -> Vec<T>
where
    T: Send
        + Unpin
        + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
{
    if app.db.is_postgres() {
        let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
        sqlx::query_as(sql).fetch_all(&pool).await.unwrap()
    } else {
        let pool = sqlx::SqlitePool::connect(&app.db.url).await.unwrap();
        sqlx::query_as(sql).fetch_all(&pool).await.unwrap()
    }
}

fn right_answers(v: &Value) -> Vec<Value> {
    let facts = ["1990", "1 Main Street", "Boston", "02101", "April", "15"];
    v["kba_questions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| {
            let choice = q["choices"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| facts.contains(&c["choice"].as_str().unwrap()))
                .unwrap_or_else(|| panic!("no right answer among {q}"));
            json!({"question_id": q["question_id"], "choice_id": choice["choice_id"]})
        })
        .collect()
}

fn wrong_answers(v: &Value) -> Vec<Value> {
    let facts = ["1990", "1 Main Street", "Boston", "02101", "April", "15"];
    v["kba_questions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| {
            let choice = q["choices"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| !facts.contains(&c["choice"].as_str().unwrap()))
                .unwrap();
            json!({"question_id": q["question_id"], "choice_id": choice["choice_id"]})
        })
        .collect()
}

#[tokio::test]
async fn kba_passes_on_right_answers_and_fails_to_review_after_three_rounds() {
    let app = spawn_with(FAST).await;
    let kba = |id: &str, answers: Vec<Value>| {
        app.admin(
            Method::POST,
            &format!("/api/v0/customers/{id}/verification-kba"),
        )
        .json(&json!({ "kba_responses": answers }))
    };

    // Right answers pass.
    let id = create_customer(&app, "xyz").await;
    start_kyc(&app, &id, "123-45-6789").await;
    let v = wait_for(&app, &id, "kba triggered").await;
    assert_eq!(v["reasons"]["bureau"], "kba triggered");
    let questions = v["kba_questions"].as_array().unwrap();
    assert!((1..=4).contains(&questions.len()));
    assert!(
        !v.to_string().contains("\"answer\""),
        "the answer key is never shown"
    );
    // The questions were built from the details the check started with: they cannot change
    // now, or the answers would pass details nobody checked.
    let r = app
        .send(
            app.admin(Method::PATCH, &format!("/api/v0/customers/{id}"))
                .json(&json!({"first_name": "Someone", "dob": "1970-01-01"})),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(r.json()["code"], "kyc_in_progress");
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("kba triggered"),
        "{}",
        r.text()
    );
    let r = app.send(kba(&id, right_answers(&v))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["kyc_status"], "passed");
    let customer = app
        .admin_get(&format!("/api/v0/customers/{id}"))
        .await
        .json();
    assert_eq!(customer["first_name"], "xyz", "{customer}");

    // Three wrong rounds fail, queue a manual review, and a fourth attempt is refused.
    let id = create_customer(&app, "xyz").await;
    start_kyc(&app, &id, "123-45-6789").await;
    let mut v = wait_for(&app, &id, "kba triggered").await;
    let mut seen_ids = Vec::new();
    for round in 1..=3 {
        let ids: Vec<Value> = v["kba_questions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|q| q["question_id"].clone())
            .collect();
        assert!(
            ids.iter().all(|i| !seen_ids.contains(i)),
            "round {round} asks new questions"
        );
        seen_ids.extend(ids);
        let r = app.send(kba(&id, wrong_answers(&v))).await;
        assert_eq!(r.status, 200, "{}", r.text());
        v = r.json();
        if round < 3 {
            assert_eq!(v["kyc_status"], "kba triggered");
            assert_eq!(v["kba_round"], round + 1);
        }
    }
    assert_eq!(v["kyc_status"], "under_review");
    let tos: Vec<&str> = v["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["to"].as_str().unwrap())
        .collect();
    assert_eq!(
        tos,
        vec!["initialized", "kba triggered", "failed", "under_review"]
    );
    let r = app.send(kba(&id, right_answers_stub())).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["Message"], "Maximum number of attempts exceeded");

    // KBA answers for someone with no pending questions.
    let plain = create_customer(&app, "Jane").await;
    let r = app.send(kba(&plain, right_answers_stub())).await;
    assert_eq!(r.status, 409);
    assert_eq!(r.json()["code"], "kba_not_pending");
}

fn right_answers_stub() -> Vec<Value> {
    vec![json!({"question_id": "q_1", "choice_id": "c_1"})]
}

/// A 1×1 PNG.
pub const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\rIDATx\x9cc\xf8\x0f\0\0\x01\x01\0\x05\x18\xd8N\0\0\0\0IEND\xaeB`\x82";

#[tokio::test]
async fn documents_are_checked_by_content_stored_sealed_and_reviewed() {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let app = spawn_with(FAST).await;
    let id = create_customer(&app, "Jane").await;
    start_kyc(&app, &id, "333-33-3333").await;
    let v = wait_for(&app, &id, "document_required").await;
    assert_eq!(v["documents"], json!({"government_id": "required"}));

    let path = format!("/api/v0/customers/{id}/verification-kyc/documents");
    // A GIF named .png is refused: the content decides.
    let r = app
        .send(app.admin(Method::POST, &path).json(&json!({
            "government_id": {"type": "passport", "country": "US",
                "front_image": {"file_name": "passport.png", "image": b64(b"GIF89a\x01\x00\x01\x00")}}
        })))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["Code"], "document_post_schema");
    assert!(r.json()["Message"]["government_id.front_image.image"].is_array());

    let r = app
        .send(app.admin(Method::POST, &path).json(&json!({
            "government_id": {"type": "passport", "country": "US",
                "front_image": {"file_name": "passport.PNG", "image": b64(PNG)}}
        })))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"customer_id": id, "num_documents_submitted": 1})
    );
    let v = wait_for(&app, &id, "passed").await;
    assert_eq!(v["documents"], json!({"government_id": "submitted"}));
    let tos: Vec<&str> = v["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["to"].as_str().unwrap())
        .collect();
    assert_eq!(
        tos,
        vec!["initialized", "document_required", "under_review", "passed"]
    );

    // Sealed at rest: the stored bytes are not the image.
    let rows: Vec<(Vec<u8>, String)> =
        sqlx_rows(&app, "SELECT content, content_type FROM kyc_documents").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].1, "image/png");
    assert!(!rows[0].0.windows(8).any(|w| w == &PNG[..8]));

    // Documents nobody asked for are refused.
    let r = app
        .send(app.admin(Method::POST, &path).json(&json!({
            "proof_of_address": {"type": "utility_bill",
                "front_image": {"file_name": "bill.pdf", "image": b64(b"%PDF-1.7 bill")}}
        })))
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(r.json()["code"], "documents_not_requested");
}

#[tokio::test]
async fn reviews_decide_and_can_overturn_a_pass_with_who_and_why_audited() {
    let app = spawn_with(FAST).await;
    let review = |id: &str, decision: &str| {
        app.admin(
            Method::POST,
            &format!("/api/v0/customers/{id}/verification-kyc/review"),
        )
        .json(&json!({"decision": decision, "reason": "passport verified by phone"}))
    };
    let fresh = create_customer(&app, "Jane").await;
    let r = app.send(review(&fresh, "passed")).await;
    assert_eq!(r.status, 409, "no review before a verification ran");
    assert_eq!(r.json()["code"], "review_not_allowed");

    let id = create_customer(&app, "Jane").await;
    start_kyc(&app, &id, "000-00-0000").await;
    let v = wait_for(&app, &id, "under_review").await;
    assert_eq!(v["reasons"]["bureau"], "under_review");
    let r = app.send(review(&id, "passed")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["kyc_status"], "passed");
    let rows = app
        .audit("action=kyc.status.change&actor_type=admin_key")
        .await;
    assert_eq!(rows[0]["actor_id"], app.admin_key_id.as_str());
    assert_eq!(
        rows[0]["reason"],
        "review.passed: passport verified by phone"
    );

    // New evidence: a review overturns the pass, and access ends at once.
    let r = app.send(review(&id, "failed")).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        status_of(app.store.as_ref(), &id).await.unwrap(),
        Some(KycStatus::Failed)
    );
    // A failed customer cannot simply retry.
    let r = app
        .send(
            app.admin(
                Method::POST,
                &format!("/api/v0/customers/{id}/verification-kyc"),
            )
            .json(&kyc_body("123-45-6789")),
        )
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(r.json()["code"], "kyc_review_required");

    let r = app
        .send(
            app.admin(
                Method::POST,
                &format!("/api/v0/customers/{id}/verification-kyc/review"),
            )
            .json(&json!({"decision": "maybe"})),
        )
        .await;
    assert_eq!(r.status, 400);
    let m = r.json()["Message"].clone();
    assert!(m["decision"].is_array() && m["reason"].is_array(), "{m}");
}

#[tokio::test]
async fn sandbox_timeouts_are_retriable_and_ofac_hits_fail() {
    let app = spawn_with(FAST).await;
    let id = create_customer(&app, "Jane").await;
    start_kyc(&app, &id, "888-88-8888").await;
    wait_for(&app, &id, "timeout").await;
    assert_eq!(
        status_of(app.store.as_ref(), &id).await.unwrap(),
        Some(KycStatus::Timeout),
        "a timeout is never passed"
    );
    start_kyc(&app, &id, "123-45-6789").await;
    wait_for(&app, &id, "passed").await;

    let id = create_customer(&app, "Jane").await;
    start_kyc(&app, &id, "999-99-1111").await;
    let v = wait_for(&app, &id, "failed").await;
    assert_eq!(v["reasons"]["ofac"], "failed");
}

#[tokio::test]
async fn erasure_shreds_pii_at_once_and_aml_evidence_at_the_end_of_retention() {
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_790_000_000_000)));
    let db = TestDb::new().await;
    let mut env = FAST.to_vec();
    env.push(("OBGATE_KYC_AML_RETENTION", "30d"));
    let cfg = config(&db, &env);
    let app = spawn_with_clock(db, cfg, clock.clone()).await;
    let id = passed_customer(&app).await;

    let r = app
        .send(app.admin(Method::DELETE, &format!("/api/v0/customers/{id}")))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let until = clock.now_plus_days(30);
    assert_eq!(r.json()["aml_record_retained_until"], until);
    assert_eq!(
        app.admin_get(&format!("/api/v0/customers/{id}"))
            .await
            .status,
        404
    );
    assert_eq!(
        status_of(app.store.as_ref(), &id).await.unwrap(),
        None,
        "no access"
    );
    let row = app.store.get_customer(&id).await.unwrap().unwrap();
    assert!(row.data_key.is_none() && row.profile.is_none() && row.contact.is_none());
    assert!(app.store.get_aml_record(&id).await.unwrap().is_some());
    // The audit keeps ids only, so it survives.
    let rows = app.audit("action=customer.erase").await;
    assert_eq!(rows[0]["resource_id"], id.as_str());

    clock.advance(Duration::from_secs(31 * 86400));
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.store.get_aml_record(&id).await.unwrap().is_some() {
        assert!(
            Instant::now() < deadline,
            "AML record not destroyed after retention"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = app
        .send(app.admin(Method::DELETE, &format!("/api/v0/customers/{id}")))
        .await;
    assert_eq!(r.status, 404);
}

trait PlusDays {
    fn now_plus_days(&self, days: u64) -> String;
}

impl PlusDays for Arc<ManualClock> {
    fn now_plus_days(&self, days: u64) -> String {
        use obgate::clock::Clock;
        self.now()
            .plus(Duration::from_secs(days * 86400))
            .to_rfc3339()
    }
}
