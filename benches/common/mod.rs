//! What the benchmark binaries share: an obgate process started from the release build, and
//! a client of its API that seeds what a run needs (a TPP, a customer whose KYC passed, an
//! authorised consent). `mod common;` in each bench.

#![allow(dead_code)] // each bench uses its own part of it

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The project directory.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A running `target/release/obgate serve`, killed when dropped.
pub struct Node {
    pub child: Child,
    pub base: String,
    /// Where its SQLite file and log live.
    pub dir: tempfile::TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Node {
    pub fn start(env: &[(&str, &str)]) -> Self {
        Self::start_in(tempfile::tempdir().unwrap(), env)
    }

    /// Starts a node in `dir` (its SQLite file lives there), e.g. to restart on kept data.
    pub fn start_in(dir: tempfile::TempDir, env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let log = std::fs::File::create(dir.path().join("obgate.log")).unwrap();
        let child = Command::new(root().join("target/release/obgate"))
            .arg("serve")
            .current_dir(dir.path())
            .env("OBGATE_LISTEN", &listen)
            .env("OBGATE_LOG_LEVEL", "warn")
            .env("OBGATE_LOG_FORMAT", "json")
            // One client at full speed is the load here (1,000 revocations in a row for the
            // revocation row), and 64 wrong secrets from one address are the argon2 row:
            // limits and lockout (tests/api/limits.rs) are off.
            .env("OBGATE_RATE_LIMIT_TOKEN", "off")
            .env("OBGATE_RATE_LIMIT_OAUTH", "off")
            .env("OBGATE_RATE_LIMIT_GATEWAY", "off")
            .env("OBGATE_OAUTH_LOCKOUT_AFTER", "0")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start target/release/obgate (run benches/run.sh, which builds it)");
        let base = format!("http://{listen}");
        let node = Self { child, base, dir };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if std::process::Command::new("curl")
                .args(["-fs", "-o", "/dev/null", &format!("{}/readyz", node.base)])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
            {
                return node;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("obgate did not become ready");
    }

    /// Stops the node and starts it again on the same data, with `env`.
    pub fn restart(mut self, env: &[(&str, &str)]) -> Self {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        drop(self);
        Self::start_in(dir, env)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Stops the node and keeps its directory (SQLite file, log, token lists) for a later
    /// run by hand, e.g. under callgrind; returns where it is.
    pub fn keep(mut self) -> std::path::PathBuf {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        dir.keep()
    }

    /// Resident memory of the process, in MiB.
    pub fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kb: f64 = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN);
        kb / 1024.0
    }

    pub fn admin_key(&self, env: &[(&str, &str)]) -> String {
        let out = Command::new(root().join("target/release/obgate"))
            .args([
                "admin-key",
                "create",
                "--name",
                &format!("bench-{}", free_port()),
            ])
            .current_dir(self.path())
            .envs(env.iter().copied())
            .stderr(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "admin-key create");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

/// What the seeding produced.
pub struct Seeded {
    pub client_id: String,
    pub secret: String,
    pub customer: String,
    pub consent: String,
}

pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub admin: String,
}

impl Api {
    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    }

    pub async fn token(&self, s: &Seeded, details: Option<&str>) -> String {
        let mut form = vec![("grant_type", "client_credentials"), ("scope", "accounts")];
        if let Some(d) = details {
            form.push(("authorization_details", d));
        }
        let r = self
            .http
            .post(format!("{}/oauth2/token", self.base))
            .basic_auth(&s.client_id, Some(&s.secret))
            .form(&form)
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        v["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("token: {v}"))
            .to_owned()
    }

    pub fn details(consent: &str) -> String {
        json!([{"type": "openbanking_account_access", "consent_id": consent}]).to_string()
    }

    /// A TPP, a customer whose KYC passed, and an authorised consent over the upstream's
    /// accounts.
    pub async fn seed(&self, accounts: fn(&str) -> Vec<String>) -> Seeded {
        let c = self
            .admin(
                reqwest::Method::POST,
                "/api/v0/oauth-clients",
                json!({"client_name": "Bench TPP", "grant_types": ["client_credentials"]}),
            )
            .await;
        let mut s = Seeded {
            client_id: c["client_id"].as_str().unwrap().to_owned(),
            secret: c["client_secret"].as_str().unwrap().to_owned(),
            customer: String::new(),
            consent: String::new(),
        };
        s.customer = self.passed_customer().await;
        let covered = accounts(&s.customer);
        s.consent = self.authorised_consent(&s, &covered).await;
        s
    }

    pub async fn passed_customer(&self) -> String {
        let c = self
            .admin(
                reqwest::Method::POST,
                "/api/v0/customers",
                json!({"first_name": "Bench", "last_name": "Customer", "dob": "1980-01-01",
                       "addresses": [{"address_type": "PHYSICAL", "street": "1 Main Street",
                       "city": "London", "zip_code": "EC1A 1BB", "country": "GB"}]}),
            )
            .await;
        let id = c["customer_id"].as_str().unwrap().to_owned();
        self.admin(
            reqwest::Method::POST,
            &format!("/api/v0/customers/{id}/verification-kyc"),
            json!({"program_id": "bench", "ssn": "123-45-6789", "phone": "7700900123",
                   "phone_country_code": "44", "email": "bench@example.com", "ip": "203.0.113.10"}),
        )
        .await;
        for _ in 0..200 {
            let v = self
                .http
                .get(format!(
                    "{}/api/v0/customers/{id}/verification-kyc",
                    self.base
                ))
                .bearer_auth(&self.admin)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap();
            if v["kyc_status"] == "passed" {
                return id;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("KYC did not pass");
    }

    pub async fn authorised_consent(&self, s: &Seeded, accounts: &[String]) -> String {
        let tpp = self.token(s, None).await;
        let r = self
            .http
            .post(format!(
                "{}/open-banking/v3.1/aisp/account-access-consents",
                self.base
            ))
            .bearer_auth(&tpp)
            .json(
                &json!({"Data": {"Permissions": ["ReadAccountsDetail", "ReadBalances"],
                           "ExpirationDateTime": "2099-01-01T00:00:00+00:00"}, "Risk": {}}),
            )
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        let consent = v["Data"]["ConsentId"].as_str().unwrap().to_owned();
        self.admin(
            reqwest::Method::POST,
            &format!("/api/v0/consents/{consent}/authorise"),
            json!({"customer_id": s.customer, "account_ids": accounts}),
        )
        .await;
        consent
    }
}
