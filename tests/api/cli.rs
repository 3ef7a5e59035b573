//! The `obgate` binary: exit codes, what goes to stdout, and a zero-config start.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{spawn, spawn_with, Running, TestDb};

fn obgate(db: &TestDb) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_obgate"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("USER", "tester")
        .env("OBGATE_DATABASE_URL", &db.url)
        .env("OBGATE_LOG_FORMAT", "json")
        // Not the default in the working directory (the checkout), which others would read.
        .env(
            "OBGATE_GATEWAY_DECISION_SPILL_FILE",
            std::env::temp_dir().join(format!(
                "obgate-cli-{}.spill",
                uuid::Uuid::new_v4().simple()
            )),
        );
    c
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn admin_key_create_prints_only_the_key_and_it_works() {
    let app = spawn().await;
    let (code, stdout, stderr) = run(obgate(&app.db).args(["admin-key", "create", "--name", "ci"]));
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "stdout must hold the key alone: {stdout:?}");
    let key = lines[0];
    assert!(key.starts_with("obg_") && key.len() == 47, "{key}");
    assert!(!stderr.contains(key), "the key is printed once, on stdout");

    // The running server accepts it at once (same database).
    let r = app
        .send(
            app.request(reqwest::Method::GET, "/api/v0/audit")
                .bearer_auth(key),
        )
        .await;
    assert_eq!(r.status, 200);
    let row = &app.audit("action=admin_key.create&actor_type=cli").await[0];
    assert_eq!(row["actor_id"], "tester");

    let (code, stdout, _) = run(obgate(&app.db).args(["admin-key", "list"]));
    assert_eq!(code, 0);
    assert!(
        stdout.contains("ci") && stdout.contains("active") && !stdout.contains(key),
        "{stdout}"
    );
    let (code, stdout, _) = run(obgate(&app.db).args(["admin-key", "list", "--json"]));
    assert_eq!(code, 0);
    let keys: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let id = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "ci")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let (code, stdout, stderr) = run(obgate(&app.db).args(["admin-key", "revoke", &id]));
    assert_eq!(
        (code, stdout.trim()),
        (0, format!("revoked {id} (ci)").as_str()),
        "{stderr}"
    );
    let r = app
        .send(
            app.request(reqwest::Method::GET, "/api/v0/audit")
                .bearer_auth(key),
        )
        .await;
    assert_eq!(r.status, 401);
    let (code, _, stderr) = run(obgate(&app.db).args(["admin-key", "revoke", "ak_nope"]));
    assert_eq!(code, 1);
    assert!(stderr.contains("no admin key with id ak_nope"), "{stderr}");
    let (code, _, stderr) =
        run(obgate(&app.db).args(["admin-key", "create", "--name", "bad;name"]));
    assert_eq!(code, 2, "{stderr}");
}

#[tokio::test]
async fn bad_configuration_exits_2_naming_every_key() {
    let db = TestDb::new().await;
    let (code, stdout, stderr) = run(obgate(&db)
        .env("OBGATE_DATABASE_URL", "mysql://x")
        .arg("migrate"));
    assert_eq!(code, 2);
    assert!(stdout.is_empty());
    assert!(
        stderr.contains(
            "OBGATE_DATABASE_URL: unsupported scheme \"mysql\", expected sqlite: or postgres:"
        ),
        "{stderr}"
    );

    let (code, _, stderr) = run(Command::new(env!("CARGO_BIN_EXE_obgate"))
        .env_clear()
        .env("OBGATE_MODE", "production")
        .arg("serve"));
    assert_eq!(code, 2);
    for key in [
        "OBGATE_PUBLIC_URL",
        "OBGATE_DATABASE_URL",
        "OBGATE_PII_KEY",
        "OBGATE_OAUTH_KEY_ENCRYPTION_KEY",
        "OBGATE_KYC_PROVIDER",
        "OBGATE_UPSTREAM_URL",
    ] {
        assert!(
            stderr.contains(&format!("{key}: required in production mode")),
            "{stderr}"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("obgate.toml");
    std::fs::write(&file, "[http]\nbody_limit = \"huge\"\n").unwrap();
    let (code, _, stderr) = run(obgate(&db).arg("--config").arg(&file).arg("config"));
    assert_eq!(code, 2);
    assert!(
        stderr.contains(&format!(
            "http.body_limit in {}: \"huge\" is not a size",
            file.display()
        )),
        "{stderr}"
    );

    let (code, _, _) = run(obgate(&db).arg("no-such-command"));
    assert_eq!(code, 2);
    let (code, stdout, _) = run(obgate(&db).arg("--help"));
    assert_eq!(code, 0);
    for cmd in ["serve", "migrate", "config", "admin-key", "audit"] {
        assert!(stdout.contains(cmd), "{stdout}");
    }
}

#[tokio::test]
async fn config_prints_the_effective_values_with_secrets_masked() {
    let db = TestDb::new().await;
    let pii = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    let (code, stdout, stderr) = run(obgate(&db)
        .env(
            "OBGATE_DATABASE_URL",
            "postgres://app:hunter2@db.internal:5432/obgate",
        )
        .env("OBGATE_PII_KEY", pii)
        .env("OBGATE_LISTEN", "0.0.0.0:9000")
        .arg("config"));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        !stdout.contains("hunter2") && !stdout.contains(pii),
        "{stdout}"
    );
    assert!(
        stdout.contains("postgres://app:***@db.internal:5432/obgate"),
        "{stdout}"
    );
    assert!(stdout.contains("listen = \"0.0.0.0:9000\""), "{stdout}");
    assert!(stdout.contains("# from environment"), "{stdout}");
    assert!(
        stdout.contains("public_url = \"http://localhost:9000\""),
        "{stdout}"
    );
    // What it prints is valid TOML.
    stdout.parse::<toml::Table>().unwrap();

    // PostgreSQL also takes the password as a query parameter: masked there too.
    let (code, stdout, stderr) = run(obgate(&db)
        .env(
            "OBGATE_DATABASE_URL",
            "postgres://app@db.internal:5432/obgate?sslmode=require&password=hunter3",
        )
        .arg("config"));
    assert_eq!(code, 0, "{stderr}");
    assert!(!stdout.contains("hunter3"), "{stdout}");
    assert!(
        stdout.contains("postgres://app@db.internal:5432/obgate?sslmode=require&password=***"),
        "{stdout}"
    );
}

#[tokio::test]
async fn migrate_then_audit_verify_and_tamper_detection_from_the_cli() {
    let db = TestDb::new().await;
    // Commands that only read never migrate (a newer binary beside older nodes must not
    // change their schema): on a database not yet migrated they refuse, and change nothing.
    for read_only in [
        &["audit", "verify"][..],
        &["keys", "list"],
        &["admin-key", "list"],
    ] {
        let (code, _, stderr) = run(obgate(&db).args(read_only));
        assert_eq!(code, 1, "{read_only:?}: {stderr}");
        assert!(
            stderr.contains("pending migrations; run `obgate migrate` first"),
            "{read_only:?}: {stderr}"
        );
    }
    let (code, stdout, stderr) = run(obgate(&db).arg("migrate"));
    assert_eq!(code, 0, "{stderr}");
    let counts = stdout.trim().strip_prefix("migrations applied: ").unwrap();
    let (applied, expected) = counts.split_once(" of ").unwrap();
    assert_eq!(applied, expected, "{stdout}");
    run(obgate(&db).args(["admin-key", "create", "--name", "a"]));
    run(obgate(&db).args(["admin-key", "create", "--name", "b"]));
    let (code, stdout, _) = run(obgate(&db).args(["audit", "verify"]));
    assert_eq!(code, 0);
    assert!(
        stdout.starts_with("audit chain intact: 2 rows sealing 0 gateway decisions, head hash "),
        "{stdout}"
    );

    if db.is_postgres() {
        db.exec("ALTER TABLE audit DISABLE TRIGGER USER; UPDATE audit SET actor_id = 'someone-else' WHERE seq = 1").await;
    } else {
        db.exec("DROP TRIGGER audit_no_update; UPDATE audit SET actor_id = 'someone-else' WHERE seq = 1").await;
    }
    let (code, _, stderr) = run(obgate(&db).args(["audit", "verify"]));
    assert_eq!(code, 1);
    assert!(stderr.contains("row seq 1 was altered"), "{stderr}");
}

/// `obgate serve` started by `command` (its environment set) on a free port, killed however
/// the test ends, and the lines it writes to stderr as they come (read on a thread of their
/// own, so a test can wait for one with a deadline).
fn serve(command: &mut Command) -> (Running, u16, std::sync::mpsc::Receiver<String>) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Running(
        command
            .env("OBGATE_LISTEN", format!("127.0.0.1:{port}"))
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = child.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, port, rx)
}

/// A first start that fails halfway through making the sandbox demo (here: customers cannot
/// be written) must not leave a demo that later starts skip: the next start makes it whole and
/// prints the key and walkthrough.
#[tokio::test]
async fn a_first_start_that_fails_while_seeding_the_demo_seeds_it_at_the_next() {
    let db = TestDb::new().await;
    let (code, _, stderr) = run(obgate(&db).arg("migrate"));
    assert_eq!(code, 0, "{stderr}");
    db.refuse_inserts("customers").await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (code, _, stderr) = run(obgate(&db)
        .env("OBGATE_LISTEN", format!("127.0.0.1:{port}"))
        .arg("serve"));
    assert_eq!(code, 1, "the failed seeding stops the start: {stderr}");
    db.allow_inserts("customers").await;
    let (_child, _port, rx) = serve(&mut obgate(&db));
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut key, mut customers, mut listening) = (false, false, false);
    while !(key && customers && listening) {
        assert!(
            Instant::now() < deadline,
            "second start: key printed {key}, customers printed {customers}, listening {listening}"
        );
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            key |= line.trim().starts_with("obg_");
            customers |= line.trim().starts_with("customers:");
            listening |= line.contains("obgate listening");
        }
    }
}

#[tokio::test]
async fn zero_config_serve_prints_a_demo_key_and_stops_cleanly_on_sigterm() {
    // Run in an empty directory with no configuration at all, except a free port.
    let dir = tempfile::tempdir().unwrap();
    let (mut child, port, rx) = serve(
        Command::new(env!("CARGO_BIN_EXE_obgate"))
            .env_clear()
            .current_dir(dir.path()),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut key = None;
    let mut listening = false;
    let mut client = None;
    let mut alice = None;
    while !(listening && key.is_some() && client.is_some()) && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            if let Some(k) = line.trim().strip_prefix("obg_") {
                key = Some(format!("obg_{k}"));
            }
            if let Some(rest) = line.trim().strip_prefix("TPP client:") {
                let mut parts = rest.split(" / ");
                client = Some((
                    parts.next().unwrap().trim().to_owned(),
                    parts.next().unwrap().trim().to_owned(),
                ));
            }
            if let Some(rest) = line.trim().strip_prefix("customers:") {
                alice = rest.split_whitespace().next().map(str::to_owned);
            }
            listening |= line.contains("obgate listening");
        }
    }
    let key = key.expect("demo key printed at first start");
    let client_creds = client;
    assert!(listening);
    assert!(
        dir.path().join("obgate.db").exists(),
        "SQLite file created in the working directory"
    );

    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let r = client
        .get(format!("{base}/readyz"))
        .header("x-fapi-interaction-id", "zero-config-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client
        .get(format!("{base}/api/v0/admin-keys"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // The printed walkthrough works: the demo TPP reads the demo customer's accounts.
    let (tpp_id, tpp_secret) = client_creds.expect("demo client printed");
    let alice = alice.expect("demo customers printed");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v: serde_json::Value = client
            .get(format!("{base}/api/v0/customers/{alice}/verification-kyc"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["kyc_status"] == "passed" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the demo customer's KYC did not pass: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let token = |extra: Option<String>| {
        let mut form = vec![
            ("grant_type", "client_credentials".to_owned()),
            ("scope", "accounts".to_owned()),
        ];
        if let Some(d) = extra {
            form.push(("authorization_details", d));
        }
        client
            .post(format!("{base}/oauth2/token"))
            .basic_auth(&tpp_id, Some(&tpp_secret))
            .form(&form)
            .send()
    };
    let t: serde_json::Value = token(None).await.unwrap().json().await.unwrap();
    let c: serde_json::Value = client
        .post(format!("{base}/open-banking/v3.1/aisp/account-access-consents"))
        .bearer_auth(t["access_token"].as_str().unwrap())
        .json(&serde_json::json!({"Data": {"Permissions": ["ReadAccountsDetail", "ReadBalances"]}, "Risk": {}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let consent = c["Data"]["ConsentId"].as_str().unwrap().to_owned();
    let accounts: serde_json::Value = client
        .get(format!("{base}/api/v0/customers/{alice}/accounts"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<serde_json::Value> = accounts["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["account_id"].clone())
        .collect();
    assert!(ids.len() >= 2);
    let r = client
        .post(format!("{base}/api/v0/consents/{consent}/authorise"))
        .bearer_auth(&key)
        .json(&serde_json::json!({"customer_id": alice, "account_ids": ids}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let details =
        serde_json::json!([{"type": "openbanking_account_access", "consent_id": consent}])
            .to_string();
    let bound: serde_json::Value = token(Some(details)).await.unwrap().json().await.unwrap();
    let r = client
        .get(format!("{base}/open-banking/v3.1/aisp/accounts"))
        .bearer_auth(bound["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["Data"]["Account"].as_array().unwrap().len(), ids.len());

    Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));

    // Logs are JSON lines off a terminal, one "served" event per request carrying the span's
    // interaction id, method, matched route, status and latency; the key appears only in the
    // one-time banner, never in a log line.
    let lines: Vec<String> = rx.iter().collect();
    let served = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["span"]["interaction_id"] == "zero-config-1")
        .unwrap_or_else(|| panic!("no request log line in {lines:#?}"));
    assert_eq!(served["fields"]["message"], "served");
    assert_eq!(served["span"]["route"], "/readyz");
    assert_eq!(served["span"]["method"], "GET");
    assert_eq!(served["span"]["status"], 200);
    assert!(served["span"]["latency_ms"].is_number(), "{served}");
    assert!(lines
        .iter()
        .filter(|l| l.starts_with('{'))
        .all(|l| !l.contains(&key)));
    assert!(
        lines.iter().any(|l| l.contains("\"stopped\"")),
        "{lines:#?}"
    );
}

#[tokio::test]
async fn client_commands_register_rotate_and_disable() {
    // The node keeps client registrations in memory; a change made by another process
    // reaches it through NOTIFY on PostgreSQL and when the entry expires on SQLite.
    let app = spawn_with(&[("OBGATE_GATEWAY_CACHE_TTL", "1s")]).await;
    let (code, stdout, stderr) = run(obgate(&app.db).args([
        "client",
        "create",
        "--name",
        "Acme CLI",
        "--auth-method",
        "client_secret_post",
    ]));
    assert_eq!(code, 0, "{stderr}");
    let c: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let id = c["client_id"].as_str().unwrap().to_owned();
    let secret = c["client_secret"].as_str().unwrap().to_owned();
    let token = |secret: String| {
        let app = &app;
        let id = id.clone();
        async move {
            app.send(app.request(reqwest::Method::POST, "/oauth2/token").form(&[
                ("grant_type", "client_credentials"),
                ("client_id", id.as_str()),
                ("client_secret", secret.as_str()),
            ]))
            .await
            .status
        }
    };
    assert_eq!(token(secret.clone()).await, 200);

    let (code, stdout, _) = run(obgate(&app.db).args(["client", "rotate-secret", &id]));
    assert_eq!(code, 0);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines.len() == 1 && lines[0].starts_with("cs_"), "{stdout}");
    assert_eq!(token(lines[0].to_owned()).await, 200);
    assert_eq!(
        token(secret.clone()).await,
        200,
        "old secret inside the grace period"
    );

    let (code, stdout, _) = run(obgate(&app.db).args(["client", "show", &id]));
    assert_eq!(code, 0);
    assert!(
        stdout.contains("Acme CLI") && !stdout.contains("cs_"),
        "{stdout}"
    );
    let (_, stdout, _) = run(obgate(&app.db).args(["client", "list"]));
    assert!(stdout.contains(&id));

    let (code, _, _) = run(obgate(&app.db).args(["client", "disable", &id]));
    assert_eq!(code, 0);
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let status = token(lines[0].to_owned()).await;
        if status == 401 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            Instant::now() < deadline,
            "a client disabled from the CLI is refused within the cache TTL"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, stdout, _) = run(obgate(&app.db).args(["client", "list"]));
    assert!(!stdout.contains(&id));
    let (code, _, stderr) = run(obgate(&app.db).args(["client", "show", &id]));
    assert_eq!(code, 1);
    assert!(stderr.contains("was disabled at"), "{stderr}");

    let (code, _, stderr) = run(obgate(&app.db).args([
        "client",
        "create",
        "--name",
        "x",
        "--redirect-uri",
        "ftp://x",
    ]));
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(
        app.audit("action=oauth_client.create&actor_type=cli")
            .await
            .len(),
        1
    );
}

/// `runtime.pin_workers`: the start-up log names each worker's CPU, the node serves, and each
/// worker thread of the running process is allowed exactly one CPU (read from `/proc`, as an
/// operator would check it); a value that is not a boolean stops the start with exit 2.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn serve_with_pinned_workers_pins_each_worker_to_one_cpu() {
    let db = TestDb::new().await;
    let (code, _, stderr) = run(obgate(&db)
        .env("OBGATE_RUNTIME_PIN_WORKERS", "maybe")
        .arg("serve"));
    assert_eq!(code, 2);
    assert!(
        stderr.contains("OBGATE_RUNTIME_PIN_WORKERS: \"maybe\" is not a boolean"),
        "{stderr}"
    );

    let (child, port, rx) = serve(
        obgate(&db)
            .env("OBGATE_RUNTIME_PIN_WORKERS", "true")
            .env("TOKIO_WORKER_THREADS", "2"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut pinned_line, mut listening) = (None, false);
    while !listening && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            if line.contains("async workers pinned to CPUs") {
                pinned_line = Some(line.clone());
            }
            listening |= line.contains("obgate listening");
        }
    }
    assert!(listening, "obgate did not start");
    let pinned_line = pinned_line.expect("the pinning is logged before listening");
    assert!(pinned_line.contains("of 2 async workers"), "{pinned_line}");
    let r = reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Each runtime thread's allowed CPUs as the kernel reports them (tokio names its workers
    // and its blocking threads alike; threads that libraries start are left out).
    let allowed = |pid: u32| -> Vec<String> {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("status")).ok())
            .filter(|s| s.lines().any(|l| l == "Name:\ttokio-rt-worker"))
            .filter_map(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                    .map(|v| v.trim().to_owned())
            })
            .collect()
    };
    let process_cpus = std::fs::read_to_string(format!("/proc/{}/status", child.0.id()))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap()
        .trim()
        .to_owned();
    // A worker is pinned when it first goes idle, which an idle node's workers soon are.
    let single = |lists: &[String]| -> Vec<String> {
        let mut one: Vec<String> = lists
            .iter()
            .filter(|l| l.parse::<usize>().is_ok())
            .cloned()
            .collect();
        one.sort();
        one
    };
    // A blocking thread a pinned worker starts has the worker's CPU until its start hook sets
    // it back (microseconds later): read until the threads are settled, or the deadline.
    let settled = |lists: &[String]| {
        let one = single(lists);
        if process_cpus.parse::<usize>().is_ok() {
            return lists.iter().all(|l| *l == process_cpus);
        }
        one.len() == 2
            && one[0] != one[1]
            && lists
                .iter()
                .all(|l| l.parse::<usize>().is_ok() || *l == process_cpus)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut lists = allowed(child.0.id());
    while !settled(&lists) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        lists = allowed(child.0.id());
    }
    if process_cpus.parse::<usize>().is_err() {
        // Two or more CPUs: the two workers on one CPU each, different ones; every other
        // runtime thread on the whole set.
        let one = single(&lists);
        assert_eq!(
            one.len(),
            2,
            "exactly the two workers are pinned: {lists:?}"
        );
        assert_ne!(one[0], one[1], "each on its own CPU: {lists:?}");
        assert!(
            lists
                .iter()
                .all(|l| l.parse::<usize>().is_ok() || *l == process_cpus),
            "{lists:?}"
        );
    } else {
        // One CPU: every thread runs on it alone, pinned or not.
        assert!(lists.iter().all(|l| *l == process_cpus), "{lists:?}");
    }
}
