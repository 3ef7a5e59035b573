//! Audit-writer benchmark: what one gateway decision costs the SQLite writer, against a full
//! audit row.
//!
//! Every gateway request leaves one decision row, written in batches by one writer; on a
//! loaded node that writer is the largest cost obgate controls after the response filter.
//! This appends batches the way `src/gateway/access_log.rs` does, to a SQLite file in a
//! temporary directory, and prints the time per row: as `gateway_decisions` rows under one seal
//! a batch (what the gateway writes), and as full hash-chained audit rows (what it wrote before,
//! and what group-committed token rows still are). `cargo bench --bench audit -- decisions 5`
//! runs one kind for five batches (default both, 20 batches of 2,000 rows), so it runs under
//! callgrind for a repeatable count.

#![allow(clippy::expect_used)] // a benchmark aborts on a setup failure
use std::time::Instant;

use obgate::audit::decisions::GatewayDecision;
use obgate::audit::{ActorType, AuditEvent, Outcome};
use obgate::clock::Timestamp;
use obgate::store::Store;

const BATCH: usize = 2_000;

fn decision(i: usize) -> GatewayDecision {
    GatewayDecision::new(
        Timestamp::from_millis(1_700_000_000_000 + i as i64),
        Some("cl_bench_tpp_0001"),
        Some("aac_01JD0000000000000000000000"),
        true,
        "ok",
        "/open-banking/v3.1/aisp/accounts",
        Some(&format!("93bac548-d2de-4546-b106-{i:012}")),
    )
}

fn audit_row(i: usize) -> AuditEvent {
    AuditEvent::new(
        Timestamp::from_millis(1_700_000_000_000 + i as i64),
        ActorType::Client,
        "cl_bench_tpp_0001",
        "gateway.access",
    )
    .outcome(Outcome::Success, "ok /open-banking/v3.1/aisp/accounts")
    .interaction(Some(&format!("93bac548-d2de-4546-b106-{i:012}")))
    .on("consent", "aac_01JD0000000000000000000000")
}

async fn open(dir: &std::path::Path, name: &str) -> obgate::store::sqlite::SqliteStore {
    let url = format!("sqlite://{}", dir.join(name).display());
    let store = obgate::store::sqlite::SqliteStore::connect(&url, 2)
        .await
        .expect("open");
    Store::migrate(&store).await.expect("migrate");
    store
}

fn report(what: &str, rows: usize, batches: usize, took: std::time::Duration) {
    println!(
        "{what}: {rows} rows in {batches} batches, {:.2} µs a row",
        took.as_secs_f64() * 1e6 / rows as f64
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let kind = args.next().unwrap_or_default();
    let batches: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let dir = tempfile::tempdir().expect("temp dir");
    let n = batches * BATCH;
    if kind.is_empty() || kind == "decisions" {
        let store = open(dir.path(), "decisions.db").await;
        let work: Vec<Vec<GatewayDecision>> = (0..batches)
            .map(|b| (0..BATCH).map(|i| decision(b * BATCH + i)).collect())
            .collect();
        let start = Instant::now();
        for batch in &work {
            store.append_decisions(batch).await.expect("append");
        }
        report("gateway decisions", n, batches, start.elapsed());
        let head = store.audit_head().await.expect("head");
        assert_eq!(head.decisions, n as i64, "every decision written");
    }
    if kind.is_empty() || kind == "rows" {
        let store = open(dir.path(), "rows.db").await;
        let work: Vec<Vec<AuditEvent>> = (0..batches)
            .map(|b| (0..BATCH).map(|i| audit_row(b * BATCH + i)).collect())
            .collect();
        let start = Instant::now();
        for batch in &work {
            store.append_audit_batch(batch).await.expect("append");
        }
        report("full audit rows", n, batches, start.elapsed());
    }
}
