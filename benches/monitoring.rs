//! Monitoring benchmark: transactions assessed per second through the ingest API, and the
//! latency of a batch, against the real app (release build, SQLite, loopback).
//!
//! Run with `cargo bench --bench monitoring` (see the README). It creates the customers
//! through `POST /api/v0/customers`, then sends every customer's generated transactions in
//! batches from concurrent workers. Each transaction is validated, checked for a repeat,
//! scored by every rule against the customer's stored history (the earlier batch included)
//! and stored; about one in a thousand is a large transfer that opens an alert and suspends
//! the customer, as a real stream would. `BENCH_CUSTOMERS` (default 10,000) and
//! `BENCH_TRANSACTIONS` (default 1,000,000) size it, `BENCH_WORKERS` (default 16) sets how
//! many batches are in flight at once.

#![allow(clippy::expect_used)] // a benchmark aborts on a setup failure
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use obgate::config::Config;
use obgate::App;
use rand::{Rng, SeedableRng};
use secrecy::ExposeSecret;
use serde_json::{json, Value};

const BATCHES_PER_CUSTOMER: usize = 2;

/// The part of an ingest answer the benchmark counts.
#[derive(Default, serde::Deserialize)]
struct Answer {
    accepted: u64,
    alerts: Vec<String>,
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// One customer's transactions over the last 60 days, deterministic per customer index.
fn transactions(customer: usize, count: usize, now: i64) -> Vec<Value> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(customer as u64);
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let at = now - rng.random_range(0..60 * 86_400_000i64);
        let booked = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at) * 1_000_000)
            .expect("time")
            .format(&time::format_description::well_known::Rfc3339)
            .expect("format");
        let credit = rng.random_bool(0.2);
        let pence: u64 = if rng.random_bool(0.001) {
            rng.random_range(1_500_000..5_000_000)
        } else if credit {
            rng.random_range(100_000..400_000)
        } else {
            rng.random_range(100..20_000)
        };
        let payee = rng.random_range(0..40);
        out.push(json!({
            "transaction_id": format!("c{customer}-t{i}"),
            "booked_at": booked,
            "amount": format!("{}.{:02}", pence / 100, pence % 100),
            "currency": "GBP",
            "direction": if credit { "credit" } else { "debit" },
            "counterparty": {"id": format!("payee-{payee}"), "name": format!("Merchant {payee}")},
            "channel": if credit { "transfer" } else { "card" },
            "country": "GB",
        }));
    }
    out
}

fn main() {
    let customers = env_or("BENCH_CUSTOMERS", 10_000);
    let total = env_or("BENCH_TRANSACTIONS", 1_000_000);
    let per_customer = (total / customers).max(BATCHES_PER_CUSTOMER);
    let workers = env_or("BENCH_WORKERS", 16);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = format!("sqlite://{}", dir.path().join("bench.db").display());
        let env = vec![
            ("OBGATE_LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
            ("OBGATE_DATABASE_URL".to_owned(), db),
            ("OBGATE_LOG_LEVEL".to_owned(), "error".to_owned()),
        ];
        let config = Config::load(None, env).expect("config");
        let app = App::build(config).await.expect("app");
        let state = app.state().clone();
        let actor = obgate::audit::Actor {
            kind: obgate::audit::ActorType::Cli,
            id: "bench".into(),
            interaction_id: None,
        };
        let key = obgate::admin::create_key(
            state.store.as_ref(),
            state.clock.as_ref(),
            "bench",
            &actor,
        )
        .await
        .expect("admin key");
        let key = key.secret.expose_secret().to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.serve(listener, async move {
            let _ = stop_rx.await;
        }));
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(workers)
            .build()
            .expect("client");

        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        println!(
            "obgate monitoring benchmark: {customers} customers, {} transactions in batches of {}, {workers} concurrent workers, {cores} cores, loopback, SQLite",
            customers * per_customer,
            per_customer / BATCHES_PER_CUSTOMER
        );
        let started = Instant::now();
        let next = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..workers {
            let (http, base, key, next) = (http.clone(), base.clone(), key.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                let mut ids = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= customers {
                        return ids;
                    }
                    let r = http
                        .post(format!("{base}/api/v0/customers"))
                        .bearer_auth(&key)
                        .json(&json!({
                            "first_name": "Bench",
                            "last_name": "Customer",
                            "dob": "1980-01-01",
                            "addresses": [{"address_type": "PHYSICAL", "street": "1 Main Street",
                                "city": "London", "zip_code": "EC1A 1BB", "country": "GB"}]
                        }))
                        .send()
                        .await
                        .expect("create customer");
                    assert_eq!(r.status(), 201, "customer creation failed");
                    let v: Value = r.json().await.expect("json");
                    ids.push((i, v["customer_id"].as_str().expect("id").to_owned()));
                }
            }));
        }
        let mut ids = Vec::new();
        for t in tasks {
            ids.extend(t.await.expect("worker"));
        }
        println!(
            "created {} customers in {:.1}s",
            ids.len(),
            started.elapsed().as_secs_f64()
        );

        let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
        let work: Vec<(String, Value)> = ids
            .iter()
            .flat_map(|(i, id)| {
                let all = transactions(*i, per_customer, now);
                let size = per_customer / BATCHES_PER_CUSTOMER;
                all.chunks(size)
                    .map(|c| (id.clone(), json!({"transactions": c})))
                    .collect::<Vec<_>>()
            })
            .collect();
        // Every customer's first batch before any second one, so second batches meet history.
        let mut work: Vec<(usize, (String, Value))> = work.into_iter().enumerate().collect();
        work.sort_by_key(|(n, _)| n % BATCHES_PER_CUSTOMER);
        // Bodies are serialised before the clock starts, as a bank's feed would have them
        // ready: the client shares the cores with the server, and only the server is measured.
        let work: Arc<Vec<(String, axum::body::Bytes)>> = Arc::new(
            work.into_iter()
                .map(|(_, (c, v))| (c, axum::body::Bytes::from(serde_json::to_vec(&v).expect("json"))))
                .collect(),
        );
        let next = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..workers {
            let (http, base, key, next, work) =
                (http.clone(), base.clone(), key.clone(), next.clone(), work.clone());
            tasks.push(tokio::spawn(async move {
                let (mut accepted, mut alerts, mut failed, mut lat) = (0u64, 0u64, 0u64, Vec::new());
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let Some((customer, body)) = work.get(n) else {
                        return (accepted, alerts, failed, lat);
                    };
                    let t = Instant::now();
                    let r = http
                        .post(format!("{base}/api/v0/customers/{customer}/transactions"))
                        .bearer_auth(&key)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await;
                    match r {
                        Ok(res) if res.status().is_success() => {
                            // Only the counts: the per-transaction results are not read.
                            let bytes = res.bytes().await.unwrap_or_default();
                            let a: Answer = serde_json::from_slice(&bytes).unwrap_or_default();
                            accepted += a.accepted;
                            alerts += a.alerts.len() as u64;
                        }
                        _ => failed += 1,
                    }
                    lat.push(t.elapsed());
                }
            }));
        }
        let (mut accepted, mut alerts, mut failed, mut latencies) = (0, 0, 0, Vec::new());
        for t in tasks {
            let (a, al, f, l) = t.await.expect("worker");
            accepted += a;
            alerts += al;
            failed += f;
            latencies.extend(l);
        }
        let elapsed = started.elapsed();
        latencies.sort_unstable();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!();
        println!("| transactions | batches | seconds | transactions/s | batch p50 ms | batch p99 ms | alerts | failed batches |");
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
        println!(
            "| {accepted} | {} | {:.1} | {:.0} | {:.1} | {:.1} | {alerts} | {failed} |",
            latencies.len(),
            elapsed.as_secs_f64(),
            accepted as f64 / elapsed.as_secs_f64(),
            ms(percentile(&latencies, 0.50)),
            ms(percentile(&latencies, 0.99)),
        );
        let _ = stop_tx.send(());
        let _ = server.await;
    });
}
