//! The scale row: the gateway with 100,000 customers (KYC passed), 1,000,000 authorised
//! consents and 100,000 distinct customer-bound tokens in rotation, against the same load on
//! the small data set.
//!
//! Seeding 1,000,000 consents through the API would take hours at the token row's rate, so
//! the rows are copied in bulk, straight into the node's SQLite file: one customer and one
//! consent are created through the API as usual (KYC really passes, the consent is really
//! authorised), then each is copied with new ids by one `INSERT … SELECT` per table. Every
//! column but the ids is the original's, read from the table itself, so the copies cannot
//! drift from the schema. The copies skip the audit log, which no gateway read consults.
//! Tokens are real: issued by the token endpoint, one per consent, for distinct customers.
//!
//! Both loads use one wrk script that rotates through a file of tokens, so the small case
//! (one token) and the scale case (100,000) cost wrk the same.

use std::path::{Path, PathBuf};
use std::process::Command;

use futures_util::StreamExt;
use sqlx::{Connection, Row};

use super::{common::Api, common::Seeded, Load};

/// How much data the row seeds: `BENCH_SCALE_CUSTOMERS`, `BENCH_SCALE_CONSENTS`,
/// `BENCH_SCALE_TOKENS` (100,000, 1,000,000 and 100,000 by default, as the issue sets them).
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    pub customers: u64,
    pub consents: u64,
    pub tokens: u64,
}

impl Sizes {
    pub fn from_env() -> Self {
        let n = |k: &str, d: u64| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(d)
        };
        let s = Self {
            customers: n("BENCH_SCALE_CUSTOMERS", 100_000),
            consents: n("BENCH_SCALE_CONSENTS", 1_000_000),
            tokens: n("BENCH_SCALE_TOKENS", 100_000),
        };
        assert!(
            s.tokens <= s.customers && s.customers <= s.consents,
            "scale sizes: tokens ≤ customers ≤ consents"
        );
        s
    }
}

/// `INSERT INTO table SELECT …` copying the row `id_col = ?1` `?2` times, with the columns
/// in `rename` replaced by SQL expressions over the copy number `n.i` (1-based) and the
/// original row `c`.
async fn copy_rows(
    db: &mut sqlx::SqliteConnection,
    table: &str,
    id_col: &str,
    id: &str,
    copies: u64,
    rename: &[(&str, String)],
) {
    let columns: Vec<String> = sqlx::query(&format!("PRAGMA table_info({table})"))
        .fetch_all(&mut *db)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>("name"))
        .collect();
    let select: Vec<String> = columns
        .iter()
        .map(|c| {
            rename
                .iter()
                .find(|(name, _)| name == c)
                .map_or_else(|| format!("c.{c}"), |(_, expr)| expr.clone())
        })
        .collect();
    let sql = format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?2) \
         INSERT INTO {table} ({}) SELECT {} FROM n, {table} c WHERE c.{id_col} = ?1",
        columns.join(", "),
        select.join(", ")
    );
    let done = sqlx::query(&sql)
        .bind(id)
        .bind(i64::try_from(copies).unwrap())
        .execute(&mut *db)
        .await
        .unwrap();
    assert_eq!(done.rows_affected(), copies, "{table}: every copy written");
}

/// Copies the seeded customer `customers - 1` times and the seeded consent `consents - 1`
/// times, consent copy `k` belonging to customer copy `k mod (customers - 1)`; returns the
/// consent ids to issue tokens for, one per customer (the first `tokens`).
pub async fn bulk_copy(db_file: &Path, s: &Seeded, sizes: Sizes) -> Vec<String> {
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db_file)
        .busy_timeout(std::time::Duration::from_secs(60));
    let mut db = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
    let customer_copies = sizes.customers - 1;
    let consent_copies = sizes.consents - 1;
    let mut tx = db.begin().await.unwrap();
    copy_rows(
        &mut tx,
        "customers",
        "customer_id",
        &s.customer,
        customer_copies,
        &[(
            "customer_id",
            "printf('%s-%06d', c.customer_id, n.i)".into(),
        )],
    )
    .await;
    copy_rows(
        &mut tx,
        "consents",
        "consent_id",
        &s.consent,
        consent_copies,
        &[
            ("consent_id", "printf('%s-%07d', c.consent_id, n.i)".into()),
            (
                "customer_id",
                format!("printf('%s-%06d', c.customer_id, (n.i - 1) % {customer_copies} + 1)"),
            ),
        ],
    )
    .await;
    tx.commit().await.unwrap();
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut db)
        .await
        .unwrap();
    // Consent copies 1..=tokens belong to distinct customers (tokens ≤ customers - 1, or one
    // token rides on the original consent).
    let mut ids = vec![s.consent.clone()];
    ids.extend((1..sizes.tokens).map(|k| format!("{}-{k:07}", s.consent)));
    ids
}

/// One customer-bound token per consent, through the token endpoint, 16 at a time.
pub async fn issue_tokens(api: &Api, s: &Seeded, consents: &[String]) -> Vec<String> {
    futures_util::stream::iter(consents)
        .map(|c| async move { api.token(s, Some(&Api::details(c))).await })
        .buffered(16)
        .collect()
        .await
}

/// A wrk script that sends each request with the next token of `tokens`, round robin.
pub fn rotation(dir: &Path, name: &str, tokens: &[String]) -> PathBuf {
    let list = dir.join(format!("{name}.tokens"));
    std::fs::write(&list, tokens.join("\n") + "\n").unwrap();
    let script = dir.join(format!("{name}.lua"));
    std::fs::write(
        &script,
        format!(
            r#"local tokens = {{}}
for line in io.lines("{}") do tokens[#tokens + 1] = "Bearer " .. line end
local i = 0
request = function()
  i = i % #tokens + 1
  return wrk.format("GET", nil, {{ ["Authorization"] = tokens[i] }})
end
"#,
            list.display()
        ),
    )
    .unwrap();
    script
}

/// The peers' wrk load (1 thread, 16 connections, `DURATION` s, as `peers.sh` runs it) with a
/// script, parsed as `peers.sh` parses it.
pub fn wrk_script(url: &str, script: &Path) -> Load {
    let duration = std::env::var("DURATION").unwrap_or_else(|_| "10".into());
    let out = Command::new("wrk")
        .args(["-t1", "-c16", &format!("-d{duration}s"), "--latency", "-s"])
        .arg(script)
        .arg(url)
        .output()
        .expect("wrk (peers.sh up installs it)");
    assert!(out.status.success(), "wrk failed");
    parse_wrk(&String::from_utf8_lossy(&out.stdout))
}

/// wrk's report as "req/s, p50, p99, non-2xx" (the fields `peers.sh` prints).
fn parse_wrk(text: &str) -> Load {
    let ms = |label: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(label))
            .map(str::trim)
            .and_then(|v| {
                let (num, unit) = v.split_at(v.find(|c: char| c.is_alphabetic())?);
                let x: f64 = num.parse().ok()?;
                Some(match unit {
                    "us" => x / 1000.0,
                    "s" => x * 1000.0,
                    _ => x,
                })
            })
            .unwrap_or(f64::NAN)
    };
    let field = |label: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    Load {
        rps: field("Requests/sec:").unwrap_or(f64::NAN),
        p50: ms("50%"),
        p99: ms("99%"),
        bad: field("Non-2xx or 3xx responses:").map_or(0, |v| v as u64),
    }
}
