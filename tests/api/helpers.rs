//! Starts the real app on `127.0.0.1:0` against a fresh database, and talks to it over HTTP.
//!
//! The backend is SQLite (a temporary file) unless `OBGATE_TEST_POSTGRES_URL` is set, in which
//! case every app gets its own freshly created PostgreSQL database, dropped when the app is
//! dropped (also when the test panics). Every response goes through the spec check.

use std::sync::Arc;
use std::time::Duration;

use obgate::admin;
use obgate::audit::{Actor, ActorType};
use obgate::clock::{Clock, SystemClock};
use obgate::config::Config;
use obgate::store::Store;
use obgate::App;
use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder};
use secrecy::ExposeSecret;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::spec;

/// A database for one app: a temp SQLite file or a fresh PostgreSQL database.
pub struct TestDb {
    pub url: String,
    admin_url: Option<String>,
    name: String,
    _dir: Option<tempfile::TempDir>,
}

pub fn postgres_url() -> Option<String> {
    std::env::var("OBGATE_TEST_POSTGRES_URL")
        .ok()
        .filter(|s| !s.is_empty())
}

impl TestDb {
    pub async fn new() -> Self {
        let name = format!("obgate_test_{}", uuid::Uuid::new_v4().simple());
        match postgres_url() {
            Some(admin_url) => {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&admin_url)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("OBGATE_TEST_POSTGRES_URL is set but PostgreSQL is unreachable: {e}")
                    });
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                let mut url = url::Url::parse(&admin_url).expect("postgres url");
                url.set_path(&name);
                Self {
                    url: url.to_string(),
                    admin_url: Some(admin_url),
                    name,
                    _dir: None,
                }
            }
            None => {
                let dir = tempfile::tempdir().expect("tempdir");
                let url = format!("sqlite://{}", dir.path().join("obgate.db").display());
                Self {
                    url,
                    admin_url: None,
                    name,
                    _dir: Some(dir),
                }
            }
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.url.starts_with("postgres")
    }

    /// A database the test manages itself (a PostgreSQL it started, a file on a small file
    /// system): used as is, never dropped.
    pub fn external(url: String) -> Self {
        Self {
            url,
            admin_url: None,
            name: String::new(),
            _dir: None,
        }
    }

    /// Runs raw SQL on the database, bypassing obgate (to simulate tampering or damage).
    pub async fn exec(&self, sql: &str) {
        if let Err(e) = self.try_exec(sql).await {
            panic!("{sql}: {e}");
        }
    }

    /// Makes every insert into `table` fail (a full disk, a broken database) until
    /// [`TestDb::allow_inserts`].
    pub async fn refuse_inserts(&self, table: &str) {
        self.exec(&if self.is_postgres() {
            format!(
                "CREATE OR REPLACE FUNCTION refuse_{table}() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN RAISE EXCEPTION 'injected fault'; END $$; \
                 CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} \
                 FOR EACH ROW EXECUTE FUNCTION refuse_{table}();"
            )
        } else {
            format!(
                "CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} \
                 BEGIN SELECT RAISE(ABORT, 'injected fault'); END;"
            )
        })
        .await;
    }

    /// Undoes [`TestDb::refuse_inserts`].
    pub async fn allow_inserts(&self, table: &str) {
        self.exec(&if self.is_postgres() {
            format!("DROP TRIGGER refuse_{table} ON {table}")
        } else {
            format!("DROP TRIGGER refuse_{table}")
        })
        .await;
    }

    /// Like [`exec`], but returns the error text instead of panicking.
    pub async fn try_exec(&self, sql: &str) -> Result<(), String> {
        use sqlx::Connection;
        let r = if self.is_postgres() {
            let mut c = sqlx::PgConnection::connect(&self.url)
                .await
                .map_err(|e| e.to_string())?;
            sqlx::raw_sql(sql).execute(&mut c).await.map(|_| ())
        } else {
            let mut c = sqlx::SqliteConnection::connect(&self.url)
                .await
                .map_err(|e| e.to_string())?;
            sqlx::raw_sql(sql).execute(&mut c).await.map(|_| ())
        };
        r.map_err(|e| e.to_string())
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(admin_url) = self.admin_url.clone() else {
            return;
        };
        let name = self.name.clone();
        // Drop runs inside the test's runtime, which cannot be blocked on: use a thread.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                use sqlx::Connection;
                let mut c = sqlx::PgConnection::connect(&admin_url).await.ok()?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut c)
                    .await
                    .ok()
            })
        })
        .join();
    }
}

/// A production deployment's minimum: https public URL, the bank's upstream, and real keys
/// (32 bytes of 0x05, base64) for PII and signing keys.
pub const PRODUCTION: &[(&str, &str)] = &[
    ("OBGATE_MODE", "production"),
    ("OBGATE_PUBLIC_URL", "https://bank.example"),
    ("OBGATE_UPSTREAM_URL", "https://core.bank.example"),
    ("OBGATE_KYC_PROVIDER", "http"),
    ("OBGATE_KYC_PROVIDER_URL", "https://idv.bank.example"),
    (
        "OBGATE_PII_KEY",
        "BQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQU=",
    ),
    (
        "OBGATE_OAUTH_KEY_ENCRYPTION_KEY",
        "BQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQU=",
    ),
];

/// Config for a test app: `env` overrides on top of a random port and the test database.
pub fn config(db: &TestDb, env: &[(&str, &str)]) -> Config {
    let mut vars: Vec<(String, String)> = vec![
        ("OBGATE_LISTEN".into(), "127.0.0.1:0".into()),
        ("OBGATE_DATABASE_URL".into(), db.url.clone()),
        ("OBGATE_DATABASE_MAX_CONNECTIONS".into(), "5".into()),
        ("OBGATE_HTTP_SHUTDOWN_GRACE".into(), "5s".into()),
        // Each app its own spill file: the default is one name in the working directory, and
        // apps of other tests would write the decisions one of them left there.
        (
            "OBGATE_GATEWAY_DECISION_SPILL_FILE".into(),
            std::env::temp_dir()
                .join(format!(
                    "obgate-test-{}.spill",
                    uuid::Uuid::new_v4().simple()
                ))
                .to_string_lossy()
                .into_owned(),
        ),
    ];
    vars.extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    Config::load(None, vars).unwrap_or_else(|e| panic!("{e}"))
}

pub struct TestApp {
    pub base: String,
    pub admin_key: String,
    pub admin_key_id: String,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub keys: Arc<obgate::oauth::keys::Keys>,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    pub server: Option<JoinHandle<std::io::Result<()>>>,
    pub db: TestDb,
}

/// A response, already checked against the spec.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub async fn spawn() -> TestApp {
    spawn_with(&[]).await
}

pub async fn spawn_with(env: &[(&str, &str)]) -> TestApp {
    let db = TestDb::new().await;
    let config = config(&db, env);
    spawn_on(db, config).await
}

pub async fn spawn_on(db: TestDb, config: Config) -> TestApp {
    spawn_with_clock(db, config, Arc::new(SystemClock)).await
}

/// An app whose clock the test controls.
pub async fn spawn_with_clock(db: TestDb, config: Config, clock: Arc<dyn Clock>) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    start(db, config, clock, listener).await
}

/// An app whose clock starts at `start` (Unix seconds) and moves only when the test says.
pub async fn spawn_at(
    start: i64,
    env: &[(&str, &str)],
) -> (TestApp, Arc<obgate::clock::ManualClock>) {
    use obgate::clock::{ManualClock, Timestamp};
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(start * 1000)));
    let db = TestDb::new().await;
    let config = config(&db, env);
    (spawn_with_clock(db, config, clock.clone()).await, clock)
}

/// An app whose `public_url` is its real address, for a browser that follows the redirects
/// and links it builds; `env` is applied on top.
pub async fn spawn_public(env: &[(&str, &str)], clock: Arc<dyn Clock>) -> TestApp {
    let db = TestDb::new().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let public = format!("http://{}", listener.local_addr().expect("addr"));
    let mut all = vec![("OBGATE_PUBLIC_URL", public.as_str())];
    all.extend_from_slice(env);
    let config = config(&db, &all);
    start(db, config, clock, listener).await
}

async fn start(
    db: TestDb,
    config: Config,
    clock: Arc<dyn Clock>,
    listener: tokio::net::TcpListener,
) -> TestApp {
    let migrated = config.migrate_on_start;
    let app = App::build_with_clock(config, clock.clone())
        .await
        .expect("build app");
    let store = app.state().store.clone();
    let keys = app.state().keys.clone();
    let (admin_key, admin_key_id) = if migrated {
        let actor = Actor {
            kind: ActorType::Cli,
            id: "test".into(),
            interaction_id: None,
        };
        let created = admin::create_key(store.as_ref(), clock.as_ref(), "test-admin", &actor)
            .await
            .expect("create admin key");
        (created.secret.expose_secret().to_owned(), created.record.id)
    } else {
        (String::new(), String::new())
    };
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(app.serve(listener, async move {
        let _ = rx.await;
    }));
    TestApp {
        base: format!("http://{addr}"),
        admin_key,
        admin_key_id,
        store,
        clock,
        keys,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client"),
        shutdown: Some(tx),
        server: Some(server),
        db,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    /// A request carrying the test admin key.
    pub fn admin(&self, method: Method, path: &str) -> RequestBuilder {
        self.request(method, path).bearer_auth(&self.admin_key)
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(self.request(Method::GET, path)).await
    }

    pub async fn admin_get(&self, path: &str) -> Resp {
        self.send(self.admin(Method::GET, path)).await
    }

    /// Sends, then checks the response against the spec before returning it.
    pub async fn send(&self, rb: RequestBuilder) -> Resp {
        let req = rb.build().expect("request");
        let method = req.method().to_string();
        let path = req.url().path().to_owned();
        let res = self.client.execute(req).await.expect("send");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let body = res.bytes().await.expect("body").to_vec();
        spec::check(&spec::Observed {
            method: &method,
            path: &path,
            status,
            headers: &headers,
            body: &body,
        });
        Resp {
            status,
            headers,
            body,
        }
    }

    /// Asks the server to stop; in-flight requests finish first.
    pub fn trigger_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Gateway decisions matching a query string once `done` holds (they are written in
    /// batches moments after the answer).
    pub async fn decisions_eventually(
        &self,
        query: &str,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let r = self
                .admin_get(&format!("/api/v0/audit/gateway-decisions?{query}"))
                .await;
            assert_eq!(r.status, 200, "{}", r.text());
            let rows = r.json()["data"].as_array().cloned().unwrap_or_default();
            if done(&rows) {
                return rows;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "gateway decisions for {query} never came: {rows:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Audit rows matching a query string, through the API.
    pub async fn audit(&self, query: &str) -> Vec<Value> {
        let r = self.admin_get(&format!("/api/v0/audit?{query}")).await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["data"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.trigger_shutdown();
        if let Some(h) = self.server.take() {
            h.abort();
        }
    }
}

/// The Redis the shared-limit tests use; `.ci/run` starts one. A test that needs it fails,
/// rather than skips, when it is not there.
pub fn redis_url() -> String {
    std::env::var("OBGATE_TEST_REDIS_URL")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".into())
}

/// A second node of `app`: the same database, its own process state (caches, limits), its
/// own port; stopped when dropped.
pub struct Peer {
    pub base: String,
    _shutdown: oneshot::Sender<()>,
}

pub async fn spawn_peer(app: &TestApp, env: &[(&str, &str)]) -> Peer {
    let mut all = vec![("OBGATE_DATABASE_MIGRATE_ON_START", "false")];
    all.extend_from_slice(env);
    let config = config(&app.db, &all);
    let built = App::build(config).await.expect("build peer");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(built.serve(listener, async move {
        let _ = rx.await;
    }));
    Peer {
        base,
        _shutdown: tx,
    }
}

/// A started `obgate serve`, killed however the test ends, so a failed assertion leaves no
/// server behind.
pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Creates a customer and starts its KYC (with `ssn`) through a process's API (`key` an admin
/// key); answers the customer id.
pub async fn customer_with_kyc(http: &reqwest::Client, base: &str, key: &str, ssn: &str) -> String {
    let post = |path: &str, body: serde_json::Value| {
        http.post(format!("{base}{path}"))
            .bearer_auth(key)
            .json(&body)
            .send()
    };
    let c: serde_json::Value = post("/api/v0/customers", crate::kyc::customer_body("Jane"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = c["customer_id"].as_str().unwrap().to_owned();
    let r = post(
        &format!("/api/v0/customers/{id}/verification-kyc"),
        crate::kyc::kyc_body(ssn),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    id
}

/// An admin key for `db`, created by the binary as an operator would.
pub fn admin_key(db: &TestDb, name: &str) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_obgate"))
        .env_clear()
        .env("OBGATE_DATABASE_URL", &db.url)
        .args(["admin-key", "create", "--name", name])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// `obgate serve` on `db` as a process of its own (what the test is about is the process: a
/// kill, its environment), answering on `port` once this returns; killed however the test
/// ends.
pub async fn serve_process(db: &TestDb, port: u16, env: &[(&str, &str)]) -> Running {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_obgate"))
        .env_clear()
        .env("OBGATE_DATABASE_URL", &db.url)
        .env("OBGATE_LISTEN", format!("127.0.0.1:{port}"))
        .env("OBGATE_WORKERS_POLL_INTERVAL", "50ms")
        .envs(env.iter().copied())
        .arg("serve")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let running = Running(child);
    let ready = format!("http://127.0.0.1:{port}/readyz");
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while http.get(&ready).send().await.is_err() {
        assert!(std::time::Instant::now() < deadline, "obgate did not start");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    running
}
