//! Webhooks: registration, Standard Webhooks signatures checked by the official Python
//! library, retries, Retry-After, 410, and delivery across a crash.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use reqwest::Method;
use serde_json::{json, Value};

use obgate::clock::{Clock, ManualClock, Timestamp};

use crate::helpers::{
    admin_key, config, customer_with_kyc, free_port, serve_process, spawn, spawn_with_clock,
    TestApp, TestDb,
};
use crate::kyc::{create_customer, start_kyc, wait_for, FAST};

/// One received delivery.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: String,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
    pub fn header(&self, n: &str) -> String {
        self.headers[n].to_str().unwrap().to_owned()
    }
}

/// A status and an optional extra header.
pub type Answer = (u16, Option<(&'static str, &'static str)>);

/// A receiver answering from a script (status, extra header); the last answer repeats.
#[derive(Clone, Default)]
pub struct Receiver {
    pub got: Arc<Mutex<Vec<Received>>>,
    pub answers: Arc<Mutex<Vec<Answer>>>,
}

impl Receiver {
    pub async fn start(
        answers: Vec<(u16, Option<(&'static str, &'static str)>)>,
    ) -> (Self, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let r = Self::default();
        *r.answers.lock().unwrap() = answers;
        Self::serve(r.clone(), listener);
        (r, format!("http://{addr}/hooks"))
    }

    pub fn serve(r: Self, listener: tokio::net::TcpListener) {
        let app = Router::new().route(
            "/hooks",
            post(move |headers: HeaderMap, body: String| {
                let r = r.clone();
                async move {
                    r.got.lock().unwrap().push(Received { headers, body });
                    let (status, extra) = {
                        let mut a = r.answers.lock().unwrap();
                        if a.len() > 1 {
                            a.remove(0)
                        } else {
                            a[0]
                        }
                    };
                    let mut res = StatusCode::from_u16(status).unwrap().into_response();
                    if let Some((k, v)) = extra {
                        res.headers_mut().insert(k, v.parse().unwrap());
                    }
                    res
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
    }

    pub fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "only {} deliveries arrived: {got:?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

pub async fn register(app: &TestApp, url: &str, events: &[&str]) -> (String, String) {
    let r = app
        .send(
            app.admin(Method::POST, "/api/v0/webhooks")
                .json(&json!({"url": url, "events": events})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    (
        v["webhook_id"].as_str().unwrap().to_owned(),
        v["secret"].as_str().unwrap().to_owned(),
    )
}

/// Python with the `standardwebhooks` package: `OBGATE_TEST_PYTHON`, else `./.venv` (created
/// and provisioned from `.ci/requirements.txt` when missing).
fn python() -> String {
    if let Ok(p) = std::env::var("OBGATE_TEST_PYTHON") {
        return p;
    }
    static READY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    READY
        .get_or_init(|| {
            let root = env!("CARGO_MANIFEST_DIR");
            let py = format!("{root}/.venv/bin/python");
            let has = |py: &str| {
                Command::new(py)
                    .args(["-c", "import standardwebhooks"])
                    .status()
                    .is_ok_and(|s| s.success())
            };
            if !has(&py) {
                let ok = Command::new("python3")
                    .args(["-m", "venv", &format!("{root}/.venv")])
                    .status()
                    .is_ok_and(|s| s.success())
                    && Command::new(format!("{root}/.venv/bin/pip"))
                        .args([
                            "install",
                            "-q",
                            "-r",
                            &format!("{root}/.ci/requirements.txt"),
                        ])
                        .status()
                        .is_ok_and(|s| s.success());
                assert!(
                    ok && has(&py),
                    "cannot provision Python with standardwebhooks in .venv"
                );
            }
            py
        })
        .clone()
}

/// Verifies a delivery with the official Standard Webhooks Python library.
pub fn python_verifies(secret: &str, r: &Received) -> bool {
    let headers: serde_json::Map<String, Value> =
        ["webhook-id", "webhook-timestamp", "webhook-signature"]
            .iter()
            .map(|h| ((*h).to_owned(), json!(r.header(h))))
            .collect();
    let input = json!({"secret": secret, "headers": headers, "body": r.body}).to_string();
    let mut child = Command::new(python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/support/verify_webhook.py"
        ))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    }
    out.status.success()
}

#[tokio::test]
async fn endpoints_are_registered_listed_and_deleted_with_the_secret_shown_once() {
    let app = spawn().await;
    let r = app
        .send(app.admin(Method::POST, "/api/v0/webhooks").json(&json!({
            "url": "ftp://example.com/x", "events": ["kyc.verification.bogus"], "extra": true
        })))
        .await;
    assert_eq!(r.status, 400);
    let m = r.json()["Message"].clone();
    assert!(
        m["url"].is_array() && m["events[0]"].is_array() && m["extra"].is_array(),
        "{m}"
    );

    let (id, secret) = register(
        &app,
        "http://127.0.0.1:9/hooks",
        &["kyc.verification.success"],
    )
    .await;
    assert!(secret.starts_with("whsec_"));
    let r = app.admin_get("/api/v0/webhooks").await;
    assert_eq!(r.json()["data"][0]["webhook_id"], id.as_str());
    assert!(
        !r.text().contains(&secret),
        "the secret is shown only at creation"
    );
    let r = app.admin_get(&format!("/api/v0/webhooks/{id}")).await;
    assert_eq!(r.json()["status"], "active");
    assert_eq!(r.json()["events"], json!(["kyc.verification.success"]));
    let stored: Vec<(Vec<u8>,)> =
        crate::kyc::sqlx_rows(&app, "SELECT secret FROM webhook_endpoints").await;
    assert!(
        !String::from_utf8_lossy(&stored[0].0).contains(&secret[6..]),
        "sealed at rest"
    );

    let r = app
        .send(app.admin(Method::DELETE, &format!("/api/v0/webhooks/{id}")))
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        app.admin_get(&format!("/api/v0/webhooks/{id}"))
            .await
            .status,
        404
    );
    assert_eq!(app.audit("action=webhook.delete").await.len(), 1);
}

#[tokio::test]
async fn kyc_events_arrive_signed_verifiable_by_the_official_library_and_without_pii() {
    let app = crate::helpers::spawn_with(FAST).await;
    let (receiver, url) = Receiver::start(vec![(204, None)]).await;
    let (_, secret) = register(
        &app,
        &url,
        &["kyc.verification.initialized", "kyc.verification.success"],
    )
    .await;
    let id = create_customer(&app, "Jane").await;
    start_kyc(&app, &id, "123-45-6789").await;
    wait_for(&app, &id, "passed").await;
    let got = receiver.wait_for(2).await;
    let types: Vec<String> = got
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        types,
        vec!["kyc.verification.initialized", "kyc.verification.success"]
    );
    for r in &got {
        assert!(r.header("webhook-id").starts_with("msg_"));
        assert!(r.header("webhook-signature").starts_with("v1,"));
        assert!(
            python_verifies(&secret, r),
            "official library rejected {r:?}"
        );
        let data = &r.json()["data"];
        assert_eq!(data["customer_id"], id.as_str());
        for pii in ["123456789", "6789", "jane", "Jane", "5555550123", "Boston"] {
            assert!(!r.body.contains(pii), "{pii} in a webhook body: {}", r.body);
        }
    }
    // A tampered body does not verify.
    let mut forged = got[1].clone();
    forged.body = forged.body.replace("success", "failure");
    assert!(!python_verifies(&secret, &forged));
    assert!(
        !python_verifies("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", &got[1]),
        "other secret"
    );
    // Not subscribed: no other event types arrive.
    assert_eq!(receiver.received().len(), 2);
}

#[tokio::test]
async fn failed_deliveries_retry_on_schedule_honour_retry_after_and_stop_on_410() {
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_790_000_000_000)));
    let db = TestDb::new().await;
    let mut env = FAST.to_vec();
    env.push(("OBGATE_WEBHOOKS_RETRY_SCHEDULE", "1m 10m"));
    let cfg = config(&db, &env);
    let app = spawn_with_clock(db, cfg, clock.clone()).await;
    let (receiver, url) = Receiver::start(vec![
        (500, None),
        (503, Some(("retry-after", "1800"))),
        (200, None),
    ])
    .await;
    let (hook, _) = register(&app, &url, &["kyc.verification.initialized"]).await;
    let id = create_customer(&app, "Jane").await;
    start_kyc(&app, &id, "123-45-6789").await;

    receiver.wait_for(1).await;
    let d = wait_delivery(&app, &hook, |d| d["attempts"] == 1).await;
    assert_eq!(d["state"], "pending");
    assert_eq!(d["last_status"], 500);
    // Not before the schedule's first step.
    clock.advance(Duration::from_secs(30));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.received().len(), 1);
    clock.advance(Duration::from_secs(31));
    receiver.wait_for(2).await;
    // The 503 asked for 30 minutes, longer than the schedule's 10: obgate waits 30.
    let d = wait_delivery(&app, &hook, |d| d["attempts"] == 2).await;
    assert_eq!(d["last_status"], 503);
    clock.advance(Duration::from_secs(11 * 60));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.received().len(), 2, "Retry-After honoured");
    clock.advance(Duration::from_secs(20 * 60));
    let got = receiver.wait_for(3).await;
    let d = wait_delivery(&app, &hook, |d| d["state"] == "delivered").await;
    assert_eq!(d["attempts"], 3);
    let ids: Vec<String> = got.iter().map(|r| r.header("webhook-id")).collect();
    assert!(
        ids.iter().all(|i| i == &ids[0]),
        "retries keep the webhook-id"
    );

    // 410 Gone disables the endpoint and abandons what is pending.
    let (gone, url) = Receiver::start(vec![(410, None)]).await;
    let (hook2, _) = register(
        &app,
        &url,
        &["kyc.verification.initialized", "kyc.verification.success"],
    )
    .await;
    let id = create_customer(&app, "Jane").await;
    start_kyc(&app, &id, "123-45-6789").await;
    gone.wait_for(1).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = app
            .admin_get(&format!("/api/v0/webhooks/{hook2}"))
            .await
            .json();
        if v["status"] == "disabled" {
            break;
        }
        assert!(Instant::now() < deadline, "not disabled: {v}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // Deliveries already in flight may still land; nothing is retried or sent afterwards.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = gone.received().len();
    clock.advance(Duration::from_secs(3600));
    let id = create_customer(&app, "Jane").await;
    start_kyc(&app, &id, "123-45-6789").await;
    wait_for(&app, &id, "passed").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        gone.received().len(),
        before,
        "nothing more goes to a 410 endpoint"
    );
    let list = app
        .admin_get(&format!("/api/v0/webhooks/{hook2}/deliveries"))
        .await
        .json();
    assert!(
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["state"] == "abandoned"),
        "{list}"
    );
    // The endpoint was disabled, and audited, once. An attempt still in flight that comes back
    // 410 afterwards (or races the first) records itself without a second audit row.
    let disabled = format!("action=webhook.disable&resource_id={hook2}");
    assert_eq!(app.audit(&disabled).await.len(), 1);
    let late = obgate::store::events::AttemptRecord {
        id: "wa_late".into(),
        event_id: list["data"][0]["event_id"].as_str().unwrap().to_owned(),
        endpoint_id: hook2.clone(),
        attempted_at: clock.now(),
        status_code: Some(410),
        error: None,
        duration_ms: 1,
        next: obgate::store::events::DeliveryNext::EndpointGone,
        lease_until: clock.now(),
    };
    let audit = obgate::audit::AuditEvent::new(
        clock.now(),
        obgate::audit::ActorType::System,
        "webhooks",
        "webhook.disable",
    )
    .on("webhook", &hook2);
    app.store.record_attempt(&late, Some(&audit)).await.unwrap();
    assert_eq!(app.audit(&disabled).await.len(), 1, "audited once");
}

async fn wait_delivery(app: &TestApp, hook: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let d = app
            .admin_get(&format!("/api/v0/webhooks/{hook}/deliveries"))
            .await
            .json()["data"][0]
            .clone();
        if pred(&d) {
            return d;
        }
        assert!(Instant::now() < deadline, "delivery never matched: {d}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A receiver that accepts connections and never answers holds each delivery to it for the
/// whole `webhooks.timeout`: it gets a couple of the node's delivery slots, not all of them,
/// and the other endpoints' events keep arriving meanwhile.
#[tokio::test]
async fn a_receiver_that_never_answers_does_not_hold_up_the_others() {
    let mut env = FAST.to_vec();
    env.push(("OBGATE_WEBHOOKS_TIMEOUT", "60s"));
    let app = crate::helpers::spawn_with(&env).await;
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}/hooks", silent.local_addr().unwrap());
    let held = Arc::new(Mutex::new(Vec::new()));
    let holder = held.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = silent.accept().await {
            holder.lock().unwrap().push(socket);
        }
    });
    let (healthy, url) = Receiver::start(vec![(200, None)]).await;
    register(&app, &silent_url, &["kyc.verification.initialized"]).await;
    register(&app, &url, &["kyc.verification.initialized"]).await;
    for _ in 0..12 {
        let id = create_customer(&app, "Jane").await;
        start_kyc(&app, &id, "123-45-6789").await;
    }
    healthy.wait_for(12).await;
    assert!(
        held.lock().unwrap().len() <= obgate::events::dispatcher::PER_ENDPOINT,
        "the silent receiver holds no more than its share"
    );
}

/// A receiver that holds each request until the test answers it, in arrival order.
struct Held {
    got: Arc<Mutex<Vec<String>>>,
    answers: Arc<Mutex<Vec<tokio::sync::oneshot::Sender<u16>>>>,
}

impl Held {
    async fn start() -> (Self, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        let held = Self {
            got: Arc::default(),
            answers: Arc::default(),
        };
        let (got, answers) = (held.got.clone(), held.answers.clone());
        let app = Router::new().route(
            "/hooks",
            post(move |headers: HeaderMap| {
                let (got, answers) = (got.clone(), answers.clone());
                async move {
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    answers.lock().unwrap().push(tx);
                    got.lock()
                        .unwrap()
                        .push(headers["webhook-id"].to_str().unwrap().to_owned());
                    StatusCode::from_u16(rx.await.unwrap_or(500)).unwrap()
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        (held, url)
    }

    async fn wait_for(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.got.lock().unwrap().len() < n {
            assert!(Instant::now() < deadline, "request {n} never arrived");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Answers the `i`th request (0-based) with `status`.
    fn answer(&self, i: usize, status: u16) {
        let tx = std::mem::replace(
            &mut self.answers.lock().unwrap()[i],
            tokio::sync::oneshot::channel().0,
        );
        tx.send(status).unwrap();
    }
}

/// One delivery, two attempts at it in flight: the first held past its lease (the DNS check's
/// 5 s, the 30 s timeout and 5 s more: 40 s on the app's clock), the second after the claim
/// that followed. Neither answered yet.
async fn two_attempts_in_flight() -> (TestApp, Arc<ManualClock>, Held, String) {
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_790_000_000_000)));
    let db = TestDb::new().await;
    let mut env = FAST.to_vec();
    env.push(("OBGATE_WEBHOOKS_RETRY_SCHEDULE", "1m 10m"));
    env.push(("OBGATE_WEBHOOKS_TIMEOUT", "30s"));
    let cfg = config(&db, &env);
    let app = spawn_with_clock(db, cfg, clock.clone()).await;
    let (held, url) = Held::start().await;
    let (hook, _) = register(&app, &url, &["kyc.verification.initialized"]).await;
    let id = create_customer(&app, "Jane").await;
    start_kyc(&app, &id, "123-45-6789").await;
    held.wait_for(1).await;
    clock.advance(Duration::from_secs(41));
    held.wait_for(2).await;
    (app, clock, held, hook)
}

/// An attempt that outlives its lease (a receiver slower than `webhooks.timeout` and every
/// margin, on a clock that jumped) lets the delivery be claimed again. When the first attempt
/// finally ends it is counted, but it must not release the second attempt's lease: that let a
/// third copy go out at the first attempt's retry time while the second was still in flight.
#[tokio::test]
async fn an_attempt_that_outlived_its_lease_does_not_release_the_next_ones() {
    let (app, clock, held, hook) = two_attempts_in_flight().await;
    // The first attempt ends (500, a retry in a minute from when it started). It is counted;
    // the delivery stays with the second attempt.
    held.answer(0, 500);
    let attempts = || async {
        crate::kyc::sqlx_rows::<(String,)>(&app, "SELECT id FROM webhook_attempts").await
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while attempts().await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the first attempt was never recorded"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // Past the first attempt's retry time, inside the second's lease: nothing is sent.
    clock.advance(Duration::from_secs(30));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        held.got.lock().unwrap().len(),
        2,
        "a third copy went out while the second attempt was in flight"
    );
    held.answer(1, 200);
    let d = wait_delivery(&app, &hook, |d| d["state"] == "delivered").await;
    assert_eq!(d["attempts"], 2, "both attempts counted: {d}");
    let got = held.got.lock().unwrap().clone();
    assert_eq!(got[0], got[1], "one webhook-id for the one event");
}

/// The other order: the attempt that outlived its lease is the one that delivers, and the
/// newer one fails. The receiver has the event, so the delivery is delivered and nothing is
/// retried (counting the late success only left it to the newer attempt's failures).
#[tokio::test]
async fn a_late_success_delivers_even_when_the_newer_attempt_fails() {
    let (app, clock, held, hook) = two_attempts_in_flight().await;
    held.answer(0, 200);
    wait_delivery(&app, &hook, |d| d["state"] == "delivered").await;
    held.answer(1, 500);
    let d = wait_delivery(&app, &hook, |d| d["attempts"] == 2).await;
    assert_eq!(d["state"], "delivered", "{d}");
    clock.advance(Duration::from_secs(11 * 60));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        held.got.lock().unwrap().len(),
        2,
        "a delivered event was sent again"
    );
}

#[tokio::test]
async fn pending_deliveries_survive_a_killed_process_and_keep_their_ids() {
    let db = TestDb::new().await;
    let (obgate_port, receiver_port) = (free_port(), free_port());
    let env = [
        (
            "OBGATE_WEBHOOKS_RETRY_SCHEDULE",
            "200ms 200ms 200ms 200ms 200ms 200ms 200ms 200ms 200ms 200ms 200ms 200ms",
        ),
        // A delivery in flight at the kill is leased for this + 10 s (the DNS check and a
        // margin), then retried.
        ("OBGATE_WEBHOOKS_TIMEOUT", "1s"),
    ];
    let key = admin_key(&db, "crash-test");
    let child = serve_process(&db, obgate_port, &env).await;
    let base = format!("http://127.0.0.1:{obgate_port}");
    let http = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        http.post(format!("{base}{path}"))
            .bearer_auth(&key)
            .json(&body)
            .send()
    };
    // The receiver is down: every delivery fails and stays pending.
    let r = post(
        "/api/v0/webhooks",
        json!({"url": format!("http://127.0.0.1:{receiver_port}/hooks"), "events": ["kyc.verification.initialized", "kyc.verification.success"]}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    for _ in 0..3 {
        customer_with_kyc(&http, &base, &key, "123456789").await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(child); // SIGKILL: no graceful anything.

    let events: Vec<(String,)> = {
        let app_db = &db;
        if app_db.is_postgres() {
            let pool = sqlx::PgPool::connect(&app_db.url).await.unwrap();
            sqlx::query_as("SELECT id FROM events ORDER BY id")
                .fetch_all(&pool)
                .await
                .unwrap()
        } else {
            let pool = sqlx::SqlitePool::connect(&app_db.url).await.unwrap();
            sqlx::query_as("SELECT id FROM events ORDER BY id")
                .fetch_all(&pool)
                .await
                .unwrap()
        }
    };
    assert_eq!(events.len(), 6, "initialized + success for 3 customers");

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", receiver_port))
        .await
        .unwrap();
    let receiver = Receiver::default();
    *receiver.answers.lock().unwrap() = vec![(200, None)];
    Receiver::serve(receiver.clone(), listener);
    let child = serve_process(&db, obgate_port, &env).await;
    let got = receiver.wait_for(6).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(child);

    let mut ids: Vec<String> = receiver
        .received()
        .iter()
        .map(|r| r.header("webhook-id"))
        .collect();
    ids.sort();
    ids.dedup();
    let want: Vec<String> = events.into_iter().map(|(id,)| id).collect();
    assert_eq!(ids, want, "every event delivered, each under its own id");
    assert!(got.len() >= 6);
}

/// Deliveries go straight to the destination whatever proxy the environment names: through a
/// proxy the destination checks would see the proxy's address, not the destination's. Here the
/// named proxy is a closed port, so a delivery sent through it would never arrive.
#[tokio::test]
async fn deliveries_ignore_proxies_named_by_the_environment() {
    let db = TestDb::new().await;
    let (obgate_port, dead) = (free_port(), free_port());
    let proxy = format!("http://127.0.0.1:{dead}");
    let key = admin_key(&db, "proxy-test");
    let proxies =
        ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "ALL_PROXY"].map(|v| (v, proxy.as_str()));
    let _child = serve_process(&db, obgate_port, &proxies).await;
    let base = format!("http://127.0.0.1:{obgate_port}");
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let (receiver, url) = Receiver::start(vec![(200, None)]).await;
    let post = |path: &str, body: Value| {
        http.post(format!("{base}{path}"))
            .bearer_auth(&key)
            .json(&body)
            .send()
    };
    let r = post(
        "/api/v0/webhooks",
        json!({"url": url, "events": ["kyc.verification.initialized"]}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    customer_with_kyc(&http, &base, &key, "123456789").await;
    let got = receiver.wait_for(1).await;
    assert_eq!(got[0].json()["type"], "kyc.verification.initialized");
}
