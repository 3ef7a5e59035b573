//! No PII in clear: a full KYC run through the real binary, then its logs and the raw
//! database are searched for the SSN, email, phone and date of birth.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::TestDb;

const SECRETS: [&str; 7] = [
    "123456789",
    "123-45-6789",
    "jane.doe@example.com",
    "5555550123",
    "1990-04-15",
    "333-33-3333",
    "333333333",
];

#[tokio::test]
async fn logs_and_raw_database_rows_hold_no_ssn_email_phone_or_birth_date() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("obgate.log");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let key = String::from_utf8(
        Command::new(env!("CARGO_BIN_EXE_obgate"))
            .env_clear()
            .env("OBGATE_DATABASE_URL", &db.url)
            .args(["admin-key", "create", "--name", "pii-scan"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_owned();
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_obgate"))
        .env_clear()
        .env("OBGATE_DATABASE_URL", &db.url)
        .env("OBGATE_LISTEN", format!("127.0.0.1:{port}"))
        .env("OBGATE_LOG_LEVEL", "debug")
        .env("OBGATE_LOG_FORMAT", "json")
        .env("OBGATE_WORKERS_POLL_INTERVAL", "50ms")
        .arg("serve")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while http.get(format!("{base}/readyz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "obgate did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let call = |method: reqwest::Method, path: String, body: Option<Value>| {
        let mut rb = http
            .request(method, format!("{base}{path}"))
            .bearer_auth(&key);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        async move {
            let r = rb.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let wait = |id: String, want: &'static str| {
        let call = &call;
        async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let (_, v) = call(
                    reqwest::Method::GET,
                    format!("/api/v0/customers/{id}/verification-kyc"),
                    None,
                )
                .await;
                if v["kyc_status"] == want {
                    return v;
                }
                assert!(Instant::now() < deadline, "stuck at {v}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };

    // KBA path, with a wrong round and a right one.
    let (s, c) = call(
        reqwest::Method::POST,
        "/api/v0/customers".into(),
        Some(crate::kyc::customer_body("xyz")),
    )
    .await;
    assert_eq!(s, 201);
    let id = c["customer_id"].as_str().unwrap().to_owned();
    let (s, _) = call(
        reqwest::Method::POST,
        format!("/api/v0/customers/{id}/verification-kyc"),
        Some(crate::kyc::kyc_body("123-45-6789")),
    )
    .await;
    assert_eq!(s, 201);
    let v = wait(id.clone(), "kba triggered").await;
    let facts = ["1990", "1 Main Street", "Boston", "02101", "April", "15"];
    let answers: Vec<Value> = v["kba_questions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| {
            let c = q["choices"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| facts.contains(&c["choice"].as_str().unwrap()))
                .unwrap();
            json!({"question_id": q["question_id"], "choice_id": c["choice_id"]})
        })
        .collect();
    let (s, v) = call(
        reqwest::Method::POST,
        format!("/api/v0/customers/{id}/verification-kba"),
        Some(json!({"kba_responses": answers})),
    )
    .await;
    assert_eq!((s, v["kyc_status"].as_str()), (200, Some("passed")));

    // Documents path, and a bad request that echoes nothing back.
    let (_, c) = call(
        reqwest::Method::POST,
        "/api/v0/customers".into(),
        Some(crate::kyc::customer_body("Jane")),
    )
    .await;
    let id2 = c["customer_id"].as_str().unwrap().to_owned();
    let mut bad = crate::kyc::kyc_body("333-33-3333");
    bad["email"] = json!("jane.doe@example.com@");
    let (s, v) = call(
        reqwest::Method::POST,
        format!("/api/v0/customers/{id2}/verification-kyc"),
        Some(bad),
    )
    .await;
    assert_eq!(s, 400);
    assert!(
        !v.to_string().contains("jane.doe"),
        "errors do not echo PII: {v}"
    );
    let (s, _) = call(
        reqwest::Method::POST,
        format!("/api/v0/customers/{id2}/verification-kyc"),
        Some(crate::kyc::kyc_body("333-33-3333")),
    )
    .await;
    assert_eq!(s, 201);
    wait(id2.clone(), "document_required").await;
    use base64::Engine;
    let png = base64::engine::general_purpose::STANDARD.encode(crate::kyc::PNG);
    let (s, _) = call(
        reqwest::Method::POST,
        format!("/api/v0/customers/{id2}/verification-kyc/documents"),
        Some(json!({"government_id": {"type": "passport", "country": "US", "front_image": {"file_name": "p.png", "image": png}}})),
    )
    .await;
    assert_eq!(s, 200);
    wait(id2.clone(), "passed").await;
    let (s, _) = call(
        reqwest::Method::GET,
        format!("/api/v0/customers/{id}"),
        None,
    )
    .await;
    assert_eq!(s, 200);

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();

    let logs = std::fs::read_to_string(&log_path).unwrap();
    assert!(logs.contains("served"), "the log captured the run");
    for s in SECRETS {
        assert!(!logs.contains(s), "{s} appears in the log");
    }

    let dump = raw_database(&db).await;
    assert!(dump.len() > 1000, "the dump holds the database");
    for s in SECRETS {
        let hex = hex::encode(s);
        assert!(
            !dump.contains(s) && !dump.contains(&hex),
            "{s} appears in the database"
        );
    }
}

/// Everything the database holds, as text: the SQLite file and its WAL byte for byte, or
/// every PostgreSQL row as text (bytea as hex).
async fn raw_database(db: &TestDb) -> String {
    if db.is_postgres() {
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        let tables: Vec<(String,)> = sqlx::query_as(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema()",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        let mut out = String::new();
        for (t,) in tables {
            let rows: Option<String> =
                sqlx::query_scalar(&format!("SELECT string_agg(x::text, '\n') FROM \"{t}\" x"))
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            out.push_str(&rows.unwrap_or_default());
        }
        out
    } else {
        let path = db
            .url
            .trim_start_matches("sqlite://")
            .split('?')
            .next()
            .unwrap()
            .to_owned();
        let mut bytes = std::fs::read(&path).unwrap();
        if let Ok(wal) = std::fs::read(format!("{path}-wal")) {
            bytes.extend(wal);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }
}
