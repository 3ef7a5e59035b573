//! The soak run: ten minutes of mixed traffic against one obgate (release build) on
//! PostgreSQL, then the checks a bank's operator and compliance officer would make.
//!
//! `cargo build --release && cargo bench --bench soak` (`SOAK_SECS` to change the length,
//! `SOAK_WORKERS` the concurrency, `BENCH_POSTGRES_URL` the server; a fresh database is
//! created on it). Each worker is a TPP with its own customer and, in a loop: a
//! `client_credentials` token, a consent created, approved and bound to a token, a burst of
//! account reads through the gateway, a revocation (by the TPP or by the bank, in turn) and a
//! read after it, and every few rounds a new customer through KYC.
//!
//! Afterwards it checks, and exits non-zero unless all hold:
//! - no 5xx answer at all;
//! - resident memory flat after warm-up: the least-squares trend of the samples after the
//!   first minute is under 10% of the mean over the run (no growth trend);
//! - `obgate audit verify` passes on the database;
//! - every state change answered as done is in the audit log (consents created, approved,
//!   revoked or deleted, customers created, tokens issued);
//! - the audit log holds exactly one gateway decision per gateway request answered, and
//!   `obgate audit verify` proves them against their seals.
//!
//! It prints one summary table, for the README.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a benchmark aborts on a setup failure

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod common;
use common::{root, Api, Node, Seeded};

/// Answers by (what, status).
type Tally = Arc<Mutex<BTreeMap<(&'static str, u16), u64>>>;

fn count(t: &Tally, what: &'static str, status: u16) {
    *t.lock().unwrap().entry((what, status)).or_default() += 1;
}

fn sum(t: &BTreeMap<(&'static str, u16), u64>, what: &str, ok: &[u16]) -> u64 {
    t.iter()
        .filter(|((w, s), _)| *w == what && ok.contains(s))
        .map(|(_, n)| n)
        .sum()
}

/// One worker: a TPP with its own customer.
async fn worker(api: Arc<Api>, deadline: Instant, tally: Tally, n: usize) {
    let s = api.seed(obgate::sandbox_bank::account_ids).await;
    let accounts = obgate::sandbox_bank::account_ids(&s.customer);
    let http = &api.http;
    let mut round = 0usize;
    while Instant::now() < deadline {
        round += 1;
        // A client-level token.
        let r = http
            .post(format!("{}/oauth2/token", api.base))
            .basic_auth(&s.client_id, Some(&s.secret))
            .form(&[("grant_type", "client_credentials"), ("scope", "accounts")])
            .send()
            .await
            .unwrap();
        count(&tally, "token", r.status().as_u16());
        let tpp: Value = r.json().await.unwrap_or(Value::Null);
        let Some(tpp) = tpp["access_token"].as_str().map(str::to_owned) else {
            continue;
        };
        // A consent: created, approved by the bank for the customer, bound to a token.
        let r = http
            .post(format!(
                "{}/open-banking/v3.1/aisp/account-access-consents",
                api.base
            ))
            .bearer_auth(&tpp)
            .json(
                &json!({"Data": {"Permissions": ["ReadAccountsDetail", "ReadBalances"],
                   "ExpirationDateTime": "2099-01-01T00:00:00+00:00"}, "Risk": {}}),
            )
            .send()
            .await
            .unwrap();
        count(&tally, "consent.create", r.status().as_u16());
        let v: Value = r.json().await.unwrap_or(Value::Null);
        let Some(consent) = v["Data"]["ConsentId"].as_str().map(str::to_owned) else {
            continue;
        };
        let r = http
            .post(format!("{}/api/v0/consents/{consent}/authorise", api.base))
            .bearer_auth(&api.admin)
            .json(&json!({"customer_id": s.customer, "account_ids": accounts}))
            .send()
            .await
            .unwrap();
        count(&tally, "consent.authorise", r.status().as_u16());
        let bound = Seeded {
            client_id: s.client_id.clone(),
            secret: s.secret.clone(),
            customer: s.customer.clone(),
            consent: consent.clone(),
        };
        let r = http
            .post(format!("{}/oauth2/token", api.base))
            .basic_auth(&bound.client_id, Some(&bound.secret))
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", "accounts"),
                ("authorization_details", &Api::details(&consent)),
            ])
            .send()
            .await
            .unwrap();
        count(&tally, "token", r.status().as_u16());
        let v: Value = r.json().await.unwrap_or(Value::Null);
        let Some(token) = v["access_token"].as_str().map(str::to_owned) else {
            continue;
        };
        // Account reads.
        for i in 0..20 {
            let path = if i % 2 == 0 {
                "/open-banking/v3.1/aisp/accounts".to_owned()
            } else {
                format!(
                    "/open-banking/v3.1/aisp/accounts/{}/balances",
                    accounts[i % accounts.len()]
                )
            };
            let r = http
                .get(format!("{}{path}", api.base))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            count(&tally, "gateway", r.status().as_u16());
        }
        // Revocation, by the TPP or by the bank in turn; then a read that must be refused.
        let r = if round % 2 == 0 {
            http.delete(format!(
                "{}/open-banking/v3.1/aisp/account-access-consents/{consent}",
                api.base
            ))
            .bearer_auth(&tpp)
            .send()
            .await
            .unwrap()
        } else {
            http.post(format!("{}/api/v0/consents/{consent}/revoke", api.base))
                .bearer_auth(&api.admin)
                .json(&json!({"reason": "soak"}))
                .send()
                .await
                .unwrap()
        };
        count(&tally, "consent.end", r.status().as_u16());
        let r = http
            .get(format!("{}/open-banking/v3.1/aisp/accounts", api.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        count(&tally, "gateway", r.status().as_u16());
        count(
            &tally,
            "gateway.after_revoke",
            if matches!(r.status().as_u16(), 401 | 403) {
                1
            } else {
                0
            },
        );
        // Every few rounds, a new customer through KYC.
        if round % 5 == n % 5 {
            let r = http
                .post(format!("{}/api/v0/customers", api.base))
                .bearer_auth(&api.admin)
                .json(
                    &json!({"first_name": "Soak", "last_name": "Customer", "dob": "1980-01-01",
                       "addresses": [{"address_type": "PHYSICAL", "street": "1 Main Street",
                       "city": "London", "zip_code": "EC1A 1BB", "country": "GB"}]}),
                )
                .send()
                .await
                .unwrap();
            count(&tally, "customer.create", r.status().as_u16());
            let v: Value = r.json().await.unwrap_or(Value::Null);
            if let Some(id) = v["customer_id"].as_str() {
                let r = http
                    .post(format!("{}/api/v0/customers/{id}/verification-kyc", api.base))
                    .bearer_auth(&api.admin)
                    .json(&json!({"program_id": "soak", "ssn": "123-45-6789", "phone": "7700900123",
                           "phone_country_code": "44", "email": "soak@example.com", "ip": "203.0.113.10"}))
                    .send()
                    .await
                    .unwrap();
                count(&tally, "kyc.start", r.status().as_u16());
            }
        }
    }
}

/// Least-squares slope of `(t, y)`, in y per second.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let (mx, my) = (
        points.iter().map(|p| p.0).sum::<f64>() / n,
        points.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let cov: f64 = points.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    let var: f64 = points.iter().map(|(x, _)| (x - mx).powi(2)).sum();
    if var == 0.0 {
        0.0
    } else {
        cov / var
    }
}

/// Audit rows by action and outcome; gateway decisions count under `gateway.access`.
async fn audit_counts(url: &str) -> BTreeMap<(String, String), i64> {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT action, outcome, count(*) FROM audit GROUP BY action, outcome \
         UNION ALL SELECT 'gateway.access', outcome, count(*) FROM gateway_decisions \
         GROUP BY outcome",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    rows.into_iter().map(|(a, o, n)| ((a, o), n)).collect()
}

#[tokio::main]
async fn main() {
    let secs: u64 = std::env::var("SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    let workers: usize = std::env::var("SOAK_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let pg = std::env::var("BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    assert!(
        root().join("target/release/obgate").exists(),
        "build the release binary first: cargo build --release"
    );
    let db = format!("obgate_soak_{}", std::process::id());
    let admin = sqlx::PgPool::connect(&pg)
        .await
        .expect("BENCH_POSTGRES_URL");
    sqlx::query(&format!("CREATE DATABASE {db}"))
        .execute(&admin)
        .await
        .unwrap();
    let url = match pg.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{db}"),
        None => panic!("BENCH_POSTGRES_URL must name a database"),
    };
    let env = [
        ("OBGATE_DATABASE_URL", url.as_str()),
        ("OBGATE_WORKERS_POLL_INTERVAL", "100ms"),
    ];
    let node = Node::start(&env);
    let api = Arc::new(Api {
        http: reqwest::Client::new(),
        base: node.base.clone(),
        admin: node.admin_key(&env),
    });
    println!("soak: {secs} s, {workers} workers, obgate at {}", node.base);
    // What the first start wrote (the sandbox demo data), so only the run is compared.
    let baseline = audit_counts(&url).await;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let tally: Tally = Arc::default();
    let tasks: Vec<_> = (0..workers)
        .map(|n| tokio::spawn(worker(api.clone(), deadline, tally.clone(), n)))
        .collect();
    let mut rss = vec![];
    while Instant::now() < deadline {
        rss.push((started.elapsed().as_secs_f64(), node.rss_mib()));
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    for t in tasks {
        t.await.unwrap();
    }
    rss.push((started.elapsed().as_secs_f64(), node.rss_mib()));
    // A graceful stop: the access log writes what it still holds.
    let pid = node.child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let stop_deadline = Instant::now() + Duration::from_secs(30);
    while std::path::Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/status"))
            .is_ok_and(|s| !s.contains("State:\tZ"))
    {
        assert!(Instant::now() < stop_deadline, "obgate did not stop");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let tally = tally.lock().unwrap().clone();
    let mut failures = vec![];
    let five_xx: u64 = tally
        .iter()
        .filter(|((_, s), _)| *s >= 500)
        .map(|(_, n)| n)
        .sum();
    if five_xx > 0 {
        failures.push(format!("{five_xx} answers were 5xx: {tally:?}"));
    }
    let warm: Vec<(f64, f64)> = rss.iter().copied().filter(|(t, _)| *t >= 60.0).collect();
    let mean = rss.iter().map(|p| p.1).sum::<f64>() / rss.len() as f64;
    let trend_mib = if warm.len() >= 3 {
        slope(&warm) * (warm.last().unwrap().0 - warm[0].0)
    } else {
        0.0
    };
    if trend_mib > 0.10 * mean {
        failures.push(format!(
            "RSS grew {trend_mib:.1} MiB after warm-up (mean {mean:.1} MiB)"
        ));
    }
    let verify = Command::new(root().join("target/release/obgate"))
        .env("OBGATE_DATABASE_URL", &url)
        .args(["audit", "verify"])
        .output()
        .unwrap();
    if !verify.status.success() {
        failures.push(format!(
            "audit verify failed: {}",
            String::from_utf8_lossy(&verify.stderr)
        ));
    }
    let audit = audit_counts(&url).await;
    let rows = |action: &str, outcome: &str| {
        let key = (action.to_owned(), outcome.to_owned());
        (audit.get(&key).copied().unwrap_or(0) - baseline.get(&key).copied().unwrap_or(0)) as u64
    };
    let gateway_answered = tally
        .iter()
        .filter(|((w, _), _)| *w == "gateway")
        .map(|(_, n)| n)
        .sum::<u64>();
    let gateway_audited = rows("gateway.access", "success") + rows("gateway.access", "denied");
    let checks: Vec<(&str, u64, u64)> = vec![
        ("gateway decisions", gateway_answered, gateway_audited),
        (
            "consents created",
            sum(&tally, "consent.create", &[201]),
            rows("consent.create", "success"),
        ),
        (
            "consents approved",
            sum(&tally, "consent.authorise", &[200]),
            rows("consent.authorise", "success"),
        ),
        (
            "consents revoked or deleted",
            sum(&tally, "consent.end", &[200, 204]),
            rows("consent.revoke", "success") + rows("consent.delete", "success"),
        ),
        (
            "tokens issued",
            sum(&tally, "token", &[200]),
            rows("token.issue", "success"),
        ),
    ];
    // Customers: the workers' own (seeded) and the KYC rounds.
    let customers_made = sum(&tally, "customer.create", &[201]) + workers as u64;
    let customers_audited = rows("customer.create", "success");
    let mut all = checks.clone();
    all.push(("customers created", customers_made, customers_audited));
    for (what, answered, audited) in &all {
        // Seeding (a token and an approval per worker) is audited too but not in the tally.
        let seeded = match *what {
            "tokens issued" => workers as u64,
            "consents created" | "consents approved" => workers as u64,
            _ => 0,
        };
        if answered + seeded != *audited {
            failures.push(format!(
                "{what}: {answered} answered (+{seeded} seeding), {audited} in the audit log"
            ));
        }
    }
    let refused_after_revoke = sum(&tally, "gateway.after_revoke", &[1]);
    let after_revoke_total = sum(&tally, "gateway.after_revoke", &[0, 1]);
    if refused_after_revoke != after_revoke_total {
        failures.push(format!(
            "{} reads after a revocation were allowed",
            after_revoke_total - refused_after_revoke
        ));
    }

    let total: u64 = tally
        .iter()
        .filter(|((w, _), _)| *w != "gateway.after_revoke")
        .map(|(_, n)| n)
        .sum();
    let secs_run = started.elapsed().as_secs_f64();
    println!();
    println!(
        "| soak ({:.0} s, {workers} workers, PostgreSQL) | figure |",
        secs_run
    );
    println!("|---|---|");
    println!(
        "| requests answered | {total} ({:.0}/s) |",
        total as f64 / secs_run
    );
    println!("| gateway reads answered / audited | {gateway_answered} / {gateway_audited} |");
    for (what, answered, audited) in &all {
        println!("| {what}: answered / audited | {answered} / {audited} |");
    }
    println!("| reads refused right after a revocation | {refused_after_revoke} of {after_revoke_total} |");
    println!("| 5xx answers | {five_xx} |");
    println!(
        "| RSS: first / last / max (MiB) | {:.1} / {:.1} / {:.1} |",
        rss[0].1,
        rss.last().unwrap().1,
        rss.iter().map(|p| p.1).fold(0.0, f64::max)
    );
    println!("| RSS trend after the first minute | {trend_mib:+.1} MiB over the run |");
    println!(
        "| `obgate audit verify` | {} |",
        if verify.status.success() {
            "passes"
        } else {
            "FAILS"
        }
    );
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .execute(&admin)
        .await;
    if failures.is_empty() {
        println!("\nsoak: every check passed");
    } else {
        for f in &failures {
            eprintln!("soak FAILED: {f}");
        }
        std::process::exit(1);
    }
}
