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
//! - Compared loads run in `BENCH_ROUNDS` (3) interleaved rounds and report their median round,
//!   so that obgate and its peers share the drift of a shared machine.
//! - A hyper pass-through proxy with no checks ([`ceiling`]) shows how far obgate's HTTP stack
//!   itself can go here.
//! - The scale row ([`scale`]) seeds 100,000 customers, 1,000,000 consents and 100,000 tokens
//!   (`BENCH_SCALE_*` resize it) and rotates through the tokens.
//! - `BENCH_ROWS=gateway,token,…` measures some rows only (then `BENCHMARKS.md` is left alone).
//!
//! Everything runs on loopback, bounded in time and count, and stops by itself.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a benchmark aborts on a setup failure
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "peers/ceiling.rs"]
mod ceiling;
mod common;
#[path = "peers/scale.rs"]
mod scale;
use common::{root, Api, Node};
use futures_util::StreamExt;

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
    std::env::var("OBGATE_TEST_PEERS_SH")
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

/// `a` over `b` as the table writes a ratio.
fn ratio(a: f64, b: f64) -> String {
    format!("{:.2}×", a / b)
}

/// Each round's ratio of `ours` over `peer`, in round order: on a shared machine the rounds
/// of one run differ by a fifth, and the median alone hides how near a target a run came.
fn round_ratios(ours: &[Load], peer: &[Load]) -> String {
    let each: Vec<String> = ours
        .iter()
        .zip(peer)
        .map(|(o, p)| format!("{:.2}", o.rps / p.rps))
        .collect();
    format!("rounds {}", each.join(", "))
}

/// The middle run of several by `key` (rounds ≥ 1).
fn median_by(mut runs: Vec<Load>, key: fn(&Load) -> f64) -> Load {
    runs.sort_by(|a, b| key(a).total_cmp(&key(b)));
    runs[runs.len() / 2]
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

/// The rows to measure: `BENCH_ROWS` (comma-separated: idle, gateway, token, attack,
/// revocation, scale), all by default. Only a run of every row writes `BENCHMARKS.md`.
/// `BENCH_ROWS=hold` measures nothing: it seeds the node, starts the ceiling proxy (in this
/// process) and keeps both up until Ctrl-C, for a profiler to attach to while a load runs by
/// hand.
const ROWS: [&str; 6] = ["idle", "gateway", "token", "attack", "revocation", "scale"];

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let duration = std::env::var("DURATION").unwrap_or_else(|_| "10".into());
    let rows: Vec<String> = std::env::var("BENCH_ROWS")
        .map(|v| v.split(',').map(|r| r.trim().to_owned()).collect())
        .unwrap_or_else(|_| ROWS.iter().map(|r| (*r).to_owned()).collect());
    for r in &rows {
        assert!(
            ROWS.contains(&r.as_str()) || r == "hold",
            "BENCH_ROWS: unknown row {r}"
        );
    }
    let want = |row: &str| rows.iter().any(|r| r == row);
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let every_row = ROWS.iter().all(|r| want(r));
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
    // Idle memory: a first sandbox start (it seeds the demo data, hashing the demo client's
    // secret with argon2), then a restart on that data; each settled for 3 s.
    let idle = want("idle").then(|| {
        let n = Node::start(&[]);
        std::thread::sleep(Duration::from_secs(3));
        let first = n.rss_mib();
        let again = n.restart(&[]);
        std::thread::sleep(Duration::from_secs(3));
        (first, again.rss_mib())
    });

    // One node on SQLite in front of the peers' upstream. Its token must outlive the run
    // (the scale row reads with it last, some twenty minutes on).
    let env = [
        ("OBGATE_UPSTREAM_URL", "http://127.0.0.1:18081"),
        ("OBGATE_OAUTH_ACCESS_TOKEN_TTL", "1h"),
    ];
    let node = Node::start(&env);
    let api = Api {
        http: reqwest::Client::new(),
        base: node.base.clone(),
        admin: node.admin_key(&env),
    };
    let s = api.seed(upstream_accounts).await;
    let token = api.token(&s, Some(&Api::details(&s.consent))).await;
    let accounts = format!("{}/open-banking/v3.1/aisp/accounts", node.base);
    let auth = format!("Authorization: Bearer {token}");
    // The same gateway load on a second node with its workers pinned to CPUs
    // (`runtime.pin_workers`, off by default; see `obgate::runtime`), seeded alike.
    let pinned = (want("gateway") || want("hold")).then(|| {
        let env = [env[0], env[1], ("OBGATE_RUNTIME_PIN_WORKERS", "true")];
        Node::start(&env)
    });
    let pinned_read = match &pinned {
        Some(n) => {
            let api = Api {
                http: reqwest::Client::new(),
                base: n.base.clone(),
                admin: n.admin_key(&env),
            };
            let s = api.seed(upstream_accounts).await;
            let token = api.token(&s, Some(&Api::details(&s.consent))).await;
            Some((
                format!("{}/open-banking/v3.1/aisp/accounts", n.base),
                format!("Authorization: Bearer {token}"),
            ))
        }
        None => None,
    };
    if want("hold") {
        let ceiling = ceiling::start("http://127.0.0.1:18081");
        println!(
            "obgate seeded and held (pid {}) until Ctrl-C; its log: {}/obgate.log\n\
             gateway: {} wrk {accounts} '{auth}'\n\
             tokens:  {} wrk-token {}/oauth2/token {} {}\n\
             ceiling (this process, pid {}): {} wrk http://{ceiling}/open-banking/v3.1/aisp/accounts\n\
             pinned (pid {}): {} wrk {} '{}'",
            node.child.id(),
            node.path().display(),
            peers_script().display(),
            peers_script().display(),
            node.base,
            s.client_id,
            s.secret,
            std::process::id(),
            peers_script().display(),
            pinned.as_ref().map_or(0, |n| n.child.id()),
            peers_script().display(),
            pinned_read.as_ref().map_or("", |r| r.0.as_str()),
            pinned_read.as_ref().map_or("", |r| r.1.as_str()),
        );
        let _ = tokio::signal::ctrl_c().await;
        return;
    }
    println!("obgate seeded; measuring obgate and the peers, {rounds} rounds");

    // Compared loads run in rounds, one of each per round, and each reports its median
    // round: on a shared machine the CPU available drifts over minutes (runs of the same
    // code have differed threefold), and interleaving puts obgate and its peers under the
    // same drift. Every load also runs once unmeasured first (cold caches and pools).
    let nginx_url = "http://127.0.0.1:18082/open-banking/v3.1/aisp/accounts";
    let haproxy_url = "http://127.0.0.1:18083/open-banking/v3.1/aisp/accounts";
    let haproxy_auth = format!("Authorization: Bearer {peer_token}");
    let oidc_url = "http://127.0.0.1:18084/token";
    let (oidc_user, oidc_pass) = ("bench-tpp", "bench-secret-0123456789abcdef0123456789abcdef");
    let token_url = format!("{}/oauth2/token", node.base);
    // The ceiling of obgate's HTTP stack: hyper proxying with no checks (see `ceiling`).
    let ceiling_url = format!(
        "http://{}/open-banking/v3.1/aisp/accounts",
        ceiling::start("http://127.0.0.1:18081")
    );
    type Run<'a> = Box<dyn Fn() -> Load + 'a>;
    let mut loads: Vec<(&str, Run)> = Vec::new();
    if want("gateway") || want("scale") {
        loads.push(("nginx", Box::new(|| wrk(nginx_url, &[]))));
        loads.push(("haproxy", Box::new(|| wrk(haproxy_url, &[&haproxy_auth]))));
        loads.push(("ceiling", Box::new(|| wrk(&ceiling_url, &[]))));
        loads.push(("gateway", Box::new(|| wrk(&accounts, &[&auth]))));
    }
    if let Some((url, auth)) = &pinned_read {
        loads.push(("pinned", Box::new(move || wrk(url, &[auth]))));
    }
    if want("token") || want("attack") {
        loads.push((
            "oidc",
            Box::new(|| wrk_token(oidc_url, oidc_user, oidc_pass)),
        ));
        loads.push((
            "tokens",
            Box::new(|| wrk_token(&token_url, &s.client_id, &s.secret)),
        ));
    }
    let mut runs: Vec<Vec<Load>> = vec![Vec::new(); loads.len()];
    for (_, run) in &loads {
        let _warm = run();
    }
    for round in 1..=rounds {
        for (i, (name, run)) in loads.iter().enumerate() {
            let l = run();
            println!("round {round}: {name} {l:?}");
            runs[i].push(l);
        }
    }
    let median = |name: &str| {
        let i = loads.iter().position(|(n, _)| *n == name)?;
        Some(median_by(runs[i].clone(), |l| l.rps))
    };
    let nginx = median("nginx").unwrap_or_default();
    let haproxy = median("haproxy").unwrap_or_default();
    let ceiling = median("ceiling");
    let gateway = median("gateway");
    let pinned_gateway = median("pinned");
    let oidc = median("oidc").unwrap_or_default();
    let issue = median("tokens");
    // Each round's ratio of one load over another, for the table (the loads' closures go
    // before the table is written; their names stay).
    let names: Vec<&str> = loads.iter().map(|(n, _)| *n).collect();
    let per_round = |ours: &str, peer: &str| {
        let at = |name: &str| names.iter().position(|n| *n == name);
        match (at(ours), at(peer)) {
            (Some(o), Some(p)) => format!(" ({})", round_ratios(&runs[o], &runs[p])),
            _ => String::new(),
        }
    };
    drop(loads);
    drop(pinned);
    println!("medians: gateway {gateway:?}, pinned {pinned_gateway:?}, nginx {nginx:?}, haproxy {haproxy:?}, ceiling {ceiling:?}, tokens {issue:?}, oidc-provider {oidc:?}");

    // argon2 isolation: 64 connections of wrong secrets (full argon2 each) in the background
    // while /healthz and valid (cached-secret) token requests are measured.
    let attack = want("attack").then(|| {
        let background =
            |url: String, user: String| std::thread::spawn(move || wrk_attack(&url, &user));
        // In rounds too: /healthz reports its median-p99 round, the tokens their median rate.
        let (mut healthz, mut tokens) = (Vec::new(), Vec::new());
        for round in 1..=rounds {
            let attack = background(token_url.clone(), s.client_id.clone());
            std::thread::sleep(Duration::from_secs(1));
            healthz.push(wrk(&format!("{}/healthz", node.base), &[]));
            let _ = attack.join();
            let attack = background(token_url.clone(), s.client_id.clone());
            std::thread::sleep(Duration::from_secs(1));
            tokens.push(wrk_token(&token_url, &s.client_id, &s.secret));
            let _ = attack.join();
            println!(
                "round {round} under attack: healthz {:?}, tokens {:?}",
                healthz[round - 1],
                tokens[round - 1]
            );
        }
        (median_by(healthz, |l| l.p99), median_by(tokens, |l| l.rps))
    });
    let rss_after = node.rss_mib();
    // The scale row, against this node's small data with the same rotating script (one
    // token), in interleaved rounds.
    let scaled = if want("scale") {
        let small = scale::rotation(node.path(), "small", std::slice::from_ref(&token));
        Some(scale_row(&accounts, &small, rounds).await)
    } else {
        None
    };
    drop(node);

    let revocation = if want("revocation") {
        let pg = std::env::var("BENCH_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let n: usize = std::env::var("BENCH_REVOCATIONS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000);
        println!("measuring revocation latency over two nodes ({n} revocations)");
        let (p50, p99, timeouts) = revocation_latency(&pg, n).await;
        Some((n, p50, p99, timeouts))
    } else {
        None
    };

    let date = time::OffsetDateTime::now_utc().date();
    let mut md = String::new();
    md.push_str(&format!(
        "# obgate benchmarks\n\nLatest run: {date}, on {}. Produced by `benches/run.sh`; every row is one wrk load \
         (1 thread, 16 connections, {duration} s, from `../shared/bench/peers.sh`; obgate and the peers it is compared with \
         measured in {rounds} interleaved rounds, each figure its median round, each round's ratio beside the \
         median's) on loopback, with the load \
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
    if let (true, Some(gateway)) = (want("gateway"), gateway) {
        // The two gateway targets, for the default node and (when measured) the pinned one.
        let nodes = [
            Some((
                "proxied `GET /accounts`, every check on, vs nginx plain proxy",
                "the same vs HAProxy verifying ES256",
                "gateway",
                gateway,
            )),
            pinned_gateway.map(|p| {
                (
                    "the same on a node with `runtime.pin_workers = true`, vs nginx plain proxy",
                    "the pinned node vs HAProxy verifying ES256",
                    "pinned",
                    p,
                )
            }),
        ];
        for (vs_nginx, vs_haproxy, load, g) in nodes.into_iter().flatten() {
            row(
                &mut md,
                vs_nginx,
                fmt(g),
                fmt(nginx),
                ratio(g.rps, nginx.rps) + &per_round(load, "nginx"),
                "≥ 0.8× throughput, p99 ≤ 2×, zero non-2xx",
                g.rps >= 0.8 * nginx.rps && g.p99 <= 2.0 * nginx.p99 && g.bad == 0,
            );
            row(
                &mut md,
                vs_haproxy,
                fmt(g),
                fmt(haproxy),
                ratio(g.rps, haproxy.rps) + &per_round(load, "haproxy"),
                "≥ 3× throughput",
                g.rps >= 3.0 * haproxy.rps,
            );
        }
        if let Some(c) = ceiling {
            md.push_str(&format!(
                "| (the stack's ceiling) hyper pass-through proxy, no checks | {} | nginx; HAProxy | {}; {} | — (obgate's gateway cannot pass it) | — |\n",
                fmt(c),
                ratio(c.rps, nginx.rps),
                ratio(c.rps, haproxy.rps)
            ));
        }
    }
    if let (true, Some(issue)) = (want("token"), issue) {
        row(
            &mut md,
            "`client_credentials`, argon2id secret, ES256 JWT, vs oidc-provider",
            fmt(issue),
            fmt(oidc),
            ratio(issue.rps, oidc.rps) + &per_round("tokens", "oidc"),
            "≥ 2× throughput, p99 ≤ peer's",
            issue.rps >= 2.0 * oidc.rps && issue.p99 <= oidc.p99,
        );
    }
    if let (Some((healthz, under)), Some(issue)) = (attack, issue) {
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
            fmt(under),
            fmt(issue),
            ratio(under.rps, issue.rps),
            "≥ 0.5×",
            under.rps >= 0.5 * issue.rps,
        );
    }
    if let Some(sc) = &scaled {
        let (sz, small) = (sc.sizes, sc.small);
        row(
            &mut md,
            &format!(
                "scale: {} customers, {} consents, {} distinct tokens in rotation, vs the same script over one token on the small data",
                sz.customers, sz.consents, sz.tokens
            ),
            format!("{}; RSS {:.1} MiB ({:.1} MB)", fmt(sc.load), sc.rss, sc.rss * 1.048_576),
            fmt(small),
            ratio(sc.load.rps, small.rps),
            "≥ 0.85× throughput, RSS ≤ 256 MB",
            sc.load.rps >= 0.85 * small.rps
                && sc.rss * 1.048_576 <= 256.0
                && sc.load.bad == 0
                && small.bad == 0,
        );
    }
    if let Some((n, p50, p99, timeouts)) = revocation {
        row(
            &mut md,
            &format!("revocation on node A → first denial on node B (PostgreSQL, {n} revocations)"),
            format!("p50 {p50:.1} ms, p99 {p99:.1} ms, {timeouts} never denied within 5 s"),
            "—".into(),
            "—".into(),
            "p99 ≤ 100 ms",
            p99 <= 100.0 && timeouts == 0,
        );
    }
    if let Some((_, idle)) = idle {
        row(
            &mut md,
            "idle RSS, restarted on the sandbox data (the first start is below)",
            format!("{idle:.1} MiB ({:.1} MB)", idle * 1.048_576),
            "—".into(),
            "—".into(),
            "≤ 40 MB",
            idle <= 40.0 * 1_000_000.0 / 1_048_576.0,
        );
    }
    md.push('\n');
    if attack.is_some() {
        md.push_str(&format!(
            "obgate's RSS after the gateway, token and attack rows: {rss_after:.1} MiB. "
        ));
    }
    if let Some((first, _)) = idle {
        md.push_str(&format!(
            "The first sandbox start, which seeds the demo data, settles at {first:.1} MiB. "
        ));
    }
    if let Some(sc) = &scaled {
        md.push_str(&format!(
            "\n\nThe scale row runs a node with `gateway.cache_ttl = 5m` (the longest allowed), its caches \
             warmed by one read per token; seeding took {:.0} s (bulk copies) and {:.0} s ({:.0} tokens/s through \
             the token endpoint). The same data with the default `gateway.cache_ttl` (5 s), where a token comes \
             round only every ~10 s and so nearly every read is a cache miss (signature check and three indexed \
             reads): {}; RSS {:.1} MiB.",
            sc.copy_secs,
            sc.token_secs,
            sc.sizes.tokens as f64 / sc.token_secs,
            fmt(sc.default_ttl),
            sc.default_ttl_rss,
        ));
    }
    md.push('\n');
    print!("\n{md}");
    if !every_row {
        println!("\n(not every row ran: BENCHMARKS.md left as it was)");
        return;
    }
    let notes_marker = "\n## Notes\n";
    let path = root().join("BENCHMARKS.md");
    let notes = std::fs::read_to_string(&path)
        .ok()
        .and_then(|old| old.find(notes_marker).map(|i| old[i..].to_owned()))
        .unwrap_or_default();
    std::fs::write(&path, format!("{md}{notes}")).unwrap();
    println!("\nwritten to {}", path.display());
}

/// What the scale row measured.
struct Scaled {
    sizes: scale::Sizes,
    /// The same script over one token on the small node.
    small: Load,
    load: Load,
    rss: f64,
    copy_secs: f64,
    token_secs: f64,
    default_ttl: Load,
    default_ttl_rss: f64,
}

/// The scale row: a node seeded in bulk (see `scale`), measured with warm caches under the
/// longest cache TTL, then restarted on the same data with the default TTL.
async fn scale_row(small_url: &str, small_script: &std::path::Path, rounds: usize) -> Scaled {
    let sizes = scale::Sizes::from_env();
    println!("scale: seeding {sizes:?}");
    let env = [
        ("OBGATE_UPSTREAM_URL", "http://127.0.0.1:18081"),
        // Issuing 100,000 tokens takes minutes: none may expire before the last load.
        ("OBGATE_OAUTH_ACCESS_TOKEN_TTL", "1h"),
        // The issuer must survive the restart below (it defaults to the listen address).
        ("OBGATE_PUBLIC_URL", "http://127.0.0.1:18095"),
        ("OBGATE_GATEWAY_CACHE_TTL", "5m"),
    ];
    let node = Node::start(&env);
    let api = Api {
        http: reqwest::Client::new(),
        base: node.base.clone(),
        admin: node.admin_key(&env),
    };
    let s = api.seed(upstream_accounts).await;
    let started = Instant::now();
    let consents = scale::bulk_copy(&node.path().join("obgate.db"), &s, sizes).await;
    let copy_secs = started.elapsed().as_secs_f64();
    println!(
        "scale: rows copied in {copy_secs:.1} s (RSS {:.1} MiB); issuing {} tokens",
        node.rss_mib(),
        consents.len()
    );
    let started = Instant::now();
    let tokens = scale::issue_tokens(&api, &s, &consents).await;
    let token_secs = started.elapsed().as_secs_f64();
    println!(
        "scale: tokens issued in {token_secs:.1} s (RSS {:.1} MiB); one read per token to warm the caches",
        node.rss_mib()
    );
    let accounts = format!("{}/open-banking/v3.1/aisp/accounts", node.base);
    let refused = futures_util::stream::iter(&tokens)
        .map(|t| {
            let (http, url) = (&api.http, &accounts);
            async move {
                let r = http.get(url).bearer_auth(t).send().await.unwrap();
                let ok = r.status() == 200;
                let _ = r.bytes().await;
                ok
            }
        })
        .buffer_unordered(16)
        .filter(|ok| std::future::ready(!ok))
        .count()
        .await;
    assert_eq!(refused, 0, "every scale token reads the accounts");
    println!("scale: caches warm (RSS {:.1} MiB)", node.rss_mib());
    let script = scale::rotation(node.path(), "scale", &tokens);
    let _warm = scale::wrk_script(small_url, small_script);
    let (mut smalls, mut loads) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let small = scale::wrk_script(small_url, small_script);
        let load = scale::wrk_script(&accounts, &script);
        println!("round {round}: small {small:?}, scale {load:?}");
        smalls.push(small);
        loads.push(load);
    }
    let (small, load) = (median_by(smalls, |l| l.rps), median_by(loads, |l| l.rps));
    let rss = node.rss_mib();
    println!("scale: {load:?}, RSS {rss:.1} MiB; again with the default cache TTL");
    let node = node.restart(&env[..3]);
    let accounts = format!("{}/open-banking/v3.1/aisp/accounts", node.base);
    let default_ttl = scale::wrk_script(&accounts, &script);
    let default_ttl_rss = node.rss_mib();
    println!("scale, default TTL: {default_ttl:?}, RSS {default_ttl_rss:.1} MiB");
    if std::env::var_os("BENCH_SCALE_KEEP").is_some() {
        // The seeded data (with `scale.tokens`, one token a line) for a run by hand, such as
        // instruction counts under callgrind (`benches/callgrind-scale.sh`).
        println!("scale: data kept in {}", node.keep().display());
    }
    Scaled {
        sizes,
        small,
        load,
        rss,
        copy_secs,
        token_secs,
        default_ttl,
        default_ttl_rss,
    }
}
