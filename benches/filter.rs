//! Response-filter benchmark: how long [`obgate::gateway::filter::reshape`] takes on the
//! accounts body the peers' upstream serves (eight accounts, about 3 KB), under a consent
//! covering all eight, with and without `ReadAccountsDetail`, and on a consent covering one.
//!
//! Every gateway answer passes through the filter, so its cost is paid on every request;
//! this isolates it from the network and the rest of the stack. Run with
//! `cargo bench --bench filter`. CPU time on a shared machine is noisy: compare runs of the
//! same moment, not figures across days.

#![allow(clippy::expect_used)] // a benchmark aborts on a setup failure
use std::hint::black_box;
use std::time::{Duration, Instant};

use obgate::gateway::authorize::Grant;
use obgate::gateway::filter::reshape;
use obgate::gateway::route_map::lookup;

/// The body `../shared/bench/peers.sh` serves at `/open-banking/v3.1/aisp/accounts`.
fn upstream_body() -> Vec<u8> {
    let accounts: Vec<serde_json::Value> = (0..8)
        .map(|i| {
            serde_json::json!({
                "AccountId": format!("acc-{i:04}"),
                "Status": "Enabled",
                "StatusUpdateDateTime": "2026-01-01T00:00:00+00:00",
                "Currency": "GBP",
                "AccountType": "Personal",
                "AccountSubType": "CurrentAccount",
                "Nickname": format!("Account {i}"),
                "OpeningDate": "2020-01-01T00:00:00+00:00",
                "Account": [{
                    "SchemeName": "UK.OBIE.SortCodeAccountNumber",
                    "Identification": format!("8000{i:010}"),
                    "Name": "Demo Customer"
                }]
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "Data": {"Account": accounts},
        "Links": {"Self": "http://127.0.0.1:18081/open-banking/v3.1/aisp/accounts"},
        "Meta": {"TotalPages": 1}
    }))
    .expect("json")
}

fn grant(accounts: &str, permissions: &str) -> Grant {
    Grant {
        claims: std::sync::Arc::new(obgate::oauth::jwt::AccessClaims {
            iss: "https://obgate.example".into(),
            sub: "cus".into(),
            aud: "https://obgate.example".into(),
            exp: 0,
            iat: 0,
            nbf: 0,
            jti: "jti".into(),
            client_id: "cl".into(),
            scope: "accounts".into(),
            consent_id: Some("aac".into()),
        }),
        account_ids: accounts.into(),
        permissions: permissions.into(),
        from: None,
        to: None,
        matched: lookup("/open-banking/v3.1/aisp/accounts").expect("route"),
    }
}

/// Nanoseconds per call, the best of five rounds of a fixed count.
fn measure(body: &[u8], grant: &Grant) -> (f64, usize) {
    const CALLS: u32 = 20_000;
    let mut best = Duration::MAX;
    let mut out_len = 0;
    for _ in 0..5 {
        let start = Instant::now();
        for _ in 0..CALLS {
            let out = reshape(black_box(body), black_box(grant), "https://obgate.example")
                .expect("reshape");
            out_len = out.len();
            black_box(out);
        }
        best = best.min(start.elapsed());
    }
    (best.as_nanos() as f64 / f64::from(CALLS), out_len)
}

fn main() {
    let body = upstream_body();
    let all: Vec<String> = (0..8).map(|i| format!("acc-{i:04}")).collect();
    let all = all.join(" ");
    let cases = [
        (
            "8 of 8 accounts, ReadAccountsDetail",
            grant(&all, "ReadAccountsBasic ReadAccountsDetail"),
        ),
        (
            "8 of 8 accounts, ReadAccountsBasic only",
            grant(&all, "ReadAccountsBasic"),
        ),
        (
            "1 of 8 accounts, ReadAccountsDetail",
            grant("acc-0003", "ReadAccountsBasic ReadAccountsDetail"),
        ),
    ];
    println!("reshape of a {}-byte accounts body:", body.len());
    // `cargo bench --bench filter -- WORD` runs only the cases whose label holds WORD.
    let only = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    for (label, g) in &cases {
        if only.as_deref().is_some_and(|w| !label.contains(w)) {
            continue;
        }
        let (ns, out) = measure(&body, g);
        println!("  {label:<42} {:>8.0} ns/call ({out} bytes out)", ns);
    }
}
