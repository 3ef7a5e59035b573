//! obgate against the peers a bank would otherwise use, on the same machine in one run:
//! `benches/run.sh` builds the release binary, then runs this (`cargo bench --bench peers`).
//!
//! It starts the peers with the shared `peers.sh` (nginx upstream on 18081, nginx plain proxy
//! on 18082, HAProxy verifying ES256 JWTs on 18083, oidc-provider on 18084), starts
//! `obgate serve` (release, SQLite, upstream = the peers' nginx upstream) as a separate process,
//! seeds it through its own API (a TPP with an argon2id secret, a customer whose KYC passes,
//! an authorised consent over the upstream's accounts, a customer-bound token), and measures
//! every row with the same wrk load `peers.sh` uses for the peers. The revocation row runs two
//! obgate nodes on one PostgreSQL (`BENCH_POSTGRES_URL`, default the local server). The table
//! goes to standard output and to `BENCHMARKS.md` with the date and the machine.
//!
//! Everything runs on loopback, bounded in time and count, and stops by itself.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a benchmark aborts on a setup failure
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{root, Api, Node};

/// The accounts the peers' nginx upstream serves, for every customer.
fn upstream_accounts(_customer: &str) -> Vec<String> {
    (0..8).map(|i| format!("acc-{i:04}")).collect()
}

/// One wrk result: requests/s, p50 and p99 in ms, non-2xx count.
#[derive(Clone, Copy, Debug, Default)]
struct Load {
    rps: f64,
    p50: f64,
    p99: f64,
    bad: u64,
}

impl Load {
    fn parse(line: &str) -> Self {
        let f: Vec<&str> = line.split_whitespace().collect();
        let n = |i: usize| {
            f.get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(f64::NAN)
        };
        Self {
            rps: n(0),
            p50: n(1),
            p99: n(2),
            bad: f.get(3).and_then(|v| v.parse().ok()).unwrap_or(0),
        }
    }
}

fn peers_script() -> PathBuf {
    std::env::var("OBGATE_PEERS_SH")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join("../shared/bench/peers.sh"))
}

/// Runs `peers.sh` with arguments, returning its standard output.
fn peers(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::new("bash")
        .arg(peers_script())
        .args(args)
        .envs(env.iter().copied())
        .stderr(Stdio::inherit())
        .output()
        .expect("peers.sh");
    assert!(out.status.success(), "peers.sh {args:?} failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wrk(url: &str, headers: &[&str]) -> Load {
    let mut args = vec!["wrk", url];
    args.extend_from_slice(headers);
    Load::parse(peers(&args, &[]).trim())
}

fn wrk_token(url: &str, user: &str, pass: &str) -> Load {
    Load::parse(peers(&["wrk-token", url, user, pass], &[]).trim())
}

/// The attack load: 64 connections of wrong secrets. `peers.sh` writes its wrk script to one
/// file in its directory, so a second, concurrent load gets a directory of its own.
fn wrk_attack(url: &str, user: &str) -> Load {
    let dir = std::env::temp_dir().join("obgate-peers-attack");
    let dir = dir.to_string_lossy();
    let env = [("CONNS", "64"), ("PEERS_DIR", dir.as_ref())];
    Load::parse(
        peers(
            &["wrk-token", url, user, "wrong-secret-for-the-benchmark"],
            &env,
        )
        .trim(),
    )
}

/// Stops the peers when the run ends, however it ends.
struct PeersDown;

impl Drop for PeersDown {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(peers_script())
            .arg("down")
            .status();
    }
}

/// An `obgate serve` process; killed on drop.
fn ratio(a: f64, b: f64) -> String {
    format!("{:.2}×", a / b)
}

fn pass(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**not met**"
    }
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or("?".to_owned(), |kb| {
            format!("{:.0} GiB", kb / 1024.0 / 1024.0)
        });
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_default();
    format!("{cores} cores ({cpu}), {mem}")
}

/// Revocation latency across two nodes on PostgreSQL: p50/p99 ms from `revoke` answered on
/// node A to the first refusal on node B, over `n` revocations, with B serving from its cache.
async fn revocation_latency(pg: &str, n: usize) -> (f64, f64, usize) {
    let db = format!("obgate_bench_{}", std::process::id());
    let admin_db = pg.to_owned();
    let psql = |sql: &str| {
        Command::new("psql")
            .args([admin_db.as_str(), "-qAtc", sql])
            .status()
            .is_ok_and(|s| s.success())
    };
    assert!(
        psql(&format!("CREATE DATABASE {db}")),
        "create the benchmark database"
    );
    let url = match pg.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{db}"),
        None => panic!("BENCH_POSTGRES_URL must name a database"),
    };
    let env = [
        ("OBGATE_DATABASE_URL", url.as_str()),
        ("OBGATE_UPSTREAM_URL", "http://127.0.0.1:18081"),
        // Both nodes are one deployment: one issuer, as behind a load balancer.
        ("OBGATE_PUBLIC_URL", "http://127.0.0.1:18090"),
        // A long TTL: only the change feed can explain B's refusal.
        ("OBGATE_GATEWAY_CACHE_TTL", "5m"),
    ];
    let a = Node::start(&env);
    let b = Node::start(&env);
    let api = Api {
        http: reqwest::Client::new(),
        base: a.base.clone(),
        admin: a.admin_key(&env),
    };
    let s = api.seed(upstream_accounts).await;
    let details = Api::details(&s.consent);
    let mut tokens = Vec::with_capacity(n);
    for _ in 0..n {
        tokens.push(api.token(&s, Some(&details)).await);
    }
    let url_b = format!("{}/open-banking/v3.1/aisp/accounts", b.base);
    let mut lat = Vec::with_capacity(n);
    let mut timeouts = 0;
    for t in &tokens {
        // B must know the token first (a cached allow), so the refusal is an invalidation.
        let r = api.http.get(&url_b).bearer_auth(t).send().await.unwrap();
        assert_eq!(r.status(), 200, "node B serves the token");
        let _ = r.bytes().await;
        let r = api
            .http
            .post(format!("{}/oauth2/revoke", a.base))
            .basic_auth(&s.client_id, Some(&s.secret))
            .form(&[("token", t.as_str()), ("token_type_hint", "access_token")])
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "revoke");
        let revoked = Instant::now();
        loop {
            let r = api.http.get(&url_b).bearer_auth(t).send().await.unwrap();
            let denied = r.status() == 401;
            let _ = r.bytes().await;
            if denied {
                lat.push(revoked.elapsed().as_secs_f64() * 1000.0);
                break;
            }
            if revoked.elapsed() > Duration::from_secs(5) {
                timeouts += 1;
                break;
            }
        }
    }
    drop((a, b));
    let _ = psql(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        lat.get(((lat.len().max(1) - 1) as f64 * p).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    (pct(0.5), pct(0.99), timeouts)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let duration = std::env::var("DURATION").unwrap_or_else(|_| "10".into());
    println!(
        "obgate vs peers: wrk 1 thread, 16 connections, {duration} s per row; {}",
        machine()
    );
    // A run that died earlier may have left the peers up.
    let _ = Command::new("bash")
        .arg(peers_script())
        .arg("down")
        .status();
    peers(&["up"], &[]);
    let _peers = PeersDown;
    println!("peers up; measuring the peers");
    let peer_token = std::fs::read_to_string("/tmp/obgate-peers/peer-token")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let nginx = wrk(
        "http://127.0.0.1:18082/open-banking/v3.1/aisp/accounts",
        &[],
    );
    let haproxy = wrk(
        "http://127.0.0.1:18083/open-banking/v3.1/aisp/accounts",
        &[&format!("Authorization: Bearer {peer_token}")],
    );
    let oidc = wrk_token(
        "http://127.0.0.1:18084/token",
        "bench-tpp",
        "bench-secret-0123456789abcdef0123456789abcdef",
    );

    // Idle memory: a fresh sandbox start (demo data, built-in bank), settled.
    // Idle memory: a first sandbox start (it seeds the demo data, hashing the demo client's
    // secret with argon2), then a restart on that data; each settled for 3 s.
    let (idle_first, idle) = {
        let mut n = Node::start(&[]);
        std::thread::sleep(Duration::from_secs(3));
        let first = n.rss_mib();
        let _ = n.child.kill();
        let _ = n.child.wait();
        let dir = std::mem::replace(&mut n.dir, tempfile::tempdir().unwrap());
        drop(n);
        let again = Node::start_in(dir, &[]);
        std::thread::sleep(Duration::from_secs(3));
        (first, again.rss_mib())
    };

    // One node on SQLite in front of the peers' upstream.
    let env = [("OBGATE_UPSTREAM_URL", "http://127.0.0.1:18081")];
    let node = Node::start(&env);
    let api = Api {
        http: reqwest::Client::new(),
        base: node.base.clone(),
        admin: node.admin_key(&env),
    };
    let s = api.seed(upstream_accounts).await;
    let token = api.token(&s, Some(&Api::details(&s.consent))).await;
    println!("obgate seeded; measuring obgate");
    let accounts = format!("{}/open-banking/v3.1/aisp/accounts", node.base);
    let auth = format!("Authorization: Bearer {token}");
    let _warm = wrk(&accounts, &[&auth]);
    let gateway = wrk(&accounts, &[&auth]);
    println!("gateway: {gateway:?} (nginx {nginx:?}, haproxy {haproxy:?})");
    let token_url = format!("{}/oauth2/token", node.base);
    let issue = wrk_token(&token_url, &s.client_id, &s.secret);
    println!("tokens: {issue:?} (oidc-provider {oidc:?})");

    // argon2 isolation: 64 connections of wrong secrets (full argon2 each) in the background
    // while /healthz and valid (cached-secret) token requests are measured.
    let background =
        |url: String, user: String| std::thread::spawn(move || wrk_attack(&url, &user));
    let attack = background(token_url.clone(), s.client_id.clone());
    std::thread::sleep(Duration::from_secs(1));
    let healthz = wrk(&format!("{}/healthz", node.base), &[]);
    let _ = attack.join();
    let attack = background(token_url.clone(), s.client_id.clone());
    std::thread::sleep(Duration::from_secs(1));
    let issue_under_attack = wrk_token(&token_url, &s.client_id, &s.secret);
    let _ = attack.join();
    println!("under attack: healthz {healthz:?}, tokens {issue_under_attack:?}");
    let rss_after = node.rss_mib();
    drop(node);

    let pg = std::env::var("BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let revocations: usize = std::env::var("BENCH_REVOCATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    println!("measuring revocation latency over two nodes ({revocations} revocations)");
    let (rev_p50, rev_p99, rev_timeouts) = revocation_latency(&pg, revocations).await;

    let date = time::OffsetDateTime::now_utc().date();
    let mut md = String::new();
    md.push_str(&format!(
        "# obgate benchmarks\n\nLatest run: {date}, on {}. Produced by `benches/run.sh`; every row is one wrk load \
         (1 thread, 16 connections, {duration} s, from `../shared/bench/peers.sh`) on loopback, with the load \
         generator, the server and the upstream sharing the cores. Compare the ratios; absolute figures on a \
         shared machine are noise.\n\n",
        machine()
    ));
    md.push_str("| what | obgate | peer | ratio | target | |\n|---|---|---|---|---|---|\n");
    let row = |md: &mut String,
               what: &str,
               ours: String,
               peer: String,
               r: String,
               target: &str,
               ok: bool| {
        md.push_str(&format!(
            "| {what} | {ours} | {peer} | {r} | {target} | {} |\n",
            pass(ok)
        ));
    };
    let fmt = |l: Load| {
        format!(
            "{:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, non-2xx {}",
            l.rps, l.p50, l.p99, l.bad
        )
    };
    row(
        &mut md,
        "proxied `GET /accounts`, every check on, vs nginx plain proxy",
        fmt(gateway),
        fmt(nginx),
        ratio(gateway.rps, nginx.rps),
        "≥ 0.8× throughput, p99 ≤ 2×, zero non-2xx",
        gateway.rps >= 0.8 * nginx.rps && gateway.p99 <= 2.0 * nginx.p99 && gateway.bad == 0,
    );
    row(
        &mut md,
        "the same vs HAProxy verifying ES256",
        fmt(gateway),
        fmt(haproxy),
        ratio(gateway.rps, haproxy.rps),
        "≥ 3× throughput",
        gateway.rps >= 3.0 * haproxy.rps,
    );
    row(
        &mut md,
        "`client_credentials`, argon2id secret, ES256 JWT, vs oidc-provider",
        fmt(issue),
        fmt(oidc),
        ratio(issue.rps, oidc.rps),
        "≥ 2× throughput, p99 ≤ peer's",
        issue.rps >= 2.0 * oidc.rps && issue.p99 <= oidc.p99,
    );
    row(
        &mut md,
        "`/healthz` under 64 concurrent wrong-secret token requests",
        fmt(healthz),
        "—".into(),
        "—".into(),
        "p99 ≤ 5 ms",
        healthz.p99 <= 5.0,
    );
    row(
        &mut md,
        "valid token requests under the same attack, vs unloaded",
        fmt(issue_under_attack),
        fmt(issue),
        ratio(issue_under_attack.rps, issue.rps),
        "≥ 0.5×",
        issue_under_attack.rps >= 0.5 * issue.rps,
    );
    row(
        &mut md,
        &format!(
            "revocation on node A → first denial on node B (PostgreSQL, {revocations} revocations)"
        ),
        format!("p50 {rev_p50:.1} ms, p99 {rev_p99:.1} ms, {rev_timeouts} never denied within 5 s"),
        "—".into(),
        "—".into(),
        "p99 ≤ 100 ms",
        rev_p99 <= 100.0 && rev_timeouts == 0,
    );
    row(
        &mut md,
        "idle RSS, restarted on the sandbox data (the first start is below)",
        format!("{idle:.1} MiB ({:.1} MB)", idle * 1.048_576),
        "—".into(),
        "—".into(),
        "≤ 40 MB",
        idle <= 40.0 * 1_000_000.0 / 1_048_576.0,
    );
    md.push_str(&format!(
        "\nobgate's RSS after the gateway, token and attack rows: {rss_after:.1} MiB. The first sandbox \
         start, which seeds the demo data, settles at {idle_first:.1} MiB.\n\n\
         Not measured by this runner yet: the scale row (100,000 customers, 1,000,000 consents, 100,000 \
         distinct tokens in rotation); see the notes below.\n"
    ));
    print!("\n{md}");
    let notes_marker = "\n## Notes\n";
    let path = root().join("BENCHMARKS.md");
    let notes = std::fs::read_to_string(&path)
        .ok()
        .and_then(|old| old.find(notes_marker).map(|i| old[i..].to_owned()))
        .unwrap_or_default();
    std::fs::write(&path, format!("{md}{notes}")).unwrap();
    println!("\nwritten to {}", path.display());
}
