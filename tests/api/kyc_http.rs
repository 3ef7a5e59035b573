//! The HTTP identity-provider adapter against a real HTTP server playing the provider.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, put};
use axum::{Json, Router};
use serde_json::{json, Value};

use obgate::kyc::{status_of, KycStatus};

use reqwest::Method;

use crate::helpers::spawn_with;
use crate::kyc::{create_customer, start_kyc, verification, wait_for};

/// (method, reference, authorization header, body) of one call to the fake provider.
type Call = (String, String, String, Value);

/// What the fake provider answers, call by call, and what it saw.
#[derive(Clone, Default)]
struct Script {
    /// Answers to PUT, in order; the last one repeats.
    puts: Arc<Mutex<Vec<(u16, Value)>>>,
    /// Answers to GET (poll).
    gets: Arc<Mutex<Vec<(u16, Value)>>>,
    /// Delay before answering each PUT, in order; the last one repeats (none: no delay).
    delays: Arc<Mutex<Vec<Duration>>>,
    /// (method, path, authorization, body) of every call.
    seen: Arc<Mutex<Vec<Call>>>,
}

fn next(list: &Mutex<Vec<(u16, Value)>>) -> (u16, Value) {
    let mut l = list.lock().unwrap();
    if l.len() > 1 {
        l.remove(0)
    } else {
        l[0].clone()
    }
}

async fn on_put(
    State(s): State<Script>,
    Path(reference): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> impl IntoResponse {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    s.seen
        .lock()
        .unwrap()
        .push(("PUT".into(), reference, auth, body));
    let delay = {
        let mut d = s.delays.lock().unwrap();
        match d.len() {
            0 => Duration::ZERO,
            1 => d[0],
            _ => d.remove(0),
        }
    };
    tokio::time::sleep(delay).await;
    let (status, v) = next(&s.puts);
    (StatusCode::from_u16(status).unwrap(), Json(v))
}

async fn on_get(State(s): State<Script>, Path(reference): Path<String>) -> impl IntoResponse {
    s.seen
        .lock()
        .unwrap()
        .push(("GET".into(), reference, String::new(), Value::Null));
    let (status, v) = next(&s.gets);
    (StatusCode::from_u16(status).unwrap(), Json(v))
}

/// The same two questions every round.
async fn on_kba_questions(State(s): State<Script>, Path(reference): Path<String>) -> Json<Value> {
    s.seen
        .lock()
        .unwrap()
        .push(("GET kba".into(), reference, String::new(), Value::Null));
    let choices = json!([{"id": "a", "text": "Yes"}, {"id": "b", "text": "No"}]);
    Json(json!({"questions": [
        {"id": "q1", "text": "Did you live on Elm Street?", "choices": choices},
        {"id": "q2", "text": "Do you drive a blue car?", "choices": choices},
    ]}))
}

/// Every answer is wrong.
async fn on_kba_answers(
    State(s): State<Script>,
    Path(reference): Path<String>,
    Json(body): Json<Value>,
) -> Json<Value> {
    s.seen
        .lock()
        .unwrap()
        .push(("POST kba".into(), reference, String::new(), body));
    Json(json!({"correct": false}))
}

async fn provider(script: Script) -> String {
    let app = Router::new()
        .route("/v1/verifications/{reference}", put(on_put).get(on_get))
        .route(
            "/v1/verifications/{reference}/kba",
            get(on_kba_questions).post(on_kba_answers),
        )
        .with_state(script);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

async fn app_with(url: &str, timeout: &str) -> crate::helpers::TestApp {
    app_with_env(url, timeout, &[]).await
}

async fn app_with_env(url: &str, timeout: &str, env: &[(&str, &str)]) -> crate::helpers::TestApp {
    let mut all = vec![
        ("OBGATE_KYC_PROVIDER", "http"),
        ("OBGATE_KYC_PROVIDER_URL", url),
        ("OBGATE_KYC_PROVIDER_API_KEY", "provider-secret"),
        ("OBGATE_KYC_PROVIDER_TIMEOUT", timeout),
        ("OBGATE_KYC_PROVIDER_RETRIES", "2"),
        ("OBGATE_WORKERS_POLL_INTERVAL", "50ms"),
    ];
    all.extend_from_slice(env);
    spawn_with(&all).await
}

fn pending() -> (u16, Value) {
    (200, json!({"status": "pending"}))
}

/// A provider that answers every check and every poll with `pending`.
fn always_pending() -> Script {
    Script {
        puts: Arc::new(Mutex::new(vec![pending()])),
        gets: Arc::new(Mutex::new(vec![pending()])),
        ..Script::default()
    }
}

async fn rename(app: &crate::helpers::TestApp, id: &str, first_name: &str) -> crate::helpers::Resp {
    app.send(
        app.admin(Method::PATCH, &format!("/api/v0/customers/{id}"))
            .json(&json!({ "first_name": first_name })),
    )
    .await
}

fn polls(script: &Script) -> usize {
    let seen = script.seen.lock().unwrap();
    seen.iter().filter(|s| s.0 == "GET").count()
}

#[tokio::test]
async fn a_check_pending_for_many_polls_reaches_its_outcome_on_the_details_it_started_with() {
    let mut gets = vec![pending(); 10];
    gets.push((200, json!({"status": "approved"})));
    let script = Script {
        puts: Arc::new(Mutex::new(vec![pending()])),
        gets: Arc::new(Mutex::new(gets)),
        ..Script::default()
    };
    let url = provider(script.clone()).await;
    let app = app_with_env(&url, "2s", &[("OBGATE_KYC_POLL_INTERVAL", "20ms")]).await;
    let id = create_customer(&app, "Jane").await;
    start_kyc(&app, &id, "123-45-6789").await;
    // While the provider checks them, the details cannot change.
    let r = rename(&app, &id, "Someone").await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(r.json()["code"], "kyc_in_progress");
    // Ten answers of `pending` are the provider at work, not failures of the job.
    wait_for(&app, &id, "passed").await;
    assert_eq!(polls(&script), 11);
    let customer = app
        .admin_get(&format!("/api/v0/customers/{id}"))
        .await
        .json();
    assert_eq!(customer["first_name"], "Jane");
}

#[tokio::test]
async fn a_check_pending_past_the_limit_ends_in_timeout_and_can_start_again() {
    let script = always_pending();
    let url = provider(script.clone()).await;
    let app = app_with_env(
        &url,
        "2s",
        &[
            ("OBGATE_KYC_POLL_INTERVAL", "100ms"),
            ("OBGATE_KYC_PENDING_LIMIT", "1s"),
        ],
    )
    .await;
    let id = create_customer(&app, "Jane").await;
    start_kyc(&app, &id, "123-45-6789").await;
    let v = wait_for(&app, &id, "timeout").await;
    assert!(polls(&script) >= 5, "polled until the limit");
    let history = v["history"].as_array().unwrap();
    assert_eq!(history.len(), 2, "{v}");
    // `timeout` is retriable: the details may be corrected and the check started again.
    let r = rename(&app, &id, "Janet").await;
    assert_eq!(r.status, 200, "{}", r.text());
    *script.puts.lock().unwrap() = vec![(200, json!({"status": "approved"}))];
    start_kyc(&app, &id, "123-45-6789").await;
    wait_for(&app, &id, "passed").await;
}

#[tokio::test]
async fn a_job_that_keeps_failing_to_run_ends_in_error_not_stuck_in_initialized() {
    let script = always_pending();
    let url = provider(script.clone()).await;
    let app = app_with_env(&url, "2s", &[("OBGATE_KYC_POLL_INTERVAL", "1s")]).await;
    let id = create_customer(&app, "Jane").await;
    start_kyc(&app, &id, "123-45-6789").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while script.seen.lock().unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the check never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The job as a crash loop leaves it: claimed again and again without an outcome.
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.db
        .exec("UPDATE kyc_jobs SET attempts = 6 WHERE state = 'pending'")
        .await;
    let v = wait_for(&app, &id, "error").await;
    let last = v["history"].as_array().unwrap().last().cloned().unwrap();
    assert_eq!(last["to"], "error", "{v}");
    // `error` is retriable.
    *script.puts.lock().unwrap() = vec![(200, json!({"status": "approved"}))];
    start_kyc(&app, &id, "123-45-6789").await;
    wait_for(&app, &id, "passed").await;
}

#[tokio::test]
async fn retries_5xx_then_polls_a_pending_check_to_its_outcome() {
    let script = Script {
        puts: Arc::new(Mutex::new(vec![
            (503, json!({})),
            (200, json!({"status": "pending"})),
        ])),
        gets: Arc::new(Mutex::new(vec![(
            200,
            json!({"status": "approved", "checks": {"ofac": "passed", "bureau": "passed"}}),
        )])),
        ..Script::default()
    };
    let url = provider(script.clone()).await;
    let app = app_with(&url, "2s").await;
    let id = create_customer(&app, "Jane").await;
    start_kyc(&app, &id, "123-45-6789").await;
    let v = wait_for(&app, &id, "passed").await;
    assert_eq!(v["reasons"]["ofac"], "passed");

    let seen = script.seen.lock().unwrap().clone();
    let puts: Vec<_> = seen.iter().filter(|s| s.0 == "PUT").collect();
    assert_eq!(puts.len(), 2, "one retry after the 503");
    assert_eq!(
        puts[0].1, puts[1].1,
        "the retry reuses the reference (idempotent)"
    );
    assert_eq!(puts[0].2, "Bearer provider-secret");
    let applicant = &puts[0].3["applicant"];
    assert_eq!(applicant["national_id"], "123456789");
    assert_eq!(applicant["phone"], "+15555550123");
    assert_eq!(applicant["address"]["postal_code"], "02101");
    assert!(
        seen.iter().any(|s| s.0 == "GET" && s.1 == puts[0].1),
        "polled"
    );
}

#[tokio::test]
async fn a_provider_that_keeps_failing_ends_in_error_never_passed() {
    let script = Script {
        puts: Arc::new(Mutex::new(vec![(500, json!({}))])),
        gets: Arc::new(Mutex::new(vec![(500, json!({}))])),
        ..Script::default()
    };
    let url = provider(script.clone()).await;
    let app = app_with(&url, "2s").await;
    let id = create_customer(&app, "Jane").await;
    start_kyc(&app, &id, "123-45-6789").await;
    wait_for(&app, &id, "error").await;
    assert_eq!(
        script.seen.lock().unwrap().len(),
        3,
        "first try + 2 retries"
    );
    assert_eq!(
        status_of(app.store.as_ref(), &id).await.unwrap(),
        Some(KycStatus::Error)
    );
    // A status the adapter does not know is an error too, not a pass.
    *script.puts.lock().unwrap() = vec![(200, json!({"status": "probably_fine"}))];
    start_kyc(&app, &id, "123-45-6789").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let v = verification(&app, &id).await;
        let history = v["history"].as_array().unwrap().len();
        if history >= 4 {
            assert_eq!(v["kyc_status"], "error");
            break;
        }
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_slow_provider_ends_in_timeout() {
    let script = Script {
        puts: Arc::new(Mutex::new(vec![(200, json!({"status": "approved"}))])),
        gets: Arc::new(Mutex::new(vec![(200, json!({"status": "approved"}))])),
        delays: Arc::new(Mutex::new(vec![Duration::from_secs(3)])),
        ..Script::default()
    };
    let url = provider(script.clone()).await;
    let app = app_with(&url, "300ms").await;
    let id = create_customer(&app, "Jane").await;
    start_kyc(&app, &id, "123-45-6789").await;
    wait_for(&app, &id, "timeout").await;
}

#[tokio::test]
async fn a_check_cut_off_by_a_crash_resumes_after_restart_and_applies_once() {
    use std::time::Instant;
    let script = Script {
        puts: Arc::new(Mutex::new(vec![(200, json!({"status": "approved"}))])),
        gets: Arc::new(Mutex::new(vec![(200, json!({"status": "approved"}))])),
        // The first call hangs past the crash; the retry after the restart answers at once.
        delays: Arc::new(Mutex::new(vec![Duration::from_secs(60), Duration::ZERO])),
        ..Script::default()
    };
    let url = provider(script.clone()).await;
    let db = crate::helpers::TestDb::new().await;
    let port = crate::helpers::free_port();
    let env = [
        ("OBGATE_KYC_PROVIDER", "http"),
        ("OBGATE_KYC_PROVIDER_URL", url.as_str()),
        ("OBGATE_KYC_PROVIDER_TIMEOUT", "3s"),
        ("OBGATE_KYC_PROVIDER_RETRIES", "0"),
        ("OBGATE_WORKERS_POLL_INTERVAL", "100ms"),
    ];
    let key = crate::helpers::admin_key(&db, "crash");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let child = crate::helpers::serve_process(&db, port, &env).await;
    let id = crate::helpers::customer_with_kyc(&http, &base, &key, "123-45-6789").await;
    // Kill the process while the provider is still working on the check.
    let deadline = Instant::now() + Duration::from_secs(10);
    while script.seen.lock().unwrap().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the check never reached the provider"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(child); // SIGKILL

    let child = crate::helpers::serve_process(&db, port, &env).await;
    let deadline = Instant::now() + Duration::from_secs(40);
    let v = loop {
        let v: Value = http
            .get(format!("{base}/api/v0/customers/{id}/verification-kyc"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["kyc_status"] == "passed" {
            break v;
        }
        assert!(Instant::now() < deadline, "the check did not resume: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    drop(child);
    let seen = script.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "submitted once before the crash, once after");
    assert_eq!(
        seen[0].1, seen[1].1,
        "under the same reference, so the provider de-duplicates"
    );
    let passes = v["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["to"] == "passed")
        .count();
    assert_eq!(passes, 1, "the outcome is applied once");
}

#[tokio::test]
async fn a_replayed_kba_answer_is_refused_before_the_provider_is_asked() {
    let script = Script {
        puts: Arc::new(Mutex::new(vec![(200, json!({"status": "kba_required"}))])),
        gets: Arc::new(Mutex::new(vec![pending()])),
        ..Script::default()
    };
    let url = provider(script.clone()).await;
    let app = app_with(&url, "2s").await;
    let id = create_customer(&app, "Jane").await;
    start_kyc(&app, &id, "123-45-6789").await;
    wait_for(&app, &id, "kba triggered").await;
    let answer = || {
        app.admin(
            Method::POST,
            &format!("/api/v0/customers/{id}/verification-kba"),
        )
        .header("Idempotency-Key", "kba-answer-1")
        .json(&json!({"kba_responses": [
            {"question_id": "q1", "choice_id": "a"},
            {"question_id": "q2", "choice_id": "b"},
        ]}))
    };
    let provider_calls = |script: &Script| {
        let seen = script.seen.lock().unwrap();
        seen.iter().filter(|c| c.0.ends_with("kba")).count()
    };
    // A wrong answer: the provider checks it and sets round 2's questions.
    let r = app.send(answer()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["kba_round"], 2);
    let asked = provider_calls(&script);
    // The same request again (a client retrying after a lost response): refused without a
    // provider round, and the customer is still in round 2.
    let r = app.send(answer()).await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(r.json()["code"], "idempotency_key_exists");
    assert_eq!(
        provider_calls(&script),
        asked,
        "the provider was asked again"
    );
    assert_eq!(verification(&app, &id).await["kba_round"], 2);
}
