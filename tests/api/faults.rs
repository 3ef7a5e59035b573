//! Fault injection: the database stops under load, the bank's API refuses, hangs and resets,
//! the disk under SQLite fills up. Each test checks that obgate answers clearly while the fault
//! lasts, loses and half-writes nothing, and recovers by itself when the fault ends.
//!
//! They take seconds each and need root (to mount a small file system, to start a private
//! PostgreSQL cluster with Debian's `pg_createcluster`), so they are `#[ignore]`d in the
//! default run; `.ci/run` runs them: `cargo test --test api faults:: -- --include-ignored`.
//! (Killing obgate with SIGKILL while webhooks and KYC checks are pending is tested where those
//! features are: `webhooks::pending_deliveries_survive_a_killed_process_and_keep_their_ids`
//! and `kyc_http::a_check_cut_off_by_a_crash_resumes_after_restart_and_applies_once`.)

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::gateway::{access, fake_bank, FakeBank, AISP};
use crate::helpers::{config, free_port, spawn_on, spawn_with, TestApp, TestDb};
use crate::kyc::{customer_body, FAST};

/// `program` as root: directly when the tests run as root (CI), else through `sudo -n`.
fn root_cmd(program: &str) -> Command {
    let uid = Command::new("id").arg("-u").output().unwrap().stdout;
    if String::from_utf8_lossy(&uid).trim() == "0" {
        Command::new(program)
    } else {
        let mut c = Command::new("sudo");
        c.args(["-n", program]);
        c
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// --- the bank's API fails ------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Serve,
    Hang,
    ResetMidBody,
}

/// A TCP front for the fake bank that can misbehave, counting the connections it holds open
/// while hanging.
#[derive(Clone)]
struct Front {
    mode: Arc<Mutex<Mode>>,
    hanging: Arc<AtomicUsize>,
}

impl Front {
    /// Cuts every connection of the current front and serves the next ones in `mode`.
    async fn switch(
        &self,
        running: tokio::task::JoinHandle<()>,
        mode: Mode,
        bank_addr: &str,
        port: u16,
    ) -> tokio::task::JoinHandle<()> {
        running.abort();
        let _ = running.await;
        *self.mode.lock().unwrap() = mode;
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        Front::start(listener, bank_addr.to_owned(), self.clone())
    }

    /// Serves until the returned task is aborted, which also cuts every open connection.
    fn start(
        listener: TcpListener,
        bank_addr: String,
        front: Front,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                let front = front.clone();
                let bank_addr = bank_addr.clone();
                connections.spawn(async move {
                    let mode = *front.mode.lock().unwrap();
                    match mode {
                        Mode::Serve => {
                            let mut bank = TcpStream::connect(&bank_addr).await.unwrap();
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut bank).await;
                        }
                        Mode::Hang => {
                            front.hanging.fetch_add(1, Ordering::SeqCst);
                            // Read whatever comes until obgate gives up and closes.
                            let mut buf = [0u8; 4096];
                            while matches!(client.read(&mut buf).await, Ok(n) if n > 0) {}
                            front.hanging.fetch_sub(1, Ordering::SeqCst);
                        }
                        Mode::ResetMidBody => {
                            let mut buf = [0u8; 4096];
                            let _ = client.read(&mut buf).await;
                            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 5000\r\n\r\n{\"Data\": {\"Account\": [";
                            let _ = client.write_all(head.as_bytes()).await;
                            let _ = client.flush().await;
                            // Abort: RST instead of FIN. A zero linger never blocks on drop,
                            // which is what the deprecation warns about.
                            #[allow(deprecated)]
                            let _ = client.set_linger(Some(Duration::ZERO));
                            drop(client);
                        }
                    }
                });
            }
        })
    }
}

async fn accounts_status(app: &TestApp, token: &str) -> u16 {
    app.send(
        app.request(Method::GET, &format!("{AISP}/accounts"))
            .bearer_auth(token),
    )
    .await
    .status
}

#[tokio::test]
#[ignore = "fault injection; .ci/run runs it"]
async fn the_bank_refusing_hanging_or_resetting_is_502_or_504_and_the_next_request_succeeds() {
    let bank = FakeBank::default();
    let (bank_url, _server) = fake_bank(bank, "x").await;
    let bank_addr = bank_url
        .trim_start_matches("http://")
        .trim_end_matches("/core")
        .to_owned();
    let front_port = free_port();
    let front = Front {
        mode: Arc::new(Mutex::new(Mode::Serve)),
        hanging: Arc::default(),
    };
    let upstream = format!("http://127.0.0.1:{front_port}/core");
    let mut env = FAST.to_vec();
    env.extend([
        ("OBGATE_UPSTREAM_URL", upstream.as_str()),
        ("OBGATE_UPSTREAM_TIMEOUT", "500ms"),
        ("OBGATE_UPSTREAM_CONNECT_TIMEOUT", "500ms"),
    ]);
    let listener = TcpListener::bind(("127.0.0.1", front_port)).await.unwrap();
    let accepting = Front::start(listener, bank_addr.clone(), front.clone());
    let app = spawn_with(&env).await;
    let a = access(
        &app,
        json!({"Permissions": ["ReadAccountsBasic"]}),
        Some(|all| all[..1].to_vec()),
    )
    .await;
    assert_eq!(accounts_status(&app, &a.token).await, 200, "serving");

    // The bank goes away: connection refused.
    accepting.abort();
    let _ = accepting.await;
    assert_eq!(accounts_status(&app, &a.token).await, 502, "refused");
    let listener = TcpListener::bind(("127.0.0.1", front_port)).await.unwrap();
    let mut accepting = Front::start(listener, bank_addr.clone(), front.clone());
    assert_eq!(accounts_status(&app, &a.token).await, 200, "back");

    // Hanging: every request is 504 after the upstream timeout, and obgate lets go of each
    // hung connection rather than keeping it (no leak).
    accepting = front
        .switch(accepting, Mode::Hang, &bank_addr, front_port)
        .await;
    let hung =
        futures_util::future::join_all((0..20).map(|_| accounts_status(&app, &a.token))).await;
    assert!(hung.iter().all(|s| *s == 504), "{hung:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while front.hanging.load(Ordering::SeqCst) > 0 {
        assert!(
            Instant::now() < deadline,
            "{} hung upstream connections still held",
            front.hanging.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A reset in the middle of the body.
    accepting = front
        .switch(accepting, Mode::ResetMidBody, &bank_addr, front_port)
        .await;
    for _ in 0..5 {
        assert_eq!(accounts_status(&app, &a.token).await, 502, "reset mid-body");
    }

    // Recovery: the very next request succeeds.
    let _serving = front
        .switch(accepting, Mode::Serve, &bank_addr, front_port)
        .await;
    assert_eq!(accounts_status(&app, &a.token).await, 200, "after recovery");
    let metrics = app.get("/metrics").await.text();
    assert!(
        metrics.contains("obgate_http_requests_total"),
        "metrics still served"
    );
}

// --- the disk under SQLite fills up --------------------------------------------------------

struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("obgate-full-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        run(root_cmd("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir));
        Self(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = root_cmd("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Writes zeros to `path` until the file system is full.
fn fill(path: &std::path::Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 16 * 1024];
    while f.write_all(&chunk).is_ok() {}
    let one = [0u8; 1];
    while f.write_all(&one).is_ok() {}
    let _ = f.sync_all();
}

#[tokio::test]
#[ignore = "fault injection (mounts a tmpfs: root); .ci/run runs it"]
async fn a_full_disk_fails_sqlite_writes_cleanly_while_reads_go_on() {
    let fs = Tmpfs::mount("16m");
    let url = format!("sqlite://{}", fs.0.join("obgate.db").display());
    let db = TestDb::external(url.clone());
    let cfg = config(&db, &[]);
    let app = spawn_on(db, cfg).await;
    let create = |key: String| {
        let rb = app
            .admin(Method::POST, "/api/v0/customers")
            .header("Idempotency-Key", key)
            .json(&customer_body("Jane"));
        app.send(rb)
    };
    let r = create("before".into()).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let before = r.json()["customer_id"].as_str().unwrap().to_owned();

    fill(&fs.0.join("filler"));
    let mut refused = vec![];
    for n in 0..5 {
        let key = format!("full-{n}");
        let r = create(key.clone()).await;
        assert_eq!(r.status, 503, "a write on a full disk: {}", r.text());
        assert!(r.header("retry-after").is_some());
        assert!(
            !r.text().contains("disk"),
            "no storage detail leaks: {}",
            r.text()
        );
        refused.push(key);
    }
    // Reads keep working, and so does the process.
    assert_eq!(
        app.admin_get(&format!("/api/v0/customers/{before}"))
            .await
            .status,
        200
    );
    assert_eq!(app.get("/healthz").await.status, 200);

    // Space comes back: the same requests (same idempotency keys) now succeed, once each.
    std::fs::remove_file(fs.0.join("filler")).unwrap();
    let mut created = vec![];
    for key in &refused {
        let r = create(key.clone()).await;
        assert_eq!(r.status, 201, "{}", r.text());
        created.push(r.json()["customer_id"].as_str().unwrap().to_owned());
    }
    created.sort();
    created.dedup();
    assert_eq!(created.len(), refused.len());
    // Nothing half-written: the audit chain is whole.
    let out = Command::new(env!("CARGO_BIN_EXE_obgate"))
        .env_clear()
        .env("OBGATE_DATABASE_URL", &url)
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// --- PostgreSQL stops under load ------------------------------------------------------------

/// A private PostgreSQL cluster (Debian's `pg_createcluster`), so stopping it disturbs no one.
struct Cluster {
    version: String,
    name: String,
    port: u16,
}

impl Cluster {
    fn create() -> Self {
        let version = std::fs::read_dir("/usr/lib/postgresql")
            .expect(
                "PostgreSQL server binaries (Debian's postgresql package) in /usr/lib/postgresql",
            )
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .max_by_key(|v| v.parse::<u32>().unwrap_or(0))
            .unwrap();
        let name = format!("obgate_faults_{}", std::process::id());
        let port = free_port();
        run(root_cmd("pg_createcluster")
            .args([&version, &name, "-p", &port.to_string(), "--start"])
            .args(["--", "--auth=trust"]));
        Self {
            version,
            name,
            port,
        }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn ctl(&self, action: &str) {
        run(root_cmd("pg_ctlcluster")
            .args([
                "--skip-systemctl-redirect",
                &self.version,
                &self.name,
                action,
            ])
            .args(if action == "stop" {
                &["-m", "fast"][..]
            } else {
                &[][..]
            }));
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = root_cmd("pg_dropcluster")
            .args(["--stop", &self.version, &self.name])
            .status();
    }
}

/// One customer creation under load: its idempotency key, status and `Retry-After`.
type Answer = (String, u16, Option<String>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fault injection (starts and stops its own PostgreSQL: root); .ci/run runs it"]
async fn postgresql_stopping_under_load_is_503_then_recovers_without_a_restart() {
    let pg = Cluster::create();
    let db = TestDb::external(pg.url());
    let mut env = FAST.to_vec();
    env.extend([
        ("OBGATE_DATABASE_MAX_CONNECTIONS", "4"),
        // The load is one client as fast as it can go; limits are tested in limits.rs.
        ("OBGATE_RATE_LIMIT_TOKEN", "off"),
        ("OBGATE_RATE_LIMIT_GATEWAY", "off"),
    ]);
    let cfg = config(&db, &env);
    let app = Arc::new(spawn_on(db, cfg).await);
    let a = access(&app, json!({"Permissions": ["ReadAccountsBasic"]}), None).await;

    // Load: customers created with idempotency keys, tokens issued, account data read.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let results: Arc<Mutex<Vec<Answer>>> = Arc::default();
    let created: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    // The token and gateway answers the outage turned into 503s, each with its Retry-After.
    let others: Arc<Mutex<Vec<(&'static str, bool)>>> = Arc::default();
    let mut load = vec![];
    for worker in 0..4 {
        let (app, stop, results, created, others) = (
            app.clone(),
            stop.clone(),
            results.clone(),
            created.clone(),
            others.clone(),
        );
        let (client, secret, token) = (a.client_id.clone(), a.secret.clone(), a.token.clone());
        load.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let key = format!("w{worker}-{n}");
                let r = app
                    .client
                    .post(app.url("/api/v0/customers"))
                    .bearer_auth(&app.admin_key)
                    .header("Idempotency-Key", &key)
                    .json(&customer_body("Jane"))
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                let retry = r
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_owned());
                if status == 201 {
                    let body: serde_json::Value = r.json().await.unwrap();
                    let id = body["customer_id"].as_str().unwrap().to_owned();
                    created.lock().unwrap().push((key.clone(), id));
                }
                results.lock().unwrap().push((key, status, retry));
                let r = app
                    .client
                    .post(app.url("/oauth2/token"))
                    .basic_auth(&client, Some(&secret))
                    .form(&[("grant_type", "client_credentials"), ("scope", "accounts")])
                    .send()
                    .await
                    .unwrap();
                assert!(
                    matches!(r.status().as_u16(), 200 | 503),
                    "token: {}",
                    r.status()
                );
                if r.status() == 503 {
                    let retry = r.headers().contains_key("retry-after");
                    others.lock().unwrap().push(("token", retry));
                }
                let r = app
                    .client
                    .get(app.url(&format!("{AISP}/accounts")))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap();
                assert!(
                    matches!(r.status().as_u16(), 200 | 503),
                    "gateway: {}",
                    r.status()
                );
                if r.status() == 503 {
                    let retry = r.headers().contains_key("retry-after");
                    others.lock().unwrap().push(("gateway", retry));
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    pg.ctl("stop");
    let stopped = Instant::now();
    let deadline = stopped + Duration::from_secs(10);
    loop {
        let r = app.client.get(app.url("/readyz")).send().await.unwrap();
        if r.status() == 503 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz still {} with PostgreSQL stopped",
            r.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Stay down past the pool's 5 s acquire timeout (`store::postgres`): a request that found
    // no connection waits that long and then answers 503. A shorter outage is ridden out by the
    // waiting requests, and the load saw a 503 only if a query was in flight at the stop.
    tokio::time::sleep(Duration::from_secs(7)).await;
    pg.ctl("start");
    let restarted = Instant::now();
    let deadline = restarted + Duration::from_secs(15);
    loop {
        let r = app.client.get(app.url("/readyz")).send().await.unwrap();
        if r.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "obgate did not recover within 15 s of PostgreSQL returning"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recovered_after = restarted.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    for l in load {
        l.await.unwrap();
    }

    let results = results.lock().unwrap().clone();
    let unavailable: Vec<_> = results.iter().filter(|(_, s, _)| *s == 503).collect();
    // Which request meets the outage first depends on where each worker was when PostgreSQL
    // stopped: a worker that was reading or asking for a token then can start its next
    // write late enough to be served once PostgreSQL is back. Any kind of request counts.
    let others = others.lock().unwrap().clone();
    assert!(
        !unavailable.is_empty() || !others.is_empty(),
        "the load saw the outage"
    );
    for (kind, retry) in &others {
        assert!(retry, "{kind}: 503 without Retry-After");
    }
    for (key, status, retry) in &results {
        assert!(matches!(status, 201 | 503), "{key}: {status}");
        if *status == 503 {
            assert!(retry.is_some(), "{key}: 503 without Retry-After");
        }
    }
    // Every write answered 503 is retried with its key and succeeds now: it had written
    // nothing (a half-done write would make the key a 409 conflict). With the first answers,
    // one customer per key.
    let mut ids = std::collections::HashMap::new();
    for (key, status, _) in &results {
        if *status == 201 {
            continue;
        }
        let r = app
            .send(
                app.admin(Method::POST, "/api/v0/customers")
                    .header("Idempotency-Key", key)
                    .json(&customer_body("Jane")),
            )
            .await;
        assert_eq!(r.status, 201, "{key} after a 503: {}", r.text());
        ids.insert(
            key.clone(),
            r.json()["customer_id"].as_str().unwrap().to_owned(),
        );
    }
    for (key, id) in created.lock().unwrap().iter() {
        ids.insert(key.clone(), id.clone());
    }
    let distinct: std::collections::HashSet<_> = ids.values().collect();
    assert_eq!(
        distinct.len(),
        results.len(),
        "one customer per idempotency key"
    );
    // And the audit chain is whole: nothing half-written.
    let out = Command::new(env!("CARGO_BIN_EXE_obgate"))
        .env_clear()
        .env("OBGATE_DATABASE_URL", pg.url())
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!(
        "{} writes, {} answered 503 while PostgreSQL was down; ready again {recovered_after:?} after it returned",
        results.len(),
        unavailable.len()
    );
}
