//! Token issuance benchmark: `client_credentials` tokens per second and latency percentiles,
//! against the real app (release build, SQLite, ES256 keys, argon2id client secrets).
//!
//! Run with `cargo bench --bench token` (see the README). It registers clients through the
//! bank API, then sends `POST /oauth2/token` with HTTP Basic from concurrent workers over
//! loopback for a fixed time, twice: with the verified-secret cache on (the default: a client
//! pays argon2 once per `oauth.secret_cache_ttl`) and with it off (every request pays argon2:
//! the worst case, e.g. many distinct clients). Bounded in time and count; loopback only.

#![allow(clippy::expect_used)] // a benchmark aborts on a setup failure
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use obgate::config::Config;
use obgate::App;

const WORKERS: usize = 32;
const RUN_FOR: Duration = Duration::from_secs(10);
const WARMUP: Duration = Duration::from_secs(2);

struct Outcome {
    label: &'static str,
    ok: usize,
    failed: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

async fn run(label: &'static str, cache_ttl: &str) -> Outcome {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}", dir.path().join("bench.db").display());
    let env = vec![
        ("OBGATE_LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
        ("OBGATE_DATABASE_URL".to_owned(), db),
        (
            "OBGATE_OAUTH_SECRET_CACHE_TTL".to_owned(),
            cache_ttl.to_owned(),
        ),
        ("OBGATE_LOG_LEVEL".to_owned(), "error".to_owned()),
        // One client asking as fast as it can is the load being measured.
        ("OBGATE_RATE_LIMIT_TOKEN".to_owned(), "off".to_owned()),
    ];
    let config = Config::load(None, env).expect("config");
    let app = App::build(config).await.expect("app");
    let state = app.state().clone();
    let actor = obgate::audit::Actor {
        kind: obgate::audit::ActorType::Cli,
        id: "bench".into(),
        interaction_id: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!(
        "http://{}/oauth2/token",
        listener.local_addr().expect("addr")
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.serve(listener, async move {
        let _ = stop_rx.await;
    }));

    // One client per worker, as distinct TPPs would be.
    let mut creds = Vec::new();
    for i in 0..WORKERS {
        let meta = obgate::oauth::clients::ClientMetadata {
            client_name: Some(format!("bench {i}")),
            ..Default::default()
        };
        let (view, secret) = state.clients().create(meta, &actor).await.expect("client");
        creds.push((view.client_id, secret.expect("secret")));
    }

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(WORKERS)
        .build()
        .expect("client");
    let measuring = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + WARMUP + RUN_FOR;
    let mut tasks = Vec::new();
    for (id, secret) in creds {
        let (http, url, measuring) = (http.clone(), url.clone(), measuring.clone());
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut failed, mut lat) = (0usize, 0usize, Vec::new());
            while Instant::now() < deadline {
                let t = Instant::now();
                let r = http
                    .post(&url)
                    .basic_auth(&id, Some(&secret))
                    .form(&[("grant_type", "client_credentials"), ("scope", "accounts")])
                    .send()
                    .await;
                let good = matches!(&r, Ok(res) if res.status().is_success());
                if let Ok(res) = r {
                    let _ = res.bytes().await;
                }
                if measuring.load(Ordering::Relaxed) {
                    lat.push(t.elapsed());
                    if good {
                        ok += 1
                    } else {
                        failed += 1
                    }
                }
            }
            (ok, failed, lat)
        }));
    }
    tokio::time::sleep(WARMUP).await;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let (mut ok, mut failed, mut latencies) = (0, 0, Vec::new());
    for t in tasks {
        let (o, f, l) = t.await.expect("worker");
        ok += o;
        failed += f;
        latencies.extend(l);
    }
    let elapsed = started.elapsed();
    let _ = stop_tx.send(());
    let _ = server.await;
    latencies.sort_unstable();
    Outcome {
        label,
        ok,
        failed,
        elapsed,
        latencies,
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("obgate token benchmark: {WORKERS} concurrent clients, {}s after {}s warm-up, {cores} cores, loopback, SQLite, ES256", RUN_FOR.as_secs(), WARMUP.as_secs());
    println!();
    println!("| run | tokens/s | p50 ms | p99 ms | non-2xx |");
    println!("|---|---:|---:|---:|---:|");
    for (label, ttl) in [
        (
            "argon2id secrets, verified-secret cache on (default 60s)",
            "60s",
        ),
        (
            "argon2id secrets, cache off (argon2 on every request)",
            "0s",
        ),
    ] {
        let o = rt.block_on(run(label, ttl));
        let rate = o.ok as f64 / o.elapsed.as_secs_f64();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "| {} | {:.0} | {:.1} | {:.1} | {} |",
            o.label,
            rate,
            ms(percentile(&o.latencies, 0.50)),
            ms(percentile(&o.latencies, 0.99)),
            o.failed
        );
    }
}
